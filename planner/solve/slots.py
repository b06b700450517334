"""Replica slots: where R identical copies of one replica's plan can run.

A replicated plan runs R copies of one replica's stages on R disjoint, mutually isomorphic sets of
GPUs (its slots): same GPU types, and a bijection between them that maps every route between two of
their GPUs onto the corresponding route, hop for hop (so every cost the model computes is equal).
Each replica uses its whole slot. The solver plans replica 0 inside slot 0 and maps the others.

Why the slot systems below are exact (every replicated plan is represented up to isomorphism):
- **Small machines** (at most `ENUM_MAX` GPUs offered): the subsets of each size are sorted into
  isomorphism classes; a class with R disjoint members yields one slot system. Every replicated plan
  lies in one such class (its replicas' GPU sets are members), and plans on isomorphic slots cost the
  same, so one representative per class suffices.
- **Machines of symmetric nodes** (NVSwitch or mesh nodes, any count): a slot of k GPUs packed inside
  one node of a class (or of whole nodes) is at least as good as the same plan spread over more nodes,
  because within a node every route is at least as fast as across nodes (checked; else inexact).
- **Otherwise** consecutive blocks of a locality order, checked isomorphic, and marked inexact.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import networkx as nx
from networkx.algorithms import isomorphism

from planner.hardware.memo import Memo
from planner.hardware.topology import Topology
from planner.solve.candidates import locality_order, symmetric

#: Most GPUs offered for which every slot system is enumerated.
ENUM_MAX = 10
_MAX_MATCHES = 200
#: Isomorphism classes of the machine's GPU subsets, per (GPU ids offered, subset size).
SLOT_CLASSES: Memo[tuple[tuple[int, ...], int], list] = Memo("slot classes", maxsize=1024)


@dataclass(frozen=True)
class SlotSystem:
    """R slots; `maps[r]` takes each GPU of slot 0 to its counterpart in slot r."""

    slots: tuple[tuple[int, ...], ...]
    maps: tuple[dict[int, int], ...]

    @property
    def replicas(self) -> int:
        return len(self.slots)


def single(ids: list[int]) -> SlotSystem:
    return SlotSystem((tuple(ids),), ({g: g for g in ids},))


def _route_graph(topo: Topology, ids: tuple[int, ...]) -> nx.Graph:
    g = nx.Graph()
    for a, b in itertools.permutations(ids, 2):
        for u, v in topo.path(a, b).hops:
            for n in (u, v):
                data = topo.graph.nodes[n]
                if data["kind"] == "gpu":
                    gpu = topo.gpus[data["gpu_id"]]
                    g.add_node(n, label=("gpu", gpu.spec.name, topo.node_class[gpu.node]))
                else:
                    g.add_node(n, label=(data["kind"], data.get("nvls", False)))
            e = topo.graph.edges[u, v]
            g.add_edge(u, v, label=(e["kind"], e["bandwidth"], e["latency"]))
    for i in ids:
        gpu = topo.gpus[i]
        g.add_node(gpu.key, label=("gpu", gpu.spec.name, topo.node_class[gpu.node]))
    return g


def isomorphism_map(topo: Topology, a: tuple[int, ...], b: tuple[int, ...]) -> dict[int, int] | None:
    """A GPU bijection from slot a to slot b under which every route maps onto the corresponding route."""
    if len(a) != len(b):
        return None
    if sorted(topo.gpus[i].spec.name for i in a) != sorted(topo.gpus[i].spec.name for i in b):
        return None
    ga, gb = _route_graph(topo, a), _route_graph(topo, b)
    same = isomorphism.GraphMatcher(
        ga, gb, node_match=lambda x, y: x["label"] == y["label"], edge_match=lambda x, y: x["label"] == y["label"]
    )
    for k, mapping in enumerate(same.isomorphisms_iter()):
        if k >= _MAX_MATCHES:
            break
        gpu_map = {i: topo.graph.nodes[mapping[topo.gpus[i].key]]["gpu_id"] for i in a}
        if all(
            tuple((mapping[u], mapping[v]) for u, v in topo.path(x, y).hops) == topo.path(gpu_map[x], gpu_map[y]).hops
            for x, y in itertools.permutations(a, 2)
        ):
            return gpu_map
    return None


def _classes(topo: Topology, subsets: list[tuple[int, ...]]) -> list[list[tuple[tuple[int, ...], dict[int, int]]]]:
    """Isomorphism classes of subsets: each member with its map from the class representative."""
    classes: list[list[tuple[tuple[int, ...], dict[int, int]]]] = []
    for s in subsets:
        for cls in classes:
            m = isomorphism_map(topo, cls[0][0], s)
            if m is not None:
                cls.append((s, m))
                break
        else:
            classes.append([(s, {g: g for g in s})])
    return classes


def _disjoint(members: list[tuple[tuple[int, ...], dict[int, int]]], replicas: int):
    """R pairwise disjoint members of a class (any of them: the representative need not be one), each with
    its map from the first chosen; None if the class has no R disjoint members."""

    def extend(chosen: list, used: set[int], start: int):
        if len(chosen) == replicas:
            return chosen
        for k in range(start, len(members)):
            s, m = members[k]
            if used.isdisjoint(s):
                found = extend(chosen + [(s, m)], used | set(s), k + 1)
                if found:
                    return found
        return None

    chosen = extend([], set(), 0)
    if chosen is None:
        return None
    back = {v: k for k, v in chosen[0][1].items()}  # first chosen -> representative
    return [(s, {g: m[back[g]] for g in chosen[0][0]}) for s, m in chosen]


def _enumerated(topo: Topology, ids: list[int], replicas: int, size: int) -> list[SlotSystem]:
    key = (tuple(sorted(ids)), size)
    if (classes := SLOT_CLASSES.get(topo, key)) is None:
        classes = SLOT_CLASSES.put(topo, key, _classes(topo, list(itertools.combinations(sorted(ids), size))))
    out = []
    for cls in classes:
        chosen = _disjoint(cls, replicas)
        if chosen:
            out.append(SlotSystem(tuple(s for s, _ in chosen), tuple(m for _, m in chosen)))
    return out


def _packed(topo: Topology, ids: list[int], replicas: int, size: int) -> tuple[list[SlotSystem], bool]:
    """Slots packed inside the symmetric nodes of each class, or made of whole nodes."""
    by_node: dict[str, list[int]] = {}
    for g in sorted(ids, key=lambda i: (topo.gpus[i].node_index, i)):
        by_node.setdefault(topo.gpus[g].node, []).append(g)
    by_class: dict[tuple, list[list[int]]] = {}
    for node, gpus in by_node.items():
        by_class.setdefault((topo.node_class[node], len(gpus)), []).append(gpus)
    out, exact = [], len(by_class) == 1
    for (_, per_node), nodes in by_class.items():
        if size <= per_node:
            slots = [tuple(n[k * size : (k + 1) * size]) for n in nodes for k in range(per_node // size)]
        elif size % per_node == 0:
            j = size // per_node
            slots = [tuple(g for n in nodes[k * j : (k + 1) * j] for g in n) for k in range(len(nodes) // j)]
        else:
            exact = False  # slots of a fraction of several nodes are not offered
            continue
        if len(slots) >= replicas:
            chosen = slots[:replicas]
            out.append(SlotSystem(tuple(chosen), tuple(dict(zip(chosen[0], s)) for s in chosen)))
    return out, exact and _inside_beats_across(topo, by_node)


def _inside_beats_across(topo: Topology, by_node: dict[str, list[int]]) -> bool:
    nodes = list(by_node.values())
    if len(nodes) < 2:
        return True
    inside = topo.path(nodes[0][0], nodes[0][1]) if len(nodes[0]) > 1 else None
    across = topo.path(nodes[0][0], nodes[1][0])
    return inside is None or (
        inside.bandwidth_bytes_per_s >= across.bandwidth_bytes_per_s and inside.latency_s <= across.latency_s
    )


def _consecutive(topo: Topology, ids: list[int], replicas: int, size: int) -> list[SlotSystem]:
    order = locality_order(topo, ids)
    chosen = [tuple(order[r * size : (r + 1) * size]) for r in range(replicas)]
    maps = [isomorphism_map(topo, chosen[0], s) for s in chosen]
    return [] if any(m is None for m in maps) else [SlotSystem(tuple(chosen), tuple(maps))]


def slot_systems(topo: Topology, ids: list[int], replicas: int, size: int) -> tuple[list[SlotSystem], bool]:
    """The distinct ways to place `replicas` slots of `size` GPUs on `ids`, and whether they are exhaustive."""
    if replicas == 1:
        return [single(list(ids))], True
    if replicas * size > len(ids):
        return [], True
    nodes: dict[str, list[int]] = {}
    for g in ids:
        nodes.setdefault(topo.gpus[g].node, []).append(g)
    if all(symmetric(topo, gpus) for gpus in nodes.values()):
        systems, exact = _packed(topo, ids, replicas, size)
        if exact or len(ids) > ENUM_MAX:
            return systems, exact
    if len(ids) <= ENUM_MAX:
        return _enumerated(topo, ids, replicas, size), True
    return _consecutive(topo, ids, replicas, size), False
