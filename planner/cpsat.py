"""A lean front end to OR-Tools' CP-SAT solver: the model in CP-SAT's own format, without pandas.

Why not `ortools.sat.python.cp_model`: importing it imports pandas and numpy, 0.4-0.6 s on a 2-core
machine, which is half the one-second budget of `planner solve` on one 8-GPU node. This module
writes the same model in the format every OR-Tools front end writes, `CpModelProto`
(ortools/sat/cp_model.proto), and hands it to the same C++ solver.

Two back ends, chosen once per process:
- `proto` (when OR-Tools has it, 9.15 and later): the constraints go straight into the C++
  `CpModelProto` that `ortools.sat.python.cp_model_helper` exposes, solved by its `SolveWrapper`.
  Imports neither pandas nor numpy.
- `cp_model`: the same model replayed through the public `cp_model` API. Used when the fast path is
  missing (an older or a changed OR-Tools) or when `PLANNER_CPSAT=cp_model`; the tests solve models
  both ways and compare.

The modelling API mirrors cp_model's names (`new_int_var`, `add`, `add_max_equality`,
`only_enforce_if`, `minimize`, ...), so code reads the same; expressions are integer-linear.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
STATUSES = ("UNKNOWN", "MODEL_INVALID", "FEASIBLE", "INFEASIBLE", "OPTIMAL")


def _as_expr(x) -> Expr:
    if isinstance(x, Expr):
        return x
    if isinstance(x, int):
        return Expr({}, int(x))
    raise TypeError(f"CP-SAT expressions are integer-linear; got {type(x).__name__}")


class Expr:
    """An integer-linear expression: sum(coeff x var) + const."""

    __slots__ = ("terms", "const")

    def __init__(self, terms: dict[int, int] | None = None, const: int = 0):
        self.terms = terms if terms is not None else {}
        self.const = const

    def __add__(self, other) -> Expr:
        o = _as_expr(other)
        terms = dict(self.terms)
        for v, k in o.terms.items():
            terms[v] = terms.get(v, 0) + k
        return Expr(terms, self.const + o.const)

    __radd__ = __add__

    def __mul__(self, k) -> Expr:
        if not isinstance(k, int):
            raise TypeError(f"CP-SAT coefficients are integers; got {type(k).__name__}")
        return Expr({v: c * k for v, c in self.terms.items()}, self.const * k)

    __rmul__ = __mul__

    def __neg__(self) -> Expr:
        return self * -1

    def __sub__(self, other) -> Expr:
        return self + _as_expr(other) * -1

    def __rsub__(self, other) -> Expr:
        return _as_expr(other) + self * -1

    def __le__(self, other) -> Bounded:
        return Bounded(self - other, INT_MIN, 0)

    def __ge__(self, other) -> Bounded:
        return Bounded(self - other, 0, INT_MAX)

    def __eq__(self, other) -> Bounded:  # type: ignore[override]
        return Bounded(self - other, 0, 0)

    __hash__ = None  # type: ignore[assignment]


class Var(Expr):
    """An integer (or 0-1) variable of a Model."""

    __slots__ = ("index", "name")

    def __init__(self, index: int, name: str):
        super().__init__({index: 1}, 0)
        self.index = index
        self.name = name

    def __hash__(self) -> int:
        return hash(self.index)

    def __repr__(self) -> str:
        return self.name

    def Not(self) -> NotVar:  # noqa: N802 - cp_model's name
        return NotVar(self)


@dataclass(frozen=True)
class NotVar:
    """The negation of a 0-1 variable, usable where a literal is."""

    var: Var

    @property
    def index(self) -> int:
        return -self.var.index - 1  # CP-SAT's encoding of a negated literal

    def Not(self) -> Var:  # noqa: N802
        return self.var


@dataclass
class Bounded:
    """lo <= expr <= hi, the result of comparing expressions."""

    expr: Expr
    lo: int
    hi: int

    def __bool__(self) -> bool:
        raise TypeError("a CP-SAT comparison has no truth value; pass it to Model.add()")


def lin_sum(items: Iterable) -> Expr:
    """Sum of expressions and integers in one pass (the built-in sum copies at every step)."""
    terms: dict[int, int] = {}
    const = 0
    for x in items:
        e = _as_expr(x)
        for v, k in e.terms.items():
            terms[v] = terms.get(v, 0) + k
        const += e.const
    return Expr(terms, const)


class Constraint:
    """A constraint in a Model; `only_enforce_if` makes it conditional on literals."""

    __slots__ = ("op",)

    def __init__(self, op: list):
        self.op = op

    def only_enforce_if(self, *lits) -> Constraint:
        for lit in lits:
            for x in lit if isinstance(lit, (list, tuple)) else [lit]:
                self.op[-1].append(x.index)
        return self


def _lits(items) -> list[int]:
    return [x.index for x in items]


@dataclass
class Result:
    """What a solve returned: status name, objective, best bound, and the values of the variables."""

    status: str
    objective: float
    bound: float
    values: list[int]

    def value(self, x) -> int:
        e = _as_expr(x)
        return e.const + sum(k * self.values[v] for v, k in e.terms.items())


class Model:
    """A CP-SAT model. Operations are recorded, then written into the back end at each solve."""

    def __init__(self, backend: str | None = None):
        self.backend = backend or default_backend()
        self._domains: list[tuple[int, int]] = []
        self._names: list[str] = []
        # Each op: [kind, payload..., enforcement literals (list)]
        self._ops: list[list] = []
        self._objective: tuple[Expr, int] | None = None  # (expression to minimise, sign of reporting)
        self._writer = None

    # Variables.
    def new_int_var(self, lo: int, hi: int, name: str) -> Var:
        self._domains.append((int(lo), int(hi)))
        self._names.append(name)
        return Var(len(self._domains) - 1, name)

    def new_bool_var(self, name: str) -> Var:
        return self.new_int_var(0, 1, name)

    # Constraints.
    def _op(self, *parts) -> Constraint:
        op = [*parts, []]
        self._ops.append(op)
        return Constraint(op)

    def add(self, ct: Bounded) -> Constraint:
        if not isinstance(ct, Bounded):
            raise TypeError("add() takes a comparison of linear expressions, such as x + y <= 3")
        lo = ct.lo if ct.lo == INT_MIN else ct.lo - ct.expr.const
        hi = ct.hi if ct.hi == INT_MAX else ct.hi - ct.expr.const
        return self._op("linear", ct.expr, lo, hi)

    def add_exactly_one(self, lits) -> Constraint:
        return self._op("exactly_one", _lits(lits))

    def add_at_most_one(self, lits) -> Constraint:
        return self._op("at_most_one", _lits(lits))

    def add_bool_and(self, lits) -> Constraint:
        return self._op("bool_and", _lits(lits))

    def add_bool_or(self, lits) -> Constraint:
        return self._op("bool_or", _lits(lits))

    def add_max_equality(self, target, exprs) -> Constraint:
        return self._op("max", _as_expr(target), [_as_expr(e) for e in exprs])

    def add_min_equality(self, target, exprs) -> Constraint:
        return self._op("min", _as_expr(target), [_as_expr(e) for e in exprs])

    def add_element(self, index, table: list[int], target) -> Constraint:
        """target == table[index]."""
        return self._op("element", _as_expr(index), [int(v) for v in table], _as_expr(target))

    def add_multiplication_equality(self, target, factors) -> Constraint:
        return self._op("prod", _as_expr(target), [_as_expr(e) for e in factors])

    # Objective.
    def minimize(self, expr) -> None:
        self._objective = (_as_expr(expr), 1)

    def maximize(self, expr) -> None:
        self._objective = (_as_expr(expr) * -1, -1)

    # Solving.
    def solve(self, *, deterministic_time_s: float, wall_time_s: float, workers: int = 1,
              seed: int = 0) -> Result:
        """Solve under CP-SAT's deterministic work limit (same inputs, same answer on any machine)
        with a wall-clock safety net."""
        if self._writer is None:
            self._writer = _ProtoWriter() if self.backend == "proto" else _CpModelWriter()
        return self._writer.solve(self, deterministic_time_s, wall_time_s, workers, seed)


def _fast_helper():
    try:
        from ortools.sat.python import cp_model_helper as cmh
    except ImportError:  # pragma: no cover - depends on the OR-Tools build
        return None
    needed = ("CpModelProto", "SatParameters", "SolveWrapper", "CpSolverStatus")
    return cmh if all(hasattr(cmh, n) for n in needed) else None


def default_backend() -> str:
    """`proto` where OR-Tools exposes its C++ model (9.15+), else `cp_model`; PLANNER_CPSAT overrides."""
    asked = os.environ.get("PLANNER_CPSAT", "auto")
    if asked not in ("auto", "proto", "cp_model"):
        raise ValueError(f"PLANNER_CPSAT must be auto, proto or cp_model, not {asked!r}")
    if asked == "cp_model":
        return "cp_model"
    if _fast_helper() is not None:
        return "proto"
    if asked == "proto":
        raise RuntimeError("PLANNER_CPSAT=proto, but this OR-Tools has no C++ CpModelProto in cp_model_helper")
    return "cp_model"


def _set_terms(dst, e: Expr) -> None:
    """Write an Expr's variables and coefficients into a proto message with `vars` and `coeffs`."""
    items = [(v, k) for v, k in e.terms.items() if k]
    dst.vars.extend([v for v, _ in items])
    dst.coeffs.extend([k for _, k in items])


