"""From a CP-SAT assignment to a Partition: concrete GPU ids for pool stages, then the replicas' copies."""

from __future__ import annotations

from planner.plan import Partition, Stage
from planner.solve.candidates import Config
from planner.solve.slots import SlotSystem


def partition_of(stages: list[tuple[Config, int, int]], pools: dict[str, list[int]], system: SlotSystem) -> Partition:
    """Pool stages take their pool's GPUs in stage order; replica r maps replica 0's GPUs through slot r."""
    taken: dict[str, int] = {}
    out = []
    for cfg, start, end in stages:
        if cfg.pool is not None:
            k = taken.get(cfg.pool, 0)
            ids = pools[cfg.pool][k:k + cfg.size]
            taken[cfg.pool] = k + cfg.size
        else:
            ids = list(cfg.gpu_ids)
        lay = cfg.layout
        out.append(Stage(layer_start=start, layer_end=end, gpu_ids=list(ids), tp=lay.tp, dp=lay.dp, ep=lay.ep))
    if system.replicas == 1:
        return Partition(stages=out)
    reps = [[[m[g] for g in st.gpu_ids] for st in out] for m in system.maps]
    return Partition(stages=out, replicas=system.replicas, replica_gpu_ids=reps)
