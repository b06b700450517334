"""Solving one shape for one objective: latency, traffic, or throughput (with its load search).

- **latency**: the least TPOT at the workload's load, under the TPOT/TTFT SLOs if given.
- **traffic**: the fewest HBM plus link bytes per token on the critical path.
- **throughput**: the load is a decision. For a shape, the operating load is the largest one any of
  its plans serves: within memory (the KV capacity), within the engine's step budget in steady state,
  and under the SLOs; among the plans that serve it, the one of least TPOT. Every feasibility test
  is monotone in the load (memory per sequence, TPOT and TTFT all grow with it), so the largest load
  is found exactly by bisection over CP-SAT feasibility. Shapes are then compared by tokens/s =
  load / TPOT.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Callable

from planner.cost.constants import Constants
from planner.cost.estimate import estimate
from planner.cost.prefill_guard import prefill_utilisation
from planner.cost.serving import OperatingPoint, operating_point
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Workload
from planner.solve.candidates import CandidateSet, Config
from planner.solve.coefficients import Coefficients, Hops, coefficients, hops, layer_runs, ns
from planner.solve.formulation import CAPACITY_MAX, Outcome, ShapeModel, SolverBudget
from planner.solve.options import Objective, SolveOptions
from planner.solve.realize import partition_of
from planner.solve.shapes import Shape
from planner.solve.uniform import uniform_capacity

#: Margin under an SLO in the integer model, for the rounding of one nanosecond per term.
SLO_MARGIN_NS = 1000


#: Coefficient sets one solve keeps: (configuration, operating point, streaming) triples; a solve asks for a few
#: hundred, the bound keeps a pathological one (many loads x many candidates) from growing without end.
COEFFICIENT_CACHE_SIZE = 20_000


@dataclass(frozen=True, kw_only=True)
class Request:
    """Everything a solve is asked: the model, machine and load, the cost constants and the search options."""

    profile: ModelProfile
    topo: Topology
    workload: Workload
    constants: Constants
    options: SolveOptions
    coefficients: dict[tuple[Config, OperatingPoint, bool], Coefficients] = field(
        default_factory=dict, compare=False, repr=False
    )

    @functools.cached_property
    def runs(self) -> list[tuple[int, int]]:
        """The model's runs of identical decoder layers (computed once per request)."""
        return layer_runs(self.profile)

    def coefficients_of(self, cfg: Config, op: OperatingPoint, streams: bool) -> Coefficients:
        """The coefficients of one configuration at one operating point, computed once per request."""
        key = (cfg, op, streams)
        if key not in self.coefficients:
            if len(self.coefficients) >= COEFFICIENT_CACHE_SIZE:
                self.coefficients.pop(next(iter(self.coefficients)))
            self.coefficients[key] = coefficients(
                self.profile,
                self.topo,
                cfg,
                runs=self.runs,
                workload=self.workload,
                op=op,
                c=self.constants,
                offload=streams,
            )
        return self.coefficients[key]


@dataclass
class ShapeResult:
    shape: Shape
    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN or PRUNED
    partition: Partition | None = None
    prediction: Prediction | None = None
    score: float = math.inf  # lower is better: TPOT ms, bytes per token, or -tokens/s
    bound: float = -math.inf  # no plan of this shape scores below it
    note: str | None = None


