"""Checks on what a solve is asked, in the library: the API rejects what the CLI rejects."""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.model.checks import check_workload
from planner.model.layergraph import ModelProfile
from planner.plan import Workload

OBJECTIVES = ("latency", "throughput", "traffic")
MAX_TIME_LIMIT_S = 3600.0
MAX_PP = 64


@dataclass
class SolveOptions:
    objective: str = "latency"
    gpu_ids: list[int] | None = None
    gpus: int | None = None
    tpot_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    time_limit_s: float = 30.0
    top: int = 3
    max_pp: int | None = None
    max_replicas: int | None = None
    max_tp: int | None = None
    max_concurrency: int | None = None
    any_shape: bool = False
    offload: bool = False
    # filled in by check_options
    ids: list[int] | None = None
    budget: int = 0


def positive(name: str, value: float | None, *, high: float = math.inf, integer: bool = False) -> None:
    """None, or a finite number in (0, high]; else one line naming the option and its range."""
    if value is None:
        return
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
        or value <= 0 or value > high or (integer and int(value) != value)
    if bad:
        kind = "a whole number" if integer else "a number"
        upper = "" if high == math.inf else f" and at most {high:g}"
        raise InputError(f"{name} must be {kind} above 0{upper}, got {value!r}")


def _gpu_ids(topo: Topology, gpu_ids: list[int] | None) -> list[int]:
    if gpu_ids is None:
        return list(range(topo.n_gpus))
    ids = list(gpu_ids)
    if not ids:
        raise InputError("--gpu-ids: no GPU given")
    for g in ids:
        topo.gpu(g)
    if len(set(ids)) != len(ids):
        raise InputError(f"--gpu-ids: GPU ids repeat in {ids}")
    return sorted(ids)


def check_options(profile: ModelProfile, topo: Topology, workload: Workload, o: SolveOptions) -> SolveOptions:
    if o.objective not in OBJECTIVES:
        raise InputError(f"unknown objective '{o.objective}': choose one of {', '.join(OBJECTIVES)}")
    positive("--tpot-slo (ms)", o.tpot_slo_ms, high=1e7)
    positive("--ttft-slo (ms)", o.ttft_slo_ms, high=1e7)
    positive("--time-limit (s)", o.time_limit_s, high=MAX_TIME_LIMIT_S)
    for name, value, high in (("--max-pp", o.max_pp, MAX_PP), ("--max-tp", o.max_tp, 1024),
                              ("--max-replicas", o.max_replicas, 1 << 20), ("--max-concurrency", o.max_concurrency,
                                                                           1_000_000)):
        positive(name, value, high=high, integer=True)
    if isinstance(o.top, bool) or not isinstance(o.top, int) or not 0 <= o.top <= 100:
        raise InputError(f"--top must be a whole number from 0 to 100, got {o.top!r}")
    if o.gpus is not None and o.gpu_ids is not None:
        raise InputError("give --gpus or --gpu-ids, not both")
    o.ids = _gpu_ids(topo, o.gpu_ids)
    o.budget = len(o.ids)
    if o.gpus is not None:
        positive("--gpus", o.gpus, integer=True)
        if o.gpus > len(o.ids):
            raise InputError(f"--gpus {o.gpus}: {topo.name} has {len(o.ids)} GPUs")
        o.budget = o.gpus
    check_workload(profile, workload)
    if o.offload and not topo.has_host_memory(o.ids):
        raise InputError(f"--offload: no node of {topo.name} declares a host_memory tier (capacity and bandwidth per "
                         "socket; see docs/remedies.md)")
    if workload.mode == "closed" and o.objective == "throughput":
        raise InputError("--mode closed describes a closed-loop benchmark's waves; the throughput objective is "
                         "defined for serving (steady state) or static batches")
    o.max_pp = min(o.max_pp or 16, profile.n_layers, o.budget)
    limit = o.budget if o.objective == "throughput" else min(o.budget, workload.concurrency)
    o.max_replicas = min(o.max_replicas or o.budget, limit)
    return o
