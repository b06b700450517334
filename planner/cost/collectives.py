"""Time of collectives and point-to-point transfers over real GPU groups of a topology.

What NCCL does, reduced to a latency term per step plus a bandwidth term:
- **Ring** over the group in the best ring order. Every ring edge follows the topology's path; where
  several ring edges cross one physical link in one direction (a PCIe uplink, the socket link), they
  divide its bandwidth. The ring's bandwidth is the worst such share.
- **Protocols**: LL (low latency, a fraction of link bandwidth) and Simple (full bandwidth, a larger
  fixed latency); NCCL picks the faster, and so do we.
- **NVLS** on NVSwitch domains with in-switch reduction (H100/H200): each GPU sends and receives the
  message once.
- **One-shot custom all-reduce** inside engines (vLLM, SGLang) for small messages on fully
  NVLink-connected groups.
- **Hierarchical** across nodes: reduce-scatter inside each node, all-reduce across nodes on parallel
  rails (one NIC per GPU where the node has them), all-gather inside each node.

`context="nccl"` times a standalone collective as nccl-tests measures it; `context="engine"` times
one inside an engine's CUDA graph (smaller launch cost, custom all-reduce allowed). Constants live
in planner.cost.constants, each with its source.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from planner.cost.constants import DEFAULT, Constants
from planner.errors import InputError
from planner.hardware.topology import Topology

Op = Literal["all-reduce", "all-gather", "reduce-scatter", "all-to-all"]
OPS: tuple[str, ...] = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
Context = Literal["nccl", "engine"]

#: Rings of up to this many GPUs are searched exhaustively ((n-1)!/2 orders); larger ones are
#: ordered by node, PCIe switch and index, as NCCL's topology search does in practice.
EXHAUSTIVE_RING_MAX = 8


@dataclass(frozen=True)
class Ring:
    order: tuple[int, ...]
    bandwidth_bytes_per_s: float  # the worst share of a link among the ring's edges
    hop_latency_s: float  # mean latency of a ring edge


@dataclass(frozen=True)
class CollectiveEstimate:
    op: str
    n_gpus: int
    bytes: int
    time_s: float
    algorithm: str
    protocol: str

    @property
    def algbw_bytes_per_s(self) -> float:
        return self.bytes / self.time_s if self.time_s > 0 else float("inf")

    @property
    def busbw_bytes_per_s(self) -> float:
        """nccl-tests' bus bandwidth: algbw x 2(n-1)/n for all-reduce, x (n-1)/n otherwise."""
        n = self.n_gpus
        factor = 2 * (n - 1) / n if self.op == "all-reduce" else (n - 1) / n
        return self.algbw_bytes_per_s * factor


def _ring_of(topo: Topology, order: tuple[int, ...]) -> Ring:
    loads: Counter = Counter()
    latency = 0.0
    for a, b in zip(order, order[1:] + order[:1]):
        path = topo.path(a, b)
        latency += path.latency_s
        for hop in path.hops:
            loads[hop] += 1
    bw = min(topo.graph.edges[u, v]["bandwidth"] / load for (u, v), load in loads.items())
    return Ring(order, bw, latency / len(order))


def _fully_switched(topo: Topology, ids: tuple[int, ...]) -> bool:
    """Every pair joined directly (NVSwitch domain or a full mesh of bonds): all rings are alike."""
    switches = {topo.nvswitch_of(i) for i in ids}
    if len(switches) == 1 and None not in switches:
        return True
    return all(len(topo.path(a, b).hops) == 1 for a, b in itertools.combinations(ids, 2))


def best_ring(topo: Topology, gpu_ids) -> Ring:
    ids = tuple(sorted(gpu_ids))
    key = ("ring", ids)
    if key in topo.cache:
        return topo.cache[key]
    if len(ids) <= 2 or _fully_switched(topo, ids):
        ring = _ring_of(topo, ids)
    elif len(ids) <= EXHAUSTIVE_RING_MAX:
        ring = None
        first, rest = ids[0], ids[1:]
        for perm in itertools.permutations(rest):
            if perm[0] > perm[-1]:
                continue  # a ring and its reverse are the same ring
            cand = _ring_of(topo, (first, *perm))
            if ring is None or (cand.bandwidth_bytes_per_s, -cand.hop_latency_s) > (
                ring.bandwidth_bytes_per_s, -ring.hop_latency_s
            ):
                ring = cand
    else:
        ring = _ring_of(topo, tuple(sorted(ids, key=lambda i: (topo.gpus[i].node_index, i))))
    topo.cache[key] = ring
    return ring


def _efficiency(topo: Topology, ids, constants: Constants, network: bool = False):
    key = "network" if network else topo.gpus[ids[0]].spec.link
    return constants.protocol_efficiency.get(key) or constants.protocol_efficiency["nvlink4"]


