"""The memory wall's remedies: hand calculations, published figures (within 25%), the tier solver, the command."""

from __future__ import annotations

import json

import pytest
import yaml

from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.cost.offload import stream_bytes_per_s
from planner.cost.shards import Layout, dense_mlp_bytes, held_weight_bytes, union_fraction
from planner.errors import InfeasibleError
from planner.hardware import load_topology, parse_topology
from planner.hardware.whatif import apply_what_if, parse_what_if
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition
from planner.solve import solve
from planner.solve.options import SolveOptions

OFFLOAD = "tests/data/offload"


def _tpot(profiles, model: str, topo: str, tp: int, **work) -> float:
    p, t = profiles(model), load_topology(topo)
    w = Workload(**{"concurrency": 1, "isl": 1024, "osl": 256, **work})
    return estimate(p, t, make_partition(p, t, tp=tp, gpu_ids=list(range(tp))), workload=w).tpot_ms


# --- hand calculations --------------------------------------------------------------------------------------
def test_tokens_per_pass_is_the_expected_accepted_run():
    # (1 - a^(k+1)) / (1 - a): k=3, a=0.7 -> (1 - 0.2401) / 0.3 = 2.533; k=1, a=0.85 -> 1.85
    assert Workload(spec_tokens=3, spec_acceptance=0.7).tokens_per_pass == pytest.approx(2.533, abs=1e-3)
    assert Workload(spec_tokens=1, spec_acceptance=0.85).tokens_per_pass == pytest.approx(1.85)
    assert Workload().tokens_per_pass == 1.0


def test_free_drafts_divide_the_verification_step_by_the_tokens_it_yields(profiles):
    """With free drafts (n-gram), TPOT = step of k + 1 tokens per sequence / tokens per pass. At batch 1 on one
    H100 the k + 1 = 3 tokens share one read of the weights and the KV cache, so the step barely grows."""
    base = _tpot(profiles, "llama-8b", "1xh100", 1)
    spec = _tpot(profiles, "llama-8b", "1xh100", 1, spec_tokens=2, spec_acceptance=0.8, spec_draft="free")
    tau = (1 - 0.8**3) / 0.2  # 2.44
    step_ratio = spec * tau / base
    assert 1.0 < step_ratio < 1.05  # two more tokens' sampling and activations, no more weight or KV bytes
    assert base / spec == pytest.approx(tau / step_ratio, rel=1e-9)


def test_mlp_sparsity_reads_the_union_of_rows(profiles):
    """Llama-3.1-8B layer at TP2: the gated MLP is 3 x 4096 x 14336 x 2 bytes / 2 = 176.2 MB per GPU; one token at
    s = 0.5 reads half of it, four tokens 1 - 0.5^4 = 93.75%."""
    p = profiles("llama-8b")
    layer = p.decoders[0]
    mlp = dense_mlp_bytes(layer, Layout(2), p, "bf16")
    assert mlp == pytest.approx(3 * 4096 * 14336 * 2 / 2)
    assert union_fraction(0.5, 1) == 0.5 and union_fraction(0.5, 4) == pytest.approx(0.9375)
    from planner.cost.shards import sparse_read_bytes
    from planner.cost.step import StepLoad

    held = held_weight_bytes(layer, Layout(2), p, "bf16")
    one = sparse_read_bytes(
        layer, Layout(2), p, weight_dtype="bf16", read=held, tokens=1, sparsity=StepLoad(decode=1, mlp_sparsity=0.5)
    )
    assert held - one == pytest.approx(mlp * 0.5)


def test_attention_sparsity_scales_the_kv_read(profiles):
    """At a long context the KV read dominates: s = 0.75 leaves a quarter of the KV time."""
    p, t = profiles("llama-8b"), load_topology("1xh100")
    part = make_partition(p, t, tp=1)
    w = Workload(concurrency=32, isl=8000, osl=256)
    base = estimate(p, t, part, workload=w).time_breakdown_ms["kv"]
    sparse = estimate(p, t, part, workload=w.model_copy(update={"attention_sparsity": 0.75})).time_breakdown_ms["kv"]
    assert sparse == pytest.approx(0.25 * base, rel=0.02)  # the prompts' own prefill reads are not skipped


# --- published figures, each within 25% ----------------------------------------------------------------------
def test_mtp_speedup_matches_deepseek_v3(profiles):
    """DeepSeek-V3 technical report (arXiv 2412.19437, 5.4.3): the second token's acceptance rate is 85-90%,
    which 'enables the model to significantly improve the decoding speed, delivering 1.8 times TPS'. One MTP
    module (k = 1) at a = 0.875, fp8 on 8xH200, one sequence."""
    base = _tpot(profiles, "deepseek-v3", "8xh200", 8, weight_dtype="fp8")
    mtp = _tpot(profiles, "deepseek-v3", "8xh200", 8, weight_dtype="fp8", spec_tokens=1, spec_acceptance=0.875)
    assert base / mtp == pytest.approx(1.8, rel=0.25)