def _set_linear(dst, e: Expr) -> None:
    """Write an Expr into a LinearExpressionProto."""
    _set_terms(dst, e)
    dst.offset = e.const


class _ProtoWriter:
    """Writes ops into cp_model_helper's C++ CpModelProto, in the fields of cp_model.proto."""

    def __init__(self):
        self.cmh = _fast_helper()
        self.proto = self.cmh.CpModelProto()
        self.n_vars = 0
        self.n_ops = 0

    def _flush(self, model: Model) -> None:
        p = self.proto
        for i in range(self.n_vars, len(model._domains)):
            v = p.variables.add()
            v.name = model._names[i]
            v.domain.extend(model._domains[i])
        self.n_vars = len(model._domains)
        for op in model._ops[self.n_ops:]:
            kind, enforce = op[0], op[-1]
            c = p.constraints.add()
            if enforce:
                c.enforcement_literal.extend(enforce)
            if kind == "linear":
                _set_terms(c.linear, op[1])
                c.linear.domain.extend([op[2], op[3]])
            elif kind in ("exactly_one", "at_most_one", "bool_and", "bool_or"):
                getattr(c, kind).literals.extend(op[1])
            elif kind in ("max", "min"):
                sign = 1 if kind == "max" else -1  # min(x) = -max(-x)
                _set_linear(c.lin_max.target, op[1] * sign)
                for e in op[2]:
                    _set_linear(c.lin_max.exprs.add(), e * sign)
            elif kind == "element":
                _set_linear(c.element.linear_index, op[1])
                for v in op[2]:
                    c.element.exprs.add().offset = v
                _set_linear(c.element.linear_target, op[3])
            elif kind == "prod":
                _set_linear(c.int_prod.target, op[1])
                for e in op[2]:
                    _set_linear(c.int_prod.exprs.add(), e)
            else:  # pragma: no cover - every kind Model records is handled above
                raise AssertionError(kind)
        self.n_ops = len(model._ops)
        p.clear_objective()
        if model._objective is not None:
            _set_terms(p.objective, model._objective[0])
            p.objective.offset = float(model._objective[0].const)

    def solve(self, model: Model, deterministic_time_s, wall_time_s, workers, seed) -> Result:
        self._flush(model)
        params = self.cmh.SatParameters()
        params.max_deterministic_time = deterministic_time_s
        params.max_time_in_seconds = wall_time_s
        params.num_workers = workers
        params.random_seed = seed
        params.interleave_search = workers > 1
        wrapper = self.cmh.SolveWrapper()
        wrapper.set_parameters(params)
        r = wrapper.solve(self.proto)
        status = r.status.name
        if status == "MODEL_INVALID":  # a bug in the caller's model, not an input error
            raise RuntimeError(f"CP-SAT rejected the model: {self.cmh.CpSatHelper.validate_model(self.proto)}")
        sign = model._objective[1] if model._objective else 1
        return Result(status, sign * r.objective_value, sign * r.best_objective_bound, list(r.solution))


