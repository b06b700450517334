"""The checks on what a solve is asked, and what it derives from them.

`SolveOptions` (planner.solve.options) is frozen: the GPUs, budget and limits a solve derives from it and the
machine are a separate frozen `Scope`, not fields written back into the options.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.model.checks import check_workload
from planner.model.layergraph import ModelProfile
from planner.plan import Workload
from planner.solve.options import Objective, SolveOptions

__all__ = ["Objective", "Scope", "SolveOptions", "check_options"]


@dataclass(frozen=True)
class Scope:
    """What a solve derives from its options and the machine: the GPUs offered, how many a plan may use, and the
    pipeline depth and replica count it searches."""

    ids: tuple[int, ...]
    budget: int
    max_pp: int
    max_replicas: int


def _gpu_ids(topo: Topology, gpu_ids: list[int] | None) -> list[int]:
    if gpu_ids is None:
        return list(range(topo.n_gpus))
    ids = list(gpu_ids)
    for g in ids:
        topo.gpu(g)
    if len(set(ids)) != len(ids):
        raise InputError(f"--gpu-ids: GPU ids repeat in {ids}")
    return sorted(ids)


def check_options(profile: ModelProfile, topo: Topology, workload: Workload, o: SolveOptions) -> Scope:
    """The scope of a solve; one line naming the option where the options do not fit this model or machine."""
    if o.gpus is not None and o.gpu_ids is not None:
        raise InputError("give --gpus or --gpu-ids, not both")
    ids = _gpu_ids(topo, o.gpu_ids)
    if o.gpus is not None and o.gpus > len(ids):
        raise InputError(f"--gpus {o.gpus}: {topo.name} has {len(ids)} GPUs")
    budget = len(ids) if o.gpus is None else o.gpus
    check_workload(profile, workload)
    if o.offload and not topo.has_host_memory(ids):
        raise InputError(
            f"--offload: no node of {topo.name} declares a host_memory tier (capacity and bandwidth per "
            "socket; see docs/remedies.md)"
        )
    if workload.mode == "closed" and o.objective == Objective.THROUGHPUT:
        raise InputError(
            "--mode closed describes a closed-loop benchmark's waves; the throughput objective is "
            "defined for serving (steady state) or static batches"
        )
    limit = budget if o.objective == Objective.THROUGHPUT else min(budget, workload.concurrency)
    return Scope(
        ids=tuple(ids),
        budget=budget,
        max_pp=min(o.max_pp or 16, profile.n_layers, budget),
        max_replicas=min(o.max_replicas or budget, limit),
    )
