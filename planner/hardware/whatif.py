"""Hardware what-ifs: the same machine with one resource scaled (`--what-if hbm=2x,nvlink=2x`).

Each target scales what the cost model reads of it:
- `hbm`: every GPU's memory bandwidth (stacked DRAM, HBM4); `memory`: every GPU's memory capacity;
- `flops`: every GPU's dense FLOP/s, every dtype;
- `nvlink`, `pcie`, `network`, `socket`: the bandwidth of every link of that kind (NVSwitch ports count as
  NVLink), and the GPUs' own NVLink or PCIe figures;
- `host`: the bandwidth of the host-memory tiers (DRAM or CXL) the GPUs stream from.

The result is a new Topology (the loaded one is shared and never changed) whose name and hash say the
what-if, so a plan made on it is never mistaken for one made on the real machine.
"""

from __future__ import annotations

import dataclasses
import hashlib

from planner.errors import InputError
from planner.hardware.topology import Topology

TARGETS = ("hbm", "memory", "flops", "nvlink", "pcie", "network", "socket", "host")
#: Graph edge kinds each link target scales.
EDGE_KINDS = {"nvlink": ("nvlink", "nvswitch"), "pcie": ("pcie",), "network": ("network",), "socket": ("socket",)}
#: A what-if scales a resource by at most 64x either way: beyond that it is another machine (and 1e-300x overflowed
#: the solver's integer nanoseconds).
MAX_FACTOR = 64.0
MIN_FACTOR = 1 / MAX_FACTOR


def parse_what_if(text: str) -> dict[str, float]:
    """`hbm=2x,nvlink=1.5` -> {"hbm": 2.0, "nvlink": 1.5}; one line naming the bad part otherwise."""
    out: dict[str, float] = {}
    if len(text) > 1000:
        raise InputError(f"--what-if: {len(text)} characters is too long (one factor per target)")
    for part in (p.strip() for p in text.split(",")):
        target, _, value = part.partition("=")
        target, value = target.strip().lower(), value.strip().lower().removesuffix("x")
        if target not in TARGETS:
            raise InputError(f"--what-if '{part}': the target is one of {', '.join(TARGETS)} (e.g. hbm=2x)")
        try:
            factor = float(value)
        except ValueError:
            raise InputError(f"--what-if '{part}': the factor is a number such as 2x or 0.5x") from None
        if not MIN_FACTOR <= factor <= MAX_FACTOR:
            raise InputError(f"--what-if '{part}': the factor must be at least 1/{MAX_FACTOR:g} ({MIN_FACTOR:g}x) and at most "
                             f"{MAX_FACTOR:g}x")
        if target in out:
            raise InputError(f"--what-if '{part}': {target} is given twice; give each target once")
        out[target] = factor
    return out


def describe(factors: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}x" for k, v in factors.items())


def _spec_update(spec, f: dict[str, float]):
    update = {}
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


def apply_what_if(topo: Topology, factors: dict[str, float]) -> Topology:
    """A copy of `topo` with each target scaled by its factor."""
    if not factors:
        return topo
    what = describe(factors)
    new = Topology(topo.definition, source=topo.source, text=f"{topo.text}\n# what-if: {what}\n")
    new.name = f"{topo.name} ({what})"
    new.hash = hashlib.sha256(new.text.encode()).hexdigest()[:16]
    new.gpus = [dataclasses.replace(g, spec=_spec_update(g.spec, factors)) for g in new.gpus]
    for target, kinds in EDGE_KINDS.items():
        if target in factors:
            for _, _, data in new.graph.edges(data=True):
                if data.get("kind") in kinds:
                    data["bandwidth"] *= factors[target]
    if "host" in factors:
        new._host_memory = {n: None if t is None else t.model_copy(update={"bandwidth": t.bandwidth * factors["host"]})
                            for n, t in new._host_memory.items()}
    new.cache.clear()
    return new
