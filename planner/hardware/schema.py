"""The topology YAML schema (pydantic): nodes, GPUs and every link between them, with physical ranges.

A machine is a graph of real links: NVSwitch domains, NVLink bonds, PCIe switches and their uplinks,
CPU sockets and the socket link, NICs and the fabric. Bandwidths are per direction (`450GB/s`,
`400Gb/s`), latencies per hop (`1us`). `planner topology schema` prints the JSON Schema.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    model_validator,
)

from planner.hardware.gpus import GPU_SPECS, GpuSpec, find_gpu_type
from planner.units import parse_bandwidth, parse_flops, parse_memory, parse_time

Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth)]
Latency = Annotated[float, BeforeValidator(parse_time)]
Memory = Annotated[int, BeforeValidator(parse_memory)]
Flops = Annotated[float, BeforeValidator(parse_flops)]


def _name(value: str) -> str:
    if not value or len(value) > 64 or not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ValueError(f"name {value!r} must be 1-64 letters, digits, '-', '_' or '.'")
    return value


Name = Annotated[str, AfterValidator(_name)]
#: Most GPUs one topology may describe (the solver and the display are sized for it).
MAX_GPUS = 16384
MAX_NVLINKS = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Link(_Strict):
    bandwidth: Bandwidth = Field(description="per direction, e.g. 450GB/s or 400Gb/s")
    latency: Latency = Field(description="one hop, e.g. 1us")


class GpuTypeDef(_Strict):
    memory: Memory
    hbm_bandwidth: Bandwidth
    flops: dict[str, Flops] = Field(description="dense FLOP/s by dtype: {bf16: 989TFLOPS}")
    link: Literal["nvlink3", "nvlink4", "nvlink5", "pcie3", "pcie4", "pcie5", "xgmi"] = "pcie5"

    @model_validator(mode="after")
    def _needs_bf16(self):
        if "bf16" not in self.flops:
            raise ValueError("flops needs a bf16 entry (the activation dtype)")
        return self


class GpusShorthand(_Strict):
    type: str
    count: StrictInt = Field(gt=0, le=64)


class GpuDef(_Strict):
    index: StrictInt = Field(ge=0, le=63)
    type: str


class NvSwitch(Link):
    gpus: Optional[list[StrictInt]] = Field(None, description="local GPU indices on this domain; default all")
    nvls: StrictBool = Field(False, description="NVLink SHARP in-switch reduction (H100/H200 NVSwitch)")


class NvLinkBond(_Strict):
    gpus: tuple[StrictInt, StrictInt]
    links: StrictInt = Field(gt=0, le=MAX_NVLINKS)
    link_bandwidth: Bandwidth = Field(description="one link, per direction")
    latency: Latency


class Mesh(Link):
    """Every pair of GPUs joined by a direct link (AMD Infinity Fabric on MI300X)."""


class PcieSwitch(_Strict):
    name: Name
    socket: StrictInt = Field(0, ge=0, le=7)
    gpus: list[StrictInt] = []
    nics: list[str] = []
    bandwidth: Bandwidth = Field(description="each downstream port (GPU or NIC), per direction")
    uplink: Bandwidth = Field(description="the switch's link to its CPU socket, per direction")
    latency: Latency


class Nic(_Strict):
    name: Name
    bandwidth: Bandwidth
    latency: Latency
    kind: Literal["infiniband", "roce", "ethernet"] = "infiniband"


class HostMemory(_Strict):
    """A memory tier beside HBM: host DRAM (or CXL memory) of each socket, reached over the GPUs' PCIe paths."""

    capacity: Memory = Field(description="per socket, e.g. 512GB")
    bandwidth: Bandwidth = Field(description="what the socket's memory can stream to its GPUs together, e.g. 200GB/s")


