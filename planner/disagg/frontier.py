"""`frontier --serving auto|disagg`: disaggregated points beside the aggregated frontier, and the verdict in words.

Each (prefill layout, decode layout) pair that fits (planner.solve.serving.pair_candidates, no SLOs) is given the
instance counts (P, D) the exact choice picks for it alone, then priced by estimate_disagg at one, two, four ...
sequences decoding per decode instance up to its KV capacity, while the prefill pool stays within the TTFT guard.
The Pareto frontier (tokens/s per GPU against tokens/s per user) is drawn over both modes' points together.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from planner.cost.constants import Constants
from planner.disagg.cost import estimate_disagg
from planner.disagg.plan import Pools, ServingChoice
from planner.frontier import FrontierResult, pareto_flags
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Workload
from planner.solve.options import Objective, SolveOptions
from planner.solve.serving import choose_pools, disagg_shape, make_ask, pair_candidates, place, solve_serving

#: Loads per pool configuration: 1, 2, 4, ... sequences per decode instance (2^15 past any KV capacity here).
MAX_LOADS = 16


class DisaggPoint(BaseModel):
    shape: str
    pools: Pools
    concurrency: int = Field(description="sequences decoding, all decode instances")
    gpus: int
    tpot_ms: float
    ttft_ms: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    prefill_utilisation: float
    kv_transfer_ms: float
    frontier: bool = False


class ServingFrontier(BaseModel):
    """`planner frontier --serving auto|disagg --json`: both modes' points, the frontier over all of them."""

    agg: FrontierResult | None = Field(None, description="the aggregated frontier (None: --serving disagg)")
    disagg: list[DisaggPoint]
    verdict: str


def disagg_points(
    profile: ModelProfile, topo: Topology, workload: Workload, *, options: SolveOptions, constants: Constants
) -> list[DisaggPoint]:
    """Every fitting layout pair at its best (P, D), at a ladder of loads (module docstring)."""
    ask = make_ask(
        profile,
        topo,
        workload,
        options=options.model_copy(update={"tpot_slo_ms": None, "ttft_slo_ms": None}),
        constants=constants,
    )
    out: list[DisaggPoint] = []
    for pair in pair_candidates(ask):
        choice = choose_pools([pair], ask.budget, time_limit_s=1.0)
        if choice is None:
            continue
        pools = place(pair, choice, list(ask.ids))
        for k in range(MAX_LOADS):
            n = (2**k) * pools.decode.instances
            if n > pair.decode.sequences * pools.decode.instances:
                break
            p = estimate_disagg(
                profile, topo, pools, workload.model_copy(update={"concurrency": n}), ask.constants, check=False
            )
            if not p.fits or p.problem is not None or p.prefill_utilisation > options.max_prefill_utilisation:
                break
            out.append(
                DisaggPoint(
                    shape=disagg_shape(pools),
                    pools=pools,
                    concurrency=n,
                    gpus=pools.n_gpus,
                    tpot_ms=p.tpot_ms,
                    ttft_ms=p.ttft_ms,
                    tokens_per_s=p.tokens_per_s,
                    tokens_per_s_per_gpu=p.tokens_per_s_per_gpu,
                    tokens_per_s_per_user=1e3 / p.tpot_ms,
                    prefill_utilisation=p.prefill_utilisation,
                    kv_transfer_ms=p.kv_transfer_ms,
                )
            )
    return out


def combine(agg: FrontierResult | None, disagg: list[DisaggPoint]) -> ServingFrontier:
    """Both modes' points with the frontier marked over all of them, and the verdict."""
    agg_points = agg.points if agg is not None else []
    values = [(p.tokens_per_s_per_gpu, p.tokens_per_s_per_user) for p in agg_points]
    values += [(p.tokens_per_s_per_gpu, p.tokens_per_s_per_user) for p in disagg]
    flags = pareto_flags(values)
    n = len(agg_points)
    new_agg = (
        None
        if agg is None
        else agg.model_copy(
            update={"points": [p.model_copy(update={"frontier": f}) for p, f in zip(agg_points, flags[:n])]}
        )
    )
    new_dis = [p.model_copy(update={"frontier": f}) for p, f in zip(disagg, flags[n:])]
    return ServingFrontier(agg=new_agg, disagg=new_dis, verdict=verdict(new_agg, new_dis))


def _span(speeds: list[float]) -> str:
    lo, hi = f"{min(speeds):,.0f}", f"{max(speeds):,.0f}"
    return lo if lo == hi else f"{lo}-{hi}"


def verdict(agg: FrontierResult | None, disagg: list[DisaggPoint]) -> str:
    """Which mode holds the frontier at which tokens/s per user, and why, in words."""
    a = [p.tokens_per_s_per_user for p in (agg.points if agg else []) if p.frontier]
    d = [p for p in disagg if p.frontier]
    if not disagg:
        return "no disaggregated configuration fits this machine beside its TTFT guard"
    if agg is None:
        return f"{len(disagg)} disaggregated points; aggregated not asked (--serving auto shows both)"
    if not d:
        return (
            f"aggregated holds the whole frontier ({_span(a)} tokens/s per user): at every speed, splitting the "
            "GPUs into a prefill pool costs more decode batch than removing the prompt chunks from the decode "
            "steps (TTFT interference) saves"
        )
    best = max(d, key=lambda p: p.tokens_per_s_per_gpu)
    where = f"disaggregated holds the frontier at {_span([p.tokens_per_s_per_user for p in d])} tokens/s per user"
    rest = f", aggregated at {_span(a)}" if a else " everywhere"
    return (
        f"{where}{rest}. Where disaggregated wins, its decode steps carry no prompt chunks (no TTFT "
        f"interference) and its decode pool runs {best.concurrency:,} sequences on "
        f"{best.pools.decode.n_gpus} GPUs ({best.shape}), the prefill pool {best.prefill_utilisation:.0%} busy; "
        f"each request's KV hand-off costs {best.kv_transfer_ms:,.2f} ms of TTFT"
    )


class MachineChoice(BaseModel):
    topology: str
    serving: ServingChoice


class ServingCompare(BaseModel):
    """`planner compare --serving auto|disagg --json`: per machine, each mode's best plan for tokens/s (no SLO
    unless given) and which won."""

    model: str
    machines: list[MachineChoice]


def compare_serving(
    profile: ModelProfile, topos: list[Topology], workload: Workload, *, options: SolveOptions, constants: Constants
) -> ServingCompare:
    """Each machine's serving choice (planner.solve.serving.solve_serving at the throughput objective)."""
    opts = options.model_copy(update={"objective": Objective.THROUGHPUT, "top": 0})
    rows = []
    for topo in topos:
        plan = solve_serving(profile, topo, workload, options=opts, constants=constants)
        assert plan.serving is not None
        rows.append(MachineChoice(topology=topo.name, serving=plan.serving))
    return ServingCompare(model=profile.name, machines=rows)
