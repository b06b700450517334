"""`planner bench`: measure a live server at several loads next to the plan's prediction at the same loads, and
fit the constants a benchmark can observe into a calibration profile.

The load generator is a closed loop (planner.bench.client), so the prediction is made in the closed-loop mode of
the cost model (`--mode closed`, docs/cost-model.md): the same waves of identical requests the benchmark sends.
"""

from __future__ import annotations

import asyncio
import math
from typing import Callable, Optional

import yaml
from pydantic import BaseModel

from planner.bench.client import LoadResult, check_url, run_load
from planner.calibrate.serving import Row, fit
from planner.cost.constants import DEFAULT, Constants
from planner.cost.estimate import estimate
from planner.errors import InputError
from planner.files import write_file
from planner.plan import Prediction
from planner.plan_io import LoadedPlan

#: What a benchmark of one plan can observe (at two or more loads): the per-step and per-request host times,
#: the decode streaming efficiency and the prefill efficiency.
BENCH_FITTABLE = ("step_overhead_s", "sequence_overhead_s", "hbm_efficiency", "flops_efficiency",
                  "request_overhead_s")
MAX_REQUESTS = 10_000
#: Prompt tokens the load generator holds in flight (concurrency x isl): 16.7M token ids, about 0.6 GB.
MAX_TOKENS_IN_FLIGHT = 2**24


class Figures(BaseModel):
    ttft_ms: float
    tpot_ms: float
    tokens_per_s: float


class Sample(BaseModel):
    """One request's raw times, seconds on the bench host's monotonic clock (match a server log by request_id)."""

    request_id: str
    sent_at_s: float
    first_token_at_s: float
    last_token_at_s: float
    tokens: int


class BenchPoint(BaseModel):
    concurrency: int
    requests: int
    measured: Figures
    predicted: Figures
    error: Figures  # predicted / measured - 1
    wall_s: float = 0.0  # first request sent to last token received
    samples: list[Sample] = []


class BenchReport(BaseModel):
    plan: str
    url: str
    isl: int
    osl: int
    mode: str = "closed"
    points: list[BenchPoint]
    calibration: Optional[str] = None  # the profile written by --fit
    fitted: dict[str, float] = {}


def check_bench_options(concurrencies: list[int], isl: int, osl: int, requests: int, loaded: LoadedPlan) -> None:
    if any(c < 1 or c > MAX_REQUESTS for c in concurrencies):
        raise InputError(f"--concurrency: loads from 1 to {MAX_REQUESTS:,}")
    if not 1 <= requests <= MAX_REQUESTS:
        raise InputError(f"--requests must be from 1 to {MAX_REQUESTS:,}, got {requests}")
    if isl < 1 or osl < 2:
        raise InputError(f"--isl must be at least 1 and --osl at least 2 (TPOT needs two tokens), got --isl {isl} "
                         f"--osl {osl}")
    if max(concurrencies) * isl > MAX_TOKENS_IN_FLIGHT:
        raise InputError(f"--concurrency {max(concurrencies):,} x --isl {isl:,} is {max(concurrencies) * isl:,} prompt "
                         f"tokens in flight; at most {MAX_TOKENS_IN_FLIGHT:,} (each prompt is held in memory)")
    limit = loaded.profile.context_length
    if limit and isl + osl > limit:
        raise InputError(f"--isl {isl} + --osl {osl} exceeds {loaded.profile.name}'s context of {limit:,} tokens")


def closed_estimate(loaded: LoadedPlan, concurrency: int, isl: int, osl: int, c: Constants = DEFAULT) -> Prediction:
    """The plan's prediction for a closed loop of `concurrency` clients (the loop planner bench runs)."""
    w = loaded.plan.inputs.workload.model_copy(update={"concurrency": concurrency, "isl": isl, "osl": osl,
                                                       "mode": "closed"})
    return estimate(loaded.profile, loaded.topo, loaded.plan.partition, workload=w, c=c, check=False)