class NodeDef(_Strict):
    name: Name
    count: StrictInt = Field(1, gt=0, le=2048, description="identical copies of this node")
    gpus: GpusShorthand | list[GpuDef]
    sockets: StrictInt = Field(1, gt=0, le=8)
    socket_link: Optional[Link] = None
    nvswitch: Optional[NvSwitch] = None
    nvlink: list[NvLinkBond] = []
    mesh: Optional[Mesh] = None
    pcie_switches: list[PcieSwitch] = []
    pcie: Optional[Link] = Field(None, description="GPUs on their socket's root ports, when no switches are listed")
    nics: list[Nic] = []
    host_memory: Optional[HostMemory] = Field(
        None, description="a memory tier the solver may stream weights from (solve --offload)"
    )
    p2p: StrictBool = Field(
        True, description="PCIe peer-to-peer between GPUs; off, traffic bounces through host memory"
    )
    p2p_level: Literal["pix", "pxb", "phb", "sys"] = Field(
        "sys",
        description="How far PCIe peer-to-peer reaches, in NCCL_P2P_LEVEL's words: pix/pxb (GPUs under one PCIe "
        "switch only; NCCL's default on Intel x86 hosts), phb (also through one socket's root complex), sys (also "
        "across sockets; NCCL's default on AMD hosts). Pairs beyond it are staged through host memory",
    )
    no_p2p: list[tuple[StrictInt, StrictInt]] = Field(
        [],
        description="GPU pairs (local indices) without PCIe peer-to-peer, as `nvidia-smi topo -p2p r` shows "
        "them: their traffic is staged through host memory",
    )

    def gpu_defs(self) -> list[GpuDef]:
        if isinstance(self.gpus, GpusShorthand):
            return [GpuDef(index=i, type=self.gpus.type) for i in range(self.gpus.count)]
        return list(self.gpus)

    @model_validator(mode="after")
    def _check_references(self):
        indices = [g.index for g in self.gpu_defs()]
        if not indices:
            raise ValueError("a node needs at least one GPU")
        if len(set(indices)) != len(indices):
            raise ValueError(f"GPU indices repeat: {sorted(indices)}")
        _check_gpu_refs(self, set(indices))
        _check_switches(self, set(indices))
        if self.sockets > 1 and self.socket_link is None:
            raise ValueError(f"{self.sockets} sockets need a socket_link (bandwidth and latency)")
        return self


def _check_gpu_refs(node: NodeDef, known: set[int]) -> None:
    def check(where: str, ids) -> None:
        for i in ids:
            if i not in known:
                raise ValueError(f"{where} names GPU {i}, but this node's GPUs are {sorted(known)}")

    if node.nvswitch and node.nvswitch.gpus is not None:
        check("nvswitch.gpus", node.nvswitch.gpus)
    pairs = set()
    for k, bond in enumerate(node.nvlink):
        check(f"nvlink[{k}].gpus", bond.gpus)
        if bond.gpus[0] == bond.gpus[1]:
            raise ValueError(f"nvlink[{k}] joins GPU {bond.gpus[0]} to itself")
        pair = tuple(sorted(bond.gpus))
        if pair in pairs:
            raise ValueError(
                f"nvlink[{k}]: GPUs {pair[0]} and {pair[1]} are bonded twice; give one bond with all links"
            )
        pairs.add(pair)
    seen = set()
    for k, pair in enumerate(node.no_p2p):
        check(f"no_p2p[{k}]", pair)
        if pair[0] == pair[1]:
            raise ValueError(f"no_p2p[{k}] pairs GPU {pair[0]} with itself; list pairs of two GPUs")
        if tuple(sorted(pair)) in seen:
            raise ValueError(f"no_p2p[{k}]: GPUs {pair[0]} and {pair[1]} are listed twice")
        seen.add(tuple(sorted(pair)))


def repeated(names: list[str], *, shown: int = 5) -> str:
    """The names that occur more than once, with their counts: `nic0 (x3), nic1 (x2)` (at most `shown` of them),
    not the whole list (a 100,000-long list made an 800 KB error line)."""
    counts = Counter(names)
    twice = [f"{name[:40]} (x{n:,})" for name, n in counts.items() if n > 1]
    more = f" and {len(twice) - shown:,} more" if len(twice) > shown else ""
    return ", ".join(twice[:shown]) + more


