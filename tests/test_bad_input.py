"""Issue 18's examples, one regression test each: bad input gives one clear line naming the file, field or range,
and exit 1 (2 only where the input is valid but nothing fits); never a traceback, never a hang."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from planner.cli.common import MAX_ERROR_CHARS, bounded
from planner.hardware.topology import Topology

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


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ("bandwidth: 400Gb/s", "bandwidth: 1e999GB/s", "outside the physical range 1MB/s to 100TB/s"),
        ("bandwidth: 400Gb/s", "bandwidth: 1e-30GB/s", "outside the physical range 1MB/s to 100TB/s"),
        ("latency: 2us", "latency: 1e6s", "latency"),
    ],
)
def test_extreme_numbers_in_a_topology(cli, tmp_path, old, new, needle):
    text = (REPO / "topologies" / "2x8xh100-ib.yaml").read_text()
    assert old in text
    f = tmp_path / "x.yaml"
    f.write_text(text.replace(old, new, 1))
    _expect(cli, ["topology", "show", str(f)], needle)


@pytest.mark.parametrize(
    "args,needle",
    [
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
    ],
)
def test_solve_options_out_of_range(cli, args, needle):
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", *args], needle)


def test_estimate_and_compare_options(cli, tmp_path):
    base = ["estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "1"]
    _expect(cli, [*base, "--layers=-1,33", "--pp", "2"], "--layers: -1 is outside")
    _expect(cli, [*base, "--gpu-ids", "0,1,1,2"], "GPU ids repeat")
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100", "--plot", "x.foo"], "x.foo")
    _expect(
        cli,
        ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "8xl40s", "--plot", "/nonexistent/x.png"],
        "does not exist",
    )
    _expect(cli, ["compare", "--model", "llama-8b", "-t", "8xh100"], "two or more")
    _expect(
        cli,
        ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "8xl40s", "-c", "1,8", "--breakdown-at", "4"],
        "--breakdown-at 4",
    )
    _expect(cli, ["topology", "collective", "8xh100", "--sizes", "0"], "--sizes: 0 is outside 1 B to 1 TiB")
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "-o", "x" * 5000], "too long")


@pytest.mark.parametrize(
    "content,needle",
    [
        ("[1, 2]\n", "a calibration profile is a mapping"),
        ("just a string\n", "a calibration profile is a mapping"),
        ("hbm_efficiency: -0.5\n", "hbm_efficiency"),
        ("hbm_efficiency: .nan\n", "hbm_efficiency"),
        ("no_such_constant: 1\n", "no_such_constant"),
    ],
)
def test_bad_calibration_profiles(cli, tmp_path, content, needle):
    f = tmp_path / "cal.yaml"
    f.write_text(content)
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "--calibration", str(f)], needle)


def test_calibration_from_dev_zero_is_capped(cli):
    _expect(
        cli,
        ["solve", "--model", "llama-8b", "--topology", "8xh100", "--calibration", "/dev/zero"],
        "larger than 16 MiB",
    )


def _plan(tmp_path: Path, cli) -> dict:
    f = tmp_path / "good.json"
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--gpus", "2", "-o", str(f))
    assert code == 0, err
    return json.loads(f.read_text())


@pytest.mark.parametrize(
    "edit,needle",
    [
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
        # issue 27: a boolean figure is not read as 1.0 (the fuzz's extreme-plan family found it accepted)
        (lambda p: p["prediction"].update(tpot_ms=True), "tpot_ms: a boolean"),
        (lambda p: p["prediction"]["stages"][0].update(step_time_ms=False), "step_time_ms: a boolean"),
        (lambda p: p["prediction"]["memory_per_gpu_bytes"].update({"0": True}), "memory_per_gpu_bytes: a boolean"),
    ],
)
def test_launch_and_validate_check_the_plan(cli, tmp_path, edit, needle):
    plan = _plan(tmp_path, cli)
    edit(plan)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    _expect(cli, ["launch", str(f), "--engine", "vllm"], needle)
    _expect(cli, ["validate", str(f)], needle)


@pytest.mark.parametrize(
    "edit,needle",
    [
        (lambda d: d["nodes"][0].update(pcie_switches=[dict(d["nodes"][0]["pcie_switches"][0])] * 2), "pcie"),
        (lambda d: d["nodes"][0]["nvlink"][0].update(links=10**9), "links"),
        (lambda d: d["nodes"][0]["gpus"].update(count=0), "count"),
        (lambda d: d["nodes"][0]["gpus"].update(count=True), "count"),
    ],
)
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
    code, out, err = cli(
        "solve", "--model", "llama-8b", "--topology", "8xh100", "--emit", "vllm", "-o", str(out_dir), "--json"
    )
    assert code == 0 and json.loads(out)["stages"] and "wrote" in err  # notes go to stderr, stdout stays JSON


def test_hub_id_offline_fails_fast(cli, monkeypatch):
    """Offline, a hub id is refused before any connection is tried (counted, not timed: a loaded machine
    makes any wall-clock bound flaky)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    attempts = []

    def no_network(self, address):
        attempts.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    _expect(cli, ["models", "show", "someorg/somemodel"], "HF_HUB_OFFLINE is set; pass a path to its config.json")
    assert attempts == []


