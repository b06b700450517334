"""The TTFT guard: a load whose prefill queue runs near saturation has a TTFT that is a queue blowing up.

In serving mode (planner.cost.serving) newcomers' prompts need `p` tokens per step on average and ride in
chunks of `q` tokens, so a fraction `f = p / q` of steps carries a chunk: the utilisation of the prefill
slot, which TTFT sees as an M/D/1 queue (wait ~ f / (2 (1 - f)) chunks). Past `f` of about 0.9 the wait grows
without bound while TPOT barely moves, so the throughput objective would pick such loads and the frontier
would call them optimal. Every load the planner chooses keeps `f` at or below
`SolveOptions.max_prefill_utilisation` (default 0.9); a plan given at a load past it is flagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.serving import operating_point

if TYPE_CHECKING:
    from planner.cost.serving import OperatingPoint
    from planner.plan import Plan

#: The default bound on the prefill queue's utilisation (SolveOptions.max_prefill_utilisation).
DEFAULT_MAX_PREFILL_UTILISATION = 0.9


def prefill_utilisation(op: OperatingPoint) -> float:
    """The share of a replica's steps that carry a newcomer's prompt chunk: mean prompt tokens per step over the
    chunk a step carries (0 where no prompts share the steps: static batches, one sequence per replica)."""
    chunk = op.ttft_load.prefill
    if op.prefill_per_step <= 0 or chunk <= 0:
        return 0.0
    return min(1.0, op.prefill_per_step / chunk)


def plan_prefill_utilisation(plan: Plan) -> float:
    """The prefill queue's utilisation at a plan's load (its workload's mode, default engine constants)."""
    w = plan.inputs.workload
    if w.mode != "serving":
        return 0.0
    op = operating_point(
        w,
        concurrency=plan.prediction.concurrency,
        replicas=plan.replicas,
        pp=len(plan.stages),
        c=resolve_constants(DEFAULT, w.engine),
    )
    return prefill_utilisation(op)


def ttft_warning(utilisation: float, bound: float = DEFAULT_MAX_PREFILL_UTILISATION) -> str | None:
    """One line for a load past the bound, None within it."""
    if utilisation <= bound:
        return None
    return (
        f"prefill queue utilisation {utilisation:.2f} is past {bound:g}: newcomers' prompts queue and TTFT "
        "grows without bound at this load; lower --concurrency or add replicas"
    )