def _check_switches(node: NodeDef, known: set[int]) -> None:
    nic_names = [n.name for n in node.nics]
    if len(set(nic_names)) != len(nic_names):
        raise ValueError(f"NIC names repeat: {repeated(nic_names)}")
    names = [sw.name for sw in node.pcie_switches]
    if len(set(names)) != len(names):
        raise ValueError(f"PCIe switch names repeat: {repeated(names)}")
    for k, sw in enumerate(node.pcie_switches):
        for i in sw.gpus:
            if i not in known:
                raise ValueError(
                    f"pcie_switches[{k}] ({sw.name}).gpus names GPU {i}, but this node's GPUs are {sorted(known)}"
                )
        if sw.socket >= node.sockets:
            raise ValueError(
                f"pcie_switches[{k}] ({sw.name}) is on socket {sw.socket}, but the node has {node.sockets}"
            )
        for nic in sw.nics:
            if nic not in nic_names:
                raise ValueError(
                    f"pcie_switches[{k}] ({sw.name}) names NIC '{nic}', not among nics {sorted(nic_names)}"
                )
    on_switch = [g for sw in node.pcie_switches for g in sw.gpus]
    if len(on_switch) != len(set(on_switch)):
        raise ValueError("a GPU is listed on two PCIe switches")
    if node.pcie_switches and set(on_switch) != known:
        raise ValueError(f"GPUs {sorted(known - set(on_switch))} are on no PCIe switch")
    if not node.pcie_switches and node.pcie is None:
        raise ValueError("give pcie_switches or pcie (how the GPUs reach their CPU)")


class TopologyDef(_Strict):
    name: Name
    description: str = Field("", max_length=500)
    sources: list[str] = []
    gpu_types: dict[str, GpuTypeDef] = {}
    nodes: list[NodeDef] = Field(min_length=1, max_length=512)
    network: Optional[Link] = Field(None, description="the fabric joining the nodes' NICs")

    @model_validator(mode="after")
    def _check(self):
        _check_node_names(self.nodes)
        extra = custom_specs(self)
        for i, node in enumerate(self.nodes):
            for g in node.gpu_defs():
                if find_gpu_type(g.type, extra) is None:
                    raise ValueError(
                        f"nodes[{i}] ({node.name}): unknown GPU type '{g.type}'; known: "
                        f"{', '.join(GPU_SPECS)} (or define it under gpu_types)"
                    )
        total_gpus = sum(n.count * len(n.gpu_defs()) for n in self.nodes)
        if total_gpus > MAX_GPUS:
            raise ValueError(f"{total_gpus} GPUs: planner handles machines of up to {MAX_GPUS} GPUs")
        total_nodes = sum(n.count for n in self.nodes)
        if total_nodes > 1:
            if self.network is None:
                raise ValueError(f"{total_nodes} nodes need a network (bandwidth and latency)")
            for node in self.nodes:
                if not node.nics:
                    raise ValueError(f"node {node.name} has no NICs, but the topology has {total_nodes} nodes")
        return self


def expanded_node_names(nodes: list[NodeDef]) -> list[str]:
    """Names of the node copies in GPU-id order: `dgx` with count 2 becomes dgx0, dgx1."""
    return [node.name if node.count == 1 else f"{node.name}{k}" for node in nodes for k in range(node.count)]


def _check_node_names(nodes: list[NodeDef]) -> None:
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"node names repeat: {repeated(names)}")
    expanded = expanded_node_names(nodes)
    seen: set[str] = set()
    for name in expanded:
        if name in seen:
            raise ValueError(
                f"node name '{name}' is used twice once counts are expanded (a node with count N "
                "is named <name>0..<name>N-1); rename one of them"
            )
        seen.add(name)


def custom_specs(definition: TopologyDef) -> dict[str, GpuSpec]:
    return {
        k: GpuSpec(name=k, memory_bytes=d.memory, hbm_bytes_per_s=d.hbm_bandwidth, flops_per_s=d.flops, link=d.link)
        for k, d in definition.gpu_types.items()
    }
