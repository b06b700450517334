"""Throughput at scale: replica classes on identical nodes.

On a machine whose offered GPUs are whole copies of one symmetric node (every node of one class, each one
NVSwitch domain or an equal mesh, nodes joined by one fabric) the throughput optimum of the plan space
(R identical replicas on disjoint, mutually isomorphic slots) needs no search over R:

- A replica's plan and its per-replica load do not depend on R: the CP-SAT model plans replica 0 in slot 0,
  and a replica's step mix depends only on the sequences it carries (planner.cost.serving). So a shape
  (PP, layout, k = PP x tp x dp GPUs) reaches R x t1 tokens/s, t1 the best one replica reaches on one slot,
  and R x t1 grows with R: the most replicas that fit is the best count. Only the replica's shape is searched
  (a few dozen shapes, whatever the machine's size), each on its first slot.
- Slots packed inside one node (k divides the node) or made of whole nodes (k a multiple of it) are
  exhaustive: every route inside a node is at least as fast as one across nodes (checked), so a replica
  spread over more nodes than it needs is never better, and these slots fit budget // k replicas.
- Other sizes (k = 3, 5, 6, 7, 12 ... on 8-GPU nodes) fit fewer packed slots than budget // k. Their bound
  is taken with budget // k replicas; where it cannot beat the best plan the shape is settled exactly,
  otherwise the shape is solved on the packed slots and the answer is marked FEASIBLE.
- With a load cap (`max_concurrency` M), a replica carries at most M // R sequences; for each value of
  M // R the largest R is the best, so only those R are tried.

Where it is not exact, and why the present search stays there: machines of different node types (slots of
different classes are not isomorphic: planner.solve.slots), nodes that are not symmetric inside (which GPUs a
slot takes matters), a subset of a node's GPUs offered on some nodes only. What couples replicas and is not
modelled: each replica is priced on its own routes, as the present search prices them. Packed and whole-node
slots share no link (NVSwitch is non-blocking and a whole-node replica owns its NIC rails); slots that straddle
nodes would share NIC rails and fabric ports with their neighbours, which the cost model does not see.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.solve.candidates import symmetric
from planner.solve.formulation import CAPACITY_MAX, SolverBudget
from planner.solve.layouts import layouts_for
from planner.solve.objectives import ShapeResult, ShapeSolver, _tokens_bound, solve_throughput, step_budget_limit
from planner.solve.shapes import Shape, ShapeBounds, shape_candidates
from planner.solve.slots import SlotSystem, _inside_beats_across
from planner.solve.uniform import uniform_capacity


@dataclass(frozen=True)
class ReplicaShape:
    """One replica shape at one replica count, and the most replicas any slot system of its size could hold."""

    shape: Shape
    most: int  # budget // k (capped): bounds every placement; equal to shape.replicas when the slots are exact

    @property
    def exact(self) -> bool:
        return self.most == self.shape.replicas


def _by_node(topo: Topology, ids: list[int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for g in sorted(ids, key=lambda i: (topo.gpus[i].node_index, i)):
        out.setdefault(topo.gpus[g].node, []).append(g)
    return out


def regular(topo: Topology, ids: list[int]) -> bool:
    """Whether the offered GPUs are copies of one symmetric node, the same GPUs of each, and the inside of a node is
    at least as fast as the way across."""
    nodes = _by_node(topo, ids)
    kinds = {(topo.node_class[n], tuple(topo.gpus[i].local_index for i in gpus)) for n, gpus in nodes.items()}
    if len(kinds) != 1:
        return False
    first = next(iter(nodes.values()))
    return symmetric(topo, first) and _inside_beats_across(topo, nodes)


def node_types(topo: Topology, ids: list[int]) -> dict[str, list[int]]:
    """The offered GPUs by node type (node entry of the topology), where there are several and each is `regular`;
    empty otherwise (one type, or a type whose nodes differ: the present search stays)."""
    out: dict[str, list[int]] = {}
    for g in ids:
        node = topo.gpus[g].node
        entry = topo.definition.nodes[topo.node_class[node]]
        out.setdefault(entry.name, []).append(g)
    if len(out) < 2 or not all(regular(topo, part) for part in out.values()):
        return {}
    return out


def replica_counts(fit: int, max_concurrency: int | None) -> list[int]:
    """The replica counts worth trying: the most that fit; under a load cap M, the largest R for each M // R."""
    if max_concurrency is None:
        return [fit]
    best: dict[int, int] = {}
    for r in range(1, min(fit, max_concurrency) + 1):
        best[max_concurrency // r] = r
    return sorted(set(best.values()), reverse=True)


def _slots(nodes: list[list[int]], size: int, replicas: int) -> SlotSystem:
    """`replicas` slots of `size` GPUs: blocks inside each node, or whole nodes, or (other sizes) each slot on
    its own ceil(size / node) nodes, first GPUs first. Local positions map to local positions, so every route
    maps onto the corresponding route (identical symmetric nodes, rails by local position)."""
    per_node = len(nodes[0])
    if size <= per_node:
        slots = [tuple(n[k * size : (k + 1) * size]) for n in nodes for k in range(per_node // size)]
    else:
        j = math.ceil(size / per_node)
        slots = [tuple([g for n in nodes[k * j : (k + 1) * j] for g in n][:size]) for k in range(len(nodes) // j)]
    chosen = slots[:replicas]
    return SlotSystem(tuple(chosen), tuple(dict(zip(chosen[0], s)) for s in chosen))


def _fit(n_nodes: int, per_node: int, size: int) -> int:
    if size <= per_node:
        return n_nodes * (per_node // size)
    return n_nodes // math.ceil(size / per_node)


def _pieces(per_node: int, size: int, width: int) -> list[int] | None:
    """A slot of `size` GPUs as whole nodes and pieces that divide the node (largest first), each a multiple of the
    stage width: 14 = 8 + 4 + 2 on 8-GPU nodes. Pieces of one size tile their nodes, so slots use size / node
    nodes each. None where the remainder does not split so."""
    out = [per_node] * (size // per_node)
    rest = size % per_node
    for p in sorted((d for d in range(width, per_node) if per_node % d == 0 and d % width == 0), reverse=True):
        while rest >= p:
            out.append(p)
            rest -= p
    return out if rest == 0 and len(out) > 1 else None


def _piece_offsets(per_node: int, n_nodes: int, rest: list[int], replicas: int) -> list[list[int]] | None:
    """Where each replica's pieces (sizes `rest`, largest first) lie among the GPUs of `n_nodes` nodes taken in
    order: every replica's largest piece, then every replica's next piece, contiguously, a piece never crossing
    into the next node (it starts that node instead). Pieces that divide the node in decreasing size leave no
    hole, so `replicas` x sum(rest) GPUs suffice. None where they do not fit."""
    at = 0
    out: list[list[int]] = [[] for _ in range(replicas)]
    for k in sorted(range(len(rest)), key=lambda i: -rest[i]):
        for r in range(replicas):
            p = rest[k]
            if at // per_node != (at + p - 1) // per_node:
                at = (at // per_node + 1) * per_node
            out[r].append(at)
            at += p
    return out if at <= n_nodes * per_node else None


def _pieces_fit(n_nodes: int, per_node: int, pieces: list[int], most: int) -> int:
    """The most replicas (up to `most`) whose pieces fit: whole nodes first, then the pieces packed in turn."""
    full = pieces.count(per_node)
    rest = [p for p in pieces if p < per_node]

    def fits(r: int) -> bool:
        return r * full <= n_nodes and _piece_offsets(per_node, n_nodes - r * full, rest, r) is not None

    lo, hi = 0, most
    while lo < hi:  # fitting is monotone in the count: each block of pieces ends no earlier with more replicas
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _route_sig(topo: Topology, a: int, b: int) -> tuple:
    r = topo.path(a, b)
    return (r.kinds, r.bandwidth_bytes_per_s, r.latency_s, r.staged)


def _piece_slots(topo: Topology, nodes: list[list[int]], pieces: list[int], replicas: int) -> SlotSystem | None:
    """`replicas` slots of whole nodes and pieces (planner.solve.cluster._piece_offsets: the pieces of different
    replicas share nodes, so budget // size replicas fit); slot r maps onto slot 0 position by position. Stages run
    on pools (one NVSwitch domain: any GPUs of it cost the same) and hand-offs are priced by pair of nodes, so
    routes equal pair by pair (checked) give every cost the model computes; a replica with two pieces on one node
    differs from slot 0 and fails the check."""
    per_node = len(nodes[0])
    full = pieces.count(per_node)
    rest = [p for p in pieces if p < per_node]
    offsets = _piece_offsets(per_node, len(nodes) - replicas * full, rest, replicas)
    if offsets is None:
        return None
    spare = [g for n in nodes[replicas * full :] for g in n]
    slots: list[list[int]] = []
    for r in range(replicas):
        mine = [g for n in nodes[r * full : (r + 1) * full] for g in n]
        for k in sorted(range(len(rest)), key=lambda i: -rest[i]):
            mine += spare[offsets[r][k] : offsets[r][k] + rest[k]]
        slots.append(mine)
    # every route of slot r has the kinds, bandwidth and latency of slot 0's matching route; a route's signature is
    # taken once per (local positions, same node or not), as identical nodes on one fabric give every pair of nodes
    # the same routes by local position (the rails)
    sig: dict[tuple[int, int, bool], tuple] = {}

    def kind(a: int, b: int) -> tuple:
        ga, gb = topo.gpus[a], topo.gpus[b]
        key = (ga.local_index, gb.local_index, ga.node == gb.node)
        if key not in sig:
            sig[key] = _route_sig(topo, a, b)
        return sig[key]

    first = [[kind(a, b) if a != b else None for b in slots[0]] for a in slots[0]]
    for sl in slots[1:]:
        if any(kind(a, b) != first[i][j] for i, a in enumerate(sl) for j, b in enumerate(sl) if i != j):
            return None
    maps = [dict(zip(slots[0], sl)) for sl in slots]
    return SlotSystem(tuple(tuple(sl) for sl in slots), tuple(maps))


def replica_shapes(
    profile: ModelProfile, topo: Topology, ids: list[int], lim: ShapeBounds, max_concurrency: int | None
) -> list[ReplicaShape]:
    """Every engine-runnable replica shape (PP, one layout) at the replica counts worth trying."""
    nodes = list(_by_node(topo, ids).values())
    per_node = len(nodes[0])
    layouts = {w: layouts_for(profile, w, lim.max_tp) for w in range(1, min(per_node, lim.budget) + 1)}
    out = []
    for pp in range(1, min(lim.max_pp, profile.n_layers, lim.budget) + 1):
        for width, lays in layouts.items():
            size = pp * width
            if size > lim.budget:
                continue
            most = min(lim.budget // size, lim.max_replicas)
            fit = min(_fit(len(nodes), per_node, size), most)
            if fit < 1:
                continue
            pieces = _pieces(per_node, size, width) if size % per_node and fit < most else None
            fit_pieces = 0 if pieces is None else _pieces_fit(len(nodes), per_node, pieces, most)
            for lay in lays:
                if pp > 1 and lay.dp > 1:  # engines run attention data parallelism without pipeline stages
                    continue
                for r in replica_counts(fit, max_concurrency):
                    system = _slots(nodes, size, r)
                    bound_r = most if r == fit else r  # a smaller count under a load cap is tried as it is
                    out.append(ReplicaShape(Shape(r, pp, size, True, lay, system, exact_slots=True), bound_r))
                if fit_pieces > fit and max_concurrency is None:
                    # more replicas on slots that straddle nodes in pieces (their hand-offs cross nodes)
                    system = _piece_slots(topo, nodes, pieces, fit_pieces)
                    if system is not None:
                        out.append(ReplicaShape(Shape(fit_pieces, pp, size, True, lay, system, exact_slots=True), most))
    return out


def capacity_bound(sv: ShapeSolver) -> int:
    """Sequences one replica of the shape can hold at most, without a search: the stage with the most layers has
    at least ceil(L / PP) of them, each at least the cheapest run's weights and KV, on its configuration's
    usable memory (times its attention data-parallel ranks); exact where every configuration holds the same
    bytes (planner.solve.uniform)."""
    held = uniform_capacity(
        sv.cands.configs,
        sv.coefs(sv.op(1)),
        sv.cands.pools,
        runs=sv.req.runs,
        n_layers=sv.req.profile.n_layers,
        pp=sv.shape.pp,
    )
    if held is not None:
        return held
    n = math.ceil(sv.req.profile.n_layers / sv.shape.pp)
    best = 0
    for cfg, k in zip(sv.cands.configs, sv.coefs(sv.op(1))):
        room = k.capacity_bytes - n * min(k.weight_bytes)
        if room < 0:
            continue
        kv = n * min(k.kv_bytes)
        best = max(best, cfg.layout.dp * (CAPACITY_MAX if kv <= 0 else room // kv))
    return min(best, CAPACITY_MAX)


def tokens_bound(sv: ShapeSolver, replicas: int) -> float:
    """The most tokens/s `replicas` replicas of the shape reach, on any slots of its size, without a CP-SAT call:
    the capacity bound within the step budget and the load cap, at the TPOT lower bound there."""
    wide = ShapeSolver(sv.req, replace(sv.shape, replicas=replicas), sv.cands)
    cap = capacity_bound(wide)
    if sv.req.options.max_concurrency is not None:
        cap = min(cap, max(1, sv.req.options.max_concurrency // replicas))
    cap = step_budget_limit(wide, cap) if cap >= 1 else 0
    return 0.0 if cap < 1 else -_tokens_bound(wide, cap)


def maximal_pieces(size: int, per_node: int, width: int) -> list[tuple[int, ...]]:
    """The ways a slot of `size` GPUs can lie over nodes, up to refinement: parts (GPUs on one node, multiples of
    the stage width, at most a node) in non-increasing order, no two of which would fit one node together. Every
    other way refines one of these (merge two parts that fit a node, repeatedly), and a refinement is never faster:
    its routes are those of the coarser way or slower (inside a node beats across, `regular`)."""
    out: list[tuple[int, ...]] = []

    def grow(parts: tuple[int, ...], left: int) -> None:
        if left == 0:
            if all(a + b > per_node for a, b in itertools.combinations(parts, 2)):
                out.append(parts)
            return
        for p in range(min(left, parts[-1] if parts else per_node), 0, -1):
            if p % width == 0:
                grow((*parts, p), left - p)

    grow((), size)
    return out


def _spread_slot(nodes: list[list[int]], parts: tuple[int, ...]) -> tuple[int, ...] | None:
    """One slot with part i on node i (first GPUs first); None where the machine has too few nodes."""
    if len(parts) > len(nodes):
        return None
    return tuple(g for node, p in zip(nodes, parts) for g in node[:p])


def _best_on(
    sv: ShapeSolver, shape: Shape, forms: Sequence[tuple[int, ...]], nodes: list[list[int]], limits: SolverBudget
) -> float | None:
    """The most tokens/s one replica of `shape` reaches over the slot forms `forms` (parts on distinct nodes), each
    solved on one slot; None where a solve leaves no bound."""
    best = 0.0
    for parts in forms:
        slot = _spread_slot(nodes, parts)
        if slot is None:
            continue
        one = replace(shape, replicas=1, system=SlotSystem((slot,), ({g: g for g in slot},)))
        res = solve_throughput(
            ShapeSolver(sv.req, one, shape_candidates(sv.req.profile, sv.req.topo, one, sv.req.options.max_tp)),
            limits,
            None,
        )
        if res.status in ("UNKNOWN", "FEASIBLE") and not math.isfinite(res.bound):
            return None
        if res.status in ("OPTIMAL", "FEASIBLE"):
            best = max(best, -res.bound)
    return best


def placement_bound(
    sv: ShapeSolver, rs: ReplicaShape, res: ShapeResult, limits: SolverBudget, *, ids: list[int]
) -> float:
    """The most tokens/s any placement of up to `rs.most` identical replicas of the shape reaches, given `res`, its
    solve on the packed slots (`sv`, rs.shape.replicas of them), on the offered GPUs `ids`. Without a load cap a
    replica's best does not depend on the count (module docstring):
    - a replica that fits a node: the packed slot (every route inside) is the fastest form, so rs.most x its best.
      (Tighter would count per form: on 8 nodes a 7-GPU replica inside a node is 1.1% faster than one spread
      4 + 2 + 1, but only 8 fit inside nodes while 9 fit spread; which spread forms pack 9 times is a packing
      question this bound does not ask, so 64 GPUs stay FEASIBLE at a 1.1% gap.)
    - a replica over several nodes: rs.most x the best over the forms no other refines (maximal_pieces).
    Under a load cap the per-replica load depends on the count: the cheap bound at rs.most (tokens_bound)."""
    cheap = tokens_bound(sv, rs.most)
    if sv.req.options.max_concurrency is not None or not math.isfinite(res.bound) or rs.shape.layout is None:
        return cheap
    shape, nodes = rs.shape, list(_by_node(sv.req.topo, ids).values())
    per_node, width = len(nodes[0]), shape.gpus // shape.pp
    if shape.gpus <= per_node:
        return min(cheap, rs.most * -res.bound / shape.replicas)
    best = _best_on(sv, shape, maximal_pieces(shape.gpus, per_node, width), nodes, limits)
    return cheap if best is None else min(cheap, rs.most * max(best, -res.bound / shape.replicas))
