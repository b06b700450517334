"""Prefill/decode disaggregation: the plan space, the physics (hand-checked), and the published xPyD rows."""

from __future__ import annotations

import statistics
from collections import defaultdict

import pytest

from planner.disagg.corpus import disagg_cases
from planner.disagg.cost import estimate_disagg, exposed_transfer_s, kv_handoff, kv_handoff_bytes
from planner.disagg.plan import Pool, Pools, PoolsSpec, make_pools
from planner.disagg.ttft import PD_ADMISSION_S, PD_HANDSHAKE_S, first_wave_admission_s
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Plan, Workload

# Llama-3.1-8B: 32 layers x 8 KV heads x head_dim 128 x (K and V) x 2 bytes (bf16) = 131,072 bytes per token.
LLAMA8_KV_BYTES_PER_TOKEN = 32 * 8 * 128 * 2 * 2


def test_kv_bytes_of_one_request_by_hand():
    profile = load_profile("Llama-3.1-8B")
    assert kv_handoff_bytes(profile, 1000, "bf16") == LLAMA8_KV_BYTES_PER_TOKEN * 1000
    assert kv_handoff_bytes(profile, 1000, "fp8") == LLAMA8_KV_BYTES_PER_TOKEN * 1000 / 2


def _pools(prefill: list[int], decode: list[int], **kw) -> Pools:
    return Pools(
        prefill=Pool(role="prefill", instances=1, tp=len(prefill), gpu_ids=[prefill]),
        decode=Pool(role="decode", instances=1, tp=len(decode), gpu_ids=[decode]),
        **kw,
    )


def test_kv_handoff_crosses_the_nic_at_its_bandwidth():
    """131.072 MB (isl 1000) over one 400 Gb/s NIC (2x8xh100-ib: 50 GB/s) takes 2.62 ms at full line rate; the
    fabric's efficiency may only make it slower, by less than 30%. Inside a node NVSwitch (450 GB/s) is > 5x faster."""
    profile, topo = load_profile("Llama-3.1-8B"), load_topology("2x8xh100-ib")
    work = Workload(isl=1000, osl=100)
    across, by_class = kv_handoff(profile, topo, _pools([0], [8]), work)
    line_rate_s = LLAMA8_KV_BYTES_PER_TOKEN * 1000 / 50e9
    assert line_rate_s <= across <= 1.3 * line_rate_s
    assert by_class["network"] == LLAMA8_KV_BYTES_PER_TOKEN * 1000
    inside, _ = kv_handoff(profile, topo, _pools([0], [1]), work)
    assert across > 5 * inside


def test_tp_decode_ranks_each_receive_their_shard():
    """Decode TP2 (8 KV heads split 4 + 4): each decode GPU receives half the KV; a TP1 prefill GPU sends both."""
    profile, topo = load_profile("Llama-3.1-8B"), load_topology("2x8xh100-ib")
    _, by_class = kv_handoff(profile, topo, _pools([0], [8, 9]), Workload(isl=1000, osl=100))
    assert by_class["network"] == pytest.approx(LLAMA8_KV_BYTES_PER_TOKEN * 1000)


def test_layerwise_overlap_hides_the_transfer_behind_the_prefill():
    assert exposed_transfer_s(0.010, 0.050, 10, overlap=False) == 0.010
    assert exposed_transfer_s(0.010, 0.050, 10, overlap=True) == pytest.approx(0.001)
    assert exposed_transfer_s(0.080, 0.050, 10, overlap=True) == pytest.approx(0.008 + 0.030)


def _gpt_oss(prefill: int, decode: int, work: Workload, **kw):
    topo = load_topology("8xh200")
    pools = make_pools(PoolsSpec(prefill_instances=prefill, prefill_tp=2, decode_instances=decode, decode_tp=2), 8)
    return pools, estimate_disagg(load_profile("gpt-oss-120b"), topo, pools, work, **kw)


