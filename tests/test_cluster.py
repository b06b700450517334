"""Throughput at scale (planner.solve.cluster, planner.solve.uniform) and the one deadline (planner.solve.deadline)."""

from __future__ import annotations

import pytest
import yaml

from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.hardware import load_topology, parse_topology
from planner.plan import Workload
from planner.resources import topologies_dir
from planner.solve import search, solve
from planner.solve.cluster import (
    _by_node,
    _piece_slots,
    _pieces,
    _pieces_fit,
    maximal_pieces,
    regular,
    replica_counts,
    replica_shapes,
)
from planner.solve.deadline import MIN_SOLVE_S, Deadline
from planner.solve.formulation import SolverBudget
from planner.solve.objectives import Request, ShapeSolver
from planner.solve.options import SolveOptions
from planner.solve.shapes import ShapeBounds, enumerate_shapes, shape_candidates
from planner.solve.uniform import uniform_capacity


def dgx_cluster(nodes: int):
    doc = yaml.safe_load((topologies_dir() / "4x8xh100-ib.yaml").read_text())
    doc["nodes"][0]["count"] = nodes
    doc["name"] = f"{nodes}x8xh100-ib"
    return parse_topology(yaml.safe_dump(doc), f"{nodes}x8xh100-ib.yaml")


@pytest.mark.parametrize(
    "model,topo_name,dtype", [("llama-8b", "2x8xh100-ib.yaml", "bf16"), ("deepseek-v3", "8xh200.yaml", "fp8")]
)
def test_uniform_capacity_equals_the_cp_sat_capacity_model(profiles, model, topo_name, dtype):
    """The greedy fill + bisection gives the same KV capacity as CP-SAT's maximize_capacity on every shape where all
    configurations hold the same bytes (uneven last stages included: llama-8b PP14 once disagreed)."""
    topo, prof = load_topology(topo_name), profiles(model)
    req = Request(
        profile=prof,
        topo=topo,
        workload=Workload(weight_dtype=dtype),
        constants=DEFAULT,
        options=SolveOptions(objective="throughput"),
    )
    ids = list(range(topo.n_gpus))
    checked = 0
    for shape in enumerate_shapes(
        prof, topo, ids, ShapeBounds(max_pp=16, max_tp=None, max_replicas=1, budget=len(ids), any_shape=False)
    )[:40]:
        sv = ShapeSolver(req, shape, shape_candidates(prof, topo, shape, None))
        if not sv.cands.configs:
            continue
        held = uniform_capacity(
            sv.cands.configs, sv.coefs(sv.op(1)), sv.cands.pools, runs=req.runs, n_layers=prof.n_layers, pp=shape.pp
        )
        if held is None:
            continue
        ref = sv.model(sv.op(1), memory_at_load=False).maximize_capacity(SolverBudget(2.0))
        assert ref.status in ("OPTIMAL", "INFEASIBLE")
        assert held == (int(ref.value) if ref.found else 0), shape.label
        checked += 1
    assert checked >= 10


def test_replica_counts_under_a_load_cap():
    assert replica_counts(64, None) == [64]
    # M = 10: R = 10 (1 each), 5 (2), 3 (3), 2 (5), 1 (10); R = 4 carries 2 each like R = 5, so it is not tried
    assert replica_counts(64, 10) == [10, 5, 3, 2, 1]
    assert replica_counts(3, 10) == [3, 2, 1]


def test_replica_shapes_do_not_grow_with_the_machine(profiles):
    """Only the replica's shape is searched: 128 and 4,096 GPUs offer the same shapes, at more replicas."""
    prof = profiles("llama-70b")

    def shapes(nodes):
        topo = dgx_cluster(nodes)
        ids = list(range(topo.n_gpus))
        assert regular(topo, ids)
        return replica_shapes(
            prof,
            topo,
            ids,
            ShapeBounds(max_pp=16, max_tp=None, max_replicas=len(ids), budget=len(ids), any_shape=False),
            None,
        )

    small, big = shapes(16), shapes(512)  # 16 nodes hold the deepest replica (PP16 x TP8)
    assert {(r.shape.pp, r.shape.layout) for r in small} == {(r.shape.pp, r.shape.layout) for r in big}
    assert len(big) <= 2 * len({(r.shape.pp, r.shape.layout) for r in big})  # packed, and pieces where they fit more
    tp8 = next(r for r in big if r.shape.pp == 1 and r.shape.gpus == 8)
    assert tp8.shape.replicas == 512 and tp8.exact


