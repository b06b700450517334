"""`solve --slo-percentile` and `--objective goodput` (issue 25 item 4): SLOs bound a percentile of TTFT and TPOT, the
plan's percentiles priced by the open loop at its own requests/s, the mean bounds tightened until they hold."""

from __future__ import annotations

import json

import pytest

from planner.cost.constants import DEFAULT
from planner.errors import InfeasibleError, InputError
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload
from planner.solve import solve
from planner.solve.options import Objective, SolveOptions
from planner.solve.percentile import plan_percentiles, solve_percentiles
from planner.solve.serving import solve_serving
from planner.traffic.steady import open_loop


@pytest.fixture(scope="module")
def machine():
    return load_profile("llama-3.1-70b"), load_topology("8xh100")


def _throughput(**slos) -> SolveOptions:
    return SolveOptions(objective=Objective.THROUGHPUT, serving="agg", time_limit_s=60, **slos)


def test_a_mean_bound_plan_misses_at_p99_and_goodput_tightens_it(machine):
    profile, topo = machine
    work = Workload(isl=1024, osl=256)
    # round 1 of goodput is the throughput solve with TPOT <= 26 ms on the mean: its own P99 TPOT is above 26 ms
    # (a request's TPOT averages its decode-only and mixed steps; the spread is the mixed steps')
    first = solve(profile, topo, work, options=_throughput(tpot_slo_ms=26.0, ttft_slo_ms=300.0), constants=DEFAULT)
    p99 = plan_percentiles(profile, topo, first, workload=work, constants=DEFAULT).tpot.at(99)
    assert first.prediction.tpot_ms <= 26.0 < p99
    opts = SolveOptions(
        objective=Objective.GOODPUT,
        serving="agg",
        slo_percentile=99,
        tpot_slo_ms=26.0,
        ttft_slo_ms=300.0,
        time_limit_s=60,
    )
    plan = solve_serving(profile, topo, work, options=opts, constants=DEFAULT)
    t = plan.prediction.traffic
    assert t is not None and t.stable
    assert t.tpot.at(99) <= 26.0 and t.ttft.at(99) <= 300.0
    # the percentiles are the open loop's at the plan's own requests/s, and holding them costs throughput
    again = open_loop(profile, topo, plan.partition, work.model_copy(update={"request_rate": t.request_rate_rps}))
    assert again.traffic.tpot.p99_ms == pytest.approx(t.tpot.p99_ms)
    assert t.request_rate_rps == pytest.approx(plan.prediction.requests_per_s)
    assert plan.prediction.requests_per_s < first.prediction.requests_per_s
    assert plan.solver.objective == "goodput" and "2 solves" in plan.solver.note
    assert plan.solver.note.startswith(f"goodput {plan.prediction.requests_per_s:,.2f} requests/s")


def test_percentiles_need_an_slo_and_an_aggregated_plan(machine):
    profile, topo = machine
    with pytest.raises(InputError, match="give --ttft-slo or --tpot-slo"):
        solve_percentiles(
            profile, topo, Workload(), options=SolveOptions(slo_percentile=90), constants=DEFAULT, solver=solve_serving
        )
    with pytest.raises(InputError, match="aggregated plans only"):
        solve_percentiles(
            profile,
            topo,
            Workload(),
            options=SolveOptions(slo_percentile=90, tpot_slo_ms=30, serving="disagg"),
            constants=DEFAULT,
            solver=solve_serving,
        )
    with pytest.raises(ValueError, match="not a percentile"):
        SolveOptions(slo_percentile=75)


def test_unreachable_percentile_slo_says_so(machine):
    profile, topo = machine
    opts = SolveOptions(slo_percentile=99, tpot_slo_ms=27.0, ttft_slo_ms=300.0, serving="agg")
    with pytest.raises(InfeasibleError, match="no plan holds the SLOs at P99"):
        solve_serving(profile, topo, Workload(concurrency=64), options=opts, constants=DEFAULT)


def test_solve_goodput_cli(cli):
    code, out, err = cli(
        *("solve", "--model", "llama-70b", "--topology", "8xh100", "--objective", "goodput"),
        *("--ttft-slo", "300", "--tpot-slo", "30", "--serving", "agg", "--json"),
    )
    assert code == 0, err
    plan = json.loads(out)
    assert plan["solver"]["objective"] == "goodput"
    assert plan["prediction"]["traffic"]["tpot"]["p90_ms"] <= 30.0
    code, _, err = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "--slo-percentile", "90")
    assert code == 1 and "give --ttft-slo or --tpot-slo" in err and "Traceback" not in err
