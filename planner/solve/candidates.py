"""Candidate stage configurations: which GPUs a stage may run on, in which layout.

The solver never removes a configuration that could be strictly better. Why the pruning is exact:

- **Symmetric nodes become pools.** Where every GPU of a node (within the slot) is the same type and
  every pair meets the same way (one NVSwitch domain, or a full mesh of equal links), any k of them
  cost exactly the same for every quantity the cost model uses: a group's collectives run over
  identical routes, its memory is the same, and hand-offs are priced by the pair of nodes. So a
  stage asks for "k GPUs of node X" (a pool configuration), the model only counts GPUs per node, and
  concrete ids are assigned afterwards.
- **Irregular nodes offer every subset** of the valid sizes and one GPU type (up to `SUBSET_MAX`
  GPUs in a node: 8 GPUs give at most 255 subsets). Nothing is pruned.
- **Identical nodes are interchangeable.** Copies of one node definition with the same GPUs in the
  slot cost the same, and the fabric is one switch, so a hand-off between two of them costs the same
  for every pair. A plan of `pp` stages touches at most `pp` nodes, so the first `pp` nodes of each
  class carry every plan up to renaming.
- **Otherwise** (an irregular node of more than `SUBSET_MAX` GPUs) aligned blocks of a locality
  order are offered and the result is marked inexact: the solver then says FEASIBLE, never OPTIMAL.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from planner.cost.shards import Layout
from planner.hardware.topology import Topology

#: Most groups of a pool whose host-streaming rates are compared; beyond, the pool is not called uniform.
STREAM_GROUPS_CHECKED = 256
#: Largest irregular node (GPUs within the slot) whose every subset is offered.
SUBSET_MAX = 10


@dataclass(frozen=True)
class Config:
    """A way to run one stage: its GPUs (for a pool, stand-ins: any `size` GPUs of the pool cost the same)."""

    gpu_ids: tuple[int, ...]
    node: str
    layout: Layout
    pool: str | None = None

    @property
    def size(self) -> int:
        return len(self.gpu_ids)


@dataclass
class CandidateSet:
    configs: list[Config]
    pools: dict[str, list[int]] = field(default_factory=dict)  # pool -> its GPUs in the slot
    exact: bool = True
    note: str | None = None


def _one_type(topo: Topology, ids) -> bool:
    return len({topo.gpus[i].spec.name for i in ids}) == 1


def symmetric(topo: Topology, ids: list[int]) -> bool:
    """Every GPU the same type and every pair joined the same way: one NVSwitch, or a full mesh of equal links."""
    if not _one_type(topo, ids):
        return False
    if len(ids) < 2:
        return True
    switches = {topo.nvswitch_of(i) for i in ids}
    if len(switches) == 1 and None not in switches:
        return True
    routes = {
        (len(r.hops), r.bandwidth_bytes_per_s, r.latency_s)
        for r in (topo.path(a, b) for a, b in itertools.permutations(ids, 2))
    }
    return len(routes) == 1 and next(iter(routes))[0] == 1


def locality_order(topo: Topology, gpu_ids: list[int]) -> list[int]:
    """GPUs ordered so that the best-connected ones sit together (agglomerative merging, node by node)."""
    by_node: dict[int, list[int]] = {}
    for g in sorted(gpu_ids):
        by_node.setdefault(topo.gpus[g].node_index, []).append(g)
    return [g for k in sorted(by_node) for g in _merge_node(topo, by_node[k])]


def _merge_node(topo: Topology, ids: list[int]) -> list[int]:
    if len(ids) > 64:  # large nodes: index order (the agglomeration is quadratic in pairs)
        return ids
    clusters = [[g] for g in ids]

    def link(a: list[int], b: list[int]) -> tuple:
        worst_bw = min(topo.path(x, y).bandwidth_bytes_per_s for x in a for y in b)
        worst_lat = max(topo.path(x, y).latency_s for x in a for y in b)
        return (-worst_bw, worst_lat, min(a + b))

    while len(clusters) > 1:
        _, i, j = min(
            (link(clusters[i], clusters[j]), i, j) for i, j in itertools.combinations(range(len(clusters)), 2)
        )
        merged = clusters[i] + clusters[j]
        clusters = sorted([c for k, c in enumerate(clusters) if k not in (i, j)] + [merged], key=min)
    return clusters[0]


def _node_classes(topo: Topology, slot: list[int], max_nodes: int) -> dict[str, list[int]]:
    """The slot's GPUs per node, keeping only the first `max_nodes` nodes of each class."""
    by_node: dict[str, list[int]] = {}
    for g in sorted(slot, key=lambda i: (topo.gpus[i].node_index, i)):
        by_node.setdefault(topo.gpus[g].node, []).append(g)
    seen: dict[tuple, int] = {}
    offered = {}
    for node, ids in by_node.items():
        key = (topo.node_class[node], tuple(topo.gpus[i].local_index for i in ids))
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= max_nodes:
            offered[node] = ids
    return offered


def candidates(topo: Topology, slot: list[int], layouts: dict[int, list[Layout]], max_nodes: int) -> CandidateSet:
    """Stage configurations on the GPUs of `slot`, for the layouts valid at each size (`layouts[size]`)."""
    out = CandidateSet(configs=[])
    for node, ids in _node_classes(topo, slot, max_nodes).items():
        sizes = [s for s in sorted(layouts) if s <= len(ids) and layouts[s]]
        if symmetric(topo, ids):
            out.pools[node] = ids
            out.configs += [Config(tuple(ids[:s]), node, lay, pool=node) for s in sizes for lay in layouts[s]]
        elif len(ids) <= SUBSET_MAX:
            for s in sizes:
                for combo in itertools.combinations(ids, s):
                    if _one_type(topo, combo):
                        out.configs += [Config(combo, node, lay) for lay in layouts[s]]
        else:
            out.exact = False
            out.note = (
                f"node {node} has {len(ids)} GPUs that are not all alike: GPU groups were taken as "
                f"aligned blocks of a locality order, so the plan is the best found, not proven optimal"
            )
            order = _merge_node(topo, ids)
            for s in sizes:
                for start in range(0, len(order) - s + 1, s):
                    combo = tuple(sorted(order[start : start + s]))
                    if _one_type(topo, combo):
                        out.configs += [Config(combo, node, lay) for lay in layouts[s]]
    return out


def uniform_streaming(topo: Topology, cands: CandidateSet) -> bool:
    """Whether every group of a pool's GPUs of one size streams from host memory at the same rate (pools are
    exact for everything else; PCIe paths to the host may still differ)."""
    for cfg in cands.configs:
        if cfg.pool is None:
            continue
        ids = cands.pools[cfg.pool]
        if not topo.has_host_memory(ids):
            continue
        if math.comb(len(ids), cfg.size) > STREAM_GROUPS_CHECKED:
            return False
        if len({round(topo.host_stream_bytes_per_s(g), 3) for g in itertools.combinations(ids, cfg.size)}) > 1:
            return False
    return True