@pytest.mark.parametrize("sparsity,speedup", [(0.4, 1.53), (0.5, 1.8)])
def test_activation_sparsity_matches_teal(profiles, sparsity, speedup):
    """TEAL (Liu et al. 2024, arXiv 2408.14690): 'wall-clock decoding speed-ups of up to 1.53x and 1.8x at 40% and
    50% model-wide sparsity' (batch 1, A100). Llama-3.1-8B on one A100, one sequence."""
    base = _tpot(profiles, "llama-8b", "8xa100", 1)
    sparse = _tpot(profiles, "llama-8b", "8xa100", 1, activation_sparsity=sparsity)
    assert base / sparse == pytest.approx(speedup, rel=0.25)


@pytest.mark.parametrize("model,batch,measured", [("opt-30b", 4, 0.60), ("opt-6.7b", 16, 9.28)])
def test_offloaded_decode_matches_flexgens_deepspeed_rows(model, batch, measured):
    """FMInference/FlexiGen benchmark/batch_size_table.md: DeepSpeed ZeRO-Inference on one T4 16GB, every layer
    streamed from pinned host memory, prompt 512, 32 tokens: OPT-30B batch 4 0.60 tokens/s (host_stream_efficiency
    is fitted to it, benchmarks/fit_offload.py), OPT-6.7B batch 16 9.28 tokens/s (held out)."""
    topo = load_topology(f"{OFFLOAD}/1xt4.yaml")
    profile = load_profile(f"{OFFLOAD}/{model}-llama-shaped.json")
    part = make_partition(profile, topo, tp=1, offload_layers=list(range(profile.n_layers)))
    w = Workload(concurrency=batch, isl=512, osl=32, weight_dtype="fp16", kv_dtype="fp16", mode="closed")
    pred = estimate(profile, topo, part, workload=w)
    assert pred.fits
    assert pred.tokens_per_s == pytest.approx(measured, rel=0.25)
    assert pred.time_breakdown_ms["offload"] > 0.8 * pred.tpot_ms  # streaming is where the time goes


# --- memory tiers -------------------------------------------------------------------------------------------
def test_streaming_time_and_memory_by_hand():
    """OPT-30B-shaped layer on a T4: 616.6M parameters x 2 bytes = 1.233 GB, streamed at 15.75 GB/s x 0.58 =
    9.135 GB/s -> 135 ms a layer; a decode step of one sequence computes a layer in ~4 ms, so ~131 ms is added.
    HBM keeps two buffers of one layer instead of the streamed layers."""
    topo = load_topology(f"{OFFLOAD}/1xt4.yaml")
    p = load_profile(f"{OFFLOAD}/opt-30b-llama-shaped.json")
    layer_bytes = held_weight_bytes(p.decoders[0], Layout(1), p, "fp16")
    assert layer_bytes == pytest.approx((4 * 7168 * 7168 + 3 * 7168 * 19114) * 2, rel=1e-3)
    assert stream_bytes_per_s(topo, [0], DEFAULT) == pytest.approx(15.75e9 * 0.58)
    w = Workload(isl=512, osl=32, weight_dtype="fp16", kv_dtype="fp16")
    part = make_partition(p, topo, tp=1, offload_layers=[40, 41, 42, 43, 44, 45, 46, 47])
    pred = estimate(p, topo, part, workload=w)
    per_layer_s = layer_bytes / (15.75e9 * 0.58)
    assert pred.time_breakdown_ms["offload"] == pytest.approx(8 * per_layer_s * 1e3, rel=0.05)
    resident = estimate(p, topo, make_partition(p, topo, tp=1), workload=w)
    out = pred.memory_breakdown[0]["weights"] - resident.memory_breakdown[0]["weights"]
    assert out == pytest.approx(-8 * layer_bytes + 2 * layer_bytes, rel=1e-6)
    assert pred.host_memory_bytes == {"gcp": pytest.approx(8 * layer_bytes)}


def test_a_full_host_tier_does_not_fit():
    """The host tier's capacity is a limit of its own: 44 of OPT-30B's 48 layers streamed leave the T4 room for
    the rest (fits with FlexGen's 208 GB), but 54 GB of streamed shards do not fit a 50 GB tier, though every GPU
    still holds what it keeps."""
    doc = yaml.safe_load(open(f"{OFFLOAD}/1xt4.yaml"))
    p = load_profile(f"{OFFLOAD}/opt-30b-llama-shaped.json")
    w = Workload(weight_dtype="fp16", kv_dtype="fp16")
    roomy = parse_topology(yaml.safe_dump(doc), "1xt4.yaml")
    part = make_partition(p, roomy, tp=1, offload_layers=list(range(44)))
    assert estimate(p, roomy, part, workload=w).fits
    doc["nodes"][0]["host_memory"]["capacity"] = "50GB"
    small = parse_topology(yaml.safe_dump(doc), "small-tier.yaml")
    pred = estimate(p, small, part, workload=w)
    assert not pred.shortfall_per_gpu_bytes  # the GPU side fits: only the tier is short
    assert pred.host_memory_bytes["gcp"] == pytest.approx(54.26e9, rel=0.01)
    assert pred.host_memory_bytes["gcp"] > pred.host_capacity_bytes["gcp"] == 50e9
    assert not pred.fits


