"""Issue 25's acceptance on the calibration corpus: the open-loop rows (request rate) predicted in the statistic each
publishes. The ceilings are what the model reaches now, rounded up (benchmarks/openloop.py prints the table); the
issue's targets are 15% TPOT and 30% TTFT."""

from __future__ import annotations

import pytest

from planner.traffic.corpus_check import check, open_cases, summary


@pytest.fixture(scope="module")
def checks():
    return [check(c) for c in open_cases()]


def test_open_loop_rows_resolve_with_their_lengths_and_rates():
    cases = open_cases()
    sharegpt = [c for c in cases if c.entry.row.length_dist == "sharegpt"]
    assert sharegpt and all(c.request_rate for c in cases)
    # dstack's rows: total_input_tokens=215196 over num_prompts 1000 -> 215 tokens per prompt
    dstack = [c for c in sharegpt if c.publisher == "dstack"]
    assert dstack and {c.isl for c in dstack} == {215}
    # the same measurement copied into two corpus files counts once
    keys = [(c.engine, c.model, c.gpus, c.request_rate, c.measured.tpot_ms) for c in cases]
    assert len(keys) == len(set(keys))


def test_scheduler_fields_come_from_the_rows():
    cases = open_cases()
    dstack = [c for c in cases if c.publisher == "dstack"]
    # qps_comparison.csv columns: MI300X chunked-prefill=FALSE, num-scheduler-step=15, max-num-seqs=1024;
    # H100 chunked-prefill=TRUE, max-num-batched-tokens=512, max-num-seqs=512
    mi300x = [c for c in dstack if c.entry.row.gpu == "mi300x"]
    assert len(mi300x) == 12 and all(
        not c.chunked_prefill and c.scheduler_steps == 15 and c.max_num_seqs == 1024 for c in mi300x
    )
    h100 = [c for c in dstack if c not in mi300x]
    assert len(h100) == 3 and all(
        c.chunked_prefill and c.max_num_batched_tokens == 512 and c.max_num_seqs == 512 for c in h100
    )
    # the SGLang team's vLLM 0.6.0 runs: --num-scheduler-steps 10, which 0.6.0 allowed only with chunked prefill off
    team_vllm = [c for c in cases if c.publisher == "SGLang team" and c.engine == "vllm"]
    assert len(team_vllm) == 4 and all(not c.chunked_prefill and c.scheduler_steps == 10 for c in team_vllm)
    # Mooncake's A10 tables set each 'Non-disaggregated' row (vLLM 0.6.2's default: chunked prefill off) against its
    # 'with --enable-chunked-prefill' twin (512-token steps, vLLM 0.6's default budget with chunking)
    a10 = [c for c in cases if c.publisher.startswith("Mooncake") and c.gpus == 1]
    assert len(a10) == 10 and sum(not c.chunked_prefill for c in a10) == 5
    assert all(c.max_num_batched_tokens == 512 for c in a10 if c.chunked_prefill)
    # rows that state nothing keep the defaults
    rest = [c for c in cases if c not in dstack and c not in team_vllm and c not in a10]
    assert rest and all(c.chunked_prefill and c.max_num_batched_tokens is None for c in rest)


def test_open_loop_errors_hold(checks):
    s = summary(checks)
    # measured: 33 rows, 3 publishers (dstack, the SGLang team, Mooncake's 10 A10 rows; the vLLM project's one row is
    # DeepSeek-V3.2, not in the catalog), 2 engines
    assert s["rows"] >= 20 and s["publishers"] >= 3 and s["engines"] >= 2
    # measured 26.8% (issue target 30%); 26.4% on the 24 rows before Mooncake's, 24.8% before chunked prefill off
    assert s["ttft_median_abs_error"] <= 0.27
    # measured 13.3% (issue target 15%), since a prompt's chunks are priced as whole steps at the arrival rate
    # (planner.traffic.chunked; Mooncake's 5 chunked A10 rows 39.5% -> 2.9%); 16.8% before, when the closed serving
    # model saw (n-1)/n of the arrivals (none at one running sequence). 14.3% on the 24 rows before Mooncake's, once
    # the finite runs with chunked prefill off were stepped through request by request (planner.traffic.prefill_run);
    # 47.0% before the prefill-first scheduler was priced
    assert s["tpot_median_abs_error"] <= 0.14


def test_prefill_first_runs_in_the_per_request_statistic(checks):
    # dstack's 9 MI300X runs above the sustainable rate (chunked prefill off, 15 scheduler steps) publish the mean
    # over requests of per-request TPOT: measured 20.8% median |error| (39.5% with the per-token mean at the top load)
    runs = [c for c in checks if c.finite_run and not c.case.chunked_prefill]
    s = summary(runs)
    assert s["rows"] == 9
    assert s["tpot_median_abs_error"] <= 0.21


def test_sustained_rows_alone(checks):
    # the rows whose rate the model finds sustained (SGLang's ShareGPT runs at 4 and 8 requests/s, dstack MI300X 16)
    stable = [c for c in checks if c.stable]
    s = summary(stable)
    assert s["rows"] >= 21  # 21 with Mooncake's 10 A10 rows (11 before them, 10 before chunked prefill off)
    # measured 26.1% and 13.3% with Mooncake's rows (TPOT 17.5% before chunk steps were priced whole:
    # planner.traffic.chunked); 14.5% and 14.0% on the 11 rows before them
    assert s["ttft_median_abs_error"] <= 0.27
    assert s["tpot_median_abs_error"] <= 0.14


def test_chunked_rows_at_low_load(checks):
    # Mooncake's 5 A10 rows with --enable-chunked-prefill (512-token steps, 2-8 requests/s, 6 output tokens): a
    # prompt's chunks are whole compute-bound steps the running requests wait through (planner.traffic.chunked).
    # measured 2.9% median |error| (39.5% when the closed serving model priced them: 10.6 ms against 56.6 at 2 rps)
    rows = [c for c in checks if c.case.publisher.startswith("Mooncake") and c.case.chunked_prefill]
    s = summary(rows)
    assert s["rows"] == 5
    assert s["tpot_median_abs_error"] <= 0.04
