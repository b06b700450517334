"""solve --serving agg|disagg|auto (issue 28 item 3): the exact choice of pools, the mode default, the answer."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from planner.cost.shards import Layout
from planner.disagg.plan import Pools
from planner.disagg.ttft import PD_HOST_S
from planner.errors import InputError
from planner.plan import Workload
from planner.solve.options import SolveOptions
from planner.solve.serving import DecodeCand, PairCand, PrefillCand, choose_pools, resolve_serving


def _pair(prefill_gpus: int, decode_gpus: int, prefill_tokens: float, decode_tokens: float) -> PairCand:
    """A candidate pair with per-instance tokens/s given (the choice reads only the layouts' widths and these)."""
    return PairCand(
        PrefillCand(Layout(prefill_gpus), None),
        DecodeCand(Layout(decode_gpus), 1, 1.0, 1),  # type: ignore[arg-type]
        rho=1.0,
        prefill_tokens_per_s=prefill_tokens,
        decode_tokens_per_s=decode_tokens,
    )


def test_choice_by_hand():
    # 7 GPUs. Pair A (1-GPU prefill at 1,000 tok/s, 1-GPU decode at 500): max over P + D <= 7 of min(1000 P, 500 D)
    # is 2,000 (P=2, D=4 or P=3, D=4 -> min(3000, 2000)). Pair B (1-GPU prefill at 1,000, 2-GPU decode at 1,400):
    # P + 2 D <= 7, P=3, D=2 -> min(3000, 2800) = 2,800, the best of both (P=1,D=3: 1000; P=5,D=1: 1400).
    pairs = [_pair(1, 1, 1000, 500), _pair(1, 2, 1000, 1400)]
    got = choose_pools(pairs, 7)
    assert got is not None and got.optimal
    assert (got.pair, got.prefill_instances, got.decode_instances, got.tokens_per_s) == (1, 3, 2, 2800)
    # ties break to fewer GPUs: pair A alone on 7 GPUs serves 2,000 at P=2, D=4 (6 GPUs), not P=3, D=4 (7)
    got = choose_pools(pairs[:1], 7)
    assert got is not None and (got.prefill_instances, got.decode_instances) == (2, 4)


def test_choice_is_exact_against_brute_force():
    rng = random.Random(28)
    for _ in range(30):
        budget = rng.randint(2, 24)
        pairs = [
            _pair(rng.choice([1, 2, 4, 8]), rng.choice([1, 2, 4, 8]), rng.randint(100, 5000), rng.randint(100, 5000))
            for _ in range(rng.randint(1, 6))
        ]
        brute = max(
            (
                min(x * k.prefill_tokens_per_s, y * k.decode_tokens_per_s)
                for k in pairs
                for x, y in itertools.product(range(1, budget + 1), repeat=2)
                if x * k.prefill.layout.gpus + y * k.decode.layout.gpus <= budget
            ),
            default=None,
        )
        got = choose_pools(pairs, budget)
        if brute is None:
            assert got is None
            continue
        assert got is not None and got.optimal and got.tokens_per_s == brute
        k = pairs[got.pair]
        assert got.prefill_instances * k.prefill.layout.gpus + got.decode_instances * k.decode.layout.gpus <= budget


def test_the_default_mode():
    serving = Workload()
    assert resolve_serving(SolveOptions(tpot_slo_ms=50), serving, 8) == "auto"
    assert resolve_serving(SolveOptions(), serving, 8) == "agg"  # no SLO: nothing to size the pools for
    assert resolve_serving(SolveOptions(ttft_slo_ms=500), serving, 1) == "agg"  # one GPU cannot hold two pools
    assert resolve_serving(SolveOptions(tpot_slo_ms=50, objective="latency"), serving, 8) == "agg"
    assert resolve_serving(SolveOptions(tpot_slo_ms=50), Workload(mode="static"), 8) == "agg"
    with pytest.raises(InputError, match="2 GPUs or more"):
        resolve_serving(SolveOptions(serving="disagg"), serving, 1)
    with pytest.raises(InputError, match="--objective throughput"):
        resolve_serving(SolveOptions(serving="auto", objective="latency"), serving, 8)


def test_auto_picks_aggregated_when_prompts_are_short(cli):
    """Llama-3.1-8B on 2 H100s, 128-token prompts and 1,024-token outputs: a prompt is 1/8 of a request's tokens
    and one step's 8,192-token budget prefills 64 of them, so a prefill GPU of its own would be mostly idle (its
    steps a few % busy, its scheduler's host time per request, PD_HOST_S x the request rate, most of the rest)
    while the one decode GPU sets the throughput; two aggregated replicas decode on both GPUs, about twice as much."""
    code, out, err = cli(
        "solve",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--gpus",
        "2",
        "--serving",
        "auto",
        "--tpot-slo",
        "30",
        "--isl",
        "128",
        "--osl",
        "1024",
        "--top",
        "0",
        "--json",
    )
    assert code == 0, err
    plan = json.loads(out)
    s = plan["serving"]
    assert s["asked"] == "auto" and s["chosen"] == "agg" and plan["pools"] is None
    assert s["other"]["mode"] == "disagg" and s["other"]["shape"].startswith("1P1D")
    host_share = s["other"]["tokens_per_s"] / 1024 * PD_HOST_S
    assert host_share <= s["other"]["prefill_utilisation"] < host_share + 0.1
    assert 0.8 < s["margin"] < 1.2  # about 2x, less the prompt tokens the aggregated steps carry
    assert s["margin"] == pytest.approx(s["best"]["tokens_per_s"] / s["other"]["tokens_per_s"] - 1)
    assert s["best"]["tokens_per_s"] == plan["prediction"]["tokens_per_s"]
    for mode in (s["best"], s["other"]):
        assert mode["tpot_ms"] <= 30


def test_disagg_answer_is_what_estimate_disagg_says(cli, tmp_path):
    """--serving disagg on 4 GPUs: the plan's pools, re-priced by estimate-disagg at the plan's load, give the plan's
    figures, within the SLOs; the table names both modes and the margin."""
    args = ["--model", "llama-8b", "--topology", "8xh100", "--isl", "4096", "--osl", "256"]
    code, out, err = cli(
        "solve",
        *args,
        "--gpus",
        "4",
        "--serving",
        "disagg",
        "--tpot-slo",
        "20",
        "--ttft-slo",
        "1000",
        "--top",
        "0",
        "--json",
    )
    assert code == 0, err
    plan = json.loads(out)
    pools = Pools.model_validate(plan["pools"])
    assert plan["serving"]["chosen"] == "disagg" and pools.n_gpus <= 4
    load = plan["prediction"]["concurrency"]
    ids = [g for pool in (pools.prefill, pools.decode) for inst in pool.gpu_ids for g in inst]
    code, js, err = cli(
        "estimate-disagg",
        *args,
        "-c",
        str(load),
        "--prefill-instances",
        str(pools.prefill.instances),
        "--prefill-tp",
        str(pools.prefill.tp),
        "--decode-instances",
        str(pools.decode.instances),
        "--decode-tp",
        str(pools.decode.tp),
        "--pool-gpu-ids",
        ",".join(map(str, ids)),
        "--json",
    )
    assert code == 0, err
    again = json.loads(js)["prediction"]
    assert again["tokens_per_s"] == pytest.approx(plan["prediction"]["tokens_per_s"])
    assert again["tpot_ms"] <= 20 and again["ttft_ms"] <= 1000 and again["problem"] is None
    code, table, err = cli(
        "solve", *args, "--gpus", "4", "--serving", "disagg", "--tpot-slo", "20", "--ttft-slo", "1000", "--top", "0"
    )
    assert code == 0, err
    assert "serving: disagg chosen (asked disagg)" in table and "margin:" in table and "verdict:" in table


def _dominated(p, others) -> bool:
    return any(
        o["tokens_per_s_per_gpu"] >= p["tokens_per_s_per_gpu"]
        and o["tokens_per_s_per_user"] >= p["tokens_per_s_per_user"]
        and o is not p
        and (o["tokens_per_s_per_gpu"], o["tokens_per_s_per_user"])
        != (p["tokens_per_s_per_gpu"], p["tokens_per_s_per_user"])
        for o in others
    )


def test_frontier_shows_both_modes_and_aggregated_wins_short_prompts(cli):
    """Llama-3.1-8B on 2 H100s, 128-token prompts, 1,024-token outputs (as above): a 1P1D pool decodes on one GPU
    what two aggregated replicas decode on two, at nearly the same step time (the prompt chunks are 1/8 of the
    tokens), so at the same tokens/s per user the aggregated plan has about twice the tokens/s per GPU, and every
    disaggregated point is below the aggregated frontier."""
    code, out, err = cli(
        "frontier",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--gpus",
        "2",
        "--isl",
        "128",
        "--osl",
        "1024",
        "--serving",
        "auto",
        "--json",
    )
    assert code == 0, err
    r = json.loads(out)
    agg, dis = r["agg"]["points"], r["disagg"]
    assert dis and all(p["shape"].startswith("1P1D") for p in dis)
    union = agg + dis
    for p in union:  # the frontier is the Pareto set over both modes together
        assert not (p["frontier"] and _dominated(p, union))
        same = [
            o
            for o in union
            if (o["tokens_per_s_per_gpu"], o["tokens_per_s_per_user"])
            == (p["tokens_per_s_per_gpu"], p["tokens_per_s_per_user"])
        ]
        assert _dominated(p, union) or any(o["frontier"] for o in same)  # undominated: it, or its twin, is marked
    assert not any(p["frontier"] for p in dis) and r["verdict"].startswith("aggregated holds the whole frontier")
    d = next(p for p in dis if p["concurrency"] == 32)  # 32 sequences on the decode GPU
    a = next(p for p in agg if p["shape"] == "TP1 x PP1 x R2" and p["concurrency"] == 64)  # 32 per replica
    assert a["tokens_per_s_per_user"] == pytest.approx(d["tokens_per_s_per_user"], rel=0.02)
    assert 1.9 < a["tokens_per_s_per_gpu"] / d["tokens_per_s_per_gpu"] < 2.1
    code, table, err = cli(
        "frontier",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--gpus",
        "2",
        "--isl",
        "128",
        "--osl",
        "1024",
        "--serving",
        "auto",
    )
    assert code == 0 and "disaggregated points" in table and "verdict: aggregated holds" in table


def test_compare_puts_both_modes_side_by_side(cli):
    code, out, err = cli(
        "compare",
        "--model",
        "llama-8b",
        "-t",
        "8xh100",
        "-t",
        "8xh100-pcie-nvlink-pairs",
        "--isl",
        "128",
        "--osl",
        "1024",
        "--serving",
        "auto",
        "--json",
    )
    assert code == 0, err
    r = json.loads(out)
    assert [m["topology"] for m in r["machines"]] == ["8xh100", "8xh100-pcie-nvlink-pairs"]
    for m in r["machines"]:
        s = m["serving"]
        assert {s["best"]["mode"], s["other"]["mode"]} == {"agg", "disagg"}
        assert s["best"]["tokens_per_s"] >= s["other"]["tokens_per_s"]  # auto: the better wins
        assert s["margin"] == pytest.approx(s["best"]["tokens_per_s"] / s["other"]["tokens_per_s"] - 1)
        assert "TTFT interference" in s["verdict"] and "Transfer:" in s["verdict"]
    code, table, err = cli(
        "compare",
        "--model",
        "llama-8b",
        "-t",
        "8xh100",
        "-t",
        "8xh100-pcie-nvlink-pairs",
        "--isl",
        "128",
        "--osl",
        "1024",
        "--serving",
        "auto",
    )
    assert code == 0 and "aggregated against disaggregated, per machine" in table
