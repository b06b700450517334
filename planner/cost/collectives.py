"""Time of collectives and point-to-point transfers over real GPU groups of a topology.

What NCCL does, reduced to a latency per step plus a bandwidth term, for each of its protocols:
- **Ring** over the group in the best ring order. Every ring edge follows the topology's route; where
  several ring edges cross one physical link in one direction (a PCIe uplink, the socket link), they
  divide its bandwidth. The ring's bandwidth is the worst such share.
- **Full meshes** (every pair of the group joined by its own direct link: MI300X/MI325X/MI355X
  Infinity Fabric, or NVLink bonds between every pair): NCCL/RCCL run several channels at once, each a
  ring over different links. The complete digraph on k GPUs splits into k-1 arc-disjoint Hamiltonian
  rings (fractionally for every k; exactly but for k = 4 and 6, Tillson 1980), so the channels together
  send over all k-1 links of each GPU: the ring's bandwidth is k-1 times one link's. A 4-GPU subset of an
  8-GPU mesh has 3 links per GPU inside the subset (RCCL's README: fewer than 8 MI300X GPUs reach a
  fraction of the bandwidth). Where the fabric runs them (`FabricProfile.direct` > 0: RCCL's MSCCL
  all-pairs algorithms on MI300X), **direct** algorithms send every peer its share over that peer's own
  link: all-reduce one-shot (one step, the whole message to every peer) or two-shot (reduce-scatter then
  all-gather, one step each, 2/k of the message per link), all-gather and reduce-scatter in one step
  (1/k of the message per link). All-to-all on a mesh is already every pair on its own link.
- **Protocols**: LL (small messages: a low fixed latency per step, a fraction of the bandwidth), LL128
  (NVLink: most of the bandwidth at a somewhat higher latency) and Simple (full bandwidth, the highest
  latency). NCCL picks the fastest, and so do we.
- **Fabric profiles**: each protocol's bandwidth fraction and per-step latency depend on what the
  ring's worst route crosses: NVLink 4 or 3 (direct or through an NVSwitch), Infinity Fabric, PCIe
  peer-to-peer, PCIe through host memory ("staged": no peer-to-peer between the pair, NCCL copies
  through a host buffer), or the network.
- **NVLS** on NVSwitch domains with in-switch reduction (H100/H200): each GPU sends and receives the
  message once.
- **One-shot custom all-reduce** inside engines (vLLM, SGLang) for small messages on fully
  NVLink-connected groups.
- **Hierarchical** across nodes: reduce-scatter inside each node, all-reduce across nodes on parallel
  rails (one NIC per GPU where the node has them), all-gather inside each node.

Timing contexts: `nccl` as nccl-tests reports (back-to-back iterations, GPU time), `torch` one
torch.distributed call timed on its own (adds the call's host overhead), `engine` inside an engine's
CUDA graph (a smaller launch, custom all-reduce allowed). Constants live in planner.cost.constants,
fitted by benchmarks/fit_collectives.py to the tables in tests/data/collectives.yaml.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Literal

from planner.cost.constants import DEFAULT, Constants, FabricProfile
from planner.errors import InputError
from planner.hardware.memo import Memo
from planner.hardware.topology import Topology

Op = Literal["all-reduce", "all-gather", "reduce-scatter", "all-to-all"]
OPS: tuple[str, ...] = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all")
CONTEXTS: tuple[str, ...] = ("nccl", "torch", "engine")
Context = Literal["nccl", "torch", "engine"]

#: Rings of up to this many GPUs are searched exhaustively ((n-1)!/2 orders); larger ones are
#: ordered by node, PCIe switch and index, as NCCL's topology search does in practice.
EXHAUSTIVE_RING_MAX = 8


@dataclass(frozen=True)
class Ring:
    order: tuple[int, ...]
    bandwidth_bytes_per_s: float  # the worst share of a link among the ring's edges
    hop_latency_s: float  # mean latency of a ring edge's route
    fabric: str  # what the ring's worst route crosses (a key of Constants.fabrics)
    channels: int = 1  # concurrent rings over disjoint links (k-1 on a full mesh of k GPUs)

    @property
    def aggregate_bytes_per_s(self) -> float:
        """What the channels send together out of each GPU: the bandwidth the ring's volume divides."""
        return self.bandwidth_bytes_per_s * self.channels


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