def _launch(context: Context, constants: Constants) -> float:
    return constants.engine_launch_s if context == "engine" else constants.nccl_launch_s


def _flat(op: str, topo: Topology, ids: tuple[int, ...], nbytes: int, context: Context, c: Constants):
    """Single-node collectives: ring (LL or Simple), NVLS, one-shot. Returns (time, algorithm, protocol)."""
    n = len(ids)
    ring = best_ring(topo, ids)
    eff = _efficiency(topo, ids, c)
    if op == "all-reduce":
        steps, volume = 2 * (n - 1), 2 * (n - 1) / n * nbytes
    else:
        steps, volume = n - 1, (n - 1) / n * nbytes
    base = _launch(context, c) + steps * ring.hop_latency_s
    options = [
        (base + volume / (ring.bandwidth_bytes_per_s * eff.ll), "ring", "LL"),
        (base + c.simple_extra_s + volume / (ring.bandwidth_bytes_per_s * eff.simple), "ring", "Simple"),
    ]
    if op == "all-reduce" and topo.nvls(ids):
        link = min(topo.path(a, b).bandwidth_bytes_per_s for a, b in zip(ids, ids[1:]))
        t = _launch(context, c) + c.simple_extra_s + 2 * ring.hop_latency_s + nbytes / (link * c.nvls_efficiency)
        options.append((t, "nvls", "Simple"))
    if op == "all-reduce" and context == "engine" and nbytes <= c.one_shot_max_bytes and _fully_switched(topo, ids):
        t = c.engine_launch_s + (n - 1) * nbytes / c.one_shot_peer_bytes_per_s
        options.append((t, "one-shot", "custom"))
    if op == "all-to-all":
        return _all_to_all(topo, ids, nbytes, context, c)
    return min(options)


def _all_to_all(topo: Topology, ids: tuple[int, ...], nbytes: int, context: Context, c: Constants):
    """Every GPU sends nbytes/n to every other at once; shared links divide their bandwidth."""
    n = len(ids)
    chunk = nbytes / n
    loads: Counter = Counter()
    latency = 0.0
    for a in ids:
        for b in ids:
            if a != b:
                path = topo.path(a, b)
                latency = max(latency, path.latency_s)
                for hop in path.hops:
                    loads[hop] += chunk
    eff = _efficiency(topo, ids, c, network=topo.gpus[ids[0]].node != topo.gpus[ids[-1]].node)
    transfer = max(load / (topo.graph.edges[u, v]["bandwidth"] * eff.simple) for (u, v), load in loads.items())
    return _launch(context, c) + latency + transfer, "pairwise", "Simple"


def _hierarchical(op: str, topo: Topology, ids: tuple[int, ...], nbytes: int, context: Context, c: Constants):
    """Reduce-scatter inside each node, all-reduce across nodes on parallel rails, all-gather inside each
    node (all-gather and reduce-scatter: one intra-node phase). LL or Simple, whichever is faster."""
    by_node: dict[int, list[int]] = {}
    for i in ids:
        by_node.setdefault(topo.gpus[i].node_index, []).append(i)
    groups = [tuple(v) for _, v in sorted(by_node.items())]
    k = len(groups)
    m = min(len(g) for g in groups)
    # Inter-node phase: rail r joins the r-th GPU of every node; rails run in parallel and share NICs.
    loads: Counter = Counter()
    net_lat = 0.0
    for r in range(m):
        rail = [g[r] for g in groups]
        for a, b in zip(rail, rail[1:] + rail[:1]):
            path = topo.path(a, b)
            net_lat = max(net_lat, path.latency_s)
            for hop in path.hops:
                loads[hop] += 1
    rail_bw = min(topo.graph.edges[u, v]["bandwidth"] / load for (u, v), load in loads.items())
    eff_net = _efficiency(topo, ids, c, network=True)
    per_rail = nbytes / m
    factor, intra_phases = (2, 2) if op == "all-reduce" else (1, 1)
    options = []
    for protocol in ("LL", "Simple"):
        # Intra-node phases: each moves (n-1)/n of the message around the node's ring.
        intra = 0.0
        for g in groups:
            if len(g) > 1:
                ring = best_ring(topo, g)
                eff = getattr(_efficiency(topo, g, c), protocol.lower())
                steps = len(g) - 1
                intra = max(intra, steps * ring.hop_latency_s
                            + (len(g) - 1) / len(g) * nbytes / (ring.bandwidth_bytes_per_s * eff))
        net_eff = getattr(eff_net, protocol.lower())
        inter = factor * (k - 1) * net_lat + factor * (k - 1) / k * per_rail / (rail_bw * net_eff)
        extra = c.simple_extra_s if protocol == "Simple" else 0.0
        options.append((_launch(context, c) + extra + intra_phases * intra + inter, "hierarchical", protocol))
    return min(options)


