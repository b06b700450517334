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

from planner.errors import InputError
from planner.hardware.topology import Scale, Topology

TARGETS = ("hbm", "memory", "flops", "nvlink", "pcie", "network", "socket", "host")
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
            raise InputError(
                f"--what-if '{part}': the factor must be at least 1/{MAX_FACTOR:g} ({MIN_FACTOR:g}x) "
                f"and at most {MAX_FACTOR:g}x"
            )
        if target in out:
            raise InputError(f"--what-if '{part}': {target} is given twice; give each target once")
        out[target] = factor
    return out


def describe(factors: dict[str, float]) -> str:
    return Scale(tuple(factors.items())).describe()


def apply_what_if(topo: Topology, factors: dict[str, float]) -> Topology:
    """The machine of `topo` built again with each target scaled by its factor (on top of any what-if `topo`
    already has); `topo` itself is not changed."""
    if not factors:
        return topo
    combined = dict(topo.scale.factors)
    for target, factor in factors.items():
        combined[target] = combined.get(target, 1.0) * factor
    return Topology(topo.definition, source=topo.source, text=topo.base_text, scale=Scale(tuple(combined.items())))