def test_solve_offload_streams_the_rest_of_a_model_that_80_percent_fits(profiles):
    """Llama-3.1-8B (16.06 GB) on one GPU whose usable memory holds about 80% of it: solve --offload streams the
    fewest layers that make it fit (each streamed layer costs time), says OPTIMAL, and estimate agrees."""
    p = profiles("llama-8b")
    weights = p.weight_bytes("bf16")
    usable = 0.8 * weights + 1.0e9  # room for 80% of the weights and the KV cache of one sequence
    reserve = resolve_constants(DEFAULT, "vllm").runtime_reserve_bytes  # the default engine's (engines/vllm.py)
    context = resolve_constants(DEFAULT, "vllm").cuda_context_bytes  # the engine sees the GPU less its CUDA context
    memory_mib = int(((usable + reserve) / 0.9 + context) / 2**20)
    doc = {
        "name": "tight",
        "gpu_types": {
            "tight": {
                "memory": f"{memory_mib}MiB",
                "hbm_bandwidth": "2TB/s",
                "flops": {"bf16": "300TFLOPS"},
                "link": "pcie5",
            }
        },
        "nodes": [
            {
                "name": "box",
                "gpus": {"type": "tight", "count": 1},
                "pcie": {"bandwidth": "63GB/s", "latency": "1us"},
                "host_memory": {"capacity": "256GB", "bandwidth": "300GB/s"},
            }
        ],
    }
    topo = parse_topology(yaml.safe_dump(doc), "tight.yaml")
    w = Workload(isl=1024, osl=256)
    with pytest.raises(InfeasibleError):
        solve(p, topo, w)
    plan = solve(p, topo, w, options=SolveOptions(offload=True))
    assert plan.solver.status == "OPTIMAL"
    streamed = plan.partition.stages[0].offload_layers
    layer = held_weight_bytes(p.decoders[0], Layout(1), p, "bf16")
    shortfall = weights - usable  # about 20% of the weights: 3.2 GB, some 15 % of 32 layers' ~0.44 GB
    assert (len(streamed) - 2) * layer < shortfall + 1.0e9 <= len(streamed) * layer + 2 * layer
    again = estimate(p, topo, plan.partition, workload=w)
    assert again.fits and again.tpot_ms == pytest.approx(plan.prediction.tpot_ms, rel=1e-9)


def test_offload_layers_outside_a_tier_or_stage_are_refused(cli):
    code, _, err = cli("estimate", "-m", "llama-8b", "-t", "1xh100", "--tp", "1", "--offload-layers", "3,4")
    assert code == 1 and "host_memory" in err and "Traceback" not in err
    code, _, err = cli(
        "estimate", "-m", "llama-8b", "-t", f"{OFFLOAD}/1xt4.yaml", "--tp", "1", "--offload-layers", "40"
    )
    assert code == 1 and "--offload-layers" in err
    code, _, err = cli("solve", "-m", "llama-8b", "-t", "1xh100", "--offload")
    assert code == 1 and "host_memory" in err


# --- what-ifs ----------------------------------------------------------------------------------------------
def test_what_if_scales_a_copy_and_leaves_the_machine_alone(profiles):
    topo = load_topology("8xl40s")
    faster = apply_what_if(topo, parse_what_if("hbm=2x,pcie=1.5"))
    assert faster.gpus[0].spec.hbm_bytes_per_s == 2 * topo.gpus[0].spec.hbm_bytes_per_s
    assert topo.gpus[0].spec.hbm_bytes_per_s == 0.864e12  # the loaded machine is shared: never changed
    assert faster.hash != topo.hash and "hbm=2x" in faster.name
    p = profiles("llama-8b")
    part = make_partition(p, topo, tp=1, gpu_ids=[0])
    w = Workload()
    base, fast = estimate(p, topo, part, workload=w), estimate(p, faster, part, workload=w)
    assert fast.time_breakdown_ms["weights"] == pytest.approx(base.time_breakdown_ms["weights"] / 2)


