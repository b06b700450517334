"""One engine step of one pipeline stage: bytes, FLOPs, collectives and time on one of its GPUs.

A step carries `decode` tokens (one per decoding sequence) and `prefill` prompt tokens (chunked
prefill sharing the step, or a whole prefill). Per GPU and per layer-graph node:
- HBM bytes: the weights it reads (planner.cost.shards) plus the KV cache its decode tokens attend to
  (context x KV bytes per token, a sliding window at most) and the prefixes its prefill chunks read;
- FLOPs: matmuls of its tokens plus attention over each token's context; a MoE layer's grouped GEMM pads each
  touched expert's tokens to the kernel's M tile; MLA decode runs absorbed (about 4 x heads x latent FLOPs per
  context token);
- time: max(bytes / (HBM bandwidth x efficiency), FLOPs / (peak x efficiency by GEMM rows or attention
  context)), touched experts' bytes at the grouped GEMM's own efficiency, plus fixed times per decoder layer,
  per MoE layer (routing, permutation, quantisation) and per layer under data-parallel attention;
- collectives on the stage's real GPUs: per decoder layer two all-reduces of tokens x hidden x 2 bytes
  over the tensor-parallel group (the MLP's becomes a dispatch and a combine all-to-all under expert
  parallelism, plus a fixed small-message latency each), one for the vocab-parallel embedding, an all-gather of
  the logits at the lm_head.

Everything but the load and the layers comes in one frozen `StageContext` (model, machine, GPUs, layout, dtypes,
the engine-resolved constants), passed by keyword: `stage_step(ctx, layer_start=..., layer_end=..., first=...,
last=..., load=...)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

from planner.cost.attention_rate import head_dim_factor
from planner.cost.collectives import engine_collective_s
from planner.cost.constants import Constants
from planner.cost.ring_bytes import collective_bytes_by_class
from planner.cost.shards import (
    Layout,
    experts_touched,
    kv_bytes_per_token_per_gpu,
    read_weight_bytes,
    sparse_read_bytes,
    stage_nodes,
)
from planner.hardware.gpus import GpuSpec
from planner.hardware.topology import LINK_CLASSES, Topology
from planner.model.dtypes import ACTIVATION_BYTES
from planner.model.layergraph import LayerInfo, ModelProfile

#: Bytes per element of the MoE dispatch all-to-all: fp8 where the weights are fp8 (DeepEP and the
#: engines' fp8 paths quantise the dispatched hidden states), else bf16; the combine is always bf16.
DISPATCH_BYTES = {"fp8": 1, "int4": 2, "mxfp4": 2, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class StepLoad:
    """The tokens of one step of one micro-batch of one replica."""

    decode: float
    prefill: float = 0.0
    context: float = 0.0  # mean context of the decoding sequences
    prefill_context: float = 0.0  # mean attention context of a prefill token
    prefill_kv_tokens: float = 0.0  # KV tokens the prefill chunks read (each chunk reads its prefix)
    logits: float | None = None  # tokens that need logits: decode tokens and prompts finishing
    queries: float = 1.0  # decode tokens per sequence (k + 1 under speculative verification): they share one KV read
    mlp_sparsity: float = 0.0  # remedies (planner.plan.Workload): fractions a token skips
    activation_sparsity: float = 0.0
    attention_sparsity: float = 0.0

    @property
    def tokens(self) -> float:
        return self.decode + self.prefill

    @property
    def logit_tokens(self) -> float:
        return self.decode if self.logits is None else self.logits


@dataclass(frozen=True)
class GroupHardware:
    """The slowest GPU of a group: it sets the pace of a stage."""

    hbm_bytes_per_s: float
    flops_per_s: float  # the weights' compute dtype (fp8 tensor cores for fp8 weights), at the kernels' peak share
    memory_bytes: float
    name: str
    bf16_flops_per_s: float = 0.0  # attention runs in bf16 whatever the weights

    @classmethod
    def of(cls, topo: Topology, gpu_ids: Sequence[int], weight_dtype: str) -> "GroupHardware":
        specs = [topo.gpu(g).spec for g in gpu_ids]
        return cls(
            min(s.hbm_bytes_per_s for s in specs),
            min(s.peak_flops(compute_dtype(weight_dtype, s)) * s.kernel_peak_share for s in specs),
            min(s.memory_bytes for s in specs),
            "+".join(sorted({s.name for s in specs})),
            min(s.peak_flops("bf16") * s.kernel_peak_share for s in specs),
        )


def compute_dtype(weight_dtype: str, spec: GpuSpec) -> str:
    """The dtype a GPU's matmuls run in for these weights: fp8 as fp8 (bf16's rate where the GPU has no fp8
    tensor cores), NVFP4 (weights and activations in FP4) on Blackwell's FP4 tensor cores, everything else at bf16:
    int4, and mxfp4, whose gpt-oss experts run W4A16 on Hopper and W4A8 on Blackwell (W4A4 MXFP4 checkpoints, such
    as AMD's on MI355X, are not told apart yet)."""
    if weight_dtype == "fp8" or (weight_dtype == "nvfp4" and weight_dtype in spec.flops_per_s):
        return weight_dtype
    return "bf16"


@dataclass(frozen=True, eq=False)
class StageContext:
    """Everything a stage's step depends on besides its load and layers: the model, the machine, the stage's GPUs
    and layout, the dtypes and the (engine-resolved) constants. Built once per stage, passed by keyword."""

    profile: ModelProfile
    topo: Topology
    gpu_ids: tuple[int, ...]
    layout: Layout
    weight_dtype: str
    kv_dtype: str
    constants: Constants

    @classmethod
    def of(
        cls,
        *,
        profile: ModelProfile,
        topo: Topology,
        gpu_ids: Sequence[int],
        layout: Layout,
        weight_dtype: str,
        kv_dtype: str,
        constants: Constants,
    ) -> "StageContext":
        return cls(profile, topo, tuple(gpu_ids), layout, weight_dtype, kv_dtype, constants)

    @property
    def engine(self) -> str | None:
        return self.constants.engine

    @cached_property
    def hw(self) -> GroupHardware:
        return GroupHardware.of(self.topo, self.gpu_ids, self.weight_dtype)


@dataclass
class StageStep:
    """A stage's step on its slowest GPU: time by component, HBM bytes per GPU, link bytes of the stage."""

    weights_s: float = 0.0
    kv_s: float = 0.0
    compute_s: float = 0.0
    interconnect_s: float = 0.0
    overhead_s: float = 0.0
    offload_s: float = 0.0  # streaming weights from a memory tier, beyond what the compute hides
    hbm_weight_bytes: float = 0.0
    hbm_kv_bytes: float = 0.0
    interconnect: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in LINK_CLASSES})

    @property
    def time_s(self) -> float:
        return self.weights_s + self.kv_s + self.compute_s + self.interconnect_s + self.overhead_s + self.offload_s

    def add_bytes(self, by_class: dict[str, float], times: float = 1.0) -> None:
        for k, v in by_class.items():
            self.interconnect[k] += times * v


