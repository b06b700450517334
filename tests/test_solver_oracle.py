"""OPTIMAL means optimal: the solver against exhaustive enumeration on random irregular machines.

Machines: one or two nodes of 2-8 GPUs (two nodes: 2-4 each, to keep enumeration exhaustive),
random NVLink pairings and bond widths, PCIe switch layouts, one or two sockets, peer-to-peer off for
some pairs or beyond a p2p_level, mixed GPU types, sometimes an NVSwitch node (a symmetric pool). For each objective the
solver must say OPTIMAL and match the best plan found by enumerating every plan (tests/oracle.py).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from planner.cost.estimate import estimate
from planner.errors import InfeasibleError
from planner.hardware import parse_topology
from planner.plan import Workload
from planner.solve import solve
from planner.solve.objectives import ShapeResult
from planner.solve.options import SolveOptions
from planner.solve.search import _status

from .oracle import CONSTANTS, Oracle, fixed_load, machine_yaml, throughput, tiny_model

TYPES = ["tiny-a", "tiny-b"]


@st.composite
def node(draw, name: str, n: int):
    types = [draw(st.sampled_from(TYPES)) if draw(st.booleans()) else TYPES[0] for _ in range(n)]
    if n >= 2 and draw(st.integers(0, 4)) == 0:  # an NVSwitch node: every GPU alike
        return {
            "name": name,
            "gpus": {"type": types[0], "count": n},
            "nvswitch": {"bandwidth": "200GB/s", "latency": "2us"},
            "pcie": {"bandwidth": "32GB/s", "latency": "2us"},
            "nics": [{"name": "nic0", "bandwidth": "200Gb/s", "latency": "2us"}],
        }
    sockets = draw(st.integers(1, 2)) if n > 2 else 1
    switches, i = [], 0
    while i < n:
        size = draw(st.integers(1, 3))
        switches.append(list(range(i, min(n, i + size))))
        i += size
    doc = {
        "name": name,
        "gpus": [{"index": k, "type": t} for k, t in enumerate(types)],
        "sockets": sockets,
        "pcie_switches": [
            {
                "name": f"sw{k}",
                "socket": k * sockets // len(switches),
                "gpus": g,
                "bandwidth": draw(st.sampled_from(["16GB/s", "32GB/s", "63GB/s"])),
                "uplink": "63GB/s",
                "latency": "1us",
                "nics": ["nic0"] if k == 0 else [],
            }
            for k, g in enumerate(switches)
        ],
        "nics": [{"name": "nic0", "bandwidth": "200Gb/s", "latency": "2us"}],
    }
    if sockets > 1:
        doc["socket_link"] = {"bandwidth": "40GB/s", "latency": "1us"}
    level = draw(st.sampled_from(["sys", "sys", "phb", "pxb"]))  # NCCL's peer-to-peer reach (pxb on Intel)
    if level != "sys":
        doc["p2p_level"] = level
    bonds = [
        {"gpus": [a, b], "links": draw(st.sampled_from([1, 4, 12])), "link_bandwidth": "25GB/s", "latency": "1us"}
        for a in range(n)
        for b in range(a + 1, n)
        if draw(st.integers(0, 3)) == 0
    ]
    if bonds:
        doc["nvlink"] = bonds
    off = [[a, b] for a in range(n) for b in range(a + 1, n) if draw(st.integers(0, 5)) == 0]
    if off:
        doc["no_p2p"] = off
    return doc


@st.composite
def machines(draw):
    two = draw(st.booleans())
    sizes = [draw(st.integers(2, 4)), draw(st.integers(2, 4))] if two else [draw(st.integers(2, 8))]
    nodes = [draw(node(f"n{k}", n)) for k, n in enumerate(sizes)]
    return parse_topology(machine_yaml(nodes, network=two), "random.yaml")


def _limits(topo) -> tuple[int, int]:
    """Pipeline depth and replicas the enumeration covers on this machine (kept exhaustive and quick)."""
    n = topo.n_gpus
    return (3 if n <= 4 else 2), (n if n <= 4 else 2)


def _agree_with_estimate(profile, topo, plan, load: int) -> None:
    again = estimate(
        profile,
        topo,
        plan.partition,
        workload=plan.inputs.workload.model_copy(update={"concurrency": load}),
        c=CONSTANTS,
    )
    assert again.tpot_ms == pytest.approx(plan.prediction.tpot_ms, rel=1e-9)


# No shrinking: a failing example is reported with its machine as YAML (shrinking these takes minutes).
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _yaml(topo) -> str:
    return topo.text


def _solve_like_brute(profile, topo, w, brute, **kw):
    """The solver's plan, which must say OPTIMAL; or None where brute force found no plan and the solver refused too."""
    options = SolveOptions(time_limit_s=30, top=0, **kw)
    if brute is None:  # nothing fits: the solver says so (exit 2), not any other error
        with pytest.raises(InfeasibleError):
            solve(profile, topo, w, options=options, constants=CONSTANTS)
        return None
    plan = solve(profile, topo, w, options=options, constants=CONSTANTS)
    assert plan.solver.status == "OPTIMAL", plan.solver
    return plan


