"""`planner topology detect`: a topology YAML from `nvidia-smi topo -m` (and `--query-gpu` CSV).

The matrix says, per pair of devices (GPUs and NICs):
- `NV#`: joined by # NVLinks. A set of three or more GPUs where every pair shows the same NV# and
  # is the GPU's whole link count (18 on H100, 12 on A100) sits on an NVSwitch; otherwise each pair
  is a point-to-point bond (bridged pairs, small meshes).
- `PIX`/`PXB`: behind one PCIe switch (one or several switches under one bridge): one switch here.
- `PHB`/`NODE`: different switches or root ports on one CPU socket.
- `SYS`: across CPU sockets (the socket interconnect).
The socket of each GPU comes from its NUMA affinity column where present, else from the PHB/NODE
relation. Link bandwidths come from the GPU type's spec (PCIe generation, NVLink per link).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from dataclasses import dataclass, field

import yaml

from planner.errors import ConfigError, InputError
from planner.hardware.gpus import GPU_SPECS, GpuSpec, find_gpu_type

_DEVICE = re.compile(r"^(GPU\d+|NIC\d+|mlx\d+_\d+)$")
_CODES = {"X", "PIX", "PXB", "PHB", "NODE", "SYS", "SOC"}
#: NVLinks per GPU: all of them to one switch means an NVSwitch (H100 SXM 18, A100 SXM 12).
NVSWITCH_LINKS = {"nvlink4": 18, "nvlink3": 12}
#: NIC speed by GPU generation when the matrix does not say (DGX H100: NDR; DGX A100: HDR).
DEFAULT_NIC = {"nvlink4": "400Gb/s", "pcie5": "400Gb/s"}


@dataclass
class TopoMatrix:
    devices: list[str]
    rel: dict[tuple[str, str], str]
    numa: dict[str, int] = field(default_factory=dict)

    @property
    def gpus(self) -> list[str]:
        return [d for d in self.devices if d.startswith("GPU")]

    @property
    def nics(self) -> list[str]:
        return [d for d in self.devices if not d.startswith("GPU")]


def parse_topo_matrix(text: str, source: str = "nvidia-smi topo -m") -> TopoMatrix:
    lines = [line.rstrip() for line in text.splitlines()]
    # The header is the first line that starts with GPU0 and is not GPU0's own row (whose next entry is X); tabs
    # or spaces alike separate the columns.
    header_idx = next(
        (
            i
            for i, line in enumerate(lines)
            if line.split() and line.split()[0] == "GPU0" and (len(line.split()) == 1 or line.split()[1] != "X")
        ),
        None,
    )
    if header_idx is None:
        raise ConfigError(f"{source}: no header row with GPU0 found; pass the output of `nvidia-smi topo -m`")
    header = lines[header_idx].split()
    columns = []
    for tok in header:
        if _DEVICE.match(tok):
            columns.append(tok)
        else:
            break
    rel: dict[tuple[str, str], str] = {}
    numa: dict[str, int] = {}
    rows = 0
    for line in lines[header_idx + 1 :]:
        toks = line.split()
        if not toks or not _DEVICE.match(toks[0]):
            if rows and (not toks or toks[0].startswith("Legend")):
                break
            continue
        name, cells = toks[0], toks[1 : 1 + len(columns)]
        if any(r == name for r, _ in rel):
            raise ConfigError(f"{source}: row {name} appears twice")
        if len(cells) < len(columns):
            raise ConfigError(f"{source}: row {name} has {len(cells)} entries for {len(columns)} columns")
        for col, code in zip(columns, cells):
            if not (code in _CODES or re.fullmatch(r"NV\d+", code)):
                raise ConfigError(f"{source}: row {name}, column {col}: unknown entry '{code}'")
            rel[(name, col)] = code
        rest = toks[1 + len(columns) :]
        if name.startswith("GPU") and len(rest) >= 2 and rest[1].isdigit():
            numa[name] = int(rest[1])
        rows += 1
    gpus = [c for c in columns if c.startswith("GPU")]
    if not gpus:
        raise ConfigError(f"{source}: no GPU columns found")
    if len(set(columns)) < len(columns):
        raise ConfigError(f"{source}: the header names a column twice ({' '.join(columns)})")
    for a in gpus:
        for b in gpus:
            if a != b and (a, b) not in rel:
                raise ConfigError(f"{source}: no entry for {a} -> {b}")
    for (a, b), code in rel.items():  # the matrix is symmetric: each pair is read from both triangles
        if a == b and code != "X":
            raise ConfigError(f"{source}: row {a}, column {b}: a device's entry for itself is X, got '{code}'")
        if (b, a) in rel and rel[b, a] != code:
            raise ConfigError(
                f"{source}: {a} -> {b} says {code} but {b} -> {a} says {rel[b, a]}; the matrix is symmetric"
            )
    return TopoMatrix(columns, rel, numa)


def parse_gpus_csv(text: str, source: str = "--gpus-csv") -> dict[int, str]:
    """`nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id --format=csv` -> {index: name}."""
    reader = csv.reader(io.StringIO(text.strip()))
    rows = [[c.strip() for c in row] for row in reader if row]
    if not rows or "index" not in rows[0][0]:
        raise ConfigError(f"{source}: expected a CSV header starting with 'index, name'")
    out = {}
    for k, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[0].isdigit():
            raise ConfigError(f"{source}: line {k}: expected 'index, name, ...', got {', '.join(row)}")
        if int(row[0]) in out:
            raise ConfigError(f"{source}: line {k}: GPU index {row[0]} appears twice")
        out[int(row[0])] = row[1]
    return out


def _components(items: list[str], joined) -> list[list[str]]:
    """Connected components of `items` under the symmetric relation `joined(a, b)`, in input order."""
    seen, comps = set(), []
    for start in items:
        if start in seen:
            continue
        comp, stack = [], [start]
        seen.add(start)
        while stack:
            a = stack.pop()
            comp.append(a)
            for b in items:
                if b not in seen and joined(a, b):
                    seen.add(b)
                    stack.append(b)
        comps.append(sorted(comp, key=items.index))
    return comps


def _gb(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e9:g}GB/s"


_P2P_CODES = {"X", "OK", "CNS", "GNS", "TNS", "NS", "U"}


def parse_p2p_matrix(text: str, source: str = "nvidia-smi topo -p2p r") -> list[tuple[int, int]]:
    """GPU pairs whose `nvidia-smi topo -p2p r` entry is not OK (chipset, GPU or topology does not support
    peer-to-peer reads): their traffic is staged through host memory."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    header = next((toks for toks in lines if toks and toks[0] == "GPU0"), None)
    if header is None:
        raise ConfigError(f"{source}: no header row with GPU0 found; pass the output of `nvidia-smi topo -p2p r`")
    columns = [t for t in header if re.fullmatch(r"GPU\d+", t)]
    if columns != [f"GPU{k}" for k in range(len(header))]:  # a damaged header would drop or shift pairs
        raise ConfigError(f"{source}: the header row should be GPU0 GPU1 ... in order, got '{' '.join(header)[:120]}'")
    pairs: set[tuple[int, int]] = set()
    rows: set[str] = set()
    for toks in lines:
        if not toks or not re.fullmatch(r"GPU\d+", toks[0]) or toks is header:
            continue
        cells = toks[1:]
        if len(cells) != len(columns) or any(c not in _P2P_CODES for c in cells):
            raise ConfigError(
                f"{source}: row {toks[0]}: expected {len(columns)} entries of {', '.join(sorted(_P2P_CODES))}"
            )
        if toks[0] not in columns or toks[0] in rows:
            raise ConfigError(f"{source}: row {toks[0]} is not a column of the header, or appears twice")
        rows.add(toks[0])
        a = int(toks[0][3:])
        for col, code in zip(columns, cells):
            b = int(col[3:])
            if a != b and code != "OK":
                pairs.add((min(a, b), max(a, b)))
    if rows != set(columns):
        raise ConfigError(f"{source}: no row for {', '.join(sorted(set(columns) - rows))}")
    return sorted(pairs)


