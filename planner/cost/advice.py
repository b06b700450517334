"""When nothing fits: the shortfall per GPU and what would fit instead (dtypes, load, GPUs)."""

from __future__ import annotations

import math

from planner.cost.constants import Constants
from planner.cost.memory import usable_bytes
from planner.errors import InfeasibleError
from planner.hardware.gpus import GpuSpec
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Workload
from planner.units import format_bytes


def infeasible_error(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    workload: Workload,
    prediction: Prediction,
    c: Constants,
) -> InfeasibleError:
    """The shortfall per GPU in GB and what would fit."""
    if not prediction.shortfall_per_gpu_bytes:  # HBM holds; the host-memory tier does not
        short = {n: b for n, b in prediction.host_memory_bytes.items() if b > prediction.host_capacity_bytes.get(n, 0)}
        return InfeasibleError(
            f"{profile.name} on {partition.shape} of {topo.name}: the streamed layers do not fit in host memory",
            details=[
                f"node {n}: needs {b / 1e9:.2f} GB, its tier holds {prediction.host_capacity_bytes.get(n, 0) / 1e9:.2f}"
                f" GB"
                for n, b in sorted(short.items())[:8]
            ]
            + ["stream fewer layers (--offload-layers)"],
        )
    worst = max(prediction.shortfall_per_gpu_bytes.values())
    details = [
        f"GPU {g}: needs {prediction.memory_per_gpu_bytes[g] / 1e9:.1f} GB, has "
        f"{prediction.memory_capacity_bytes[g] / 1e9:.1f} GB ({workload.gpu_memory_fraction:g} of "
        f"{topo.gpu(g).spec.memory_bytes / 1e9:.1f} GB): short by {s / 1e9:.1f} GB"
        for g, s in sorted(prediction.shortfall_per_gpu_bytes.items())[:8]
    ]
    details += suggestions(profile, topo, partition.all_gpu_ids(), workload, c)
    return InfeasibleError(
        f"{profile.name} does not fit on {partition.shape} of {topo.name}: short by up to {worst / 1e9:.1f} GB per GPU",
        details=details,
    )


#: the weight dtypes a "does not fit" message tries, smallest last: each quantises more than the one before.
SMALLER_DTYPES = {
    "bf16": ("fp8", "int4", "mxfp4", "nvfp4"),
    "fp16": ("fp8", "int4", "mxfp4", "nvfp4"),
    "fp8": ("int4", "mxfp4", "nvfp4"),
    "int4": (),
    "mxfp4": ("int4", "nvfp4"),
    "nvfp4": (),
}


def dtype_offers(profile: ModelProfile, spec: GpuSpec, current: str) -> list[str]:
    """The weight dtypes worth trying on this GPU: fp8 and int4 run everywhere (fp8 weight-only without fp8 tensor
    cores); mxfp4 quantises only routed experts, so for MoE models, on GPUs with fp8 or fp4 units (gpt-oss's MXFP4 on
    Hopper: OpenAI's gpt-oss model card, "fits a single 80 GB GPU"); nvfp4 where the GPU has FP4 tensor cores."""
    out = []
    for d in SMALLER_DTYPES.get(current, ()):
        if d == "mxfp4" and (profile.moe is None or not (spec.has_fp8 or "mxfp4" in spec.flops_per_s)):
            continue
        if d == "nvfp4" and not (spec.vendor == "nvidia" and "nvfp4" in spec.flops_per_s):
            continue
        out.append(d)
    return out


def suggestions(
    profile: ModelProfile, topo: Topology, gpu_ids: list[int], workload: Workload, c: Constants
) -> list[str]:
    """What would make the model fit: every smaller weight dtype that fits (and those still short), fp8 KV, fewer
    sequences, streaming from host memory, more GPUs."""
    out = []
    n_gpus = len(gpu_ids)
    spec = topo.gpu(gpu_ids[0]).spec
    cap = min(usable_bytes(topo.gpu(g).spec.memory_bytes, workload.gpu_memory_fraction, c) for g in gpu_ids)
    kv_total = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens * workload.concurrency
    weights = {
        d: profile.weight_bytes(d) for d in [workload.weight_dtype, *dtype_offers(profile, spec, workload.weight_dtype)]
    }
    offers = [d for d in weights if d != workload.weight_dtype]
    fits = [d for d in offers if (weights[d] + kv_total) / n_gpus <= cap]
    short = [d for d in offers if d not in fits]
    only = f", weight-only: {spec.name} has no fp8 tensor cores" if not spec.has_fp8 else ""
    label = {d: f"--weight-dtype {d} (weights {format_bytes(weights[d])}{only if d == 'fp8' else ''})" for d in offers}
    if fits:
        out.append("fits with " + ", ".join(label[d] for d in fits))
    if short:
        out.append("still short with " + ", ".join(label[d] for d in short))
    if workload.kv_dtype in ("bf16", "fp16") and kv_total > 0.05 * cap * n_gpus:
        out.append(
            f"try --kv-dtype fp8: halves the KV cache ({format_bytes(kv_total)} at concurrency {workload.concurrency})"
        )
    if workload.concurrency > 1:
        per = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens
        out.append(f"fewer concurrent sequences: each takes {per / 1e9:.2f} GB of KV")
    out.append(_offload_offer(topo, gpu_ids, weights[workload.weight_dtype] + kv_total, cap * n_gpus))
    if cap > 0:
        counts = {d: math.ceil((weights[d] + kv_total) / cap) for d in [workload.weight_dtype, *fits[:1]]}
        out.append(
            "more GPUs: about "
            + ", ".join(f"{n} x {spec.name} at {d}" for d, n in counts.items())
            + " hold the weights and KV"
        )
    return out


def _offload_offer(topo: Topology, gpu_ids: list[int], need_bytes: float, hbm_bytes: float) -> str:
    """--offload where a host-memory tier holds what HBM does not; else what the topology file would need."""
    tiers = {topo.gpu(g).node: topo.host_memory(g) for g in gpu_ids if topo.host_memory(g) is not None}
    if not tiers:
        return (
            "--offload (solve; estimate: --offload-layers) streams layers from host memory: this topology has no "
            "host-memory tier (add host_memory: {capacity, bandwidth} to its nodes)"
        )
    host = sum(t.capacity for t in tiers.values())
    verdict = "fits" if need_bytes - hbm_bytes <= host else "still short"
    return (
        f"--offload (solve; estimate: --offload-layers): stream layers from host memory ({format_bytes(host)} on {len(tiers)} node"
        f"{'s' if len(tiers) != 1 else ''}; {verdict}, every step then reads the streamed layers over PCIe)"
    )