@pytest.mark.parametrize(
    "text,words", [("hbm", "factor"), ("disk=2x", "target"), ("hbm=0", "at least 1/64"), ("hbm=1000x", "at most")]
)
def test_bad_what_ifs_say_what_is_wrong(cli, text, words):
    code, _, err = cli("estimate", "-m", "llama-8b", "-t", "1xh100", "--tp", "1", "--what-if", text)
    assert code == 1 and words in err and "Traceback" not in err


@pytest.mark.parametrize(
    "args,words",
    [
        (["--spec-acceptance", "0.8"], "--spec-tokens"),
        (["--spec-tokens", "2", "--spec-acceptance", "1.0"], "--spec-acceptance"),
        (["--mlp-sparsity", "1.5"], "--mlp-sparsity"),
        (["--spec-tokens", "40"], "--spec-tokens"),
    ],
)
def test_bad_remedy_options_name_the_option(cli, args, words):
    code, _, err = cli("estimate", "-m", "llama-8b", "-t", "1xh100", "--tp", "1", *args)
    assert code == 1 and words in err and "Traceback" not in err


# --- planner remedies --------------------------------------------------------------------------------------
def test_remedies_on_8xl40s_rank_every_remedy_against_the_baseline(cli, tmp_path):
    png = tmp_path / "remedies.png"
    code, out, err = cli("remedies", "-m", "llama-70b", "-t", "8xl40s", "-c", "1,32", "--plot", str(png), "--json")
    assert code == 0, err
    result = json.loads(out)
    rows = {(r["remedy"], r["concurrency"]): r for r in result["rows"]}
    assert rows[("baseline", 1)]["fits"] and rows[("baseline", 1)]["tpot_change"] == 0
    for c in (1, 32):
        assert rows[("int4 weights", c)]["tpot_change"] < -0.3  # a quarter of the bytes, re-solved
        assert rows[("draft k=3 a=0.7", c)]["tokens_per_s_change"] > 0.2
    assert not any(r["remedy"].startswith("MTP") for r in result["rows"])  # Llama-3.1 ships no MTP layers (issue 26)
    # contextual sparsity pays at one sequence and vanishes at 32 (the union of 32 tokens' rows is nearly all)
    assert rows[("act. sparse 40%", 1)]["tpot_change"] < -0.15
    assert abs(rows[("act. sparse 40%", 32)]["tpot_change"]) < 0.01
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_remedies_for_405b_on_4xl40s_only_the_tier_makes_a_plan(cli):
    code, out, err = cli("remedies", "-m", "llama-405b", "-t", "4xl40s", "-c", "1", "--json")
    assert code == 0, err
    rows = {r["remedy"]: r for r in json.loads(out)["rows"]}
    assert not rows["baseline"]["fits"] and not rows["int4 weights"]["fits"]
    tier = rows["host tier"]
    assert tier["fits"] and tier["streamed_layers"] and tier["breakdown_ms"]["offload"] > 0
    assert rows["int4 + host tier"]["fits"] and rows["int4 + host tier"]["tpot_ms"] < tier["tpot_ms"]


def test_launch_sets_cpu_offload_gb_and_refuses_what_cannot_stream(cli, tmp_path):
    plan = tmp_path / "plan.json"
    code, _, err = cli("solve", "-m", "llama-405b", "-t", "4xl40s", "--offload", "-o", str(plan))
    assert code == 0, err
    out_dir = tmp_path / "vllm"
    code, _, err = cli("launch", str(plan), "--engine", "vllm", "-o", str(out_dir))
    assert code == 0, err
    script = (out_dir / "vllm-server.sh").read_text()
    streamed = len(json.loads(plan.read_text())["stages"][0]["offload_layers"])
    # a 405B layer: attention 2 x 16384^2 + 2 x 16384 x 1024, MLP 3 x 16384 x 53248 = 3.187B parameters, 6.37 GB
    # in bf16; a quarter of each streamed layer per GPU at TP4, in GiB, rounded up
    gib = streamed * (2 * 16384**2 + 2 * 16384 * 1024 + 3 * 16384 * 53248) * 2 / 4 / 2**30
    assert f"--cpu-offload-gb {int(gib) + 1} " in script
    code, _, err = cli("launch", str(plan), "--engine", "trtllm", "-o", str(tmp_path / "trt"))
    assert code == 2 and "host memory" in err


def test_scripts_say_which_modelled_remedies_they_do_not_set(cli, tmp_path):
    plan = tmp_path / "plan.json"
    code, _, err = cli(
        "solve", "-m", "llama-8b", "-t", "1xh100", "--spec-tokens", "2", "--spec-acceptance", "0.7", "-o", str(plan)
    )
    assert code == 0, err
    code, _, err = cli("launch", str(plan), "--engine", "vllm", "-o", str(tmp_path / "v"))
    assert code == 0, err
    script = next((tmp_path / "v").glob("*.sh")).read_text()
    assert "NOTE: the prediction assumes speculative decoding (k=2" in script