class ShapeSolver:
    """One shape's candidates, coefficients and CP-SAT models, at the loads the objective asks for."""

    def __init__(self, req: Request, shape: Shape, cands: CandidateSet):
        self.req, self.shape, self.cands = req, shape, cands

    def op(self, per_replica: int) -> OperatingPoint:
        s = self.shape
        return operating_point(
            self.req.workload, concurrency=per_replica * s.replicas, replicas=s.replicas, pp=s.pp, c=self.req.constants
        )

    @property
    def streams(self) -> bool:
        """Whether plans of this shape may stream layers from host memory: asked for, and one replica (replicas
        would each need their own host copy; not searched)."""
        return self.req.options.offload and self.shape.replicas == 1

    def coefs(self, op: OperatingPoint) -> list[Coefficients]:
        return [self.req.coefficients_of(cfg, op, self.streams) for cfg in self.cands.configs]

    @property
    def nodes(self) -> list[str]:
        return sorted({c.node for c in self.cands.configs})

    def hand_offs(self, op: OperatingPoint) -> Hops:
        return hops(self.req.profile, self.req.topo, self.nodes, op, self.req.constants)

    def model(self, op: OperatingPoint, memory_at_load: bool = True) -> ShapeModel:
        r, s = self.req, self.shape
        host = {nd: int(r.topo.host_capacity_bytes(nd)) for nd in self.nodes} if self.streams else None
        return ShapeModel(
            r.profile.n_layers,
            s.pp,
            op.micro,
            configs=self.cands.configs,
            coefs=self.coefs(op),
            runs=r.runs,
            hops=self.hand_offs(op),
            pools=self.cands.pools,
            gpus=s.gpus,
            exact_gpus=s.exact_gpus,
            memory_at_load=memory_at_load,
            host_capacity=host,
        )

    def _usable(self, ks: list[Coefficients]) -> list[Coefficients]:
        """Configurations a stage can take while the other PP - 1 stages get at least the smallest size."""
        sizes = [c.size for c in self.cands.configs]
        widest = self.shape.gpus - (self.shape.pp - 1) * min(sizes)
        return [k for c, k in zip(self.cands.configs, ks) if c.size <= widest]

    def _cheapest(self, ks: list[Coefficients], field: str) -> int:
        """Every layer, the embedding and the head each at the cheapest of `ks` in `field` (tpot_ns, traffic_bytes)."""
        total = sum((hi - lo) * min(getattr(k, field)[r] for k in ks) for r, (lo, hi) in enumerate(self.req.runs))
        return total + min(getattr(k.first, field) for k in ks) + min(getattr(k.last, field) for k in ks)

    def tpot_lower_bound_ns(self, op: OperatingPoint) -> int:
        """No plan of the shape is faster: every layer at the cheapest usable configuration's time, the
        cheapest embedding, head and hand-offs; and with micro-batches, micro x the slowest stage at best."""
        ks = self._usable(self.coefs(op))
        if not ks:
            return 2**62
        total = self._cheapest(ks, "tpot_ns")
        if self.shape.pp > 1:
            total += (self.shape.pp - 1) * min(self.hand_offs(op).tpot_ns.values())
        return max(total, math.ceil(op.micro * total / self.shape.pp), self._pipeline_bound(op))

    def _pipeline_bound(self, op: OperatingPoint) -> int:
        """micro x slowest stage: stages of sizes n_s (sum <= GPUs) share the layers in proportion to their
        speed 1/f(n_s) at best, so the slowest takes L / sum_s 1/f(n_s)."""
        if op.micro <= 1:
            return 0
        speed: dict[int, float] = {}
        for cfg, k in zip(self.cands.configs, self.coefs(op)):
            f = min(k.tpot_ns)
            if f > 0:
                speed[cfg.size] = max(speed.get(cfg.size, 0.0), 1.0 / f)
        best = {0: 0.0}  # GPUs used -> the largest total speed of the stages placed so far
        for _ in range(self.shape.pp):
            nxt: dict[int, float] = {}
            for used, total in best.items():
                for size, v in speed.items():
                    if used + size <= self.shape.gpus and total + v > nxt.get(used + size, -1.0):
                        nxt[used + size] = total + v
            best = nxt
        if not best:
            return 2**62
        # and some stage holds at least ceil(L / PP) layers, each at least the cheapest layer's time
        fewest = math.ceil(self.req.profile.n_layers / self.shape.pp) * min(1.0 / v for v in speed.values())
        return math.floor(op.micro * max(self.req.profile.n_layers / max(best.values()), fewest))

    def traffic_lower_bound(self, op: OperatingPoint) -> int:
        ks = self._usable(self.coefs(op))
        if not ks:
            return 2**62
        return self._cheapest(ks, "traffic_bytes")

    def with_slos(self, m: ShapeModel, op: OperatingPoint) -> ShapeModel:
        r = self.req
        tpot = None if r.options.tpot_slo_ms is None else ns(r.options.tpot_slo_ms * 1e-3) - SLO_MARGIN_NS
        ttft = None if r.options.ttft_slo_ms is None else ns(r.options.ttft_slo_ms * 1e-3) - SLO_MARGIN_NS
        # TTFT waits in steps; the model's TPOT is per token, a step yields tokens_per_pass of them
        wait_milli = int(round(op.ttft_wait_steps * op.tokens_per_pass * 1000))
        m.add_slos(tpot, ttft, ns(r.constants.request_overhead_s), wait_milli)
        return m

    def evaluate(self, outcome: Outcome, op: OperatingPoint) -> tuple[Partition, Prediction]:
        r = self.req
        part = partition_of(outcome.stages, self.cands.pools, self.shape.system, r.runs)
        load = r.workload.model_copy(update={"concurrency": op.concurrency})
        return part, estimate(r.profile, r.topo, part, workload=load, c=r.constants, check=False)


