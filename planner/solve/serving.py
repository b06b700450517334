"""`solve --serving agg|disagg|auto`: aggregated or disaggregated, and for disaggregated which pools.

A disaggregated plan is P prefill instances of one layout and D decode instances of another
(planner.disagg). The search has two parts:

1. **Candidates, per instance.** For every layout a pool may take on w GPUs (planner.solve.layouts),
   a prefill instance admits `cap = batch / step` requests/s (planner.disagg.cost.prefill_service); a
   decode instance runs at the largest load `n` whose TPOT meets the SLO, its KV holds and the engine
   schedules (max_num_seqs), and so finishes `r = n / (osl x TPOT(n))` requests/s. For every (prefill,
   decode) layout pair, `rho` is the largest prefill utilisation whose TTFT (M/D/1 wait + prefill +
   exposed KV hand-off on the real route + the first decode step) meets the TTFT SLO, at most the TTFT
   guard `max_prefill_utilisation`.
2. **The exact choice.** One CP-SAT model picks one layout pair and the counts (P, D): the deployment
   serves `X <= P x cap x rho` and `X <= D x r` requests/s on `P x w_p + D x w_d` GPUs at most the
   budget, maximising X (then fewest GPUs). Every per-instance figure is a constant of the candidate,
   so the model is linear and its optimum is exact over every (layout pair, P, D); coefficients are
   integer millitokens/s.

The choice is re-priced by planner.disagg.cost.estimate_disagg on its GPUs (the wider pool first, so
instances stay inside nodes) at the load it serves; a load that misses an SLO there is lowered until it
holds. `auto` also runs the aggregated solve (planner.solve.search) with the throughput objective and
returns the better, with the other's best plan and the margin.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from planner.cost.constants import Constants
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.cost.shards import Layout
from planner.disagg.cost import (
    DisaggPrediction,
    PrefillService,
    decode_step,
    estimate_disagg,
    exposed_transfer_s,
    kv_handoff,
    md1_wait_s,
    pool_partition,
    prefill_service,
)
from planner.disagg.plan import ModeResult, Pool, Pools, ServingChoice
from planner.errors import InfeasibleError, InputError
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Plan, SolverInfo, Workload, build_plan, layout_problems
from planner.solve.checks import check_options
from planner.solve.layouts import layouts_for
from planner.solve.options import Objective, SolveOptions
from planner.solve.percentile import solve_percentiles, wants_percentiles
from planner.solve.search import solve

#: Integer resolution of the CP-SAT coefficients: tokens/s in thousandths.
MILLI = 1000
#: Bisection rounds for the TTFT-bound prefill utilisation (2^-40 of the guard: far below any figure shown).
RHO_ROUNDS = 40


@dataclass(frozen=True)
class PrefillCand:
    layout: Layout
    svc: PrefillService

    @property
    def capacity_per_s(self) -> float:
        """Requests/s one instance admits when every step is full."""
        return self.svc.batch / self.svc.step_s


@dataclass(frozen=True)
class DecodeCand:
    layout: Layout
    sequences: int  # per instance, the largest load meeting the TPOT SLO
    tpot_s: float
    osl: int

    @property
    def requests_per_s(self) -> float:
        return self.sequences / (self.osl * self.tpot_s)


@dataclass(frozen=True)
class PairCand:
    """One (prefill layout, decode layout) pair: tokens/s per prefill instance at the TTFT-bound utilisation, and
    per decode instance."""

    prefill: PrefillCand
    decode: DecodeCand
    rho: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float


@dataclass(frozen=True)
class Choice:
    """The CP-SAT answer: which pair, how many instances of each, and whether it was proven optimal."""

    pair: int
    prefill_instances: int
    decode_instances: int
    tokens_per_s: float
    optimal: bool


def resolve_serving(options: SolveOptions, workload: Workload, n_gpus: int) -> str:
    """agg, disagg or auto: what `--serving` asks, or its default (auto with an SLO on 2+ GPUs, else agg)."""
    asked = options.serving
    slo = options.tpot_slo_ms is not None or options.ttft_slo_ms is not None
    explicit_objective = "objective" in options.model_fields_set and options.objective != Objective.THROUGHPUT
    if asked is None:
        fits = slo and n_gpus >= 2 and workload.mode == "serving" and not explicit_objective
        return "auto" if fits else "agg"
    if asked != "agg":
        if n_gpus < 2:
            raise InputError(f"--serving {asked}: a prefill pool and a decode pool need 2 GPUs or more, {n_gpus} given")
        if workload.mode != "serving":
            raise InputError(
                f"--serving {asked}: the pools are sized for steady-state serving; --mode "
                f"{workload.mode} is not (use --mode serving)"
            )
        if explicit_objective:
            raise InputError(
                f"--serving {asked} compares modes by tokens/s under the SLOs: use --objective "
                "throughput (or leave it out)"
            )
    return asked


def _one_pool(role: str, layout: Layout, ids: list[int]) -> Pool:
    return Pool(role=role, instances=1, tp=layout.tp, dp=layout.dp, ep=layout.ep, gpu_ids=[ids[: layout.gpus]])


def _pair_pools(p: Layout, d: Layout, ids: list[int]) -> Pools:
    """One prefill and one decode instance on the machine's first GPUs, the wider first (inside nodes)."""
    if p.gpus >= d.gpus:
        return Pools(prefill=_one_pool("prefill", p, ids), decode=_one_pool("decode", d, ids[p.gpus :]))
    return Pools(prefill=_one_pool("prefill", p, ids[d.gpus :]), decode=_one_pool("decode", d, ids))


