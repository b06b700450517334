"""Issue 23: engines as an input, MoE kernels by tile, memory by each engine's accounting, admission instead of
refusal, and the error bands cross-validation earned."""

from __future__ import annotations

import dataclasses
import math
import re
import statistics

import pytest
import yaml

from planner.calibrate import fidelity
from planner.calibrate.corpus import cases, load_corpus
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import BANDS_FILE, ENGINES, engine_profile, resolve_constants
from planner.cost.estimate import estimate
from planner.cost.memory import kv_budget_bytes
from planner.cost.shards import Layout
from planner.cost.step import StageContext, StepLoad, _expert_work
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_number_has_a_source_and_resolving_is_idempotent(engine):
    prof = engine_profile(engine)
    assert prof.version and set(prof.constants) <= set(prof.sources)
    c = resolve_constants(DEFAULT, engine)
    assert c.engine == engine and resolve_constants(c, engine) is c
    assert c.max_num_batched_tokens == prof.constants["max_num_batched_tokens"]


def test_a_calibration_profile_wins_over_the_engine():
    cal = Constants(step_overhead_s=0.0123, calibrated=("step_overhead_s",))
    assert resolve_constants(cal, "sglang").step_overhead_s == 0.0123
    assert resolve_constants(DEFAULT, "sglang").step_overhead_s != 0.0123


def test_kv_budget_by_each_engines_accounting():
    """By hand, a 140 GB GPU (t: what the engine sees after the CUDA context) holding 80 GB of weights, fraction 0.9:
    vLLM 0.9 x t - reserve - 80; SGLang 0.9 x t - 80 (its reserve lives outside the fraction); TensorRT-LLM
    0.9 x (t - 80 - reserve)."""
    w = 80e9
    for engine, expect in (
        ("vllm", lambda t, r: 0.9 * t - r - w),
        ("sglang", lambda t, r: 0.9 * t - w),
        ("trtllm", lambda t, r: 0.9 * (t - w - r)),
    ):
        c = resolve_constants(DEFAULT, engine)
        seen = 140e9 - c.cuda_context_bytes
        assert kv_budget_bytes(140e9, w, 0.9, c) == pytest.approx(expect(seen, c.runtime_reserve_bytes))


def test_grouped_gemm_pads_each_experts_tokens_to_the_tile(profiles):
    """DeepSeek-V3, 4 decode tokens, TP8 (experts sliced over 8): 256 x (1 - (1 - 8/256)^4) = 31.1 experts touched by
    32 assignments, about 1 token each, padded to vLLM's 16-row tile; FLOPs = 2 x 44,040,192 x 31.1 x 16 / 8."""
    p = profiles("deepseek-v3")
    c = resolve_constants(DEFAULT, "vllm")
    flops, padded = _expert_work(p.decoders[3], Layout(8), StepLoad(decode=4, context=1000), c)
    touched = 256 * (1 - (1 - 8 / 256) ** 4)
    assert padded == 16
    assert flops == pytest.approx(2 * 44_040_192 * touched * 16 / 8, rel=1e-12)