class _CpModelWriter:
    """Replays ops through OR-Tools' public cp_model API (imports pandas; the portable path)."""

    def __init__(self):
        from ortools.sat.python import cp_model

        self.cp = cp_model
        self.m = cp_model.CpModel()
        self.vars: list = []
        self.n_ops = 0

    def _lit(self, i: int):
        return self.vars[i] if i >= 0 else self.vars[-i - 1].Not()

    def _expr(self, e: Expr):
        return sum((k * self.vars[v] for v, k in e.terms.items() if k), e.const)

    def _flush(self, model: Model) -> None:
        m = self.m
        for i in range(len(self.vars), len(model._domains)):
            lo, hi = model._domains[i]
            self.vars.append(m.new_int_var(lo, hi, model._names[i]))
        for op in model._ops[self.n_ops:]:
            kind, enforce = op[0], op[-1]
            if kind == "linear":
                e = op[1]
                ct = m.add_linear_constraint(self._expr(Expr(e.terms, 0)), op[2], op[3])
            elif kind == "exactly_one":
                ct = m.add_exactly_one([self._lit(i) for i in op[1]])
            elif kind == "at_most_one":
                ct = m.add_at_most_one([self._lit(i) for i in op[1]])
            elif kind == "bool_and":
                ct = m.add_bool_and([self._lit(i) for i in op[1]])
            elif kind == "bool_or":
                ct = m.add_bool_or([self._lit(i) for i in op[1]])
            elif kind == "max":
                ct = m.add_max_equality(self._expr(op[1]), [self._expr(e) for e in op[2]])
            elif kind == "min":
                ct = m.add_min_equality(self._expr(op[1]), [self._expr(e) for e in op[2]])
            elif kind == "element":
                ct = m.add_element(self._expr(op[1]), op[2], self._expr(op[3]))
            elif kind == "prod":
                ct = m.add_multiplication_equality(self._expr(op[1]), [self._expr(e) for e in op[2]])
            else:  # pragma: no cover
                raise AssertionError(kind)
            if enforce:
                ct.only_enforce_if([self._lit(i) for i in enforce])
        self.n_ops = len(model._ops)
        m.clear_objective()
        if model._objective is not None:
            m.minimize(self._expr(model._objective[0]))

    def solve(self, model: Model, deterministic_time_s, wall_time_s, workers, seed) -> Result:
        self._flush(model)
        solver = self.cp.CpSolver()
        solver.parameters.max_deterministic_time = deterministic_time_s
        solver.parameters.max_time_in_seconds = wall_time_s
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed
        solver.parameters.interleave_search = workers > 1
        code = solver.solve(self.m)
        status = solver.status_name(code)
        if status == "MODEL_INVALID":
            raise RuntimeError(f"CP-SAT rejected the model: {self.m.validate()}")
        found = status in ("OPTIMAL", "FEASIBLE")
        values = [int(solver.value(v)) for v in self.vars] if found else []
        sign = model._objective[1] if model._objective else 1
        objective = sign * solver.objective_value if model._objective else 0.0
        bound = sign * solver.best_objective_bound if model._objective else 0.0
        return Result(status, objective, bound, values)