def test_decode_pool_holds_every_running_sequence_prefill_only_its_batch():
    work = Workload(concurrency=64, isl=2048, osl=1024, weight_dtype="mxfp4", mode="serving")
    pools, r = _gpt_oss(1, 3, work)
    small = _gpt_oss(1, 3, work.model_copy(update={"concurrency": 8}))[1]
    decode_gpu, prefill_gpu = pools.decode.gpu_ids[0][0], pools.prefill.gpu_ids[0][0]
    assert r.decode_memory_per_gpu_bytes[decode_gpu] > small.decode_memory_per_gpu_bytes[decode_gpu]
    # the prefill pool's memory does not grow with the decoding sequences: it holds only the prompts it prefills
    assert r.prefill_memory_per_gpu_bytes[prefill_gpu] == small.prefill_memory_per_gpu_bytes[prefill_gpu]
    assert r.prefill_batch == 8192 // 2048  # the engine's 8,192-token step budget over isl


def test_rate_matching_names_the_pool_that_limits():
    """Long prompts, short outputs: one prefill instance cannot keep three decode instances busy."""
    work = Workload(concurrency=128, isl=32768, osl=256, weight_dtype="mxfp4", mode="closed")
    one_prefill = _gpt_oss(1, 3, work)[1]
    assert one_prefill.limited_by == "prefill" and one_prefill.prefill_utilisation == pytest.approx(1.0)
    assert _gpt_oss(3, 1, work)[1].tokens_per_s > one_prefill.tokens_per_s
    serving = _gpt_oss(1, 3, work.model_copy(update={"mode": "serving"}))[1]
    assert serving.problem and "prefill pool admits" in serving.problem


def test_ttft_is_the_sum_of_its_parts_and_tpot_has_no_prefill_in_it():
    work = Workload(concurrency=32, isl=4096, osl=512, weight_dtype="mxfp4", mode="serving")
    _, r = _gpt_oss(2, 2, work)
    assert r.ttft_ms == pytest.approx(sum(r.ttft_breakdown_ms.values()))
    assert r.ttft_breakdown_ms["first_decode"] == pytest.approx(r.tpot_ms)
    # the decode pool's TPOT does not depend on the prompt's prefill cost beyond its context: a shorter prompt
    # changes only the context read, so the prefill-free TPOT stays within the KV read's share
    _, short = _gpt_oss(2, 2, work.model_copy(update={"isl": 128}))
    assert short.tpot_ms <= r.tpot_ms


def test_first_wave_admissions_by_hand():
    """64 clients start at once on 2 decode instances: 32 each, admitted one after another, so the mean one waits
    (32 - 1) / 2 = 15.5 admissions of 29 ms = 449.5 ms; that first wave is 64 of the run's 500 prompts (0.128), so
    the run's mean TTFT carries 0.128 x 449.5 = 57.536 ms. One client per decode instance waits for none."""
    assert PD_ADMISSION_S == 0.029
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=500) == pytest.approx(0.057536)
    assert first_wave_admission_s(concurrency=2, decode_instances=2, prompts=500) == 0.0
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=None) == 0.0
    # a run shorter than its concurrency is all first wave: 31 clients x 29 ms / 2 = 449.5 ms
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=32) == pytest.approx(0.4495)


def test_handshake_and_first_wave_are_in_ttft():
    """Closed loop with the run's prompt count: both parts are in TTFT's breakdown, the first wave as by hand (2P2D,
    64 clients, 500 prompts: 57.536 ms); in serving mode there is no first wave, the hand-shake stays. A lone
    client on one prefill instance queues behind nobody (the first-wave queue is never negative)."""
    work = Workload(concurrency=64, isl=2048, osl=512, weight_dtype="mxfp4", mode="closed")
    _, r = _gpt_oss(2, 2, work, prompts=500)
    assert r.ttft_breakdown_ms["first_wave"] == pytest.approx(57.536)
    assert r.ttft_breakdown_ms["handshake"] == pytest.approx(PD_HANDSHAKE_S * 1e3)
    assert r.ttft_ms == pytest.approx(sum(r.ttft_breakdown_ms.values()))
    serving = _gpt_oss(2, 2, work.model_copy(update={"mode": "serving"}))[1]
    assert serving.ttft_breakdown_ms["first_wave"] == 0.0 and serving.ttft_breakdown_ms["handshake"] > 0
    lone = _gpt_oss(1, 3, work.model_copy(update={"concurrency": 1}), prompts=50)[1]
    assert lone.ttft_breakdown_ms["queue"] >= 0.0