def _window(layer: LayerInfo, context: float) -> float:
    return min(context, layer.sliding_window) if layer.sliding_window else context


def _efficiency(c: Constants, size: float, half: float) -> float:
    """flops_efficiency at a GEMM of `size` rows (or an attention of `size` context): size / (size + half) of it."""
    return c.flops_efficiency * (size / (size + half) if half > 0 else 1.0)


def _expert_work(layer: LayerInfo, layout: Layout, load: StepLoad, c: Constants) -> tuple[float, float]:
    """(expert GEMM FLOPs on one GPU at the padded tile size, padded tokens per touched expert) for one MoE layer.

    A grouped GEMM runs each touched expert's tokens as M rows padded to the kernel's tile: under expert parallelism
    the stage's tokens reach the GPU's E/ep experts (the busiest GPU gets `moe_imbalance` times its share), otherwise
    a rank's tokens reach every expert, each sliced over tp."""
    moe = layer.moe
    if layout.ep > 1:
        local = moe.n_experts / layout.ep
        assignments = load.tokens * moe.top_k / layout.ep * c.moe_imbalance
        touched = experts_touched(local, moe.top_k, moe.n_experts, load.tokens)
        slices = 1
    else:
        rank_tokens = load.tokens / layout.dp
        assignments = rank_tokens * moe.top_k
        touched = experts_touched(moe.n_experts, moe.top_k, moe.n_experts, rank_tokens)
        slices = layout.tp
    if touched <= 0:
        return 0.0, 0.0
    per_expert = max(1.0, assignments / touched)
    tile = c.moe_tile_tokens
    padded = math.ceil(per_expert / tile) * tile if tile > 1 else per_expert
    return 2.0 * moe.params_per_expert * touched * padded / slices, padded


