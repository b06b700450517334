"""Issue 25, prefix reuse: --prefix-tokens P --prefix-hit h shrink the prefill and share the prefix's KV blocks."""

from __future__ import annotations

import pytest

from planner.plan import Workload


def test_prefix_arithmetic():
    w = Workload(isl=2000, osl=200, prefix_tokens=1500, prefix_hit=0.8)
    # 0.8 x 1500 = 1200 tokens found cached; 800 prefilled; a sequence holds 2000 + 200 - 1200 KV tokens of its own
    assert w.cached_tokens == 1200 and w.new_prompt_tokens == 800 and w.sequence_tokens == 1000
    # the prefilled tokens attend to the 1200 cached ones and to their share of the rest: 1200 + 1000 x 800 / 2000
    assert w.prefill_context == pytest.approx(1600)
    plain = Workload(isl=2000, osl=200)
    assert (plain.new_prompt_tokens, plain.sequence_tokens, plain.prefill_context) == (2000, 2200, 1000)


def test_prefix_must_fit_the_prompt():
    with pytest.raises(ValueError, match="longer than the prompt"):
        Workload(isl=100, prefix_tokens=200)
    with pytest.raises(ValueError, match="--prefix-tokens"):
        Workload(isl=100, prefix_hit=0.5)


def test_prefix_hits_shorten_ttft_and_raise_capacity():
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile
    from planner.plan import make_partition
    from planner.traffic.steady import open_loop

    profile, topo = load_profile("llama-8b"), load_topology("8xh100")
    part = make_partition(profile, topo, tp=1)
    base = Workload(request_rate=1.0, isl=8000, osl=200)  # the plain plan sustains 2.2 requests/s
    shared = base.model_copy(update={"prefix_tokens": 7000, "prefix_hit": 0.9})
    plain, cached = open_loop(profile, topo, part, base), open_loop(profile, topo, part, shared)
    assert plain.traffic.stable and cached.traffic.stable
    assert cached.ttft_ms < 0.5 * plain.ttft_ms  # 1,700 of 8,000 prompt tokens prefilled
    assert cached.traffic.prefill_utilisation < plain.traffic.prefill_utilisation
    assert cached.max_concurrency > plain.max_concurrency  # 1,900 KV tokens a sequence instead of 8,200
    assert cached.traffic.sustainable_rate_rps > plain.traffic.sustainable_rate_rps


def test_prefix_cli(cli):
    code, out, err = cli(
        "estimate",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--tp",
        "1",
        "--isl",
        "4000",
        "--prefix-tokens",
        "3000",
        "--prefix-hit",
        "0.5",
        "--request-rate",
        "2",
        "--json",
    )
    assert code == 0, err
    code, _, err = cli(
        "estimate",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--tp",
        "1",
        "--isl",
        "400",
        "--prefix-tokens",
        "3000",
    )
    assert code == 1 and "--prefix-tokens 3000 is longer than the prompt" in err


def test_hits_and_misses_are_two_kinds_of_request():
    from planner.traffic.steady import new_token_points, weighted_median

    # 80% of requests find 1,500 of their 2,000 tokens cached and prefill 500; the other 20% prefill all 2,000:
    # the mean is the workload's 0.8 x 500 + 0.2 x 2000 = 800 new tokens, the median request a hit
    w = Workload(isl=2000, osl=200, prefix_tokens=1500, prefix_hit=0.8)
    points = new_token_points(w)
    assert points == [(500, pytest.approx(0.8)), (2000, pytest.approx(0.2))]
    assert sum(x * p for x, p in points) == pytest.approx(w.new_prompt_tokens)
    assert weighted_median(points) == 500
    # 30% hits: the median request is a miss
    assert weighted_median(new_token_points(w.model_copy(update={"prefix_hit": 0.3}))) == 2000
    assert new_token_points(Workload(isl=2000, osl=200)) == [(2000, 1.0)]


def test_median_ttft_of_a_hit_miss_mixture():
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile
    from planner.plan import make_partition
    from planner.traffic.steady import open_loop

    profile, topo = load_profile("llama-8b"), load_topology("8xh100")
    part = make_partition(profile, topo, tp=1)

    def ttft(hit: float):
        w = Workload(request_rate=0.5, isl=8000, osl=200, prefix_tokens=7000, prefix_hit=hit, statistic="median")
        return open_loop(profile, topo, part, w).traffic.ttft

    none, few, most, every = ttft(0.0), ttft(0.3), ttft(0.7), ttft(1.0)
    # 30% hits: the median request prefills all 8,000 tokens like one with nothing cached; 70%: it prefills 1,000
    # like one that always hits. The mean sits between (the mean-field price of 8,000 - 0.3 x 7,000 new tokens)
    assert few.p50_ms == pytest.approx(none.p50_ms, rel=0.05)
    assert most.p50_ms == pytest.approx(every.p50_ms, rel=0.05)
    assert every.mean_ms < few.mean_ms < few.p50_ms