def route_fabric(topo: Topology, a: int, b: int) -> str:
    """The fabric profile of the route from GPU a to GPU b."""
    route = topo.path(a, b)
    if route.link_class == "network":
        return "network"
    if route.staged:
        return "staged"
    if route.link_class == "nvlink":
        link = topo.gpus[a].spec.link
        return "xgmi" if link == "xgmi" else ("nvlink3" if link == "nvlink3" else "nvlink4")
    return "pcie"


_FABRIC_ORDER = ("network", "staged", "pcie", "nvlink3", "xgmi", "nvlink4")  # worst first


def _ring_of(topo: Topology, order: tuple[int, ...]) -> Ring:
    loads: Counter = Counter()
    latency = 0.0
    fabrics = set()
    for a, b in zip(order, order[1:] + order[:1]):
        path = topo.path(a, b)
        latency += path.latency_s
        fabrics.add(route_fabric(topo, a, b))
        for hop in path.hops:
            loads[hop] += 1
    bw = min(topo.graph.edges[u, v]["bandwidth"] / load for (u, v), load in loads.items())
    fabric = next(f for f in _FABRIC_ORDER if f in fabrics)
    return Ring(order, bw, latency / len(order), fabric)


#: The best ring of a GPU group, per sorted GPU ids.
RINGS: Memo[tuple[int, ...], Ring] = Memo("best rings", maxsize=16_384)
#: The slowest link of a full-mesh group, 0.0 for a group that is not one.
MESH_LINKS: Memo[tuple[int, ...], float] = Memo("mesh links", maxsize=16_384)
#: One collective's time inside an engine, per (GPU ids, bytes, op, constants key).
ENGINE_COLLECTIVES: Memo[tuple[tuple[int, ...], int, str, str], float] = Memo("engine collectives", maxsize=65_536)


def fully_switched(topo: Topology, ids: tuple[int, ...]) -> bool:
    """Every pair joined directly (NVSwitch domain or a full mesh of bonds): all rings are alike."""
    switches = {topo.nvswitch_of(i) for i in ids}
    if len(switches) == 1 and None not in switches:
        return True
    return all(len(topo.path(a, b).hops) == 1 for a, b in itertools.combinations(ids, 2))


def mesh_link_bytes_per_s(topo: Topology, gpu_ids: Iterable[int]) -> float | None:
    """The slowest link of a full mesh group (every pair joined by its own direct link), None otherwise."""
    ids = tuple(sorted(gpu_ids))
    if (cached := MESH_LINKS.get(topo, ids)) is None:
        routes = [topo.path(a, b) for a, b in itertools.combinations(ids, 2)]
        direct = len(ids) >= 2 and all(len(r.hops) == 1 for r in routes)
        cached = MESH_LINKS.put(topo, ids, min(r.bandwidth_bytes_per_s for r in routes) if direct else 0.0)
    return cached or None


def best_ring(topo: Topology, gpu_ids: Iterable[int]) -> Ring:
    ids = tuple(sorted(gpu_ids))
    if (cached := RINGS.get(topo, ids)) is not None:
        return cached
    link = mesh_link_bytes_per_s(topo, ids) if len(ids) > 2 else None
    if link is not None:  # a full mesh: k-1 channels, each on its own links
        one = _ring_of(topo, ids)
        ring = Ring(one.order, link, one.hop_latency_s, one.fabric, channels=len(ids) - 1)
    elif len(ids) <= 2 or fully_switched(topo, ids):
        ring = _ring_of(topo, ids)
    elif len(ids) <= EXHAUSTIVE_RING_MAX:
        ring = None
        first, rest = ids[0], ids[1:]
        for perm in itertools.permutations(rest):
            if perm[0] > perm[-1]:
                continue  # a ring and its reverse are the same ring
            cand = _ring_of(topo, (first, *perm))
            if ring is None or (cand.bandwidth_bytes_per_s, -cand.hop_latency_s) > (
                ring.bandwidth_bytes_per_s,
                -ring.hop_latency_s,
            ):
                ring = cand
    else:
        ring = _ring_of(topo, tuple(sorted(ids, key=lambda i: (topo.gpus[i].node_index, i))))
    return RINGS.put(topo, ids, ring)


def _launch(context: str, c: Constants) -> float:
    if context == "engine":
        return c.engine_launch_s
    return c.nccl_launch_s + (c.torch_call_s if context == "torch" else 0.0)


