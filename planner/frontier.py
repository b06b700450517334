"""The Pareto frontier of a machine: tokens/s per GPU against tokens/s per user, over plan shapes and loads.

For every shape an engine runs (replicas x pipeline depth x layout, planner.solve.shapes) the solver places
one replica (least TPOT at one sequence per replica: the best GPUs for that shape), then the cost model
evaluates that plan at a ladder of loads, doubling from one sequence per replica up to the largest load it
serves (KV capacity and the engine's step budget). Each point holds at its own load: tokens/s per GPU =
load / TPOT / GPUs, tokens/s per user = 1 / TPOT. A point is on the frontier when no other point is at least
as good on both axes and better on one.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from pydantic import BaseModel

from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.cost.prefill_guard import prefill_utilisation
from planner.cost.serving import operating_point
from planner.errors import InfeasibleError, InputError
from planner.hardware.topology import Topology
from planner.model.checks import without_fp8_units
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Workload
from planner.solve.checks import Objective, SolveOptions, check_options
from planner.solve.cluster import regular, replica_shapes
from planner.solve.deadline import Deadline
from planner.solve.formulation import SolverBudget
from planner.solve.layouts import engines_for
from planner.solve.objectives import Request, ShapeSolver, solve_fixed_load
from planner.solve.search import Progress
from planner.solve.shapes import Shape, ShapeBounds, enumerate_shapes, shape_candidates

#: Loads tried per shape: powers of two of sequences per replica, and the largest load served.
MAX_LOADS_PER_SHAPE = 24


class FrontierPoint(BaseModel):
    """One plan at one load."""

    shape: str
    concurrency: int
    gpus: int
    tpot_ms: float
    ttft_ms: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    engines: list[str]
    frontier: bool = False
    plan: Partition


class FrontierResult(BaseModel):
    model: str
    topology: str
    workload: Workload
    gpus: int  # GPUs a plan may use
    points: list[FrontierPoint]
    wall_time_s: float

    @property
    def on_frontier(self) -> list[FrontierPoint]:
        return sorted((p for p in self.points if p.frontier), key=lambda p: p.tokens_per_s_per_user)


def pareto_flags(values: list[tuple[float, float]]) -> list[bool]:
    """For points (a, b), both to maximise: True where no other point is at least as good on both and better on one."""
    out = []
    for i, (a, b) in enumerate(values):
        dominated = any((x >= a and y >= b and (x > a or y > b)) for j, (x, y) in enumerate(values) if j != i)
        out.append(not dominated)
    return out


#: frontier's own default: the solver time for placing every shape.
FRONTIER_OPTIONS = SolveOptions(time_limit_s=20.0)


def frontier(
    profile: ModelProfile,
    topo: Topology,
    workload: Workload,
    *,
    options: SolveOptions = FRONTIER_OPTIONS,
    constants: Constants = DEFAULT,
    progress: Callable[[Progress], None] | None = None,
) -> FrontierResult:
    """Every engine-runnable shape on the machine (or the GPUs `options` offers: gpus, gpu_ids, max_pp), each at a
    ladder of loads, frontier marked."""
    started = time.perf_counter()
    if workload.mode == "closed":
        raise InputError("--mode closed describes a benchmark's waves; the frontier is drawn for serving or static")
    scope = check_options(profile, topo, workload, options.model_copy(update={"objective": Objective.THROUGHPUT}))
    bounds = ShapeBounds(
        max_pp=scope.max_pp, max_tp=None, max_replicas=scope.budget, budget=scope.budget, any_shape=False
    )
    ids, time_limit_s = list(scope.ids), options.time_limit_s
    deadline = Deadline(time_limit_s, started)
    shapes = _shapes(profile, topo, ids, bounds, deadline)
    req = Request(
        profile=profile,
        topo=topo,
        workload=workload.model_copy(update={"concurrency": 1}),
        constants=constants,
        options=SolveOptions(objective=Objective.LATENCY),
    )
    limits = SolverBudget(max(0.05, time_limit_s / max(1, len(shapes))), deadline=deadline)
    points: list[FrontierPoint] = []
    for k, shape in enumerate(shapes):
        if points:
            deadline.arm()
        if deadline.expired:
            break  # the one deadline: the points placed so far are the frontier's
        part = _place(req, shape, limits)
        if part is not None:
            points += _ladder(profile, topo, part, workload, constants, max_utilisation=options.max_prefill_utilisation)
        if progress is not None:
            progress(Progress(k + 1, len(shapes), f"{len(points)} points", time.perf_counter() - started))
    if not points:
        raise InfeasibleError(f"no plan of {profile.name} fits on {scope.budget} GPUs of {topo.name}")
    return FrontierResult(
        model=profile.name,
        topology=topo.name,
        workload=workload,
        gpus=scope.budget,
        points=_mark_frontier(points),
        wall_time_s=time.perf_counter() - started,
    )


def _shapes(
    profile: ModelProfile, topo: Topology, ids: list[int], bounds: ShapeBounds, deadline: Deadline
) -> list[Shape]:
    """The shapes to place: on identical nodes one per replica shape, at the most replicas that fit; otherwise
    every engine-runnable shape listed within a share of the time limit."""
    if regular(topo, ids):
        return [r.shape for r in replica_shapes(profile, topo, ids, bounds, None)]
    # listing every replica count's slots on a big irregular machine takes minutes: a share of the limit
    return [
        s
        for s in enumerate_shapes(
            profile, topo, ids, bounds, stop=lambda: deadline.elapsed_s() > 0.3 * deadline.limit_s
        )
        if s.system is not None
    ]


def _mark_frontier(points: list[FrontierPoint]) -> list[FrontierPoint]:
    """The points with `frontier` set where they are Pareto-optimal; of points with the same figures only one is
    (the plan using more GPUs)."""
    flags = pareto_flags([(p.tokens_per_s_per_gpu, p.tokens_per_s_per_user) for p in points])
    seen: set[tuple[float, float]] = set()
    for i in sorted(range(len(points)), key=lambda i: -points[i].gpus):  # a tie: the plan using more GPUs stays
        key = (round(points[i].tokens_per_s_per_gpu, 6), round(points[i].tokens_per_s_per_user, 6))
        if flags[i] and key in seen:
            flags[i] = False
        seen.add(key)
    return [p.model_copy(update={"frontier": f}) for p, f in zip(points, flags)]


def _place(req: Request, shape: Shape, limits: SolverBudget) -> Partition | None:
    """The shape's best placement (least TPOT at one sequence per replica), or None where it does not fit."""
    sv = ShapeSolver(req, shape, shape_candidates(req.profile, req.topo, shape, None))
    if not sv.cands.configs:
        return None
    res = solve_fixed_load(sv, limits, None)
    return res.partition if res.prediction is not None and res.prediction.fits else None


