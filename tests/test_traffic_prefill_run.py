"""planner.traffic.prefill_run: a finite run on vLLM V0's prefill-first scheduler, request by request, and the
per-request TPOT statistic benchmark_serving publishes ((e2e - TTFT) / (o - 1), then the mean over requests)."""

from __future__ import annotations

import pytest

from planner.traffic.prefill_run import Request, StepCosts, draw_requests, run_statistics, serve


def _costs(**kw) -> StepCosts:
    base = dict(
        steps=2,
        first_prompt_s=1.0,
        per_prompt_s=0.5,
        mean_prompt_tokens=100.0,
        decode_loads=(1,),
        decode_steps_s=(0.1,),
        budget_tokens=1000,
        slots=10,
    )
    return StepCosts(**{**base, **kw})


# Worked by hand. Steps: N = 2 decode steps of 0.1 s; a prefill step of prompts holding X tokens costs
# 1.0 + 0.5 (X / 100 - 1) s. Requests: A at 0.0 s (100-token prompt, 2 output tokens), B at 0.5 s (100, 4),
# C at 0.6 s (200, 2).
#   t = 0.0: A waits alone: prefill step of 100 tokens, 1.0 s; A's first token at 1.0.
#   t = 1.0: B and C arrived meanwhile, so the scheduler prefills again (no decode while prompts wait):
#            300 tokens, 1.0 + 0.5 x 2 = 2.0 s; B's and C's first tokens at 3.0.
#   t = 3.0: nothing waits: a burst of min(2, 3 tokens B still needs) = 2 steps; A and C end at 3.1, t = 3.2.
#   t = 3.2: B's last token in one step, at 3.3.
# TPOT: A (3.1 - 1.0) / 1 = 2.1 s (its one interval holds B and C's prefill), B (3.3 - 3.0) / 3 = 0.1 s,
# C (3.1 - 3.0) / 1 = 0.1 s: the mean over requests is 2.3 / 3 = 0.767 s, the median 0.1 s, while the mean over
# the 5 tokens' intervals is 2.5 / 5 = 0.5 s. TTFT: A 1.0, B 2.5, C 2.4 s, mean 5.9 / 3.
REQUESTS = [Request(0.0, 100, 2), Request(0.5, 100, 4), Request(0.6, 200, 2)]


def test_three_requests_by_hand():
    served = {s.request.arrival_s: s for s in serve(REQUESTS, _costs())}
    assert served[0.0].first_token_s == pytest.approx(1.0) and served[0.0].last_token_s == pytest.approx(3.1)
    assert served[0.5].first_token_s == pytest.approx(3.0) and served[0.5].last_token_s == pytest.approx(3.3)
    assert served[0.6].first_token_s == pytest.approx(3.0) and served[0.6].last_token_s == pytest.approx(3.1)
    assert [served[a].tpot_s for a in (0.0, 0.5, 0.6)] == pytest.approx([2.1, 0.1, 0.1])


def test_the_statistics_over_requests():
    served = serve(REQUESTS, _costs())
    assert run_statistics(served, median=False) == pytest.approx((2.3 / 3, 5.9 / 3))
    assert run_statistics(served, median=True) == pytest.approx((0.1, 2.4))
    per_token_s = sum(s.last_token_s - s.first_token_s for s in served) / sum(r.output_tokens - 1 for r in REQUESTS)
    assert per_token_s == pytest.approx(0.5)  # the per-token mean sits between the median and the mean


def test_the_budget_splits_a_backlog_and_single_tokens_have_no_tpot():
    # a 150-token budget holds one 100-token prompt a step: A (to 1.0 s), B (1.0 s, to 2.0), then C alone (a step
    # takes at least one prompt: 1.0 + 0.5 x (200 / 100 - 1) = 1.5 s, to 3.5); A's one interval holds both
    # prefills and a decode step: (3.6 - 1.0) / 1 = 2.6 s
    served = {s.request.arrival_s: s for s in serve(REQUESTS, _costs(budget_tokens=150))}
    assert served[0.5].first_token_s == pytest.approx(2.0)
    assert served[0.6].first_token_s == pytest.approx(3.5)
    assert served[0.0].tpot_s == pytest.approx(2.6)
    one = serve([Request(0.0, 100, 1)], _costs())
    assert one[0].tpot_s is None and one[0].ttft_s == pytest.approx(1.0)


def test_slots_hold_prompts_back_and_decode_runs_meanwhile():
    # one slot: B and C cannot be admitted while A runs, so A decodes at once: (1.0 + 0.1 - 1.0) / 1 = 0.1 s
    served = {s.request.arrival_s: s for s in serve(REQUESTS, _costs(slots=1))}
    assert served[0.0].tpot_s == pytest.approx(0.1)
    assert served[0.5].first_token_s == pytest.approx(1.1 + 1.0)  # B's prefill once A has left


def test_decode_step_is_linear_between_loads():
    costs = _costs(decode_loads=(1, 3), decode_steps_s=(0.1, 0.3))
    assert [costs.decode_s(n) for n in (1, 2, 3, 9)] == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_draws_are_poisson_at_the_rate_and_reproducible():
    reqs = draw_requests(4000, rate_per_s=10.0, prompts=[(100.0, 1.0)], outputs=[(2.0, 0.5), (10.0, 0.5)])
    assert reqs == draw_requests(4000, rate_per_s=10.0, prompts=[(100.0, 1.0)], outputs=[(2.0, 0.5), (10.0, 0.5)])
    assert reqs[-1].arrival_s / 4000 == pytest.approx(0.1, rel=0.05)  # mean gap 1 / rate (4,000 draws: 1.6% s.d.)
    assert sum(r.output_tokens == 2 for r in reqs) / 4000 == pytest.approx(0.5, abs=0.03)