def detect(
    topo_text: str,
    *,
    gpus_csv: str | None = None,
    gpu_type: str | None = None,
    name: str = "detected",
    source: str = "nvidia-smi topo -m",
    p2p_text: str | None = None,
    p2p_level: str | None = None,
) -> dict:
    """Build a topology document (a dict ready for YAML) from the matrix and the GPU types."""
    m = parse_topo_matrix(topo_text, source)
    index = {g: int(g[3:]) for g in m.gpus}
    types = _gpu_types(m.gpus, index, gpus_csv, gpu_type)
    spec0 = types[index[m.gpus[0]]]
    socket_of = _sockets(m)
    n_sockets = max(socket_of.values()) + 1
    node: dict = {
        "name": "node",
        "gpus": [{"index": index[g], "type": types[index[g]].name} for g in m.gpus],
        "sockets": n_sockets,
    }
    if n_sockets > 1:
        node["socket_link"] = {"bandwidth": "64GB/s", "latency": "1us"}
    node.update(_nvlinks(m, index, spec0))
    nic_names = {nic: f"nic{k}" for k, nic in enumerate(m.nics)}
    node["pcie_switches"] = _pcie_switches(m, index, socket_of, nic_names, spec0)
    if m.nics:
        node["nics"] = [
            {"name": nic_names[n], "bandwidth": DEFAULT_NIC.get(spec0.link, "200Gb/s"), "latency": "2us"}
            for n in m.nics
        ]
    node.update(_peer_to_peer(p2p_text, set(index.values()), spec0, p2p_level))
    return {"name": name, "description": f"detected from {source}", "sources": [source], "nodes": [node]}