def _protocol_times(steps: int, volume: float, ring: Ring, f: FabricProfile, c: Constants) -> list[tuple[float, str]]:
    """(time beyond the launch, protocol) for each protocol the fabric runs."""
    bw = ring.aggregate_bytes_per_s
    out = [
        (steps * (ring.hop_latency_s + f.ll_step_s) + volume / (bw * f.ll), "LL"),
        (c.simple_extra_s + steps * (ring.hop_latency_s + f.simple_step_s) + volume / (bw * f.simple), "Simple"),
    ]
    if f.ll128 > 0:
        out.append((c.ll128_extra_s + steps * (ring.hop_latency_s + f.ll_step_s) + volume / (bw * f.ll128), "LL128"))
    return out


def _direct_times(
    op: str, n: int, nbytes: int, *, link: float, ring: Ring, f: FabricProfile
) -> list[tuple[float, str]]:
    """(time beyond the launch, variant) of the direct algorithms on a full mesh: each step sends every peer
    its share over that peer's own link, at the fabric's `direct` fraction of it."""

    def t(steps: int, per_link_bytes: float) -> float:
        return steps * (ring.hop_latency_s + f.direct_step_s) + per_link_bytes / (link * f.direct)

    if op == "all-reduce":
        return [(t(1, nbytes), "one-shot"), (t(2, 2 * nbytes / n), "two-shot")]
    return [(t(1, nbytes / n), "one-shot")]


def _flat(op: str, topo: Topology, ids: tuple[int, ...], *, nbytes: int, context: str, c: Constants):
    """Single-node collectives: ring (LL, LL128 or Simple), NVLS, one-shot, direct on full meshes. (time, algorithm,
    protocol)."""
    if op == "all-to-all":
        return _all_to_all(topo, ids, nbytes, context, c)
    n = len(ids)
    ring = best_ring(topo, ids)
    f = c.fabric(ring.fabric)
    if op == "all-reduce":
        steps, volume = 2 * (n - 1), 2 * (n - 1) / n * nbytes
    else:
        steps, volume = n - 1, (n - 1) / n * nbytes
    launch = _launch(context, c)
    options = [(launch + t, "ring", proto) for t, proto in _protocol_times(steps, volume, ring, f, c)]
    link = mesh_link_bytes_per_s(topo, ids) if f.direct > 0 else None
    if link is not None:
        options += [(launch + t, "direct", v) for t, v in _direct_times(op, n, nbytes, link=link, ring=ring, f=f)]
    if op == "all-reduce" and topo.nvls(ids):
        link = min(topo.path(a, b).bandwidth_bytes_per_s for a, b in zip(ids, ids[1:]))
        t = launch + c.nvls_extra_s + nbytes / (link * c.nvls_efficiency)
        options.append((t, "nvls", "Simple"))
    if op == "all-reduce" and context == "engine" and nbytes <= c.one_shot_max_bytes and fully_switched(topo, ids):
        t = c.engine_launch_s + (n - 1) * nbytes / c.one_shot_peer_bytes_per_s
        options.append((t, "one-shot", "custom"))
    return min(options)


def _all_to_all(topo: Topology, ids: tuple[int, ...], nbytes: int, context: str, c: Constants):
    """Every GPU sends nbytes/n to every other at once; shared links divide their bandwidth."""
    n = len(ids)
    chunk = nbytes / n
    loads: defaultdict[tuple[str, str], float] = defaultdict(float)  # bytes per link
    latency = 0.0
    fabrics = set()
    for a in ids:
        for b in ids:
            if a != b:
                path = topo.path(a, b)
                latency = max(latency, path.latency_s)
                fabrics.add(route_fabric(topo, a, b))
                for hop in path.hops:
                    loads[hop] += chunk
    f = c.fabric(next(x for x in _FABRIC_ORDER if x in fabrics))
    transfer = max(load / (topo.graph.edges[u, v]["bandwidth"] * f.simple) for (u, v), load in loads.items())
    return _launch(context, c) + c.simple_extra_s + latency + transfer, "pairwise", "Simple"


def _rails(topo: Topology, groups: list[tuple[int, ...]]) -> tuple[float, float]:
    """Rail r joins the r-th GPU of every node; rails run in parallel and share NICs: (bandwidth, latency)."""
    loads: Counter = Counter()
    net_lat = 0.0
    for r in range(min(len(g) for g in groups)):
        rail = [g[r] for g in groups]
        for a, b in zip(rail, rail[1:] + rail[:1]):
            path = topo.path(a, b)
            net_lat = max(net_lat, path.latency_s)
            for hop in path.hops:
                loads[hop] += 1
    return min(topo.graph.edges[u, v]["bandwidth"] / load for (u, v), load in loads.items()), net_lat


