"""`planner compare`: the best plan on each machine at each load, side by side, and a verdict.

Each (topology, concurrency) is solved with the chosen objective; the rows carry the plan shape,
the headline numbers and the per-token time broken into HBM weight reads, HBM KV reads, compute,
interconnect and fixed overhead. The verdict names the winner at each load, by how much, and the
component that makes the difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel, Field

from planner.cost.constants import DEFAULT
from planner.cost.estimate import COMPONENTS
from planner.errors import InfeasibleError, InputError
from planner.plan import Workload
from planner.solve import solve
from planner.solve.options import Objective, SolveOptions
from planner.units import parse_int_list

if TYPE_CHECKING:
    from planner.cost.constants import Constants
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile

NAMES = {
    "weights": "HBM weight reads",
    "kv": "HBM KV reads",
    "compute": "compute",
    "interconnect": "interconnect",
    "overhead": "fixed overhead",
    "offload": "host-memory streaming",
}


class CompareRow(BaseModel):
    topology: str
    n_gpus: int
    concurrency: int = Field(description="the load asked for")
    solved_concurrency: Optional[int] = Field(
        None,
        description="the load the plan was solved at where it differs "
        "(a plan of R replicas runs at least one sequence on each)",
    )
    fits: bool
    shape: Optional[str] = None
    stages: Optional[list[list[int]]] = None
    tpot_ms: Optional[float] = None
    ttft_ms: Optional[float] = None
    tokens_per_s: Optional[float] = None
    tokens_per_s_per_gpu: Optional[float] = None
    max_concurrency: Optional[int] = None
    breakdown_ms: dict[str, float] = {}
    roofline_ratio: Optional[float] = None
    solver_status: Optional[str] = None
    error: Optional[str] = None


class CompareResult(BaseModel):
    model: str
    objective: str
    workload: Workload
    concurrencies: list[int]
    topologies: list[str]
    rows: list[CompareRow]
    verdict: list[str]

    def row(self, topology: str, concurrency: int) -> CompareRow:
        return next(r for r in self.rows if r.topology == topology and r.concurrency == concurrency)


def parse_concurrencies(text: str) -> list[int]:
    values = parse_int_list(text, "--concurrency", low=-(2**62), high=2**62)
    if any(v < 1 for v in values):
        raise InputError(f"--concurrency: every value must be at least 1, got '{text[:80]}'")
    if any(v > 1_000_000 for v in values) or len(values) > 64:
        raise InputError(f"--concurrency: at most 64 loads, each at most 1,000,000, got '{text[:80]}'")
    return sorted(set(values))


#: compare's own default: a solver time limit per machine and load.
COMPARE_OPTIONS = SolveOptions(time_limit_s=10.0)


def _check_compare(options: SolveOptions, names: list[str]) -> None:
    """compare's own refusals: an objective it ranks by, and two or more distinct machines."""
    if options.objective not in (Objective.LATENCY, Objective.THROUGHPUT):
        raise InputError(f"--objective: compare takes latency or throughput, got '{options.objective}'")
    if len(names) < 2:
        raise InputError("compare needs two or more machines (--topology A --topology B)")
    if len(set(names)) != len(names):
        raise InputError(f"topologies repeat: {', '.join(names)}")


def _row(
    profile: ModelProfile, topo: Topology, workload: Workload, *, options: SolveOptions, constants: Constants | None
) -> CompareRow:
    """The best plan on one machine at `workload.concurrency`, or the row saying why none fits."""
    c = workload.concurrency
    try:
        one = options.model_copy(
            update={
                "top": 0,
                "max_concurrency": c if options.objective == Objective.THROUGHPUT else None,
                "offload": options.offload and topo.has_host_memory(),
            }
        )
        plan = solve(profile, topo, workload, options=one, constants=constants or DEFAULT)
    except InfeasibleError as exc:
        return CompareRow(topology=topo.name, n_gpus=topo.n_gpus, concurrency=c, fits=False, error=exc.message)
    p = plan.prediction
    return CompareRow(
        topology=topo.name,
        n_gpus=topo.n_gpus,
        concurrency=c,
        fits=True,
        solved_concurrency=p.concurrency if p.concurrency != c else None,
        shape=plan.partition.shape,
        stages=[s.gpu_ids for s in plan.stages],
        tpot_ms=p.tpot_ms,
        ttft_ms=p.ttft_ms,
        tokens_per_s=p.tokens_per_s,
        tokens_per_s_per_gpu=p.tokens_per_s_per_gpu,
        max_concurrency=p.max_concurrency,
        breakdown_ms=dict(p.time_breakdown_ms),
        roofline_ratio=p.roofline_ratio,
        solver_status=plan.solver.status,
    )