def _gpu_types(
    gpus: list[str], index: dict[str, int], gpus_csv: str | None, gpu_type: str | None
) -> dict[int, GpuSpec]:
    """Each GPU's type: one for all (--gpu-type) or by name from the GPU list (--gpus-csv)."""
    if gpu_type:
        spec = find_gpu_type(gpu_type)
        if spec is None:
            raise InputError(f"unknown --gpu-type '{gpu_type}'; known: {', '.join(GPU_SPECS)}")
        return {index[g]: spec for g in gpus}
    if not gpus_csv:
        raise InputError(
            "give --gpus-csv (nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id --format=csv) or --gpu-type"
        )
    names = parse_gpus_csv(gpus_csv)
    types = {}
    for g in gpus:
        if index[g] not in names:
            raise ConfigError(f"--gpus-csv: no row for GPU index {index[g]}")
        spec = find_gpu_type(names[index[g]])
        if spec is None:
            raise InputError(
                f"--gpus-csv: unknown GPU name '{names[index[g]]}'; pass --gpu-type (one of {', '.join(GPU_SPECS)})"
            )
        types[index[g]] = spec
    return types


def _code(m: TopoMatrix, a: str, b: str) -> str:
    return m.rel.get((a, b)) or m.rel.get((b, a)) or "SYS"


def _sockets(m: TopoMatrix) -> dict[str, int]:
    """Each GPU's socket: from NUMA affinity where given, else the components of "not SYS"."""
    if len(m.numa) == len(m.gpus):
        numa_ids = sorted(set(m.numa.values()))
        return {g: numa_ids.index(m.numa[g]) for g in m.gpus}
    comps = _components(m.gpus, lambda a, b: _code(m, a, b) != "SYS")
    return {g: k for k, comp in enumerate(comps) for g in comp}


def _pcie_switches(
    m: TopoMatrix, index: dict[str, int], socket_of: dict[str, int], nic_names: dict[str, str], spec0: GpuSpec
) -> list[dict]:
    """PCIe switches: the components of devices joined by PIX or PXB, with their GPUs and NICs."""
    switches = _components(m.gpus + m.nics, lambda a, b: _code(m, a, b) in ("PIX", "PXB"))
    out = []
    for k, comp in enumerate(switches):
        comp_gpus = [index[d] for d in comp if d in index]
        if comp_gpus:
            sock = socket_of[next(d for d in comp if d in index)]
        else:  # a NIC alone: the socket of the GPUs it shares a NUMA node with
            near = [g for g in m.gpus if _code(m, comp[0], g) in ("PHB", "NODE")]
            sock = socket_of[near[0]] if near else 0
        out.append(
            {
                "name": f"pcie{k}",
                "socket": sock,
                "gpus": comp_gpus,
                "nics": [nic_names[d] for d in comp if d in nic_names],
                "bandwidth": _gb(spec0.pcie_bytes_per_s),
                "uplink": _gb(spec0.pcie_bytes_per_s),
                "latency": "1us",
            }
        )
    return out