@pytest.mark.parametrize("objective", ["latency", "traffic"])
def test_fixed_load_objectives_equal_brute_force(objective):
    @settings(max_examples=110, **SETTINGS)
    @given(
        topo=machines(),
        n_layers=st.integers(3, 6),
        concurrency=st.integers(1, 6),
        isl=st.sampled_from([16, 512, 4096]),
        dense=st.sampled_from([0, 0, 2]),
        slo=st.sampled_from([None, None, 0.05, 0.2]),
    )
    def check(topo, n_layers, concurrency, isl, dense, slo):
        profile = tiny_model(n_layers, dense)
        w = Workload(concurrency=concurrency, isl=isl, osl=64)
        max_pp, max_r = _limits(topo)
        tpot_slo = None if slo is None or objective == "traffic" else slo
        brute = fixed_load(Oracle(profile, topo, w), objective, max_pp, max_r, tpot_slo_ms=tpot_slo)
        plan = _solve_like_brute(
            profile, topo, w, brute, objective=objective, max_pp=max_pp, max_replicas=max_r, tpot_slo_ms=tpot_slo
        )
        if plan is None:
            return
        if objective == "latency":
            assert plan.prediction.tpot_ms / 1e3 == pytest.approx(brute.value, rel=1e-6, abs=50e-9)
        else:
            assert plan.prediction.critical_path_bytes_per_token == pytest.approx(brute.value, rel=1e-6, abs=64)
        _agree_with_estimate(profile, topo, plan, concurrency)

    check()


def test_throughput_equals_brute_force():
    @settings(max_examples=100, **SETTINGS)
    @given(
        topo=machines(),
        n_layers=st.integers(3, 5),
        isl=st.sampled_from([16, 512, 4096]),
        slo=st.sampled_from([None, None, 0.05, 0.2]),
        ttft=st.sampled_from([None, None, 2.0]),
    )
    def check(topo, n_layers, isl, slo, ttft):
        profile = tiny_model(n_layers)
        w = Workload(isl=isl, osl=64)
        max_pp, max_r = _limits(topo)
        brute = throughput(Oracle(profile, topo, w), max_pp, max_r, tpot_slo_ms=slo, ttft_slo_ms=ttft)
        plan = _solve_like_brute(
            profile,
            topo,
            w,
            brute,
            objective="throughput",
            max_pp=max_pp,
            max_replicas=max_r,
            tpot_slo_ms=slo,
            ttft_slo_ms=ttft,
        )
        if plan is None:
            return
        assert plan.prediction.tokens_per_s == pytest.approx(brute.value, rel=1e-6), (
            _yaml(topo),
            plan.partition,
            plan.prediction.concurrency,
            brute.partition,
            brute.load,
        )
        assert plan.prediction.concurrency == brute.load
        assert plan.prediction.tokens_per_s == pytest.approx(
            plan.prediction.concurrency * 1000 / plan.prediction.tpot_ms
        )
        _agree_with_estimate(profile, topo, plan, plan.prediction.concurrency)

    check()


def test_time_limit_gives_feasible_with_a_valid_bound(profiles):
    """A solve cut short says FEASIBLE with a bound no plan beats: the optimum a full solve proves
    lies between the bound and the short run's plan. (Two crossed-bridge PCIe boxes, 16 GPUs.)"""
    import yaml

    from .test_solver import crossed_pairs

    doc = yaml.safe_load(crossed_pairs())
    node = doc["nodes"][0]
    node.update(count=2, nics=[{"name": "nic0", "bandwidth": "400Gb/s", "latency": "2us"}])
    node["pcie_switches"][0]["nics"] = ["nic0"]
    doc["network"] = {"bandwidth": "400Gb/s", "latency": "3us"}
    topo = parse_topology(yaml.safe_dump(doc), "two-crossed-boxes.yaml")
    w = Workload(concurrency=64)
    kw = dict(top=0, any_shape=True, max_replicas=1, max_pp=3)  # deeper pipelines take minutes to prove
    short = solve(profiles("llama-70b"), topo, w, options=SolveOptions(time_limit_s=0.001, **kw))
    full = solve(profiles("llama-70b"), topo, w, options=SolveOptions(time_limit_s=120, **kw))
    assert short.solver.status == "FEASIBLE" and short.solver.gap > 0
    assert full.solver.status == "OPTIMAL"
    assert short.solver.best_bound <= full.prediction.tpot_ms + 1e-6 <= short.prediction.tpot_ms + 2e-6