def test_scale_is_bounded(cli, tmp_path, monkeypatch):
    doc = yaml.safe_load((REPO / "topologies" / "8xh100.yaml").read_text())
    doc["nodes"][0]["count"] = 512  # 4,096 GPUs
    doc["network"] = {"bandwidth": "400Gb/s", "latency": "3us"}
    f = tmp_path / "big.yaml"
    f.write_text(yaml.safe_dump(doc))
    routes = []
    path = Topology.path

    def counted(self, a, b):
        routes.append((a, b))
        return path(self, a, b)

    monkeypatch.setattr(Topology, "path", counted)
    code, out, err = cli("topology", "show", str(f), "--json")
    # a summary: the routes inside one node (8 x 7) and between two nodes (8 x 8), not 4,096 x 4,095
    assert len(routes) <= 8 * 7 + 8 * 8, "a summary, not an n x n matrix"
    assert code == 0, err
    data = json.loads(out)
    assert len(data["gpus"]) == 4096 and data["bandwidth_matrix_bytes_per_s"] is None and data["pair_classes"]


# --- Issue 27: extreme values, empty sections, unbounded work ----------------------------------------------------


def _cal(tmp_path: Path, text: str) -> str:
    f = tmp_path / "cal.yaml"
    f.write_text(text)
    return str(f)


@pytest.mark.parametrize(
    "text,needle",
    [
        ("hbm_efficiency: 1.0e-300\n", "hbm_efficiency: Input should be greater than or equal to 0.01"),
        (
            "kv_hbm_efficiency: 1e-300\n",
            "kv_hbm_efficiency",
        ),  # YAML reads 1e-300 as text; still a number, still refused
        ("flops_efficiency: 5.0e-324\n", "flops_efficiency"),  # the smallest subnormal
        ("host_stream_efficiency: 1.0e+300\n", "host_stream_efficiency"),
        ("fabrics:\n  nvlink4: {ll: 1.0e-300}\n", "fabrics.nvlink4.ll"),
        ("fabrics:\n  pcie: {ll128: 1.0e-300}\n", "fabrics.pcie.ll128"),
        # the 0-or-efficiency knobs of the corpus fit (issue 23): 0 means the general knob, 1e-300 is refused (fuzz)
        ("mla_flops_efficiency: 1.0e-300\n", "mla_flops_efficiency: 1e-300 is neither 0"),
        ("moe_hbm_efficiency: 5.0e-324\n", "moe_hbm_efficiency"),
        ("fabrics:\n  xgmi: {direct: 1.0e-300}\n", "fabrics.xgmi.direct"),
        ("nvls_efficiency: true\n", "nvls_efficiency: expected a number, got the boolean true"),
        ("max_num_batched_tokens: false\n", "max_num_batched_tokens: expected a number"),
        ("fabrics:\n  nvlink9: {ll: 0.5}\n", "fabrics.nvlink9: not a fabric; the fabrics are nvlink4"),
        ("one_shot_max_bytes: " + "9" * 5000 + "\n", "cal.yaml: a number with thousands of digits"),
    ],
)
def test_calibration_physical_ranges_and_strict_types(cli, tmp_path, text, needle):
    cal = _cal(tmp_path, text)
    for cmd in (["estimate", "--tp", "2"], ["solve", "--time-limit", "2"]):
        _expect(cli, [cmd[0], "--model", "llama-8b", "--topology", "8xh100", *cmd[1:], "--calibration", cal], needle)


