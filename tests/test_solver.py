"""The solver on shipped and user-described machines: placements, layer splits, status, determinism.

Exactness against exhaustive enumeration lives in test_solver_oracle.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from planner.cost.estimate import estimate
from planner.hardware import load_topology, nvlink_links, parse_topology
from planner.plan import Workload, partition_from_counts
from planner.solve import solve
from planner.solve.candidates import symmetric
from planner.solve.options import SolveOptions
from planner.solve.slots import isomorphism_map

REPO = Path(__file__).resolve().parent.parent


def crossed_pairs():
    """8xh100-pcie-nvlink-pairs with the bridges over non-adjacent slots: (0,2) (1,3) (4,6) (5,7), so every
    bridged pair sits behind two different PCIe switches (issue 12's example)."""
    doc = yaml.safe_load((REPO / "topologies" / "8xh100-pcie-nvlink-pairs.yaml").read_text())
    doc["name"] = "crossed"
    doc["nodes"][0]["nvlink"] = [
        {"gpus": list(p), "links": 12, "link_bandwidth": "25GB/s", "latency": "1us"}
        for p in ((0, 2), (1, 3), (4, 6), (5, 7))
    ]
    return yaml.safe_dump(doc)


def test_two_gpus_of_a_crossed_box_are_a_bridged_pair(profiles, tmp_path, cli):
    f = tmp_path / "cross.yaml"
    f.write_text(crossed_pairs())
    code, out, err = cli("solve", "--model", "llama-8b", "--topology", str(f), "--gpus", "2", "--json")
    assert code == 0, err
    plan = json.loads(out)
    ids = [g for s in plan["stages"] for g in s["gpu_ids"]]
    topo = load_topology(str(f))
    assert len(ids) == 2 and nvlink_links(topo, *ids) == 12, ids
    assert plan["solver"]["status"] == "OPTIMAL"
    # the same pair over PCIe is slower: the solver's choice beats estimate's of GPUs 0,1
    pcie = estimate(profiles("llama-8b"), topo, partition_from_counts([32], [0, 1], 2), workload=Workload())
    assert plan["prediction"]["tpot_ms"] < pcie.tpot_ms


def test_llama70b_on_8xh100_is_one_tp8_stage(profiles):
    plan = solve(profiles("llama-70b"), load_topology("8xh100"), Workload(concurrency=1))
    assert [(s.tp, s.layer_start, s.layer_end) for s in plan.stages] == [(8, 0, 80)]
    assert plan.replicas == 1 and plan.solver.status == "OPTIMAL"
    assert plan.alternatives and all(a.prediction.tpot_ms >= plan.prediction.tpot_ms for a in plan.alternatives)
    again = estimate(profiles("llama-70b"), load_topology("8xh100"), plan.partition, workload=Workload(concurrency=1))
    assert again.tpot_ms == pytest.approx(plan.prediction.tpot_ms, rel=1e-12)


def test_throughput_on_two_nodes_keeps_tp_inside_nodes(profiles):
    topo = load_topology("2x8xh100-ib")
    plan = solve(profiles("llama-70b"), topo, Workload(), options=SolveOptions(objective="throughput", time_limit_s=60))
    groups = [st.gpu_ids for st in plan.stages] + [g for rep in plan.replica_gpu_ids for g in rep]
    assert plan.prediction.fits and plan.prediction.concurrency > 1
    for ids in groups:
        assert len({topo.gpus[i].node for i in ids}) == 1, ids


def test_heterogeneous_split_is_uneven_and_beats_even(profiles):
    """405B in bf16 needs both nodes of h100-a100-ib; the H100 stage reads faster, so it takes more layers."""
    p = profiles("llama-405b")
    topo = load_topology("h100-a100-ib")
    w = Workload(concurrency=8, isl=1024, osl=256)
    plan = solve(p, topo, w, options=SolveOptions(max_tp=8, max_pp=2, time_limit_s=60))
    assert len(plan.stages) == 2
    h100 = next(s for s in plan.stages if topo.gpus[s.gpu_ids[0]].spec.name.startswith("H100"))
    a100 = next(s for s in plan.stages if topo.gpus[s.gpu_ids[0]].spec.name.startswith("A100"))
    assert h100.n_layers > a100.n_layers
    even = estimate(
        p, topo, partition_from_counts([63, 63], [s for st in plan.stages for s in st.gpu_ids], 8), workload=w
    )
    assert plan.prediction.tpot_ms < even.tpot_ms


def test_throughput_moves_layers_off_embedding_and_head_stages(profiles):
    """Llama-3.1-70B fp8 on 4xl40s at 60% of each GPU, four pipeline stages (TP1): the largest load is
    reached by giving the embedding and lm_head stages fewer layers (they hold 2 GB more weights)."""
    p = profiles("llama-70b")
    topo = load_topology("4xl40s")
    # Moving one layer (0.86 GB fp8 + its KV) off an end stage gains sequences only while the GPU's usable bytes U
    # are under ~21 x the 2.1 GB bf16 embedding (U/21 > (U - 2.1 GB)/20): vLLM's 0.66 GB reserve and the 0.8 GB CUDA
    # context give U = 0.9 x (48.31 - 0.8) - 0.66 = 42.1 GB at the default fraction, where 19/21 and 20/20 both hold
    # 30 sequences at 8k contexts. At gpu_memory_fraction 0.6, U = 0.6 x (48.31 - 0.8) - 0.66 = 27.84 GB; a sequence
    # of 2,048 + 1,024 tokens holds 3,072 x 4,096 B = 12.58 MB of KV per layer:
    #   even 20/20/20/20: end stage (27.84 - 19.21) / (20 x 12.58 MB) = 34.3 -> 34 (middle 42)
    #   19/21/21/19:      end (27.84 - 18.36) / (19 x 12.58 MB) = 39.7 -> 39, middle (27.84 - 17.97) / (21 x 12.58 MB)
    #                     = 37.4 -> 37, so 37 > 34
    w = Workload(weight_dtype="fp8", isl=2048, osl=1024, gpu_memory_fraction=0.6)
    plan = solve(p, topo, w, options=SolveOptions(objective="throughput", max_tp=1, max_replicas=1))
    counts = plan.partition.layer_counts()
    assert len(counts) == 4 and counts[0] < max(counts) and counts[-1] < max(counts)
    even = estimate(p, topo, partition_from_counts([20] * 4, [0, 1, 2, 3], 1), workload=w)
    assert even.max_concurrency == 34  # the hand calculation above
    assert plan.prediction.concurrency > even.max_concurrency


def test_symmetric_nodes_and_isomorphic_slots():
    h100, pairs = load_topology("8xh100"), load_topology("8xh100-pcie-nvlink-pairs")
    assert symmetric(h100, list(range(8))) and not symmetric(pairs, list(range(8)))
    assert symmetric(pairs, [0, 1])  # one bridged pair: two alike GPUs joined the same way
    # a bridged pair maps onto another bridged pair, route for route; not onto a PCIe pair
    assert isomorphism_map(pairs, (0, 1), (6, 7)) == {0: 6, 1: 7}
    assert isomorphism_map(pairs, (0, 1), (1, 2)) is None
    # across sockets is not within a socket
    assert isomorphism_map(pairs, (0, 2), (0, 4)) is None
    assert isomorphism_map(pairs, (0, 2), (5, 7)) is not None


def test_replica_slots_need_not_include_the_class_representative():
    """Bridges on (0,1), (0,2), (1,3): the bridged pairs form one class whose first member (0,1) overlaps
    both others, yet (0,2) and (1,3) carry two replicas. The oracle found this (a random 8-GPU box)."""
    from planner.solve.slots import slot_systems

    doc = yaml.safe_load(crossed_pairs())
    node = doc["nodes"][0]
    node.update(gpus={"type": "H100-PCIe-80GB", "count": 4}, sockets=1)
    node.pop("socket_link", None)
    node.pop("p2p_level", None)
    node["pcie_switches"] = [
        {"name": "sw0", "socket": 0, "gpus": [0, 1, 2, 3], "bandwidth": "63GB/s", "uplink": "63GB/s", "latency": "1us"}
    ]
    node["nvlink"] = [
        {"gpus": list(p), "links": 12, "link_bandwidth": "25GB/s", "latency": "1us"} for p in ((0, 1), (0, 2), (1, 3))
    ]
    topo = parse_topology(yaml.safe_dump(doc), "chain.yaml")
    systems, exact = slot_systems(topo, [0, 1, 2, 3], 2, 2)
    assert exact
    bridged = [s for s in systems if all(nvlink_links(topo, *slot) == 12 for slot in s.slots)]
    assert [s.slots for s in bridged] == [((0, 2), (1, 3))]
    assert bridged[0].maps[1] in ({0: 1, 2: 3}, {0: 3, 2: 1})


def test_nothing_fits_exit_2_with_suggestions(cli):
    code, _, err = cli("solve", "--model", "llama-405b", "--topology", "8xh100")
    assert code == 2 and "short by" in err and "--weight-dtype fp8" in err


def test_solve_is_deterministic(cli):
    outs = []
    for _ in range(2):
        code, out, _ = cli(
            "solve", "--model", "llama-70b", "--topology", "8xh100-pcie-nvlink-pairs", "--concurrency", "16", "--json"
        )
        assert code == 0
        data = json.loads(out)
        data["solver"].pop("wall_time_s")
        outs.append(json.dumps(data, sort_keys=True))
    assert outs[0] == outs[1]


def test_cli_solve_writes_plan(cli, tmp_path):
    out = tmp_path / "plan.json"
    code, stdout, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2", "-o", str(out))
    assert code == 0, err
    plan = json.loads(out.read_text())
    assert plan["solver"]["status"] == "OPTIMAL" and plan["inputs"]["topology"] == "8xh100"
    assert sorted(g for s in plan["stages"] for g in s["gpu_ids"]) == [0, 1]  # any two alike GPUs: the first two
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "9")
    assert code == 1 and "has 8 GPUs" in err


def test_emit_needs_a_folder(cli):
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--emit", "vllm")
    assert code == 1 and "-o FOLDER" in err
