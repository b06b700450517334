"""A machine as a networkx link graph, and the route NCCL takes between two GPUs.

Graph nodes are GPUs, NVSwitch domains, PCIe switches, CPU sockets (root complexes), NICs and the
network fabric; every edge has a per-direction bandwidth and a latency. The route between two GPUs
is a direct NVLink bond, else the node's NVSwitch, else PCIe through the switches and sockets
(peer-to-peer), else, where peer-to-peer is off for the pair, up to host memory on the sender's
socket and down again; across nodes it goes through the GPUs' nearest NICs and the fabric.

GPU ids are global: node 0's GPUs first (by local index), then node 1's, and so on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable

import networkx as nx

from planner.errors import InputError
from planner.hardware.gpus import GpuSpec, find_gpu_type
from planner.hardware.memo import Memo
from planner.hardware.schema import NodeDef, TopologyDef, custom_specs, expanded_node_names

#: Link classes for traffic breakdowns.
LINK_CLASSES = ("nvlink", "pcie", "socket", "network")


@dataclass(frozen=True)
class Gpu:
    id: int
    node: str
    node_index: int
    local_index: int
    spec: GpuSpec

    @property
    def key(self) -> str:
        return f"{self.node}/gpu{self.local_index}"


@dataclass(frozen=True)
class Route:
    """A route between two GPUs: directed hops, bottleneck bandwidth, summed latency."""

    hops: tuple[tuple[str, str], ...]
    bandwidth_bytes_per_s: float
    latency_s: float
    kinds: tuple[str, ...]
    staged: bool = False  # through host memory: no peer-to-peer between the two GPUs

    @property
    def link_class(self) -> str:
        """The slowest class of link on the route, for traffic breakdowns."""
        if "network" in self.kinds or "nic" in self.kinds:
            return "network"
        for kind in ("socket", "pcie"):
            if kind in self.kinds:
                return kind
        return "nvlink"


#: The what-if target that scales each kind of graph edge (NVSwitch ports count as NVLink).
LINK_TARGET = {"nvlink": "nvlink", "nvswitch": "nvlink", "pcie": "pcie", "network": "network", "socket": "socket"}


@dataclass(frozen=True)
class Scale:
    """Factors a what-if applies while a machine is built (planner.hardware.whatif): (target, factor) pairs."""

    factors: tuple[tuple[str, float], ...] = ()

    def of(self, target: str) -> float:
        return dict(self.factors).get(target, 1.0)

    def describe(self) -> str:
        return ",".join(f"{k}={v:g}x" for k, v in self.factors)

    def spec(self, spec: GpuSpec) -> GpuSpec:
        """A GPU's figures under the factors (hbm, memory, flops, nvlink, pcie)."""
        f = dict(self.factors)
        update: dict[str, Any] = {}
        if "hbm" in f:
            update["hbm_bytes_per_s"] = spec.hbm_bytes_per_s * f["hbm"]
        if "memory" in f:
            update["memory_bytes"] = int(spec.memory_bytes * f["memory"])
        if "flops" in f:
            update["flops_per_s"] = {k: v * f["flops"] for k, v in spec.flops_per_s.items()}
        if "nvlink" in f:
            update["nvlink_bytes_per_s_per_link"] = spec.nvlink_bytes_per_s_per_link * f["nvlink"]
        if "pcie" in f:
            update["pcie_bytes_per_s"] = spec.pcie_bytes_per_s * f["pcie"]
        return spec.model_copy(update=update) if update else spec


#: Per GPU group, what streaming from host memory reaches per GPU (Topology.host_stream_bytes_per_s).
HOST_STREAMS: Memo[tuple[int, ...], float] = Memo("host-memory streaming", maxsize=16_384)