def test_plan_with_pools_round_trips_and_version_2_still_loads(tmp_path):
    from planner.plan_io import load_plan  # noqa: F401  (the reader `launch` uses)

    pools = make_pools(PoolsSpec(prefill_instances=1, prefill_tp=2, decode_instances=3, decode_tp=2), 8)
    assert Pools.model_validate_json(pools.model_dump_json()) == pools
    assert pools.ratio == "1P3D" and pools.n_gpus == 8
    with pytest.raises(ValueError, match="used twice"):
        Pools(prefill=pools.prefill, decode=pools.decode.model_copy(update={"gpu_ids": [[0, 1]] * 3}))
    assert "pools" in Plan.model_fields


# --- published rows ------------------------------------------------------------------------------------


def _predicted():
    cases, _ = disagg_cases()
    out = []
    for k in cases:
        topo = load_topology(k.topology)
        pools = make_pools(k.spec, topo.n_gpus)
        work = Workload(concurrency=k.concurrency, isl=k.isl, osl=k.osl, weight_dtype=k.weight_dtype, mode="closed")
        out.append((k, estimate_disagg(load_profile(k.model), topo, pools, work, prompts=k.entry.row.num_prompts)))
    return out


@pytest.fixture(scope="module")
def predicted():
    return _predicted()


def test_published_rows_that_map(predicted):
    """Rows that map: dstack's gpt-oss-120b 1P3D / 2P2D / 3P1D TP2 sweep on 8 x H200 with SGLang (42 rows;
    dstackai/benchmarks@06c957a comparison/pd_ratio), SemiAnalysis's DeepSeek-R1 1P1D TP16 on 4 x 8 H100 (2) and
    Mooncake's Qwen3-235B 1P1D TP8 TTFT sweep on 2 x 8 H20 (9).
    The rest lack pool sizes or TP, are open-loop rates, or run on machines with no shipped topology."""
    publishers = {k.entry.publisher for k, _ in predicted}
    assert len(predicted) >= 53 and len(publishers) >= 3


def _median_error(predicted, name: str) -> float:
    errors = [
        abs(getattr(r, name) / getattr(k, name) - 1)
        for k, r in predicted
        if getattr(k, name) and k.entry.publisher.startswith("dstack")
    ]
    return statistics.median(errors)


def test_median_errors_on_dstacks_xpyd_sweep(predicted):
    """On dstack's 42 rows, measured by this test's own numbers with the corpus fit of 2026-12-02: TPOT 10.3%, output
    tokens/s 16.5%, TTFT 30.0% (52.2% before planner.disagg.ttft's hand-shake and first-wave admissions, whose two
    constants are fitted on these rows: 41.2% with the hand-shake alone, 34.1% with the first-wave admissions alone).
    Priced with the default vLLM profile's constants everywhere (estimate_disagg resolves the engine's step budget
    and request overhead as estimate does; SGLang's own profile, whose MoE kernels are not yet fitted, gives 48%
    TPOT). Issue 28's targets are 15% / 15% / 30%: TTFT meets its target, at the edge, tokens/s does not yet."""
    assert _median_error(predicted, "tpot_ms") <= 0.11
    assert _median_error(predicted, "tokens_per_s") <= 0.17
    assert _median_error(predicted, "ttft_ms") <= 0.30


