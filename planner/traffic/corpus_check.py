"""The open-loop rows of the calibration corpus against `open_loop`: per row the predicted and measured TPOT and TTFT
in the statistic the row publishes (mean or median), and whether the model finds the rate sustained.

Rows measuring the same thing twice (one source copied into two corpus files) count once. A row the model finds
unsustained has no steady state to compare with (a finite run of N prompts above capacity is a transient whose
TTFT grows with N): it is priced as that transient where the row gives N (`num_prompts`, a fluid queue:
steady_state.finite_run_waits), else listed with its sustainable rate and left out of the medians.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from functools import lru_cache

from planner.calibrate.corpus import Case, case_machine, cases
from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.errors import PlannerError
from planner.plan import Workload
from planner.traffic.lengths import LengthDist, parse_length
from planner.traffic.steady import open_loop


@dataclass(frozen=True)
class Check:
    case: Case
    tpot_ms: float | None  # predicted, in the row's statistic
    ttft_ms: float | None
    stable: bool
    sustainable_rps: float
    problem: str | None = None
    finite_run: bool = False  # an unsustained rate priced as the finite run's transient

    @property
    def compared(self) -> bool:
        return self.stable or self.finite_run

    def error(self, metric: str) -> float | None:
        """predicted / measured - 1 for 'tpot' or 'ttft' (None where either is missing or the rate unsustained)."""
        measured = getattr(self.case.measured, f"{metric}_ms")
        predicted = getattr(self, f"{metric}_ms")
        if not self.compared or measured is None or predicted is None:
            return None
        return predicted / measured - 1


def open_cases() -> list[Case]:
    """The corpus's open-loop rows with a rate that resolve to a case, aggregated instances only, each once."""
    seen, out = set(), []
    for c in cases()[0]:
        if c.load != "open" or c.request_rate is None or c.disaggregated:
            continue
        m = c.measured
        key = (c.engine, c.model, c.topology, c.gpus, c.request_rate, m.tpot_ms, m.ttft_ms)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


@lru_cache(maxsize=None)
def sharegpt_outputs(mean_tokens: float) -> LengthDist:
    """The shipped ShareGPT output lengths scaled to a row's mean (its generated tokens / requests: answers end at
    the model's own end of text, at most the dataset's length, so the run's mean is below the histogram's 197)."""
    return parse_length("chat-sharegpt", what="--osl").scaled_to(mean_tokens)


def check(case: Case) -> Check:
    statistic = case.measured.latency_statistic
    try:
        profile, topo, part = case_machine(case)
        constants = resolve_constants(DEFAULT, case.engine)
        if case.max_num_seqs:
            constants = constants.model_copy(update={"max_num_seqs": case.max_num_seqs})
        if case.max_num_batched_tokens:
            constants = constants.model_copy(update={"max_num_batched_tokens": case.max_num_batched_tokens})
        # ShareGPT rows: the prompt lengths of the shipped histogram (its mean, 216, is the row's 215)
        isl = "chat-sharegpt" if case.entry.row.length_dist == "sharegpt" else case.isl
        extra = {"osl_dist": sharegpt_outputs(case.osl)} if case.entry.row.length_dist == "sharegpt" else {}
        work = Workload(
            **extra,
            request_rate=case.request_rate,
            num_prompts=case.entry.row.num_prompts,
            isl=isl,
            scheduler_steps=case.scheduler_steps,
            chunked_prefill=case.chunked_prefill,
            osl=case.osl,
            weight_dtype=case.weight_dtype,
            kv_dtype=case.kv_dtype,
            engine=case.engine,
            statistic=statistic,
        )
        pred = open_loop(profile, topo, part, work, constants)
    except PlannerError as exc:
        return Check(case, None, None, False, 0.0, str(exc))
    t = pred.traffic
    assert t is not None
    return Check(case, pred.tpot_ms, pred.ttft_ms, t.stable, t.sustainable_rate_rps, t.problem, t.finite_run)


def summary(checks: list[Check]) -> dict[str, float | int]:
    """Rows compared (sustained), their publishers and engines, and the median |error| of TPOT and TTFT."""
    compared = [c for c in checks if c.compared]
    out: dict[str, float | int] = {
        "rows": len(compared),
        "publishers": len({c.case.publisher for c in compared}),
        "engines": len({c.case.engine for c in compared}),
    }
    for metric in ("tpot", "ttft"):
        errs = [abs(e) for c in compared if (e := c.error(metric)) is not None]
        out[f"{metric}_rows"] = len(errs)
        out[f"{metric}_median_abs_error"] = statistics.median(errs) if errs else float("nan")
    return out
