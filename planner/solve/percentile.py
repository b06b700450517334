"""SLOs on a percentile (`solve --slo-percentile 90`) and `--objective goodput`.

CP-SAT prices a plan's mean TTFT and TPOT at its load, linearly (planner.solve.objectives); a percentile is not
linear in the plan's choices. So the search runs on mean bounds and checks the percentile after, tightening:

1. solve with the SLOs as bounds on the mean;
2. price the plan's percentiles: its load of n sequences is the steady state of arrivals at rate n / S(n), S the
   time a request spends in the system (Little's law), so the open-loop model (planner.traffic.steady) at the plan's
   own requests/s gives the P50, P90 and P99 of TTFT and TPOT (its queues, length spread and mixed steps);
3. where the percentile misses its SLO, scale that mean bound by SLO / percentile (less 2%) and solve again;
   at most `ROUNDS` rounds. The answer is the first plan whose percentiles hold, with them in its `traffic`.

Goodput (DistServe's word: the most requests/s whose requests meet both SLOs) is the throughput objective with the
SLOs at a percentile: `--objective goodput` searches throughput with `--slo-percentile` (default 90).
"""

from __future__ import annotations

from typing import Callable, Optional

from planner.cost.constants import Constants
from planner.errors import InfeasibleError, InputError
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Plan, Workload
from planner.solve.options import Objective, SolveOptions
from planner.traffic.model import TrafficPrediction
from planner.traffic.steady import open_loop

#: Rounds of tightening the mean bounds before giving up.
ROUNDS = 6
#: Each tightening aims this much under the SLO (the percentile moves with the plan the tighter bound picks).
HEADROOM = 0.98
#: Percentile of `--objective goodput` when --slo-percentile is not given.
GOODPUT_PERCENTILE = 90

Solver = Callable[..., Plan]


def wants_percentiles(options: SolveOptions) -> bool:
    return options.slo_percentile is not None or options.objective == Objective.GOODPUT


def plan_percentiles(
    profile: ModelProfile, topo: Topology, plan: Plan, *, workload: Workload, constants: Constants
) -> TrafficPrediction:
    """The plan's TTFT and TPOT percentiles at its own load, as the open loop at its requests/s prices them."""
    rate = plan.prediction.requests_per_s
    if not rate or rate <= 0:
        raise InfeasibleError("the plan completes no requests: no percentiles to bound")
    at = workload.model_copy(update={"request_rate": rate, "mode": "serving"})
    traffic = open_loop(profile, topo, plan.partition, at, constants).traffic
    assert traffic is not None
    return traffic


def _misses(traffic: TrafficPrediction, options: SolveOptions, percentile: int) -> dict[str, float]:
    """SLO name -> the plan's percentile, for each SLO the percentile misses (an unstable rate misses both)."""
    got = {"ttft": traffic.ttft.at(percentile) if traffic.ttft else None}
    got["tpot"] = traffic.tpot.at(percentile) if traffic.tpot else None
    out = {}
    for name, slo in (("ttft", options.ttft_slo_ms), ("tpot", options.tpot_slo_ms)):
        value = got[name]
        if slo is not None and (not traffic.stable or value is None or value > slo):
            out[name] = value if value is not None else float("inf")
    return out


def _check(options: SolveOptions) -> int:
    if options.ttft_slo_ms is None and options.tpot_slo_ms is None:
        raise InputError("--slo-percentile / --objective goodput bound the SLOs: give --ttft-slo or --tpot-slo")
    if options.serving in ("disagg", "auto"):
        raise InputError(
            f"--serving {options.serving}: percentile SLOs are priced for aggregated plans only (the "
            "disaggregated pools have no percentile model yet): use --serving agg"
        )
    return options.slo_percentile or GOODPUT_PERCENTILE


def solve_percentiles(
    profile: ModelProfile,
    topo: Topology,
    workload: Workload,
    *,
    options: SolveOptions,
    constants: Constants,
    solver: Solver,
    progress: object = None,
) -> Plan:
    """The best plan whose TTFT and TPOT at `options.slo_percentile` hold the SLOs (module docstring)."""
    percentile = _check(options)
    objective = Objective.THROUGHPUT if options.objective == Objective.GOODPUT else options.objective
    bounds: dict[str, Optional[float]] = {"ttft": options.ttft_slo_ms, "tpot": options.tpot_slo_ms}
    said: list[str] = []
    for round_ in range(1, ROUNDS + 1):
        inner = options.model_copy(
            update={
                "objective": objective,
                "slo_percentile": None,
                "serving": "agg",
                "ttft_slo_ms": bounds["ttft"],
                "tpot_slo_ms": bounds["tpot"],
            }
        )
        try:
            plan = solver(profile, topo, workload, options=inner, constants=constants, progress=progress)
        except InfeasibleError as exc:
            raise InfeasibleError(
                f"no plan holds the SLOs at P{percentile}: {exc.message}", details=[*said, *exc.details]
            ) from None
        traffic = plan_percentiles(profile, topo, plan, workload=workload, constants=constants)
        misses = _misses(traffic, options, percentile)
        if not misses:
            return _answer(plan, traffic, options=options, percentile=percentile, rounds=round_)
        for name, value in misses.items():
            slo = options.ttft_slo_ms if name == "ttft" else options.tpot_slo_ms
            current = bounds[name] or slo
            assert slo is not None and current is not None
            bounds[name] = current * min(HEADROOM, HEADROOM * slo / value)
            said.append(f"round {round_}: P{percentile} {name.upper()} {value:,.1f} ms > {slo:g} ms")
    raise InfeasibleError(
        f"no plan holds the SLOs at P{percentile} after {ROUNDS} rounds of tightening the mean bounds", details=said
    )


def _answer(plan: Plan, traffic: TrafficPrediction, *, options: SolveOptions, percentile: int, rounds: int) -> Plan:
    """The plan with its percentiles (`prediction.traffic`), the objective as asked, and a note saying so."""
    held = []
    for name, p, slo in (("TTFT", traffic.ttft, options.ttft_slo_ms), ("TPOT", traffic.tpot, options.tpot_slo_ms)):
        if p is not None and slo is not None:
            held.append(f"{name} {p.at(percentile):,.1f} ms (mean {p.mean_ms:,.1f}) <= {slo:g} ms")
    rate = traffic.request_rate_rps
    solves = f"{rounds} solve{'s' if rounds > 1 else ''}"
    note = f"SLOs held at P{percentile} in the open loop at the plan's {rate:,.2f} requests/s: {' and '.join(held)}"
    note += f" ({solves})"
    if options.objective == Objective.GOODPUT:
        note = f"goodput {plan.prediction.requests_per_s:,.2f} requests/s: {note}"
    solver = plan.solver.model_copy(
        update={"note": "; ".join(filter(None, [note, plan.solver.note])), "objective": options.objective.value}
    )
    inputs = plan.inputs.model_copy(
        update={
            "objective": options.objective.value,
            "ttft_slo_ms": options.ttft_slo_ms,
            "tpot_slo_ms": options.tpot_slo_ms,
        }
    )
    prediction = plan.prediction.model_copy(update={"traffic": traffic})
    return plan.model_copy(update={"solver": solver, "inputs": inputs, "prediction": prediction})
