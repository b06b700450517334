"""Fit the collective model's constants to the published all-reduce tables in tests/data/collectives.yaml.

Usage: python benchmarks/fit_collectives.py [--rounds N] [--fabrics xgmi,...]
Coordinate descent in log space on the launch, protocol and fabric constants, minimising the sum over
tables of the worst |log(predicted / measured)|. Prints the fitted values (to paste into
planner/cost/constants.py) and each table's worst error, as a markdown table.

`--fabrics xgmi` fits only that fabric's profile (the launch and protocol constants stay as the NVIDIA
tables fitted them): the mi300x-8 table is the only one whose rows cross Infinity Fabric, so nothing else
moves. The xgmi profile includes the direct (all-pairs) algorithms' fraction and step latency; RCCL does
not run LL128 on MI300X (gfx942), so its ll128 stays 0.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from planner.calibrate.search import Knob, coordinate_descent
from planner.cost.collectives import collective_time
from planner.cost.constants import DEFAULT, Constants, FabricProfile
from planner.hardware import load_topology

ROOT = Path(__file__).resolve().parent.parent
GLOBAL = ("nccl_launch_s", "torch_call_s", "simple_extra_s", "ll128_extra_s", "nvls_efficiency", "nvls_extra_s")
FABRIC_FIELDS = ("ll", "ll128", "simple", "ll_step_s", "simple_step_s")
FITTED_FABRICS = ("nvlink4", "nvlink3", "staged", "xgmi")
#: the fields each fabric's fit moves (NVLink: no direct algorithms in NCCL; xgmi: no LL128 on gfx942)
FIELDS_OF = {"xgmi": ("ll", "simple", "ll_step_s", "simple_step_s", "direct", "direct_step_s")}
BOUNDS = {
    "nvls_efficiency": (0.05, 1.0),
    "ll": (0.01, 1.0),
    "ll128": (0.01, 1.0),
    "simple": (0.01, 1.0),
    "direct": (0.01, 1.0),
}


def load_tables() -> list[tuple[str, object, int, str, list[tuple[int, float]]]]:
    data = yaml.safe_load((ROOT / "tests" / "data" / "collectives.yaml").read_text())["tables"]
    out = []
    for name, t in data.items():
        machine = t["machine"]
        topo = load_topology(str(ROOT / machine) if "/" in machine else machine)
        if "time_us" in t:
            rows = [(int(k), float(v)) for k, v in t["time_us"].items()]
        else:
            rows = [(int(k), int(k) / (float(v) * 1e9) * 1e6) for k, v in t["algbw_gbps"].items()]
        out.append((name, topo, t["gpus"], t["context"], rows))
    return out


def errors(c: Constants, tables, *, mean: bool = False) -> dict[str, float]:
    """Each table's worst |log(predicted / measured)| (its mean with `mean`)."""
    out = {}
    for name, topo, n, context, rows in tables:
        errs = [
            abs(math.log(collective_time(topo, range(n), size, context=context, constants=c).time_s * 1e6 / us))
            for size, us in rows
        ]
        out[name] = sum(errs) / len(errs) if mean else max(errs)
    return out


def score(c: Constants, tables) -> float:
    """The sum of the tables' worst errors; a tenth of their mean errors breaks ties (a constant that only moves
    rows other than a table's worst one still settles where the rows agree)."""
    return sum(errors(c, tables).values()) + 0.1 * sum(errors(c, tables, mean=True).values())


def _knob(key: tuple) -> Knob[Constants]:
    """A launch/protocol constant (key of one) or a fabric's field (("fabric", name, field)) as a knob."""
    low, high = BOUNDS.get(key[-1], (1e-9, 1e-3))
    if key[0] != "fabric":
        return Knob(key[0], lambda c: getattr(c, key[0]), lambda c, v: c.model_copy(update={key[0]: v}), low, high)

    def set_field(c: Constants, value: float) -> Constants:
        fabrics = dict(c.fabrics)
        fabrics[key[1]] = fabrics[key[1]].model_copy(update={key[2]: value})
        return c.model_copy(update={"fabrics": fabrics})

    return Knob(".".join(key[1:]), lambda c: getattr(c.fabrics[key[1]], key[2]), set_field, low, high)


def fit(tables, rounds: int, fabrics: tuple[str, ...] | None = None) -> Constants:
    keys = [(k,) for k in GLOBAL] if fabrics is None else []
    keys += [("fabric", f, k) for f in (fabrics or FITTED_FABRICS) for k in FIELDS_OF.get(f, FABRIC_FIELDS)]
    return coordinate_descent(
        DEFAULT,
        [_knob(k) for k in keys],
        lambda c: score(c, tables),
        step=1.5,
        rounds=rounds,
        min_step=1.01,
        from_zero=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--fabrics", help="fit only these fabrics' profiles, comma-separated (e.g. xgmi)")
    args = ap.parse_args()
    fabrics = tuple(f.strip() for f in args.fabrics.split(",")) if args.fabrics else None
    tables = load_tables()
    c = fit(tables, args.rounds, fabrics)
    for k in GLOBAL:
        print(f"{k} = {getattr(c, k):.3g}")
    for f in fabrics or FITTED_FABRICS:
        p: FabricProfile = c.fabrics[f]
        print(f"{f}: " + ", ".join(f"{k}={getattr(p, k):.3g}" for k in FIELDS_OF.get(f, FABRIC_FIELDS)))
    print("\n| table | rows | worst error |")
    print("|---|---|---|")
    for name, err in errors(c, tables).items():
        rows = next(len(t[4]) for t in tables if t[0] == name)
        print(f"| {name} | {rows} | {math.exp(err) - 1:.1%} |")


if __name__ == "__main__":
    main()
