"""`planner validate` with gloo on CPU: TP, PP, TP x PP and uneven stages, faults, two torchrun agents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Partition, SolverInfo, Stage, Workload, build_plan, make_partition
from planner.validate.runner import validate

from ..conftest import alive, free_port, run_planner, run_planner_tracked

SHAPES = {
    "tp2": [(1.0, 2)],
    "pp2": [(0.5, 1), (0.5, 1)],
    "tp2xpp2": [(0.5, 2), (0.5, 2)],
    "uneven3": [(0.25, 1), (0.5, 2), (0.25, 1)],
}


def write_plan(tmp_path: Path, model: str, shape: str, topology: str = "8xh100", concurrency: int = 2) -> Path:
    p = load_profile(model)
    topo = load_topology(topology)
    stages, start, gpu = [], 0, 0
    for k, (share, tp) in enumerate(SHAPES[shape]):
        n = p.n_layers - start if k == len(SHAPES[shape]) - 1 else round(share * p.n_layers)
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=list(range(gpu, gpu + tp)), tp=tp))
        start, gpu = start + n, gpu + tp
    part = Partition(stages=stages)
    w = Workload(concurrency=concurrency, weight_dtype="fp8")
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    path = tmp_path / f"{shape}.json"
    path.write_text(plan.model_dump_json())
    return path


@pytest.mark.parametrize("model", ["llama-70b", "mixtral-8x7b"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_validate_checks_pass(tmp_path, model, shape):
    report = validate(str(write_plan(tmp_path, model, shape)), backend="gloo", scale="mini", tokens=3, timeout_s=180)
    assert report.passed, [c for c in report.checks if c.passed is False]
    names = {c.name for c in report.checks}
    assert {
        "memory: parameter bytes",
        "traffic: bytes sent per decode step",
        "numerics: final logits vs single-process reference",
    } <= names
    assert report.world_size == sum(tp for _, tp in SHAPES[shape])
    # the layer split keeps the plan's proportions (uneven3: 1 : 2 : 1)
    counts = [s.layer_end - s.layer_start for s in report.stages]
    if shape == "uneven3":
        assert counts[1] == 2 * counts[0] == 2 * counts[2]
    # traffic is real: every rank all-reduces, sends to the next stage or receives from the previous one
    moved = {}
    for c in report.checks:
        if c.name.startswith("traffic:"):
            moved[c.rank] = moved.get(c.rank, 0) + c.measured
    assert len(moved) == report.world_size and all(v > 0 for v in moved.values())


#: The run's own limit in the failing-rank test: far above the ~20-60 s the run takes on a loaded 2-core machine,
#: so that only a run that waited for it (instead of ending at the failure) reaches it.
FAILING_RUN_TIMEOUT_S = 600


def test_a_failing_rank_ends_the_run(tmp_path):
    """The run ends at the failure, not at its timeout: the message names the failed rank and its fault, not the
    timeout, and the run finished before the timeout it was given."""
    plan = write_plan(tmp_path, "llama-70b", "tp2xpp2")
    start = time.monotonic()
    env = {"PLANNER_VALIDATE_FAIL_RANK": "2"}
    r, started = run_planner_tracked(
        "validate", str(plan), "--timeout", str(FAILING_RUN_TIMEOUT_S), env=env, timeout=FAILING_RUN_TIMEOUT_S + 120
    )
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "rank 2 (stage 1, TP rank 0) failed" in r.stderr and "injected fault" in r.stderr
    assert "timeout" not in r.stderr
    assert time.monotonic() - start < FAILING_RUN_TIMEOUT_S
    assert len(started) >= 4  # the four ranks of tp2xpp2 were seen running
    time.sleep(1)
    assert not alive(started), f"processes left behind: {alive(started)}"


def test_two_torchrun_agents_on_loopback(tmp_path):
    """A plan over two nodes of 2x8xh100-ib (stage 0 on dgx0, stage 1 on dgx1): the two scripts `planner launch`
    emits, run as they are (bash, torchrun from PATH, HEAD_ADDR set as the script asks), on this machine."""
    p = load_profile("llama-70b")
    topo = load_topology("2x8xh100-ib")
    part = Partition(
        stages=[
            Stage(layer_start=0, layer_end=40, gpu_ids=[0, 1], tp=2),
            Stage(layer_start=40, layer_end=80, gpu_ids=[8, 9], tp=2),
        ]
    )
    w = Workload(concurrency=2, weight_dtype="fp8")
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.model_dump_json())
    from planner.launch import render

    port = free_port()
    report = tmp_path / "report.json"
    # the worker's last --backend/--scale win: gloo and the mini model on CPU, with a report to read back
    extra = f"--backend gloo --scale mini --tokens 2 --report {report}"
    scripts = render(plan, "torchrun", plan_path=str(plan_path), port=port, extra_args=extra).scripts
    assert set(scripts) == {"torchrun-dgx0.sh", "torchrun-dgx1.sh"}
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        HEAD_ADDR="127.0.0.1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    procs = []
    for name in sorted(scripts):
        script = tmp_path / name
        script.write_text(scripts[name])
        procs.append(
            subprocess.Popen(
                ["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
            )
        )
    outs = [proc.communicate(timeout=240) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [o[1][-2000:] for o in outs]
    data = json.loads(report.read_text())
    assert data["passed"] and data["world_size"] == 4


def write_layout_plan(tmp_path: Path, model: str, tp: int, dp: int, ep: int) -> Path:
    """A single-stage plan of tp x dp GPUs with expert-parallel degree ep (fp8, 4 sequences)."""
    p, topo = load_profile(model), load_topology("8xh100")
    part = make_partition(p, topo, tp=tp, dp=dp, ep=ep)
    w = Workload(concurrency=4, weight_dtype="fp8")
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    path = tmp_path / f"{model}-tp{tp}-dp{dp}-ep{ep}.json"
    path.write_text(plan.model_dump_json())
    return path


@pytest.mark.parametrize(
    "model,tp,dp,ep", [("mixtral-8x7b", 1, 2, 2), ("deepseek-v3", 2, 1, 1), ("deepseek-v3", 1, 2, 2)]
)
def test_validate_moe_layouts_and_mla(tmp_path, model, tp, dp, ep):
    """Issue 14: an EP2 x DP2 Mixtral-like mini plan and a TP2 DeepSeek-V3-like (MLA) mini plan pass on gloo: every
    rank's parameter bytes equal the cost model's exactly (E/ep whole experts, MLA's replicated down-projections),
    TP traffic exactly, expert-parallel traffic within the tolerance of routing, logits within bf16 of a
    single-process reference."""
    report = validate(
        str(write_layout_plan(tmp_path, model, tp, dp, ep)), backend="gloo", scale="mini", tokens=4, timeout_s=240
    )
    assert report.passed, [c for c in report.checks if c.passed is False]
    memory = [c for c in report.checks if c.name == "memory: parameter bytes"]
    assert len(memory) == tp * dp and all(c.measured == c.predicted for c in memory)
    traffic = [c for c in report.checks if c.name.startswith("traffic")]
    if ep > 1:  # the tokens travel to their experts: an all-to-all, and no all-reduce (tp 1)
        assert all("all_to_all" in c.note and "all_reduce" not in c.note and c.measured > 0 for c in traffic)
    else:
        assert all(c.measured == c.predicted for c in traffic)
    assert report.stages[0].dp == dp and report.stages[0].ep == ep


def test_validate_refuses_layouts_it_does_not_run(tmp_path):
    p, topo = load_profile("mixtral-8x7b"), load_topology("8xh100")
    part = make_partition(p, topo, tp=2, dp=2, ep=4)
    w = Workload(concurrency=4, weight_dtype="fp8")
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    path = tmp_path / "tp2dp2ep4.json"
    path.write_text(plan.model_dump_json())
    r = run_planner("validate", str(path))
    assert r.returncode == 1 and "expert parallelism with tp 1" in r.stderr


def test_reference_follows_near_ties_of_routing_only(tmp_path):
    """Top-k routing is discrete: a near-tie that bf16 link roundings decide the other way changes a token's output by
    a whole expert (DeepSeek EP2 x DP2 mini on one machine's BLAS: 0.44 against a 0.14 logits tolerance). The
    reference takes the run's choice at a near-tie only; any other difference is counted and fails its check."""
    import torch

    from planner.plan_io import load_plan
    from planner.validate.moe import ROUTING_TIE, MoE
    from planner.validate.runner import make_job, reference_logits

    shard = type(
        "S",
        (),
        {
            "cfg": {
                "n_routed_experts": 4,
                "num_experts_per_tok": 2,
                "moe_intermediate_size": 8,
                "intermediate_size": 8,
            },
            "ep": 1,
            "ep_rank": 0,
        },
    )()
    moe = MoE(shard)
    scores = torch.tensor([[0.9, 0.5, 0.5 - ROUTING_TIE / 2, 0.1]] * 2)
    mine = torch.tensor([[0, 1]] * 2)
    got = moe._follow(scores, mine, torch.tensor([[2, 0], [0, 3]]))
    assert got.tolist() == [[2, 0], [0, 1]] and (moe.near_ties, moe.disagreements) == (1, 1)

    plan = load_plan(str(write_layout_plan(tmp_path, "deepseek-v3", 1, 2, 2))).plan
    job, _ = make_job(plan, "mini", "gloo", 2, 60)
    logits, stats = reference_logits(job)
    assert stats == {"near_ties": 0, "disagreements": 0}
    # its own routing, followed: the same logits, bit for bit, and nothing counted
    probe: dict = {}
    orig = MoE.route

    def record(self, i, x):
        out = orig(self, i, x)
        probe.setdefault(i, []).append(out[1].clone())
        return out

    MoE.route = record
    try:
        reference_logits(job)
    finally:
        MoE.route = orig
    again, stats = reference_logits(job, probe)
    assert torch.equal(again, logits) and stats == {"near_ties": 0, "disagreements": 0}
    # a choice far from the top-k (every token of one layer's first forward sent to its lowest-scoring experts)
    wrong = {i: [c.clone() for c in calls] for i, calls in probe.items()}
    layer = min(wrong)
    wrong[layer][0] = (wrong[layer][0] + 5) % job.config["n_routed_experts"]
    _, stats = reference_logits(job, wrong)
    assert stats["disagreements"] > 0