def test_pieces_tile_nodes_and_map_route_for_route():
    """14 GPUs of TP2 stages = 8 + 4 + 2: pieces of one size tile their nodes, so 64 nodes hold 36 replicas
    (64 x 8 / 14 = 36.6), not the 32 that one 14-GPU slot per two nodes gives."""
    topo = dgx_cluster(64)
    nodes = list(_by_node(topo, list(range(topo.n_gpus))).values())
    pieces = _pieces(8, 14, 2)
    assert pieces == [8, 4, 2]
    assert _pieces_fit(64, 8, pieces, 512 // 14) == 36
    system = _piece_slots(topo, nodes, pieces, 36)
    assert system is not None and system.replicas == 36
    used = [g for slot in system.slots for g in slot]
    assert len(used) == len(set(used)) == 36 * 14
    assert _pieces(8, 6, 4) is None  # 6 = 4 + 2, but a TP4 stage cannot run on a 2-GPU piece


def test_pieces_of_different_replicas_share_nodes():
    """7 GPUs of TP1 stages = 4 + 2 + 1 on 64 nodes: 512 // 7 = 73 replicas (511 GPUs), as pieces of different
    replicas share nodes (one piece size per node held 72: 37 + 19 + 10 = 66 nodes for 73); each replica's three
    pieces lie on three nodes, so every slot is isomorphic to slot 0."""
    topo = dgx_cluster(64)
    nodes = list(_by_node(topo, list(range(topo.n_gpus))).values())
    pieces = _pieces(8, 7, 1)
    assert pieces == [4, 2, 1]
    assert _pieces_fit(64, 8, pieces, 512 // 7) == 73
    system = _piece_slots(topo, nodes, pieces, 73)
    assert system is not None and system.replicas == 73
    used = [g for slot in system.slots for g in slot]
    assert len(used) == len(set(used)) == 73 * 7
    for slot in system.slots:
        per_node = sorted(sum(1 for g in slot if topo.gpus[g].node == nd) for nd in {topo.gpus[g].node for g in slot})
        assert per_node == [1, 2, 4]


def test_maximal_pieces_cover_every_placement():
    """The ways 14 GPUs of TP1 stages lie on 8-GPU nodes, up to refinement: 8 + 6, 7 + 7 and 5 + 5 + 4 (any other
    way merges into one of them: 8 + 4 + 2 into 8 + 6, 4 + 4 + 4 + 2 into 8 + 6); with TP2 stages, even parts only."""
    assert maximal_pieces(14, 8, 1) == [(8, 6), (7, 7), (5, 5, 4)]
    assert maximal_pieces(12, 8, 2) == [(8, 4), (6, 6)]
    assert maximal_pieces(7, 8, 1) == [(7,)]


def test_cluster_throughput_is_optimal_at_512_gpus(profiles):
    """64 DGX H100 nodes, llama-70b, throughput: OPTIMAL with no gap (the bound of every shape whose packed slots
    hold fewer than budget // size replicas is that count x one replica's best on any slot, planner.solve.cluster.
    placement_bound; it read 2.4% before), and R replicas serve R times one replica's share."""
    plan = solve(
        profiles("llama-70b"),
        dgx_cluster(64),
        Workload(),
        options=SolveOptions(objective="throughput", time_limit_s=600, top=0),
    )
    assert plan.solver.status == "OPTIMAL" and plan.solver.gap == 0.0
    assert plan.solver.best_bound == pytest.approx(plan.solver.objective_value, rel=1e-9)
    assert plan.partition.replicas * plan.partition.stages[0].tp * len(plan.partition.stages) <= 512


def test_cluster_throughput_equals_the_shape_search(profiles, monkeypatch):
    """On one DGX node the replica-class path and the full shape search (every R, every slot system) agree on
    the optimum, and R replicas serve R times what one replica serves at its share of the load."""
    topo = load_topology("8xh100.yaml")
    prof = profiles("llama-8b")
    w = Workload(isl=1024, osl=256)
    opts = SolveOptions(objective="throughput", max_pp=2, top=0, time_limit_s=60, tpot_slo_ms=20)
    fast = solve(prof, topo, w, options=opts)
    monkeypatch.setattr(search, "regular", lambda *a: False)
    full = solve(prof, topo, w, options=opts)
    assert fast.solver.status == "OPTIMAL" and full.solver.status == "OPTIMAL"
    assert fast.prediction.tokens_per_s == pytest.approx(full.prediction.tokens_per_s, rel=1e-9)
    part = fast.partition
    one = part.model_copy(update={"replicas": 1, "replica_gpu_ids": []})
    per = fast.prediction.concurrency // part.replicas
    single = estimate(prof, topo, one, workload=w.model_copy(update={"concurrency": per}), c=DEFAULT, check=False)
    assert fast.prediction.tokens_per_s == pytest.approx(part.replicas * single.tokens_per_s, rel=1e-9)


def test_time_limit_holds_on_a_hard_instance(profiles, monkeypatch):
    """A throughput solve on an irregular machine (H100 and A100 nodes, the full shape search: max_replicas keeps
    it off the fleet path; minutes without a limit) with a 2 s limit: once a first plan exists, every CP-SAT call
    is given at most the search time left (at least one presolve, MIN_SOLVE_S), and shapes left are cut short
    with a FEASIBLE answer. Checked on the deadline's own accounting, not on the process's wall time (the shared CI
    machine, at load 22, stretched the 0.1 s overrun measured on a quiet machine to 0.9 s)."""
    calls = []
    wall_s = Deadline.wall_s

    def logged(self, seconds):
        armed, left = self.armed, self.remaining_s()  # before the call: what is left can only shrink
        given = wall_s(self, seconds)
        calls.append((armed, left, given))
        return given

    monkeypatch.setattr(Deadline, "wall_s", logged)
    topo = load_topology("h100-a100-ib.yaml")
    plan = solve(
        profiles("llama-70b"),
        topo,
        Workload(),
        options=SolveOptions(objective="throughput", time_limit_s=2.0, top=0, max_replicas=16),
    )
    armed = [(left, given) for was_armed, left, given in calls if was_armed]
    assert all(given <= max(MIN_SOLVE_S, left) + 1e-6 for left, given in armed)
    assert plan.solver.status == "FEASIBLE" and "the time limit" in (plan.solver.note or "")
    if plan.solver.status == "FEASIBLE" and plan.solver.best_bound is not None:
        assert plan.solver.best_bound <= plan.solver.objective_value


def test_deadline_is_armed_by_the_first_plan():
    d = Deadline(0.0)
    assert not d.expired and d.wall_s(3.0) == 3.0  # no plan yet: the search goes on
    d.arm()
    assert d.expired and d.wall_s(3.0) <= 0.01 + 1e-9


def test_a_spent_listing_deadline_still_lists_one_replica(profiles):
    """The listing's deadline ends it at the next replica count, never before the first: a --time-limit shorter
    than the listing itself still leaves one replica's shapes to solve (it once left none: InfeasibleError)."""
    topo, prof = load_topology("2x8xh100-ib"), profiles("llama-8b")
    ids = list(range(topo.n_gpus))
    shapes = enumerate_shapes(
        prof,
        topo,
        ids,
        ShapeBounds(max_pp=2, max_tp=None, max_replicas=4, budget=len(ids), any_shape=False),
        stop=lambda: True,
    )
    assert shapes and {s.replicas for s in shapes} == {1}


def test_fleet_sums_one_best_plan_per_node_type(profiles):
    """h100-a100-ib (one DGX H100 and one DGX A100 node), llama-70b, throughput: each node type's own best plan,
    summed; each part is what a solve on that type's GPUs alone gives, and the plan shown is the larger part."""
    topo, prof = load_topology("h100-a100-ib.yaml"), profiles("llama-70b")
    opts = SolveOptions(objective="throughput", time_limit_s=60, top=0)
    plan = solve(prof, topo, Workload(), options=opts)
    assert plan.fleet is not None and [p.gpu_type.split("-")[0] for p in plan.fleet.parts] == ["H100", "A100"]
    alone = [
        solve(prof, topo, Workload(), options=opts.model_copy(update={"gpu_ids": ids}))
        for ids in (list(range(8)), list(range(8, 16)))
    ]
    for part, one in zip(plan.fleet.parts, alone):
        assert part.tokens_per_s == pytest.approx(one.prediction.tokens_per_s, rel=1e-9)
        assert part.shape == one.partition.shape and part.status == one.solver.status == "OPTIMAL"
    assert plan.fleet.tokens_per_s == pytest.approx(sum(p.prediction.tokens_per_s for p in alone), rel=1e-9)
    assert plan.fleet.status == "OPTIMAL" and plan.fleet.gap == pytest.approx(0.0, abs=1e-9)
    assert plan.prediction.tokens_per_s == max(p.tokens_per_s for p in plan.fleet.parts)
    assert {topo.gpus[g].spec.name for st in plan.stages for g in st.gpu_ids} == {"H100-SXM5-80GB"}


def test_fleet_gives_way_where_a_type_holds_no_replica(profiles):
    """llama-405b in bf16 (810 GB) fits neither 8-GPU node alone: no fleet; the search spans both types."""
    topo = load_topology("h100-a100-ib.yaml")
    plan = solve(
        profiles("llama-405b"), topo, Workload(), options=SolveOptions(objective="throughput", time_limit_s=3, top=0)
    )
    assert plan.fleet is None
    assert len({topo.gpus[g].spec.name for st in plan.stages for g in st.gpu_ids}) == 2


def test_wide_ep_across_nodes_is_considered_and_launches(profiles):
    """Issue 24's acceptance command: DeepSeek-V3 fp8 on four DGX H100 nodes, throughput under TPOT 50 ms. Wide EP
    (one stage over whole nodes, DP attention on every GPU, EP over all of them) is priced beside the per-node
    plans, the answer says whether it beats them, and the plan's figures are the estimate's of its partition; its
    vLLM and SGLang scripts carry the multi-node data-parallel flags, each flag one the engine's parser knows."""
    from planner.launch import render

    from .test_launch import commands, engine_flags, flags_of

    prof, topo = profiles("deepseek-v3"), load_topology("4x8xh100-ib")
    w = Workload(weight_dtype="fp8", isl=2048, osl=512)
    plan = solve(prof, topo, w, options=SolveOptions(objective="throughput", tpot_slo_ms=50, top=3))
    assert "wide EP:" in plan.solver.note and ("does not beat" in plan.solver.note or "beats" in plan.solver.note)
    shapes = {a.shape for a in plan.alternatives} | {plan.partition.shape}
    assert "DP32+EP32 x PP1 x R1" in shapes  # EP32 with DP attention across the four nodes was considered
    ref = estimate(
        prof,
        topo,
        plan.partition,
        workload=w.model_copy(update={"concurrency": plan.prediction.concurrency}),
        c=resolve_constants(DEFAULT, w.engine),
        check=False,
    )
    assert plan.prediction.tokens_per_s == pytest.approx(ref.tokens_per_s, rel=1e-9) and ref.tpot_ms <= 50
    (st,) = plan.stages if len(plan.stages) == 1 else (None,)
    if st is not None and st.dp > 8:  # wide EP won: one stage over several nodes
        assert "beats" in plan.solver.note and "does not beat" not in plan.solver.note
        assert len({topo.gpus[g].node for g in st.gpu_ids}) == st.dp // 8
        for engine, flags in (
            (
                "vllm",
                {
                    "--data-parallel-size-local",
                    "--data-parallel-start-rank",
                    "--data-parallel-address",
                    "--data-parallel-rpc-port",
                },
            ),
            (
                "sglang",
                {
                    "--nnodes",
                    "--node-rank",
                    "--dist-init-addr",
                    "--enable-dp-attention",
                    "--ep-size",
                    "--moe-a2a-backend",
                },
            ),
        ):
            argvs = [a for sc in render(plan, engine).scripts.values() for a in commands(sc, engine)]
            assert len(argvs) == plan.replicas * st.dp // 8
            assert all(flags <= set(flags_of(a)) and set(flags_of(a)) <= engine_flags(engine) for a in argvs)