def test_xpyd_ranking_against_the_measured_order(predicted):
    """Per (concurrency, isl, osl) of dstack's sweep, the three ratios ordered by TPOT: lower decode load per
    instance (more D) is faster. Count the studies where the planner's order equals the measured one."""
    studies = defaultdict(list)
    for k, r in predicted:
        if k.entry.publisher.startswith("dstack"):
            studies[(k.concurrency, k.entry.row.isl, k.entry.row.osl)].append((k, r))
    agree = 0
    for rows in studies.values():
        measured = [k.spec.decode_instances for k, _ in sorted(rows, key=lambda kr: kr[0].tpot_ms)]
        planned = [k.spec.decode_instances for k, _ in sorted(rows, key=lambda kr: kr[1].tpot_ms)]
        agree += measured == planned
    assert len(studies) == 15
    assert agree >= AGREE_TPOT_ORDER


#: Studies (of 15) whose TPOT order over 1P3D / 2P2D / 3P1D the planner reproduces, as measured by this test.
AGREE_TPOT_ORDER = 14


def test_mooncakes_h20_ttft_sweep(predicted):
    """Mooncake's SGLang 1P1D TP8 Qwen3-235B-A22B rows on 2 x 8 H20 over RoCE (kvcache-ai/Mooncake@3b5a594:
    docs/source/performance/sglang/sglang-benchmark-results-v1.md, 'Detailed Performance Data'; one client, prompts
    of 128 to 32,768 tokens; TTFT only): 9 rows map (topologies/2x8xh20-roce.yaml). Measured by this test (2026):
    median |TTFT error| 74.7% with the fit of 2026-12-02 (63.3% before the PD hand-shake fitted on dstack's rows,
    88.9% before that fit); from 1,024 tokens up the planner over-predicts by 68-102%: its prefill is priced at the
    corpus's fitted flops_efficiency 0.45 while these rows imply ~80% of H20's 148 TFLOP/s bf16 (32,768 tokens of
    Qwen3-235B-A22B: ~3.1 PFLOP of GEMMs and attention in 3.26 s on 8 GPUs), a planner/cost question. At 128
    tokens it under-predicts by 10% (32% before the hand-shake). What holds is asserted."""
    rows = sorted((k.isl, k.ttft_ms, r.ttft_ms) for k, r in predicted if k.entry.file == "disagg-mooncake.yaml")
    assert [isl for isl, _, _ in rows] == [128 << i for i in range(9)]
    errors = [p / m - 1 for _, m, p in rows]
    assert statistics.median(abs(e) for e in errors) <= 0.75
    assert all(e > 0.5 for e in errors[3:])  # over-predicted from 1,024 tokens on
    predicted_ttft = [p for _, _, p in rows]
    assert predicted_ttft == sorted(predicted_ttft)  # longer prompts take longer, as measured past 1,024 tokens
    assert [m for isl, m, _ in rows if isl >= 1024] == sorted(m for isl, m, _ in rows if isl >= 1024)


def test_rows_that_do_not_map_say_why():
    """llm-d's rows (disagg-llm-d.yaml) are open-loop rates (the mapping needs a closed loop's concurrency) and one
    TPU v7 row counting chips per pool but TP in cores; Mooncake's A10 rows are open-loop with KV through Redis or a
    TCP store, its H800 rows have no shipped topology. Counted as this test finds them."""
    from collections import Counter

    _, skipped = disagg_cases()
    why = {
        f: Counter(reason for e, reason in skipped if e.file == f)
        for f in ("disagg-llm-d.yaml", "disagg-mooncake.yaml")
    }
    assert why["disagg-llm-d.yaml"] == {
        "load open without a concurrency": 3,
        "prefill pool: 4 GPUs are not 1 x tp 8 (attention DP is not mapped)": 1,
    }
    assert why["disagg-mooncake.yaml"] == {
        "load open without a concurrency": 65,
        "no shipped topology for 16 x h800": 9,
    }
