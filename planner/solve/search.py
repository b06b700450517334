"""`solve`: the best plan over every shape, with its status, bound and runners-up.

The shape loop (planner.solve.shapes) is small and outer; each shape is one CP-SAT model (or, for the
throughput objective, a few: the load search of planner.solve.objectives). Shapes a bound proves
cannot beat the best plan so far are skipped. The result is OPTIMAL only when every candidate set and
slot system was exhaustive (planner.solve.candidates, planner.solve.slots) and every shape was solved
to optimality or pruned by a valid bound; otherwise FEASIBLE, with the bound and gap where one is
known. Every plan is re-evaluated by `planner.cost.estimate`, so `solve` and `estimate` agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

from planner.cost.advice import suggestions
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.memory import fixed_memory_bytes
from planner.errors import InfeasibleError
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Alternative, Plan, SolverInfo, Workload, build_plan
from planner.solve.candidates import uniform_streaming
from planner.solve.checks import SolveOptions, check_options
from planner.solve.coefficients import RESOLUTION
from planner.solve.formulation import Limits
from planner.solve.layouts import engines_for
from planner.solve.objectives import Request, ShapeResult, ShapeSolver, score_bound, solve_fixed_load, solve_throughput
from planner.solve.shapes import Limits as ShapeLimits
from planner.solve.shapes import Shape, enumerate_shapes, shape_candidates
from planner.solve.slots import single
from planner.units import format_bytes

OBJECTIVES = ("latency", "throughput", "traffic")
#: CP-SAT deterministic time for each runner-up shape (best found, not necessarily proven).
RUNNER_UP_BUDGET = 0.2


@dataclass(frozen=True)
class Progress:
    """What a long solve reports after each shape: for a progress bar and a live best plan."""

    done: int
    total: int
    best: str | None  # the best plan so far, in words
    elapsed_s: float


def solve(profile: ModelProfile, topo: Topology, workload: Workload, *, objective: str = "latency",
          gpu_ids: list[int] | None = None, gpus: int | None = None, tpot_slo_ms: float | None = None,
          ttft_slo_ms: float | None = None, time_limit_s: float = 30.0, top: int = 3, max_pp: int | None = None,
          max_replicas: int | None = None, max_tp: int | None = None, max_concurrency: int | None = None,
          constants: Constants = DEFAULT, workers: int = 1, any_shape: bool = False, offload: bool = False,
          progress: Callable[[Progress], None] | None = None) -> Plan:
    """The best plan for `profile` on `topo` (or the given GPUs, or any `gpus` of them) under `workload`;
    `offload` lets stages stream decoder layers from their nodes' host-memory tiers (planner.cost.offload)."""
    started = time.perf_counter()
    opts = check_options(profile, topo, workload, SolveOptions(
        objective=objective, gpu_ids=gpu_ids, gpus=gpus, tpot_slo_ms=tpot_slo_ms, ttft_slo_ms=ttft_slo_ms,
        time_limit_s=time_limit_s, top=top, max_pp=max_pp, max_replicas=max_replicas, max_tp=max_tp,
        max_concurrency=max_concurrency, any_shape=any_shape, offload=offload))
    constants = resolve_constants(constants, workload.engine)  # the engine's profile prices every candidate
    req = Request(profile, topo, workload, objective, constants, tpot_slo_ms, ttft_slo_ms, max_concurrency, workers,
                  offload)
    lim = ShapeLimits(opts.max_pp, max_tp, opts.max_replicas, opts.budget, any_shape)
    shapes = enumerate_shapes(profile, topo, opts.ids, lim)
    run = _Run(req, shapes, opts.ids, time_limit_s, started, progress)
    results = run.all_shapes(max_tp)
    exact = run.exact
    ok = [r for r in results if r.prediction is not None and r.prediction.fits]
    if not ok:
        raise _nothing_fits(profile, topo, opts.ids, workload, req, run.notes)
    ok += run.runners_up(results, ok, top, max_tp)
    return _plan(req, ok, results, exact, run.notes, top, time.perf_counter() - started)


