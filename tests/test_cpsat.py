"""The lean CP-SAT front end: every constraint kind, on both back ends, against hand-solved optima."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from planner import cpsat
from planner.constants import DEFAULT
from planner.plan import Workload
from planner.solver import solve
from planner.topology import load_topology

BACKENDS = ["proto", "cp_model"]
LIMITS = dict(deterministic_time_s=10.0, wall_time_s=30.0)


def run(model: cpsat.Model) -> cpsat.Result:
    return model.solve(**LIMITS)


@pytest.fixture(params=BACKENDS)
def model(request):
    return cpsat.Model(backend=request.param)


def test_the_fast_path_is_the_default_with_this_ortools():
    # the pinned OR-Tools (>= 9.15) exposes its C++ CpModelProto; the portable path is the fallback
    assert cpsat.default_backend() == "proto"


def test_linear_with_constants_on_both_sides(model):
    # max x + 2y  s.t. x + y <= 5, x + 3 <= 6, 0 <= y <= 4: y = 4 and x = 1 give 9 (by hand)
    x, y = model.new_int_var(0, 10, "x"), model.new_int_var(0, 4, "y")
    model.add(x + y <= 5)
    model.add(6 >= x + 3)  # reflected comparison
    model.maximize(x + 2 * y)
    r = run(model)
    assert (r.status, r.objective, r.bound) == ("OPTIMAL", 9, 9)
    assert (r.value(x), r.value(y), r.value(x + 2 * y - 1)) == (1, 4, 8)


def test_equality_with_scaled_difference(model):
    x = model.new_int_var(-5, 5, "x")
    model.add(2 * (x - 1) == 4)  # x = 3
    model.minimize(x)
    r = run(model)
    assert r.value(x) == 3 and r.objective == 3


def test_exactly_one_and_at_most_one(model):
    a, b, c = (model.new_bool_var(n) for n in "abc")
    model.add_exactly_one([a, b, c])
    model.add_at_most_one([b, c])
    model.minimize(3 * a + 2 * b + 5 * c)  # b alone costs 2
    r = run(model)
    assert r.objective == 2 and [r.value(v) for v in (a, b, c)] == [0, 1, 0]


def test_reified_and_and_negated_literals(model):
    # p <=> (a and b), written as in the solver: bool_and enforced by p, bool_or(not a, not b, p)
    a, b, p = (model.new_bool_var(n) for n in "abp")
    model.add_bool_and([a, b]).only_enforce_if(p)
    model.add_bool_or([a.Not(), b.Not(), p])
    model.add(a + b == 2)
    model.minimize(p)
    r = run(model)
    assert r.value(p) == 1  # forced although the objective pushes it down
    q = model.new_bool_var("q")
    model.add_bool_or([q.Not()])
    model.maximize(q)
    assert run(model).value(q) == 0


def test_enforced_linear_constraint(model):
    x, on = model.new_int_var(0, 10, "x"), model.new_bool_var("on")
    model.add(x <= 2).only_enforce_if(on)
    model.maximize(x + 20 * on)  # on = 1 caps x at 2: 22 beats 10
    r = run(model)
    assert r.objective == 22 and r.value(x) == 2


def test_max_and_min_equality(model):
    # minimise max(x, 7 - x, 2) over 0..10: x = 3 or 4 gives 4 (by hand)
    x, t = model.new_int_var(0, 10, "x"), model.new_int_var(0, 100, "t")
    model.add_max_equality(t, [x, 7 - x, 2])
    model.minimize(t)
    assert run(model).objective == 4
    # maximise min(y, 10 - y): y = 5 gives 5
    y, u = model.new_int_var(0, 10, "y"), model.new_int_var(-100, 100, "u")
    model.add_min_equality(u, [y, 10 - y])
    model.maximize(u)
    r = run(model)
    assert r.objective == 5 and r.value(y) == 5


def test_element_of_a_constant_table(model):
    i, v = model.new_int_var(0, 3, "i"), model.new_int_var(0, 100, "v")
    model.add_element(i, [5, 1, 4, 9], v)
    model.minimize(v + i)  # i = 1: 1 + 1 = 2; i = 0: 5; i = 2: 6; i = 3: 12
    r = run(model)
    assert r.objective == 2 and (r.value(i), r.value(v)) == (1, 1)


def test_multiplication_equality(model):
    x, y, z = model.new_int_var(0, 5, "x"), model.new_int_var(0, 5, "y"), model.new_int_var(0, 25, "z")
    model.add_multiplication_equality(z, [x, y])
    model.add(x + y == 6)
    model.maximize(z)  # 3 x 3
    assert run(model).objective == 9


def test_infeasible_and_lexicographic_resolve(model):
    x, y = model.new_int_var(0, 10, "x"), model.new_int_var(0, 10, "y")
    model.add(x + y >= 8)
    model.minimize(x + y)
    first = run(model)
    assert first.objective == 8
    # second phase, as the solver does: keep the optimum, then prefer a small x
    model.add(x + y <= int(first.objective))
    model.minimize(x)
    second = run(model)
    assert (second.value(x), second.value(y)) == (0, 8)
    model.add(y <= 3)
    model.add(x <= 4)  # x + y <= 7 < 8
    assert run(model).status == "INFEASIBLE"


def test_misuse_is_caught():
    m = cpsat.Model()
    x = m.new_int_var(0, 3, "x")
    with pytest.raises(TypeError):
        bool(x == 1)
    with pytest.raises(TypeError):
        0.5 * x
    with pytest.raises(TypeError):
        m.add(x)


def test_unknown_backend_name(monkeypatch):
    monkeypatch.setenv("PLANNER_CPSAT", "gurobi")
    with pytest.raises(ValueError, match="PLANNER_CPSAT"):
        cpsat.default_backend()


CASES = {
    # several stages on a machine of NVLink pairs (linear, max/min, reified hand-offs)
    "latency": ("llama-70b", "8xh100-pcie-nvlink-pairs", dict(concurrency=16), "latency", {}),
    # KV capacity as a table over a stage's layer count (element constraints)
    "throughput": ("llama-70b", "4xl40s", dict(concurrency=8, weight_dtype="fp8", isl=8192, osl=1024), "throughput",
                   dict(max_tp=1, max_replicas=1)),
    "traffic": ("mixtral-8x7b", "8xh100-pcie-nvlink-pairs", dict(concurrency=4), "traffic", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_backends_give_the_same_plan(profiles, monkeypatch, case):
    """Real models and machines: the same plan, objective and bound through either back end."""
    model, machine, load, objective, limits = CASES[case]
    plans = []
    for backend in BACKENDS:
        monkeypatch.setenv("PLANNER_CPSAT", backend)
        plan = solve(profiles(model), load_topology(machine), Workload(**load), objective=objective,
                     constants=DEFAULT, **limits)
        data = json.loads(plan.model_dump_json())
        data["solver"].pop("wall_time_s")
        plans.append(data)
    assert plans[0]["solver"]["status"] == "OPTIMAL"
    assert plans[0] == plans[1]


def test_the_fast_path_imports_neither_pandas_nor_numpy():
    code = (
        "import sys\n"
        "from planner import cpsat, solver\n"
        "m = cpsat.Model()\n"
        "x = m.new_int_var(0, 3, 'x')\n"
        "m.maximize(x)\n"
        "r = m.solve(deterministic_time_s=1, wall_time_s=5)\n"
        "print(r.objective, 'pandas' in sys.modules, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["3.0", "False", "False"]