def solve_fixed_load(sv: ShapeSolver, limits: SolverBudget, best_score: float | None) -> ShapeResult:
    """Latency or traffic at the workload's load; `best_score` (TPOT ms or bytes per token) prunes."""
    req, shape = sv.req, sv.shape
    op = sv.op(math.ceil(req.workload.concurrency / shape.replicas))
    if not op.feasible:
        return ShapeResult(shape, "INFEASIBLE", note=op.problem)
    latency = req.options.objective == Objective.LATENCY
    bound = sv.tpot_lower_bound_ns(op) if latency else sv.traffic_lower_bound(op)
    in_score = (lambda v: v / 1e6) if latency else (lambda v: v / op.decode)
    incumbent = None if best_score is None else (best_score * 1e6 if latency else best_score * op.decode)
    if incumbent is not None and bound >= incumbent:
        return ShapeResult(shape, "PRUNED", bound=in_score(bound))
    m = sv.with_slos(sv.model(op), op)
    out = m.minimize_tpot(limits, _int(incumbent)) if latency else m.minimize_traffic(limits, _int(incumbent))
    if not out.found:
        return ShapeResult(shape, out.status, bound=in_score(bound) if out.status == "UNKNOWN" else math.inf)
    part, pred = sv.evaluate(out, op)
    score = pred.tpot_ms if latency else pred.critical_path_bytes_per_token
    return ShapeResult(shape, out.status, part, pred, score, in_score(max(out.bound, bound)))


def score_bound(sv: ShapeSolver, limits: SolverBudget) -> float:
    """A lower bound on the score of every plan of the shape, from the solver's bounds alone (no search for
    a plan). With a relaxed shape (slot 0 = every GPU offered) it holds for every slot system of the shape."""
    req, shape = sv.req, sv.shape
    if req.options.objective == Objective.THROUGHPUT:
        cap = load_capacity(sv, limits)
        if cap.status == "INFEASIBLE":
            return math.inf
        return _tokens_bound(sv, cap.bound)
    op = sv.op(math.ceil(req.workload.concurrency / shape.replicas))
    if not op.feasible:
        return math.inf
    if req.options.objective == Objective.LATENCY:
        return sv.tpot_lower_bound_ns(op) / 1e6
    return sv.traffic_lower_bound(op) / op.decode


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _largest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """The largest x in [lo, hi] with ok(x), for a monotone ok (true up to some point); lo - 1 if none."""
    if hi < lo:
        return lo - 1
    if ok(hi):
        return hi
    if not ok(lo):
        return lo - 1
    hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def step_budget_limit(sv: ShapeSolver, cap: int) -> int:
    """The largest per-replica load whose steps fit the engine's budget in steady state, with the prefill queue
    within the TTFT guard (planner.cost.prefill_guard)."""
    bound = sv.req.options.max_prefill_utilisation
    return _largest(1, cap, lambda c: sv.op(c).feasible and prefill_utilisation(sv.op(c)) <= bound)


@dataclass(frozen=True)
class Capacity:
    """Sequences per replica a shape holds: within the engine's step budget and in memory."""

    plan: int  # the most a plan found holds
    bound: int  # no plan holds more
    status: str  # OPTIMAL (plan == bound), FEASIBLE (search cut short), INFEASIBLE or UNKNOWN
    problem: str | None = None