@pytest.mark.parametrize(
    "what_if,needle",
    [
        ("hbm=1e-300x", "the factor must be at least 1/64"),
        ("flops=5e-324x", "the factor must be at least 1/64"),
        ("nvlink=1e-300x", "at least 1/64"),
        ("host=65x", "at most 64x"),
        ("hbm=2x,hbm=60x", "hbm is given twice"),
    ],
)
def test_what_if_factors_have_a_physical_range(cli, what_if, needle):
    _expect(cli, ["solve", "--model", "llama-8b", "--topology", "8xh100", "--what-if", what_if], needle)


def test_solver_coefficients_out_of_int64_are_one_line(cli, tmp_path):
    """Every input within its range, together past what CP-SAT's integers hold: one line, never a crash."""
    cal = _cal(tmp_path, "hbm_efficiency: 0.01\nkv_hbm_efficiency: 0.01\nflops_efficiency: 0.01\n")
    _expect(
        cli,
        [
            "solve",
            "--model",
            "llama-70b",
            "--topology",
            "2x8xh100-ib",
            "--calibration",
            cal,
            "--what-if",
            "hbm=0.015625x,flops=0.015625x",
            "--isl",
            "100000",
            "--osl",
            "20000",
            "--time-limit",
            "2",
        ],
        "beyond what the solver can represent",
    )
    from planner.errors import InputError
    from planner.solve.coefficients import ns

    for bad in (float("inf"), float("nan"), 1e300):
        with pytest.raises(InputError):
            ns(bad)


@pytest.mark.parametrize("text", ["fabrics: {}\n", "fabrics:\n"])
def test_empty_fabrics_mean_the_defaults(cli, tmp_path, text):
    base = ["estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "2", "--json"]
    code, out, err = cli(*base, "--calibration", _cal(tmp_path, text))
    assert code == 0, err
    assert json.loads(out) == json.loads(cli(*base)[1])
    code, _, err = cli(
        "solve",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--time-limit",
        "2",
        "--calibration",
        _cal(tmp_path, text),
    )
    assert code == 0 and "Traceback" not in err


def test_a_partial_fabrics_table_overrides_only_what_it_names(cli, tmp_path):
    from planner.cost.constants import DEFAULT, load_constants

    c = load_constants(_cal(tmp_path, "fabrics:\n  nvlink4: {ll: 0.4}\n"))
    assert c.fabrics["nvlink4"].ll == 0.4 and c.fabrics["nvlink4"].simple == DEFAULT.fabrics["nvlink4"].simple
    assert {k: v for k, v in c.fabrics.items() if k != "nvlink4"} == {
        k: v for k, v in DEFAULT.fabrics.items() if k != "nvlink4"
    }
    # restating NVLink's fabric as it is leaves a PCIe machine's estimate as it was
    same = _cal(tmp_path, "fabrics:\n  nvlink4: " + json.dumps(DEFAULT.fabrics["nvlink4"].model_dump()) + "\n")
    base = ["estimate", "--model", "llama-8b", "--topology", "8xh100-pcie", "--tp", "2", "--json"]
    assert json.loads(cli(*base, "--calibration", same)[1]) == json.loads(cli(*base)[1])


def test_huge_integers_in_a_model_config(cli, tmp_path):
    cfg = json.loads((REPO / "models" / "Llama-3.1-8B.json").read_text())
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg).replace('"num_hidden_layers": 32', '"num_hidden_layers": ' + "9" * 5000))
    _expect(cli, ["models", "show", str(f)], "config.json: a number with thousands of digits")