#: Bytes per activation element between a MoE layer's kernels (bf16).
MOE_ACTIVATION_BYTES = 2


def moe_activation_bytes(
    layer: LayerInfo, layout: Layout, load: StepLoad, c: Constants, *, hidden_size: int, fp8: bool
) -> float:
    """HBM bytes one GPU moves in the memory-bound passes between a MoE layer's two grouped GEMMs, per step.

    vLLM's and SGLang's fused MoE (vllm/model_executor/layers/fused_moe/fused_moe.py `fused_experts_impl`, copied
    by sglang/srt/layers/moe/fused_moe_triton/fused_moe.py) runs gate/up GEMM -> `silu_and_mul` -> down GEMM ->
    `moe_sum` as separate kernels. Per (token, expert) assignment on the GPU: the activation reads the gate/up
    output (2 x I/slices) and writes its half (I/slices); the top-k sum reads the down GEMM's output (hidden).
    Per token: the sum writes its output (hidden). With fp8 weights the input and the activation are quantised
    first (read bf16, write fp8). I is the expert's intermediate size, sliced over tp without expert parallelism;
    under it a GPU's assignments are its share of the stage's (the busiest GPU's, as in `_expert_work`). The
    GEMMs' own activation reads and writes overlap their arithmetic and are not counted."""
    moe = layer.moe
    if moe is None:
        return 0.0
    a = MOE_ACTIVATION_BYTES
    if layout.ep > 1:
        assignments = load.tokens * moe.top_k / layout.ep * c.moe_imbalance
        tokens = load.tokens / layout.ep
        inter = float(moe.intermediate_size)
    else:
        tokens = load.tokens / layout.dp
        assignments = tokens * moe.top_k
        inter = moe.intermediate_size / layout.tp
    per_assignment = 3 * inter * a + hidden_size * a + (1.5 * inter * a if fp8 else 0.0)
    per_token = hidden_size * a + (1.5 * hidden_size * a if fp8 else 0.0)
    return assignments * per_assignment + tokens * per_token


def _compute_s(layer: LayerInfo, ctx: StageContext, load: StepLoad) -> float:
    """Time of this node's matmuls and attention on one GPU at their kernels' efficiencies (not overlapped with memory)."""
    layout, c, hw = ctx.layout, ctx.constants, ctx.hw
    rank_tokens = load.tokens / layout.dp
    if layer.kind == "lm_head":
        logits = load.logit_tokens / layout.dp
        flops = logits * layer.decode_flops_per_token / layout.tp
        return flops / (hw.flops_per_s * _efficiency(c, logits, c.gemm_half_tokens))
    routed = 2.0 * layer.moe.params_per_expert * layer.moe.top_k if layer.moe is not None else 0.0
    dense = (layer.decode_flops_per_token - routed) * rank_tokens / layout.tp
    t = dense / (hw.flops_per_s * _efficiency(c, rank_tokens, c.gemm_half_tokens)) if dense > 0 else 0.0
    if layer.moe is not None and routed > 0:
        flops, padded = _expert_work(layer, layout, load, c)
        t += flops / (hw.flops_per_s * _efficiency(c, padded, c.gemm_half_tokens))
    decode_context = _window(layer, load.context) * (1.0 - load.attention_sparsity)
    per_gpu = layout.dp * layout.tp
    if load.prefill > 0:
        prefill_context = _window(layer, load.prefill_context)
        flops = layer.attn_flops_per_context_token * load.prefill * prefill_context / per_gpu
        rate = _efficiency(c, prefill_context, c.attention_half_context)
        rate *= head_dim_factor(ctx.profile.head_dim, prefill_context)
        t += flops / (hw.bf16_flops_per_s * rate)
    if load.decode > 0:
        if not layer.kv_sharded and c.mla_flops_efficiency > 0:
            # MLA decode runs absorbed: every query head scores and sums over the latent (about 4 x latent FLOPs)
            flops = 4.0 * ctx.profile.n_heads * layer.kv_elems_per_token * load.decode * decode_context / per_gpu
            t += flops / (hw.bf16_flops_per_s * c.mla_flops_efficiency)
        else:
            flops = layer.attn_flops_per_context_token * load.decode * decode_context / per_gpu
            t += flops / (hw.flops_per_s * c.flops_efficiency)
    return t


