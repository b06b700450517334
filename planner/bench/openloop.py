"""`planner bench --request-rate`: Poisson arrivals at each rate, the percentiles of TTFT and TPOT over the
requests, and the plan's closed-loop prediction at the load Little's law gives (an approximation: the cost model
has no open-loop bench regime yet; issue 25's open-loop prediction replaces it when it lands).

Little's law: the mean number of requests in the system is the arrival rate times the mean time each spends in
it. The prediction is made at the smallest closed-loop load `c` whose predicted time in system `W(c)` (TTFT +
osl x TPOT) satisfies rate x W(c) <= c, i.e. where the closed loop completes requests at least as fast as they
arrive; past the load cap the rate is reported as beyond what the plan sustains, with no prediction.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import Callable, Optional

from pydantic import BaseModel

from planner.bench.client import Arrival, OpenLoopResult, RequestResult, check_url, poisson_schedule, run_open_loop
from planner.bench.measure import MAX_REQUESTS, MAX_TOKENS_IN_FLIGHT, Figures, Sample, closed_estimate, relative
from planner.cost.constants import DEFAULT, Constants
from planner.errors import InputError
from planner.plan import Prediction
from planner.plan_io import LoadedPlan
from planner.traffic.lengths import LengthDist

#: The most requests one rate may send per second (far above any one server; keeps the schedule's sleeps > 0.1 ms).
MAX_RATE_PER_S = 10_000.0


class Percentiles(BaseModel):
    """A figure over the requests of one rate: mean and percentiles (linear interpolation, as numpy's default)."""

    mean: float
    p50: float
    p90: float
    p99: float


class OpenFigures(BaseModel):
    ttft_ms: Percentiles
    tpot_ms: Percentiles
    requests_per_s: float  # requests completed / wall time (first send to last token)
    tokens_per_s: float  # output tokens / wall time
    sent_per_s: float  # the rate the requests were sent at: (n - 1) / (last send - first send)
    mean_in_flight: float  # sum of the requests' times in system / wall time (Little's law, measured)


class OpenPoint(BaseModel):
    request_rate: float  # asked for, requests/s (Poisson)
    requests: int
    mean_isl: float  # the prompts' and answers' mean lengths as sent (tokens)
    mean_osl: float
    measured: OpenFigures
    little_load: Optional[int] = None  # the closed-loop load the prediction is made at (None: past what it sustains)
    predicted: Optional[Figures] = None  # TTFT, TPOT: means of the closed loop at little_load (an approximation);
    # tokens/s: the steady state's, rate x mean osl
    predicted_requests_per_s: Optional[float] = None  # steady state: the rate itself (None: past what it sustains)
    error: Optional[Figures] = None  # predicted mean / measured mean - 1
    wall_s: float = 0.0
    samples: list[Sample] = []


class OpenBenchReport(BaseModel):
    plan: str
    url: str
    isl: str  # as given: a number of tokens or a distribution
    osl: str
    seed: int
    max_in_flight: int
    mode: str = "open"
    prediction: str = (
        "closed loop at the load Little's law gives (load = rate x predicted time in system): an "
        "approximation of Poisson arrivals"
    )
    points: list[OpenPoint]
    calibration: Optional[str] = None
    fitted: dict[str, float] = {}
    fit_rms_error: Optional[float] = None
    fit_warnings: list[str] = []


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of `values` by linear interpolation between the closest ranks."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = q / 100 * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values: list[float]) -> Percentiles:
    mean = sum(values) / len(values) if values else float("nan")
    return Percentiles(mean=mean, p50=percentile(values, 50), p90=percentile(values, 90), p99=percentile(values, 99))


def measured_figures(res: OpenLoopResult) -> OpenFigures:
    rs = res.requests
    sends = sorted(r.sent_at_s for r in rs)
    span_s = sends[-1] - sends[0]
    return OpenFigures(
        ttft_ms=summary([1e3 * r.ttft_s for r in rs]),
        tpot_ms=summary([1e3 * r.tpot_s for r in rs if r.tpot_s is not None]),
        requests_per_s=len(rs) / res.wall_s,
        tokens_per_s=sum(r.tokens for r in rs) / res.wall_s,
        sent_per_s=(len(rs) - 1) / span_s if span_s > 0 else float("nan"),
        mean_in_flight=sum(r.latency_s for r in rs) / res.wall_s,
    )


def make_schedule(rate: float, n: int, *, isl: LengthDist, osl: LengthDist, seed: int, context: int) -> list[Arrival]:
    """`n` Poisson arrivals with their lengths, each drawn from its own seeded stream (so that changing --osl does
    not move the send times); an answer keeps at least 2 tokens and a prompt at least 1, inside `context`."""
    high = context if context else 1 << 21
    isl_rng, osl_rng = random.Random(f"isl-{seed}"), random.Random(f"osl-{seed}")
    out = []
    for at_s in poisson_schedule(rate, n, seed=seed):
        o = osl.sample(osl_rng, low=2, high=high - 1)
        out.append(Arrival(at_s=at_s, isl=isl.sample(isl_rng, low=1, high=high - o), osl=o))
    return out


def check_open_options(
    rates: list[float], isl: LengthDist, osl: LengthDist, *, max_in_flight: int, loaded: LoadedPlan
) -> None:
    if any(not (0 < r <= MAX_RATE_PER_S) or not math.isfinite(r) for r in rates):
        raise InputError(f"--request-rate: requests/s above 0 and at most {MAX_RATE_PER_S:,.0f}")
    if not 1 <= max_in_flight <= MAX_REQUESTS:
        raise InputError(f"--max-in-flight must be from 1 to {MAX_REQUESTS:,}, got {max_in_flight}")
    fixed = isl.kind == "fixed" and osl.kind == "fixed"
    if (isl.kind == "fixed" and isl.lengths[0] < 1) or (osl.kind == "fixed" and osl.lengths[0] < 2):
        raise InputError(
            f"--isl must be at least 1 and --osl at least 2 (TPOT needs two tokens), got --isl "
            f"{isl.spec} --osl {osl.spec}"
        )
    limit = loaded.profile.context_length
    if limit and fixed and isl.lengths[0] + osl.lengths[0] > limit:
        raise InputError(
            f"--isl {isl.spec} + --osl {osl.spec} exceeds {loaded.profile.name}'s context of {limit:,} tokens"
        )


def little_prediction(
    loaded: LoadedPlan, rate: float, *, isl: int, osl: int, c: Constants = DEFAULT
) -> tuple[Optional[int], Optional[Prediction]]:
    """The smallest closed-loop load at which the plan completes `rate` requests/s (Little's law: load = rate x
    time in system), and its prediction there; (None, None) when no load up to MAX_REQUESTS does."""

    def enough(load: int) -> bool:
        p = closed_estimate(loaded, load, isl, osl, c)
        return rate * (p.ttft_ms + osl * p.tpot_ms) / 1e3 <= load

    if not enough(MAX_REQUESTS):
        return None, None
    lo, hi = 1, MAX_REQUESTS  # enough(hi) holds; find the smallest such load
    while lo < hi:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo, closed_estimate(loaded, lo, isl, osl, c)


def _samples(rs: list[RequestResult]) -> list[Sample]:
    return [
        Sample(
            request_id=r.request_id,
            sent_at_s=r.sent_at_s,
            first_token_at_s=r.first_token_at_s,
            last_token_at_s=r.last_token_at_s,
            tokens=r.tokens,
            scheduled_at_s=r.scheduled_at_s,
        )
        for r in rs
    ]


def _point(loaded: LoadedPlan, res: OpenLoopResult, arrivals: list[Arrival], *, c: Constants) -> OpenPoint:
    meas = measured_figures(res)
    mean_isl = sum(a.isl for a in arrivals) / len(arrivals)
    mean_osl = sum(a.osl for a in arrivals) / len(arrivals)
    load, p = little_prediction(loaded, res.request_rate, isl=round(mean_isl), osl=round(mean_osl), c=c)
    pred = err = None
    if p is not None:
        # in a steady state the server completes requests as fast as they arrive: rate, and rate x mean osl tokens/s
        pred = Figures(ttft_ms=p.ttft_ms, tpot_ms=p.tpot_ms, tokens_per_s=res.request_rate * mean_osl)
        err = Figures(
            ttft_ms=relative(pred.ttft_ms, meas.ttft_ms.mean),
            tpot_ms=relative(pred.tpot_ms, meas.tpot_ms.mean),
            tokens_per_s=relative(pred.tokens_per_s, meas.tokens_per_s),
        )
    return OpenPoint(
        request_rate=res.request_rate,
        requests=len(res.requests),
        mean_isl=mean_isl,
        mean_osl=mean_osl,
        measured=meas,
        little_load=load,
        predicted=pred,
        predicted_requests_per_s=res.request_rate if p is not None else None,
        error=err,
        wall_s=res.wall_s,
        samples=_samples(res.requests),
    )


def open_bench(
    loaded: LoadedPlan,
    url: str,
    rates: list[float],
    *,
    isl: LengthDist,
    osl: LengthDist,
    requests: Optional[int],
    seed: int,
    max_in_flight: int,
    constants: Constants = DEFAULT,
    progress: Callable[[int, int], None] | None = None,
) -> OpenBenchReport:
    """At each rate, `requests` Poisson arrivals (default: 10 s of them, at least 32), measured and predicted."""
    check_open_options(rates, isl, osl, max_in_flight=max_in_flight, loaded=loaded)
    base = check_url(url)
    counts = [requests_at_rate(r, requests) for r in rates]
    plans = [
        make_schedule(r, n, isl=isl, osl=osl, seed=seed, context=loaded.profile.context_length)
        for r, n in zip(rates, counts)
    ]
    longest = max(a.isl for arrivals in plans for a in arrivals)
    if max_in_flight * longest > MAX_TOKENS_IN_FLIGHT:
        raise InputError(
            f"--max-in-flight {max_in_flight:,} x the longest prompt ({longest:,} tokens) is more than "
            f"{MAX_TOKENS_IN_FLIGHT:,} prompt tokens in flight (each prompt is held in memory)"
        )
    points, done = [], 0
    for rate, arrivals in zip(rates, plans):

        def tick(n: int) -> None:
            if progress is not None:
                progress(done + n, sum(counts))

        res = asyncio.run(
            run_open_loop(
                base,
                rate,
                arrivals,
                vocab=loaded.profile.vocab_size,
                seed=seed,
                max_in_flight=max_in_flight,
                progress=tick,
            )
        )
        done += len(arrivals)
        points.append(_point(loaded, res, arrivals, c=constants))
    return OpenBenchReport(
        plan=loaded.path, url=base, isl=isl.spec, osl=osl.spec, seed=seed, max_in_flight=max_in_flight, points=points
    )


def requests_at_rate(rate: float, given: Optional[int]) -> int:
    """Requests sent at one rate: as given, else 10 s of arrivals (at least 32, at most MAX_REQUESTS)."""
    if given is not None:
        if not 1 <= given <= MAX_REQUESTS:
            raise InputError(f"--requests must be from 1 to {MAX_REQUESTS:,}, got {given}")
        return given
    return min(MAX_REQUESTS, max(32, math.ceil(10 * rate)))


def parse_rates(text: str) -> list[float]:
    """`--request-rate 4` or `4,16`: requests/s, each above 0, sorted and without repeats."""
    rates = []
    for part in text.split(","):
        try:
            rate = float(part)
        except ValueError:
            raise InputError(
                f"--request-rate: '{part.strip()[:40]}' is not a number of requests/s (give 4 or 2,8)"
            ) from None
        if not (math.isfinite(rate) and 0 < rate <= MAX_RATE_PER_S):
            raise InputError(
                f"--request-rate: requests/s above 0 and at most {MAX_RATE_PER_S:,.0f}, got '{part.strip()[:40]}'"
            )
        rates.append(rate)
    if len(rates) > 64:
        raise InputError(f"--request-rate: at most 64 rates, got {len(rates)}")
    return sorted(set(rates))