def _ladder(
    profile: ModelProfile,
    topo: Topology,
    part: Partition,
    workload: Workload,
    c: Constants,
    *,
    max_utilisation: float = 1.0,
) -> list[FrontierPoint]:
    """The plan at one, two, four ... sequences per replica, up to the largest load it serves with the prefill
    queue within the TTFT guard (planner.cost.prefill_guard: loads past it are dropped)."""
    first = estimate(
        profile, topo, part, workload=workload.model_copy(update={"concurrency": part.replicas}), c=c, check=False
    )
    cap = first.max_concurrency
    loads: list[int] = []
    per = 1
    while per * part.replicas <= cap and len(loads) < MAX_LOADS_PER_SHAPE:
        loads.append(per * part.replicas)
        per *= 2
    if cap not in loads and cap >= part.replicas:
        loads.append(cap)
    out = []
    for load in loads:
        op = operating_point(
            workload, concurrency=load, replicas=part.replicas, pp=part.pp, c=resolve_constants(c, workload.engine)
        )
        if not op.feasible or prefill_utilisation(op) > max_utilisation:
            break  # the step budget or the TTFT guard is exceeded from here on
        pred = (
            first
            if load == part.replicas
            else estimate(
                profile, topo, part, workload=workload.model_copy(update={"concurrency": load}), c=c, check=False
            )
        )
        if pred.fits:
            out.append(_point(part, pred, workload.weight_dtype))
    return out


def _point(part: Partition, pred: Prediction, weight_dtype: str) -> FrontierPoint:
    n_gpus = len(part.all_gpu_ids())
    uneven = len(set(part.layer_counts())) > 1
    no_fp8 = without_fp8_units((s.gpu_type for s in pred.stages), weight_dtype)  # TensorRT-LLM needs fp8 units
    engines = [e for e in engines_for(part.stages, uneven) if not (no_fp8 and e == "trtllm")]
    return FrontierPoint(
        shape=part.shape,
        concurrency=pred.concurrency,
        gpus=n_gpus,
        tpot_ms=pred.tpot_ms,
        ttft_ms=pred.ttft_ms,
        tokens_per_s=pred.tokens_per_s,
        tokens_per_s_per_gpu=pred.tokens_per_s / n_gpus,
        tokens_per_s_per_user=1000.0 / pred.tpot_ms if math.isfinite(pred.tpot_ms) else 0.0,
        engines=engines,
        plan=part,
    )
