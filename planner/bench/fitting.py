"""`planner bench --fit`: fit the constants a benchmark observes to its points, write them as a calibration
profile, and say how well they fit (RMS relative error on the points) and which sit on a bound of their range.

Closed-loop points are fitted at their load. Open-loop points are fitted at the mean number of requests the run
held in flight (Little's law on the measurement: the requests' summed time in system over the wall time), with
the closed-loop model the open-loop prediction uses, so the fit inherits that approximation (the output says so).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import yaml

from planner.bench.measure import BENCH_FITTABLE, BenchReport, check_fit_loads, closed_estimate
from planner.bench.openloop import OpenBenchReport
from planner.calibrate.serving import FITTABLE, Row, errors, fit
from planner.cost.constants import DEFAULT, Constants
from planner.errors import InputError
from planner.files import write_file
from planner.plan import Prediction
from planner.plan_io import LoadedPlan

#: A fitted constant within 1% of a non-zero bound sits on it. A zero lower bound is approached, never reached, by
#: the log-space search (it divides the value by its step), so there a value under 1e-4 of the range's top counts
#: as on it: 0.2 us for sequence_overhead_s, 2 us for step_overhead_s, 50 us for request_overhead_s, each far
#: under the NIM-fitted defaults (24.7 us, 0.64 ms, 7 ms; planner/cost/constants.py).
BOUND_REL = 0.01
ZERO_BOUND_FRACTION = 1e-4


@dataclass(frozen=True)
class FitOutcome:
    values: dict[str, float]
    rms_error: float  # sqrt(mean of (predicted / measured - 1)^2 over the points' TTFT, TPOT and tokens/s)
    warnings: list[str]


def on_bound(name: str, value: float) -> str | None:
    """Which bound of its FITTABLE range a fitted constant sits on ('lower' or 'upper'), or None."""
    low, high = FITTABLE[name]
    if (value <= high * ZERO_BOUND_FRACTION) if low == 0 else value <= low * (1 + BOUND_REL):
        return "lower"
    return "upper" if value >= high * (1 - BOUND_REL) else None


def bound_warnings(values: dict[str, float]) -> list[str]:
    out = []
    for name, value in values.items():
        if (side := on_bound(name, value)) is not None:
            low, high = FITTABLE[name]
            out.append(
                f"{name} {value:.3g} sits on the {side} bound of its range ({low:g} to {high:g}): the points "
                "pushed it there, so it is not measured (fit more loads, or check the server runs the plan)"
            )
    return out


def rms_error(rows: list[Row], c: Constants, loaded: LoadedPlan) -> float:
    errs = errors(rows, c, lambda row, k: _on_plan(loaded, row, k))
    sq = [getattr(e, k) ** 2 for e in errs for k in ("ttft", "tpot", "tokens") if math.isfinite(getattr(e, k))]
    return math.sqrt(sum(sq) / len(sq)) if sq else float("nan")


def _on_plan(loaded: LoadedPlan, row: Row, c: Constants) -> Prediction:
    return closed_estimate(loaded, row.concurrency, row.isl, row.osl, c)


def bench_rows(loaded: LoadedPlan, report: Union[BenchReport, OpenBenchReport]) -> list[Row]:
    """The measured points as calibration rows on the plan's own partition."""
    dtype = loaded.plan.inputs.workload.weight_dtype
    if isinstance(report, BenchReport):
        return [
            Row(
                model="",
                machine="",
                tp=1,
                dtype=dtype,
                isl=report.isl,
                osl=report.osl,
                concurrency=p.concurrency,
                mode="closed",
                itl_ms=p.measured.tpot_ms,
                ttft_ms=p.measured.ttft_ms,
                tokens_per_s=p.measured.tokens_per_s,
                role="fit",
            )
            for p in report.points
        ]
    rows = []
    for p in report.points:
        rows.append(
            Row(
                model="",
                machine="",
                tp=1,
                dtype=dtype,
                isl=round(p.mean_isl),
                osl=round(p.mean_osl),
                concurrency=max(1, round(p.measured.mean_in_flight)),
                mode="closed",
                itl_ms=p.measured.tpot_ms.mean,
                ttft_ms=p.measured.ttft_ms.mean,
                tokens_per_s=p.measured.tokens_per_s,
                role="fit",
            )
        )
    return rows


def fit_profile(
    loaded: LoadedPlan, report: Union[BenchReport, OpenBenchReport], path: str, *, start: Constants = DEFAULT
) -> FitOutcome:
    """Fit the observable constants to the measured points and write them as a calibration profile."""
    rows = bench_rows(loaded, report)
    if isinstance(report, OpenBenchReport) and len({r.concurrency for r in rows}) < 2:
        raise InputError(
            "--fit: the rates held the same mean load in flight "
            f"({rows[0].concurrency} requests, Little's law), which is one point; use rates further apart"
        )
    check_fit_loads([r.concurrency for r in rows])
    fitted = fit(rows, start, names=BENCH_FITTABLE, predictor=lambda row, c: _on_plan(loaded, row, c))
    values = {name: float(getattr(fitted, name)) for name in BENCH_FITTABLE}
    st = loaded.plan.stages[0]
    loads = ", ".join(str(r.concurrency) for r in rows)
    how = "closed-loop loads" if isinstance(report, BenchReport) else "mean loads in flight of open-loop rates"
    header = (
        f"# Calibration fitted by `planner bench --fit` to {report.url} at {how} {loads} "
        f"(isl {report.isl}, osl {report.osl}),\n"
        f"# plan {report.plan} ({loaded.plan.partition.shape}, {st.gpu_ids} ...). Pass it with --calibration.\n"
    )
    write_file(path, header + yaml.safe_dump(values, sort_keys=False), "the calibration profile")
    return FitOutcome(values=values, rms_error=rms_error(rows, fitted, loaded), warnings=bound_warnings(values))
