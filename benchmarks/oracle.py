"""Run the solver-versus-brute-force oracle over many random machines and report counts and the slowest.

Usage: python benchmarks/oracle.py [--latency N] [--traffic N] [--throughput N] [--offload N] [--seed S]
(`offload`: latency with solve --offload on small machines with a host-memory tier, against every subset of every
stage's layers streamed.)
The machines, models and loads are those of tests/test_solver_oracle.py (hypothesis strategies), drawn
with a seed; each instance runs the exhaustive enumeration (tests/oracle.py) and `planner.solve.solve`, and
must agree (value, and OPTIMAL). Prints a markdown table: instances, disagreements, solver and oracle
time, and the slowest instance; writes the slowest machine's YAML to benchmarks/oracle-slowest.yaml.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from planner.errors import PlannerError  # noqa: E402
from planner.plan import Workload  # noqa: E402
from planner.solve import solve
from planner.solve.options import SolveOptions  # noqa: E402
from tests.oracle import CONSTANTS, Oracle, fixed_load, throughput, tiny_model  # noqa: E402
from tests.test_solver_oracle import _limits, machines, tier_machines  # noqa: E402


def _run_one(objective: str, topo, n_layers: int, load: int, isl: int, slo) -> dict:
    offload = objective == "offload"
    objective = "latency" if offload else objective
    profile = tiny_model(n_layers)
    w = Workload(isl=isl, osl=64, concurrency=load)
    max_pp, max_r = _limits(topo)
    t0 = time.perf_counter()
    o = Oracle(profile, topo, w, offload=offload)
    if objective == "throughput":
        brute = throughput(o, max_pp, max_r, tpot_slo_ms=slo)
        expected = None if brute is None else brute.value
    else:
        brute = fixed_load(o, objective, max_pp, max_r, tpot_slo_ms=slo if objective == "latency" else None)
        expected = None if brute is None else brute.value
    oracle_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        plan = solve(
            profile,
            topo,
            w,
            options=SolveOptions(
                objective=objective,
                max_pp=max_pp,
                max_replicas=max_r,
                tpot_slo_ms=slo if objective != "traffic" else None,
                time_limit_s=30,
                top=0,
                offload=offload,
            ),
            constants=CONSTANTS,
        )
    except PlannerError:
        plan = None
    solve_s = time.perf_counter() - t0
    if plan is None or expected is None:
        agree = plan is None and expected is None
    else:
        got = {
            "latency": plan.prediction.tpot_ms / 1e3,
            "traffic": plan.prediction.critical_path_bytes_per_token,
            "throughput": plan.prediction.tokens_per_s,
        }[objective]
        agree = plan.solver.status == "OPTIMAL" and abs(got - expected) <= 1e-6 * abs(expected) + 1e-7
    return {
        "objective": "offload" if offload else objective,
        "agree": agree,
        "solve_s": solve_s,
        "oracle_s": oracle_s,
        "gpus": topo.n_gpus,
        "yaml": topo.text,
    }


def run(objective: str, n: int, seed_value: int) -> list[dict]:
    out: list[dict] = []
    if n < 1:
        return out

    @seed(seed_value)
    @settings(
        max_examples=n, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(
        topo=tier_machines() if objective == "offload" else machines(),
        n_layers=st.integers(3, 6),
        load=st.integers(1, 6),
        isl=st.sampled_from([16, 512, 4096]),
        slo=st.sampled_from([None, None, 0.05, 0.2]),
    )
    def check(topo, n_layers, load, isl, slo):
        out.append(_run_one(objective, topo, n_layers, load, isl, slo))

    check()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    for name, default in (("latency", 300), ("traffic", 200), ("throughput", 200), ("offload", 200)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    rows = []
    objectives = ("latency", "traffic", "throughput", "offload")
    for objective in objectives:
        rows += run(objective, getattr(args, objective), args.seed)
    print("| objective | instances | disagreements | solve s, median | solve s, max | oracle s, max |")
    print("|---|---|---|---|---|---|")
    for objective in objectives:
        mine = sorted((r for r in rows if r["objective"] == objective), key=lambda r: r["solve_s"])
        if mine:
            bad = sum(not r["agree"] for r in mine)
            print(
                f"| {objective} | {len(mine)} | {bad} | {mine[len(mine) // 2]['solve_s']:.3f} | "
                f"{mine[-1]['solve_s']:.2f} | {max(r['oracle_s'] for r in mine):.2f} |"
            )
    slowest = max(rows, key=lambda r: r["solve_s"])
    (ROOT / "benchmarks" / "oracle-slowest.yaml").write_text(slowest["yaml"])
    print(
        f"\nslowest: {slowest['objective']} on {slowest['gpus']} GPUs, solve {slowest['solve_s']:.2f} s "
        "(machine in benchmarks/oracle-slowest.yaml)"
    )
    print(f"total: {len(rows)} instances, {sum(not r['agree'] for r in rows)} disagreements")


if __name__ == "__main__":
    main()
