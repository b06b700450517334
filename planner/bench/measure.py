"""`planner bench`: measure a live server at several loads next to the plan's prediction at the same loads, and
fit the constants a benchmark can observe into a calibration profile.

The load generator is a closed loop (planner.bench.client), so the prediction is made in the closed-loop mode of
the cost model (`--mode closed`, docs/cost-model.md): the same waves of identical requests the benchmark sends.
"""

from __future__ import annotations

import asyncio
import math
from typing import Callable, Optional

from pydantic import BaseModel

from planner.bench.client import LoadResult, check_url, run_load
from planner.cost.constants import DEFAULT, Constants
from planner.cost.estimate import estimate
from planner.errors import InputError
from planner.plan import Prediction
from planner.plan_io import LoadedPlan

#: What a benchmark of one plan can observe (at two or more loads): the per-step and per-request host times,
#: the decode streaming efficiency and the prefill efficiency.
BENCH_FITTABLE = ("step_overhead_s", "sequence_overhead_s", "hbm_efficiency", "flops_efficiency", "request_overhead_s")
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
    scheduled_at_s: Optional[float] = None  # open loop: when the Poisson schedule said to send it


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
    fit_rms_error: Optional[float] = None  # RMS of predicted / measured - 1 over the fitted points' figures
    fit_warnings: list[str] = []  # fitted constants that sit on a bound of their range


def requests_at_load(load: int, given: Optional[int]) -> int:
    """Requests sent at one load: `--requests` at every load when given, else 4 x the load and at least 8."""
    return given if given is not None else min(MAX_REQUESTS, max(8, 4 * load))


def check_bench_options(
    concurrencies: list[int], isl: int, osl: int, requests: Optional[int], loaded: LoadedPlan
) -> None:
    if any(c < 1 or c > MAX_REQUESTS for c in concurrencies):
        raise InputError(f"--concurrency: loads from 1 to {MAX_REQUESTS:,}")
    if requests is not None and not 1 <= requests <= MAX_REQUESTS:
        raise InputError(f"--requests must be from 1 to {MAX_REQUESTS:,}, got {requests}")
    if isl < 1 or osl < 2:
        raise InputError(
            f"--isl must be at least 1 and --osl at least 2 (TPOT needs two tokens), got --isl {isl} --osl {osl}"
        )
    if max(concurrencies) * isl > MAX_TOKENS_IN_FLIGHT:
        raise InputError(
            f"--concurrency {max(concurrencies):,} x --isl {isl:,} is {max(concurrencies) * isl:,} prompt "
            f"tokens in flight; at most {MAX_TOKENS_IN_FLIGHT:,} (each prompt is held in memory)"
        )
    limit = loaded.profile.context_length
    if limit and isl + osl > limit:
        raise InputError(f"--isl {isl} + --osl {osl} exceeds {loaded.profile.name}'s context of {limit:,} tokens")


def closed_estimate(loaded: LoadedPlan, concurrency: int, isl: int, osl: int, c: Constants = DEFAULT) -> Prediction:
    """The plan's prediction for a closed loop of `concurrency` clients (the loop planner bench runs)."""
    w = loaded.plan.inputs.workload.model_copy(
        update={"concurrency": concurrency, "isl": isl, "osl": osl, "mode": "closed"}
    )
    return estimate(loaded.profile, loaded.topo, loaded.plan.partition, workload=w, c=c, check=False)


def predict(loaded: LoadedPlan, concurrency: int, isl: int, osl: int, c: Constants = DEFAULT) -> Figures:
    p = closed_estimate(loaded, concurrency, isl, osl, c)
    return Figures(ttft_ms=p.ttft_ms, tpot_ms=p.tpot_ms, tokens_per_s=p.tokens_per_s)


def relative(predicted: float, measured: float) -> float:
    """The error as the tables show it: predicted / measured - 1 (positive: predicted higher, i.e. slower for
    TTFT and TPOT, more for tokens/s)."""
    return predicted / measured - 1 if measured and math.isfinite(measured) else float("nan")


def _error(pred: Figures, meas: Figures) -> Figures:
    return Figures(
        ttft_ms=relative(pred.ttft_ms, meas.ttft_ms),
        tpot_ms=relative(pred.tpot_ms, meas.tpot_ms),
        tokens_per_s=relative(pred.tokens_per_s, meas.tokens_per_s),
    )


def bench(
    loaded: LoadedPlan,
    url: str,
    concurrencies: list[int],
    *,
    isl: int,
    osl: int,
    requests: Optional[int],
    constants: Constants = DEFAULT,
    progress: Callable[[int, int], None] | None = None,
) -> BenchReport:
    """Measure at each load (a closed loop of `requests` requests there, default 4 x the load and at least 8) and
    predict the same load."""
    check_bench_options(concurrencies, isl, osl, requests, loaded)
    base = check_url(url)
    vocab = loaded.profile.vocab_size
    counts = [requests_at_load(conc, requests) for conc in concurrencies]
    points, done = [], 0
    for conc, n in zip(concurrencies, counts):

        def tick(k: int) -> None:
            if progress is not None:
                progress(done + k, sum(counts))

        res: LoadResult = asyncio.run(run_load(base, conc, n, isl, osl, vocab=vocab, progress=tick))
        done += n
        meas = Figures(ttft_ms=res.ttft_ms, tpot_ms=res.tpot_ms, tokens_per_s=res.tokens_per_s)
        pred = predict(loaded, conc, isl, osl, constants)
        samples = [
            Sample(
                request_id=r.request_id,
                sent_at_s=r.sent_at_s,
                first_token_at_s=r.first_token_at_s,
                last_token_at_s=r.last_token_at_s,
                tokens=r.tokens,
            )
            for r in res.requests
        ]
        points.append(
            BenchPoint(
                concurrency=conc,
                requests=len(res.requests),
                measured=meas,
                predicted=pred,
                error=_error(pred, meas),
                wall_s=res.wall_s,
                samples=samples,
            )
        )
    return BenchReport(plan=loaded.path, url=base, isl=isl, osl=osl, points=points)


def check_fit_loads(loads: list[int]) -> None:
    """A fit needs two or more loads: checked before a benchmark starts, and again on its points."""
    if len(set(loads)) < 2:
        raise InputError("--fit needs measurements at two or more loads (--concurrency 1,4)")
