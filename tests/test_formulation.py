"""The CP-SAT model of one shape (planner.solve.formulation.ShapeModel): built once, then asked."""

from __future__ import annotations

from planner.cost.constants import DEFAULT
from planner.hardware import load_topology
from planner.plan import Workload
from planner.solve.formulation import SolverBudget
from planner.solve.objectives import Request, ShapeSolver
from planner.solve.options import SolveOptions
from planner.solve.shapes import ShapeBounds, enumerate_shapes, shape_candidates

BUDGET = SolverBudget(5.0)  # deterministic seconds: the same answers on any machine
QUERIES = {
    "tpot under an incumbent of 1 ns": lambda m: m.minimize_tpot(BUDGET, incumbent=1),  # no plan is that fast
    "tpot": lambda m: m.minimize_tpot(BUDGET),
    "traffic": lambda m: m.minimize_traffic(BUDGET),
    "capacity": lambda m: m.maximize_capacity(BUDGET),
}


def _model(profiles):
    """llama-8b in two stages of TP2 on four H100s: several configurations per stage, solved to optimality."""
    topo, prof = load_topology("8xh100"), profiles("llama-8b")
    req = Request(profile=prof, topo=topo, workload=Workload(), constants=DEFAULT, options=SolveOptions())
    bounds = ShapeBounds(max_pp=2, max_tp=2, max_replicas=1, budget=4, any_shape=False)
    shape = next(
        s
        for s in enumerate_shapes(prof, topo, [0, 1, 2, 3], bounds)
        if s.pp == 2 and s.layout is not None and s.layout.tp == 2
    )
    sv = ShapeSolver(req, shape, shape_candidates(prof, topo, shape, 2))
    return lambda: sv.model(sv.op(1), memory_at_load=False)


def _ask(model, order: list[str]) -> dict[str, tuple[str, float, list]]:
    out = {}
    for name in order:
        o = QUERIES[name](model)
        out[name] = (o.status, o.value, [(s.config.gpu_ids, s.layer_start, s.layer_end) for s in o.stages or []])
    return out


def test_queries_leave_the_model_as_built(profiles):
    """Two queries orders on two copies of one model give the same answers: a query's incumbent bound (here one
    no plan meets), objective and variables do not stay in the model. Before, the 1 ns bound stayed and every later
    query was infeasible; the TPOT query's second pass kept its TPOT bound for the traffic query too."""
    build = _model(profiles)
    order = list(QUERIES)
    forward, backward = _ask(build(), order), _ask(build(), order[::-1])
    assert forward == backward
    assert forward["tpot under an incumbent of 1 ns"][0] == "INFEASIBLE"
    assert all(forward[q][0] == "OPTIMAL" for q in ("tpot", "traffic", "capacity")), forward
    # the same model asked twice answers twice alike
    m = build()
    assert _ask(m, ["tpot", "tpot"]) == {"tpot": forward["tpot"]} and _ask(m, ["traffic"]) == {
        "traffic": forward["traffic"]
    }