def test_a_shape_cut_before_any_bound_leaves_an_honest_gap():
    """A deadline can end a shape before CP-SAT proves any bound (a 1 ms limit on a loaded machine did, and the
    answer then had no gap): TPOT and bytes per token are never negative, so 0 is the honest bound and the gap is
    100%; minus tokens/s has no such floor, so a throughput answer states none."""
    done = ShapeResult(None, "OPTIMAL", score=5.0, bound=5.0)  # type: ignore[arg-type]
    cut = ShapeResult(None, "UNKNOWN")  # type: ignore[arg-type]
    assert _status([done], [done, cut], exact=True) == ("FEASIBLE", 0.0, 1.0)
    assert _status([done], [done], exact=True) == ("OPTIMAL", 5.0, 0.0)
    fast = ShapeResult(None, "OPTIMAL", score=-100.0, bound=-100.0)  # type: ignore[arg-type]
    assert _status([fast], [fast, cut], exact=True) == ("FEASIBLE", None, None)


def tier_machine(
    n: int, kind: str, capacity: str, host_bandwidth: str, sockets: int = 1, switch_bandwidth: str = "32GB/s"
):
    """One PCIe node of n small GPUs behind one or two switches, with a host-memory tier."""
    switches = [list(range(0, (n + 1) // 2)), list(range((n + 1) // 2, n))] if n > 1 else [[0]]
    doc = {
        "name": "tier",
        "gpus": [{"index": k, "type": kind} for k in range(n)],
        "sockets": sockets,
        "pcie_switches": [
            {
                "name": f"sw{k}",
                "socket": k * sockets // 2,
                "gpus": g,
                "bandwidth": switch_bandwidth,
                "uplink": "32GB/s",
                "latency": "1us",
            }
            for k, g in enumerate(switches)
            if g
        ],
        "host_memory": {"capacity": capacity, "bandwidth": host_bandwidth},
    }
    if sockets > 1:
        doc["socket_link"] = {"bandwidth": "40GB/s", "latency": "1us"}
    return parse_topology(machine_yaml([doc], network=False), "tier.yaml")


@st.composite
def tier_machines(draw):
    """1-4 tiny GPUs with a host-memory tier: the weights need it or nearly so."""
    n = draw(st.integers(1, 4))
    return tier_machine(
        n,
        draw(st.sampled_from(["tiny-s", "tiny-m"])),
        draw(st.sampled_from(["20MB", "60MB", "1GB"])),
        draw(st.sampled_from(["20GB/s", "200GB/s"])),
        sockets=draw(st.integers(1, 2)) if n > 1 else 1,
        switch_bandwidth=draw(st.sampled_from(["16GB/s", "32GB/s"])),
    )


def test_offload_equals_brute_force():
    """solve --offload against every plan with every subset of each stage's layers streamed from host memory."""
    streamed = []

    # one tiny-m GPU cannot hold these models: every plan streams (checked by brute force, probe of all four)
    @example(topo=tier_machine(1, "tiny-m", "60MB", "200GB/s"), n_layers=3, concurrency=1, isl=16, dense=2)
    @example(topo=tier_machine(1, "tiny-m", "1GB", "20GB/s"), n_layers=6, concurrency=4, isl=512, dense=0)
    @settings(max_examples=60, **SETTINGS)
    @given(
        topo=tier_machines(),
        n_layers=st.integers(3, 6),
        concurrency=st.integers(1, 4),
        isl=st.sampled_from([16, 512]),
        dense=st.sampled_from([0, 2]),
    )
    def check(topo, n_layers, concurrency, isl, dense):
        profile = tiny_model(n_layers, dense)
        w = Workload(concurrency=concurrency, isl=isl, osl=64)
        max_pp, max_r = _limits(topo)
        brute = fixed_load(Oracle(profile, topo, w, offload=True), "latency", max_pp, max_r)
        plan = _solve_like_brute(
            profile, topo, w, brute, objective="latency", max_pp=max_pp, max_replicas=max_r, offload=True
        )
        if plan is None:
            return
        assert plan.prediction.tpot_ms / 1e3 == pytest.approx(brute.value, rel=1e-6, abs=50e-9), (
            _yaml(topo),
            plan.partition,
            brute.partition,
        )
        _agree_with_estimate(profile, topo, plan, concurrency)
        streamed.append(any(st.offload_layers for st in plan.partition.stages))

    check()
    # the two explicit machines stream; of the 60 drawn, a handful more (the draw is fixed by the test's source)
    assert sum(streamed) >= 5, streamed