def test_stage_context_is_frozen_and_keyword_built(profiles):
    p = profiles("llama-8b")
    ctx = StageContext.of(
        profile=p,
        topo=load_topology("1xh100"),
        gpu_ids=[0],
        layout=Layout(1),
        weight_dtype="bf16",
        kv_dtype="bf16",
        constants=resolve_constants(DEFAULT, "vllm"),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.weight_dtype = "fp8"  # type: ignore[misc]
    assert ctx.engine == "vllm" and ctx.hw.memory_bytes > 80e9


def test_deepseek_r1_tp8_at_128_concurrent_3200_800_is_estimated_not_refused(profiles):
    """The issue's acceptance: vLLM served DeepSeek-R1 fp8 TP8 on 8x H200 at 128 concurrent 3,200/800 (dstack's
    benchmark, tests/data/corpus/dstack.yaml). The estimate fits; where the KV cache holds fewer than 128 sequences
    the rest wait for admission (a closed loop's TTFT of tens of seconds), it is not refused."""
    p = profiles("deepseek-v3")
    topo = load_topology("8xh200")
    part = make_partition(p, topo, tp=8)
    w = Workload(concurrency=128, isl=3200, osl=800, weight_dtype="fp8", mode="closed", engine="vllm")
    pred = estimate(p, topo, part, workload=w)
    assert pred.fits and pred.engine == "vllm" and pred.tpot_ms > 0
    if pred.admitted_concurrency is not None:
        assert pred.admitted_concurrency < 128 and pred.ttft_ms > 5_000


def test_admission_wait_by_hand(profiles):
    """A closed loop of n clients over k KV slots: each request waits (n / k - 1) request times (TTFT + osl x TPOT of
    the admitted batch) beyond its own TTFT, and output tokens/s are the admitted batch's."""
    p = profiles("llama-8b")
    topo = load_topology("1xh100")
    part = make_partition(p, topo, tp=1)
    base = Workload(isl=30_000, osl=2_000, mode="closed", engine="vllm")
    full = estimate(p, topo, part, workload=base.model_copy(update={"concurrency": 10_000}))
    k = full.admitted_concurrency
    assert k is not None and k < 10_000
    alone = estimate(p, topo, part, workload=base.model_copy(update={"concurrency": k}))
    request_ms = alone.ttft_ms + 2_000 * alone.tpot_ms
    assert full.tpot_ms == pytest.approx(alone.tpot_ms, rel=1e-9)
    assert full.ttft_ms == pytest.approx(alone.ttft_ms + request_ms * (10_000 / k - 1), rel=1e-9)
    assert full.tokens_per_s == pytest.approx(alone.tokens_per_s, rel=1e-9)


def test_engines_price_the_same_plan_differently(profiles):
    p = profiles("llama-70b")
    topo = load_topology("8xh100")
    part = make_partition(p, topo, tp=4, gpu_ids=[0, 1, 2, 3])
    tpots = {e: estimate(p, topo, part, workload=Workload(concurrency=16, engine=e)).tpot_ms for e in ENGINES}
    assert len({round(t, 6) for t in tpots.values()}) > 1


def _bands() -> dict:
    return yaml.safe_load(BANDS_FILE.read_text())["bands"] if BANDS_FILE.exists() else {}


def test_predictions_carry_the_band_their_class_earned(profiles):
    bands = _bands()
    if "vllm" not in bands or "tpot" not in bands["vllm"].get("dense", {}):
        pytest.skip("no cross-validation bands shipped")
    p = profiles("llama-8b")
    topo = load_topology("1xh100")
    pred = estimate(p, topo, make_partition(p, topo, tp=1), workload=Workload(concurrency=8, engine="vllm"))
    assert pred.tpot_ms_band == bands["vllm"]["dense"]["tpot"]


def test_held_out_medians_meet_what_cross_validation_reached():
    """The bands are the held-out medians of `python benchmarks/fit_serving.py --cv` (benchmarks/RESULTS.md, section
    'Fidelity'). Asserted here: the targets of issue 23 that hold on the held-out rows; the ones that do not are
    reported in RESULTS.md and not asserted."""
    bands = _bands()
    if not bands:
        pytest.skip("no cross-validation bands shipped")
    for engine, classes in bands.items():
        for cls, metrics in classes.items():
            for metric, value in metrics.items():
                assert 0 <= value < 10 and not math.isnan(value), (engine, cls, metric)
    # Ceilings just above what `python benchmarks/fit_serving.py --cv` measured held out (benchmarks/RESULTS.md,
    # 'Fidelity', round 3 session 8: 707 rows, 8 publishers, 6 training rows per group; seeds with no NIM row behind
    # them, fidelity.UNFITTED_SEEDS; request overheads fitted only where an engine has MIN_TTFT_ROWS TTFT rows;
    # SGLang's eager MoE prefill floor; TensorRT-LLM's all-reduce through NCCL; NVFP4 on FP4 tensor cores; rows
    # priced at the lengths their benchmark printed; InferenceX's closed loops at their 10 x concurrency requests;
    # SGLang's --scheduler-recv-interval where a row's script sets it; rows faster than their first wave at peak
    # left out; TensorRT-LLM on NVIDIA's ModelOpt checkpoints with their FP8 KV cache, corpus.default_kv_dtype;
    # prefill attention at the head dim's FlashAttention-3 rate, planner.cost.attention_rate; session 9: the MoE
    # layers' activation passes, planner.cost.step.moe_activation_bytes, and InferenceX's rows at their published
    # medians, test_inferencex_rows_carry_the_published_medians), all engines together: dense TPOT 11.1%, tokens/s
    # 11.5%, TTFT 29.4%, max-throughput 21.8%; MoE 27.6%, 25.8%, 44.8%, 62.0% (29.0 / 25.7 / 57.9 / 60.0% at
    # InferenceX's means; 28.3 / 25.4 / 59.2 / 61.4% before the activation passes). Session 7's table (dense 10.7 / 12.0 / 28.6 / 28.6%, MoE 28.6 / 26.3 / 60.4 / 56.2%) priced
    # those 101 rows' KV in bf16; the figures move by 1-5 points with the training sample alone (cv_spread.py).
    # Session 10: the 96 rows on engine releases older than their profile's MLA kernels (dstack's early-2025
    # DeepSeek-R1 study, planner.cost.engines.versions, tests/test_engine_versions.py) left out of fit and figures:
    # 611 rows, MoE 21.9 / 20.7 / 30.2 / 59.4%, dense unchanged.
    ceilings = {
        "dense": {"tpot": 0.12, "tokens": 0.12, "ttft": 0.30, "max_tokens": 0.22},
        "moe": {"tpot": 0.225, "tokens": 0.215, "ttft": 0.31, "max_tokens": 0.60},
    }
    for cls, metrics in ceilings.items():
        for metric, ceiling in metrics.items():
            assert bands["all"][cls][metric] <= ceiling, (cls, metric, bands["all"][cls][metric])
    # issue 23's targets that hold held out for a whole class (dense: 4 publishers, 3 engines): TPOT <= 12% (11.1%)
    # and output tokens/s <= 12% (11.5%) at the shipped training sample (offset 0; at offset 0.667 they are
    # 12.7% and 13.2%, benchmarks/cv_spread.py); dense TTFT (29.4% against 25%) does not
    assert bands["all"]["dense"]["tpot"] <= 0.12
    assert bands["all"]["dense"]["tokens"] <= 0.12


@pytest.mark.parametrize(
    "tp,utilization,logged", [(1, 0.25, 93_872), (1, 0.5, 464_848), (2, 0.25, 450_192), (2, 0.5, 1_192_160)]
)
def test_kv_capacity_matches_vllms_logged_kv_cache_size(profiles, tp, utilization, logged):
    """vLLM's 'GPU KV cache size: N tokens' for Qwen2-7B-Instruct (the Qwen2.5-7B architecture: 28 layers x 4 KV heads
    x 128 x K,V x 2 bytes = 57,344 B per token, split over TP) on A100-80GB (dennislee22/vLLM-benchmarking@b474d1e:
    README.md, tests/data/corpus/dennislee22.yaml). vLLM's reserve (0.66 GB) was derived from the TP1 rows
    (planner/cost/engines/vllm.py); the TP2 rows are held out. Within 2% (the issue asks 10%)."""
    from planner.cost.estimate import stage_capacity
    from planner.cost.shards import kv_bytes_per_token_per_gpu

    p = profiles("Qwen2.5-7B-Instruct")
    topo = load_topology("8xa100")
    part = make_partition(p, topo, tp=tp, gpu_ids=list(range(tp)))
    w = Workload(isl=1, osl=1, gpu_memory_fraction=utilization, engine="vllm")
    _, _, budget, _ = stage_capacity(p, topo, part, k=0, workload=w, c=resolve_constants(DEFAULT, "vllm"))
    per_token = sum(kv_bytes_per_token_per_gpu(n, Layout(tp), p, "bf16") for n in p.layers)
    assert per_token == 57_344 / tp
    assert budget / per_token == pytest.approx(logged, rel=0.02)


def test_kv_capacity_matches_a_held_out_vllm_log_on_h200(profiles):
    """vLLM 0.14.1 serving nvidia/Llama-3.1-70B-Instruct-FP8 (fp8 weights, fp8_e4m3 KV) on one H200 at its defaults
    (gpu_memory_utilization 0.9, 8,192-token steps) logs 'GPU KV cache size: 348,304 tokens'
    (DO-Solutions/gtc-2026-doks@32b0053:dev/vllm/benchmarks/phase0/20260224-214806/server.log; its rows are in
    tests/data/corpus/held-back/prefix-digitalocean-vllm.yaml). Nothing was fitted on it: 80 layers x 8 KV heads x
    128 x K,V x 1 byte = 163,840 B a token; the model gives 376,239 tokens, 8.0% over (the log's 'Model loading took
    67.7 GiB' and 'Available KV cache memory: 53.15 GiB' leave 5.5 GiB for activations and non-torch memory where the
    shipped reserve is 0.66 GB). Issue 23 asks 10%."""
    from planner.cost.estimate import stage_capacity
    from planner.cost.shards import kv_bytes_per_token_per_gpu

    p = profiles("llama-70b")
    topo = load_topology("8xh200")
    part = make_partition(p, topo, tp=1, gpu_ids=[0])
    w = Workload(isl=1, osl=1, engine="vllm", weight_dtype="fp8", kv_dtype="fp8")
    _, _, budget, _ = stage_capacity(p, topo, part, k=0, workload=w, c=resolve_constants(DEFAULT, "vllm"))
    per_token = sum(kv_bytes_per_token_per_gpu(n, Layout(1), p, "fp8") for n in p.layers)
    assert per_token == 80 * 8 * 128 * 2
    assert budget / per_token == pytest.approx(348_304, rel=0.10)


def test_the_fit_moves_dense_physics_on_dense_rows_and_moe_knobs_on_moe_rows(monkeypatch):
    """Two stages (planner.calibrate.fidelity.fit): the knobs every layer uses, each engine's GEMM efficiency among
    them, see only dense rows; the MoE-only knobs see only MoE rows. One shared GEMM efficiency fitted on every row
    let vLLM's offline rows slow TensorRT-LLM's prefill (NIM TTFT 14% -> 63%, benchmarks/RESULTS.md)."""
    from planner.calibrate import fidelity
    from planner.calibrate.corpus import cases

    use = [c for c in cases()[0] if fidelity.usable(c)]
    stages: list[tuple[set, set]] = []

    def descent(start, knobs, score, **_):
        seen: set = set()
        monkeypatch.setattr(fidelity, "outcomes", lambda rows, cal: seen.update(c.moe for c in rows) or [])
        score(start)
        stages.append(({k.name for k in knobs}, seen))
        return start

    monkeypatch.setattr(fidelity, "coordinate_descent", descent)
    fidelity.fit(use, rounds=1, per_group=2)
    (dense_knobs, dense_rows), (moe_knobs, moe_rows) = stages
    assert dense_rows == {False} and moe_rows == {True}
    assert {"trtllm.flops_efficiency", "vllm.flops_efficiency", "kv_hbm_efficiency"} <= dense_knobs
    assert moe_knobs == set(fidelity.MOE_KNOBS) and not moe_knobs & dense_knobs


def test_closed_loop_requests_after_the_first_wave_arrive_staggered_where_lengths_vary():
    from planner.cost.estimate import closed_drift

    varied = Workload(mode="closed", concurrency=16, num_prompts=80, osl=500, osl_dist=None)
    varied = varied.model_copy(update={"osl_dist": Workload(osl="uniform:1-999").osl_dist})
    # 80 requests, the first 16 in one wave: 64 / 80 = 0.8 of them arrive as earlier ones finish
    assert closed_drift(varied, DEFAULT) == pytest.approx(0.8)
    # identical requests finish together and keep arriving in waves: the engine's constant holds
    fixed = Workload(mode="closed", concurrency=16, num_prompts=80, osl=500)
    assert closed_drift(fixed, DEFAULT.model_copy(update={"closed_loop_drift": 0.25})) == 0.25
    unknown = varied.model_copy(update={"num_prompts": None})
    assert closed_drift(unknown, DEFAULT) == DEFAULT.closed_loop_drift


def test_staggered_newcomers_wait_for_the_engines_next_look_at_requests():
    """SGLang's --scheduler-recv-interval k (InferenceX's B200 recipes: 10 below 16 clients) receives new requests
    every k decode steps (SchedulerRecvSkipper: a decode step counts 1, anything else 1,000): a staggered newcomer
    waits (k - 1) / 2 decode steps more, when others decode. By hand at 4 clients and 40 requests: 0.9 of the
    requests are staggered (closed_drift), 3 of 4 arrive with others decoding, so TTFT grows by
    0.9 x 4.5 x 0.75 decode steps."""
    profile = load_profile("llama-8b")
    topo = load_topology("8xh100")
    part = make_partition(profile, topo, tp=1)
    base = Workload(mode="closed", concurrency=4, num_prompts=40, isl=1024, osl=1000, engine="sglang")
    base = base.model_copy(update={"osl_dist": Workload(osl="uniform:900-1100").osl_dist})
    once = estimate(profile, topo, part, workload=base)
    every10 = estimate(profile, topo, part, workload=base.model_copy(update={"scheduler_steps": 10}))
    step_ms = estimate(profile, topo, part, workload=base.model_copy(update={"mode": "serving"})).tpot_ms
    assert every10.ttft_ms - once.ttft_ms == pytest.approx(0.9 * 4.5 * 0.75 * step_ms, rel=1e-6)
    alone = base.model_copy(update={"concurrency": 1, "num_prompts": 10})  # an idle engine looks at once
    one = estimate(profile, topo, part, workload=alone)
    ten = estimate(profile, topo, part, workload=alone.model_copy(update={"scheduler_steps": 10}))
    assert ten.ttft_ms == pytest.approx(one.ttft_ms)


@pytest.mark.parametrize(
    ("length_dist", "osl", "low", "high"),
    [
        # SGLang bench_serving draws randint(L x R, L), mean L (1 + R) / 2 = osl: R = 0 -> 1 to 2 osl
        ("random:0.0", 500, 1, 1000),
        # R = 0.8, mean 900: L = 1000, from 800 to 1000
        ("random:0.8", 900, 800, 1000),
        # the vLLM blog's "~2k output (+-15%)": 1,700 to 2,300
        ("random (+-15%)", 2000, 1700, 2300),
    ],
)
def test_a_rows_output_lengths_from_its_dataset(length_dist, osl, low, high):
    from types import SimpleNamespace

    from planner.calibrate.fidelity import output_lengths

    case = SimpleNamespace(load="closed", osl=osl, entry=SimpleNamespace(row=SimpleNamespace(length_dist=length_dist)))
    dist = output_lengths(case)
    assert dist is not None and dist.spec == f"uniform:{low}-{high}"
    fixed = SimpleNamespace(load="closed", osl=osl, entry=SimpleNamespace(row=SimpleNamespace(length_dist="random")))
    assert output_lengths(fixed) is None  # no ratio given: one length


def test_cross_validation_starts_from_nothing_fitted_on_a_publisher():
    """Round two fitted kv_hbm_efficiency (0.46) and flops_efficiency (0.6) and TensorRT-LLM's host times (0.64 ms
    a step, 7 ms a request) to NVIDIA's NIM rows; NVIDIA's fold must not start there. The seeds: KV reads at the
    weights' GEMV rate (0.85), DeepGEMM's best dense shape (1,358 / 1,979 = 0.69), the engines' common host seeds."""
    cal = fidelity.start()
    for c in cal.values():
        assert c.kv_hbm_efficiency == 0.85 and c.flops_efficiency == 0.69
    assert (cal["trtllm"].step_overhead_s, cal["trtllm"].request_overhead_s) == (1e-3, 15e-3)


def test_request_overhead_is_fitted_only_where_ttft_rows_see_it():
    """An engine's request overhead only shows in TTFT at light load: with fewer than MIN_TTFT_ROWS closed-loop
    TTFT rows of it in the training sample it keeps its seed (vLLM with GPUStack held out has the vLLM project's 2)."""
    use = [c for c in cases()[0] if fidelity.usable(c) and not c.moe]
    vllm_closed = [c for c in use if c.engine == "vllm" and c.load == "closed" and c.measured.ttft_ms]
    assert "vllm" in fidelity.timed_engines(vllm_closed[: fidelity.MIN_TTFT_ROWS])
    assert "vllm" not in fidelity.timed_engines(vllm_closed[: fidelity.MIN_TTFT_ROWS - 1])
    names = {k.name for k in fidelity.knobs({"vllm", "sglang"}, timed={"sglang"})}
    assert "sglang.request_overhead_s" in names and "vllm.request_overhead_s" not in names
    assert "vllm.step_overhead_s" in names


def test_a_closed_loop_faster_than_its_first_wave_at_peak_is_not_priced():
    """SGLang cookbook, Llama-3.1-70B TP8 on 8x A100, 64 clients over 320 random prompts (mean 3,981 tokens:
    1,273,893 printed over 320): mean TTFT 633 ms. Its first 64 prompts, sent at once, need at least
    2 x 70.55e9 x 3,981 FLOPs each at 8 x 312 TFLOP/s (0.2251 s): shortest first and lengths uniform from 0, the
    wave waits 64 / 3 x 0.2251 = 4.80 s on average; over all 320 requests at least 4.80 x 64 / 320 = 0.960 s.
    The same page's 16 clients (80 prompts, 3,750 tokens) stay above theirs and are priced."""
    from planner.calibrate import fidelity
    from planner.calibrate.corpus import cases

    rows = {c.entry.index: c for c in cases()[0] if c.entry.file == "sglang-cookbook.yaml"}
    fast, slow = rows[5], rows[4]
    assert (fast.concurrency, fast.isl, fast.entry.row.num_prompts) == (64, 3981, 320)
    expected_ms = 1e3 * 2 * 70_553_706_496 * 3981 / (8 * 312e12) * 64 / 3 * 64 / 320
    assert fidelity.first_wave_floor_ms(fast) == pytest.approx(expected_ms, rel=1e-9)
    assert expected_ms == pytest.approx(960.3, abs=0.5) and fast.measured.ttft_ms < expected_ms
    assert not fidelity.consistent(fast) and not fidelity.usable(fast)
    assert slow.measured.ttft_ms > fidelity.first_wave_floor_ms(slow) and fidelity.usable(slow)
    # one client, or a median, has no floor
    assert fidelity.first_wave_floor_ms(rows[3]) is None


def test_training_sample_offset_shifts_within_each_stride():
    """A group of 20 rows sampled 6 times: strides of 20 / 6 = 3.33 rows, at offset 0 rows 0, 3, 6, 10, 13, 16
    (int(i x 3.33)); at offset 0.5 rows int((i + 0.5) x 3.33) = 1, 5, 8, 11, 15, 18. A group no larger than the
    sample is taken whole at any offset, and an offset outside [0, 1) is refused."""
    from planner.calibrate import fidelity
    from planner.calibrate.corpus import cases

    use = [c for c in cases()[0] if fidelity.usable(c)]
    big = [
        c
        for c in use
        if (c.publisher, c.engine, c.moe, str(c.load))
        == (use[0].publisher, use[0].engine, use[0].moe, str(use[0].load))
    ]
    group = big[:20]
    assert len(group) == 20
    at = {id(c): i for i, c in enumerate(group)}
    assert [at[id(c)] for c in fidelity.training_sample(group, 6)] == [0, 3, 6, 10, 13, 16]
    assert [at[id(c)] for c in fidelity.training_sample(group, 6, 0.5)] == [1, 5, 8, 11, 15, 18]
    assert [at[id(c)] for c in fidelity.training_sample(group[:5], 6, 0.9)] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="outside"):
        fidelity.training_sample(group, 6, 1.0)


