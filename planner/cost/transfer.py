"""Pipeline hand-offs: what a stage sends the next one, to whom, and how long it takes.

vLLM hands over two tensors per token, the hidden state and the residual (2 x tokens x hidden x 2
bytes), from tensor-parallel rank j of one stage to rank j of the next (rank j mod tp when the TP
degrees differ). The time is priced by the pair of nodes: the worst GPU pair between them (within
one node, its worst pair), a conservative figure that depends on nodes only, so the solver prices it
exactly without pairwise variables.
"""

from __future__ import annotations

from typing import Sequence

from planner.cost.collectives import p2p_time
from planner.cost.constants import Constants
from planner.hardware.memo import Memo
from planner.hardware.topology import LINK_CLASSES, Topology
from planner.model.dtypes import ACTIVATION_BYTES
from planner.model.layergraph import ModelProfile

#: vLLM's pipeline hand-off carries two tensors per token: the hidden state and the residual.
PP_TENSORS = 2
#: Hand-off time between two nodes, per (node, node, bytes, constants key).
TRANSFERS: Memo[tuple[int, int, bool, int, str], float] = Memo("stage hand-offs", maxsize=65_536)


def transfer_bytes(profile: ModelProfile, tokens: float) -> float:
    return PP_TENSORS * tokens * profile.hidden_size * ACTIVATION_BYTES


def transfer_pairs(src_ids: Sequence[int], dst_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Who sends to whom at a stage boundary: rank j of the next stage receives from rank j mod n of this one."""
    return [(src_ids[j % len(src_ids)], dst) for j, dst in enumerate(dst_ids)]


def transfer_pair_s(topo: Topology, node_a: str, node_b: str, nbytes: float, c: Constants) -> float:
    """Hand-off time between a stage on node_a and the next on node_b: the worst GPU pair between them. Copies of
    one node definition on the one fabric cost the same, so the time is kept by node class (a 1,280-node machine
    prices one pair, not every pair its plans touch)."""
    same = node_a == node_b
    key = (topo.node_class[node_a], topo.node_class[node_b], same, int(nbytes), c.key)
    if (cached := TRANSFERS.get(topo, key)) is None:
        ga, gb = topo.node_gpus()[node_a], topo.node_gpus()[node_b]
        pairs = [(a, b) for a in ga for b in gb if a != b]
        cached = TRANSFERS.put(
            topo, key, max((p2p_time(topo, a, b, int(nbytes), constants=c) for a, b in pairs), default=0.0)
        )
    return cached


def transfer(
    profile: ModelProfile,
    topo: Topology,
    src_ids: Sequence[int],
    *,
    dst_ids: Sequence[int],
    tokens: float,
    c: Constants,
) -> tuple[float, dict[str, float]]:
    """Hand-off of (hidden, residual) to every rank of the next stage: (time s, bytes by link class)."""
    nbytes = transfer_bytes(profile, tokens)
    by_class = {k: 0.0 for k in LINK_CLASSES}
    for a, b in transfer_pairs(src_ids, dst_ids):
        if a != b:
            by_class[topo.link_class(a, b)] += nbytes
    t = transfer_pair_s(topo, topo.gpus[src_ids[0]].node, topo.gpus[dst_ids[0]].node, nbytes, c)
    return t, by_class
