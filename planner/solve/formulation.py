"""The CP-SAT model of one shape (replicas, pipeline depth, GPUs per replica, layout), by constraint family.

# Data.
- `configs[g]`: candidate stage configurations (planner.solve.candidates) and their integer
  coefficients per run of identical decoder layers (planner.solve.coefficients).
- `runs[r] = [lo, hi)`: runs of identical decoder layers; `hops`: hand-off costs by pair of nodes.

# Model.
- assignment: `use[s, g]`, stage s runs configuration g; exactly one per stage; each GPU in at most one
  used configuration, a pool's configurations within its GPU count; the replica's GPU count.
- layer ranges: boundaries 0 = b_0 < b_1 < ... < b_PP = L; `n[s, g, r]` layers of run r in stage s on g.
- memory: weights + sequences x KV per sequence <= capacity on every GPU of every used configuration.
- stage times: `T[s]` = per-layer times x n + embedding / head x use + the hand-off to the next stage.
- objectives: TPOT = max(sum of T, micro-batches x max T) (latency; also throughput at a fixed load,
  with TPOT and TTFT SLOs as constraints), traffic bytes, or the KV capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from planner.solve.candidates import Config
from planner.solve.coefficients import Coefficients, Hops

#: Largest KV capacity the model considers (sequences per replica).
CAPACITY_MAX = 1_000_000


@dataclass(frozen=True)
class SolverBudget:
    """CP-SAT's budget: deterministic time (machine independent, so the same inputs give the same plan)
    and a wall-clock safety net."""

    deterministic_s: float
    workers: int = 1
    deadline: Any = None  # planner.solve.deadline.Deadline: the command's one deadline (None: none)


@dataclass(frozen=True)
class SolvedStage:
    """A solved stage: its configuration, its layers [layer_start, layer_end), and how many layers of each run it
    streams from host memory."""

    config: Config
    layer_start: int
    layer_end: int
    streamed: tuple[int, ...] = ()


@dataclass
class Outcome:
    status: str  # OPTIMAL, FEASIBLE, INFEASIBLE or UNKNOWN (the time ran out before any plan)
    value: float = 0.0
    bound: float = 0.0
    stages: list[SolvedStage] | None = None

    @property
    def found(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")


class ShapeModel:
    """One shape's CP-SAT model; build once (the constructor, then `add_slos`), then ask `minimize_tpot`,
    `minimize_traffic` or `maximize_capacity`, as often and in any order: a query leaves the model as it was."""

    def __init__(
        self,
        n_layers: int,
        pp: int,
        micro: int,
        *,
        configs: list[Config],
        coefs: list[Coefficients],
        runs: list[tuple[int, int]],
        hops: Hops,
        pools: dict[str, list[int]],
        gpus: int,
        exact_gpus: bool,
        memory_at_load: bool = True,
        host_capacity: dict[str, int] | None = None,
    ):
        from ortools.sat.python import cp_model

        self.cp = cp_model
        self.m = cp_model.CpModel()
        self.L, self.pp, self.micro = n_layers, pp, micro
        self.configs, self.coefs, self.runs, self.hops, self.pools = configs, coefs, runs, hops, pools
        self.S, self.G, self.R = range(pp), range(len(configs)), range(len(runs))
        self.nodes = sorted({c.node for c in configs})
        self.time_max = self._time_bound()
        self._assignment(gpus, exact_gpus)
        self._layer_ranges()
        self._streaming(host_capacity or {})
        if memory_at_load:
            self._memory()
        self._stage_times()

    def _time_bound(self) -> int:
        """A bound on any stage time, TPOT or prefill chain of this model (keeps every product in int64)."""
        ks = self.coefs
        per_stage = sum(
            (hi - lo) * max(max(k.tpot_ns[r], k.ttft_ns[r]) for k in ks) for r, (lo, hi) in enumerate(self.runs)
        )
        per_stage += max(max(k.first.tpot_ns, k.first.ttft_ns) for k in ks) + max(
            max(k.last.tpot_ns, k.last.ttft_ns) for k in ks
        )
        per_stage += max([*self.hops.tpot_ns.values(), *self.hops.ttft_ns.values(), 0])
        per_stage += sum(
            (hi - lo) * max(max(k.streaming.tpot_ns[r], k.streaming.ttft_ns[r]) if k.streaming else 0 for k in ks)
            for r, (lo, hi) in enumerate(self.runs)
        )
        return max(1, (self.pp + self.micro) * per_stage)

    # --- families --------------------------------------------------------------------------------
    def _assignment(self, gpus: int, exact_gpus: bool) -> None:
        m, S, G = self.m, self.S, self.G
        self.use = {(s, g): m.new_bool_var(f"use[{s},{g}]") for s in S for g in G}
        # One configuration per stage.
        for s in S:
            m.add_exactly_one(self.use[s, g] for g in G)
        # Each concrete GPU serves at most one stage.
        holders: dict[int, list] = {}
        for s in S:
            for g in G:
                if self.configs[g].pool is None:
                    for gpu in self.configs[g].gpu_ids:
                        holders.setdefault(gpu, []).append(self.use[s, g])
        for lits in holders.values():
            if len(lits) > 1:
                m.add_at_most_one(lits)
        # A pool lends each of its GPUs to one stage at most.
        for pool, ids in self.pools.items():
            m.add(
                sum(self.configs[g].size * self.use[s, g] for s in S for g in G if self.configs[g].pool == pool)
                <= len(ids)
            )
        # The replica's GPU count: at most the budget (one replica) or exactly its slot.
        used = sum(self.configs[g].size * self.use[s, g] for s in S for g in G)
        m.add(used == gpus) if exact_gpus else m.add(used <= gpus)

    def _layer_ranges(self) -> None:
        m, L = self.m, self.L
        self.b = [m.new_int_var(0, L, f"b[{s}]") for s in range(self.pp + 1)]
        self.n = {
            (s, g, r): m.new_int_var(0, hi - lo, f"n[{s},{g},{r}]")
            for s in self.S
            for g in self.G
            for r, (lo, hi) in enumerate(self.runs)
        }
        # Contiguous, non-empty ranges: 0 = b_0 < b_1 < ... < b_PP = L.
        m.add(self.b[0] == 0)
        m.add(self.b[self.pp] == L)
        for s in self.S:
            m.add(self.b[s + 1] >= self.b[s] + 1)
        # Layers of run r in stage s: the overlap of [b_s, b_s+1) with the run, all on the stage's configuration.
        for s in self.S:
            for r, (lo, hi) in enumerate(self.runs):
                start, clip_start = m.new_int_var(0, L, f"start[{s},{r}]"), m.new_int_var(lo, hi, f"cs[{s},{r}]")
                e0, end = m.new_int_var(0, L, f"e0[{s},{r}]"), m.new_int_var(lo, hi, f"end[{s},{r}]")
                m.add_max_equality(start, [self.b[s], lo])
                m.add_min_equality(clip_start, [start, hi])
                m.add_max_equality(e0, [self.b[s + 1], lo])
                m.add_min_equality(end, [e0, hi])
                m.add(sum(self.n[s, g, r] for g in self.G) == end - clip_start)
                for g in self.G:
                    m.add(self.n[s, g, r] <= (hi - lo) * self.use[s, g])

    def _extra(self, s: int, g: int, field: str) -> int:
        k = self.coefs[g]
        return (getattr(k.first, field) if s == 0 else 0) + (getattr(k.last, field) if s == self.pp - 1 else 0)

    def _streaming(self, host_capacity: dict[str, int]) -> None:
        """Layers streamed from host memory (solve --offload): `off[s, g, r]` of the stage's layers of run r leave
        HBM for the node's tier; the stage keeps two buffers of its largest streamed layer (`buf[s, g]`); every
        GPU's shards of them fit the node's tier."""
        m = self.m
        self.off, self.buf = {}, {}
        for s in self.S:
            for g in self.G:
                st = self.coefs[g].streaming
                if st is None:
                    continue
                self.buf[s, g] = m.new_int_var(0, 2 * max(st.host_bytes), f"buf[{s},{g}]")
                for r, (lo, hi) in enumerate(self.runs):
                    off = self.off[s, g, r] = m.new_int_var(0, hi - lo, f"off[{s},{g},{r}]")
                    m.add(off <= self.n[s, g, r])
                    streams = m.new_bool_var(f"streams[{s},{g},{r}]")
                    m.add(off <= (hi - lo) * streams)
                    m.add(self.buf[s, g] >= 2 * st.host_bytes[r] * streams)
        for nd in self.nodes:
            terms = [
                self.configs[g].size * self.coefs[g].streaming.host_bytes[r] * off
                for (s, g, r), off in self.off.items()
                if self.configs[g].node == nd
            ]
            if terms:
                self.m.add(sum(terms) <= host_capacity.get(nd, 0))

    def _streamed(self, s: int, g: int, field: str):
        """The streamed layers' share of a coefficient of stage s on configuration g (0 when it cannot stream)."""
        st = self.coefs[g].streaming
        if st is None:
            return 0
        return sum(getattr(st, field)[r] * self.off[s, g, r] for r in self.R)

    def _weights(self, s: int, g: int):
        k = self.coefs[g]
        held = (
            sum(k.weight_bytes[r] * self.n[s, g, r] for r in self.R)
            + self._extra(s, g, "weight_bytes") * self.use[s, g]
        )
        if k.streaming is None:
            return held
        return held - self._streamed(s, g, "host_bytes") + self.buf[s, g]

    def _kv(self, s: int, g: int):
        return sum(self.coefs[g].kv_bytes[r] * self.n[s, g, r] for r in self.R)

    def _memory(self) -> None:
        # Weights + the sequences' KV fit every GPU of every used configuration at this load.
        for s in self.S:
            for g in self.G:
                k = self.coefs[g]
                self.m.add(self._weights(s, g) + k.sequences * self._kv(s, g) <= k.capacity_bytes)

    def _stage_times(self) -> None:
        m, S, G = self.m, self.S, self.G
        on = {(s, nd): m.new_bool_var(f"on[{s},{nd}]") for s in S for nd in self.nodes}
        for s in S:
            for nd in self.nodes:
                m.add(on[s, nd] == sum(self.use[s, g] for g in G if self.configs[g].node == nd))
        self.T: list[Any] = []
        ttft_terms: list[Any] = []
        traffic_terms: list[Any] = []
        for s in S:
            t = [self.coefs[g].tpot_ns[r] * self.n[s, g, r] for g in G for r in self.R]
            t += [self._extra(s, g, "tpot_ns") * self.use[s, g] for g in G]
            t += [self._streamed(s, g, "tpot_ns") for g in G]
            ttft_terms += [self.coefs[g].ttft_ns[r] * self.n[s, g, r] for g in G for r in self.R]
            ttft_terms += [self._extra(s, g, "ttft_ns") * self.use[s, g] for g in G]
            ttft_terms += [self._streamed(s, g, "ttft_ns") for g in G]
            traffic_terms += [self.coefs[g].traffic_bytes[r] * self.n[s, g, r] for g in G for r in self.R]
            traffic_terms += [self._extra(s, g, "traffic_bytes") * self.use[s, g] for g in G]
            if s < self.pp - 1:
                # The hand-off to the next stage, priced by the pair of nodes the two stages run on.
                for a in self.nodes:
                    for bnode in self.nodes:
                        pair = m.new_bool_var(f"hop[{s},{a},{bnode}]")
                        m.add_bool_and([on[s, a], on[s + 1, bnode]]).only_enforce_if(pair)
                        m.add_bool_or([on[s, a].Not(), on[s + 1, bnode].Not(), pair])
                        t.append(self.hops.tpot_ns[a, bnode] * pair)
                        ttft_terms.append(self.hops.ttft_ns[a, bnode] * pair)
                traffic_terms.append(self.hops.traffic_bytes)
            tv = m.new_int_var(0, self.time_max, f"T[{s}]")
            m.add(tv == sum(t))
            self.T.append(tv)
        self.tpot = m.new_int_var(0, self.time_max, "tpot")
        m.add(self.tpot >= sum(self.T))
        self.slowest = m.new_int_var(0, self.time_max, "slowest")
        m.add_max_equality(self.slowest, self.T)
        m.add(self.tpot >= self.micro * self.slowest)
        self.prefill = m.new_int_var(0, self.time_max, "prefill")
        m.add(self.prefill == sum(ttft_terms))
        traffic_max = sum(abs(t) if isinstance(t, int) else 0 for t in traffic_terms)
        ks = self.coefs
        traffic_max += self.pp * (
            sum((hi - lo) * max(k.traffic_bytes[r] for k in ks) for r, (lo, hi) in enumerate(self.runs))
            + max(k.first.traffic_bytes for k in ks)
            + max(k.last.traffic_bytes for k in ks)
        )
        self.traffic = m.new_int_var(0, max(1, traffic_max), "traffic")
        m.add(self.traffic == sum(traffic_terms))

    # --- queries ---------------------------------------------------------------------------------
    # A query works on a copy of the built model (CpModel.clone; CP-SAT variables are indices, valid in the copy):
    # its incumbent bound, its objective and the capacity query's variables stay in the copy, so the built model
    # answers every query, in any order, as built.
    def _solve(self, m: Any, limits: SolverBudget) -> Any:
        solver = self.cp.CpSolver()
        solver.parameters.max_deterministic_time = max(0.05, limits.deterministic_s)
        wall = max(5.0, 10 * limits.deterministic_s)  # only a safety net
        solver.parameters.max_time_in_seconds = wall if limits.deadline is None else limits.deadline.wall_s(wall)
        solver.parameters.num_workers = limits.workers
        solver.parameters.random_seed = 0
        status = solver.solve(m)
        if solver.status_name(status) == "MODEL_INVALID":  # a bug, never an answer: say so, not infeasible
            raise RuntimeError(f"CP-SAT rejected the model: {m.validate()}")
        return solver, solver.status_name(status)

    def _outcome(self, solver: Any, status: str, objective: Any) -> Outcome:
        if status not in ("OPTIMAL", "FEASIBLE"):
            return Outcome("UNKNOWN" if status == "UNKNOWN" else "INFEASIBLE")
        stages, start = [], 0
        for s in self.S:
            g = next(g for g in self.G if solver.value(self.use[s, g]))
            end = solver.value(self.b[s + 1])
            streamed = tuple(solver.value(self.off[s, g, r]) if (s, g, r) in self.off else 0 for r in self.R)
            stages.append(SolvedStage(self.configs[g], start, end, streamed))
            start = end
        return Outcome(status, float(solver.value(objective)), float(solver.best_objective_bound), stages)

    def add_slos(self, tpot_slo_ns: int | None, ttft_slo_ns: int | None, ttft_fixed_ns: int, wait_milli: int) -> None:
        """TPOT and TTFT service levels at this load: TTFT = fixed + wait x TPOT + the prefill chain."""
        if tpot_slo_ns is not None:
            self.m.add(self.tpot <= tpot_slo_ns)
        if ttft_slo_ns is not None:
            self.m.add(1000 * (ttft_fixed_ns + self.prefill) + wait_milli * self.tpot <= 1000 * ttft_slo_ns)

    def minimize_tpot(self, limits: SolverBudget, incumbent: int | None = None) -> Outcome:
        """The least TPOT; with several stages, then the most balanced stages among plans of that TPOT."""
        m = self.m.clone()
        if incumbent is not None:
            m.add(self.tpot <= incumbent)
        m.minimize(self.tpot)
        solver, status = self._solve(m, limits)
        first = self._outcome(solver, status, self.tpot)
        if not first.found or self.pp == 1:
            return first
        if limits.deadline is not None and limits.deadline.expired:
            return first  # no time left to balance the stages: the least TPOT stands
        m.add(self.tpot <= int(first.value))
        m.minimize(self.slowest)
        solver, status = self._solve(m, limits)
        second = self._outcome(solver, status, self.tpot)
        if not second.found:
            return first
        second.status = "OPTIMAL" if first.status == status == "OPTIMAL" else "FEASIBLE"
        second.value, second.bound = first.value, first.bound
        return second

    def minimize_traffic(self, limits: SolverBudget, incumbent: int | None = None) -> Outcome:
        m = self.m.clone()
        if incumbent is not None:
            m.add(self.traffic <= incumbent)
        m.minimize(self.traffic)
        solver, status = self._solve(m, limits)
        return self._outcome(solver, status, self.traffic)

    def maximize_capacity(self, limits: SolverBudget) -> Outcome:
        """The most sequences a replica of this shape holds in memory (each GPU: its dp rank's share).
        Build the model with `memory_at_load=False` for this query."""
        m = self.m.clone()
        cap = m.new_int_var(0, CAPACITY_MAX, "capacity")
        for s in self.S:
            for g in self.G:
                k = self.coefs[g]
                q = m.new_int_var(0, CAPACITY_MAX, f"q[{s},{g}]")  # sequences per GPU rank
                kv = m.new_int_var(
                    0, sum(k.kv_bytes[r] * (hi - lo) for r, (lo, hi) in enumerate(self.runs)), f"kv[{s},{g}]"
                )
                m.add(kv == self._kv(s, g))
                prod = m.new_int_var(0, CAPACITY_MAX * max(1, sum(k.kv_bytes)) * self.L, f"qkv[{s},{g}]")
                m.add_multiplication_equality(prod, [q, kv])
                m.add(self._weights(s, g) + prod <= k.capacity_bytes).only_enforce_if(self.use[s, g])
                m.add(cap <= self.configs[g].layout.dp * q).only_enforce_if(self.use[s, g])
        m.maximize(cap)
        solver, status = self._solve(m, limits)
        return self._outcome(solver, status, cap)