class _Run:
    """The shape loop: solve each shape, prune with the best so far, report progress."""

    def __init__(self, req: Request, shapes: list[Shape], ids: list[int], time_limit_s: float, started: float,
                 progress: Callable[[Progress], None] | None):
        self.req, self.shapes, self.ids, self.started, self.progress = req, shapes, ids, started, progress
        self.limits = Limits(max(0.05, time_limit_s / max(1, len(shapes))), req.workers)
        self.exact = True
        self.notes: list[str] = []
        self.best: ShapeResult | None = None

    def solver(self, shape: Shape, max_tp: int | None) -> ShapeSolver:
        cands = shape_candidates(self.req.profile, self.req.topo, shape, max_tp)
        if not cands.exact:
            self._inexact(cands.note)
        sv = ShapeSolver(self.req, shape, cands)
        if sv.streams and not uniform_streaming(self.req.topo, cands):
            self._inexact("GPUs of a pool stream from host memory at different rates (their PCIe paths differ): "
                          "streamed layers were priced on one choice of them")
        return sv

    def _inexact(self, note: str | None) -> None:
        self.exact = False
        if note and note not in self.notes:
            self.notes.append(note)

    def one(self, shape: Shape, max_tp: int | None, limits: Limits, prune: bool) -> ShapeResult:
        if prune and not shape.exact_slots:
            # Slots not known to be exhaustive: a bound over every GPU offered holds for every slot system;
            # where it cannot beat the best plan, the shape is settled without them.
            relaxed = replace(shape, system=single(self.ids), exact_slots=True)
            bound = score_bound(self.solver(relaxed, max_tp), limits)
            if self.best is not None and bound >= self.best.score:
                return ShapeResult(shape, "PRUNED", bound=bound)
            self._inexact(f"{shape.replicas} replicas of {shape.gpus} GPUs were placed on slots from a locality "
                          "order, not every placement: the plan is the best found, not proven optimal")
        if shape.system is None:
            return ShapeResult(shape, "UNKNOWN", note="no isomorphic slots found")
        sv = self.solver(shape, max_tp)
        if not sv.cands.configs:
            return ShapeResult(shape, "INFEASIBLE", note="no GPU group of this size")
        if self.req.objective == "throughput":
            best = -self.best.score if (prune and self.best is not None) else None
            return solve_throughput(sv, limits, best)
        best = self.best.score if (prune and self.best is not None) else None
        return solve_fixed_load(sv, limits, best)

    def all_shapes(self, max_tp: int | None) -> list[ShapeResult]:
        out = []
        # shapes on exhaustive slots first: the best plan they find lets a bound settle the others
        for k, shape in enumerate(sorted(self.shapes, key=lambda sh: not sh.exact_slots)):
            res = self.one(shape, max_tp, self.limits, prune=True)
            if res.note and res.status == "INFEASIBLE" and res.note not in self.notes and len(self.notes) < 5:
                self.notes.append(res.note)
            out.append(res)
            if res.prediction is not None and res.prediction.fits and (self.best is None or res.score < self.best.score):
                self.best = res
            if self.progress is not None:
                best = None if self.best is None else f"{self.best.partition.shape}: {_describe(self.req, self.best)}"
                self.progress(Progress(k + 1, len(self.shapes), best, time.perf_counter() - self.started))
        return out

    def runners_up(self, results: list[ShapeResult], ok: list[ShapeResult], top: int,
                   max_tp: int | None) -> list[ShapeResult]:
        """Shapes pruned by a bound, solved on their own (small budget) when too few runners-up were found."""
        seen = {r.partition.shape for r in ok}
        if len(seen) > top:
            return []
        pruned = sorted((r for r in results if r.status == "PRUNED"), key=lambda r: r.bound)[:top]
        extra = []
        for r in pruned:
            res = self.one(r.shape, max_tp, Limits(RUNNER_UP_BUDGET, self.req.workers), prune=False)
            if res.prediction is not None and res.prediction.fits:
                extra.append(res)
        return extra


def _describe(req: Request, res: ShapeResult) -> str:
    p = res.prediction
    if req.objective == "throughput":
        return f"{p.tokens_per_s:,.0f} tokens/s at {p.concurrency} sequences"
    if req.objective == "traffic":
        return f"{format_bytes(p.critical_path_bytes_per_token)} per token"
    return f"TPOT {p.tpot_ms:.2f} ms"


def _sort_key(r: ShapeResult) -> tuple:
    return (round(r.score, 9), r.shape.replicas, r.shape.pp, [s.gpu_ids for s in r.partition.stages])


def _status(ok: list[ShapeResult], results: list[ShapeResult], exact: bool) -> tuple[str, float | None, float | None]:
    best = ok[0]
    open_bounds = [r.bound for r in results if r.status in ("FEASIBLE", "UNKNOWN")
                   or (r.status == "PRUNED" and r.bound < best.score)]
    if not exact:
        return "FEASIBLE", None, None
    bound = min([best.score, *open_bounds])
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


def _plan(req: Request, ok: list[ShapeResult], results: list[ShapeResult], exact: bool, notes: list[str], top: int,
          wall_s: float) -> Plan:
    ok.sort(key=_sort_key)
    best = ok[0]
    status, bound, gap = _status(ok, results, exact)
    note = "; ".join(notes) if (notes and status != "OPTIMAL") else None
    info = SolverInfo(status=status, objective=req.objective, objective_value=best.score, best_bound=bound, gap=gap,
                      wall_time_s=wall_s, resolution=RESOLUTION, exact_candidates=exact, note=note)
    workload = req.workload.model_copy(update={"concurrency": best.prediction.concurrency})
    return build_plan(req.profile, req.topo, best.partition, workload, best.prediction, info, req.objective,
                      req.tpot_slo_ms, _alternatives(ok, top), req.ttft_slo_ms)


def _nothing_fits(profile: ModelProfile, topo: Topology, ids: list[int], workload: Workload, req: Request,
                  notes: list[str]) -> InfeasibleError:
    c = req.constants
    cap = sum(topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction - fixed_memory_bytes(c) for g in ids)
    weights = profile.weight_bytes(workload.weight_dtype)
    load = 1 if req.objective == "throughput" else workload.concurrency
    kv = profile.kv_bytes_per_token(workload.kv_dtype) * workload.sequence_tokens * load
    slos = [f"{name} <= {slo:g} ms" for name, slo in (("TPOT", req.tpot_slo_ms), ("TTFT", req.ttft_slo_ms))
            if slo is not None]
    if weights + kv <= cap and (slos or notes):
        what = " and ".join(slos) if slos else "the engine's step budget"
        return InfeasibleError(f"no plan of {profile.name} on {len(ids)} GPUs of {topo.name} meets {what}",
                               details=notes + ["raise the SLOs, lower --concurrency, or add GPUs"])
    details = [f"weights {format_bytes(weights)} + KV {format_bytes(kv)} ({load} x {workload.sequence_tokens} tokens) "
               f"= {format_bytes(weights + kv)} against {format_bytes(cap)} usable on {len(ids)} GPUs"]
    details.append(f"per GPU: short by about {max(0.0, weights + kv - cap) / len(ids) / 1e9:.1f} GB" if weights + kv > cap
                   else "the total fits, but no stage split respects every GPU's memory and the TP rules")
    details += suggestions(profile, topo, ids, workload, c)
    return InfeasibleError(f"{profile.name} does not fit on {len(ids)} GPUs of {topo.name}", details=details)