def layer_step(ctx: StageContext, layer: LayerInfo, load: StepLoad) -> tuple[float, float, float, float, float]:
    """(weight bytes, KV bytes, weights s, KV s, compute s beyond the memory time) on one GPU."""
    layout, profile, c, hw = ctx.layout, ctx.profile, ctx.constants, ctx.hw
    rank_tokens = load.tokens / layout.dp
    w = read_weight_bytes(
        layer, layout, profile, weight_dtype=ctx.weight_dtype, tokens=rank_tokens, stage_tokens=load.tokens
    )
    experts_w = 0.0
    if layer.moe is not None and "experts" in layer.shards and c.moe_hbm_efficiency > 0:
        experts_w = w - read_weight_bytes(
            layer, layout, profile, weight_dtype=ctx.weight_dtype, tokens=0.0, stage_tokens=0.0
        )
    w = sparse_read_bytes(
        layer, layout, profile, weight_dtype=ctx.weight_dtype, read=w, tokens=rank_tokens, sparsity=load
    )
    prefill_kv = load.prefill_kv_tokens
    if layer.sliding_window:
        prefill_kv = min(prefill_kv, load.prefill + layer.sliding_window)
    decode_kv = load.decode / load.queries * _window(layer, load.context) * (1.0 - load.attention_sparsity)
    kv_tokens = decode_kv + prefill_kv
    kv = kv_tokens / layout.dp * kv_bytes_per_token_per_gpu(layer, layout, profile, ctx.kv_dtype)
    bw = hw.hbm_bytes_per_s * c.hbm_efficiency
    weights_s = (w - experts_w) / bw
    if experts_w > 0:
        weights_s += experts_w / (hw.hbm_bytes_per_s * c.moe_hbm_efficiency)
    kv_s = kv / (hw.hbm_bytes_per_s * c.kv_hbm_efficiency)
    compute = _compute_s(layer, ctx, load)
    fp8 = ctx.weight_dtype == "fp8" and all(ctx.topo.gpu(g).spec.has_fp8 for g in ctx.gpu_ids)
    passes = moe_activation_bytes(layer, layout, load, c, hidden_size=profile.hidden_size, fp8=fp8)
    passes_s = passes / bw  # serial kernels, not hidden by the GEMMs
    return w, kv, weights_s, kv_s, max(0.0, compute - weights_s - kv_s) + passes_s


def tp_groups(gpu_ids: Sequence[int], layout: Layout) -> list[tuple[int, ...]]:
    """The tensor-parallel groups of a stage: consecutive runs of tp GPUs in rank order."""
    ids = list(gpu_ids)
    return [tuple(ids[k * layout.tp : (k + 1) * layout.tp]) for k in range(layout.dp)]


def _group_collective(
    topo: Topology, groups: list[tuple[int, ...]], nbytes: float, op: str, c: Constants
) -> tuple[float, dict[str, float]]:
    """The slowest group's time and every group's link bytes, for one collective on each group at once."""
    t, by_class = 0.0, {k: 0.0 for k in LINK_CLASSES}
    for ids in groups:
        if len(ids) < 2:
            continue
        t = max(t, engine_collective_s(topo, ids, nbytes, op, c))
        for k, v in collective_bytes_by_class(topo, ids, nbytes, op).items():
            by_class[k] += v
    return t, by_class


@dataclass(frozen=True)
class StageComm:
    """The collectives a stage runs per node kind in one step: (time s, link bytes by class) each."""

    allreduce: tuple[float, dict[str, float]]
    moe: tuple[float, dict[str, float]]
    logits: tuple[float, dict[str, float]]


def stage_comm(ctx: StageContext, load: StepLoad) -> StageComm:
    """The collectives of one step of `load` on the stage's GPUs, per node kind."""
    profile, topo, layout, c, gpu_ids = ctx.profile, ctx.topo, ctx.layout, ctx.constants, ctx.gpu_ids
    groups = tp_groups(gpu_ids, layout)
    rank_tokens = load.tokens / layout.dp
    ar = _group_collective(topo, groups, rank_tokens * profile.hidden_size * ACTIVATION_BYTES, "all-reduce", c)
    logits = _group_collective(
        topo, groups, load.logit_tokens / layout.dp * profile.vocab_size * ACTIVATION_BYTES, "all-gather", c
    )
    moe = ar
    if layout.ep > 1 and profile.moe is not None:
        # each GPU dispatches its share of the stage's tokens (tp GPUs of a rank split their rank's tokens)
        sent = load.tokens / layout.gpus * profile.moe.top_k * profile.hidden_size * c.moe_imbalance
        dispatch = _group_collective(
            topo, [tuple(gpu_ids)], sent * DISPATCH_BYTES.get(ctx.weight_dtype, 2), "all-to-all", c
        )
        combine = _group_collective(topo, [tuple(gpu_ids)], sent * ACTIVATION_BYTES, "all-to-all", c)
        moe = (
            dispatch[0] + combine[0] + 2 * c.ep_dispatch_latency_s,
            {k: dispatch[1][k] + combine[1][k] for k in LINK_CLASSES},
        )
    return StageComm(ar, moe, logits)


