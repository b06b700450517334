"""Issue 25, prefix reuse against published shared-prefix rows (benchmarks/prefix_rows.py prints the table).

The ceilings are the figures the model reaches now (fail on regression); the issue's target, TTFT within 30%, is
not met: DeepSeek-R1 on early-2025 SGLang / vLLM prefills far slower than the model prices it, with or without a
shared prefix (docs/traffic.md "Prefix reuse")."""

from __future__ import annotations

import pytest

from planner.cost.constants import DEFAULT
from planner.cost.serving import operating_point
from planner.plan import Workload
from planner.traffic.prefix_check import all_checks, group_hit_rate, summary


def test_hit_rate_from_the_groups():
    # generated-shared-prefix, 10 groups x 50 prompts: the first of each group prefills the prefix, 490 of 500 reuse it
    assert group_hit_rate({"shared_prefix_tokens": 2000, "prefix_groups": 10, "prompts_per_group": 50}) == 0.98
    assert group_hit_rate({"shared_prefix_tokens": 2000, "hit_rate": 0.6324, "prompts_per_group": 50}) == 0.6324
    assert group_hit_rate({"shared_prefix_tokens": 2000}) is None


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


@pytest.fixture(scope="module")
def checks():
    return all_checks()


def test_prefix_rows_resolve(checks):
    # dstack's nine DeepSeek-R1 generated-shared-prefix rows (2000-token system prompt, 10 groups x 50 prompts),
    # each paired with dstack's random 3200/800 run of the same engine build, GPU and concurrency
    dstack = [k for k in checks if k.case.publisher == "dstack"]
    assert len(dstack) == 9 and all(k.problem is None and k.paired_ttft_ms for k in dstack)
    assert {k.hit_rate for k in dstack} == {0.98}


def test_prefix_rows_median_errors(checks):
    s = summary(checks)
    assert s["rows"] >= 9 and s["paired_rows"] >= 9
    # measured now: TTFT 86.8% (the base R1 prefill is priced 3-10x too fast), prefix / plain ratio 38.7%
    assert s["ttft_median_abs_error"] <= 0.87
    assert s["ratio_median_abs_error"] <= 0.39
