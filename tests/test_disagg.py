"""Prefill/decode disaggregation: the plan space, the physics (hand-checked), and the published xPyD rows."""

from __future__ import annotations

import statistics
from collections import defaultdict

import pytest

from planner.calibrate.corpus import load_corpus
from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.disagg.corpus import TOTALS, case_workload, disagg_cases, ratio_studies, rerun_prefix_hit
from planner.disagg.cost import (
    estimate_disagg,
    exposed_transfer_s,
    kv_handoff,
    kv_handoff_bytes,
    prefill_service,
    uncached_tokens,
)
from planner.disagg.drain import DRAIN_SERVICES, drain_s, measured_drain_services, run_requests_per_s
from planner.disagg.plan import Pool, Pools, PoolsSpec, make_pools
from planner.disagg.ttft import PD_ADMISSION_S, PD_HOST_S, first_wave_admission_s
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
    (32 - 1) / 2 = 15.5 admissions of 32.7 ms = 506.85 ms; that first wave is 64 of the run's 500 prompts (0.128), so
    the run's mean TTFT carries 0.128 x 506.85 = 64.8768 ms. One client per decode instance waits for none."""
    assert PD_ADMISSION_S == 0.0327
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=500) == pytest.approx(0.0648768)
    assert first_wave_admission_s(concurrency=2, decode_instances=2, prompts=500) == 0.0
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=None) == 0.0
    # a run shorter than its concurrency is all first wave: 31 clients x 32.7 ms / 2 = 506.85 ms
    assert first_wave_admission_s(concurrency=64, decode_instances=2, prompts=32) == pytest.approx(0.50685)


def test_host_time_and_first_wave_are_in_ttft():
    """Closed loop with the run's prompt count: both parts are in TTFT's breakdown, the first wave as by hand (2P2D,
    64 clients, 500 prompts: 64.8768 ms); in serving mode there is no first wave, the host time stays. A lone
    client on one prefill instance queues behind nobody (the first-wave queue is never negative)."""
    work = Workload(concurrency=64, isl=2048, osl=512, weight_dtype="mxfp4", mode="closed")
    _, r = _gpt_oss(2, 2, work, prompts=500)
    assert r.ttft_breakdown_ms["first_wave"] == pytest.approx(64.8768)
    assert r.ttft_breakdown_ms["host"] == pytest.approx(PD_HOST_S * 1e3)
    assert r.ttft_ms == pytest.approx(sum(r.ttft_breakdown_ms.values()))
    serving = _gpt_oss(2, 2, work.model_copy(update={"mode": "serving"}))[1]
    assert serving.ttft_breakdown_ms["first_wave"] == 0.0 and serving.ttft_breakdown_ms["host"] > 0
    lone = _gpt_oss(1, 3, work.model_copy(update={"concurrency": 1}), prompts=50)[1]
    assert lone.ttft_breakdown_ms["queue"] >= 0.0


def test_host_time_caps_each_instance_by_hand():
    """gpt-oss-120b, 2,048-token prompts, 64 clients on 1P3D: a prefill step carries 8,192 // 2,048 = 4 prompts, so
    the instance admits 4 / (step + 4 x 17.1 ms) requests/s; the three decode instances admit 3 / 17.1 ms = 175.4.
    With 3P1D and prompts of 128 tokens, which the prefill pool takes at ~3 / 17.1 ms, the one decode instance's
    58.5 requests/s is the cap: 2,000 clients with 16-token outputs are held there."""
    assert PD_HOST_S == 0.0171
    work = Workload(concurrency=64, isl=2048, osl=512, weight_dtype="mxfp4", mode="closed")
    _, r = _gpt_oss(1, 3, work)
    step_s = r.prefill_step_ms / 1e3
    assert r.prefill_batch == 4
    assert r.prefill_capacity_requests_per_s == pytest.approx(4 / (step_s + 4 * PD_HOST_S))
    many = work.model_copy(update={"concurrency": 2000, "isl": 128, "osl": 16})
    _, held = _gpt_oss(3, 1, many)
    assert held.limited_by == "decode-admission"
    assert held.requests_per_s == pytest.approx(1 / PD_HOST_S)
    serving = _gpt_oss(3, 1, many.model_copy(update={"mode": "serving", "concurrency": 1500}))[1]
    assert serving.problem and "schedulers admit 58.5" in serving.problem
    # with attention DP each rank schedules its own requests: a TP1 x DP2 decode instance admits 2 / 17.1 ms
    spec = PoolsSpec(prefill_instances=3, prefill_tp=2, decode_instances=1, decode_tp=1, decode_dp=2, decode_ep=2)
    pools = make_pools(spec, 8)
    dp2 = estimate_disagg(load_profile("gpt-oss-120b"), load_topology("8xh200"), pools, many)
    assert dp2.limited_by == "decode-admission" and dp2.requests_per_s == pytest.approx(2 / PD_HOST_S)


