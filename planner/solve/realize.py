"""From a CP-SAT assignment to a Partition: concrete GPU ids for pool stages, streamed layers, the replicas' copies."""

from __future__ import annotations

from planner.plan import Partition, Stage
from planner.solve.formulation import SolvedStage as Solved
from planner.solve.slots import SlotSystem


def streamed_layers(solved: Solved, runs: list[tuple[int, int]]) -> list[int]:
    """The layers a stage streams from host memory: of each run, the last `streamed[r]` of the stage's layers in it
    (layers of a run cost the same, so which ones is immaterial; the last ones keep the first layers resident)."""
    out: list[int] = []
    for count, (_, hi) in zip(solved.streamed, runs):
        end = min(hi, solved.layer_end)
        out += range(end - count, end) if count else []
    return sorted(out)


def partition_of(
    stages: list[Solved], pools: dict[str, list[int]], system: SlotSystem, runs: list[tuple[int, int]]
) -> Partition:
    """Pool stages take their pool's GPUs in stage order; replica r maps replica 0's GPUs through slot r."""
    taken: dict[str, int] = {}
    out = []
    for solved in stages:
        cfg = solved.config
        if cfg.pool is not None:
            k = taken.get(cfg.pool, 0)
            ids = pools[cfg.pool][k : k + cfg.size]
            taken[cfg.pool] = k + cfg.size
        else:
            ids = list(cfg.gpu_ids)
        lay = cfg.layout
        out.append(
            Stage(
                layer_start=solved.layer_start,
                layer_end=solved.layer_end,
                gpu_ids=list(ids),
                tp=lay.tp,
                dp=lay.dp,
                ep=lay.ep,
                offload_layers=streamed_layers(solved, runs),
            )
        )
    if system.replicas == 1:
        return Partition(stages=out)
    reps = [[[m[g] for g in st.gpu_ids] for st in out] for m in system.maps]
    return Partition(stages=out, replicas=system.replicas, replica_gpu_ids=reps)
