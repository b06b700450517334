"""Topology YAML: schema, loading, the link graph, and paths between GPUs.

A machine is a graph of real links, not one bandwidth number. Nodes of the graph are GPUs,
NVSwitch domains, PCIe switches, CPU sockets (root complexes), NICs and the network fabric; every
edge has a per-direction bandwidth and a latency. The bandwidth between two GPUs is the bottleneck
of the path NCCL would take: a direct NVLink bond, else the node's NVSwitch, else PCIe through the
switches and sockets (through host memory where peer-to-peer is off), and across nodes through the
GPUs' nearest NICs and the fabric.

GPU ids are global: node 0's GPUs first (by local index), then node 1's, and so on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Optional

import networkx as nx
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from planner.errors import ConfigError, InputError
from planner.gpus import GpuSpec, find_gpu_type
from planner.resources import topologies_dir
from planner.units import parse_bandwidth, parse_bytes, parse_flops, parse_time

Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth)]
Latency = Annotated[float, BeforeValidator(parse_time)]
Bytes = Annotated[int, BeforeValidator(lambda v: parse_bytes(v, allow_plain=False))]
Flops = Annotated[float, BeforeValidator(parse_flops)]

LinkKind = Literal["nvlink", "nvswitch", "pcie", "socket", "nic", "network"]
#: Link classes for traffic breakdowns.
LINK_CLASSES = ("nvlink", "pcie", "socket", "network")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Link(_Strict):
    bandwidth: Bandwidth = Field(description="per direction, e.g. 450GB/s or 400Gb/s")
    latency: Latency = Field(description="one hop, e.g. 1us")


class GpuTypeDef(_Strict):
    memory: Bytes
    hbm_bandwidth: Bandwidth
    flops: dict[str, Flops] = Field(description="dense FLOP/s by dtype: {bf16: 989TFLOPS}")
    link: str = "pcie5"


class GpusShorthand(_Strict):
    type: str
    count: int = Field(gt=0, le=64)


class GpuDef(_Strict):
    index: int = Field(ge=0)
    type: str


class NvSwitch(Link):
    gpus: Optional[list[int]] = Field(None, description="local GPU indices on this domain; default all")
    nvls: bool = Field(False, description="NVLink SHARP in-switch reduction (H100/H200 NVSwitch)")


class NvLinkBond(_Strict):
    gpus: tuple[int, int]
    links: int = Field(gt=0)
    link_bandwidth: Bandwidth = Field(description="one link, per direction")
    latency: Latency


class Mesh(Link):
    """Every pair of GPUs joined by a direct link (AMD Infinity Fabric on MI300X)."""


class PcieSwitch(_Strict):
    name: str
    socket: int = Field(0, ge=0)
    gpus: list[int] = []
    nics: list[str] = []
    bandwidth: Bandwidth = Field(description="each downstream port (GPU or NIC), per direction")
    uplink: Bandwidth = Field(description="the switch's link to its CPU socket, per direction")
    latency: Latency


class Nic(_Strict):
    name: str
    bandwidth: Bandwidth
    latency: Latency
    kind: Literal["infiniband", "roce", "ethernet"] = "infiniband"


class NodeDef(_Strict):
    name: str
    count: int = Field(1, gt=0, le=512, description="identical copies of this node")
    gpus: GpusShorthand | list[GpuDef]
    sockets: int = Field(1, gt=0, le=8)
    socket_link: Optional[Link] = None
    nvswitch: Optional[NvSwitch] = None
    nvlink: list[NvLinkBond] = []
    mesh: Optional[Mesh] = None
    pcie_switches: list[PcieSwitch] = []
    pcie: Optional[Link] = Field(None, description="GPUs on their socket's root ports, when no switches are listed")
    nics: list[Nic] = []
    p2p: bool = Field(True, description="PCIe peer-to-peer between GPUs; off, traffic bounces through host memory")

    def gpu_defs(self) -> list[GpuDef]:
        if isinstance(self.gpus, GpusShorthand):
            return [GpuDef(index=i, type=self.gpus.type) for i in range(self.gpus.count)]
        return list(self.gpus)

    @model_validator(mode="after")
    def _check_references(self):
        indices = [g.index for g in self.gpu_defs()]
        if len(set(indices)) != len(indices):
            raise ValueError(f"GPU indices repeat: {sorted(indices)}")
        known = set(indices)

        def check(where: str, ids):
            for i in ids:
                if i not in known:
                    raise ValueError(f"{where} names GPU {i}, but this node's GPUs are {sorted(known)}")

        if self.nvswitch and self.nvswitch.gpus is not None:
            check("nvswitch.gpus", self.nvswitch.gpus)
        for k, bond in enumerate(self.nvlink):
            check(f"nvlink[{k}].gpus", bond.gpus)
            if bond.gpus[0] == bond.gpus[1]:
                raise ValueError(f"nvlink[{k}] joins GPU {bond.gpus[0]} to itself")
        nic_names = {n.name for n in self.nics}
        for k, sw in enumerate(self.pcie_switches):
            check(f"pcie_switches[{k}] ({sw.name}).gpus", sw.gpus)
            if sw.socket >= self.sockets:
                raise ValueError(f"pcie_switches[{k}] ({sw.name}) is on socket {sw.socket}, but the node has {self.sockets}")
            for nic in sw.nics:
                if nic not in nic_names:
                    raise ValueError(f"pcie_switches[{k}] ({sw.name}) names NIC '{nic}', not among nics {sorted(nic_names)}")
        on_switch = [g for sw in self.pcie_switches for g in sw.gpus]
        if len(on_switch) != len(set(on_switch)):
            raise ValueError("a GPU is listed on two PCIe switches")
        if self.pcie_switches and set(on_switch) != known:
            raise ValueError(f"GPUs {sorted(known - set(on_switch))} are on no PCIe switch")
        if not self.pcie_switches and self.pcie is None:
            raise ValueError("give pcie_switches or pcie (how the GPUs reach their CPU)")
        if self.sockets > 1 and self.socket_link is None:
            raise ValueError(f"{self.sockets} sockets need a socket_link (bandwidth and latency)")
        return self


class TopologyDef(_Strict):
    name: str
    description: str = ""
    sources: list[str] = []
    gpu_types: dict[str, GpuTypeDef] = {}
    nodes: list[NodeDef] = Field(min_length=1)
    network: Optional[Link] = Field(None, description="the fabric joining the nodes' NICs")

    @model_validator(mode="after")
    def _check(self):
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise ValueError(f"node names repeat: {names}")
        extra = {k: _custom_spec(k, v) for k, v in self.gpu_types.items()}
        for i, node in enumerate(self.nodes):
            for g in node.gpu_defs():
                if find_gpu_type(g.type, extra) is None:
                    from planner.gpus import GPU_SPECS

                    raise ValueError(
                        f"nodes[{i}] ({node.name}): unknown GPU type '{g.type}'; known: {', '.join(GPU_SPECS)} "
                        "(or define it under gpu_types)"
                    )
        total_nodes = sum(n.count for n in self.nodes)
        if total_nodes > 1:
            if self.network is None:
                raise ValueError(f"{total_nodes} nodes need a network (bandwidth and latency)")
            for node in self.nodes:
                if not node.nics:
                    raise ValueError(f"node {node.name} has no NICs, but the topology has {total_nodes} nodes")
        return self


def _custom_spec(name: str, d: GpuTypeDef) -> GpuSpec:
    return GpuSpec(name=name, memory_bytes=d.memory, hbm_bytes_per_s=d.hbm_bandwidth, flops_per_s=d.flops, link=d.link)


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
class Path_:
    """A route between two graph nodes: directed hops, bottleneck bandwidth, summed latency."""

    hops: tuple[tuple[str, str], ...]
    bandwidth_bytes_per_s: float
    latency_s: float
    kinds: tuple[str, ...]

    @property
    def link_class(self) -> str:
        """The slowest class of link on the path, for traffic breakdowns."""
        for kind in ("network", "socket", "pcie"):
            if kind in self.kinds or (kind == "network" and "nic" in self.kinds):
                return kind
        return "nvlink"


class Topology:
    """A loaded topology: its definition, its GPUs and its networkx link graph."""

    def __init__(self, definition: TopologyDef, *, source: str = "<memory>", text: str | None = None):
        self.definition = definition
        self.name = definition.name
        self.source = source
        self.hash = hashlib.sha256((text or definition.model_dump_json()).encode()).hexdigest()[:16]
        extra = {k: _custom_spec(k, v) for k, v in definition.gpu_types.items()}
        self.gpus: list[Gpu] = []
        self.graph = nx.Graph(name=definition.name)
        self._p2p: dict[str, bool] = {}
        self._socket_of_gpu: dict[int, str] = {}
        node_index = 0
        for node in definition.nodes:
            for copy in range(node.count):
                name = node.name if node.count == 1 else f"{node.name}{copy}"
                self._add_node(name, node_index, node, extra)
                node_index += 1
        self.n_nodes = node_index
        if self.n_nodes > 1:
            self.graph.add_node("fabric", kind="fabric")
            for n, data in list(self.graph.nodes(data=True)):
                if data.get("kind") == "nic":
                    net = definition.network
                    self.graph.add_edge(n, "fabric", kind="network", bandwidth=min(net.bandwidth, data["bandwidth"]),
                                        latency=net.latency)
        self._path_cache: dict[tuple[int, int], Path_] = {}

    # Construction ------------------------------------------------------------------------
    def _add_node(self, name: str, node_index: int, node: NodeDef, extra: dict[str, GpuSpec]) -> None:
        g = self.graph
        self._p2p[name] = node.p2p
        local: dict[int, str] = {}
        for gd in sorted(node.gpu_defs(), key=lambda d: d.index):
            gpu = Gpu(len(self.gpus), name, node_index, gd.index, find_gpu_type(gd.type, extra))
            self.gpus.append(gpu)
            local[gd.index] = gpu.key
            g.add_node(gpu.key, kind="gpu", gpu_id=gpu.id, node=name)
        for s in range(node.sockets):
            g.add_node(f"{name}/cpu{s}", kind="cpu", node=name)
        if node.sockets > 1:
            for a in range(node.sockets):
                for b in range(a + 1, node.sockets):
                    g.add_edge(f"{name}/cpu{a}", f"{name}/cpu{b}", kind="socket",
                               bandwidth=node.socket_link.bandwidth, latency=node.socket_link.latency)
        if node.nvswitch:
            sw = f"{name}/nvswitch"
            g.add_node(sw, kind="nvswitch", node=name, nvls=node.nvswitch.nvls)
            members = node.nvswitch.gpus if node.nvswitch.gpus is not None else list(local)
            for i in members:
                g.add_edge(local[i], sw, kind="nvswitch", bandwidth=node.nvswitch.bandwidth,
                           latency=node.nvswitch.latency / 2)
        if node.mesh:
            for a in local:
                for b in local:
                    if a < b:
                        g.add_edge(local[a], local[b], kind="nvlink", bandwidth=node.mesh.bandwidth,
                                   latency=node.mesh.latency)
        for bond in node.nvlink:
            a, b = (local[i] for i in bond.gpus)
            g.add_edge(a, b, kind="nvlink", bandwidth=bond.links * bond.link_bandwidth, latency=bond.latency)
        nic_defs = {n.name: n for n in node.nics}
        for nic in node.nics:
            g.add_node(f"{name}/{nic.name}", kind="nic", node=name, bandwidth=nic.bandwidth)
        if node.pcie_switches:
            for sw in node.pcie_switches:
                key = f"{name}/{sw.name}"
                g.add_node(key, kind="pcie_switch", node=name)
                g.add_edge(key, f"{name}/cpu{sw.socket}", kind="pcie", bandwidth=sw.uplink, latency=sw.latency / 2)
                for i in sw.gpus:
                    g.add_edge(local[i], key, kind="pcie", bandwidth=sw.bandwidth, latency=sw.latency / 2)
                    self._socket_of_gpu[self.graph.nodes[local[i]]["gpu_id"]] = f"{name}/cpu{sw.socket}"
                for nic in sw.nics:
                    g.add_edge(f"{name}/{nic}", key, kind="pcie", bandwidth=min(sw.bandwidth, nic_defs[nic].bandwidth * 2),
                               latency=nic_defs[nic].latency / 2)
        else:
            per_socket = max(1, -(-len(local) // node.sockets))
            for pos, i in enumerate(sorted(local)):
                cpu = f"{name}/cpu{min(pos // per_socket, node.sockets - 1)}"
                g.add_edge(local[i], cpu, kind="pcie", bandwidth=node.pcie.bandwidth, latency=node.pcie.latency)
                self._socket_of_gpu[self.graph.nodes[local[i]]["gpu_id"]] = cpu
            for k, nic in enumerate(node.nics):
                cpu = f"{name}/cpu{k * node.sockets // max(1, len(node.nics))}"
                g.add_edge(f"{name}/{nic.name}", cpu, kind="pcie", bandwidth=node.pcie.bandwidth, latency=nic.latency / 2)

    # Queries -----------------------------------------------------------------------------
    @property
    def n_gpus(self) -> int:
        return len(self.gpus)

    def gpu(self, gpu_id: int) -> Gpu:
        if not 0 <= gpu_id < len(self.gpus):
            raise InputError(f"GPU id {gpu_id} does not exist in {self.name} (ids 0..{len(self.gpus) - 1})")
        return self.gpus[gpu_id]

    def node_gpus(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for gpu in self.gpus:
            out.setdefault(gpu.node, []).append(gpu.id)
        return out

    def nvswitch_of(self, gpu_id: int) -> str | None:
        key = self.gpus[gpu_id].key
        for nb in self.graph.neighbors(key):
            if self.graph.nodes[nb]["kind"] == "nvswitch":
                return nb
        return None

    def nvls(self, gpu_ids) -> bool:
        """True when every GPU of the group is on one NVSwitch domain with in-switch reduction."""
        switches = {self.nvswitch_of(i) for i in gpu_ids}
        return len(switches) == 1 and None not in switches and bool(self.graph.nodes[switches.pop()].get("nvls"))

    def _route(self, nodes: list[str]) -> Path_:
        hops = tuple(zip(nodes, nodes[1:]))
        edges = [self.graph.edges[u, v] for u, v in hops]
        return Path_(hops, min(e["bandwidth"] for e in edges), sum(e["latency"] for e in edges),
                     tuple(e["kind"] for e in edges))

    @cached_property
    def _pcie_views(self) -> dict[str, nx.Graph]:
        """Per node: the subgraph of PCIe and socket links (no NVLink, no fabric)."""
        out = {}
        for name in self.node_gpus():
            keep = [n for n, d in self.graph.nodes(data=True) if d.get("node") == name]
            sub = self.graph.subgraph(keep)
            out[name] = nx.Graph(sub.edge_subgraph([(u, v) for u, v, d in sub.edges(data=True)
                                                    if d["kind"] in ("pcie", "socket")]))
        return out

    def _pcie_route(self, a: str, b: str, node: str) -> list[str]:
        return nx.shortest_path(self._pcie_views[node], a, b, weight="latency")

    def _nic_for(self, gpu: Gpu) -> list[str]:
        """The PCIe route from a GPU to its nearest NIC (the same switch first: GPUDirect RDMA)."""
        cache = self.__dict__.setdefault("_nic_cache", {})
        if gpu.id not in cache:
            cache[gpu.id] = self._nearest_nic(gpu)
        return cache[gpu.id]

    def _nearest_nics(self, gpu: Gpu) -> tuple[int, list[list[str]]]:
        """The routes to the NICs closest to a GPU (fewest hops), in NIC-name order."""
        view = self._pcie_views[gpu.node]
        routes = [nx.shortest_path(view, gpu.key, n, weight="latency")
                  for n in sorted(view.nodes) if self.graph.nodes[n]["kind"] == "nic"]
        if not routes:
            raise InputError(f"{self.name}: GPU {gpu.id} on node {gpu.node} has no path to a NIC")
        hops = min(len(r) for r in routes)
        return hops, [r for r in routes if len(r) == hops]

    def _nearest_nic(self, gpu: Gpu) -> list[str]:
        """Rail-optimised: GPUs that share their nearest NICs take one each, in GPU order (two GPUs and two
        NICs behind one PCIe switch: the first GPU gets the first NIC, the second the second)."""
        hops, routes = self._nearest_nics(gpu)
        nearest = [r[-1] for r in routes]
        sharing = [g.id for g in self.gpus if g.node == gpu.node
                   and [r[-1] for r in self._nearest_nics(g)[1]] == nearest]
        return routes[sharing.index(gpu.id) % len(routes)]

    def path(self, a: int, b: int) -> Path_:
        """The route NCCL would take from GPU a to GPU b (see the module docstring)."""
        if (a, b) in self._path_cache:
            return self._path_cache[(a, b)]
        ga, gb = self.gpu(a), self.gpu(b)
        if a == b:
            raise InputError("a path needs two different GPUs")
        candidates = []
        if ga.node == gb.node:
            if self.graph.has_edge(ga.key, gb.key) and self.graph.edges[ga.key, gb.key]["kind"] == "nvlink":
                candidates.append(self._route([ga.key, gb.key]))
            sw_a, sw_b = self.nvswitch_of(a), self.nvswitch_of(b)
            if sw_a is not None and sw_a == sw_b:
                candidates.append(self._route([ga.key, sw_a, gb.key]))
            if not candidates:
                if self._p2p[ga.node]:
                    candidates.append(self._route(self._pcie_route(ga.key, gb.key, ga.node)))
                else:  # no peer-to-peer: up to host memory on a's socket, then down to b
                    cpu = self._socket_of_gpu[a]
                    up = self._pcie_route(ga.key, cpu, ga.node)
                    down = self._pcie_route(cpu, gb.key, ga.node)
                    candidates.append(self._route(up + down[1:]))
        else:
            route = self._nic_for(ga) + ["fabric"] + list(reversed(self._nic_for(gb)))
            candidates.append(self._route(route))
        best = max(candidates, key=lambda p: (p.bandwidth_bytes_per_s, -p.latency_s))
        self._path_cache[(a, b)] = best
        return best

    def bandwidth_matrix(self) -> list[list[float]]:
        n = self.n_gpus
        return [[0.0 if i == j else self.path(i, j).bandwidth_bytes_per_s for j in range(n)] for i in range(n)]

    def link_class(self, a: int, b: int) -> str:
        return self.path(a, b).link_class


# Loading -----------------------------------------------------------------------------------

def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_messages(exc: ValidationError) -> list[str]:
    msgs = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("function-" in p or p in (
            "GpusShorthand", "list[GpuDef]"))))
        msg = err["msg"].removeprefix("Value error, ")
        msgs.append(f"{_format_loc(loc)}: {msg}")
    return msgs


def parse_topology(text: str, source: str) -> Topology:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a topology must be a YAML mapping with 'name' and 'nodes'")
    try:
        definition = TopologyDef.model_validate(data)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        raise ConfigError(f"{source}: {msgs[0]}", details=msgs[1:]) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return Topology(definition, source=source, text=text)
    except (KeyError, nx.NetworkXException, ValueError) as exc:
        raise ConfigError(f"{source}: inconsistent links: {exc}") from None


def shipped_topologies() -> list[str]:
    return sorted(p.stem for p in topologies_dir().glob("*.yaml"))


def resolve_topology_path(arg: str) -> Path:
    path = Path(arg).expanduser()
    if path.is_file():
        return path
    name = arg[:-5] if arg.endswith(".yaml") else arg[:-4] if arg.endswith(".yml") else arg
    shipped = topologies_dir() / f"{Path(name).name}.yaml"
    if "/" not in name and shipped.is_file():
        return shipped
    raise InputError(f"unknown topology '{arg}': not a file and not a shipped topology "
                     f"({', '.join(shipped_topologies())})")


_LOADED: dict[str, Topology] = {}


def load_topology(arg: str) -> Topology:
    """A topology from a YAML path or a shipped name (with or without .yaml)."""
    path = resolve_topology_path(arg)
    key = str(path.resolve())
    if key not in _LOADED:
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        _LOADED[key] = parse_topology(text, str(path) if path.parent != topologies_dir() else path.name)
    return _LOADED[key]


def pcie_relation(topo: Topology, a: int, b: int) -> str:
    """How two GPUs meet on PCIe, in nvidia-smi's words: PIX (one switch), NODE (one socket),
    SYS (across sockets), NET (across nodes)."""
    ga, gb = topo.gpu(a), topo.gpu(b)
    if ga.node != gb.node:
        return "NET"
    g = topo.graph
    sw = lambda key: {n for n in g.neighbors(key) if g.nodes[n]["kind"] in ("pcie_switch", "cpu")}  # noqa: E731
    if sw(ga.key) & sw(gb.key) and any(g.nodes[n]["kind"] == "pcie_switch" for n in sw(ga.key) & sw(gb.key)):
        return "PIX"
    if topo._socket_of_gpu[a] == topo._socket_of_gpu[b]:
        return "NODE"
    return "SYS"


def nvlink_links(topo: Topology, a: int, b: int) -> int:
    """NVLinks between two GPUs (direct bond or through their NVSwitch), 0 when none."""
    path = topo.path(a, b)
    if path.link_class != "nvlink" or topo.gpus[a].spec.vendor != "nvidia":
        return 0
    return round(path.bandwidth_bytes_per_s / topo.gpus[a].spec.nvlink_bytes_per_s_per_link)


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


class TopologySummary(BaseModel):
    """What `planner topology show` prints."""

    name: str
    description: str
    source: str
    hash: str
    n_nodes: int
    gpus: list[GpuRow]
    links: list[LinkRow]
    bandwidth_matrix_bytes_per_s: list[list[float]]


def summarize_topology(topo: Topology) -> TopologySummary:
    gpus = [GpuRow(id=g.id, node=g.node, local_index=g.local_index, type=g.spec.name, memory_bytes=g.spec.memory_bytes,
                   hbm_bytes_per_s=g.spec.hbm_bytes_per_s, bf16_flops_per_s=g.spec.peak_flops("bf16")) for g in topo.gpus]
    links = [LinkRow(a=u, b=v, kind=d["kind"], bandwidth_bytes_per_s=d["bandwidth"], latency_s=d["latency"])
             for u, v, d in sorted(topo.graph.edges(data=True))]
    return TopologySummary(name=topo.name, description=topo.definition.description, source=topo.source, hash=topo.hash,
                           n_nodes=topo.n_nodes, gpus=gpus, links=links, bandwidth_matrix_bytes_per_s=topo.bandwidth_matrix())
