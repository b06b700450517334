"""The shape loop: replicas x pipeline depth x layout (x GPUs per replica), and what each shape offers.

A shape fixes the replica count R, the pipeline depth PP and, for the plans engines run, one layout
(tp, dp, ep) for every stage (so a replica uses PP x tp x dp GPUs). With `any_shape` the stages may
mix layouts and a replica's GPU count is looped over instead. For R > 1 a shape lives on one slot
system per isomorphism class (planner.solve.slots); the CP-SAT model plans replica 0 in slot 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.cost.shards import Layout
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.solve.candidates import CandidateSet, candidates
from planner.solve.layouts import layouts_for
from planner.solve.slots import SlotSystem, slot_systems


@dataclass(frozen=True)
class Shape:
    replicas: int
    pp: int
    gpus: int  # GPUs per replica: exactly (R > 1 or a fixed layout), or at most (one replica, mixed layouts)
    exact_gpus: bool
    layout: Layout | None  # every stage's layout, or None: stages may differ
    system: SlotSystem

    @property
    def label(self) -> str:
        lay = "mixed" if self.layout is None else (f"TP{self.layout.tp}" + (f"xDP{self.layout.dp}" if self.layout.dp > 1
                                                                              else "")
                                                   + (f"+EP{self.layout.ep}" if self.layout.ep > 1 else ""))
        return f"{lay} x PP{self.pp} x R{self.replicas}"


@dataclass(frozen=True)
class Limits:
    max_pp: int
    max_tp: int | None
    max_replicas: int
    budget: int  # GPUs the plan may use
    any_shape: bool


def _layouts(profile: ModelProfile, sizes: range, max_tp: int | None) -> dict[int, list[Layout]]:
    return {n: layouts_for(profile, n, max_tp) for n in sizes}


def enumerate_shapes(profile: ModelProfile, topo: Topology, ids: list[int], lim: Limits) -> tuple[list[Shape], bool]:
    """Every shape to try, and whether the slot systems behind them are exhaustive."""
    shapes: list[Shape] = []
    exact = True
    widest = max(len(g) for g in topo.node_gpus().values())  # a stage's GPUs share one node
    layouts = _layouts(profile, range(1, min(lim.budget, widest) + 1), lim.max_tp)
    for r in range(1, lim.max_replicas + 1):
        per = lim.budget // r
        if per < 1:
            break
        for pp in range(1, min(lim.max_pp, profile.n_layers, per) + 1):
            if lim.any_shape:
                sizes = [per] if r == 1 else range(pp, per + 1)
                for size in sizes:
                    systems, ok = slot_systems(topo, ids, r, size) if r > 1 else slot_systems(topo, ids, 1, size)
                    exact &= ok
                    shapes += [Shape(r, pp, size, r > 1, None, sys) for sys in systems]
                continue
            for width, lays in layouts.items():
                if pp * width > per or not lays or (pp > 1 and all(lay.dp > 1 for lay in lays)):
                    continue
                systems, ok = slot_systems(topo, ids, r, pp * width)
                exact &= ok
                for lay in lays:
                    if pp > 1 and lay.dp > 1:
                        continue  # engines run attention data parallelism without pipeline stages
                    shapes += [Shape(r, pp, pp * width, True, lay, sys) for sys in systems]
    return shapes, exact


def shape_candidates(profile: ModelProfile, topo: Topology, shape: Shape, max_tp: int | None) -> CandidateSet:
    """Stage configurations of replica 0 (inside slot 0) for this shape."""
    slot = list(shape.system.slots[0])
    if shape.layout is not None:
        layouts = {shape.layout.gpus: [shape.layout]}
    else:
        widest = max(len(g) for g in topo.node_gpus().values())
        layouts = _layouts(profile, range(1, min(shape.gpus, widest) + 1), max_tp)
    return candidates(topo, slot, layouts, max_nodes=shape.pp)