def test_model_name_longer_than_a_file_name(cli):
    _expect(cli, ["estimate", "--model", "a" * 300, "--topology", "8xh100", "--tp", "2"], "not a usable path")
    _expect(cli, ["models", "show", "a" * 300 + "/" + "b" * 300], "not a usable path")


@pytest.mark.parametrize(
    "args",
    [
        ["frontier", "--model", "llama-8b", "--topology", "4xl40s", "--time-limit", "2", "--plot", "/sys/x.svg"],
        ["remedies", "--model", "llama-8b", "--topology", "4xl40s", "-c", "1", "--plot", "/sys/x.png"],
        ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "4xl40s", "--plot", "/sys/x.pdf"],
        ["solve", "--model", "llama-8b", "--topology", "8xh100", "--time-limit", "2", "-o", "/sys/x.json"],
        ["solve", "--model", "llama-8b", "--topology", "8xh100", "--time-limit", "2", "--emit", "vllm", "-o", "/sys/e"],
        [
            "topology",
            "detect",
            "--from",
            str(REPO / "tests" / "fixtures" / "topo" / "4xl40s.txt"),
            "--gpus-csv",
            str(REPO / "tests" / "fixtures" / "topo" / "4xl40s-gpus.csv"),
            "-o",
            "/sys/t.yaml",
        ],
    ],
)
def test_unwritable_outputs_are_one_line(cli, args):
    _expect(cli, args, "/sys/")


