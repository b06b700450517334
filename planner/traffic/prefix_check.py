"""The prefix-sharing rows of the calibration corpus against the serving model with prefix reuse (`--prefix-tokens`,
`--prefix-hit`): per row the predicted and measured TTFT, and, where the same publisher ran the same engine, machine
and load on prompts with nothing shared, the measured and predicted ratio of the two TTFTs (the prefix cache's own
effect, whatever the engine's kernels cost).

The hit rate comes from the dataset's sharing structure: a generated-shared-prefix run of G groups of k prompts
sends G x k requests, and the first request of each group finds nothing cached (it prefills the prefix that the
other k - 1 then reuse), so h = 1 - G / (G k) = 1 - 1 / k. A row that publishes its measured hit rate uses that.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from planner.calibrate.corpus import Case, case_machine, cases
from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.errors import PlannerError
from planner.plan import Workload
from planner.traffic.steady import open_loop


def group_hit_rate(prefix: dict) -> float | None:
    """Share of requests that find their shared prefix cached: the published hit rate, else 1 - 1 / k for groups
    of k prompts each (the first of each group prefills it), else None (the structure is not published)."""
    if prefix.get("hit_rate") is not None:
        return float(prefix["hit_rate"])
    per_group = prefix.get("prompts_per_group")
    return 1.0 - 1.0 / per_group if per_group else None


@dataclass(frozen=True)
class PrefixCheck:
    case: Case
    hit_rate: float
    ttft_ms: float | None  # predicted with prefix reuse
    plain_ttft_ms: float | None  # predicted for the same prompts with nothing cached
    paired_ttft_ms: float | None = None  # measured: the publisher's own run without a shared prefix, if any
    problem: str | None = None

    @property
    def error(self) -> float | None:
        """predicted / measured TTFT - 1."""
        measured = self.case.measured.ttft_ms
        return None if self.ttft_ms is None or not measured else self.ttft_ms / measured - 1

    @property
    def ratio_error(self) -> float | None:
        """(predicted prefix / plain TTFT) / (measured prefix / plain TTFT) - 1: the prefix cache's effect alone."""
        m, paired = self.case.measured.ttft_ms, self.paired_ttft_ms
        if self.ttft_ms is None or not self.plain_ttft_ms or not m or not paired:
            return None
        return (self.ttft_ms / self.plain_ttft_ms) / (m / paired) - 1


def prefix_cases(corpus: list[Case]) -> list[Case]:
    """Aggregated corpus rows with a shared prefix whose hit rate is published or follows from the groups."""
    out = []
    for c in corpus:
        p = c.entry.row.prefix
        if not c.disaggregated and p and p.get("shared_prefix_tokens") and group_hit_rate(p) is not None:
            out.append(c)
    return out


def _paired(case: Case, corpus: list[Case]) -> float | None:
    """Measured TTFT of the same publisher's run on the same engine build, machine, layout, load and lengths with
    nothing shared (None if it has none)."""
    r = case.entry.row
    for c in corpus:
        o = c.entry.row
        if (
            c.entry.file == case.entry.file
            and not o.prefix
            and o.engine_version == r.engine_version
            and (c.engine, c.topology, c.gpus, c.load, c.concurrency, c.request_rate, c.isl, c.osl)
            == (
                case.engine,
                case.topology,
                case.gpus,
                case.load,
                case.concurrency,
                case.request_rate,
                case.isl,
                case.osl,
            )
        ):
            return c.measured.ttft_ms
    return None


def _ttft_ms(case: Case, work: Workload) -> float:
    profile, topo, part = case_machine(case)
    c = resolve_constants(DEFAULT, case.engine)
    if case.load == "open":
        return open_loop(profile, topo, part, work, c).ttft_ms
    return estimate(profile, topo, part, workload=work, c=c).ttft_ms


def check(case: Case, corpus: list[Case]) -> PrefixCheck:
    """`case` priced with and without its prefix reuse, and paired with its plain twin among `corpus`."""
    prefix = case.entry.row.prefix or {}
    hit = group_hit_rate(prefix) or 0.0
    statistic = case.measured.latency_statistic
    plain = Workload(
        concurrency=case.concurrency or case.entry.row.num_prompts or 1,
        isl=case.isl,
        osl=case.osl,
        request_rate=case.request_rate if case.load == "open" else None,
        num_prompts=case.entry.row.num_prompts if case.load == "open" else None,
        weight_dtype=case.weight_dtype,
        kv_dtype=case.kv_dtype,
        engine=case.engine,
        statistic=statistic,
        mode="serving" if case.load == "open" else case.load,
    )
    shared = plain.model_copy(update={"prefix_tokens": int(prefix["shared_prefix_tokens"]), "prefix_hit": hit})
    try:
        return PrefixCheck(case, hit, _ttft_ms(case, shared), _ttft_ms(case, plain), _paired(case, corpus))
    except PlannerError as exc:
        return PrefixCheck(case, hit, None, None, problem=str(exc))


def all_checks() -> list[PrefixCheck]:
    """Every prefix row of the corpus checked (the corpus resolved once)."""
    corpus = cases()[0]
    return [check(c, corpus) for c in prefix_cases(corpus)]


def summary(checks: list[PrefixCheck]) -> dict[str, float | int]:
    """Rows priced, their publishers, the median |error| of TTFT and of the prefix-to-plain TTFT ratio."""
    errs = [abs(e) for c in checks if (e := c.error) is not None]
    ratios = [abs(e) for c in checks if (e := c.ratio_error) is not None]
    return {
        "rows": len(errs),
        "publishers": len({c.case.publisher for c in checks if c.error is not None}),
        "ttft_median_abs_error": statistics.median(errs) if errs else float("nan"),
        "paired_rows": len(ratios),
        "ratio_median_abs_error": statistics.median(ratios) if ratios else float("nan"),
    }
