"""`solve`: the best plan over every shape, with its status, bound and runners-up.

The shape loop (planner.solve.shapes) is small and outer; each shape is one CP-SAT model (or, for the
throughput objective, a few: the load search of planner.solve.objectives). Shapes a bound proves
cannot beat the best plan so far are skipped. The result is OPTIMAL only when every candidate set and
slot system was exhaustive (planner.solve.candidates, planner.solve.slots) and every shape was solved
to optimality or pruned by a valid bound; otherwise FEASIBLE, with the bound and gap where one is
known. Every plan is re-evaluated by `planner.cost.estimate`, so `solve` and `estimate` agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

from planner.cost.advice import suggestions
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.memory import fixed_memory_bytes
from planner.cost.shards import Layout
from planner.errors import InfeasibleError
from planner.fleet import Fleet, FleetPart
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Alternative, Plan, SolverInfo, Workload, build_plan
from planner.solve.candidates import uniform_streaming
from planner.solve.checks import Objective, Scope, SolveOptions, check_options
from planner.solve.cluster import ReplicaShape, node_types, placement_bound, regular, replica_shapes, tokens_bound
from planner.solve.coefficients import RESOLUTION
from planner.solve.deadline import Deadline
from planner.solve.formulation import SolverBudget
from planner.solve.layouts import engines_for
from planner.solve.objectives import Request, ShapeResult, ShapeSolver, score_bound, solve_fixed_load, solve_throughput
from planner.solve.shapes import Shape, ShapeBounds, enumerate_shapes, shape_candidates
from planner.solve.slots import single
from planner.solve.wide import wide_ep_plans
from planner.units import format_bytes

#: CP-SAT deterministic time for each runner-up shape (best found, not necessarily proven).
RUNNER_UP_BUDGET = 0.2
#: Share of the time limit that listing the shapes may take (slot systems of every replica count).
ENUMERATION_SHARE = 0.3


@dataclass(frozen=True)
class Progress:
    """What a long solve reports after each shape: for a progress bar and a live best plan."""

    done: int
    total: int
    best: str | None  # the best plan so far, in words
    elapsed_s: float


def solve(
    profile: ModelProfile,
    topo: Topology,
    workload: Workload,
    *,
    options: SolveOptions = SolveOptions(),
    constants: Constants = DEFAULT,
    progress: Callable[[Progress], None] | None = None,
    deadline: Deadline | None = None,
) -> Plan:
    """The best plan for `profile` on `topo` under `workload`, searched as `options` say (the GPUs offered, the
    objective and SLOs, the shape limits; `options.offload` lets stages stream decoder layers from their nodes'
    host-memory tiers, planner.cost.offload). The search ends by `options.time_limit_s` (or the command's
    `deadline`, shared by every solve of a command)."""
    started = time.perf_counter()
    scope = check_options(profile, topo, workload, options)
    constants = resolve_constants(constants, workload.engine)  # the engine's profile prices every candidate
    req = Request(profile=profile, topo=topo, workload=workload, constants=constants, options=options)
    said: list[str] = []  # what the answer states whatever its status (the wide-EP comparison)
    deadline = deadline or Deadline(options.time_limit_s, started)
    types = node_types(topo, list(scope.ids)) if _per_replica_space(options) else {}
    fleet = _fleet(req, types, progress=progress, deadline=deadline) if types else None
    if fleet is not None:
        return fleet
    run, results = _search(req, scope, started=started, progress=progress, deadline=deadline, said=said)
    if run.cut_short:
        run.notes.append(
            f"the time limit ({options.time_limit_s:g} s) ran out before {run.cut_short} of "
            f"{len(results)} shapes were solved: the bound counts what they could reach"
        )
    ok = [r for r in results if r.prediction is not None and r.prediction.fits]
    if not ok:
        raise _nothing_fits(req, list(scope.ids), run.notes)
    ok += run.runners_up(results, ok)
    plan = _plan(req, ok, results, exact=run.exact, notes=run.notes, wall_s=time.perf_counter() - started)
    if said:
        note = "; ".join([*said, *([plan.solver.note] if plan.solver.note else [])])
        plan = plan.model_copy(update={"solver": plan.solver.model_copy(update={"note": note})})
    return plan


def _search(
    req: Request,
    scope: Scope,
    *,
    started: float,
    progress: Callable[[Progress], None] | None,
    deadline: Deadline,
    said: list[str],
) -> tuple[_Run, list[ShapeResult]]:
    """The shape loop and its results. A throughput solve on identical nodes searches per replica shape (with the
    wide-EP shapes across nodes beside them, their comparison added to `said`); otherwise every shape is listed,
    within a share of the time limit (a big irregular machine has many (R, k))."""
    profile, topo, options, ids = req.profile, req.topo, req.options, list(scope.ids)
    bounds = ShapeBounds(
        max_pp=scope.max_pp,
        max_tp=options.max_tp,
        max_replicas=scope.max_replicas,
        budget=scope.budget,
        any_shape=options.any_shape,
    )
    if (
        options.objective == Objective.THROUGHPUT
        and not options.any_shape
        and not options.offload
        and regular(topo, ids)
    ):
        replica = replica_shapes(profile, topo, ids, bounds, options.max_concurrency)
        run = _Run(req, [r.shape for r in replica], ids, started=started, progress=progress, deadline=deadline)
        results = run.replica_classes(replica)
        if options.max_concurrency is None and len({topo.gpus[g].node for g in ids}) > 1:
            results += _wide(req, ids, results, said, deadline)
        return run, results
    listing = Deadline(ENUMERATION_SHARE * options.time_limit_s, started)
    shapes = enumerate_shapes(profile, topo, ids, bounds, stop=lambda: listing.remaining_s() <= 0)
    run = _Run(req, shapes, ids, started=started, progress=progress, deadline=deadline)
    results = run.all_shapes()
    if shapes and max(s.replicas for s in shapes) < scope.max_replicas and listing.remaining_s() <= 0:
        run.exact = False
        run.notes.append(
            f"the time limit ended the listing of shapes at {max(s.replicas for s in shapes)} "
            f"replicas (of up to {scope.max_replicas}): larger counts were not searched"
        )
    return run, results


def _per_replica_space(o: SolveOptions) -> bool:
    """Whether a throughput solve may split the machine by node type: all GPUs offered, no load cap or count cap."""
    return (
        o.objective == Objective.THROUGHPUT
        and not o.any_shape
        and not o.offload
        and o.gpus is None
        and o.max_concurrency is None
        and o.max_replicas is None
    )


def _fleet(
    req: Request, types: dict[str, list[int]], *, progress: Callable[[Progress], None] | None, deadline: Deadline
) -> Plan | None:
    """Throughput on several node types: each type solved on its own GPUs (sharing the time limit), summed. The
    plan is the largest part's, with the fleet beside it (planner.fleet). None where some type holds no replica
    alone (then replicas that span types are the only way to use it: the present search)."""
    plans: list[tuple[str, int, Plan]] = []
    for k, (name, ids) in enumerate(types.items()):
        sub = req.options.model_copy(update={"gpu_ids": ids})
        # each type its share of what is left, on a deadline of its own (armed by its own first plan)
        share_s = max(0.0, deadline.limit_s - deadline.elapsed_s()) / (len(types) - k)
        try:
            plans.append(
                (
                    name,
                    len(ids),
                    solve(
                        req.profile,
                        req.topo,
                        req.workload,
                        options=sub,
                        constants=req.constants,
                        progress=progress,
                        deadline=Deadline(share_s),
                    ),
                )
            )
        except InfeasibleError:
            return None  # a type that holds no replica alone: replicas spanning types may serve, so search them
    parts = [_fleet_part(name, n, p) for name, n, p in plans]
    found = [p for _, _, p in plans]
    total = sum(pt.tokens_per_s for pt in parts)
    bound = sum(-p.solver.best_bound if p.solver.best_bound is not None else math.inf for p in found)
    gap = (bound - total) / total if math.isfinite(bound) and total > 0 else None
    status = "OPTIMAL" if all(pt.status == "OPTIMAL" for pt in parts) else "FEASIBLE"
    fleet = Fleet(
        parts=parts, tokens_per_s=total, concurrency=sum(pt.concurrency for pt in parts), status=status, gap=gap
    )
    best = max(found, key=lambda p: p.prediction.tokens_per_s)
    return best.model_copy(update={"fleet": fleet})


def _fleet_part(name: str, gpus: int, plan: Plan) -> FleetPart:
    p = plan.prediction
    return FleetPart(
        node_type=name,
        gpu_type=p.stages[0].gpu_type,
        gpus=gpus,
        shape=plan.partition.shape,
        concurrency=p.concurrency,
        tokens_per_s=p.tokens_per_s,
        tokens_per_s_per_gpu=p.tokens_per_s / gpus,
        status=plan.solver.status,
        gap=plan.solver.gap,
    )


def _wide(
    req: Request, ids: list[int], results: list[ShapeResult], notes: list[str], deadline: Deadline
) -> list[ShapeResult]:
    """Wide-EP shapes (planner.solve.wide), each at its best load, as settled results beside the per-node ones;
    a note says whether the best of them beats the best per-node plan."""
    wide = wide_ep_plans(req, ids, stop=lambda: deadline.expired)
    if not wide:
        return []
    ok = [r for r in results if r.prediction is not None and r.prediction.fits]
    per_node = max((-r.score for r in ok), default=0.0)
    top = wide[0]
    word = "beats" if top.prediction.tokens_per_s > per_node else "does not beat"
    notes.append(
        f"wide EP: {top.partition.shape} ({top.nodes_per_replica} nodes per replica, DP attention) serves "
        f"{top.prediction.tokens_per_s:,.0f} tokens/s at TPOT {top.prediction.tpot_ms:.1f} ms and "
        f"{word} the best plan inside nodes ({per_node:,.0f} tokens/s)"
    )
    out = []
    for w in wide:
        shape = Shape(
            w.partition.replicas,
            1,
            len(w.partition.stages[0].gpu_ids),
            True,
            Layout(1, w.partition.stages[0].dp, w.partition.stages[0].ep),
            None,
        )
        tokens = w.prediction.tokens_per_s
        out.append(ShapeResult(shape, "OPTIMAL", w.partition, w.prediction, -tokens, -tokens))
    return out


class _Run:
    """The shape loop: solve each shape, prune with the best so far, report progress."""

    def __init__(
        self,
        req: Request,
        shapes: list[Shape],
        ids: list[int],
        *,
        started: float,
        progress: Callable[[Progress], None] | None,
        deadline: Deadline,
    ):
        self.req, self.shapes, self.ids, self.started, self.progress = req, shapes, ids, started, progress
        self.max_tp = req.options.max_tp
        self.deadline = deadline
        self.budget = SolverBudget(
            max(0.05, req.options.time_limit_s / max(1, len(shapes))), req.options.workers, deadline
        )
        self.cut_short = 0  # shapes the deadline left unsolved
        self.exact = True
        self.notes: list[str] = []
        self.best: ShapeResult | None = None

    def solver(self, shape: Shape) -> ShapeSolver:
        cands = shape_candidates(self.req.profile, self.req.topo, shape, self.max_tp)
        if not cands.exact:
            self._inexact(cands.note)
        sv = ShapeSolver(self.req, shape, cands)
        if sv.streams and not uniform_streaming(self.req.topo, cands):
            self._inexact(
                "GPUs of a pool stream from host memory at different rates (their PCIe paths differ): "
                "streamed layers were priced on one choice of them"
            )
        return sv

    def _inexact(self, note: str | None) -> None:
        self.exact = False
        if note and note not in self.notes:
            self.notes.append(note)

    def one(self, shape: Shape, limits: SolverBudget, prune: bool) -> ShapeResult:
        if prune and not shape.exact_slots:
            # Slots not known to be exhaustive: a bound over every GPU offered holds for every slot system;
            # where it cannot beat the best plan, the shape is settled without them.
            relaxed = replace(shape, system=single(self.ids), exact_slots=True)
            bound = score_bound(self.solver(relaxed), limits)
            if self.best is not None and bound >= self.best.score:
                return ShapeResult(shape, "PRUNED", bound=bound)
            self._inexact(
                f"{shape.replicas} replicas of {shape.gpus} GPUs were placed on slots from a locality "
                "order, not every placement: the plan is the best found, not proven optimal"
            )
        if shape.system is None:
            return ShapeResult(shape, "UNKNOWN", note="no isomorphic slots found")
        sv = self.solver(shape)
        if not sv.cands.configs:
            return ShapeResult(shape, "INFEASIBLE", note="no GPU group of this size")
        if self.req.options.objective == Objective.THROUGHPUT:
            best = -self.best.score if (prune and self.best is not None) else None
            return solve_throughput(sv, limits, best)
        best = self.best.score if (prune and self.best is not None) else None
        return solve_fixed_load(sv, limits, best)

    def all_shapes(self) -> list[ShapeResult]:
        out = []
        # shapes on exhaustive slots first: the best plan they find lets a bound settle the others
        for k, shape in enumerate(sorted(self.shapes, key=lambda sh: not sh.exact_slots)):
            if self.deadline.expired:
                res = self._unsolved(shape)
            else:
                res = self.one(shape, self.budget, prune=True)
            self._record(res, k)
            out.append(res)
        return out

    def _record(self, res: ShapeResult, k: int) -> None:
        if res.note and res.status == "INFEASIBLE" and res.note not in self.notes and len(self.notes) < 5:
            self.notes.append(res.note)
        if res.prediction is not None and res.prediction.fits and (self.best is None or res.score < self.best.score):
            self.best = res
            self.deadline.arm()
        if self.progress is not None:
            best = None if self.best is None else f"{self.best.partition.shape}: {_describe(self.req, self.best)}"
            self.progress(Progress(k + 1, len(self.shapes), best, time.perf_counter() - self.started))

    def _unsolved(self, shape: Shape) -> ShapeResult:
        """A shape the deadline left unsolved: UNKNOWN, with a bound found without CP-SAT where one is cheap."""
        self.cut_short += 1
        bound = -math.inf
        if shape.system is not None and self.deadline.bounds_left:
            sv = ShapeSolver(self.req, shape, shape_candidates(self.req.profile, self.req.topo, shape, self.max_tp))
            if sv.cands.configs:
                bound = (
                    tokens_bound(sv, shape.replicas)
                    if self.req.options.objective == Objective.THROUGHPUT
                    else score_bound(sv, self.budget)
                )
                bound = -bound if self.req.options.objective == Objective.THROUGHPUT else bound
        return ShapeResult(shape, "UNKNOWN", bound=bound, note="the time limit ran out before this shape")

    def replica_classes(self, replica: list[ReplicaShape]) -> list[ShapeResult]:
        """Throughput on identical nodes (planner.solve.cluster): one shape per replica shape at the most replicas
        that fit, best bound first, each settled by its bound where it cannot beat the best plan."""
        bounded = []
        for rs in replica:
            sv = self.solver(rs.shape)
            bound = tokens_bound(sv, rs.most) if sv.cands.configs else 0.0
            bounded.append((bound, rs, sv))
        bounded.sort(key=lambda x: (-x[0], x[1].shape.pp, x[1].shape.gpus, x[1].shape.replicas))
        out = []
        pending: list[tuple[ShapeResult, ShapeResult, ReplicaShape, ShapeSolver]] = []
        for k, (bound, rs, sv) in enumerate(bounded):
            best = None if self.best is None else -self.best.score
            if not sv.cands.configs or bound <= 0:
                res = ShapeResult(
                    rs.shape,
                    "INFEASIBLE",
                    bound=math.inf,
                    note="no GPU group of this size" if not sv.cands.configs else None,
                )
            elif best is not None and bound <= best:
                res = ShapeResult(rs.shape, "PRUNED", bound=-bound)
            elif self.deadline.expired:
                self.cut_short += 1
                res = ShapeResult(rs.shape, "UNKNOWN", bound=-bound, note="the time limit ran out before this shape")
            else:
                res = solve_throughput(sv, self.budget, best)
                if not rs.exact and res.status in ("OPTIMAL", "FEASIBLE"):
                    # other placements of this replica shape might fit up to rs.most replicas: bounded at the end
                    pending.append((res, replace(res), rs, sv))  # with the packed slots' own bound
                    res.bound = min(res.bound, -bound)
            self._record(res, k)
            out.append(res)
        self._settle_placements(pending)
        return out

    def _settle_placements(self, pending: list[tuple[ShapeResult, ShapeResult, ReplicaShape, ShapeSolver]]) -> None:
        """Shapes solved on packed slots that hold fewer than budget // size replicas: where their cheap bound could
        beat the best plan, the bound over every placement (planner.solve.cluster.placement_bound), best first; what
        is left above the best plan stays open (FEASIBLE, with a note)."""
        for res, packed, rs, sv in sorted(pending, key=lambda p: p[0].bound):
            if self.best is not None and -res.bound > -self.best.score and not self.deadline.expired:
                res.bound = max(res.bound, -placement_bound(sv, rs, packed, self.budget, ids=self.ids))
            if res.bound < res.score - 1e-9 * abs(res.score) and (self.best is None or res.bound < self.best.score):
                res.status = "FEASIBLE"
                note = (
                    f"{rs.shape.label}: other placements of {rs.shape.gpus}-GPU replicas (up to {rs.most}) "
                    "were bounded, not searched"
                )
                if note not in self.notes and len(self.notes) < 5:
                    self.notes.append(note)

    def runners_up(self, results: list[ShapeResult], ok: list[ShapeResult]) -> list[ShapeResult]:
        """Shapes pruned by a bound, solved on their own (small budget) when too few runners-up were found."""
        top = self.req.options.top
        seen = {r.partition.shape for r in ok}
        if len(seen) > top:
            return []
        pruned = sorted((r for r in results if r.status == "PRUNED"), key=lambda r: r.bound)[:top]
        extra = []
        for r in pruned:
            if self.deadline.expired:
                break
            res = self.one(r.shape, SolverBudget(RUNNER_UP_BUDGET, self.req.options.workers), prune=False)
            if res.prediction is not None and res.prediction.fits:
                extra.append(res)
        return extra


def _describe(req: Request, res: ShapeResult) -> str:
    p = res.prediction
    if req.options.objective == Objective.THROUGHPUT:
        return f"{p.tokens_per_s:,.0f} tokens/s at {p.concurrency} sequences"
    if req.options.objective == Objective.TRAFFIC:
        return f"{format_bytes(p.critical_path_bytes_per_token)} per token"
    return f"TPOT {p.tpot_ms:.2f} ms"


def _sort_key(r: ShapeResult) -> tuple:
    return (round(r.score, 9), r.shape.replicas, r.shape.pp, [s.gpu_ids for s in r.partition.stages])


def _status(ok: list[ShapeResult], results: list[ShapeResult], exact: bool) -> tuple[str, float | None, float | None]:
    best = ok[0]
    open_bounds = [
        r.bound
        for r in results
        if r.status in ("FEASIBLE", "UNKNOWN") or (r.status == "PRUNED" and r.bound < best.score)
    ]
    if not exact:
        return "FEASIBLE", None, None
    if best.score >= 0:  # TPOT or bytes per token: never below 0, the honest bound of a shape cut before any bound
        open_bounds = [max(b, 0.0) for b in open_bounds]
    bound = min([best.score, *open_bounds])
    if not math.isfinite(bound):  # a shape cut short without a bound: no honest gap to state
        return "FEASIBLE", None, None
    gap = abs(best.score - bound) / max(abs(best.score), 1e-12)
    return ("OPTIMAL" if gap <= 1e-9 else "FEASIBLE"), bound, gap


def _alternatives(ok: list[ShapeResult], top: int) -> list[Alternative]:
    """The best plan of each other shape, the ones an engine runs as they are first."""
    seen, alts = {ok[0].partition.shape}, []
    for res in ok[1:]:
        if res.partition.shape in seen:
            continue
        seen.add(res.partition.shape)
        part = res.partition
        engines = engines_for(part.stages, len(set(part.layer_counts())) > 1)
        alts.append(Alternative(shape=part.shape, partition=part, prediction=res.prediction, engines=engines))
    alts.sort(key=lambda a: not a.engines)  # stable: runnable first, each group in score order
    return alts[:top]


def _plan(
    req: Request, ok: list[ShapeResult], results: list[ShapeResult], *, exact: bool, notes: list[str], wall_s: float
) -> Plan:
    ok.sort(key=_sort_key)
    best = ok[0]
    status, bound, gap = _status(ok, results, exact)
    note = "; ".join(notes) if (notes and status != "OPTIMAL") else None
    o = req.options
    info = SolverInfo(
        status=status,
        objective=o.objective.value,
        objective_value=best.score,
        best_bound=bound,
        gap=gap,
        wall_time_s=wall_s,
        resolution=RESOLUTION,
        exact_candidates=exact,
        note=note,
    )
    workload = req.workload.model_copy(update={"concurrency": best.prediction.concurrency})
    return build_plan(
        req.profile,
        req.topo,
        best.partition,
        workload=workload,
        prediction=best.prediction,
        solver=info,
        objective=o.objective.value,
        tpot_slo_ms=o.tpot_slo_ms,
        ttft_slo_ms=o.ttft_slo_ms,
        alternatives=_alternatives(ok, o.top),
    )


def _nothing_fits(req: Request, ids: list[int], notes: list[str]) -> InfeasibleError:
    profile, topo, workload, c = req.profile, req.topo, req.workload, req.constants
    cap = sum(topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction - fixed_memory_bytes(c) for g in ids)
    weights = profile.weight_bytes(workload.weight_dtype)
    load = 1 if req.options.objective == Objective.THROUGHPUT else workload.concurrency
    kv = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens * load
    slos = [
        f"{name} <= {slo:g} ms"
        for name, slo in (("TPOT", req.options.tpot_slo_ms), ("TTFT", req.options.ttft_slo_ms))
        if slo is not None
    ]
    if weights + kv <= cap and (slos or notes):
        what = " and ".join(slos) if slos else "the engine's step budget"
        return InfeasibleError(
            f"no plan of {profile.name} on {len(ids)} GPUs of {topo.name} meets {what}",
            details=notes + ["raise the SLOs, lower --concurrency, or add GPUs"],
        )
    details = [
        f"weights {format_bytes(weights)} + KV {format_bytes(kv)} ({load} x {workload.sequence_tokens} tokens) "
        f"= {format_bytes(weights + kv)} against {format_bytes(cap)} usable on {_gpus(len(ids))}"
    ]
    short_gb = max(0.0, weights + kv - cap) / len(ids) / 1e9
    details.append(
        f"per GPU: short by about {short_gb:.1f} GB"
        if weights + kv > cap
        else "the total fits, but no stage split respects every GPU's memory and the TP rules"
    )
    details += suggestions(profile, topo, ids, workload, c)
    return InfeasibleError(f"{profile.name} does not fit on {_gpus(len(ids))} of {topo.name}", details=details)


def _gpus(n: int) -> str:
    return f"{n:,} GPU{'' if n == 1 else 's'}"
