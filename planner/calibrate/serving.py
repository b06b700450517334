"""The serving model against measured figures at load: predict each measured row, report errors, fit constants.

A row is one measurement of a server: model, machine, tensor-parallel GPUs, dtype, isl/osl, concurrency, the
timing regime (`closed`: a closed-loop benchmark, `serving`: steady state) and what was measured: inter-token
latency (TPOT), TTFT and output tokens/s. `benchmarks/fit_serving.py` fits constants to the rows marked `fit`
and reports every row; `planner bench --fit` fits a profile to a live run the same way.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Callable, Iterable

from planner.calibrate.search import Knob, coordinate_descent
from planner.cost.constants import Constants
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Prediction, Workload, make_partition

#: The constants a serving fit may move, with their ranges (the others stay at their physics values).
FITTABLE = {
    "hbm_efficiency": (0.2, 1.0),
    "flops_efficiency": (0.2, 1.0),
    "kv_hbm_efficiency": (0.2, 1.0),
    "step_overhead_s": (0.0, 0.02),
    "sequence_overhead_s": (0.0, 2e-3),
    "request_overhead_s": (0.0, 0.5),
}
#: What benchmarks/fit_serving.py moves (hbm_efficiency stays at the gpt-fast value it was fitted to).
SERVING_FIT = ("flops_efficiency", "kv_hbm_efficiency", "step_overhead_s", "sequence_overhead_s", "request_overhead_s")


@dataclass(frozen=True)
class Row:
    """One measured operating point of a server."""

    model: str
    machine: str
    tp: int
    dtype: str
    isl: int
    osl: int
    concurrency: int
    mode: str
    itl_ms: float
    ttft_ms: float
    tokens_per_s: float
    role: str = "check"
    kv_dtype: str | None = None  # default: the weights' dtype
    dp: int = 1
    ep: int = 1
    engine: str = "trtllm"  # the round-two tables: NIM's TensorRT-LLM (serving_moe.yaml says sglang)


@dataclass(frozen=True)
class Errors:
    """Relative errors (predicted / measured - 1) of one row."""

    row: Row
    tpot: float
    ttft: float
    tokens: float
    prediction: Prediction


def predict(row: Row, c: Constants) -> Prediction:
    profile, topo = load_profile(row.model), load_topology(row.machine)
    gpus = row.tp * row.dp
    part = make_partition(profile, topo, tp=row.tp, dp=row.dp, ep=row.ep, gpu_ids=list(range(gpus)))
    w = Workload(
        concurrency=row.concurrency,
        isl=row.isl,
        osl=row.osl,
        weight_dtype=row.dtype,
        kv_dtype=row.kv_dtype or row.dtype,
        mode=row.mode,
        engine=row.engine,
    )
    return estimate(profile, topo, part, workload=w, c=c)


Predictor = Callable[[Row, Constants], Prediction]


def errors(rows: Iterable[Row], c: Constants, predictor: Predictor = predict) -> list[Errors]:
    out = []
    for r in rows:
        p = predictor(r, c)
        out.append(
            Errors(r, p.tpot_ms / r.itl_ms - 1, p.ttft_ms / r.ttft_ms - 1, p.tokens_per_s / r.tokens_per_s - 1, p)
        )
    return out


def medians(errs: list[Errors]) -> dict[str, float]:
    """Median absolute error of TPOT, TTFT and tokens/s."""
    return {k: statistics.median(abs(getattr(e, k)) for e in errs) for k in ("tpot", "ttft", "tokens")}


def _score(errs: list[Errors]) -> float:
    """What the fit minimises: the sum of the three medians of |log(predicted / measured)|."""
    return sum(statistics.median(abs(math.log1p(getattr(e, k))) for e in errs) for k in ("tpot", "ttft", "tokens"))


def constant_knob(name: str) -> Knob[Constants]:
    """A top-level Constants field as a knob, within FITTABLE's range."""
    low, high = FITTABLE[name]
    return Knob(name, lambda c: getattr(c, name), lambda c, v: c.model_copy(update={name: v}), low, high)


def fit(
    rows: list[Row],
    start: Constants,
    names: Iterable[str] = SERVING_FIT,
    rounds: int = 40,
    guard: Callable[[Constants], bool] = lambda c: True,
    *,
    predictor: Predictor = predict,
) -> Constants:
    """Coordinate descent in log space on `names`, within FITTABLE's ranges; `guard` may veto a candidate
    (for example: the concurrency-1 decode rows must stay within their tolerance)."""
    return coordinate_descent(
        start,
        [constant_knob(n) for n in names],
        lambda c: _score(errors(rows, c, predictor)),
        step=2.0,
        rounds=rounds,
        min_step=1.02,
        guard=guard,
    )
