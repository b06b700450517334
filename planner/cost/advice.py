"""When nothing fits: the shortfall per GPU and what would fit instead (dtypes, load, GPUs)."""

from __future__ import annotations

import math

from planner.cost.constants import Constants
from planner.cost.memory import usable_bytes
from planner.errors import InfeasibleError
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Workload
from planner.units import format_bytes


def infeasible_error(profile: ModelProfile, topo: Topology, partition: Partition, *, workload: Workload,
                     prediction: Prediction, c: Constants) -> InfeasibleError:
    """The shortfall per GPU in GB and what would fit."""
    if not prediction.shortfall_per_gpu_bytes:  # HBM holds; the host-memory tier does not
        short = {n: b for n, b in prediction.host_memory_bytes.items() if b > prediction.host_capacity_bytes.get(n, 0)}
        return InfeasibleError(
            f"{profile.name} on {partition.shape} of {topo.name}: the streamed layers do not fit in host memory",
            details=[f"node {n}: needs {b / 1e9:.2f} GB, its tier holds {prediction.host_capacity_bytes.get(n, 0) / 1e9:.2f}"
                     f" GB" for n, b in sorted(short.items())[:8]] + ["stream fewer layers (--offload-layers)"])
    worst = max(prediction.shortfall_per_gpu_bytes.values())
    details = [f"GPU {g}: needs {prediction.memory_per_gpu_bytes[g] / 1e9:.1f} GB, has "
               f"{prediction.memory_capacity_bytes[g] / 1e9:.1f} GB ({workload.gpu_memory_fraction:g} of "
               f"{topo.gpu(g).spec.memory_bytes / 1e9:.1f} GB): short by {s / 1e9:.1f} GB"
               for g, s in sorted(prediction.shortfall_per_gpu_bytes.items())[:8]]
    details += suggestions(profile, topo, partition.all_gpu_ids(), workload, c)
    return InfeasibleError(
        f"{profile.name} does not fit on {partition.shape} of {topo.name}: short by up to {worst / 1e9:.1f} GB per GPU",
        details=details)


def suggestions(profile: ModelProfile, topo: Topology, gpu_ids: list[int], workload: Workload,
                c: Constants) -> list[str]:
    """What would make the model fit: a smaller weight or KV dtype, fewer sequences, more GPUs."""
    out = []
    n_gpus = len(gpu_ids)
    cap = min(usable_bytes(topo.gpu(g).spec.memory_bytes, workload.gpu_memory_fraction, c) for g in gpu_ids)
    weights = {d: profile.weight_bytes(d) for d in ("bf16", "fp8", "int4")}
    kv_total = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens * workload.concurrency
    if workload.weight_dtype in ("bf16", "fp16"):
        need = (weights["fp8"] + kv_total) / n_gpus
        out.append(f"try --weight-dtype fp8: weights {weights['fp8'] / 1e9:.0f} GB instead of {weights['bf16'] / 1e9:.0f} GB"
                   + (" (fits)" if need <= cap else " (still short)"))
    if workload.kv_dtype in ("bf16", "fp16") and kv_total > 0.05 * cap * n_gpus:
        out.append(f"try --kv-dtype fp8: halves the KV cache ({format_bytes(kv_total)} at concurrency {workload.concurrency})")
    if workload.concurrency > 1:
        per = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens
        out.append(f"fewer concurrent sequences: each takes {per / 1e9:.2f} GB of KV")
    if cap > 0:
        gpus_needed = math.ceil((profile.weight_bytes(workload.weight_dtype) + kv_total) / cap)
        out.append(f"more GPUs: about {gpus_needed} x {topo.gpu(gpu_ids[0]).spec.name} hold the weights and KV")
    return out
