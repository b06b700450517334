"""Memory of a stage's GPUs: weights, the KV cache of the sequences they hold, and a fixed reserve.

Per GPU: weights (planner.cost.shards) + KV bytes per sequence x the sequences on that GPU's data-
parallel rank (the replica's sequences / dp) + reserve (CUDA context, NCCL buffers, workspaces) must
fit the engine's share of the GPU's memory (`gpu_memory_fraction`). A sequence holds isl + osl tokens
of KV at its longest (a sliding-window layer holds its window at most).
"""

from __future__ import annotations

import math

from planner.cost.constants import Constants
from planner.cost.shards import Layout, held_weight_bytes, kv_bytes_per_token_per_gpu, stage_nodes
from planner.model.layergraph import ModelProfile

#: Largest KV capacity reported: more sequences than any engine schedules.
MAX_CAPACITY = 1_000_000


def fixed_memory_bytes(c: Constants) -> float:
    return c.runtime_reserve_bytes + c.activation_bytes_per_token * c.max_num_batched_tokens


def stage_memory(
    profile: ModelProfile,
    layout: Layout,
    layer_start: int,
    *,
    layer_end: int,
    first: bool,
    last: bool,
    weight_dtype: str,
    kv_dtype: str,
    sequence_tokens: int,
) -> tuple[float, float]:
    """(weight bytes per GPU, KV bytes per sequence per GPU at its full length)."""
    nodes = stage_nodes(profile, layer_start, layer_end, first, last)
    weights = sum(held_weight_bytes(n, layout, profile, weight_dtype) for n in nodes)
    kv = sum(
        min(sequence_tokens, n.sliding_window or sequence_tokens)
        * kv_bytes_per_token_per_gpu(n, layout, profile, kv_dtype)
        for n in nodes
    )
    return weights, kv


def usable_bytes(memory_bytes: float, fraction: float, c: Constants) -> float:
    """What weights and KV may use of one GPU, as one bound the solver's linear memory constraint can take.

    vLLM (gpu_memory_utilization): the fraction of the whole GPU, less activations, graphs and buffers. SGLang
    (mem_fraction_static): the fraction is for weights and KV alone (the reserve lives in the rest), so long as the
    rest holds the reserve. TensorRT-LLM (free_gpu_memory_fraction of what is free after weights and buffers):
    fraction x total - reserve, a lower bound of the exact budget (kv_budget_bytes) by (1 - fraction) x (weights +
    reserve)."""
    reserve = fixed_memory_bytes(c)
    seen = memory_bytes - c.cuda_context_bytes  # what the engine's torch.cuda.mem_get_info reports
    if c.memory_accounting == "mem_fraction_static":
        return min(seen * fraction, seen - reserve)
    return seen * fraction - reserve


def kv_budget_bytes(memory_bytes: float, weights: float, fraction: float, c: Constants) -> float:
    """Bytes of KV cache one GPU holding `weights` gets, by its engine's own accounting (what the engine logs as
    'GPU KV cache size' times the bytes per token); negative where the weights do not fit."""
    if c.memory_accounting == "free_gpu_memory_fraction":
        free = memory_bytes - c.cuda_context_bytes - weights - fixed_memory_bytes(c)
        return fraction * free if free > 0 else free
    return usable_bytes(memory_bytes, fraction, c) - weights


def kv_capacity(usable: float, weights: float, kv_per_sequence: float, dp: int = 1) -> int:
    """Sequences a stage's GPUs hold: each data-parallel rank holds its own."""
    if kv_per_sequence <= 0:
        return MAX_CAPACITY if usable >= weights else 0
    return min(MAX_CAPACITY, dp * max(0, math.floor((usable - weights) / kv_per_sequence)))
