"""Which links a collective's bytes cross, summed by link class (NVLink, PCIe, socket link, network).

Ring convention (nccl-tests): an all-reduce of S bytes over n GPUs sends 2(n-1)/n x S over every ring
edge, an all-gather or reduce-scatter (n-1)/n x S; an all-to-all sends S/n from every GPU to every
other one along its own route. On a full mesh the ring's channels and the direct algorithms spread the same
bytes over more links of one class (an all-reduce moves 2(n-1)/n x S out of every GPU either way), so the
totals by class are the single ring's.
"""

from __future__ import annotations

from typing import Iterable

from planner.cost.collectives import best_ring
from planner.hardware.memo import Memo
from planner.hardware.topology import LINK_CLASSES, Topology

#: Bytes each link class carries per message byte of a collective, per (GPU ids, op).
COLLECTIVE_BYTES: Memo[tuple[tuple[int, ...], str], dict[str, float]] = Memo("collective bytes", maxsize=16_384)


def collective_bytes_by_class(
    topo: Topology, gpu_ids: Iterable[int], nbytes: float, op: str = "all-reduce"
) -> dict[str, float]:
    ids = tuple(sorted(gpu_ids))
    n = len(ids)
    out = {k: 0.0 for k in LINK_CLASSES}
    if n < 2 or nbytes <= 0:
        return out
    if (per_byte := COLLECTIVE_BYTES.get(topo, (ids, op))) is None:
        per_byte = COLLECTIVE_BYTES.put(topo, (ids, op), _bytes_per_message_byte(topo, ids, op))
    for k, v in per_byte.items():
        out[k] = v * nbytes
    return out


def _bytes_per_message_byte(topo: Topology, ids: tuple[int, ...], op: str) -> dict[str, float]:
    n = len(ids)
    out = {k: 0.0 for k in LINK_CLASSES}
    if op == "all-to-all":
        for a in ids:
            for b in ids:
                if a != b:
                    out[topo.link_class(a, b)] += 1.0 / n
        return out
    per_edge = (2 if op == "all-reduce" else 1) * (n - 1) / n
    order = best_ring(topo, ids).order
    for a, b in zip(order, order[1:] + order[:1]):
        out[topo.link_class(a, b)] += per_edge
    return out
