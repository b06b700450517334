"""The shape loop: replicas x pipeline depth x layout (x GPUs per replica), and what each shape offers.

A shape fixes the replica count R, the pipeline depth PP and, for the plans engines run, one layout
(tp, dp, ep) for every stage (so a replica uses PP x tp x dp GPUs). With `any_shape` the stages may
mix layouts and a replica's GPU count is looped over instead. For R > 1 a shape lives on one slot
system per isomorphism class (planner.solve.slots); the CP-SAT model plans replica 0 in slot 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from planner.cost.shards import Layout
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import layout_label
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
    system: SlotSystem | None  # None: no slot system was found, though one may exist (exact_slots is False)
    exact_slots: bool = True  # the slot systems of this (R, GPUs) are every one up to isomorphism

    @property
    def label(self) -> str:
        lay = "mixed" if self.layout is None else layout_label(self.layout.tp, self.layout.dp, self.layout.ep)
        return f"{lay} x PP{self.pp} x R{self.replicas}"


@dataclass(frozen=True, kw_only=True)
class ShapeBounds:
    """What the shape loop may offer: the deepest pipeline, widest TP group, most replicas and GPUs."""

    max_pp: int
    max_tp: int | None
    max_replicas: int
    budget: int  # GPUs the plan may use
    any_shape: bool


def _layouts(profile: ModelProfile, sizes: range, max_tp: int | None) -> dict[int, list[Layout]]:
    return {n: layouts_for(profile, n, max_tp) for n in sizes}


def enumerate_shapes(
    profile: ModelProfile, topo: Topology, ids: list[int], lim: ShapeBounds, stop: Callable[[], bool] | None = None
) -> list[Shape]:
    """Every shape to try. Where the slot systems of an (R, GPUs) pair are not known to be exhaustive, its
    shapes say so (`exact_slots=False`); with no system found, one stand-in shape (`system=None`) remains.
    `stop()` true (the command's deadline) ends the enumeration at the next replica count: the shapes of
    larger counts are not offered, and the caller says so. One replica's shapes are always listed, however short
    the limit: like the deadline (not armed before a first plan), the listing must leave something to solve."""
    shapes: list[Shape] = []
    widest = max(len(g) for g in topo.node_gpus().values())  # a stage's GPUs share one node
    layouts = _layouts(profile, range(1, min(lim.budget, widest) + 1), lim.max_tp)
    for r in range(1, lim.max_replicas + 1):
        per = lim.budget // r
        if per < 1 or (r > 1 and stop is not None and stop()):
            break
        for pp in range(1, min(lim.max_pp, profile.n_layers, per) + 1):
            if lim.any_shape:
                for size in [per] if r == 1 else range(pp, per + 1):
                    shapes += _on_slots(topo, ids, r, pp=pp, size=size, layout=None)
                continue
            for width, lays in layouts.items():
                if pp * width > per or not lays:
                    continue
                for lay in lays:
                    if pp == 1 or lay.dp == 1:  # engines run attention data parallelism without pipeline stages
                        shapes += _on_slots(topo, ids, r, pp=pp, size=pp * width, layout=lay)
    return shapes


def _on_slots(topo: Topology, ids: list[int], r: int, *, pp: int, size: int, layout: Layout | None) -> list[Shape]:
    systems, exact = slot_systems(topo, ids, r, size)
    exact_gpus = r > 1 or layout is not None
    if not systems and not exact:
        return [Shape(r, pp, size, exact_gpus, layout, None, exact_slots=False)]
    return [Shape(r, pp, size, exact_gpus, layout, sys_, exact_slots=exact) for sys_ in systems]


def shape_candidates(profile: ModelProfile, topo: Topology, shape: Shape, max_tp: int | None) -> CandidateSet:
    """Stage configurations of replica 0 (inside slot 0) for this shape."""
    assert shape.system is not None, "a stand-in shape has no slots: relax it first"
    slot = list(shape.system.slots[0])
    if shape.layout is not None:
        layouts = {shape.layout.gpus: [shape.layout]}
    else:
        widest = max(len(g) for g in topo.node_gpus().values())
        layouts = _layouts(profile, range(1, min(shape.gpus, widest) + 1), max_tp)
    return candidates(topo, slot, layouts, max_nodes=shape.pp)
