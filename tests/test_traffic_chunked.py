"""Chunked prefill at low load (planner.traffic.chunked): a prompt's chunks as whole steps, by hand."""

from __future__ import annotations

import pytest

from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition
from planner.traffic.chunked import ChunkSteps, chunk_sizes, granular_tpot_s, request_tpot_s
from planner.traffic.steady import Inputs, _static, with_chunk_steps


def test_chunks_fill_the_room_beside_the_decodes():
    # 1,024 prompt tokens beside one decode in a 512-token budget: 511 + 511 + 2; 256 tokens fit in one step
    assert chunk_sizes(1024, 511) == [511, 511, 2]
    assert chunk_sizes(1024, 512) == [512, 512]
    assert chunk_sizes(256, 512) == [256]
    with pytest.raises(ValueError):
        chunk_sizes(256, 0)


def test_tpot_by_hand():
    # 2 prompts/s, each two 125 ms chunk steps (T_p = 0.25 s), 10 ms decode steps. Chunk steps k = 2 x 2 = 4 a second,
    # busy 2 x 0.25 = 0.5 of it; decode steps 0.5 / 0.01 = 50 a second: TPOT per token = 1 / (4 + 50) = 18.52 ms
    steps = ChunkSteps(count=2, prefill_s=0.25)
    assert granular_tpot_s(2.0, steps, decode_step_s=0.01) == pytest.approx(1 / 54)
    # a request of 6 tokens (5 steps after its first): rho 0.5 leaves L = 0.5 + 0.25 / (2 x 0.5) = 0.75 prompts
    # queued, 1.5 chunk steps; then 4 a second over its span 5 / 54 s: 0.370; c = 1.870 chunk steps of 125 ms, so
    # TPOT = 10 ms + 1.870 x 115 ms / 5 = 53.02 ms
    assert request_tpot_s(2.0, steps, decode_step_s=0.01, output_tokens=6) == pytest.approx(
        0.01 + (1.5 + 4 * 5 / 54) * 0.115 / 5
    )
    # long outputs: the queue left behind is spread over many steps, the per-token mean holds
    long_s = request_tpot_s(2.0, steps, decode_step_s=0.01, output_tokens=1e6)
    assert long_s == pytest.approx(1 / 54, rel=1e-4)
    # chunk steps fill every second at 4 prompts/s: no low-load answer (the closed model's full chunks hold)
    assert granular_tpot_s(4.0, steps, decode_step_s=0.01) is None
    assert request_tpot_s(4.0, steps, decode_step_s=0.01, output_tokens=6) is None


def test_one_running_sequence_still_sees_the_arrivals_chunks():
    # at one running sequence the closed serving model sees (n - 1) / n = 0 of the arrivals' prompts, so its TPOT is
    # the decode step alone; in the open loop the arrivals' chunk steps come at the full rate
    profile, topo = load_profile("llama-3.1-8b"), load_topology("1xh100")
    part = make_partition(profile, topo, tp=1)
    work = Workload(request_rate=2.0, isl=1024, osl=6, chunked_prefill=True)
    budget = resolve_constants(DEFAULT, work.engine).model_copy(update={"max_num_batched_tokens": 512})
    inputs = Inputs(profile, topo, part, work, budget)
    p = inputs.probe(1)
    decode_s = _static(inputs, 1).tpot_ms / 1e3
    assert p.prediction.tpot_ms / 1e3 == pytest.approx(decode_s, rel=0.01)
    steps = inputs.chunk_steps(0)
    assert steps.count == 2  # 1,024 tokens in 512-token steps (vLLM 0.6's budget with chunking)
    q = with_chunk_steps(inputs, p, 2.0)
    expected_s = request_tpot_s(2.0, steps, decode_step_s=decode_s, output_tokens=6)
    assert expected_s is not None and q.prediction.tpot_ms / 1e3 == pytest.approx(expected_s)
    assert q.prediction.tpot_ms > 1.05 * p.prediction.tpot_ms  # 8.0 against 7.3 ms: two ~18 ms chunks, 4 a second
    assert q.service_s - p.service_s == pytest.approx(6 * (q.prediction.tpot_ms - p.prediction.tpot_ms) / 1e3)