def test_prefill_computes_only_what_its_cache_lacks():
    """A prompt of 2,048 tokens whose first 2,047 its prefill instance holds: the step computes one token (a batch of
    them fills the clients, not the token budget), and the hand-off still moves all 2,048 tokens' KV."""
    cached = Workload(
        concurrency=64, isl=2048, osl=512, weight_dtype="mxfp4", mode="closed", prefix_tokens=2047, prefix_hit=1.0
    )
    assert uncached_tokens(cached) == 1
    assert uncached_tokens(cached.model_copy(update={"prefix_hit": 0.5})) == round(2048 - 0.5 * 2047)
    _, hit = _gpt_oss(1, 3, cached)
    _, cold = _gpt_oss(1, 3, cached.model_copy(update={"prefix_tokens": 0, "prefix_hit": 0.0}))
    assert hit.prefill_batch == 64  # every client's prompt in one step
    assert hit.ttft_breakdown_ms["prefill"] < cold.ttft_breakdown_ms["prefill"] / 10
    assert hit.kv_bytes_per_request == cold.kv_bytes_per_request


def test_closed_loop_cycle_holds_every_ttft_part():
    """Little's law over a client's cycle: c = X (TTFT + (osl - 1) TPOT), every TTFT part in it (request overhead,
    host time and first wave too), when no pool caps X (1P3D, 32 clients, 128-token prompts)."""
    work = Workload(concurrency=32, isl=128, osl=600, weight_dtype="mxfp4", mode="closed")
    _, r = _gpt_oss(1, 3, work)
    assert r.limited_by == "load"
    cycle_s = (r.ttft_ms + (work.osl - 1) * r.tpot_ms) / 1e3
    assert r.requests_per_s * cycle_s == pytest.approx(32, rel=1e-6)


def test_run_drain_by_hand():
    """500 requests from 32 clients at 10 requests/s steady, 1 s in service each: the run lasts 500 / 10 = 50 s and a
    tail of 1.1 x 31 / 32 x 1 s = 1.065625 s, so it measures 500 / 51.065625 = 9.791323 requests/s. A lone client
    has no tail."""
    assert DRAIN_SERVICES == 1.1
    assert drain_s(concurrency=32, served_s=1.0) == pytest.approx(1.065625)
    assert run_requests_per_s(10.0, concurrency=32, prompts=500, served_s=1.0) == pytest.approx(500 / 51.065625)
    assert run_requests_per_s(10.0, concurrency=1, prompts=500, served_s=1.0) == pytest.approx(10.0)
    # the fit's formula read backwards: a load-bound run (32 clients, 1 s each: 32 requests/s) and its tail
    run_s = 500 / run_requests_per_s(32.0, concurrency=32, prompts=500, served_s=1.0)
    assert measured_drain_services(concurrency=32, prompts=500, run_s=run_s, served_s=1.0) == pytest.approx(1.1)


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
        work = case_workload(k)
        out.append((k, estimate_disagg(load_profile(k.model), topo, pools, work, prompts=k.entry.row.num_prompts)))
    return out


@pytest.fixture(scope="module")
def predicted():
    return _predicted()


def _case(predicted, *, ratio: str, concurrency: int, isl: float, osl: float):
    """dstack's row of `ratio` at (concurrency, asked isl, asked osl), with its prediction."""
    (found,) = [
        (k, r)
        for k, r in predicted
        if k.entry.publisher == "dstack"
        and f"{k.spec.prefill_instances}P{k.spec.decode_instances}D" == ratio
        and (k.concurrency, k.entry.row.isl, k.entry.row.osl) == (concurrency, isl, osl)
    ]
    return found


