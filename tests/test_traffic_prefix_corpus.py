"""Issue 25, prefix reuse against published shared-prefix rows (benchmarks/prefix_rows.py prints the table).

The hit rate of a row follows from its structure (groups, routing over replicas, eviction, multi-turn history:
planner.traffic.prefix_check), never from a fit. The ceilings are the figures the model reaches now (fail on
regression); the issue's target, TTFT within 30%, is met on llm-d's gpt-oss-120b rows, not on dstack's (DeepSeek-R1
on early-2025 SGLang / vLLM prefills far slower than the model prices it, with or without a shared prefix) nor on
GPUStack's one multi-turn RTX 4090 row (the model prefills Qwen3-8B there slower than the published rates imply)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.calibrate.corpus import Entry
from planner.cost.constants import DEFAULT
from planner.cost.serving import operating_point
from planner.plan import Workload
from planner.traffic.prefix_check import (
    all_checks,
    by_publisher,
    conversation_reuse,
    group_reuse,
    lru_resident_share,
    node_entry,
    older_release_checks,
    reuse,
    summary,
)


def test_closed_wave_prefills_only_what_the_cache_lacks():
    # 4 clients, 3200-token prompts sharing 2000 tokens found cached by 98%: 0.98 x 2000 = 1960 cached, 1240 new each;
    # the wave is 4 x 1240 = 4960 tokens in chunks of the 2048-token budget: 3 steps; prompt i ends in step
    # ceil((i + 1) x 1240 / 2048) = 1, 2, 2, 3 -> mean 2.0 chunk steps to the first token. A chunk reads its 2048
    # tokens and the 1960 cached ones (1240 < 2048: no earlier chunk of its own), and attends to
    # 1960 + (3200 / 2) x 1240 / 3200 = 2580 tokens on average.
    c = DEFAULT.model_copy(update={"max_num_batched_tokens": 2048})
    w = Workload(concurrency=4, isl=3200, osl=800, mode="closed", prefix_tokens=2000, prefix_hit=0.98)
    op = operating_point(w, concurrency=4, replicas=1, pp=1, c=c)
    assert op.ttft_chunks == pytest.approx(2.0)
    assert op.ttft_load.prefill == 2048 and op.ttft_load.prefill_kv_tokens == pytest.approx(2048 + 1960)
    assert op.ttft_load.prefill_context == pytest.approx(2580)
    # nothing shared: 4 x 3200 = 12800 tokens, prompt i ends in step ceil((i + 1) x 3200 / 2048) = 2, 4, 5, 7
    plain = operating_point(
        w.model_copy(update={"prefix_tokens": 0, "prefix_hit": 0.0}), concurrency=4, replicas=1, pp=1, c=c
    )
    assert plain.ttft_chunks == pytest.approx(4.5) and plain.ttft_load.prefill_context == pytest.approx(1600)


def test_group_reuse_over_replicas_and_eviction():
    # one instance, 10 groups x 50 prompts sharing 2,000 tokens (dstack): 20,000 tokens fit; the first of each group
    # misses: 1 - 1/50
    one = group_reuse(
        {"shared_prefix_tokens": 2000, "prefix_groups": 10, "prompts_per_group": 50}, replicas=1, kv_tokens=1e6
    )
    assert one.hit == pytest.approx(0.98)
    # llm-d's pool: 128 groups x 49,152 tokens on 16 pods of 1,220,000 KV tokens. Affinity: 8 groups a pod, 393,216
    # tokens, resident. Spread: every pod holds all 128 groups, 6,291,456 tokens; LRU keeps 1,220,000 / 6,291,456
    pool = {"shared_prefix_tokens": 49152, "prefix_groups": 128}
    assert group_reuse({**pool, "routing": "affinity"}, replicas=16, kv_tokens=1.22e6).hit == 1.0
    spread = group_reuse({**pool, "routing": "spread"}, replicas=16, kv_tokens=1.22e6)
    assert spread.hit == pytest.approx(1_220_000 / 6_291_456) == pytest.approx(0.1939, abs=1e-4)
    # spread groups of 2 over 4 replicas: a group reaches 4 x (1 - (3/4)^2) = 1.75 replicas, each paying a first miss
    pairs = {"shared_prefix_tokens": 1000, "prefix_groups": 4, "prompts_per_group": 2, "routing": "spread"}
    assert group_reuse(pairs, replicas=4, kv_tokens=1e6).hit == pytest.approx(1 - 1.75 / 2)
    assert lru_resident_share(100.0, 50.0) == 0.5 and lru_resident_share(50.0, 100.0) == 1.0


def test_conversation_reuse_keeps_history_only_if_the_clients_prompts_fit():
    # GPUStack's multi-turn run: 10 clients, 5,416-token prompts (140 new tokens a turn, 500 common), 15 turns
    prefix = {"shared_prefix_tokens": 500, "clients": 10, "turns": 15, "new_tokens_per_turn": 140}
    # 10 x 5,416 = 54,160 tokens > 35,875: a conversation's history is evicted before its next turn
    evicted = conversation_reuse(prefix, isl=5416, kv_tokens=35875)
    assert evicted.prefix_tokens == 5276 and evicted.hit == pytest.approx(500 / 5276)
    # with room for 60,000 tokens the history stays; a conversation's first turn has only the common part
    kept = conversation_reuse(prefix, isl=5416, kv_tokens=60000)
    assert kept.hit == pytest.approx(14 / 15 + (500 / 5276) / 15)


def test_node_entry_cuts_a_fleet_and_takes_the_mean_prompt_from_the_rates(checks, older):
    rows = {(k.case.entry.file, k.case.entry.index): k.case for k in [*checks, *older]}
    fleet = rows[("prefix-llm-d.yaml", 12)]  # 16 TP=1 pods at 6 req/s, 360 prompts: one node's 8 at 3 req/s, 180
    assert (fleet.gpus, fleet.replicas, fleet.request_rate, fleet.entry.row.num_prompts) == (8, 8, 3.0, 180)
    # GPUStack: input 5,849 tok/s over (5,957 - 5,849) / 100 = 1.08 requests/s = 5,416 tokens a prompt
    assert rows[("prefix-gpustack.yaml", 0)].isl == 5416
    plain = rows[("dstack.yaml", 222)].entry
    assert node_entry(Entry(plain.publisher, plain.file, plain.index, plain.row)).row is plain.row


def test_a_published_hit_rate_is_used_as_given(older):
    # llm-d's GLM-5.2 rows publish their aggregate prefill hit ratio (63.24%): a row with one prices that, whatever
    # its groups say
    case = next(k.case for k in older if k.case.publisher == "dstack")
    row = case.entry.row.model_copy(update={"prefix": {**(case.entry.row.prefix or {}), "hit_rate": 0.6324}})
    given = reuse(replace(case, entry=replace(case.entry, row=row)))
    assert given is not None and (given.prefix_tokens, given.hit) == (2000, 0.6324)


@pytest.fixture(scope="module")
def checks():
    return all_checks()


@pytest.fixture(scope="module")
def older():
    return older_release_checks()


def test_prefix_rows_resolve(checks, older):
    # llm-d's gpt-oss-120b pool, 5 rates x 2 arms: affinity all hits, load-balanced 19.4% (LRU over 128 prefixes)
    llmd = [k for k in checks if k.case.publisher == "llm-d"]
    assert len(llmd) == 10 and all(k.problem is None for k in llmd)
    assert sorted({round(k.hit_rate, 4) for k in llmd}) == [0.1939, 1.0]
    gpustack = [k for k in checks if k.case.publisher.startswith("GPUStack")]
    assert len(gpustack) == 1 and gpustack[0].hit_rate == pytest.approx(500 / 5276)
    # dstack's nine DeepSeek-R1 generated-shared-prefix rows (2000-token system prompt, 10 groups x 50 prompts) ran
    # SGLang 0.4.2-0.4.3 and vLLM 0.7.4, older than the profiles' MLA kernels (planner.cost.engines.versions): not
    # in the figures, checked apart, each paired with dstack's random 3200/800 run of the same build, GPU and load
    assert not [k for k in checks if k.case.publisher == "dstack"]
    assert len(older) == 9 and all(k.case.publisher == "dstack" for k in older)
    assert all(k.problem is None and k.paired_ttft_ms for k in older)
    assert all(k.hit_rate == pytest.approx(0.98) for k in older)


def test_prefix_rows_median_errors(checks, older):
    s = summary(checks)
    assert s["rows"] == 11 and s["publishers"] == 2
    per = by_publisher(checks)
    # measured now: llm-d 24.6% (10 rows: affinity -17% to -26%, load-balanced +6% to +45%; 19.9%, -35% to +1%, before
    # gpt-oss's 64-wide heads prefilled at FlashAttention-3's rate for them, planner.cost.attention_rate: the fleet
    # sustains fewer of the 48K-token misses), GPUStack +131.6% (1 row); the 11 rows 25.9% (issue 25: 30%)
    assert per["llm-d"][1] <= 0.25
    assert per["GPUStack"][1] <= 1.32
    assert s["ttft_median_abs_error"] <= 0.26
    # dstack's older-release rows, apart: 84.7% (the base R1 prefill of those builds is priced 3-10x too fast);
    # prefix / plain ratio 36.7% on the 9 pairs
    o = summary(older)
    assert o["rows"] == 9 and o["paired_rows"] == 9
    assert o["ttft_median_abs_error"] <= 0.86
    assert o["ratio_median_abs_error"] <= 0.37
