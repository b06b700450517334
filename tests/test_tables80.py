"""Issue 26 item 6: compare, frontier and validate at 80 columns (every figure whole), compare keeps the loads it
was asked for, names the flags that change every number, calls ties ties; solve's notes about other shapes."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from planner.compare import CompareResult, CompareRow, compare, verdict
from planner.frontier import FrontierPoint, FrontierResult
from planner.hardware import load_topology
from planner.plan import Partition, Stage, Workload
from planner.report.plans import compare_table, frontier_table, note_lines, validation_table
from planner.validate.runner import Check, ValidationReport


def render80(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=80, color_system=None).print(renderable)
    return out.getvalue()


def assert_fits_whole(text: str, figures: list[str]) -> None:
    """No line past 80 columns, and each figure appears as a whole token (not split over two lines)."""
    assert max(len(line) for line in text.splitlines()) <= 80
    for fig in figures:
        assert re.search(rf"(?<![\d.,]){re.escape(fig)}(?![\d.,])", text), f"{fig} not whole in:\n{text}"


def _row(topology: str, concurrency: int, tpot_ms: float, **kw) -> CompareRow:
    b = {
        "weights": tpot_ms * 0.5,
        "kv": tpot_ms * 0.1,
        "compute": tpot_ms * 0.1,
        "interconnect": tpot_ms * 0.2,
        "overhead": tpot_ms * 0.1,
        "offload": 0.0,
    }
    return CompareRow(
        topology=topology,
        n_gpus=8,
        concurrency=concurrency,
        fits=True,
        shape="TP8 x PP1 x R1",
        stages=[list(range(8))],
        tpot_ms=tpot_ms,
        ttft_ms=12_345.6,
        tokens_per_s=123_456.0,
        tokens_per_s_per_gpu=15_432.1,
        max_concurrency=1_105,
        breakdown_ms=b,
        roofline_ratio=2.39,
        **kw,
    )


def test_compare_at_80_columns_every_figure_whole(profiles):
    """The command of the issue (`COLUMNS=80 planner compare --model llama-70b -t 8xh100 -t 8xh100-pcie`), at two of
    its loads: per-machine blocks of at most seven columns hold every figure on one line."""
    result = compare(
        profiles("llama-70b"),
        [load_topology("8xh100"), load_topology("8xh100-pcie")],
        Workload(),
        concurrencies=[1, 128],
    )
    figures = []
    for r in result.rows:
        assert r.fits
        b = r.breakdown_ms
        figures += [
            f"{r.tpot_ms:.2f}",
            f"{r.ttft_ms:,.1f}",
            f"{r.tokens_per_s:,.0f}",
            f"{r.tokens_per_s_per_gpu:,.1f}",
            f"{r.max_concurrency:,}",
            f"{b['weights']:.2f}",
            f"{b['kv']:.2f}",
            f"{b['interconnect']:.2f}",
            f"{r.roofline_ratio:.2f}",
        ]
    assert_fits_whole(render80(compare_table(result)), figures)


def test_compare_title_names_the_flags_that_change_every_number():
    w = Workload(activation_sparsity=0.4, engine="sglang", weight_dtype="fp8", kv_dtype="fp8")
    result = CompareResult(
        model="m",
        objective="latency",
        workload=w,
        concurrencies=[1],
        topologies=["a", "b"],
        rows=[_row("a", 1, 10.0), _row("b", 1, 20.0)],
        verdict=[],
    )
    text = render80(compare_table(result))
    for words in ("activation sparsity 40%", "sglang", "fp8 weights", "fp8 KV", "isl 1024", "osl 256"):
        assert words in " ".join(text.split()), words


def test_ties_within_half_a_percent_are_ties():
    """6.10 ms against 6.12 ms (0.33% apart) is a tie; 6.10 against 6.20 (1.6%) is a win."""
    rows = [_row("a", 1, 6.10), _row("b", 1, 6.12), _row("c", 1, 6.20)]
    result = CompareResult(
        model="m",
        objective="latency",
        workload=Workload(),
        concurrencies=[1],
        topologies=["a", "b", "c"],
        rows=rows,
        verdict=[],
    )
    lines = verdict(result)
    assert lines[0] == "a and b tie at concurrency 1 (within 0.5%: TPOT 6.10 ms vs 6.12 ms)"
    assert lines[1].startswith("a is 1.02x faster per token than c at concurrency 1")
    assert not any("1.00x" in line for line in lines)


def test_compare_keeps_the_requested_load_or_says_it_substituted(profiles, monkeypatch):
    """A plan solved at load 2 (one sequence on each of 2 replicas) for a request of 1: the row stays at load 1, says
    what it was solved at, and the verdict says so."""
    import planner.compare as compare_module

    p = profiles("llama-8b")
    real = compare_module.solve
    at_two = real(p, load_topology("8xh100"), Workload(concurrency=2))

    def fake(profile, topo, workload, **kw):
        return at_two if topo.name == "8xh100" else real(profile, topo, workload, **kw)

    monkeypatch.setattr(compare_module, "solve", fake)  # compare imports solve at its module top
    result = compare(p, [load_topology("8xh100"), load_topology("8xh200")], Workload(), concurrencies=[1])
    row = result.row("8xh100", 1)
    assert (row.concurrency, row.solved_concurrency) == (1, 2)
    assert result.row("8xh200", 1).solved_concurrency is None
    assert any("8xh100 was solved at load 2" in line for line in result.verdict)
    assert "1 (as 2)" in render80(compare_table(result))


def _point(shape: str, concurrency: int, tpot_ms: float, ttft_ms: float, **kw) -> FrontierPoint:
    part = Partition(stages=[Stage(layer_start=0, layer_end=32, gpu_ids=list(range(8)), tp=8)])
    return FrontierPoint(
        shape=shape,
        concurrency=concurrency,
        gpus=8,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        tokens_per_s=concurrency * 1e3 / tpot_ms,
        tokens_per_s_per_gpu=concurrency * 125 / tpot_ms,
        tokens_per_s_per_user=1e3 / tpot_ms,
        plan=part,
        **kw,
    )


def test_frontier_at_80_columns_one_line_a_point():
    pts = [
        _point("TP8 x PP1 x R1", 1, 12.4, 111.0, engines=["vllm", "sglang", "trtllm"], frontier=True),
        _point("DP2xTP4+EP8 x PP2 x R2", 2_784, 269.1, 93_412.0, engines=["vllm", "sglang"], frontier=True),
        _point("TP1 x PP8 x R1", 984, 1_234.5, 7_391.0, engines=[], frontier=False),
    ]
    result = FrontierResult(
        model="Llama-3.1-70B", topology="8xh100", workload=Workload(), gpus=8, points=pts, wall_time_s=1.0
    )
    text = render80(frontier_table(result, all_points=True))
    figures = [
        f
        for p in pts
        for f in (
            f"{p.concurrency:,}",
            f"{p.tpot_ms:.1f}",
            f"{p.ttft_ms:,.0f}",
            f"{p.tokens_per_s_per_user:.1f}",
            f"{p.tokens_per_s_per_gpu:,.0f}",
        )
    ]
    assert_fits_whole(text, figures)
    for p in pts:  # a point's figures all on one line (a long shape may fold; its numbers do not)
        assert any(
            f" {p.concurrency:,} " in line
            and f" {p.tpot_ms:.1f} " in line
            and f" {p.ttft_ms:,.0f} " in line
            and f" {p.tokens_per_s_per_gpu:,.0f} " in line
            for line in text.splitlines()
        ), p.shape
    plain = result.model_copy(update={"points": [pts[0], pts[2]]})  # shapes of the usual length: one line a point
    body = [line for line in render80(frontier_table(plain, all_points=True)).splitlines() if line.startswith("│")]
    assert len(body) == 2, body


def test_validate_at_80_columns_notes_below():
    note = "allreduce 160, send 2; expert-parallel: the cost model's bytes are the expectation of uniform routing"
    checks = [
        Check(
            name="memory: parameter bytes",
            rank=0,
            passed=True,
            predicted=1_234_567_890.0,
            measured=1_234_567_890.0,
            unit="B",
        ),
        Check(
            name="traffic: bytes received per decode step",
            rank=3,
            passed=True,
            predicted=8_392_704.0,
            measured=8_392_704.0,
            unit="B",
            note=note,
        ),
        Check(
            name="time: decode step",
            rank=3,
            passed=None,
            predicted=12.3456,
            measured=987.654,
            unit="ms",
            note="reported, not judged",
        ),
    ]
    report = ValidationReport(
        plan="plan.json",
        scale="mini",
        backend="gloo",
        world_size=4,
        batch=2,
        decode_tokens=4,
        stages=[],
        model_config_used={},
        checks=checks,
        passed=True,
    )
    text = render80(validation_table(report))
    assert_fits_whole(text, ["1.235e+09", "8.393e+06", "12.35", "987.7"])
    assert "[1] " + note[:40] in text and "[2] reported, not judged" in text


def test_notes_about_other_replica_counts_are_about_the_search():
    """h100-a100-ib at concurrency 32 gives a 1-replica plan whose solver note named 2, 3 and 4 replicas."""
    tail = "were placed on slots from a locality order, not every placement: the plan is the best found, not proven optimal"
    note = f"2 replicas of 8 GPUs {tail}; 3 replicas of 4 GPUs {tail}; the time limit ran out"
    lines = note_lines(note, replicas=1)
    assert lines == [
        "note: the time limit ran out",
        f"note on the search, not this 1-replica plan: the other shapes' replicas (2 x 8 GPUs, 3 x 4 GPUs) {tail}",
    ]
    assert note_lines(f"2 replicas of 8 GPUs {tail}", replicas=2) == [f"note: 2 replicas of 8 GPUs {tail}"]


@pytest.mark.parametrize("objective", ["throughput"])
def test_throughput_ties(objective):
    rows = [_row("a", 4, 10.0), _row("b", 4, 10.0)]
    rows[1].tokens_per_s = rows[0].tokens_per_s * 0.997
    result = CompareResult(
        model="m",
        objective=objective,
        workload=Workload(),
        concurrencies=[4],
        topologies=["a", "b"],
        rows=rows,
        verdict=[],
    )
    assert verdict(result)[0].startswith("a and b tie at concurrency 4 (within 0.5%: 123,456 vs 123,086 tokens/s)")
