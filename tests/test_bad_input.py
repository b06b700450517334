"""Issue 18's examples, one regression test each: bad input gives one clear line naming the file, field or range,
and exit 1 (2 only where the input is valid but nothing fits); never a traceback, never a hang."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _expect(cli, args, needle, code=1):
    got, out, err = cli(*args)
    assert got == code, (args, got, err)
    assert "Traceback" not in err and needle in err, (args, err)
    assert len([ln for ln in err.splitlines() if ln.startswith("error:")]) == 1
    return err


def test_non_utf8_and_deep_files(cli, tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_bytes(b"name: \xe9\nnodes: []\n")
    _expect(cli, ["topology", "show", str(bad)], "t.yaml: the topology is not UTF-8 text")
    cfg = tmp_path / "config.json"
    cfg.write_bytes(b'{"model_type": "\xff"}')
    _expect(cli, ["models", "show", str(cfg)], "config.json: the model config is not UTF-8 text")
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nnodes: " + "[" * 1000 + "]" * 1000 + "\n")
    _expect(cli, ["topology", "show", str(deep)], "deep.yaml: nested too deeply")
    plan = tmp_path / "plan.json"
    plan.write_text("[" * 5000 + "]" * 5000)
    _expect(cli, ["launch", str(plan), "--engine", "vllm"], "plan.json: nested too deeply")


@pytest.mark.parametrize("old,new,needle", [
    ("bandwidth: 400Gb/s", "bandwidth: 1e999GB/s", "outside the physical range 1MB/s to 100TB/s"),
    ("bandwidth: 400Gb/s", "bandwidth: 1e-30GB/s", "outside the physical range 1MB/s to 100TB/s"),
    ("latency: 2us", "latency: 1e6s", "latency"),
])
def test_extreme_numbers_in_a_topology(cli, tmp_path, old, new, needle):
    text = (REPO / "topologies" / "2x8xh100-ib.yaml").read_text()
    assert old in text
    f = tmp_path / "x.yaml"
    f.write_text(text.replace(old, new, 1))
    _expect(cli, ["topology", "show", str(f)], needle)


@pytest.mark.parametrize("args,needle", [
    (["--concurrency", "9223372036854775807"], "--concurrency"),
    (["--tpot-slo", "nan"], "--tpot-slo: Input should be a finite number"),
    (["--tpot-slo", "inf"], "--tpot-slo: Input should be a finite number"),
    (["--tpot-slo", "-1"], "--tpot-slo: Input should be greater than 0"),
    (["--time-limit", "nan"], "--time-limit: Input should be a finite number"),
    (["--max-tp", "-1"], "--max-tp: Input should be greater than or equal to 1"),
    (["--max-pp", "-1"], "--max-pp: Input should be greater than or equal to 1"),
    (["--max-pp", "0"], "--max-pp: Input should be greater than or equal to 1"),
    (["--isl", "200000"], "exceeds Llama-3.1-8B's context of 131,072 tokens"),
    (["--gpu-ids", "0,1,1,2"], "GPU ids repeat"),
])
def test_solve_options_out_of_range(cli, args, needle):
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", *args], needle)


def test_estimate_and_compare_options(cli, tmp_path):
    base = ["estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "1"]
    _expect(cli, [*base, "--layers=-1,33", "--pp", "2"], "--layers: -1 is outside")
    _expect(cli, [*base, "--gpu-ids", "0,1,1,2"], "GPU ids repeat")
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100", "--plot", "x.foo"], "x.foo")
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "8xl40s", "--plot", "/nonexistent/x.png"],
            "does not exist")
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100"], "two or more")
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "8xl40s", "-c", "1,8", "--breakdown-at",
                  "4"], "--breakdown-at 4")
    _expect(cli, ["topology", "collective", "8xh100", "--sizes", "0"], "--sizes: 0 is outside 1 B to 1 TiB")
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "-o", "x" * 5000], "too long")


@pytest.mark.parametrize("content,needle", [
    ("[1, 2]\n", "a calibration profile is a mapping"),
    ("just a string\n", "a calibration profile is a mapping"),
    ("hbm_efficiency: -0.5\n", "hbm_efficiency"),
    ("hbm_efficiency: .nan\n", "hbm_efficiency"),
    ("no_such_constant: 1\n", "no_such_constant"),
])
def test_bad_calibration_profiles(cli, tmp_path, content, needle):
    f = tmp_path / "cal.yaml"
    f.write_text(content)
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "--calibration", str(f)], needle)


def test_calibration_from_dev_zero_is_capped(cli):
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "--calibration", "/dev/zero"],
            "larger than 16 MiB")


def _plan(tmp_path: Path, cli) -> dict:
    f = tmp_path / "good.json"
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2", "-o", str(f))
    assert code == 0, err
    return json.loads(f.read_text())


@pytest.mark.parametrize("edit,needle", [
    (lambda p: p["stages"][0].update(layer_start=10), "layer"),
    (lambda p: p["stages"][0].update(gpu_ids=[0, 0]), "used twice"),
    (lambda p: p["stages"][0].update(layer_end=1000), "layer"),
    (lambda p: p["inputs"].update(config_hash="0" * 16), "changed since the plan was made"),
    (lambda p: p.update(plan_version=99), "plan_version 99"),
    (lambda p: p["stages"][0].update(tp=64), "tp"),
    (lambda p: p.update(replicas=2), "replica"),
    (lambda p: p.update(stages=[]), "stages"),
    (lambda p: p.pop("plan_version"), "plan_version"),
    (lambda p: p.update(surprise=1), "surprise"),
])
def test_launch_and_validate_check_the_plan(cli, tmp_path, edit, needle):
    plan = _plan(tmp_path, cli)
    edit(plan)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    _expect(cli, ["launch", str(f), "--engine", "vllm"], needle)
    _expect(cli, ["validate", str(f)], needle)


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["nodes"][0].update(pcie_switches=[dict(d["nodes"][0]["pcie_switches"][0])] * 2), "pcie"),
    (lambda d: d["nodes"][0]["nvlink"][0].update(links=10**9), "links"),
    (lambda d: d["nodes"][0]["gpus"].update(count=0), "count"),
    (lambda d: d["nodes"][0]["gpus"].update(count=True), "count"),
])
def test_topology_consistency(cli, tmp_path, edit, needle):
    doc = yaml.safe_load((REPO / "topologies" / "8xh100-pcie-nvlink-pairs.yaml").read_text())
    edit(doc)
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(doc))
    _expect(cli, ["topology", "show", str(f)], needle)


def test_exit_codes_and_json_contract(cli, tmp_path):
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--no-such-option")
    assert code == 1 and "No such option" in err  # a parse error is bad input: exit 1, not 2
    for args in (["topology", "schema", "--json"], ["launch", "--help"]):
        code, out, _ = cli(*args)
        assert code == 0
    code, out, err = cli("topology", "schema", "--json")
    assert json.loads(out)["title"]
    out_dir = tmp_path / "emit"
    code, out, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--emit", "vllm", "-o", str(out_dir),
                         "--json")
    assert code == 0 and json.loads(out)["stages"] and "wrote" in err  # notes go to stderr, stdout stays JSON


def test_hub_id_offline_fails_fast(cli, monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    _expect(cli, ["models", "show", "someorg/somemodel"], "HF_HUB_OFFLINE is set; pass a path to its config.json")
    assert time.monotonic() - start < 5


def test_scale_is_bounded(cli, tmp_path):
    doc = yaml.safe_load((REPO / "topologies" / "8xh100.yaml").read_text())
    doc["nodes"][0]["count"] = 512  # 4,096 GPUs
    doc["network"] = {"bandwidth": "400Gb/s", "latency": "3us"}
    f = tmp_path / "big.yaml"
    f.write_text(yaml.safe_dump(doc))
    import time

    start = time.monotonic()
    code, out, err = cli("topology", "show", str(f), "--json")
    assert time.monotonic() - start < 30, "a summary, not an n x n matrix"
    assert code == 0, err
    data = json.loads(out)
    assert len(data["gpus"]) == 4096 and data["bandwidth_matrix_bytes_per_s"] is None and data["pair_classes"]
