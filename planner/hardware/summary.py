"""What `planner topology show` prints: GPUs, links and the GPU-to-GPU bandwidth matrix.

Past `MATRIX_MAX_GPUS` GPUs the n x n matrix is replaced by a per-node summary (the distinct
GPU-to-GPU bandwidths inside each node class and between nodes), so a 4,096-GPU machine shows in
a second instead of building sixteen million routes.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel

from planner.hardware.topology import Topology

MATRIX_MAX_GPUS = 64
LINKS_MAX_ROWS = 400


class GpuRow(BaseModel):
    id: int
    node: str
    local_index: int
    type: str
    memory_bytes: int
    hbm_bytes_per_s: float
    bf16_flops_per_s: float


class LinkRow(BaseModel):
    a: str
    b: str
    kind: str
    bandwidth_bytes_per_s: float
    latency_s: float


class PairClass(BaseModel):
    """GPU pairs that share a route bandwidth and link class (the summary of a large machine)."""

    scope: str
    link_class: str
    bandwidth_bytes_per_s: float
    pairs: int


class TopologySummary(BaseModel):
    name: str
    description: str
    source: str
    hash: str
    n_nodes: int
    n_gpus: int
    gpus: list[GpuRow]
    links: list[LinkRow]
    links_total: int
    bandwidth_matrix_bytes_per_s: Optional[list[list[float]]] = None
    pair_classes: list[PairClass] = []


def _pair_classes(topo: Topology) -> list[PairClass]:
    """Distinct routes inside the first node of each class, and between the first two nodes."""
    firsts: dict[int, list[int]] = {}
    for node, ids in topo.node_gpus().items():
        firsts.setdefault(topo.node_class[node], ids)
    counts: dict[tuple[str, str, float], int] = {}
    groups = [("inside a node", ids, ids) for ids in firsts.values()]
    nodes = list(topo.node_gpus().values())
    if len(nodes) > 1:
        groups.append(("between two nodes", nodes[0], nodes[1]))
    for scope, left, right in groups:
        for a in left:
            for b in right:
                if a != b:
                    r = topo.path(a, b)
                    key = (scope, r.link_class, r.bandwidth_bytes_per_s)
                    counts[key] = counts.get(key, 0) + 1
    return [PairClass(scope=s, link_class=c, bandwidth_bytes_per_s=bw, pairs=n) for (s, c, bw), n in counts.items()]


def summarize_topology(topo: Topology) -> TopologySummary:
    gpus = [
        GpuRow(
            id=g.id,
            node=g.node,
            local_index=g.local_index,
            type=g.spec.name,
            memory_bytes=g.spec.memory_bytes,
            hbm_bytes_per_s=g.spec.hbm_bytes_per_s,
            bf16_flops_per_s=g.spec.peak_flops("bf16"),
        )
        for g in topo.gpus
    ]
    edges = sorted(topo.graph.edges(data=True), key=lambda e: (e[0], e[1]))
    links = [
        LinkRow(a=u, b=v, kind=d["kind"], bandwidth_bytes_per_s=d["bandwidth"], latency_s=d["latency"])
        for u, v, d in edges[:LINKS_MAX_ROWS]
    ]
    small = topo.n_gpus <= MATRIX_MAX_GPUS
    return TopologySummary(
        name=topo.name,
        description=topo.definition.description,
        source=topo.source,
        hash=topo.hash,
        n_nodes=topo.n_nodes,
        n_gpus=topo.n_gpus,
        gpus=gpus,
        links=links,
        links_total=len(edges),
        bandwidth_matrix_bytes_per_s=topo.bandwidth_matrix() if small else None,
        pair_classes=[] if small else _pair_classes(topo),
    )
