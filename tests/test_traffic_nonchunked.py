"""vLLM V0 with chunked prefill off (planner.traffic.nonchunked): prefill-only steps stall every running decode, and
multi-step scheduling batches the newcomers of a burst into one prefill step."""

from __future__ import annotations

import math

import pytest

from planner.cost.constants import DEFAULT
from planner.hardware import load_topology
from planner.plan import Workload, make_partition
from planner.traffic.nonchunked import backlog_waits, cycle, newcomers_per_cycle
from planner.traffic.steady import Inputs, open_loop


@pytest.fixture(scope="module")
def machine():
    from planner.model.catalog import load_profile

    profile, topo = load_profile("llama-3.1-70b"), load_topology("8xh100")
    return profile, topo, make_partition(profile, topo, tp=4)


def test_stall_formula_two_requests_by_hand():
    # Two sequences decode, each to 4 output tokens, 2 decode steps of 10 ms per scheduler call (N = 2). A cycle gives
    # each 2 tokens, so each lives 2 cycles and one finishes a cycle: k = n N / osl = 2 x 2 / 4 = 1 newcomer a cycle.
    # With no fixed part (b = t_p(1) = 30 ms a prompt), P = k b = 30 ms of prefill-only step stalls both decodes:
    # T = 2 x 10 + 30 = 50 ms for 2 tokens -> TPOT 25 ms (10 ms with the prompt folded into the decode steps).
    c = cycle(2, steps=2, osl_tokens=4, decode_step_s=0.010, first_prompt_s=0.030, per_prompt_s=0.030)
    assert c.newcomers == pytest.approx(1.0)
    assert c.prefill_s == pytest.approx(0.030)
    assert c.cycle_s == pytest.approx(0.050)
    assert c.tpot_s == pytest.approx(0.025)
    # a newcomer lands in the 20 ms burst (2/5 of the time) or the 30 ms prefill step and waits for it to end:
    # E[L^2] / (2 E[L]) = (20^2 + 30^2) / (2 x 50) = 13 ms; its own step holds it and the cycle's one other prompt
    assert c.wait_s == pytest.approx(0.013)
    assert c.own_prefill_s == pytest.approx(0.060)
    assert c.prefill_share == pytest.approx(0.6)


def test_fixed_part_is_paid_only_by_cycles_with_a_prompt():
    # t_p(1) = 30 ms of which b = 10 ms per prompt: a cycle pays the 20 ms fixed part when at least one prompt
    # arrived, P(K >= 1) = 1 - e^-k for Poisson arrivals; k = 1: P = 0.6321 x 20 + 1 x 10 = 22.64 ms
    c = cycle(2, steps=2, osl_tokens=4, decode_step_s=0.010, first_prompt_s=0.030, per_prompt_s=0.010)
    assert c.prefill_s == pytest.approx((1 - math.exp(-1)) * 0.020 + 0.010)
    assert c.stall_share == pytest.approx((1 - math.exp(-1)) / 2)  # one gap in N = 2 holds the stall
    # one scheduler step (N = 1) at the same load: k = 2 x 1 / 4 = 0.5 prompts a step, TPOT 10 ms + P
    one = cycle(2, steps=1, osl_tokens=4, decode_step_s=0.010, first_prompt_s=0.030, per_prompt_s=0.010)
    assert one.tpot_s == pytest.approx(0.010 + (1 - math.exp(-0.5)) * 0.020 + 0.5 * 0.010)
    assert newcomers_per_cycle(300, steps=15, osl_tokens=150) == pytest.approx(30.0)


def test_backlog_waits_by_hand():
    # 4 requests at 10/s, prefills at 5 prompts/s: request i starts its prefill at i / 5 s, arrives at i / 10 s
    assert backlog_waits(4, rate_per_s=10.0, prompts_per_s=5.0) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert backlog_waits(3, rate_per_s=1.0, prompts_per_s=5.0) == [0.0, 0.0, 0.0]  # the prefills keep up


def test_open_loop_prices_the_cycle_on_the_cost_model(machine):
    profile, topo, part = machine
    chunked = Workload(request_rate=2.0, isl=1000, osl=300, scheduler_steps=8)
    off = chunked.model_copy(update={"chunked_prefill": False})
    pred = open_loop(profile, topo, part, off)
    t = pred.traffic
    assert t is not None and t.stable
    inputs = Inputs(profile, topo, part, off, DEFAULT)
    c = inputs.cycle(t.running_concurrency)
    # TPOT is the cycle over its N tokens: the decode-only step plus the cycle's prefill stall shared by N tokens
    assert pred.tpot_ms == pytest.approx((c.decode_step_s + c.prefill_s / 8) * 1e3)
    assert c.prefill_s > 0 and pred.tpot_ms > c.decode_step_s * 1e3
    # the same rate with the prompts chunked into the decode steps keeps its own pricing, and the wait for the
    # 8-step burst shows in TTFT either way
    on = open_loop(profile, topo, part, chunked)
    assert on.tpot_ms != pytest.approx(pred.tpot_ms)
    one_step = open_loop(profile, topo, part, off.model_copy(update={"scheduler_steps": 1}))
    assert pred.ttft_ms > one_step.ttft_ms


def test_chunked_open_loop_newcomers_wait_half_the_scheduler_steps(machine):
    """With chunked prefill an 8-step scheduler (vLLM V0's --num-scheduler-steps 8) looks at arrivals every 8
    decode steps: a newcomer waits (8 - 1) / 2 = 3.5 of them on average (planner.cost.estimate.newcomer_wait_s,
    the same wait a closed loop's staggered newcomers pay), and the decode step itself does not change."""
    profile, topo, part = machine
    one, eight = (
        open_loop(profile, topo, part, Workload(request_rate=2.0, isl=1000, osl=300, scheduler_steps=k)) for k in (1, 8)
    )
    assert eight.tpot_ms == pytest.approx(one.tpot_ms)
    assert eight.ttft_ms - one.ttft_ms == pytest.approx(3.5 * one.tpot_ms, rel=1e-9)