def _layouts(profile: ModelProfile, budget: int, max_tp: int | None) -> list[Layout]:
    """Every layout of one instance on at most budget - 1 GPUs (the other pool needs one) that runs the model."""
    out = []
    for w in range(1, budget):
        for lay in layouts_for(profile, w, max_tp):
            pool = _one_pool("decode", lay, list(range(w)))
            if not layout_problems(profile, pool_partition(profile, pool, 1).stages[0]):
                out.append(lay)
    return out


def _decode_cand(
    profile: ModelProfile, topo: Topology, pools: Pools, *, workload: Workload, options: SolveOptions, c: Constants
) -> DecodeCand | None:
    """The decode instance at its largest load meeting the TPOT SLO (None: not even one sequence does)."""
    one = decode_step(profile, topo, pools, workload=workload, sequences=1, c=c)
    top = min(one.max_concurrency, c.max_num_seqs, options.max_concurrency or c.max_num_seqs)
    slo_s = math.inf if options.tpot_slo_ms is None else options.tpot_slo_ms / 1e3

    def tpot(n: int) -> float:
        p = decode_step(profile, topo, pools, workload=workload, sequences=n, c=c)
        return p.tpot_ms / 1e3 if p.fits else math.inf

    if top < 1 or not one.fits or tpot(1) > slo_s:
        return None
    lo, hi = 1, top
    while lo < hi:  # TPOT grows with the batch: the largest n with TPOT(n) <= SLO
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if tpot(mid) <= slo_s else (lo, mid - 1)
    return DecodeCand(Layout(pools.decode.tp, pools.decode.dp, pools.decode.ep), lo, tpot(lo), workload.osl)


def _ttft_s(
    svc: PrefillService, rho: float, *, transfer_s: float, tpot_s: float, n_layers: int, overlap: bool, c: Constants
) -> float:
    prefill = svc.time_s(rho)
    exposed = exposed_transfer_s(transfer_s, prefill, n_layers, overlap)
    return c.request_overhead_s + md1_wait_s(rho, prefill) + prefill + exposed + tpot_s


def _rho(svc: PrefillService, ttft_slo_s: float, guard: float, **kw: float | bool | int | Constants) -> float:
    """The largest prefill utilisation <= guard at which TTFT meets the SLO (0: not even an idle pool does)."""
    if _ttft_s(svc, 0.0, **kw) > ttft_slo_s:  # type: ignore[arg-type]
        return 0.0
    if _ttft_s(svc, guard, **kw) <= ttft_slo_s:  # type: ignore[arg-type]
        return guard
    lo, hi = 0.0, guard
    for _ in range(RHO_ROUNDS):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _ttft_s(svc, mid, **kw) <= ttft_slo_s else (lo, mid)  # type: ignore[arg-type]
    return lo