def test_published_rows_that_map(predicted):
    """Rows that map: dstack's gpt-oss-120b 1P3D / 2P2D / 3P1D TP2 sweep on 8 x H200 with SGLang (42 rows;
    dstackai/benchmarks@06c957a comparison/pd_ratio), Mooncake's Qwen3-235B 1P1D TP8 TTFT sweep on 2 x 8 H20 (9) and
    its vLLM v1 Qwen3-8B 1P1D TP8 TTFT sweep on 2 x 8 H800 (9; topologies/2x8xh800-roce.yaml).
    The rest lack pool sizes or TP, are open-loop rates, ran speculative decoding (SemiAnalysis's DeepSeek-R1 rows:
    MTP, its draft count and acceptance not given), or run on machines with no shipped topology."""
    publishers = {k.entry.publisher for k, _ in predicted}
    ratios = {f"{k.spec.prefill_instances}P{k.spec.decode_instances}D" for k, _ in predicted}
    assert len(predicted) == 60 and publishers == {"dstack", "Mooncake (kvcache-ai)"}
    assert ratios == {"1P1D", "1P3D", "2P2D", "3P1D"}


def _median_error(predicted, name: str, publisher: str | None = None) -> float:
    errors = [
        abs(getattr(r, name) / getattr(k, name) - 1)
        for k, r in predicted
        if getattr(k, name) and (publisher is None or k.entry.publisher == publisher)
    ]
    return statistics.median(errors)


def test_acceptance_medians_on_every_mapped_row(predicted):
    """Issue 28's acceptance on every row that maps (60: 42 of dstack's with TPOT and tokens/s, 18 of Mooncake's with
    TTFT only; the errors computed here from the rows' published numbers), as this test measures them: TPOT 11.6%,
    output tokens/s 11.0% (targets 15%: met); TTFT 27.9% (target 30%: met; 30.1% with the MoE layers' activation
    passes priced, planner.cost.step.moe_activation_bytes, before the host time was refitted on its row by its own
    rule, 30.2% before those passes, 32.1% before gpt-oss's 64-wide heads were priced at FlashAttention-3's rate for
    them, 33.0% before the H20's kernel peak share), dstack's 42 rows 24.8% (30.7%) and Mooncake's 18 rows 34.5%
    (its H20 rows' prefill priced at planner/cost's
    fitted 45% of peak x 1.28 where they imply ~80%; on its H800 rows short prompts come out over, long ones under).
    The bounds sit just above the measured figures, so that losing any of the mechanisms that brought tokens/s from
    16.5% (the run's drain, the schedulers' host time, the reruns' cached prompts) fails here."""
    assert _median_error(predicted, "tpot_ms") <= 0.12
    assert _median_error(predicted, "tokens_per_s") <= 0.115
    assert _median_error(predicted, "ttft_ms") <= 0.285
    assert _median_error(predicted, "ttft_ms", "dstack") <= 0.255
    assert _median_error(predicted, "ttft_ms", "Mooncake (kvcache-ai)") <= 0.35


def test_xpyd_ranking_by_tokens_per_s(predicted):
    """Per (concurrency, asked isl, asked osl) of dstack's sweep, its ratios (1P3D, 2P2D, 3P1D; 2048/32784 has no
    3P1D) ordered by measured and by predicted output tokens/s: 14 of the 15 studies agree (13 before gpt-oss's
    prefill attention ran at its head dim's rate: 32 clients at 32,784-token prompts, 3P1D 1,729 vs 1P3D 1,615
    tokens/s measured, now in that order), and the one that does not is a near-tie (128 clients, 2,048 / 32,784:
    2P2D 5,951 vs 1P3D 5,749 tokens/s measured, 3.5% apart)."""
    studies = ratio_studies(predicted)
    assert len(studies) == 15
    assert sum(s.agrees for s in studies) >= 14
    assert all(s.agrees for s in studies if s.measured_spread > 0.08)


def test_xpyd_ranking_against_the_measured_tpot_order(predicted):
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


def test_reruns_of_one_sweep_find_their_prompts_cached(predicted):
    """dstack ran each sweep at 128, then 64, then 32 clients with the same seeded prompts (file names' start times:
    1p3d_conc128_in2048_out128_20250923_033738, conc64 ..._033822, conc32 ..._033843): the later two are reruns. On
    1P3D's one prefill instance they find every prompt cached (500 x 2,046 tokens x 36,864 bytes of full-attention
    KV = 37.7 GB, within its 2 H200s); with 32,784-token prompts (604 GB) they cannot; on 2P2D's two instances the
    router's pairing is not known, so none is assumed."""
    first, _ = _case(predicted, ratio="1P3D", concurrency=128, isl=2048.0, osl=128.0)
    second, _ = _case(predicted, ratio="1P3D", concurrency=64, isl=2048.0, osl=128.0)
    third, _ = _case(predicted, ratio="1P3D", concurrency=32, isl=2048.0, osl=128.0)
    assert (first.reruns, second.reruns, third.reruns) == (0, 1, 2)
    assert [rerun_prefix_hit(k) for k in (first, second, third)] == [0.0, 1.0, 1.0]
    long, _ = _case(predicted, ratio="1P3D", concurrency=64, isl=32784.0, osl=2048.0)
    assert long.reruns == 1 and rerun_prefix_hit(long) == 0.0
    two, _ = _case(predicted, ratio="2P2D", concurrency=64, isl=2048.0, osl=128.0)
    assert two.reruns == 1 and rerun_prefix_hit(two) == 0.0
    assert case_workload(second).prefix_tokens == second.isl - 1


