"""Launch scripts from plans: GPU order, uneven stages, multi-node, real engine flags."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from planner.cost.estimate import estimate
from planner.errors import PlannerError, UnsupportedPlanError
from planner.hardware import load_topology, nvlink_links, shipped_topologies
from planner.launch import render
from planner.plan import SolverInfo, Workload, build_plan, partition_from_counts
from planner.solve import solve
from planner.solve.options import SolveOptions

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
PROGRAMS = {
    "vllm": ("vllm", "serve"),
    "sglang": ("sglang.launch_server",),
    "trtllm": ("trtllm-serve",),
    "torchrun": ("torchrun",),
}


def engine_flags(engine: str) -> set[str]:
    data = json.loads((FIXTURES / "engines" / f"{engine}.json").read_text())
    return set(data["flags"])


def commands(script: str, engine: str) -> list[list[str]]:
    """Every engine command in a script, as argv lists (continuation lines joined)."""
    joined = script.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        line = line.split(" &>")[0]
        try:
            argv = shlex.split(line)
        except ValueError:
            continue
        prog = PROGRAMS[engine]
        for i, tok in enumerate(argv):
            if tok == prog[0] and (len(prog) == 1 or argv[i + 1 : i + len(prog)] == list(prog[1:])):
                out.append(argv[i:])
                break
    return out


def flags_of(argv: list[str]) -> list[str]:
    if argv[0] == "torchrun" and "-m" in argv:
        argv = argv[: argv.index("-m")]  # what follows the module is the worker's own command line
    return [tok.split("=")[0] for tok in argv if tok.startswith("--")]


def env_of(script: str, name: str) -> list[str]:
    return re.findall(rf"export {name}=(\S+)", script)


def plan_for(profile, topo_name, **kw):
    topo = load_topology(topo_name)
    for dtype in ("bf16", "fp8", "int4"):
        try:
            return solve(profile, topo, Workload(weight_dtype=dtype, **kw), options=SolveOptions(top=0))
        except PlannerError:
            continue
    pytest.fail(f"{profile.name} fits nowhere on {topo_name}")


SINGLE_NODE = [t for t in sorted(shipped_topologies()) if load_topology(t).n_nodes == 1]


@pytest.mark.parametrize("topo_name", SINGLE_NODE)
def test_vllm_script_carries_plan_tp_pp_and_gpu_order(profiles, topo_name):
    # Llama-70B in int4 is 35 GB: on a machine with less memory in all (one A10, 24 GB) the 8B model stands in
    small = sum(g.spec.memory_bytes for g in load_topology(topo_name).gpus) < 40e9
    plan = plan_for(profiles("llama-8b" if small else "llama-70b"), topo_name)
    bundle = render(plan, "vllm")
    assert len(bundle.scripts) == 1
    script = next(iter(bundle.scripts.values()))
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    (argv,) = commands(script, "vllm")
    assert argv[argv.index("--tensor-parallel-size") + 1] == str(plan.stages[0].tp)
    assert argv[argv.index("--pipeline-parallel-size") + 1] == str(len(plan.stages))
    topo = load_topology(topo_name)
    expected = ",".join(str(topo.gpu(g).local_index) for s in plan.stages for g in s.gpu_ids)
    assert env_of(script, "CUDA_VISIBLE_DEVICES") == [expected]


def _tp2_pairs_kept(topo, plan, script):
    order = [int(x) for x in env_of(script, "CUDA_VISIBLE_DEVICES")[0].split(",")]
    for k in range(0, len(order), 2):
        assert nvlink_links(topo, order[k], order[k + 1]) > 0, (order, k)


def test_tp2_keeps_bridged_pairs_together(profiles, tmp_path, cli):
    topo = load_topology("8xh100-pcie-nvlink-pairs")
    plan = solve(profiles("llama-70b"), topo, Workload(weight_dtype="fp8"), options=SolveOptions(max_tp=2, top=0))
    assert all(s.tp == 2 for s in plan.stages)
    _tp2_pairs_kept(topo, plan, next(iter(render(plan, "vllm").scripts.values())))
    # a detected machine whose bridged pairs are GPUs 0-2, 1-3, 4-6, 5-7
    detected = tmp_path / "detected.yaml"
    code, _, err = cli(
        "topology",
        "detect",
        "--from",
        str(FIXTURES / "topo" / "pcie-h100-nvlink-pairs.txt"),
        "--gpus-csv",
        str(FIXTURES / "topo" / "pcie-h100-nvlink-pairs-gpus.csv"),
        "-o",
        str(detected),
    )
    assert code == 0, err
    dtopo = load_topology(str(detected))
    plan = solve(profiles("llama-70b"), dtopo, Workload(weight_dtype="fp8"), options=SolveOptions(max_tp=2, top=0))
    script = next(iter(render(plan, "vllm").scripts.values()))
    _tp2_pairs_kept(dtopo, plan, script)
    assert env_of(script, "CUDA_VISIBLE_DEVICES")[0] != "0,1,2,3,4,5,6,7"


def test_uneven_stages_emit_layer_partitions(profiles, tmp_path):
    p = profiles("llama-70b")
    topo = load_topology("8xh100")
    part = partition_from_counts([18, 22, 22, 18], list(range(8)), 2)
    w = Workload()
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    for engine, var in (("vllm", "VLLM_PP_LAYER_PARTITION"), ("sglang", "SGLANG_PP_LAYER_PARTITION")):
        script = next(iter(render(plan, engine).scripts.values()))
        (value,) = env_of(script, var)
        counts = [int(x) for x in value.split(",")]
        assert counts == [18, 22, 22, 18] and sum(counts) == p.n_layers
    with pytest.raises(UnsupportedPlanError) as exc:
        render(plan, "trtllm")
    assert "closest plan" in str(exc.value) and "20,20,20,20" in str(exc.value)


def test_multi_node_scripts_per_node(profiles):
    p = profiles("llama-405b")
    topo = load_topology("2x8xh100-ib")
    part = partition_from_counts([63, 63], list(range(16)), 8)
    w = Workload()
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    vllm = render(plan, "vllm").scripts
    assert set(vllm) == {"vllm-dgx0.sh", "vllm-dgx1.sh"}
    assert "ray start --head" in vllm["vllm-dgx0.sh"] and "vllm serve" in vllm["vllm-dgx0.sh"]
    assert "ray start --address=" in vllm["vllm-dgx1.sh"] and "vllm serve" not in vllm["vllm-dgx1.sh"]
    assert env_of(vllm["vllm-dgx0.sh"], "CUDA_VISIBLE_DEVICES") == ["0,1,2,3,4,5,6,7"]
    assert env_of(vllm["vllm-dgx1.sh"], "CUDA_VISIBLE_DEVICES") == ["0,1,2,3,4,5,6,7"]
    sgl = render(plan, "sglang").scripts
    for k, node in enumerate(("dgx0", "dgx1")):
        (argv,) = commands(sgl[f"sglang-{node}.sh"], "sglang")
        assert argv[argv.index("--node-rank") + 1] == str(k) and argv[argv.index("--nnodes") + 1] == "2"
        assert "HEAD_ADDR" in argv[argv.index("--dist-init-addr") + 1]
    tr = render(plan, "torchrun").scripts
    for k, node in enumerate(("dgx0", "dgx1")):
        (argv,) = commands(tr[f"torchrun-{node}.sh"], "torchrun")
        assert argv[argv.index("--node-rank") + 1] == str(k) and argv[argv.index("--nproc-per-node") + 1] == "8"


def test_multi_node_data_parallel_ranks_and_node_rank_zero_on_stage_zero(profiles):
    """A DeepSeek-V3 stage of 16 data-parallel ranks (EP16) over two DGX H100 nodes, its GPUs listed second node
    first: node rank 0 is the node of rank 0 (dgx1) in every engine's script; vLLM runs its multi-node DP form
    (each node its --data-parallel-size-local ranks from --data-parallel-start-rank, --headless past rank 0, no
    Ray), SGLang --nnodes/--node-rank/--dist-init-addr with DP attention and DeepEP."""
    p = profiles("deepseek-v3")
    topo = load_topology("2x8xh100-ib")
    part = partition_from_counts([p.n_layers], [*range(8, 16), *range(8)], 1, dp=16, ep=16)
    w = Workload(weight_dtype="fp8", isl=2048, osl=512, concurrency=256)
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    vllm = render(plan, "vllm").scripts
    for k, node in enumerate(("dgx1", "dgx0")):
        (argv,) = commands(vllm[f"vllm-{node}.sh"], "vllm")
        assert [
            argv[argv.index(f) + 1]
            for f in ("--data-parallel-size", "--data-parallel-size-local", "--data-parallel-start-rank")
        ] == ["16", "8", str(8 * k)]
        assert ("--headless" in argv) == (k == 1) and "--distributed-executor-backend" not in argv
        assert "HEAD_ADDR" in argv[argv.index("--data-parallel-address") + 1] and "--data-parallel-rpc-port" in argv
        assert "ray start" not in vllm[f"vllm-{node}.sh"]
    sgl = render(plan, "sglang").scripts
    for k, node in enumerate(("dgx1", "dgx0")):
        (argv,) = commands(sgl[f"sglang-{node}.sh"], "sglang")
        assert argv[argv.index("--node-rank") + 1] == str(k) and argv[argv.index("--nnodes") + 1] == "2"
        assert [argv[argv.index(f) + 1] for f in ("--tp-size", "--dp-size", "--ep-size", "--moe-a2a-backend")] == [
            "16",
            "16",
            "16",
            "deepep",
        ] and "--enable-dp-attention" in argv
    for engine in ("vllm", "sglang"):
        known = engine_flags(engine)
        for script in render(plan, engine).scripts.values():
            for argv in commands(script, engine):
                assert not [f for f in flags_of(argv) if f not in known], engine


def test_replicas_get_disjoint_gpus_and_ports(profiles):
    p = profiles("llama-8b")
    topo = load_topology("8xh100")
    part = partition_from_counts([32], list(range(8)), 2, replicas=4)
    w = Workload(concurrency=16)
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    script = next(iter(render(plan, "vllm").scripts.values()))
    assert env_of(script, "CUDA_VISIBLE_DEVICES") == ["0,1", "2,3", "4,5", "6,7"]
    ports = [argv[argv.index("--port") + 1] for argv in commands(script, "vllm")]
    assert ports == ["8000", "8001", "8002", "8003"]


def test_mixed_tp_is_refused_with_closest_plan(profiles):
    p = profiles("llama-70b")
    topo = load_topology("8xh100")
    from planner.plan import Partition, Stage

    part = Partition(
        stages=[
            Stage(layer_start=0, layer_end=40, gpu_ids=[0, 1, 2, 3], tp=4),
            Stage(layer_start=40, layer_end=80, gpu_ids=[4, 5], tp=2),
        ]
    )
    w = Workload(weight_dtype="fp8")
    plan = build_plan(
        p, topo, part, workload=w, prediction=estimate(p, topo, part, workload=w), solver=SolverInfo(status="GIVEN")
    )
    for engine in ("vllm", "sglang", "trtllm"):
        with pytest.raises(UnsupportedPlanError) as exc:
            render(plan, engine)
        assert exc.value.exit_code == 2 and "TP2 x PP2" in str(exc.value) and "predicted TPOT" in str(exc.value)


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm", "torchrun"])
def test_every_emitted_flag_exists_in_the_engine(profiles, engine):
    known = engine_flags(engine)
    plans = []
    for name, kw in (("8xh100", {}), ("8xh100-pcie-nvlink-pairs", {"concurrency": 64}), ("2x8xh100-ib", {})):
        topo = load_topology(name)
        for dtype, kv in (("bf16", "bf16"), ("fp8", "fp8")):
            plans.append(
                solve(
                    profiles("llama-70b"),
                    topo,
                    Workload(weight_dtype=dtype, kv_dtype=kv, **kw),
                    options=SolveOptions(top=0),
                )
            )
    p405 = profiles("llama-405b")
    topo = load_topology("2x8xh100-ib")
    part = partition_from_counts([63, 63], list(range(16)), 8)
    plans.append(
        build_plan(
            p405,
            topo,
            part,
            workload=Workload(),
            prediction=estimate(p405, topo, part, workload=Workload()),
            solver=SolverInfo(status="GIVEN"),
        )
    )
    plans.append(deepseek_ep_plan(profiles))
    seen = 0
    for plan in plans:
        for script in render(plan, engine).scripts.values():
            for argv in commands(script, engine):
                unknown = [f for f in flags_of(argv) if f not in known]
                assert not unknown, (engine, unknown)
                if engine == "torchrun":  # the worker's own flags exist in its parser
                    from planner.validate.worker import parser

                    worker = {o for a in parser()._actions for o in a.option_strings}
                    tail = argv[argv.index("-m") + 2 :]
                    assert all(t in worker for t in tail if t.startswith("--")), tail
                seen += 1
    assert seen >= len(plans)


def test_cli_launch_writes_scripts_and_errors(cli, tmp_path):
    plan_file = tmp_path / "plan.json"
    code, _, err = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "-o", str(plan_file))
    assert code == 0, err
    out = tmp_path / "scripts"
    code, _, err = cli("launch", str(plan_file), "--engine", "sglang", "-o", str(out), "--port", "9000")
    assert code == 0, err
    script = (out / "sglang-dgx.sh").read_text()
    assert "--port 9000" in script and (out / "sglang-dgx.sh").stat().st_mode & 0o111
    code, stdout, _ = cli("launch", str(plan_file), "--engine", "vllm")
    assert code == 0 and "vllm serve" in stdout
    code, _, err = cli("launch", str(plan_file), "--engine", "ollama")
    assert code == 1 and "unknown engine" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"plan_version": 1}')
    code, _, err = cli("launch", str(bad), "--engine", "vllm")
    assert code == 1 and "not a planner Plan" in err
    code, _, err = cli(
        "solve", "--model", "llama-70b", "--topology", "8xh100", "--emit", "vllm", "-o", str(tmp_path / "e")
    )
    assert code == 0, err
    assert (tmp_path / "e" / "plan.json").is_file() and (tmp_path / "e" / "vllm-dgx.sh").is_file()


def test_solve_and_launch_example(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "solve_and_launch.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "plan.json").is_file()
    script = (tmp_path / "vllm-dgx.sh").read_text()
    assert "--tensor-parallel-size 8" in script


BATCH_FLAG = {"vllm": "--max-num-seqs", "sglang": "--max-running-requests", "trtllm": "--max_batch_size"}


LENGTH_FLAG = {"vllm": "--max-model-len", "sglang": "--context-length", "trtllm": "--max_seq_len"}


@pytest.mark.parametrize("engine", sorted(BATCH_FLAG))
def test_batch_limit_is_the_operating_point(profiles, engine):
    """Issue 26 (replacing issue 13's KV-capacity limit for latency plans): the batch limit is the load the plan's
    figures hold at, whether --concurrency gave it or the throughput objective and an SLO chose it."""
    p, topo = profiles("llama-70b"), load_topology("8xh100")
    latency = solve(p, topo, Workload(concurrency=32), options=SolveOptions(top=0))
    tuned = solve(p, topo, Workload(), options=SolveOptions(objective="throughput", tpot_slo_ms=20, top=0))
    for plan in (latency, tuned):
        script = next(iter(render(plan, engine).scripts.values()))
        (argv,) = commands(script, engine)
        assert argv[argv.index(BATCH_FLAG[engine]) + 1] == str(-(-plan.prediction.concurrency // plan.replicas))
        assert f"predicted at {plan.prediction.concurrency:,} sequences in flight" in script
        assert "the load the predicted figures hold at" in script
    assert latency.prediction.max_concurrency > 100 and 1 < tuned.prediction.concurrency < 100


@pytest.mark.parametrize("engine", sorted(LENGTH_FLAG))
def test_scripts_serve_the_models_full_context_by_default(profiles, engine):
    """Issue 26 item 1: a plan made at isl 1024 + osl 256 serves Llama-3.1-70B's whole context (its config's
    max_position_embeddings, 131,072) unless --max-model-len says otherwise; the header gives the KV capacity at
    the served length. Llama has no sliding window, so KV grows linearly with length: 1,105 sequences of
    1,280 tokens (vLLM's accounting: 0.9 of the GPU the engine sees, less its 0.66 GB reserve, planner/cost/engines)
    hold floor(1105 x 1280 / 4096) = 345 of 4,096 (any budget in [1105, 1106) sequences gives 345)."""
    plan = solve(profiles("llama-70b"), load_topology("8xh100"), Workload(concurrency=32), options=SolveOptions(top=0))
    assert plan.prediction.max_concurrency == 1105 and plan.replicas == 1
    (argv,) = commands(next(iter(render(plan, engine).scripts.values())), engine)
    assert argv[argv.index(LENGTH_FLAG[engine]) + 1] == "131072"
    script = next(iter(render(plan, engine, max_model_len=4096).scripts.values()))
    (argv,) = commands(script, engine)
    assert argv[argv.index(LENGTH_FLAG[engine]) + 1] == "4096" and argv[argv.index(BATCH_FLAG[engine]) + 1] == "32"
    assert "KV capacity at that length: 345 sequences per replica (1,105 at 1,280 tokens)" in script


def test_max_model_len_bounds_and_cli(tmp_path, cli):
    plan = tmp_path / "plan.json"
    code, _, err = cli("estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "1", "-o", str(plan))
    assert code == 0, err
    code, out, err = cli("launch", str(plan), "--engine", "vllm", "--max-model-len", "8192")
    assert code == 0 and "--max-model-len 8192" in out, err
    for bad, needle in (("200000", "context of 131,072"), ("8", "--max-model-len"), ("x", "--max-model-len")):
        code, _, err = cli("launch", str(plan), "--engine", "vllm", "--max-model-len", bad)
        assert code == 1 and needle in err, (bad, err)


def test_relative_model_path_is_written_absolute(tmp_path, cli, monkeypatch):
    """Issue 26 item 7: a plan made from a relative config path serves that folder from wherever the script runs."""
    cfg = json.loads((REPO / "models" / "Llama-3.1-8B.json").read_text())
    (tmp_path / "my-model").mkdir()
    (tmp_path / "my-model" / "config.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(
        "estimate", "--model", "my-model/config.json", "--topology", "8xh100", "--tp", "1", "-o", "plan.json"
    )
    assert code == 0, err
    code, out, err = cli("launch", "plan.json", "--engine", "vllm")
    assert code == 0, err
    (argv,) = commands(out, "vllm")
    assert argv[2] == str(tmp_path.resolve() / "my-model")


def test_engine_version_is_what_setup_installs_and_planner_version(cli):
    """Issue 26 item 7: the vLLM scripts name the version scripts/setup_vllm_cpu.sh pins; `planner --version`."""
    from planner import __version__
    from planner.launch import vllm

    pinned = re.search(
        r'VLLM_CPU_VERSION="\$\{VLLM_CPU_VERSION:-([^}]+)\}"', (REPO / "scripts" / "setup_vllm_cpu.sh").read_text()
    )
    assert pinned and vllm.ENGINE_VERSION.split()[0] == pinned.group(1)
    code, out, _ = cli("--version")
    project = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert code == 0 and project and out.strip() == f"planner {__version__}" == f"planner {project.group(1)}"


def deepseek_ep_plan(profiles):
    """Issue 14's acceptance plan: DeepSeek-V3 fp8 on 8xH200 for throughput under a 50 ms TPOT SLO."""
    return solve(
        profiles("deepseek-v3"),
        load_topology("8xh200"),
        Workload(weight_dtype="fp8", isl=2048, osl=512),
        options=SolveOptions(objective="throughput", tpot_slo_ms=50, top=0),
    )


def test_deepseek_ep_plan_launches_with_dp_attention_and_expert_parallelism(profiles):
    plan = deepseek_ep_plan(profiles)
    (st,) = plan.stages
    assert (st.tp, st.dp, st.ep) == (1, 8, 8) and plan.solver.status == "OPTIMAL"
    assert plan.prediction.tpot_ms <= 50
    per_rank = str(-(-plan.prediction.concurrency // 8))
    (argv,) = commands(next(iter(render(plan, "vllm").scripts.values())), "vllm")
    assert argv[argv.index("--data-parallel-size") + 1] == "8" and "--enable-expert-parallel" in argv
    assert argv[argv.index("--tensor-parallel-size") + 1] == "1" and argv[argv.index("--max-num-seqs") + 1] == per_rank
    (argv,) = commands(next(iter(render(plan, "sglang").scripts.values())), "sglang")
    assert [argv[argv.index(f) + 1] for f in ("--tp-size", "--dp-size", "--ep-size", "--moe-a2a-backend")] == [
        "8",
        "8",
        "8",
        "deepep",
    ] and "--enable-dp-attention" in argv
    bundle = render(plan, "trtllm")
    (argv,) = commands(next(iter(bundle.scripts.values())), "trtllm")
    assert [argv[argv.index(f) + 1] for f in ("--tp_size", "--ep_size", "--max_batch_size")] == ["8", "8", per_rank]
    assert "enable_attention_dp: true" in bundle.extra_files["trtllm-extra-options.yaml"]


def test_extra_args_model_folder_and_cpu_device(tmp_path, cli):
    """Issue 15: a plan made from ./my-model/config.json serves the folder; --extra-args pass through (quoted);
    --device cpu runs vLLM's CPU build through its API server module, one core group per rank."""
    cfg = json.loads((REPO / "models" / "Llama-3.1-8B.json").read_text())
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(cfg))
    plan = tmp_path / "plan.json"
    code, _, err = cli(
        "estimate", "--model", str(model / "config.json"), "--topology", "8xh100", "--tp", "2", "-o", str(plan)
    )
    assert code == 0, err
    code, out, err = cli(
        "launch", str(plan), "--engine", "vllm", "--extra-args", "--enforce-eager --served-model-name 'my m'"
    )
    assert code == 0, err
    (argv,) = commands(out, "vllm")
    assert argv[2] == str(model) and argv[-3:] == ["--enforce-eager", "--served-model-name", "my m"]
    assert "CUDA_VISIBLE_DEVICES=0,1" in out
    code, out, err = cli("launch", str(plan), "--engine", "vllm", "--device", "cpu")
    assert code == 0, err
    assert '"$PYTHON" \\\n  -m vllm.entrypoints.openai.api_server' in out and "CUDA_VISIBLE_DEVICES" not in out
    python = re.search(r'PYTHON="\$\{PYTHON:-(\S+)\}"', out)
    assert python and Path(python.group(1)).is_absolute()  # issue 26: not a bare `python` from PATH
    assert "VLLM_CPU_OMP_THREADS_BIND" in out and "ranks=2" in out and "--gpu-memory-utilization" not in out
    for bad, needle in (
        (["--device", "tpu"], "--device"),
        (["--device", "cpu", "--engine", "sglang"], "vllm-cpu"),
        (["--extra-args", "--x 'open"], "--extra-args"),
    ):
        args = ["launch", str(plan), "--engine", "vllm", *bad]
        if "--engine" in bad:
            args = ["launch", str(plan), *bad]
        code, _, err = cli(*args)
        assert code == 1 and needle in err, (bad, err)


def test_batch_limit_is_capped(profiles):
    """A throughput plan for a small model at short sequences, TTFT guard off, chooses a huge load; the batch
    limit stops at 2,048."""
    plan = solve(
        profiles("llama-8b"),
        load_topology("8xh100"),
        Workload(isl=16, osl=16),
        options=SolveOptions(objective="throughput", top=0, max_prefill_utilisation=1.0),
    )
    argv = commands(next(iter(render(plan, "vllm").scripts.values())), "vllm")[0]
    per_replica = -(-plan.prediction.concurrency // plan.replicas)
    assert per_replica > 2048 and argv[argv.index("--max-num-seqs") + 1] == "2048"