@dataclass(frozen=True)
class _Ask:
    """What the disaggregated search prices with: the inputs, the options and the GPUs offered."""

    profile: ModelProfile
    topo: Topology
    workload: Workload
    options: SolveOptions
    constants: Constants
    ids: tuple[int, ...]
    budget: int


def make_ask(
    profile: ModelProfile, topo: Topology, workload: Workload, *, options: SolveOptions, constants: Constants
) -> _Ask:
    """What the disaggregated search prices with, checked (the GPUs offered, the budget, the engine's constants)."""
    scope = check_options(profile, topo, workload, options)
    return _Ask(
        profile, topo, workload, options, resolve_constants(constants, workload.engine), scope.ids, scope.budget
    )


def pair_candidates(ask: _Ask) -> list[PairCand]:
    """Every (prefill layout, decode layout) pair whose instances fit together in the budget, priced per instance."""
    ids, o, c = list(ask.ids), ask.options, ask.constants
    layouts = _layouts(ask.profile, ask.budget, o.max_tp)
    prefill: list[PrefillCand] = []
    decode: list[DecodeCand] = []
    for lay in layouts:
        # the instance alone, as a prefill and as a decode instance: each pool's figures read its own pool only
        alone = Pools.model_construct(
            prefill=_one_pool("prefill", lay, ids),
            decode=_one_pool("decode", lay, ids),
            transfer_backend="nixl",
            transfer_overlap=False,
        )
        svc = prefill_service(ask.profile, ask.topo, alone, ask.workload, c)
        if svc.prediction.fits:
            prefill.append(PrefillCand(lay, svc))
        if (cand := _decode_cand(ask.profile, ask.topo, alone, workload=ask.workload, options=o, c=c)) is not None:
            decode.append(cand)
    ttft_s = math.inf if o.ttft_slo_ms is None else o.ttft_slo_ms / 1e3
    out = []
    for p in prefill:
        for d in decode:
            if p.layout.gpus + d.layout.gpus > ask.budget:
                continue
            pools = _pair_pools(p.layout, d.layout, ids)
            transfer_s, _ = kv_handoff(ask.profile, ask.topo, pools, ask.workload, c)
            rho = _rho(
                p.svc,
                ttft_s,
                o.max_prefill_utilisation,
                transfer_s=transfer_s,
                tpot_s=d.tpot_s,
                n_layers=ask.profile.n_layers,
                overlap=False,
                c=c,
            )
            if rho > 0:
                out.append(
                    PairCand(p, d, rho, p.capacity_per_s * rho * ask.workload.osl, d.requests_per_s * ask.workload.osl)
                )
    return out