def load_capacity(sv: ShapeSolver, limits: SolverBudget) -> Capacity:
    """The largest per-replica load the step budget allows and the memory holds, with its bound."""
    req, shape = sv.req, sv.shape
    cap = CAPACITY_MAX if req.options.max_concurrency is None else max(1, req.options.max_concurrency // shape.replicas)
    cap = step_budget_limit(sv, cap)
    if cap < 1:
        return Capacity(0, 0, "INFEASIBLE", sv.op(1).problem)
    held = uniform_capacity(
        sv.cands.configs, sv.coefs(sv.op(1)), sv.cands.pools, runs=req.runs, n_layers=req.profile.n_layers, pp=shape.pp
    )
    if held is not None:  # every configuration holds the same bytes: exact without CP-SAT
        mem = Outcome("OPTIMAL", float(held), float(held)) if held >= 1 else Outcome("INFEASIBLE")
    else:
        mem = sv.model(sv.op(1), memory_at_load=False).maximize_capacity(limits)
    if not mem.found:
        return Capacity(0, cap, "UNKNOWN") if mem.status == "UNKNOWN" else Capacity(0, 0, "INFEASIBLE")
    plan = min(cap, int(mem.value))
    bound = min(cap, int(mem.value if mem.status == "OPTIMAL" else mem.bound))
    if bound < 1:
        return Capacity(0, 0, "INFEASIBLE", "the weights leave no room for a sequence's KV cache")
    return Capacity(plan, bound, mem.status)


def _tokens_bound(sv: ShapeSolver, cap_bound: int) -> float:
    """Minus the most tokens/s the shape can reach (a score bound): tokens/s = load / TPOT grows with the load, and
    under a TPOT SLO no load whose TPOT lower bound already breaks it can serve (the bound grows with the load)."""
    if cap_bound < 1:
        return 0.0
    slo_ns = None if sv.req.options.tpot_slo_ms is None else sv.req.options.tpot_slo_ms * 1e6
    if slo_ns is not None:
        cap_bound = _largest(1, cap_bound, lambda c: sv.tpot_lower_bound_ns(sv.op(c)) <= slo_ns)
        if cap_bound < 1:
            return 0.0
    return -sv.shape.replicas * cap_bound * 1e9 / sv.tpot_lower_bound_ns(sv.op(cap_bound))


def solve_throughput(sv: ShapeSolver, limits: SolverBudget, best_tokens: float | None) -> ShapeResult:
    """The largest load the shape serves (memory, step budget, SLOs), then the least TPOT there."""
    shape = sv.shape
    cap = load_capacity(sv, limits)
    upper = -_tokens_bound(sv, cap.bound)
    if cap.status != "OPTIMAL" and cap.plan < 1:  # no plan found: an UNKNOWN keeps the bound it has
        return ShapeResult(shape, cap.status, note=cap.problem, bound=-upper if cap.status == "UNKNOWN" else math.inf)
    if best_tokens is not None and upper <= best_tokens:
        return ShapeResult(shape, "PRUNED", bound=-upper)
    outcomes: dict[int, Outcome] = {}

    def feasible(c: int) -> bool:
        if c not in outcomes:
            if limits.deadline is not None and limits.deadline.expired:
                outcomes[c] = Outcome("UNKNOWN")  # out of time: not tested (the answer says FEASIBLE)
                return False
            op = sv.op(c)
            outcomes[c] = sv.with_slos(sv.model(op), op).minimize_tpot(limits)
        return outcomes[c].found

    best = _largest(1, cap.plan, feasible)
    if best < 1:
        unknown = any(o.status == "UNKNOWN" for o in outcomes.values())
        return ShapeResult(
            shape,
            "UNKNOWN" if unknown else "INFEASIBLE",
            note="no load meets the SLOs",
            bound=-upper if unknown else math.inf,
        )
    op = sv.op(best)
    part, pred = sv.evaluate(outcomes[best], op)
    settled = all(o.status in ("OPTIMAL", "INFEASIBLE") for o in outcomes.values()) and cap.status == "OPTIMAL"
    return ShapeResult(
        shape,
        "OPTIMAL" if settled else "FEASIBLE",
        part,
        pred,
        -pred.tokens_per_s,
        -pred.tokens_per_s if settled else -upper,
    )