def test_inferencex_rows_carry_the_published_medians():
    """InferenceX publishes each run's mean and median latencies (vngcloud/InferenceX-app@528c414:packages/app/
    cypress/fixtures/api/benchmarks.json, `metrics`); its runs send 10 x concurrency prompts after one warm-up
    prompt, and the mean TTFT is pulled up by a few requests: at 4 clients of 1,024-token prompts on 4 x MI355X
    (SGLang 0.5.12) mean 172.6 ms, median 102.2 ms, p99 823.1 ms, where 4 prompts of prefill take tens of ms.
    The 190 rows from that file carry the medians (the means kept in their notes); over them the mean is 1.78 x the
    median TTFT (quartiles 1.20 and 2.93), so a mean would price a start-up the planner does not model."""
    rows = [e.row for e in load_corpus() if "benchmarks.json (entry" in e.row.source]
    assert len(rows) == 190 and all(r.statistic == "median" for r in rows)
    first = next(r for r in rows if "hardware=mi355x framework=sglang precision=fp4 spec_method=none isl=1024 "
                 "osl=1024 decode_tp=4 decode_ep=1 conc=4 date=2026-06-11" in r.source)  # fmt: skip
    assert (first.ttft_ms, first.tpot_ms) == (102.1738, 9.648)
    assert "its means TTFT 172.6284 ms, TPOT 9.6187 ms" in first.notes and "p99 TTFT 823.1137 ms" in first.notes
    ratios = [
        float(re.search(r"its means TTFT ([0-9.]+) ms", r.notes).group(1)) / r.ttft_ms
        for r in rows
        if r.ttft_ms and "its means TTFT None" not in r.notes
    ]
    assert statistics.median(ratios) == pytest.approx(1.78, abs=0.01)