def _nvlinks(m: TopoMatrix, index: dict[str, int], spec0: GpuSpec) -> dict:
    """An NVSwitch where every GPU (at least 3) shows the GPU's full link count to every other; else bonds."""
    gpus = m.gpus
    nv = {(a, b): int(_code(m, a, b)[2:]) for a in gpus for b in gpus if a < b and _code(m, a, b).startswith("NV")}
    full = NVSWITCH_LINKS.get(spec0.link)
    per_link = spec0.nvlink_bytes_per_s_per_link
    switched = [g for g in gpus if full and all(nv.get((min(g, h), max(g, h))) == full for h in gpus if h != g)]
    if full and len(switched) >= 3 and len(switched) == len(gpus):
        return {"nvswitch": {"bandwidth": _gb(full * per_link), "latency": "1us", "nvls": spec0.link == "nvlink4"}}
    bonds = [
        {"gpus": [index[a], index[b]], "links": links, "link_bandwidth": _gb(per_link), "latency": "1us"}
        for (a, b), links in sorted(nv.items(), key=lambda kv: (index[kv[0][0]], index[kv[0][1]]))
    ]
    return {"nvlink": bonds} if bonds else {}


def _peer_to_peer(p2p_text: str | None, known: set[int], spec0: GpuSpec, p2p_level: str | None) -> dict:
    """Pairs without peer-to-peer (from `nvidia-smi topo -p2p r`), GeForce's none, and NCCL's reach."""
    out: dict = {}
    if p2p_text is not None:
        pairs = parse_p2p_matrix(p2p_text)
        stray = sorted({g for pair in pairs for g in pair} - known)
        if stray:
            raise ConfigError(f"--p2p: GPU{stray[0]} is not in the `nvidia-smi topo -m` matrix")
        off = [list(pair) for pair in pairs]
        if off:
            out["no_p2p"] = off
    elif spec0.name.startswith("RTX"):
        out["p2p"] = False  # GeForce drivers disable peer-to-peer
    if p2p_level is not None and p2p_level != "sys":
        out["p2p_level"] = p2p_level
    return out


def to_yaml(doc: dict) -> str:
    header = (
        "# Detected by `planner topology detect` from nvidia-smi output. Bandwidths come from the GPU type's\n"
        "# spec (planner.hardware.gpus) and are per direction; NIC speeds are defaults, edit them if yours differ.\n"
    )
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)


def host_p2p_level(cpuinfo: str) -> str:
    """NCCL's default peer-to-peer reach for this host's CPUs (NVIDIA/nccl src/graph/paths.cc): only under
    PCIe switches (pxb) on Intel and Zhaoxin x86 and on ARM, everywhere (sys) on AMD."""
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    if vendor is None:
        return "pxb" if re.search(r"^CPU implementer", cpuinfo, re.MULTILINE) else "sys"
    return "sys" if vendor.group(1) == "AuthenticAMD" else "pxb"


def run_nvidia_smi() -> tuple[str, str, str]:
    """Run nvidia-smi for the matrix, the GPU list and the peer-to-peer matrix; a clear error where it is absent."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise InputError(
            "nvidia-smi is not on PATH: run `planner topology detect` on the GPU machine, or pass "
            "--from TOPO_TXT (saved `nvidia-smi topo -m` output) with --gpus-csv or --gpu-type"
        )
    try:
        topo = subprocess.run([exe, "topo", "-m"], capture_output=True, text=True, check=True, timeout=60).stdout
        gpus = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,pci.bus_id", "--format=csv"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        p2p = subprocess.run([exe, "topo", "-p2p", "r"], capture_output=True, text=True, check=True, timeout=60).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise InputError(f"nvidia-smi failed: {exc}") from None
    return topo, gpus, p2p