class Topology:
    """A loaded topology: its definition, its GPUs and its networkx link graph, built once and not changed.

    A what-if (`scale`) is applied while building: the machine with some resources scaled is a new Topology,
    named and hashed as such. Values derived from a topology are memoised by the code computing them
    (planner.hardware.memo), keyed on values.
    """

    def __init__(
        self, definition: TopologyDef, *, source: str = "<memory>", text: str | None = None, scale: Scale = Scale()
    ):
        self.definition = definition
        self.scale = scale
        what = scale.describe()
        self.name = f"{definition.name} ({what})" if what else definition.name
        self.source = source
        self.base_text = text or definition.model_dump_json()  # the machine as defined, before any what-if
        self.text = self.base_text + (f"\n# what-if: {what}\n" if what else "")
        self.hash = hashlib.sha256(self.text.encode()).hexdigest()[:16]
        self.gpus: list[Gpu] = []
        self.graph = nx.Graph(name=definition.name)
        self._p2p: dict[str, bool] = {}
        self._p2p_level: dict[str, str] = {}
        self._host_memory: dict[str, Any] = {}
        self._sockets: dict[str, int] = {}
        self._no_p2p: set[frozenset[int]] = set()
        self._socket_of_gpu: dict[int, str] = {}
        self._nearest: dict[int, list[list[str]]] = {}
        self.node_class: dict[str, int] = {}
        self.n_nodes = self._build_nodes(custom_specs(definition))
        if self.n_nodes > 1:
            self._add_fabric()
        self._routes: dict[tuple[int, int], Route] = {}

    def _build_nodes(self, extra: dict[str, GpuSpec]) -> int:
        names = iter(expanded_node_names(self.definition.nodes))
        node_index = 0
        host = self.scale.of("host")
        for k, node in enumerate(self.definition.nodes):
            for _ in range(node.count):
                name = next(names)
                self.node_class[name] = k
                self._p2p[name], self._p2p_level[name], self._sockets[name] = node.p2p, node.p2p_level, node.sockets
                tier = node.host_memory
                self._host_memory[name] = (
                    tier
                    if tier is None or host == 1.0
                    else tier.model_copy(update={"bandwidth": tier.bandwidth * host})
                )
                built = _NodeBuilder(
                    self.graph, self.gpus, name=name, node_index=node_index, node=node, extra=extra, scale=self.scale
                ).build()
                self._no_p2p |= built.no_p2p
                self._socket_of_gpu.update(built.socket_of_gpu)
                node_index += 1
        return node_index

    def _add_fabric(self) -> None:
        net = self.definition.network
        self.graph.add_node("fabric", kind="fabric")
        for n, data in list(self.graph.nodes(data=True)):
            if data.get("kind") == "nic":
                self.graph.add_edge(
                    n,
                    "fabric",
                    kind="network",
                    latency=net.latency,
                    bandwidth=min(net.bandwidth, data["bandwidth"]) * self.scale.of("network"),
                )

    # Queries -----------------------------------------------------------------------------
    @property
    def n_gpus(self) -> int:
        return len(self.gpus)

    def gpu(self, gpu_id: int) -> Gpu:
        if isinstance(gpu_id, bool) or not isinstance(gpu_id, int) or not 0 <= gpu_id < len(self.gpus):
            raise InputError(f"GPU id {gpu_id} does not exist in {self.name} (ids 0..{len(self.gpus) - 1})")
        return self.gpus[gpu_id]

    @cached_property
    def _node_gpus(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for gpu in self.gpus:
            out.setdefault(gpu.node, []).append(gpu.id)
        return out

    def node_gpus(self) -> dict[str, list[int]]:
        """GPU ids per node, in node order."""
        return self._node_gpus

    def nvswitch_of(self, gpu_id: int) -> str | None:
        key = self.gpus[gpu_id].key
        for nb in self.graph.neighbors(key):
            if self.graph.nodes[nb]["kind"] == "nvswitch":
                return nb
        return None

    def nvls(self, gpu_ids: Iterable[int]) -> bool:
        """True when every GPU of the group is on one NVSwitch domain with in-switch reduction."""
        switches = {self.nvswitch_of(i) for i in gpu_ids}
        return len(switches) == 1 and None not in switches and bool(self.graph.nodes[switches.pop()].get("nvls"))

    def p2p(self, a: int, b: int) -> bool:
        """PCIe peer-to-peer between two GPUs of one node: off node-wide, for this pair, or beyond the node's
        p2p_level (NCCL's rule: the pair's PCIe distance must not exceed the level)."""
        node = self.gpus[a].node
        if not self._p2p[node] or frozenset((a, b)) in self._no_p2p:
            return False
        return _P2P_DISTANCE[pcie_relation(self, a, b)] <= _P2P_LEVEL_RANK[self._p2p_level[node]]

    def socket_of(self, gpu_id: int) -> str:
        return self._socket_of_gpu[gpu_id]

    def host_memory(self, gpu_id: int) -> Any:
        """The host-memory tier of a GPU's node (capacity and bandwidth per socket), or None."""
        return self._host_memory.get(self.gpu(gpu_id).node)

    def has_host_memory(self, gpu_ids: Iterable[int] | None = None) -> bool:
        """Whether any of these GPUs (default: any of the machine's) has a host-memory tier."""
        ids = (g.id for g in self.gpus) if gpu_ids is None else gpu_ids
        return any(self.host_memory(g) is not None for g in ids)

    def host_stream_bytes_per_s(self, gpu_ids: Iterable[int]) -> float:
        """Per GPU, what streaming from host memory reaches when every GPU of the group streams at once: each GPU's
        path to its socket (a PCIe uplink shared by several divides) and the socket memory shared by its GPUs."""
        ids = tuple(sorted(gpu_ids))
        if (rate := HOST_STREAMS.get(self, ids)) is None:
            rate = HOST_STREAMS.put(self, ids, self._host_stream(ids))
        return rate

    def host_capacity_bytes(self, node: str) -> float:
        """Host-memory tier capacity of a node copy (every socket's), 0 without one."""
        tier = self._host_memory.get(node)
        return 0.0 if tier is None else tier.capacity * self._sockets.get(node, 1)

    def _host_stream(self, ids: tuple[int, ...]) -> float:
        loads: dict[tuple[str, str], int] = {}
        routes = {}
        for g in ids:
            gpu = self.gpus[g]
            route = self._pcie_route(gpu.key, self._socket_of_gpu[g], gpu.node)
            hops = list(zip(route, route[1:]))
            routes[g] = hops
            for hop in hops:
                loads[hop] = loads.get(hop, 0) + 1
        per_socket: dict[str, int] = {}
        for g in ids:
            per_socket[self._socket_of_gpu[g]] = per_socket.get(self._socket_of_gpu[g], 0) + 1
        rates = []
        for g in ids:
            tier = self.host_memory(g)
            if tier is None:
                return 0.0
            rate = tier.bandwidth / per_socket[self._socket_of_gpu[g]]
            for u, v in routes[g]:
                rate = min(rate, self.graph.edges[u, v]["bandwidth"] / loads[(u, v)])
            rates.append(rate)
        return min(rates)

    def path(self, a: int, b: int) -> Route:
        """The route NCCL would take from GPU a to GPU b (see the module docstring)."""
        if (a, b) not in self._routes:
            ga, gb = self.gpu(a), self.gpu(b)
            if a == b:
                raise InputError("a path needs two different GPUs")
            self._routes[(a, b)] = self._intra(ga, gb) if ga.node == gb.node else self._inter(ga, gb)
        return self._routes[(a, b)]

    def link_class(self, a: int, b: int) -> str:
        return self.path(a, b).link_class

    def bandwidth_matrix(self) -> list[list[float]]:
        n = self.n_gpus
        return [[0.0 if i == j else self.path(i, j).bandwidth_bytes_per_s for j in range(n)] for i in range(n)]

    # Routing -----------------------------------------------------------------------------
    def _route(self, nodes: list[str], staged: bool = False) -> Route:
        hops = tuple(zip(nodes, nodes[1:]))
        edges = [self.graph.edges[u, v] for u, v in hops]
        return Route(
            hops,
            min(e["bandwidth"] for e in edges),
            sum(e["latency"] for e in edges),
            tuple(e["kind"] for e in edges),
            staged,
        )

    def _intra(self, ga: Gpu, gb: Gpu) -> Route:
        candidates = []
        if self.graph.has_edge(ga.key, gb.key) and self.graph.edges[ga.key, gb.key]["kind"] == "nvlink":
            candidates.append(self._route([ga.key, gb.key]))
        sw_a, sw_b = self.nvswitch_of(ga.id), self.nvswitch_of(gb.id)
        if sw_a is not None and sw_a == sw_b:
            candidates.append(self._route([ga.key, sw_a, gb.key]))
        if not candidates:
            if self.p2p(ga.id, gb.id):
                candidates.append(self._route(self._pcie_route(ga.key, gb.key, ga.node)))
            else:  # no peer-to-peer: up to host memory on a's socket, then down to b
                cpu = self._socket_of_gpu[ga.id]
                up = self._pcie_route(ga.key, cpu, ga.node)
                down = self._pcie_route(cpu, gb.key, ga.node)
                candidates.append(self._route(up + down[1:], staged=True))
        return max(candidates, key=lambda p: (p.bandwidth_bytes_per_s, -p.latency_s))

    def _inter(self, ga: Gpu, gb: Gpu) -> Route:
        return self._route(self._nic_for(ga) + ["fabric"] + list(reversed(self._nic_for(gb))))

    @cached_property
    def _graph_nodes_by_node(self) -> dict[str, list[str]]:
        by_node: dict[str, list[str]] = {}
        for n, d in self.graph.nodes(data=True):
            if "node" in d:
                by_node.setdefault(d["node"], []).append(n)
        return by_node

    @cached_property
    def _pcie_views(self) -> dict[str, nx.Graph]:
        """Per node: the subgraph of PCIe and socket links (no NVLink, no fabric), built when a node is first asked
        for (a 10,000-GPU machine has 1,280 nodes; a solve touches a few)."""
        topo = self

        class _Views(dict):
            def __missing__(self, name: str) -> nx.Graph:
                sub = topo.graph.subgraph(topo._graph_nodes_by_node[name])
                view = self[name] = nx.Graph(
                    sub.edge_subgraph([(u, v) for u, v, d in sub.edges(data=True) if d["kind"] in ("pcie", "socket")])
                )
                return view

        return _Views()

    def _pcie_route(self, a: str, b: str, node: str) -> list[str]:
        return nx.shortest_path(self._pcie_views[node], a, b, weight="latency")

    def _nearest_nics(self, gpu: Gpu) -> list[list[str]]:
        """The routes to the NICs closest to a GPU (fewest hops), in NIC-name order."""
        if gpu.id not in self._nearest:
            view = self._pcie_views[gpu.node]
            routes = [
                nx.shortest_path(view, gpu.key, n, weight="latency")
                for n in sorted(view.nodes)
                if self.graph.nodes[n]["kind"] == "nic"
            ]
            if not routes:
                raise InputError(f"{self.name}: GPU {gpu.id} on node {gpu.node} has no path to a NIC")
            hops = min(len(r) for r in routes)
            self._nearest[gpu.id] = [r for r in routes if len(r) == hops]
        return self._nearest[gpu.id]

    def _nic_for(self, gpu: Gpu) -> list[str]:
        """Rail-optimised: GPUs that share their nearest NICs take one each, in GPU order (two GPUs and two
        NICs behind one PCIe switch: the first GPU gets the first NIC, the second the second)."""
        routes = self._nearest_nics(gpu)
        nearest = [r[-1] for r in routes]
        sharing = [
            i for i in self.node_gpus()[gpu.node] if [r[-1] for r in self._nearest_nics(self.gpus[i])] == nearest
        ]
        return routes[sharing.index(gpu.id) % len(routes)]


@dataclass
class _NodeFacts:
    """What building a node copy learns beyond its graph: GPU pairs without peer-to-peer, each GPU's socket."""

    no_p2p: set[frozenset[int]]
    socket_of_gpu: dict[int, str]


class _NodeBuilder:
    """Adds one node copy's GPUs, sockets and links to a graph and a GPU list (scaled by a what-if), and returns
    the facts the Topology keeps about them."""

    def __init__(
        self,
        graph: nx.Graph,
        gpus: list[Gpu],
        *,
        name: str,
        node_index: int,
        node: NodeDef,
        extra: dict[str, GpuSpec],
        scale: Scale,
    ):
        self.g, self.gpus, self.name, self.node_index, self.node = graph, gpus, name, node_index, node
        self.extra, self.scale = extra, scale
        self.local: dict[int, str] = {}
        self.facts = _NodeFacts(set(), {})

    def build(self) -> _NodeFacts:
        self._gpus_and_sockets()
        self._gpu_links()
        for nic in self.node.nics:
            self.g.add_node(f"{self.name}/{nic.name}", kind="nic", node=self.name, bandwidth=nic.bandwidth)
        if self.node.pcie_switches:
            self._pcie_switches()
        else:
            self._root_ports()
        return self.facts

    def _edge(self, a: str, b: str, *, kind: str, bandwidth: float, latency: float) -> None:
        self.g.add_edge(a, b, kind=kind, bandwidth=bandwidth * self.scale.of(LINK_TARGET[kind]), latency=latency)

    def _gpus_and_sockets(self) -> None:
        node = self.node
        first = len(self.gpus)
        for gd in sorted(node.gpu_defs(), key=lambda d: d.index):
            gpu = Gpu(
                len(self.gpus),
                self.name,
                self.node_index,
                gd.index,
                self.scale.spec(find_gpu_type(gd.type, self.extra)),
            )
            self.gpus.append(gpu)
            self.local[gd.index] = gpu.key
            self.g.add_node(gpu.key, kind="gpu", gpu_id=gpu.id, node=self.name)
        ids = {gd.index: first + k for k, gd in enumerate(sorted(node.gpu_defs(), key=lambda d: d.index))}
        self.facts.no_p2p.update(frozenset((ids[a], ids[b])) for a, b in node.no_p2p)
        for s in range(node.sockets):
            self.g.add_node(f"{self.name}/cpu{s}", kind="cpu", node=self.name)
        for a in range(node.sockets):
            for b in range(a + 1, node.sockets):
                self._edge(
                    f"{self.name}/cpu{a}",
                    f"{self.name}/cpu{b}",
                    kind="socket",
                    bandwidth=node.socket_link.bandwidth,
                    latency=node.socket_link.latency,
                )

    def _gpu_links(self) -> None:
        node, local, g = self.node, self.local, self.g
        if node.nvswitch:
            sw = f"{self.name}/nvswitch"
            g.add_node(sw, kind="nvswitch", node=self.name, nvls=node.nvswitch.nvls)
            members = node.nvswitch.gpus if node.nvswitch.gpus is not None else list(local)
            for i in members:
                self._edge(
                    local[i], sw, kind="nvswitch", bandwidth=node.nvswitch.bandwidth, latency=node.nvswitch.latency / 2
                )
        if node.mesh:
            for a in local:
                for b in local:
                    if a < b:
                        self._edge(
                            local[a], local[b], kind="nvlink", bandwidth=node.mesh.bandwidth, latency=node.mesh.latency
                        )
        for bond in node.nvlink:
            ka, kb = (local[i] for i in bond.gpus)
            self._edge(ka, kb, kind="nvlink", bandwidth=bond.links * bond.link_bandwidth, latency=bond.latency)

    def _pcie_switches(self) -> None:
        nic_defs = {n.name: n for n in self.node.nics}
        for sw in self.node.pcie_switches:
            key = f"{self.name}/{sw.name}"
            cpu = f"{self.name}/cpu{sw.socket}"
            self.g.add_node(key, kind="pcie_switch", node=self.name)
            self._edge(key, cpu, kind="pcie", bandwidth=sw.uplink, latency=sw.latency / 2)
            for i in sw.gpus:
                self._edge(self.local[i], key, kind="pcie", bandwidth=sw.bandwidth, latency=sw.latency / 2)
                self.facts.socket_of_gpu[self.g.nodes[self.local[i]]["gpu_id"]] = cpu
            for nic in sw.nics:
                self._edge(
                    f"{self.name}/{nic}",
                    key,
                    kind="pcie",
                    bandwidth=min(sw.bandwidth, nic_defs[nic].bandwidth * 2),
                    latency=nic_defs[nic].latency / 2,
                )

    def _root_ports(self) -> None:
        node = self.node
        per_socket = max(1, -(-len(self.local) // node.sockets))
        for pos, i in enumerate(sorted(self.local)):
            cpu = f"{self.name}/cpu{min(pos // per_socket, node.sockets - 1)}"
            self._edge(self.local[i], cpu, kind="pcie", bandwidth=node.pcie.bandwidth, latency=node.pcie.latency)
            self.facts.socket_of_gpu[self.g.nodes[self.local[i]]["gpu_id"]] = cpu
        for k, nic in enumerate(node.nics):
            cpu = f"{self.name}/cpu{k * node.sockets // max(1, len(node.nics))}"
            self._edge(
                f"{self.name}/{nic.name}", cpu, kind="pcie", bandwidth=node.pcie.bandwidth, latency=nic.latency / 2
            )


#: NCCL's PCIe path types by distance (src/graph/topo.h): PIX one switch, PXB several, PHB one root complex,
#: SYS across sockets. nvidia-smi's NODE is NCCL's PHB.
_P2P_LEVEL_RANK = {"pix": 1, "pxb": 2, "phb": 3, "sys": 4}
_P2P_DISTANCE = {"PIX": 1, "NODE": 3, "SYS": 4}


def pcie_relation(topo: Topology, a: int, b: int) -> str:
    """How two GPUs meet on PCIe, in nvidia-smi's words: PIX (one switch), NODE (one socket),
    SYS (across sockets), NET (across nodes)."""
    ga, gb = topo.gpu(a), topo.gpu(b)
    if ga.node != gb.node:
        return "NET"
    g = topo.graph

    def switches(key: str) -> set[str]:
        return {n for n in g.neighbors(key) if g.nodes[n]["kind"] == "pcie_switch"}

    if switches(ga.key) & switches(gb.key):
        return "PIX"
    return "NODE" if topo.socket_of(a) == topo.socket_of(b) else "SYS"


def nvlink_links(topo: Topology, a: int, b: int) -> int:
    """NVLinks between two GPUs (direct bond or through their NVSwitch), 0 when none."""
    path = topo.path(a, b)
    if path.link_class != "nvlink" or topo.gpus[a].spec.vendor != "nvidia":
        return 0
    return round(path.bandwidth_bytes_per_s / topo.gpus[a].spec.nvlink_bytes_per_s_per_link)
