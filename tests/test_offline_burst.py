"""Issue 23, offline (maximum-throughput) rows: what a row measures and what the prediction assumes. An offline burst's
tokens/s is its output over the makespan (planner.cost.offline); the row's memory fraction sizes the KV cache;
rows whose machine or model the planner does not describe are skipped, not mispriced."""

from __future__ import annotations

import pytest

from planner.calibrate import fidelity
from planner.calibrate.corpus import CorpusRow, Entry, catalog_model, model_key, resolve
from planner.cost import offline
from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import make_partition


def _row(**kw) -> Entry:
    base = dict(
        source="owner/repo@" + "0" * 40 + ":f.json",
        engine="vllm",
        model="Qwen/Qwen2.5-7B-Instruct",
        gpu="a100-80g",
        gpus=1,
        tp=1,
        load="offline",
        num_prompts=1000,
        isl=1024,
        osl=1024,
        output_tokens_per_s=3000.0,
    )
    return Entry("p", "f.yaml", 0, CorpusRow(**{**base, **kw}))


def test_one_wave_ends_when_the_last_prompt_is_prefilled_and_decoded():
    """10 prompts, 10 slots, 4 output tokens, prefill 5 ms a prompt, a step of 10 ms + 1 ms per sequence: all ten
    prompts are prefilled (50 ms) and then decode 4 steps of 10 sequences (4 x 20 ms = 80 ms): 130 ms, 40 tokens,
    307.7 tokens/s. Little's law at the wave's mean TTFT (27.5 ms: 5.5 prompts' prefill) would say
    10 x 4 / (0.0275 + 4 x 0.020) = 372 tokens/s."""
    step = offline.Step(fixed_s=0.010, per_sequence_s=0.001, prefill_s=0.005)
    assert offline.makespan_s([4] * 10, slots=10, step=step) == pytest.approx(0.130)
    assert offline.tokens_per_s([4] * 10, slots=10, step=step) == pytest.approx(40 / 0.130)


def test_slots_refill_as_sequences_finish():
    """Lengths 2, 4, 2 through 2 slots, a step of 1 s + 1 s per sequence, no prefill: the first two run 2 steps at
    3 s (6 s); the first leaves, the third takes its slot, and both remaining finish 2 steps later at 3 s (6 s): 12 s.
    One slot instead: 2 + 4 + 2 steps of 2 s = 16 s."""
    step = offline.Step(fixed_s=1.0, per_sequence_s=1.0, prefill_s=0.0)
    assert offline.makespan_s([2, 4, 2], slots=2, step=step) == pytest.approx(12.0)
    assert offline.makespan_s([2, 4, 2], slots=1, step=step) == pytest.approx(16.0)


def test_the_longest_output_sets_the_tail():
    """Three 1-token outputs and one of 10 in 4 slots, 1 s a step whatever the batch: 10 s for 13 tokens (1.3/s),
    where four of the mean length (3.25) would take 3.25 s (4 tokens/s)."""
    step = offline.Step(fixed_s=1.0, per_sequence_s=0.0, prefill_s=0.0)
    assert offline.tokens_per_s([1, 1, 1, 10], slots=4, step=step) == pytest.approx(1.3)


def test_run_lengths_sample_the_distribution_in_arrival_order():
    """A fixed length gives n equal lengths; half 100 and half 300 gives a mean of 200 (within 1%) and no stretch of
    ten consecutive requests all of one length (the low-discrepancy order)."""
    assert offline.run_lengths(5, [7], [1.0]) == [7] * 5
    mixed = offline.run_lengths(1000, [100, 300], [0.5, 0.5])
    assert sum(mixed) / 1000 == pytest.approx(200, rel=0.01)
    assert all(len(set(mixed[k : k + 10])) == 2 for k in range(0, 990, 10))


def test_the_rows_memory_fraction_sizes_the_kv_cache():
    """Dennis Lee's TP1 Qwen2.5-7B rows ran --gpu-memory-utilization 0.25: vLLM logged 93,872 KV tokens
    (tests/data/corpus/dennislee22.yaml), 93,872 / (1,024 + 1,024) = 45.8 sequences of the row's length. The
    default fraction (0.9) would admit about 10 times as many."""
    case = resolve(_row(gpu_memory_utilization=0.25))
    c = resolve_constants(DEFAULT, "vllm")
    assert fidelity.workload(case, c).gpu_memory_fraction == 0.25
    assert fidelity.workload(resolve(_row()), c).gpu_memory_fraction == 0.9  # the Workload default when unstated
    out = fidelity.predict(case, fidelity.start(seeds=False))
    assert out.problem is None and out.predicted["max_tokens"] > 0
    profile, topo = load_profile(case.model), load_topology(case.topology)
    part = make_partition(profile, topo, tp=1, gpu_ids=[0])
    pred = estimate(profile, topo, part, workload=fidelity.workload(case, c), c=c)
    assert pred.admitted_concurrency == pytest.approx(93_872 / 2048, abs=1.5)


def test_sharegpt_rows_decode_the_shipped_output_lengths_at_the_rows_mean():
    """A ShareGPT offline row's outputs: the chat-sharegpt histogram scaled to the row's mean (196 tokens), its tail
    reaching past 5x the mean; fixed-length rows keep one length."""
    case = resolve(_row(length_dist="sharegpt", isl=215, osl=196))
    dist = fidelity.output_lengths(case)
    assert dist is not None and dist.mean == pytest.approx(196)
    assert max(dist.lengths) > 5 * 196
    assert fidelity.output_lengths(resolve(_row(length_dist="random"))) is None


def test_tensor_parallel_over_pods_is_skipped_not_priced_as_nvlink():
    """'2 GPU pods on the same node (Ray)': Dennis Lee's TP2 decode of 10 prompts took 12.99 ms a token, TP1 13.46 ms,
    where NVLink TP2 halves the weight reads (tests/data/corpus/dennislee22.yaml): the pods share no NVLink."""
    assert "Kubernetes pods" in resolve(_row(gpus=2, tp=2, notes="2 GPU pods on the same node (Ray); vllm")).reason
    assert "Kubernetes pods" in resolve(_row(gpus=4, tp=4, notes="4 GPU pods on different nodes (Ray)")).reason
    assert resolve(_row(notes="1 GPU pod; vllm serve")).model == "Qwen2.5-7B-Instruct"


def test_a_version_that_names_the_architecture_is_kept():
    """DeepSeek-V3.2 (sparse attention with an indexer) is not DeepSeek-V3; V3's date suffix is still dropped."""
    assert model_key("deepseek-ai/DeepSeek-V3.2") == "deepseek-v3.2"
    assert catalog_model("deepseek-ai/DeepSeek-V3.2") is None
    assert catalog_model("deepseek-ai/DeepSeek-V3-0324") == "DeepSeek-V3"
    assert catalog_model("deepseek-ai/DeepSeek-V3") == "DeepSeek-V3"
    assert model_key("mistralai/Mistral-7B-Instruct-v0.3") == "mistral-7b"
