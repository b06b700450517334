"""Time the solver on harder loads, where the replica count and the throughput objective join the search.

Usage: python benchmarks/solve_loads.py
In-process (`planner.solve.solve`, warm trace cache), llama-70b in bf16. Prints a markdown table.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from planner.hardware import load_topology, parse_topology
from planner.model.catalog import load_profile
from planner.plan import Workload
from planner.solve import solve
from planner.solve.options import SolveOptions

ROOT = Path(__file__).resolve().parent.parent


def h100_nodes(count: int):
    node = yaml.safe_load((ROOT / "topologies" / "8xh100.yaml").read_text())["nodes"][0]
    doc = {
        "name": f"{count}x8xh100",
        "nodes": [dict(node, name="h", count=count)],
        "network": {"bandwidth": "400Gb/s", "latency": "3us"},
    }
    return parse_topology(yaml.safe_dump(doc), doc["name"])


CASES = [
    ("8xh100", lambda: load_topology("8xh100"), "throughput", 64, 30.0),
    ("2 x 8xh100 (generated)", lambda: h100_nodes(2), "throughput", 256, 30.0),
    ("2x8xh100-ib", lambda: load_topology("2x8xh100-ib"), "throughput", 64, 60.0),
    ("8 x 8xh100 (generated)", lambda: h100_nodes(8), "latency", 256, 30.0),
]


def main() -> None:
    profile = load_profile("llama-70b")
    print(
        "| machine | objective | concurrency | time limit s | wall s | status | gap | plan | tokens/s | KV capacity |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, topo_fn, objective, conc, limit in CASES:
        topo = topo_fn()
        start = time.perf_counter()
        plan = solve(
            profile, topo, Workload(concurrency=conc), options=SolveOptions(objective=objective, time_limit_s=limit)
        )
        wall = time.perf_counter() - start
        tps = sorted({s.tp for s in plan.stages})
        shape = f"TP{'/'.join(map(str, tps))}xPP{len(plan.stages)}xR{plan.replicas}"
        print(
            f"| {name} | {objective} | {conc} | {limit:.0f} | {wall:.1f} | {plan.solver.status} | "
            f"{(plan.solver.gap or 0):.1%} | {shape} | {plan.prediction.tokens_per_s:,.0f} | "
            f"{plan.prediction.max_concurrency:,} |"
        )


if __name__ == "__main__":
    main()
