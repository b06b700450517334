"""The cost model and `planner estimate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate, read_weight_bytes
from planner.errors import PartitionError
from planner.hardware import load_topology
from planner.plan import Partition, Stage, Workload, partition_from_counts

from .conftest import run_planner

LLAMA2_70B = str(Path(__file__).parent / "fixtures" / "models" / "Llama-2-70b-hf.json")


def tp_plan(n_layers, tp, first_gpu=0):
    return Partition(
        stages=[Stage(layer_start=0, layer_end=n_layers, gpu_ids=list(range(first_gpu, first_gpu + tp)), tp=tp)]
    )


def test_hand_checked_hbm_bytes_llama70b_tp8(profiles):
    """Llama-3.1-70B, bf16, 8xh100, TP8, concurrency 1, isl 1024, osl 1."""
    p = profiles("llama-70b")
    pred = estimate(p, load_topology("8xh100"), tp_plan(80, 8), workload=Workload(concurrency=1, isl=1024, osl=1))
    h, i, kv_dim, vocab, layers, tp = 8192, 28672, 8 * 128, 128256, 80, 8
    per_layer_split = (2 * h * h + 3 * h * i) * 2 / tp  # q, o, gate, up, down; bf16; split 8 ways
    per_layer_kv_proj = (2 * h * kv_dim) * 2 / tp  # k, v projections: 8 KV heads over 8 ranks
    per_layer_norms = 2 * h * 2  # two RMSNorms, replicated
    embedding = 1 * h * 2 / tp  # one gathered row of the vocab-parallel table
    final_norm = h * 2
    lm_head = vocab * h * 2 / tp  # the whole (sharded) matrix
    context = 1024 + 1 / 2  # TPOT is taken at the mean context isl + osl/2
    kv_read = context * layers * 2 * kv_dim * 2 / tp  # K and V, bf16, 8 KV heads over 8 ranks
    expected = (
        layers * (per_layer_split + per_layer_kv_proj + per_layer_norms) + embedding + final_norm + lm_head + kv_read
    )
    assert pred.stages[0].hbm_bytes_per_gpu_per_step == pytest.approx(expected, rel=1e-12)
    assert pred.hbm_bytes_per_token == pytest.approx(8 * expected, rel=1e-12)  # concurrency 1: one token per step


# docs/reference/calibration.md: gpt-fast decode at batch 1 on 8xA100-80GB SXM (NVSwitch) at 330 W, bf16.
# The cap leaves ~1,700 GB/s sustained: the datasheet 2,039 GB/s x hbm_efficiency 0.85 = 1,733 GB/s.
# gpt-fast generates 200 tokens from a short prompt.
# gpt-fast is a plain PyTorch decode loop, not a serving engine: its rows are priced with the host time per step and
# per sequence that round two fitted beside them (NIM fit, docs/calibration.md), given as a calibration profile.
GPT_FAST_HOST = Constants(
    step_overhead_s=0.64e-3, sequence_overhead_s=24.7e-6, calibrated=("step_overhead_s", "sequence_overhead_s")
)
GPT_FAST = [
    ("llama-8b", 1, 10.65),
    ("llama-8b", 2, 6.71),
    ("llama-8b", 4, 4.60),
    ("llama-8b", 8, 3.62),
    (LLAMA2_70B, 2, 46.9),
    (LLAMA2_70B, 4, 26.3),
    (LLAMA2_70B, 8, 16.0),
]


@pytest.mark.parametrize("model,tp,ms_per_token", GPT_FAST)
def test_gpt_fast_decode_rows_within_10_percent(profiles, model, tp, ms_per_token):
    p = profiles(model)
    pred = estimate(
        p,
        load_topology("8xa100"),
        tp_plan(p.n_layers, tp),
        workload=Workload(concurrency=1, isl=16, osl=200),
        c=GPT_FAST_HOST,
    )
    assert pred.tpot_ms == pytest.approx(ms_per_token, rel=0.10)  # the README's claim


def test_nvlink_versus_pcie_tp8(profiles):
    p = profiles("llama-70b")
    w = Workload(concurrency=1, isl=1024, osl=256)
    nv = estimate(p, load_topology("8xh100"), tp_plan(80, 8), workload=w)
    pcie = estimate(p, load_topology("8xh100-pcie"), tp_plan(80, 8), workload=w)
    assert pcie.tpot_ms > nv.tpot_ms
    assert pcie.time_breakdown_ms["interconnect"] > 2 * nv.time_breakdown_ms["interconnect"]
    # the same bytes cross the links; only where they travel differs
    assert pcie.interconnect_bytes_per_token == pytest.approx(nv.interconnect_bytes_per_token)
    assert nv.interconnect_bytes_by_class["nvlink"] > 0 and pcie.interconnect_bytes_by_class["nvlink"] == 0
    assert pcie.interconnect_bytes_by_class["socket"] > 0
    # ring all-reduce bytes: 160 all-reduces + embedding of 8192 x 2 bytes, each edge carries 2 x 7/8 of it,
    # 8 ring edges; plus the logits all-gather (128256 x 2 bytes, 7/8 per edge)
    msg = 8192 * 2
    expected = 8 * (161 * 2 * 7 / 8 * msg + 7 / 8 * 128256 * 2)
    assert nv.interconnect_bytes_per_token == pytest.approx(expected)


def test_moe_reads_touched_experts_only(profiles):
    p = profiles("mixtral-8x7b")
    layer = p.decoders[0]
    expert_bytes = 3 * 4096 * 14336 * 2
    non_expert = layer.weight_bytes("bf16") - 8 * expert_bytes
    assert read_weight_bytes(layer, 1, p, weight_dtype="bf16", tokens=1) == pytest.approx(non_expert + 2 * expert_bytes)
    # 4 tokens: 8 x (1 - (6/8)^4) = 5.47 experts
    assert read_weight_bytes(layer, 1, p, weight_dtype="bf16", tokens=4) == pytest.approx(
        non_expert + 8 * (1 - 0.75**4) * expert_bytes
    )


def test_kv_split_and_replication(profiles):
    p = profiles("llama-70b")
    w = Workload(concurrency=1, isl=1000, osl=1000)
    tp8 = estimate(p, load_topology("2x8xh100-ib"), tp_plan(80, 8), workload=w)
    tp16 = estimate(p, load_topology("2x8xh100-ib"), tp_plan(80, 16), workload=w)
    # 8 KV heads: at TP16 each rank holds a replica of one KV head, so KV per GPU does not halve
    assert tp16.stages[0].kv_bytes_per_sequence_per_gpu == pytest.approx(tp8.stages[0].kv_bytes_per_sequence_per_gpu)
    ds = profiles("deepseek-v3")
    one = estimate(ds, load_topology("8xh200"), tp_plan(61, 8), workload=Workload(weight_dtype="fp8"))
    # MLA's latent is replicated on every rank: 61 layers x 576 x 2 bytes x 1280 tokens
    assert one.stages[0].kv_bytes_per_sequence_per_gpu == pytest.approx(61 * 576 * 2 * 1280)


def test_partition_validation_messages(profiles):
    p = profiles("llama-70b")
    topo = load_topology("8xh100")
    with pytest.raises(PartitionError, match=r"tp\(3\) must divide attention heads\(64\)"):
        estimate(p, topo, tp_plan(80, 3), workload=Workload())
    bad = Partition(
        stages=[
            Stage(layer_start=0, layer_end=40, gpu_ids=[0, 1], tp=2),
            Stage(layer_start=41, layer_end=80, gpu_ids=[2, 3], tp=2),
        ]
    )
    with pytest.raises(PartitionError, match="stage 1 starts at layer 41, expected 40"):
        estimate(p, topo, bad, workload=Workload())
    reuse = Partition(
        stages=[
            Stage(layer_start=0, layer_end=40, gpu_ids=[0, 1], tp=2),
            Stage(layer_start=40, layer_end=80, gpu_ids=[1, 2], tp=2),
        ]
    )
    with pytest.raises(PartitionError, match=r"GPU ids \[1\] are used twice"):
        estimate(p, topo, reuse, workload=Workload())


def test_pipeline_and_memory_accounting(profiles):
    p = profiles("llama-70b")
    topo = load_topology("8xh100")
    w = Workload(concurrency=8, isl=1024, osl=256)
    pp2 = estimate(p, topo, partition_from_counts([40, 40], list(range(8)), 4), workload=w)
    tp8 = estimate(p, topo, tp_plan(80, 8), workload=w)
    # PP does not lower per-token latency: each micro-batch re-reads every stage's weights
    assert pp2.tpot_ms > tp8.tpot_ms
    # memory per GPU by hand: Llama-3.1-70B has 70,553,706,496 parameters, of which 1,318,912 are norms
    # (2 x 8192 per layer x 80 + 8192) kept whole on every rank; everything else splits over TP8. bf16.
    weights = ((70_553_706_496 - 1_318_912) // 8 + 1_318_912) * 2
    # KV: 80 layers x (K and V) x 1 KV head per GPU (8 over TP8) x 128 x 2 bytes, 1280 tokens, 8 sequences
    kv = 80 * 2 * 1 * 128 * 2 * 1280 * 8
    reserve = resolve_constants(DEFAULT, "vllm").runtime_reserve_bytes  # the default engine's (engines/vllm.py)
    for g in range(8):
        assert tp8.memory_breakdown[g] == {"weights": weights, "kv_cache": kv, "reserve": reserve}
        assert tp8.memory_per_gpu_bytes[g] == weights + kv + reserve == 18_060_165_120 + reserve
    # roofline: at concurrency 8 every token re-uses the weights, so the floor is below TPOT
    assert 1 < tp8.roofline_ratio < 5


def test_calibration_profile_overrides(tmp_path, profiles):
    p = profiles("llama-8b")
    topo = load_topology("1xh100")
    base = estimate(p, topo, tp_plan(32, 1), workload=Workload())
    f = tmp_path / "cal.yaml"
    f.write_text("hbm_efficiency: 0.5\nkernel_overhead_s_per_layer: 0\nstep_overhead_s: 0\nsequence_overhead_s: 0\n")
    from planner.cost.constants import load_constants

    slow = estimate(p, topo, tp_plan(32, 1), workload=Workload(), c=load_constants(str(f)))
    assert slow.time_breakdown_ms["weights"] == pytest.approx(base.time_breakdown_ms["weights"] * 0.85 / 0.5)
    assert slow.time_breakdown_ms["overhead"] == 0
    # the defaults: 32 layers x 50 us of kernels, the default engine's host time per step and per sequence sampled
    vllm = resolve_constants(DEFAULT, "vllm")
    assert base.time_breakdown_ms["overhead"] == pytest.approx(
        32 * 0.050 + (vllm.step_overhead_s + vllm.sequence_overhead_s) * 1e3, rel=1e-9
    )
    f.write_text("hbm_efficiency: 3\n")
    from planner.errors import ConfigError

    with pytest.raises(ConfigError, match="hbm_efficiency"):
        load_constants(str(f))


def test_cli_estimate_json_and_plan_file(cli, tmp_path):
    out = tmp_path / "plan.json"
    code, stdout, err = cli(
        "estimate",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--tp",
        "4",
        "--pp",
        "2",
        "--layers",
        "38,42",
        "--json",
        "-o",
        str(out),
    )
    assert code == 0, err
    data = json.loads(stdout)
    for key in (
        "tpot_ms",
        "ttft_ms",
        "tokens_per_s",
        "max_concurrency",
        "memory_per_gpu_bytes",
        "hbm_bytes_per_token",
        "interconnect_bytes_per_token",
        "roofline_tpot_ms",
        "fits",
    ):
        assert key in data
    plan = json.loads(out.read_text())
    assert plan["solver"]["status"] == "GIVEN"
    assert [(s["layer_start"], s["layer_end"], s["gpu_ids"], s["tp"]) for s in plan["stages"]] == [
        (0, 38, [0, 1, 2, 3], 4),
        (38, 80, [4, 5, 6, 7], 4),
    ]
    from planner.plan import Plan

    assert Plan.model_validate_json(out.read_text()).prediction.tpot_ms == pytest.approx(data["tpot_ms"])


def test_cli_405b_does_not_fit_exit_2():
    r = run_planner("estimate", "--model", "llama-405b", "--topology", "8xh100", "--tp", "8")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "short by" in r.stderr and " GB" in r.stderr
    assert "--weight-dtype fp8" in r.stderr and "more GPUs" in r.stderr


def test_cli_tp3_names_the_dimension():
    r = run_planner("estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "3")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "attention heads(64)" in r.stderr


def test_cli_estimate_bad_inputs(cli):
    code, _, err = cli(
        "estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "2", "--pp", "2", "--layers", "30,30"
    )
    assert code == 1 and "sums to 60" in err
    code, _, err = cli("estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "8", "--concurrency", "0")
    assert code == 1 and "concurrency" in err
    code, _, err = cli("estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "8", "--pp", "2")
    assert code == 1 and "need 16 GPUs" in err


def test_cli_estimate_offline_mode_renders_its_table(cli):
    """`--mode offline` (every request queued at once) printed a traceback from the table's mode label before the
    label knew it; it names the mode now, and the run's 500 prompts are its load."""
    code, stdout, err = cli(
        "estimate", "--model", "qwen3-14b", "--topology", "1xh100", "--tp", "1", "--isl", "3996", "--osl", "200",
        "--mode", "offline", "--concurrency", "500",
    )  # fmt: skip
    assert code == 0, err
    assert "Traceback" not in err
    assert "offline: every request queued at once" in " ".join(stdout.split())