def _add_comm(out: StageStep, layer: LayerInfo, layout: Layout, comm: StageComm) -> None:
    if layer.kind == "decoder":
        parts = [comm.allreduce, comm.moe if (layer.moe is not None and layout.ep > 1) else comm.allreduce]
    elif layer.kind == "embedding":
        parts = [comm.allreduce]
    elif layer.kind == "lm_head":
        parts = [comm.logits]
    else:
        parts = []
    for t, by_class in parts:
        out.interconnect_s += t
        out.add_bytes(by_class)


def node_step(ctx: StageContext, layer: LayerInfo, comm: StageComm, load: StepLoad) -> StageStep:
    """One layer-graph node's share of a stage step."""
    out = StageStep()
    w, kv, out.weights_s, out.kv_s, out.compute_s = layer_step(ctx, layer, load)
    out.hbm_weight_bytes, out.hbm_kv_bytes = w, kv
    _add_comm(out, layer, ctx.layout, comm)
    if layer.kind == "decoder":
        out.overhead_s += ctx.constants.kernel_overhead_s_per_layer
        if layer.moe is not None:
            out.overhead_s += ctx.constants.moe_layer_overhead_s
        if ctx.layout.dp > 1:
            out.overhead_s += ctx.constants.dp_attention_overhead_s
    return out


def engine_overhead_s(load: StepLoad, c: Constants, *, dp: int = 1) -> float:
    """The engine's host time per step outside the kernels: a fixed part and a part per sequence sampled. Under
    attention data parallelism each of the `dp` ranks runs its own scheduler on its own sequences (SGLang's
    --enable-dp-attention starts one scheduler process per DP rank, vLLM's --data-parallel-size one engine core
    per rank), so a step's host time is one rank's: its share of the sequences."""
    return c.step_overhead_s + c.sequence_overhead_s * load.logit_tokens / dp


def add_steps(total: StageStep, part: StageStep, times: float = 1.0) -> StageStep:
    for name in (
        "weights_s",
        "kv_s",
        "compute_s",
        "interconnect_s",
        "overhead_s",
        "offload_s",
        "hbm_weight_bytes",
        "hbm_kv_bytes",
    ):
        setattr(total, name, getattr(total, name) + times * getattr(part, name))
    total.add_bytes(part.interconnect, times)
    return total


def stage_step(
    ctx: StageContext, *, layer_start: int, layer_end: int, first: bool, last: bool, load: StepLoad
) -> StageStep:
    """One step of a stage (decoder layers [layer_start, layer_end), embedding if first, head if last)."""
    comm = stage_comm(ctx, load)
    out = StageStep()
    layers = stage_nodes(ctx.profile, layer_start, layer_end, first, last)
    for layer in layers:
        add_steps(out, node_step(ctx, layer, comm, load))
    return floor_eager_prefill(out, layers, ctx.constants, load)


def floor_eager_prefill(step: StageStep, layers: Sequence[LayerInfo], c: Constants, load: StepLoad) -> StageStep:
    """`step` lasting at least the host's eager launches over `layers` where it carries prompt tokens
    (eager_host_s): the difference is added to its overhead."""
    if load.prefill > 0:
        step.overhead_s += max(0.0, eager_host_s(layers, c) - step.time_s)
    return step


def eager_host_s(layers: Sequence[LayerInfo], c: Constants) -> float:
    """The host time of an eager (not graph-replayed) prefill step over `layers`: the engine's Python and kernel
    launches per MoE layer. The GPU runs behind the host, so a step lasts the longer of the two. Dense layers carry
    none: the corpus's dense TTFT held out worsened with one (benchmarks/RESULTS.md, 'Fidelity notes')."""
    moe = sum(1 for layer in layers if layer.kind == "decoder" and layer.moe is not None)
    return moe * c.prefill_moe_host_s_per_layer