def test_drain_constant_is_its_fit_on_dstacks_1p1d_rows():
    """DRAIN_SERVICES is the median tail, in service times, of dstack's 1P1D runs (which do not map: their TP is not
    stated), computed here from each row's published figures alone: run length 500 / requests_per_s, service time
    mean TTFT + (mean output - 1) x mean ITL, over its complete runs whose TTFT is under a fifth of that (the
    load-bound ones): 10 rows, median 1.14."""
    tails = []
    for e in load_corpus():
        r = e.row
        if e.publisher != "dstack" or r.disagg is None or r.disagg.prefill_tp is not None:
            continue
        out, done, _ = (float(g) for g in TOTALS.search(r.notes or "").groups())
        served_s = (r.ttft_ms + (out / done - 1) * r.itl_ms) / 1e3
        if done == r.num_prompts and r.ttft_ms / 1e3 < served_s / 5:
            run_s = done / r.requests_per_s
            tails.append(
                measured_drain_services(concurrency=r.concurrency, prompts=int(done), run_s=run_s, served_s=served_s)
            )
    assert len(tails) == 10
    assert statistics.median(tails) == pytest.approx(DRAIN_SERVICES, abs=0.05)


def test_host_time_is_its_fit_on_the_one_prefill_bound_row(predicted):
    """PD_HOST_S: 1P3D, 128 clients, 2,046-token prompts, 67-token outputs (dstack, 1p3d_conc128_in2048_out128): its
    one cold prefill instance is the bottleneck (TTFT 3,961 ms of a 4.4 s cycle). The run's 500 requests at 21.82/s
    last 22.92 s; less the tail (1.1 x 127/128 x its service time outside the queue: 66 tokens at the published ITL
    and its prompt's lone step) that is 22.3 requests/s steady, a step of 4 prompts every 110.7 ms plus each one's
    host time: 1 / 22.3 - 0.1107 / 4 = 17.1 ms."""
    k, _ = _case(predicted, ratio="1P3D", concurrency=128, isl=2048.0, osl=128.0)
    topo = load_topology(k.topology)
    pools = make_pools(k.spec, topo.n_gpus)
    work = case_workload(k)
    svc = prefill_service(load_profile(k.model), topo, pools, work, resolve_constants(DEFAULT, work.engine))
    prompts = k.entry.row.num_prompts
    run_s = prompts / k.entry.row.requests_per_s
    served_s = (k.osl - 1) * k.entry.row.itl_ms / 1e3 + svc.single_s
    steady = prompts / (run_s - drain_s(concurrency=k.concurrency, served_s=served_s))
    assert svc.batch == 4
    assert 1 / steady - svc.step_s / svc.batch == pytest.approx(PD_HOST_S, abs=0.0005)


def test_host_time_predicts_the_rows_it_was_not_fitted_on(predicted):
    """The host time fitted on 1P3D's one row sets 2P2D's prefill pool at 2 x 4 / (110.7 + 4 x 17.1 ms) = 44.7
    requests/s and 3P1D's one decode instance at 58.5: both pools' rows of 2,046-token prompts and ~64-token outputs
    at 64 clients measured 40.5 (2P2D) and 44.6 (3P1D) requests/s; predicted within 15% of each."""
    for ratio in ("2P2D", "3P1D"):
        k, r = _case(predicted, ratio=ratio, concurrency=64, isl=2048.0, osl=128.0)
        assert r.requests_per_s == pytest.approx(k.entry.row.requests_per_s, rel=0.15)