def test_streamed_layers_past_the_host_tier_say_so(cli, tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text((REPO / "topologies" / "4xl40s.yaml").read_text().replace("capacity: 1TB", "capacity: 10MB"))
    _expect(
        cli,
        ["estimate", "--model", "llama-8b", "--topology", str(f), "--tp", "1", "--offload-layers", "0,1"],
        "the streamed layers do not fit in host memory",
        code=2,
    )


def test_int_lists_refuse_empty_entries(cli):
    _expect(
        cli, ["remedies", "--model", "llama-8b", "--topology", "4xl40s", "-c", "1,,32"], "an empty entry in '1,,32'"
    )
    _expect(
        cli,
        ["estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "2", "--gpu-ids", "0,,1"],
        "an empty entry",
    )


def test_json_output_has_no_nan(capsys):
    from planner.cli.common import print_json

    print_json({"a": float("nan"), "b": [float("inf"), 1.5], "c": {"d": -float("inf")}})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [None, 1.5], "c": {"d": None}}


# --- Issue 27: what other programs and files report is input too ----------------------------------------------

TOPO = REPO / "tests" / "fixtures" / "topo"


def _detect(tmp_path: Path, matrix: str, csv: str | None = None, p2p: str | None = None) -> list[str]:
    (tmp_path / "m.txt").write_text(matrix)
    args = ["topology", "detect", "--from", str(tmp_path / "m.txt")]
    if csv is not None:
        (tmp_path / "g.csv").write_text(csv)
        args += ["--gpus-csv", str(tmp_path / "g.csv")]
    else:
        args += ["--gpu-type", "h100"]
    if p2p is not None:
        (tmp_path / "p.txt").write_text(p2p)
        args += ["--p2p", str(tmp_path / "p.txt")]
    return args


def test_detect_reads_both_triangles_of_the_matrix(cli, tmp_path):
    lines = (TOPO / "dgx-h100.txt").read_text().splitlines()
    row = next(i for i, ln in enumerate(lines) if ln.startswith("GPU1\t"))
    cells = lines[row].split("\t")
    cells[1] = "NV999"  # GPU1 -> GPU0; GPU0 -> GPU1 still says NV18
    lines[row] = "\t".join(cells)
    _expect(
        cli,
        _detect(tmp_path, "\n".join(lines) + "\n"),
        "GPU0 -> GPU1 says NV18 but GPU1 -> GPU0 says NV999; the matrix is symmetric",
    )


def test_detect_accepts_spaces_as_well_as_tabs(cli, tmp_path):
    text = (TOPO / "dgx-h100.txt").read_text()
    code, with_tabs, err = cli(*_detect(tmp_path, text))
    assert code == 0, err
    code, with_spaces, err = cli(*_detect(tmp_path, text.replace("\t", "    ")))
    assert code == 0, err
    assert with_spaces == with_tabs


def test_detect_refuses_a_repeated_csv_index(cli, tmp_path):
    csv = (TOPO / "4xl40s-gpus.csv").read_text().replace("1, NVIDIA L40S", "0, NVIDIA L40S")
    _expect(cli, _detect(tmp_path, (TOPO / "4xl40s.txt").read_text(), csv=csv), "line 3: GPU index 0 appears twice")


@pytest.mark.parametrize(
    "old,new,needle",
    [
        ("GPU2\tGPU3", "GPU2 GPU3x", "the header row should be GPU0 GPU1 ... in order"),
        ("\tGPU0\tGPU1", "\tGPU1\tGPU0", "the header row should be GPU0 GPU1 ... in order"),
        (" GPU3\tCNS\tCNS\tOK\tX\t", " GPU3\tCNS\tCNS\tOK\tX\tOK\t", "row GPU3: expected 4 entries"),
        (
            " GPU3\tCNS\tCNS\tOK\tX\t",
            " GPU2\tCNS\tCNS\tOK\tX\t",
            "row GPU2 is not a column of the header, or appears twice",
        ),
    ],
)
def test_detect_refuses_a_damaged_p2p_matrix(cli, tmp_path, old, new, needle):
    p2p = (TOPO / "4xl40s-p2p.txt").read_text()
    assert old in p2p
    _expect(
        cli,
        _detect(
            tmp_path,
            (TOPO / "4xl40s.txt").read_text(),
            csv=(TOPO / "4xl40s-gpus.csv").read_text(),
            p2p=p2p.replace(old, new, 1),
        ),
        needle,
    )


def test_no_p2p_pairs_two_gpus(cli, tmp_path):
    doc = yaml.safe_load((REPO / "topologies" / "4xl40s.yaml").read_text())
    doc["nodes"][0]["no_p2p"] = [[1, 1]]
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(doc))
    _expect(cli, ["topology", "show", str(f)], "no_p2p[0] pairs GPU 1 with itself")


@pytest.mark.parametrize("port", ["-1", "0", "65536"])
def test_launch_port_range(cli, tmp_path, port):
    plan = _plan(tmp_path, cli)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    _expect(cli, ["launch", str(f), "--engine", "vllm", "--port", port], f"--port: {port} is outside 1..65535")


def test_every_replica_port_is_in_range():
    from planner.errors import InputError
    from planner.launch import check_port

    check_port(65534, 2)
    with pytest.raises(InputError, match="take ports 65535..65536, past 65535"):
        check_port(65535, 2)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("fits", False, "prediction.fits is false"),
        ("tpot_ms", float("nan"), "prediction.tpot_ms is nan"),
        ("concurrency", -3, "prediction.concurrency -3 is below 1"),
        ("tokens_per_s", -1.0, "prediction.tokens_per_s is -1.0"),
    ],
)
def test_launch_reads_the_prediction_block_like_input(cli, tmp_path, field, value, needle):
    plan = _plan(tmp_path, cli)
    plan["prediction"][field] = value
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    _expect(cli, ["launch", str(f), "--engine", "vllm"], needle)