def compare(
    profile: ModelProfile,
    topologies: list[Topology],
    workload: Workload,
    *,
    concurrencies: list[int],
    options: SolveOptions = COMPARE_OPTIONS,
    constants: Constants | None = None,
) -> CompareResult:
    """The best plan on each machine at each load (`options.objective`: latency or throughput); `options.offload`
    streams layers from host-memory tiers on the machines that have them."""
    names = [t.name for t in topologies]
    _check_compare(options, names)
    rows = [
        _row(profile, topo, workload.model_copy(update={"concurrency": c}), options=options, constants=constants)
        for topo in topologies
        for c in concurrencies
    ]
    result = CompareResult(
        model=profile.name,
        objective=options.objective.value,
        workload=workload,
        concurrencies=concurrencies,
        topologies=names,
        rows=rows,
        verdict=[],
    )
    result.verdict = verdict(result)
    return result


#: two figures within this share of each other are a tie, not "1.00x faster": the model's own error is larger.
TIE_SHARE = 0.005


def _against(best: CompareRow, other: CompareRow, objective: str, concurrency: int) -> str:
    """One verdict line: `other` against the winner `best` at one load (a tie within TIE_SHARE says so)."""
    if objective == "latency":
        ratio, figures = other.tpot_ms / best.tpot_ms, f"TPOT {best.tpot_ms:.2f} ms vs {other.tpot_ms:.2f} ms"
        how = f"{ratio:.2f}x faster per token"
    else:
        ratio = best.tokens_per_s / other.tokens_per_s
        figures = f"{best.tokens_per_s:,.0f} vs {other.tokens_per_s:,.0f} tokens/s"
        how = f"{ratio:.2f}x more tokens/s"
    if ratio - 1 <= TIE_SHARE:
        return (
            f"{best.topology} and {other.topology} tie at concurrency {concurrency} (within {TIE_SHARE:.1%}: {figures})"
        )
    diffs = {k: other.breakdown_ms.get(k, 0.0) - best.breakdown_ms.get(k, 0.0) for k in COMPONENTS}
    key = max(diffs, key=lambda k: diffs[k])
    share = other.breakdown_ms.get(key, 0.0) / sum(other.breakdown_ms.values()) if other.breakdown_ms else 0
    shapes = f"{(best.shape or '').replace(' x ', 'x')} vs {(other.shape or '').replace(' x ', 'x')}"
    return (
        f"{best.topology} is {how} than {other.topology} at concurrency {concurrency} ({shapes}): "
        f"{share:.0%} of the {other.topology} token is {NAMES[key]} "
        f"({other.breakdown_ms.get(key, 0.0):.2f} ms vs {best.breakdown_ms.get(key, 0.0):.2f} ms)"
    )


def verdict(result: CompareResult) -> list[str]:
    lines = []
    for c in result.concurrencies:
        ok = [r for r in result.rows if r.concurrency == c and r.fits]
        missing = [r.topology for r in result.rows if r.concurrency == c and not r.fits]
        lines += [
            f"at concurrency {c} {r.topology} was solved at load {r.solved_concurrency:,} (one sequence on "
            f"each replica at least); its figures hold there"
            for r in ok
            if r.solved_concurrency is not None
        ]
        if not ok:
            lines.append(f"at concurrency {c} the model fits on none of the machines")
            continue
        if result.objective == "latency":
            ok.sort(key=lambda r: (r.tpot_ms, r.topology))
        else:
            ok.sort(key=lambda r: (-r.tokens_per_s, r.topology))
        lines += [_against(ok[0], other, result.objective, c) for other in ok[1:]]
        if len(ok) == 1 and not missing:
            lines.append(f"at concurrency {c} only {ok[0].topology} was compared")
        if missing:
            lines.append(f"at concurrency {c} the model does not fit on {', '.join(missing)}")
    return lines