def collective_time(
    topo: Topology,
    gpu_ids,
    nbytes: int,
    op: str = "all-reduce",
    *,
    context: Context = "nccl",
    constants: Constants = DEFAULT,
) -> CollectiveEstimate:
    """Predicted time of one collective of `nbytes` (nccl-tests' size convention) over `gpu_ids`."""
    if op not in OPS:
        raise InputError(f"unknown collective '{op}': choose one of {', '.join(OPS)}")
    ids = tuple(sorted(set(gpu_ids)))
    for i in ids:
        topo.gpu(i)
    if len(ids) != len(list(gpu_ids)):
        raise InputError(f"GPU ids repeat in {list(gpu_ids)}")
    if len(ids) < 2 or nbytes <= 0:
        return CollectiveEstimate(op, len(ids), nbytes, 0.0, "none", "none")
    nodes = {topo.gpus[i].node_index for i in ids}
    if op == "all-to-all":
        t, algo, proto = _all_to_all(topo, ids, nbytes, context, constants)
    elif len(nodes) == 1:
        t, algo, proto = _flat(op, topo, ids, nbytes, context, constants)
    else:
        t, algo, proto = _hierarchical(op, topo, ids, nbytes, context, constants)
    return CollectiveEstimate(op, len(ids), nbytes, t, algo, proto)


def p2p_time(topo: Topology, a: int, b: int, nbytes: int, *, context: Context = "engine",
             constants: Constants = DEFAULT) -> float:
    """One send/recv of `nbytes` from GPU a to GPU b (pipeline-stage hand-off)."""
    if a == b or nbytes <= 0:
        return 0.0
    path = topo.path(a, b)
    network = path.link_class == "network"
    eff = _efficiency(topo, (a,), constants, network=network)
    bw = path.bandwidth_bytes_per_s * (eff.simple if nbytes > 64 * 1024 else eff.ll)
    return _launch(context, constants) + path.latency_s + nbytes / bw


class CollectiveRow(BaseModel):
    size: str
    bytes: int
    time_us: float
    busbw_gbps: float
    algorithm: str
    protocol: str


class CollectiveReport(BaseModel):
    topology: str
    op: str
    context: str
    gpu_ids: list[int]
    rows: list[CollectiveRow]


def parse_gpu_ids(text: str | None, topo: Topology) -> list[int]:
    if text is None:
        return list(range(topo.n_gpus))
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--gpu-ids: expected comma-separated integers such as 0,1,2,3, got '{text}'") from None
    for i in ids:
        topo.gpu(i)
    if len(set(ids)) != len(ids):
        raise InputError(f"--gpu-ids: GPU ids repeat in '{text}'")
    if not ids:
        raise InputError("--gpu-ids: no GPU given")
    return ids


def collective_estimates(topo: Topology, *, sizes: str, op: str, gpu_ids: str | None, context: str,
                         constants: Constants = DEFAULT) -> CollectiveReport:
    from planner.units import parse_bytes

    if context not in ("nccl", "engine"):
        raise InputError(f"--context: choose nccl or engine, got '{context}'")
    ids = parse_gpu_ids(gpu_ids, topo)
    rows = []
    for size in [s.strip() for s in sizes.split(",") if s.strip()]:
        try:
            nbytes = parse_bytes(size)
        except ValueError as exc:
            raise InputError(f"--sizes: {exc}") from None
        est = collective_time(topo, ids, nbytes, op, context=context, constants=constants)
        rows.append(CollectiveRow(size=size, bytes=nbytes, time_us=est.time_s * 1e6,
                                  busbw_gbps=est.busbw_bytes_per_s / 1e9 if est.time_s > 0 else 0.0,
                                  algorithm=est.algorithm, protocol=est.protocol))
    if not rows:
        raise InputError("--sizes: give at least one size")
    return CollectiveReport(topology=topo.name, op=op, context=context, gpu_ids=ids, rows=rows)


def engine_collective_s(topo: Topology, gpu_ids, nbytes: float, op: str, constants: Constants) -> float:
    """Time of one collective inside an engine (CUDA graphs, custom all-reduce), memoised by value."""
    ids = tuple(sorted(gpu_ids))
    if len(ids) < 2 or nbytes <= 0:
        return 0.0
    key = ("engine-collective", ids, int(nbytes), op, constants.key)
    if key not in topo.cache:
        topo.cache[key] = collective_time(topo, ids, int(nbytes), op, context="engine", constants=constants).time_s
    return topo.cache[key]