def predict(loaded: LoadedPlan, concurrency: int, isl: int, osl: int, c: Constants = DEFAULT) -> Figures:
    p = closed_estimate(loaded, concurrency, isl, osl, c)
    return Figures(ttft_ms=p.ttft_ms, tpot_ms=p.tpot_ms, tokens_per_s=p.tokens_per_s)


def _error(pred: Figures, meas: Figures) -> Figures:
    def rel(a: float, b: float) -> float:
        return a / b - 1 if b and math.isfinite(b) else float("nan")

    return Figures(ttft_ms=rel(pred.ttft_ms, meas.ttft_ms), tpot_ms=rel(pred.tpot_ms, meas.tpot_ms),
                   tokens_per_s=rel(pred.tokens_per_s, meas.tokens_per_s))


def bench(loaded: LoadedPlan, url: str, concurrencies: list[int], *, isl: int, osl: int, requests: int,
          constants: Constants = DEFAULT, progress: Callable[[int, int], None] | None = None) -> BenchReport:
    """Measure at each load (a closed loop of `requests` requests) and predict the same load."""
    check_bench_options(concurrencies, isl, osl, requests, loaded)
    base = check_url(url)
    vocab = loaded.profile.vocab_size
    points, done = [], 0
    for conc in concurrencies:
        def tick(n: int) -> None:
            if progress is not None:
                progress(done + n, len(concurrencies) * requests)

        res: LoadResult = asyncio.run(run_load(base, conc, requests, isl, osl, vocab=vocab, progress=tick))
        done += requests
        meas = Figures(ttft_ms=res.ttft_ms, tpot_ms=res.tpot_ms, tokens_per_s=res.tokens_per_s)
        pred = predict(loaded, conc, isl, osl, constants)
        samples = [Sample(request_id=r.request_id, sent_at_s=r.sent_at_s, first_token_at_s=r.first_token_at_s,
                          last_token_at_s=r.last_token_at_s, tokens=r.tokens) for r in res.requests]
        points.append(BenchPoint(concurrency=conc, requests=len(res.requests), measured=meas, predicted=pred,
                                 error=_error(pred, meas), wall_s=res.wall_s, samples=samples))
    return BenchReport(plan=loaded.path, url=base, isl=isl, osl=osl, points=points)


def check_fit_loads(loads: list[int]) -> None:
    """A fit needs two or more loads: checked before a benchmark starts, and again on its points."""
    if len(set(loads)) < 2:
        raise InputError("--fit needs measurements at two or more loads (--concurrency 1,4)")


def fit_profile(loaded: LoadedPlan, report: BenchReport, path: str, start: Constants = DEFAULT) -> dict[str, float]:
    """Fit the observable constants to the measured points and write them as a calibration profile."""
    check_fit_loads([p.concurrency for p in report.points])
    plan = loaded.plan
    st = plan.stages[0]
    rows = [_row(loaded, report, p) for p in report.points]

    def on_plan(row: Row, c: Constants) -> Prediction:
        return closed_estimate(loaded, row.concurrency, row.isl, row.osl, c)

    fitted = fit(rows, start, names=BENCH_FITTABLE, predictor=on_plan)
    values = {name: float(getattr(fitted, name)) for name in BENCH_FITTABLE}
    header = (f"# Calibration fitted by `planner bench --fit` to {report.url} at loads "
              f"{', '.join(str(p.concurrency) for p in report.points)} (isl {report.isl}, osl {report.osl}),\n"
              f"# plan {report.plan} ({plan.partition.shape}, {st.gpu_ids} ...). Pass it with --calibration.\n")
    write_file(path, header + yaml.safe_dump(values, sort_keys=False), "the calibration profile")
    return values


def _row(loaded: LoadedPlan, report: BenchReport, p: BenchPoint) -> Row:
    """A measured point as a calibration row on the plan's own partition."""
    return Row(model="", machine="", tp=1, dtype=loaded.plan.inputs.workload.weight_dtype, isl=report.isl,
               osl=report.osl, concurrency=p.concurrency, mode="closed", itl_ms=p.measured.tpot_ms,
               ttft_ms=p.measured.ttft_ms, tokens_per_s=p.measured.tokens_per_s, role="fit")
