"""Serving at load: one operating point per prediction, throughput under SLOs, the calibration against published
at-load measurements, closed-loop waves, and the Pareto frontier."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from planner.calibrate.search import Knob, coordinate_descent
from planner.calibrate.serving import Row, errors, medians
from planner.cost.constants import DEFAULT
from planner.cost.serving import operating_point
from planner.plan import Workload

DATA = Path(__file__).parent / "data"


def nim_rows() -> list[Row]:
    doc = yaml.safe_load((DATA / "serving_nim.yaml").read_text())
    return [Row(mode=doc["mode"], **r) for r in doc["rows"]]


# --- calibration against published at-load measurements (tests/data/serving_nim.yaml) ---------------------------


def test_the_published_rows_cover_loads_and_machines():
    rows = nim_rows()
    assert len(rows) >= 12
    assert len({r.concurrency for r in rows if r.concurrency > 1}) >= 3
    assert len({(r.machine, r.tp) for r in rows}) >= 2 and len({r.machine for r in rows}) >= 2
    assert {r.role for r in rows} == {"fit", "check"}


@pytest.mark.parametrize("role", ["fit", "check", "all"])
def test_median_errors_at_load(role):
    """Issue 13's bar was median |error| <= 15% for TPOT and tokens/s, <= 25% for TTFT. Since issue 23 the
    constants are fitted on the whole corpus (planner/cost/engines/fitted.yaml), not on these rows. TTFT is back
    within 25% (it was 55-65% while one shared flops_efficiency, pulled to 0.375 by vLLM's offline rows, slowed
    TensorRT-LLM's prefill; the GEMM efficiency is now per engine, TensorRT-LLM's fitted 0.75). Measured with the
    shipped fitted.yaml (benchmarks/RESULTS.md, 'Fidelity notes') and TensorRT-LLM's all-reduce through NCCL: fit
    rows TPOT 8.5%, TTFT 24.5%, tokens/s 10.1%; check rows 13.3%, 12.7%, 13.3%; all 9.3%, 19.2%, 11.5% (with the
    one-shot kernel: all 12.6%, 19.2%, 13.8%). Asserted: ceilings above those."""
    rows = [r for r in nim_rows() if role == "all" or r.role == role]
    m = medians(errors(rows, DEFAULT))
    assert m["tpot"] <= 0.155 and m["tokens"] <= 0.17 and m["ttft"] <= 0.25, m


def test_concurrency_1_rows_stay_close():
    """At one user the published TPOT is met within 20% on every row (the held-out A100s included)."""
    ones = [e for e in errors([r for r in nim_rows() if r.concurrency == 1], DEFAULT)]
    assert len(ones) >= 8 and all(abs(e.tpot) <= 0.20 for e in ones), [(e.row.model, e.tpot) for e in ones]


# --- the operating point --------------------------------------------------------------------------------------


def test_the_fits_search_finds_a_log_minimum_within_its_range_and_guard():
    # score = (ln x - ln 3)^2 has its minimum at x = 3; steps of 2, sqrt 2, 2^(1/4), ... from 1 reach it
    # within the last step (< 2% here, min_step 1.02)
    knob = Knob("x", lambda c: c, lambda c, v: v, 1e-3, 10.0)
    score = lambda x: (math.log(x) - math.log(3.0)) ** 2  # noqa: E731
    assert coordinate_descent(1.0, [knob], score) == pytest.approx(3.0, rel=0.02)
    # the range clamps it: at most 2.5; the guard vetoes anything above 2
    assert coordinate_descent(1.0, [Knob("x", knob.get, knob.set, 1e-3, 2.5)], score) == 2.5
    assert coordinate_descent(1.0, [knob], score, guard=lambda x: x <= 2.0) <= 2.0
    # a knob at zero restarts from a thousandth of its upper bound (0.01, then doubling), or stays at zero
    square = lambda x: (x - 3.0) ** 2  # noqa: E731
    assert coordinate_descent(0.0, [knob], square) == pytest.approx(3.0, rel=0.02)
    assert coordinate_descent(0.0, [knob], square, from_zero=False) == 0.0


def test_serving_step_mix_by_hand():
    """isl 2000, osl 200, 10 sequences on one replica: each step also prefills 10 x 2000/200 x 9/10 = 90 prompt
    tokens; chunks are min(8192 - 10, max(2000, 90)) = 2000 tokens, so 90/2000 = 4.5% of steps carry one."""
    op = operating_point(Workload(isl=2000, osl=200), concurrency=10, replicas=1, pp=1, c=DEFAULT)
    assert op.prefill_per_step == pytest.approx(90.0)
    (decode, w0), (mixed, w1) = op.tpot_loads
    assert (decode.decode, decode.prefill, mixed.decode, mixed.prefill) == (10, 0, 10, 2000)
    assert w1 == pytest.approx(0.045) and w0 == pytest.approx(0.955)
    assert op.ttft_chunks == 1 and op.feasible


def test_a_load_beyond_the_step_budget_is_refused():
    # 100 sequences of isl 20000 / osl 100 need 100 x 200 x 0.99 = 19,800 prompt tokens a step: over 8192
    op = operating_point(Workload(isl=20000, osl=100), concurrency=100, replicas=1, pp=1, c=DEFAULT)
    assert not op.feasible and "step budget" in op.problem


def test_closed_loop_waves_by_hand():
    """10 clients, isl 2000: the wave's 20,000 prompt tokens take 3 steps of 8192; requests 1-4 end in step 1,
    5-8 in step 2, 9-10 in step 3: the mean first token comes after 1.8 steps."""
    op = operating_point(Workload(isl=2000, osl=200, mode="closed"), concurrency=10, replicas=1, pp=1, c=DEFAULT)
    assert op.ttft_chunks == pytest.approx(1.8) and op.ttft_load.prefill == 8192
    # after its first token a request decodes in the wave's later prefill steps: (2+2+2+2+1+1+1+1+0+0)/10 = 1.2 of 199
    assert op.tpot_loads[1][1] == pytest.approx(1.2 / 199)


def test_estimate_holds_every_figure_at_its_load(cli):
    for c in (1, 64):
        code, out, err = cli(
            "estimate", "--model", "llama-70b", "--topology", "8xh100", "--tp", "8", "--concurrency", str(c), "--json"
        )
        assert code == 0, err
        data = json.loads(out)
        assert {k: data[k] for k in ("concurrency", "tpot_ms")} == {
            k: data["plan"]["prediction"][k] for k in ("concurrency", "tpot_ms")
        }
        p = data["plan"]["prediction"]
        assert p["concurrency"] == c
        assert p["tokens_per_s"] == pytest.approx(c * 1000 / p["tpot_ms"], rel=1e-9)
        assert p["tokens_per_s_per_user"] == pytest.approx(1000 / p["tpot_ms"], rel=1e-9)
        assert p["tokens_per_s_per_gpu"] == pytest.approx(p["tokens_per_s"] / 8, rel=1e-9)
    code, out, _ = cli(
        "estimate",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--tp",
        "8",
        "--concurrency",
        "64",
        "--mode",
        "static",
        "--json",
    )
    static = json.loads(out)["plan"]["prediction"]
    assert code == 0 and static["mode"] == "static" and static["prefill_tokens_per_step"] == 0
    assert static["tpot_ms"] < p["tpot_ms"]  # no newcomers' prompts in its steps


# --- throughput under SLOs --------------------------------------------------------------------------------------


# TTFT SLOs of 200/300 ms (100/200 before issue 23): the default engine (vLLM) pays its fitted 38 ms per request and
# the corpus-fitted prefill efficiency, so no plan of Llama-70B meets 100 ms at load any more
@pytest.mark.parametrize(
    "slo", [["--tpot-slo", "20"], ["--ttft-slo", "200"], ["--tpot-slo", "30", "--ttft-slo", "300"]]
)
def test_throughput_under_slos_holds_at_the_chosen_load(cli, slo):
    code, out, err = cli(
        "solve",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--objective",
        "throughput",
        *slo,
        "--isl",
        "1024",
        "--osl",
        "256",
        "--json",
    )
    assert code == 0, err
    p = json.loads(out)["prediction"]
    limits = dict(zip(slo[::2], map(float, slo[1::2])))
    assert p["tpot_ms"] <= limits.get("--tpot-slo", math.inf) and p["ttft_ms"] <= limits.get("--ttft-slo", math.inf)
    assert p["tokens_per_s"] == pytest.approx(p["concurrency"] * 1000 / p["tpot_ms"], rel=0.01)
    assert 1 < p["concurrency"] <= p["max_concurrency"]


def test_throughput_without_slos_is_at_the_largest_load_served(cli):
    code, out, _ = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "--objective", "throughput", "--json")
    p = json.loads(out)["prediction"]
    # the largest load served: with the corpus-fitted constants of 2026-12-02 (vLLM's GEMM efficiency 0.45) the
    # chosen plan (TP2 x PP2 stages) runs at its KV capacity, 768 sequences, before the TTFT guard (issue 26) binds;
    # with round three's constants the guard bound first (920 of 1,007 on TP2 x PP4)
    assert code == 0 and p["concurrency"] == p["max_concurrency"] == 768


def test_closed_mode_is_not_a_throughput_objective(cli):
    code, _, err = cli(
        "solve", "--model", "llama-8b", "--topology", "8xh100", "--objective", "throughput", "--mode", "closed"
    )
    assert code == 1 and "--mode closed" in err


# --- the frontier -----------------------------------------------------------------------------------------------


def test_frontier_json_and_plot(cli, tmp_path):
    png = tmp_path / "frontier.png"
    code, out, err = cli("frontier", "--model", "llama-70b", "--topology", "8xh100", "--plot", str(png), "--json")
    assert code == 0, err
    data = json.loads(out)
    pts = data["points"]
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
    for p in pts:
        assert set(p) >= {
            "shape",
            "concurrency",
            "tpot_ms",
            "ttft_ms",
            "tokens_per_s_per_gpu",
            "tokens_per_s_per_user",
            "plan",
        }
        assert p["tokens_per_s_per_gpu"] == pytest.approx(p["concurrency"] * 1000 / p["tpot_ms"] / p["gpus"], rel=1e-9)
    front = [p for p in pts if p["frontier"]]
    assert len(front) >= 3 and len({p["shape"] for p in front}) >= 2
    for f in front:  # nothing beats a frontier point on both axes
        assert not any(
            q["tokens_per_s_per_gpu"] > f["tokens_per_s_per_gpu"]
            and q["tokens_per_s_per_user"] > f["tokens_per_s_per_user"]
            for q in pts
        )
    # the fastest per user is the smallest load on the widest TP; the most per GPU is a high load
    fastest = max(front, key=lambda p: p["tokens_per_s_per_user"])
    assert fastest["shape"] == "TP8 x PP1 x R1" and fastest["concurrency"] == 1
    assert max(front, key=lambda p: p["tokens_per_s_per_gpu"])["concurrency"] >= 256


def test_frontier_table_and_bad_input(cli):
    code, out, _ = cli("frontier", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2")
    assert code == 0 and "Pareto frontier" in out and "TP2" in out
    code, _, err = cli("frontier", "--model", "llama-8b", "--topology", "8xh100", "--plot", "/tmp/x.gif")
    assert code == 1 and ".gif" in err
    code, _, err = cli("frontier", "--model", "llama-405b", "--topology", "1xh100")
    assert code == 2 and "fits" in err
