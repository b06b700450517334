"""Fit the serving constants to published at-load measurements and report the error on held-out rows.

Usage: python benchmarks/fit_serving.py [--rounds N]
Rows: tests/data/serving_nim.yaml (NVIDIA NIM, genai-perf closed loop; role fit / check). The fit moves
flops_efficiency, step_overhead_s, sequence_overhead_s and request_overhead_s (planner.calibrate.serving),
keeping every gpt-fast batch-1 row (tests/data/decode_gpt_fast.yaml) within 9.5%. Prints the fitted values (to
paste into planner/cost/constants.py), the median errors of the fit and check rows, and every row as a table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from planner.calibrate.serving import SERVING_FIT, Row, errors, fit, medians
from planner.cost.constants import DEFAULT, Constants
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition

ROOT = Path(__file__).resolve().parent.parent


def serving_rows() -> list[Row]:
    doc = yaml.safe_load((ROOT / "tests" / "data" / "serving_nim.yaml").read_text())
    return [Row(mode=doc["mode"], **r) for r in doc["rows"]]


def gpt_fast_errors(c: Constants) -> list[float]:
    doc = yaml.safe_load((ROOT / "tests" / "data" / "decode_gpt_fast.yaml").read_text())
    topo = load_topology(doc["machine"])
    out = []
    for r in doc["rows"]:
        model = str(ROOT / r["model"]) if "/" in r["model"] else r["model"]
        profile = load_profile(model)
        part = make_partition(profile, topo, tp=r["tp"], gpu_ids=list(range(r["tp"])))
        pred = estimate(profile, topo, part, Workload(concurrency=1, isl=doc["isl"], osl=doc["osl"]), c)
        out.append(pred.tpot_ms / r["ms_per_token"] - 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    rows = serving_rows()
    train = [r for r in rows if r.role == "fit"]
    c = fit(train, DEFAULT, rounds=args.rounds, guard=lambda t: max(abs(e) for e in gpt_fast_errors(t)) <= 0.095)
    for name in SERVING_FIT:
        print(f"{name} = {getattr(c, name):.4g}")
    errs = errors(rows, c)
    for role in ("fit", "check"):
        m = medians([e for e in errs if e.row.role == role])
        print(f"{role}: median |error| TPOT {m['tpot']:.1%}, TTFT {m['ttft']:.1%}, tokens/s {m['tokens']:.1%}")
    m = medians(errs)
    print(f"all: median |error| TPOT {m['tpot']:.1%}, TTFT {m['ttft']:.1%}, tokens/s {m['tokens']:.1%}")
    print(f"gpt-fast batch 1: worst |error| {max(abs(e) for e in gpt_fast_errors(c)):.1%}")
    print("\n| role | model | GPUs | isl/osl | c | TPOT ms meas / pred | TTFT ms meas / pred | tokens/s meas / pred |")
    print("|---|---|---|---|---|---|---|---|")
    for e in errs:
        r, p = e.row, e.prediction
        print(f"| {r.role} | {r.model} | {r.tp}x {r.machine[2:]} | {r.isl}/{r.osl} | {r.concurrency} | "
              f"{r.itl_ms:.1f} / {p.tpot_ms:.1f} ({e.tpot:+.0%}) | {r.ttft_ms:,.0f} / {p.ttft_ms:,.0f} ({e.ttft:+.0%}) | "
              f"{r.tokens_per_s:,.0f} / {p.tokens_per_s:,.0f} ({e.tokens:+.0%}) |")


if __name__ == "__main__":
    main()
