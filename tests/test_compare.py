"""`planner compare`: rows, verdict, JSON round trip, the plot and the example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner.compare import CompareResult, compare
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.plan import Partition, Stage, Workload

REPO = Path(__file__).resolve().parent.parent


def test_equal_shapes_pcie_extra_time_is_interconnect(profiles):
    """Same GPUs (H100 PCIe), same TP2 shape: a bridged pair against a plain PCIe pair.
    The only difference between the machines is the link, so the extra time is interconnect time."""
    p = profiles("llama-70b")
    w = Workload(concurrency=8, isl=1024, osl=256, weight_dtype="fp8")
    plan = Partition(stages=[Stage(layer_start=0, layer_end=80, gpu_ids=[0, 1], tp=2)])
    bridged = estimate(p, load_topology("8xh100-pcie-nvlink-pairs"), plan, workload=w)
    plain = estimate(p, load_topology("8xh100-pcie"), plan, workload=w)
    extra = plain.tpot_ms - bridged.tpot_ms
    assert extra > 0
    assert extra == pytest.approx(
        plain.time_breakdown_ms["interconnect"] - bridged.time_breakdown_ms["interconnect"], rel=1e-9
    )
    for k in ("weights", "kv", "compute", "overhead"):
        assert plain.time_breakdown_ms[k] == pytest.approx(bridged.time_breakdown_ms[k], rel=1e-12)


def test_compare_rows_verdict_and_json_round_trip(profiles):
    p = profiles("llama-70b")
    topos = [load_topology("8xh100"), load_topology("8xh100-pcie")]
    result = compare(p, topos, Workload(), concurrencies=[1, 32])
    assert {(r.topology, r.concurrency) for r in result.rows} == {(t.name, c) for t in topos for c in (1, 32)}
    one_nv, one_pcie = result.row("8xh100", 1), result.row("8xh100-pcie", 1)
    assert one_nv.tpot_ms < one_pcie.tpot_ms
    assert sum(one_nv.breakdown_ms.values()) == pytest.approx(one_nv.tpot_ms)
    assert (
        result.verdict[0].startswith("8xh100 is ")
        and "faster per token than 8xh100-pcie at concurrency 1" in result.verdict[0]
    )
    again = CompareResult.model_validate_json(result.model_dump_json())
    assert again == result


def test_compare_mixed_machines_and_no_fit(profiles):
    p = profiles("llama-70b")
    result = compare(p, [load_topology("1xh100"), load_topology("h100-a100-ib")], Workload(), concurrencies=[1])
    assert not result.row("1xh100", 1).fits and result.row("h100-a100-ib", 1).fits
    assert any("does not fit on 1xh100" in line for line in result.verdict)


def test_cli_compare_plot_and_json(cli, tmp_path):
    png = tmp_path / "out.png"
    code, out, err = cli(
        "compare",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--topology",
        "8xl40s",
        "--concurrency",
        "1,16",
        "--plot",
        str(png),
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert len(data["rows"]) == 4 and data["verdict"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    code, _, err = cli("compare", "--model", "llama-8b", "--topology", "8xh100", "--concurrency", "0")
    assert code == 1 and "at least 1" in err
    code, _, err = cli("compare", "--model", "llama-8b", "--topology", "8xh100", "--objective", "traffic")
    assert code == 1 and "latency or throughput" in err


def test_compare_example_runs(tmp_path):
    r = subprocess.run(
        [sys.executable, str(REPO / "examples" / "compare_nvlink_pcie.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "compare.png").stat().st_size > 20_000
    assert "faster per token" in r.stdout