@pytest.mark.parametrize(
    "model,field,value,needle",
    [
        ("DeepSeek-V3", "moe_intermediate_size", 0, "field 'moe_intermediate_size' must be a whole number from 1"),
        ("DeepSeek-V3", "v_head_dim", 0, "field 'v_head_dim' must be a whole number from 1"),
        ("DeepSeek-V3", "qk_rope_head_dim", True, "field 'qk_rope_head_dim'"),
        ("DeepSeek-V3", "first_k_dense_replace", 100, "first_k_dense_replace (100) exceeds the 61 layers"),
        ("Qwen3-30B-A3B", "mlp_only_layers", [0, 48], "mlp_only_layers names layer 48, outside 0..47"),
        ("Qwen3-30B-A3B", "moe_intermediate_size", 10**4000, "field 'moe_intermediate_size'"),
        (
            "Llama-3.1-8B",
            "rope_theta",
            10**4000,
            "field 'rope_theta' must be a finite number above 0 (at least 1) and below 1e+15",
        ),
    ],
)
def test_moe_and_mla_config_fields_are_range_checked(cli, tmp_path, model, field, value, needle):
    cfg = json.loads((REPO / "models" / f"{model}.json").read_text())
    cfg[field] = value
    f = tmp_path / "config.json"
    f.write_text(json.dumps(cfg))
    err = _expect(cli, ["models", "show", str(f)], needle)
    assert len(err) < 400


def test_validate_tokens_are_bounded(cli, tmp_path):
    plan = _plan(tmp_path, cli)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    _expect(cli, ["validate", str(f), "--tokens", "100000"], "--tokens: Input should be less than or equal to 256")


def test_validate_refuses_a_run_past_the_machines_memory(cli, tmp_path):
    from planner.errors import InputError
    from planner.model.catalog import load_profile
    from planner.plan_io import load_plan
    from planner.validate.runner import check_memory, make_job

    plan = _plan(tmp_path, cli)
    f = tmp_path / "plan.json"
    f.write_text(json.dumps(plan))
    job, mini = make_job(load_plan(f).plan, "mini", "gloo", 4, 60)
    check_memory(job, mini, "mini", available=10**9)  # a mini run is megabytes
    with pytest.raises(InputError, match=r"needs about 32.1 GB of memory .* 1.0 GB available; use --scale mini"):
        check_memory(job, load_profile("llama-8b"), "full", available=10**9)  # 16 GB of bf16 weights, twice


def test_plot_paths_are_checked_before_the_run():
    """--plot is refused before a long solve, not after it (planner.files.check_writable probes the folder)."""
    from planner.errors import InputError
    from planner.report.plots import check_plot_path

    for bad, needle in (
        ("/sys/x.svg", "cannot write the --plot picture"),
        ("/nonexistent/x.png", "does not exist"),
        ("/etc", "write a .png"),
    ):
        with pytest.raises(InputError, match=needle):
            check_plot_path(bad)


def test_an_error_about_a_long_list_stays_short(cli, tmp_path):
    """A repeated name in a 100,000-long list is named with its count, not by printing the list (the value-extreme
    fuzz's '100,000-long nics' case printed an 800 KB error line); any other long message is cut at 2,000
    characters (planner.cli.common.bounded)."""
    doc = yaml.safe_load((REPO / "topologies" / "8xh100.yaml").read_text())
    nics = doc["nodes"][0]["nics"]
    nics.extend([nics[0]] * 100_000)
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(doc))
    err = _expect(cli, ["topology", "show", str(f)], f"NIC names repeat: {nics[0]['name']} (x100,001)")
    assert len(err) < 300
    assert bounded("x" * 10) == "x" * 10
    cut = bounded("x" * (MAX_ERROR_CHARS + 5))
    assert cut.startswith("x" * MAX_ERROR_CHARS) and cut.endswith("(5 more characters)")
