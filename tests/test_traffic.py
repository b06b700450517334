"""Issue 25, open-loop arrivals: the steady state as a fixed point of Little's law, the prefill and admission queues,
unstable rates with the sustainable rate, and `estimate --request-rate` on the command line."""

from __future__ import annotations

import json
import math

import pytest

from planner.cost.constants import DEFAULT
from planner.hardware import load_topology
from planner.plan import Workload, make_partition
from planner.traffic.queueing import admission_wait, erlang_c, wait_sum_cdf
from planner.traffic.steady import Inputs, finite_run_waits, open_loop, prefill_queue


@pytest.fixture(scope="module")
def machine():
    from planner.model.catalog import load_profile

    profile, topo = load_profile("llama-3.1-70b"), load_topology("8xh100")
    return profile, topo, make_partition(profile, topo, tp=4)


def test_erlang_c_by_hand():
    # M/M/2 at offered load 1: B(2, 1) = (1/2) / (1 + 1 + 1/2) = 1/5; C = B / (1 - rho (1 - B)) = 0.2 / 0.6 = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    # M/M/1: C = rho
    assert erlang_c(1, 0.25) == pytest.approx(0.25)
    assert erlang_c(4, 4.0) == 1.0
    p, mean = admission_wait(slots=2, rate_per_s=1.0, service_s=1.0)
    assert p == pytest.approx(1 / 3) and mean == pytest.approx(1.0)  # S / (c - a) = 1 / (2 - 1)


def test_prefill_queue_is_pollaczek_khinchine():
    # fixed 1000-token prompts, 4096 of 8192 tokens per step needed: rho 0.5; W = rho / (1 - rho) x (1000 / 2)
    # / 8192 steps = 0.0610 steps; at 20 ms per step 1.22 ms
    w = Workload(isl=1000)
    rho, wait_s = prefill_queue(w, prefill_per_step=4096, room=8192, period_s=0.02)
    assert rho == pytest.approx(0.5)
    assert wait_s == pytest.approx(1.0 * 500 / 8192 * 0.02)
    # uniform 1-1999 (mean 1000, variance 1998^2 / 12 = 332,667): E[x^2] / (2 E[x]) = 1,332,667 / 2000 = 666.3 tokens
    spread = Workload(isl="uniform:1-1999")
    _, wait_u = prefill_queue(spread, prefill_per_step=4096, room=8192, period_s=0.02)
    assert wait_u / wait_s == pytest.approx(666.3 / 500, rel=0.01)  # 1 + cv^2
    assert prefill_queue(w, prefill_per_step=8192, room=8192, period_s=0.02)[1] == math.inf


def test_atom_plus_exponential_wait_cdf():
    # one wait only: P(W <= x) = 1 - p e^(-x/m)
    assert wait_sum_cdf(0.1, ((0.3, 0.2), (0.0, 0.0))) == pytest.approx(1 - 0.3 * math.exp(-0.5))
    # two equal waits, both certain: Erlang-2, P = 1 - e^(-x/m) (1 + x/m)
    assert wait_sum_cdf(1.0, ((1.0, 1.0), (1.0, 1.0))) == pytest.approx(1 - math.exp(-1) * 2)


def test_steady_state_is_littles_law_fixed_point(machine):
    profile, topo, part = machine
    work = Workload(request_rate=2.0, isl=1000, osl=300)
    pred = open_loop(profile, topo, part, work)
    t = pred.traffic
    assert t is not None and t.stable
    inputs = Inputs(profile, topo, part, work, DEFAULT)
    n = t.running_concurrency
    # the smallest n whose demand rate x S(n) it meets: n meets it, n - 1 does not
    assert 2.0 * inputs.probe(n).service_s <= n
    assert 2.0 * inputs.probe(n - 1).service_s > n - 1
    # requests in the system = rate x (TTFT + osl x TPOT), and throughput is the arrival rate
    assert t.in_system == pytest.approx(2.0 * (pred.ttft_ms + 300 * pred.tpot_ms) / 1e3)
    assert pred.requests_per_s == pytest.approx(2.0) and pred.tokens_per_s == pytest.approx(600.0)
    assert pred.concurrency == n


def test_rates_around_the_sustainable_rate(machine):
    profile, topo, part = machine
    work = Workload(request_rate=1.0, isl=1000, osl=300)
    sustainable = open_loop(profile, topo, part, work).traffic.sustainable_rate_rps
    below = open_loop(profile, topo, part, work.model_copy(update={"request_rate": 0.9 * sustainable}))
    above = open_loop(profile, topo, part, work.model_copy(update={"request_rate": 1.1 * sustainable}))
    assert below.traffic.stable and not above.traffic.stable
    assert above.traffic.sustainable_rate_rps == pytest.approx(sustainable)
    assert "more than the plan sustains" in above.traffic.problem
    # waits grow with the rate: TTFT at 90% of capacity exceeds TTFT at 10%
    low = open_loop(profile, topo, part, work.model_copy(update={"request_rate": 0.1 * sustainable}))
    assert below.traffic.prefill_wait_ms > low.traffic.prefill_wait_ms
    assert below.tpot_ms > low.tpot_ms


def test_finite_run_waits_by_hand():
    # 6 requests at 2/s, 1 completed per second, 2 run at once: request i starts at (i - 2) / 1 s, arrives at i / 2 s
    assert finite_run_waits(6, rate_per_s=2.0, served_per_s=1.0, running=2) == [0.0, 0.0, 0.0, 0.0, 0.0, 0.5]


def test_estimate_request_rate_cli(cli):
    code, out, err = cli(
        "estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "4", "--request-rate", "2", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["stable"] is True and report["traffic"]["running_concurrency"] == report["concurrency"]
    code, out, err = cli(
        "estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "4", "--request-rate", "500", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["stable"] is False and 0 < report["sustainable_rate_rps"] < 500
    assert [line for line in err.splitlines() if line.startswith("unstable:")], err
    code, _, err = cli("estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "4", "--request-rate", "-1")
    assert code == 1 and "--request-rate" in err and "Traceback" not in err


def test_solve_refuses_a_rate_it_would_ignore(cli):
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--request-rate", "3")
    assert code == 1 and "--request-rate" in err and "planner estimate --request-rate" in err


def test_head_start_of_a_backlog(machine):
    from planner.traffic.steady import head_start

    profile, topo, part = machine
    # vLLM's 8,192-token step budget (planner/cost/engines/vllm.py), 8 sequences decoding on one replica: 8,184
    # tokens of room. 1,000-token prompts fit it: all 8 admitted get their first token at once. 32,768-token prompts
    # take four steps' room each: 8 x 8,184 / 32,768 = 2.0 of them at a time, the other 6 wait their turn
    short = Inputs(profile, topo, part, Workload(request_rate=1.0, isl=1000, osl=100), DEFAULT)
    long = Inputs(profile, topo, part, Workload(request_rate=1.0, isl=32768, osl=100), DEFAULT)
    assert part.replicas == 1
    assert head_start(short, 8) == 8 and head_start(long, 8) == 2
    # chunked prefill off: prompts go first whole, the admitted ones start at once
    first = Workload(request_rate=1.0, isl=32768, osl=100, chunked_prefill=False)
    assert head_start(Inputs(profile, topo, part, first, DEFAULT), 8) == 8