def _hierarchical(op: str, topo: Topology, ids: tuple[int, ...], *, nbytes: int, context: str, c: Constants):
    """Reduce-scatter inside each node, all-reduce across nodes on parallel rails, all-gather inside each
    node (all-gather and reduce-scatter: one intra-node phase). LL or Simple, whichever is faster."""
    by_node: dict[int, list[int]] = {}
    for i in ids:
        by_node.setdefault(topo.gpus[i].node_index, []).append(i)
    groups = [tuple(v) for _, v in sorted(by_node.items())]
    k, m = len(groups), min(len(g) for g in groups)
    rail_bw, net_lat = _rails(topo, groups)
    net = c.fabric("network")
    factor = 2 if op == "all-reduce" else 1
    options = []
    for proto in ("ll", "simple"):
        intra = 0.0
        for g in (g for g in groups if len(g) > 1):
            ring = best_ring(topo, g)
            f = c.fabric(ring.fabric)
            step = f.ll_step_s if proto == "ll" else f.simple_step_s
            intra = max(
                intra,
                (len(g) - 1) * (ring.hop_latency_s + step)
                + (len(g) - 1) / len(g) * nbytes / (ring.aggregate_bytes_per_s * getattr(f, proto)),
            )
        net_step = net.ll_step_s if proto == "ll" else net.simple_step_s
        inter = factor * (k - 1) * (net_lat + net_step) + factor * (k - 1) / k * nbytes / m / (
            rail_bw * getattr(net, proto)
        )
        extra = c.simple_extra_s if proto == "simple" else 0.0
        options.append(
            (_launch(context, c) + extra + factor * intra + inter, "hierarchical", "LL" if proto == "ll" else "Simple")
        )
    return min(options)


def collective_time(
    topo: Topology,
    gpu_ids: Iterable[int],
    nbytes: int,
    op: str = "all-reduce",
    *,
    context: str = "nccl",
    constants: Constants = DEFAULT,
) -> CollectiveEstimate:
    """Predicted time of one collective of `nbytes` (nccl-tests' size convention) over `gpu_ids`."""
    if op not in OPS:
        raise InputError(f"unknown collective '{op}': choose one of {', '.join(OPS)}")
    if context not in CONTEXTS:
        raise InputError(f"unknown timing context '{context}': choose one of {', '.join(CONTEXTS)}")
    ids = tuple(sorted(set(gpu_ids)))
    for i in ids:
        topo.gpu(i)
    if len(ids) != len(list(gpu_ids)):
        raise InputError(f"GPU ids repeat in {list(gpu_ids)}")
    if len(ids) < 2 or nbytes <= 0:
        return CollectiveEstimate(op, len(ids), nbytes, 0.0, "none", "none")
    nodes = {topo.gpus[i].node_index for i in ids}
    if len(nodes) == 1 or op == "all-to-all":
        t, algo, proto = _flat(op, topo, ids, nbytes=nbytes, context=context, c=constants)
    else:
        t, algo, proto = _hierarchical(op, topo, ids, nbytes=nbytes, context=context, c=constants)
    return CollectiveEstimate(op, len(ids), nbytes, t, algo, proto)


def p2p_time(
    topo: Topology, a: int, b: int, nbytes: int, *, context: str = "engine", constants: Constants = DEFAULT
) -> float:
    """One send/recv of `nbytes` from GPU a to GPU b (pipeline-stage hand-off)."""
    if a == b or nbytes <= 0:
        return 0.0
    path = topo.path(a, b)
    f = constants.fabric(route_fabric(topo, a, b))
    simple = nbytes > 64 * 1024
    step = f.simple_step_s if simple else f.ll_step_s
    bw = path.bandwidth_bytes_per_s * (f.simple if simple else f.ll)
    return _launch(context, constants) + path.latency_s + step + nbytes / bw


def engine_collective_s(topo: Topology, gpu_ids: Iterable[int], nbytes: float, op: str, constants: Constants) -> float:
    """Time of one collective inside an engine (CUDA graphs, custom all-reduce), memoised by value."""
    ids = tuple(sorted(gpu_ids))
    if len(ids) < 2 or nbytes <= 0:
        return 0.0
    key = (ids, int(nbytes), op, constants.key)
    if (cached := ENGINE_COLLECTIVES.get(topo, key)) is not None:
        return cached
    return ENGINE_COLLECTIVES.put(
        topo, key, collective_time(topo, ids, int(nbytes), op, context="engine", constants=constants).time_s
    )