def test_mooncakes_h20_ttft_sweep(predicted):
    """Mooncake's SGLang 1P1D TP8 Qwen3-235B-A22B rows on 2 x 8 H20 over RoCE (kvcache-ai/Mooncake@3b5a594:
    docs/source/performance/sglang/sglang-benchmark-results-v1.md, 'Detailed Performance Data'; one client, prompts
    of 128 to 32,768 tokens; TTFT only): 9 rows map (topologies/2x8xh20-roce.yaml), none of them fitted on. Measured
    by this test: median |TTFT error| 38.5% (36% before the MoE layers' activation passes were priced,
    planner.cost.step.moe_activation_bytes; 63.4% before the H20's kernel peak share, planner/hardware/gpus.py: its
    kernels reach 1.28 times the H100's share of peak); from 1,024 tokens up the planner still over-predicts, by
    33-50%: its prefill is priced at planner/cost's fitted flops_efficiency 0.45 (x 1.28) while these rows imply ~80%
    of H20's 148 TFLOP/s bf16 (32,768 tokens of Qwen3-235B-A22B: ~3.1 PFLOP of GEMMs and attention in 3.26 s on 8
    GPUs), a planner/cost question. At 128 tokens it under-predicts by 17%. What holds is asserted."""
    rows = sorted(
        (k.isl, k.ttft_ms, r.ttft_ms)
        for k, r in predicted
        if k.entry.file == "disagg-mooncake.yaml" and k.entry.row.gpu == "h20"
    )
    assert [isl for isl, _, _ in rows] == [128 << i for i in range(9)]
    errors = [p / m - 1 for _, m, p in rows]
    assert statistics.median(abs(e) for e in errors) <= 0.39
    assert all(e > 0.3 for e in errors[3:])  # over-predicted from 1,024 tokens on
    predicted_ttft = [p for _, _, p in rows]
    assert predicted_ttft == sorted(predicted_ttft)  # longer prompts take longer, as measured past 1,024 tokens
    assert [m for isl, m, _ in rows if isl >= 1024] == sorted(m for isl, m, _ in rows if isl >= 1024)


def test_rows_that_do_not_map_say_why():
    """llm-d's rows (disagg-llm-d.yaml) are open-loop rates (the mapping needs a closed loop's concurrency) and one
    TPU v7 row counting chips per pool but TP in cores; Mooncake's A10 rows are open-loop with KV through Redis or a
    TCP store; SemiAnalysis's H100 rows ran MTP. Counted as this test finds
    them."""
    from collections import Counter

    _, skipped = disagg_cases()
    why = {
        f: Counter(reason for e, reason in skipped if e.file == f)
        for f in ("disagg-llm-d.yaml", "disagg-mooncake.yaml", "semianalysis.yaml")
    }
    assert why["disagg-llm-d.yaml"] == {
        "load open without a concurrency": 3,
        "prefill pool: 4 GPUs are not 1 x tp 8 (attention DP is not mapped)": 1,
    }
    assert why["disagg-mooncake.yaml"] == {"load open without a concurrency": 65}
    mtp = [
        (e.row.gpu, e.row.gpus)
        for e, reason in skipped
        if e.file == "semianalysis.yaml" and reason.startswith("speculative")
    ]
    assert mtp.count(("h100-sxm", 32)) == 2  # the two that mapped before, on 4 x 8 H100


def test_shared_storage_hands_off_through_host_memory_by_hand():
    """Llama-3.1-8B 1P1D TP1 on 8 x H100, 4,096-token prompts: the KV is 32 layers x 8 KV heads x 128 x 2 (K, V)
    x 2 bytes = 131,072 B a token, 536,870,912 B a request. Through files (vLLM's ExampleConnector) it goes to host
    memory over the prefill GPU's PCIe Gen5 link and back over the decode GPU's, 63 GB/s each way:
    2 x 536,870,912 / 63e9 = 17.04 ms, both legs on PCIe; NIXL over NVLink moves it in about a millisecond."""
    topo, profile = load_topology("8xh100"), load_profile("llama-8b")
    work = Workload(concurrency=1, isl=4096, osl=256)

    def pools(backend: str) -> Pools:
        return Pools(
            prefill=Pool(role="prefill", instances=1, tp=1, gpu_ids=[[0]]),
            decode=Pool(role="decode", instances=1, tp=1, gpu_ids=[[1]]),
            transfer_backend=backend,
        )

    stored = estimate_disagg(profile, topo, pools("shared-storage"), work)
    assert stored.kv_bytes_per_request == 536_870_912
    assert stored.kv_transfer_ms == pytest.approx(2 * 536_870_912 / 63e9 * 1e3)
    assert stored.kv_transfer_bytes_by_class["pcie"] == 2 * 536_870_912
    assert stored.kv_transfer_bytes_by_class["nvlink"] == 0
    nixl = estimate_disagg(profile, topo, pools("nixl"), work)
    assert nixl.kv_transfer_ms < 2 and stored.ttft_ms - nixl.ttft_ms == pytest.approx(
        stored.kv_transfer_ms - nixl.kv_transfer_ms
    )
