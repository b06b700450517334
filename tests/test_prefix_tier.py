"""`--prefix-tier host` (issue 25 item 3): a prefix-cache hit held in host memory loads its KV over PCIe before the
prompt's prefill; the prediction says whether that beats recomputing the prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.cost import estimate
from planner.cost.constants import DEFAULT
from planner.cost.estimate import prefix_tier_verdict
from planner.errors import InputError
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def l40s():
    profile, topo = load_profile("llama-3.1-8b"), load_topology("8xl40s")
    return profile, topo, make_partition(profile, topo, tp=1)


def _pair(machine, **work):
    profile, topo, part = machine
    gpu = estimate(profile, topo, part, workload=Workload(**work))
    host = estimate(profile, topo, part, workload=Workload(prefix_tier="host", **work))
    return gpu, host


def test_the_load_by_hand(l40s):
    # Llama-3.1-8B's KV per token: 2 (K, V) x 32 layers x 8 KV heads x 128 x 2 bytes = 131,072 bytes. GPU 0 of
    # 8xl40s streams from host over its PCIe Gen4 switch (31.5 GB/s, shared with GPU 1 only when both stream: one
    # GPU here) and socket (307 GB/s DDR5): 31.5 GB/s x host_stream_efficiency. 2,000 cached tokens: 262 MB.
    _, topo, _ = l40s
    rate = topo.host_stream_bytes_per_s([0]) * DEFAULT.host_stream_efficiency
    assert topo.host_stream_bytes_per_s([0]) == pytest.approx(31.5e9)
    gpu, host = _pair(l40s, concurrency=1, isl=4000, osl=100, prefix_tokens=2000, prefix_hit=1.0)
    assert host.prefix_tier_load_ms == pytest.approx(2000 * 131_072 / rate * 1e3)
    # the tier's load is added to TTFT; nothing else changes (the cached prefix is not prefilled either way)
    assert host.ttft_ms - gpu.ttft_ms == pytest.approx(host.prefix_tier_load_ms)
    assert host.tpot_ms == pytest.approx(gpu.tpot_ms)
    assert gpu.prefix_tier_load_ms is None and gpu.prefix_recompute_ms is None
    # a hit rate of a half loads half the tokens on average
    _, half = _pair(l40s, concurrency=1, isl=4000, osl=100, prefix_tokens=2000, prefix_hit=0.5)
    assert half.prefix_tier_load_ms == pytest.approx(host.prefix_tier_load_ms / 2)


def test_the_verdict_turns_with_the_prefix(l40s):
    # a long prefix: recomputing 30,000 tokens is compute-bound (16 GFLOP each on 362 TFLOP/s), loading their
    # 3.9 GB of KV takes ~0.2 s: the tier pays
    _, long = _pair(l40s, concurrency=1, isl=32000, osl=100, prefix_tokens=30000, prefix_hit=1.0)
    assert long.prefix_recompute_ms > 10 * long.prefix_tier_load_ms
    assert "the tier pays" in prefix_tier_verdict(long, Workload(isl=32000, prefix_tokens=30000, prefix_hit=1.0))


def test_a_short_prefix_in_a_weight_bound_step_is_cheaper_to_recompute(tmp_path):
    # on an H100 (989 TFLOP/s bf16, 3.35 TB/s) a 96-token prompt's prefill reads the 16 GB of weights (~5 ms at
    # 3.35 TB/s) whether or not its first 64 tokens are cached: recomputing them costs almost nothing, while loading
    # their KV (8.4 MB over PCIe Gen5) does not
    text = (ROOT / "topologies" / "8xh100.yaml").read_text()
    text = text.replace("    sockets: 2\n", "    sockets: 2\n    host_memory: {capacity: 1TB, bandwidth: 307GB/s}\n", 1)
    path = tmp_path / "8xh100-host.yaml"
    path.write_text(text)
    profile, topo = load_profile("llama-3.1-8b"), load_topology(str(path))
    machine = (profile, topo, make_partition(profile, topo, tp=1))
    _, short = _pair(machine, concurrency=1, isl=96, osl=100, prefix_tokens=64, prefix_hit=1.0)
    assert short.prefix_tier_load_ms > short.prefix_recompute_ms
    verdict = prefix_tier_verdict(short, Workload(isl=96, prefix_tokens=64, prefix_hit=1.0))
    assert "recomputing them is faster" in verdict


def test_no_host_memory_is_one_line():
    profile, topo = load_profile("llama-3.1-8b"), load_topology("8xh100")
    with pytest.raises(InputError, match="8xh100 describes no host memory"):
        estimate(
            profile,
            topo,
            make_partition(profile, topo, tp=1),
            workload=Workload(isl=4000, prefix_tokens=2000, prefix_hit=1.0, prefix_tier="host"),
        )


def test_prefix_tier_cli(cli):
    code, _, err = cli(
        *("estimate", "--model", "llama-8b", "--topology", "8xl40s", "--tp", "1", "--isl", "32000"),
        *("--prefix-tokens", "30000", "--prefix-hit", "1", "--prefix-tier", "host"),
    )
    assert code == 0, err
    assert "prefix tier host: a request loads 30,000 cached tokens' KV" in err


def test_solve_holds_a_ttft_slo_with_the_tiers_load(cli):
    # 30,000 cached tokens of Llama-3.1-8B's 131,072 bytes each load over PCIe Gen4 before the prefill: the solver's
    # TTFT carries that load, so under TTFT <= 300 ms it leaves the TP4 x 2 plan (346.7 ms with the load, 239 ms
    # without) for one whose estimate, load included, holds the SLO
    args = ("--model", "llama-8b", "--topology", "8xl40s", "--isl", "32000", "-c", "4", "--serving", "agg")
    tier = ("--prefix-tokens", "30000", "--prefix-hit", "1", "--prefix-tier", "host", "--json")
    code, out, err = cli("solve", *args, *tier, "--ttft-slo", "300")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["prediction"]["ttft_ms"] <= 300.0
    assert plan["prediction"]["prefix_tier_load_ms"] > 0
    code, out, err = cli("solve", *args, *tier, "--ttft-slo", "1000")  # a loose SLO: TP4 x 2 is best
    assert code == 0, err
    loose = json.loads(out)
    assert loose["prediction"]["ttft_ms"] > 300.0