def choose_pools(pairs: list[PairCand], budget: int, *, time_limit_s: float = 10.0) -> Choice | None:
    """The exact CP-SAT choice of one pair and its counts (P, D): max min(P x prefill, D x decode) tokens/s on at
    most `budget` GPUs, then the fewest GPUs (module docstring). None: no pair fits."""
    from ortools.sat.python import cp_model

    if not pairs:
        return None
    m = cp_model.CpModel()
    top = max(math.floor(max(k.prefill_tokens_per_s, k.decode_tokens_per_s) * MILLI) * budget for k in pairs)
    z, x, y = [], [], []
    for i, k in enumerate(pairs):
        wp, wd = k.prefill.layout.gpus, k.decode.layout.gpus
        z.append(m.new_bool_var(f"z{i}"))
        x.append(m.new_int_var(0, budget // wp, f"x{i}"))
        y.append(m.new_int_var(0, budget // wd, f"y{i}"))
        m.add(x[i] >= z[i])
        m.add(y[i] >= z[i])
        m.add(x[i] <= (budget // wp) * z[i])
        m.add(y[i] <= (budget // wd) * z[i])
    m.add_exactly_one(z)
    gpus = sum(k.prefill.layout.gpus * x[i] + k.decode.layout.gpus * y[i] for i, k in enumerate(pairs))
    m.add(gpus <= budget)
    tokens = m.new_int_var(0, top, "tokens")
    m.add(tokens <= sum(math.floor(k.prefill_tokens_per_s * MILLI) * x[i] for i, k in enumerate(pairs)))
    m.add(tokens <= sum(math.floor(k.decode_tokens_per_s * MILLI) * y[i] for i, k in enumerate(pairs)))
    m.maximize(tokens * (budget + 1) - gpus)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.1, time_limit_s)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    pick = next(i for i in range(len(pairs)) if solver.value(z[i]))
    return Choice(
        pick, solver.value(x[pick]), solver.value(y[pick]), solver.value(tokens) / MILLI, status == cp_model.OPTIMAL
    )


def place(pair: PairCand, choice: Choice, ids: list[int]) -> Pools:
    """The chosen pools on the machine's GPUs in order, the pool of wider instances first (inside nodes)."""
    p, d = pair.prefill.layout, pair.decode.layout
    order = [("prefill", p, choice.prefill_instances), ("decode", d, choice.decode_instances)]
    order.sort(key=lambda r: -r[1].gpus)
    pools, at = {}, 0
    for role, lay, count in order:
        groups = [ids[at + i * lay.gpus : at + (i + 1) * lay.gpus] for i in range(count)]
        at += count * lay.gpus
        pools[role] = Pool(role=role, instances=count, tp=lay.tp, dp=lay.dp, ep=lay.ep, gpu_ids=groups)
    return Pools(prefill=pools["prefill"], decode=pools["decode"])


def _meets(p: DisaggPrediction, o: SolveOptions) -> bool:
    return (
        p.fits
        and p.problem is None
        and p.prefill_utilisation <= o.max_prefill_utilisation + 1e-9
        and (o.tpot_slo_ms is None or p.tpot_ms <= o.tpot_slo_ms)
        and (o.ttft_slo_ms is None or p.ttft_ms <= o.ttft_slo_ms)
    )


def operating_point(ask: _Ask, pools: Pools, *, tokens_per_s: float, max_sequences: int) -> DisaggPrediction | None:
    """The pools at the largest load (sequences decoding, at most `max_sequences`) that serves at most
    `tokens_per_s` (what the choice promised, so the prefill pool stays within its TTFT-bound utilisation) and meets
    every SLO when estimate_disagg prices it on its GPUs; None when not even one sequence does."""
    w = ask.workload

    def at(n: int) -> DisaggPrediction:
        return estimate_disagg(
            ask.profile, ask.topo, pools, w.model_copy(update={"concurrency": n}), ask.constants, check=False
        )

    def ok(n: int) -> bool:
        p = at(n)
        return _meets(p, ask.options) and p.tokens_per_s <= tokens_per_s * (1 + 1e-6)

    if not ok(1):
        return None
    lo, hi = 1, max(1, max_sequences)
    while lo < hi:  # throughput, TPOT, TTFT and the prefill pool's utilisation all grow with the load
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return at(lo)


def _plan_gpus(plan: Plan) -> int:
    if plan.pools is not None:
        return plan.pools.n_gpus
    reps = plan.replica_gpu_ids or [[s.gpu_ids for s in plan.stages]]
    return len({g for rep in reps for ids in rep for g in ids})


def disagg_shape(pools: Pools) -> str:
    return f"{pools.ratio}: prefill {pools.prefill.label} / decode {pools.decode.label}"


def mode_result(plan: Plan, disagg: DisaggPrediction | None = None) -> ModeResult:
    """A plan's figures as the serving choice compares them."""
    pred = plan.prediction
    shape = disagg_shape(plan.pools) if plan.pools is not None else plan.partition.shape
    extra = (
        {}
        if disagg is None
        else {
            "prefill_utilisation": disagg.prefill_utilisation,
            "decode_utilisation": disagg.decode_utilisation,
            "limited_by": disagg.limited_by,
            "kv_transfer_ms": disagg.kv_transfer_ms,
        }
    )
    return ModeResult(
        mode="agg" if plan.pools is None else "disagg",
        shape=shape,
        gpus=_plan_gpus(plan),
        concurrency=pred.concurrency,
        tokens_per_s=pred.tokens_per_s,
        tpot_ms=pred.tpot_ms,
        ttft_ms=pred.ttft_ms,
        status=plan.solver.status,
        **extra,
    )


def disagg_plan_of(ask: _Ask, pools: Pools, pred: DisaggPrediction, solver: SolverInfo) -> Plan:
    """The Plan of a disaggregated choice: `stages`, `replicas` and `prediction` are the decode pool's, with the
    deployment's headline figures (TPOT, TTFT, tokens/s over both pools' GPUs) in `prediction`; `pools` both pools."""
    w = ask.workload.model_copy(update={"concurrency": pred.concurrency})
    part = pool_partition(ask.profile, pools.decode)
    decode = estimate(ask.profile, ask.topo, part, workload=w, c=ask.constants, check=False)
    headline = decode.model_copy(
        update={
            "tpot_ms": pred.tpot_ms,
            "ttft_ms": pred.ttft_ms,
            "tokens_per_s": pred.tokens_per_s,
            "tokens_per_s_per_gpu": pred.tokens_per_s_per_gpu,
            "tokens_per_s_per_user": 1e3 / pred.tpot_ms,
            "requests_per_s": pred.requests_per_s,
            "prefill_tokens_per_step": 0.0,
        }
    )
    o = ask.options
    plan = build_plan(
        ask.profile,
        ask.topo,
        part,
        workload=w,
        prediction=headline,
        solver=solver,
        objective=Objective.THROUGHPUT.value,
        tpot_slo_ms=o.tpot_slo_ms,
        ttft_slo_ms=o.ttft_slo_ms,
    )
    return plan.model_copy(update={"pools": pools})


def solve_disagg(ask: _Ask, started: float) -> tuple[Plan, DisaggPrediction]:
    """The best disaggregated plan (module docstring); InfeasibleError when no pair of pools meets the SLOs."""
    pairs = pair_candidates(ask)
    limit_s = max(0.5, ask.options.time_limit_s - (time.perf_counter() - started))
    choice = choose_pools(pairs, ask.budget, time_limit_s=limit_s)
    pred = None
    if choice is not None:
        pair = pairs[choice.pair]
        pools = place(pair, choice, list(ask.ids))
        pred = operating_point(
            ask, pools, tokens_per_s=choice.tokens_per_s, max_sequences=choice.decode_instances * pair.decode.sequences
        )
    if choice is None or pred is None:
        raise InfeasibleError(
            f"no disaggregated plan of {ask.profile.name} on {ask.budget} GPUs of {ask.topo.name} "
            f"meets {_slo_words(ask.options)}",
            details=[f"{len(pairs)} (prefill, decode) layout pairs fit the budget and the SLOs"],
        )
    solver = SolverInfo(
        status="OPTIMAL" if choice.optimal else "FEASIBLE",
        objective="throughput",
        objective_value=pred.tokens_per_s,
        best_bound=choice.tokens_per_s,
        wall_time_s=time.perf_counter() - started,
        resolution="tokens/s in integer thousandths",
        exact_candidates=True,
        note=f"exact CP-SAT choice over {len(pairs)} layout pairs and every (P, D) on {ask.budget} "
        f"GPUs ({choice.tokens_per_s:,.0f} tokens/s at the candidates' operating points; "
        f"{pred.tokens_per_s:,.0f} re-priced on its GPUs)",
    )
    return disagg_plan_of(ask, pools, pred, solver), pred


def _slo_words(o: SolveOptions) -> str:
    parts = [f"TPOT <= {o.tpot_slo_ms:g} ms"] if o.tpot_slo_ms is not None else []
    parts += [f"TTFT <= {o.ttft_slo_ms:g} ms"] if o.ttft_slo_ms is not None else []
    return " and ".join(parts) or "the TTFT guard"


def verdict(agg: Plan | None, disagg: Plan | None, disagg_pred: DisaggPrediction | None) -> str:
    """Why the winner won, in words: TTFT interference (prompt chunks in the aggregated steps), the decode batch each
    mode runs per GPU, and what the KV hand-off costs."""
    if agg is None or disagg is None or disagg_pred is None:
        return "only one mode has a plan under the SLOs"
    a, d, pools = agg.prediction, disagg.prediction, disagg.pools
    assert pools is not None
    win = "disaggregated" if d.tokens_per_s > a.tokens_per_s else "aggregated"
    ratio = max(a.tokens_per_s, d.tokens_per_s) / max(1e-9, min(a.tokens_per_s, d.tokens_per_s)) - 1
    agg_batch = a.concurrency / _plan_gpus(agg)
    dec_batch = disagg_pred.decode_concurrency / pools.decode.n_gpus
    return (
        f"{win} serves {ratio:.0%} more tokens/s. TTFT interference: each aggregated step also prefills "
        f"{a.prefill_tokens_per_step:,.0f} prompt tokens, the decode pool's steps none. Decode batch: "
        f"{agg_batch:,.1f} sequences per GPU aggregated, {dec_batch:,.1f} per decode GPU, with "
        f"{pools.prefill.n_gpus} of {pools.n_gpus} GPUs prefilling at {disagg_pred.prefill_utilisation:.0%} "
        f"busy. Transfer: {disagg_pred.kv_bytes_per_request / 1e6:,.1f} MB of KV per request in "
        f"{disagg_pred.kv_transfer_ms:,.2f} ms."
    )


def solve_serving(
    profile: ModelProfile,
    topo: Topology,
    workload: Workload,
    *,
    options: SolveOptions,
    constants: Constants,
    progress: object = None,
) -> Plan:
    """`solve --serving`: the aggregated plan (agg), the disaggregated one (disagg) or the better of both (auto),
    with the other mode's best plan and the margin in `Plan.serving`."""
    if wants_percentiles(options):
        return solve_percentiles(
            profile, topo, workload, options=options, constants=constants, solver=solve_serving, progress=progress
        )
    started = time.perf_counter()
    scope = check_options(profile, topo, workload, options)
    mode = resolve_serving(options, workload, scope.budget)
    if mode == "agg":
        return solve(profile, topo, workload, options=options, constants=constants, progress=progress)  # type: ignore[arg-type]
    opts = options.model_copy(update={"objective": Objective.THROUGHPUT})
    c = resolve_constants(constants, workload.engine)
    ask = _Ask(profile, topo, workload, opts, c, scope.ids, scope.budget)
    agg = dis = None
    errors: list[InfeasibleError] = []
    try:
        agg = solve(profile, topo, workload, options=opts, constants=constants, progress=progress)  # type: ignore[arg-type]
    except InfeasibleError as exc:
        errors.append(exc)
    dis_pred = None
    try:
        dis, dis_pred = solve_disagg(ask, started)
    except InfeasibleError as exc:
        errors.append(exc)
    if agg is None and dis is None:
        raise errors[0]
    return _choose(mode, agg, dis, dis_pred, errors)


def _choose(
    mode: str, agg: Plan | None, dis: Plan | None, dis_pred: DisaggPrediction | None, errors: list[InfeasibleError]
) -> Plan:
    """The winner (disagg when asked for it and it has a plan), with the other's best plan and the margin."""
    if mode == "disagg" and dis is not None:
        best, other = dis, agg
    elif dis is None or (agg is not None and agg.prediction.tokens_per_s >= dis.prediction.tokens_per_s):
        best, other = agg, dis
    else:
        best, other = dis, agg
    assert best is not None
    result = mode_result(best, dis_pred if best is dis else None)
    other_result = None if other is None else mode_result(other, dis_pred if other is dis else None)
    margin = None if other is None else best.prediction.tokens_per_s / other.prediction.tokens_per_s - 1
    choice = ServingChoice(
        asked=mode,
        chosen=result.mode,
        best=result,
        other=other_result,
        other_problem=errors[0].message if errors else None,
        margin=margin,
        verdict=verdict(agg, dis, dis_pred),
    )
    solver = best.solver
    if other is not None and other.solver.status != "OPTIMAL" and solver.status == "OPTIMAL":
        note = f"{solver.note or ''}; the {other.solver.status} other mode leaves the choice between modes unproven"
        solver = solver.model_copy(update={"status": "FEASIBLE", "note": note})
    return best.model_copy(update={"serving": choice, "solver": solver})
