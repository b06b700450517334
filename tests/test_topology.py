"""Topology schema, shipped machines, link graph, collective timing and detect."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.errors import ConfigError, PlannerError
from planner.hardware import load_topology, nvlink_links, parse_topology, pcie_relation, shipped_topologies

from .conftest import run_planner

KiB, MiB, GiB = 2**10, 2**20, 2**30
FIXTURES = Path(__file__).parent / "fixtures" / "topo"

EXPECTED = {
    "1xa10",
    "1xh100",
    "2x8xh100-ib",
    "2x8xh20-roce",
    "2x8xh800-roce",
    "4x8xh100-ib",
    "4xl40s",
    "8xa100",
    "8xh800",
    "8xa100-pcie",
    "8xh100",
    "8xh100-pcie",
    "8xh100-pcie-nvlink-pairs",
    "8xh200",
    "8xl40s",
    "8xmi300x",
    "8xrtx4090",
    "h100-a100-ib",
    "8xb200",
    "8xh20",
    "8xmi325x",
    "8xmi355x",
}


def test_every_shipped_topology_loads_and_shows(cli):
    assert set(shipped_topologies()) == EXPECTED
    for name in sorted(EXPECTED):
        topo = load_topology(name)
        assert topo.n_gpus >= 1
        code, out, _ = cli("topology", "show", name, "--json")
        assert code == 0
        data = json.loads(out)
        assert len(data["gpus"]) == topo.n_gpus and len(data["bandwidth_matrix_bytes_per_s"]) == topo.n_gpus
    code, out, _ = cli("topology", "show", "8xh100.yaml")
    assert code == 0 and "GPU-to-GPU bandwidth" in out


def test_topology_resolves_by_path_and_name(tmp_path):
    src = (Path(__file__).parent.parent / "topologies" / "4xl40s.yaml").read_text()
    f = tmp_path / "mine.yaml"
    f.write_text(src)
    assert load_topology(str(f)).n_gpus == load_topology("4xl40s").n_gpus == load_topology("4xl40s.yaml").n_gpus == 4


def test_paths_follow_the_real_links():
    h100 = load_topology("8xh100")
    assert h100.path(0, 7).bandwidth_bytes_per_s == 450e9  # NVSwitch, docs/reference/hardware.csv NVLink4
    pcie = load_topology("8xh100-pcie")
    assert pcie.path(0, 1).bandwidth_bytes_per_s == 63e9 and pcie.link_class(0, 1) == "pcie"
    assert pcie.link_class(0, 7) == "socket"  # across sockets
    pairs = load_topology("8xh100-pcie-nvlink-pairs")
    assert pairs.path(0, 1).bandwidth_bytes_per_s == 300e9  # 12 links x 25 GB/s
    assert pairs.path(1, 2).bandwidth_bytes_per_s == 63e9
    ib = load_topology("2x8xh100-ib")
    assert ib.path(0, 8).bandwidth_bytes_per_s == 50e9 and ib.link_class(0, 8) == "network"  # NDR 400 Gb/s
    mixed = load_topology("h100-a100-ib")
    assert mixed.path(0, 8).bandwidth_bytes_per_s == 25e9  # the A100 node's HDR NIC is the bottleneck
    assert mixed.gpus[8].spec.name == "A100-SXM4-80GB"
    rtx = load_topology("8xrtx4090")
    assert any("cpu" in hop[1] for hop in rtx.path(0, 1).hops)  # no P2P: through host memory


BASE = """
name: t
nodes:
  - name: n
    gpus: {type: H100-SXM5-80GB, count: 2}
    nvswitch: {bandwidth: 450GB/s, latency: 1us}
    pcie: {bandwidth: 63GB/s, latency: 1us}
"""


@pytest.mark.parametrize(
    "mutate,needle",
    [
        (lambda d: d["nodes"][0]["gpus"].update(type="B300"), "unknown GPU type 'B300'"),
        (
            lambda d: d["nodes"][0].update(
                nvlink=[{"gpus": [0, 5], "links": 4, "link_bandwidth": "25GB/s", "latency": "1us"}]
            ),
            "nodes[0]: nvlink[0].gpus names GPU 5",
        ),
        (lambda d: d["nodes"][0]["nvswitch"].update(bandwidth="-450GB/s"), "nodes[0].nvswitch.bandwidth"),
        (
            lambda d: d["nodes"][0]["nvswitch"].update(bandwidth=450),
            "nodes[0].nvswitch.bandwidth: bandwidth 450 needs a unit",
        ),
        (lambda d: d["nodes"][0]["nvswitch"].pop("latency"), "nodes[0].nvswitch.latency: Field required"),
        (lambda d: d.pop("name"), "name: Field required"),
    ],
)
def test_bad_topology_names_file_field_and_problem(tmp_path, mutate, needle):
    doc = yaml.safe_load(BASE)
    mutate(doc)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        load_topology(str(f))
    assert str(f) in str(exc.value) and needle in str(exc.value)


def test_yaml_syntax_error_cli(tmp_path):
    f = tmp_path / "syntax.yaml"
    f.write_text("name: x\nnodes: [\n  - {a: 1\n")
    r = run_planner("topology", "show", str(f))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "syntax.yaml: YAML syntax error (line" in r.stderr


def _mutations(draw_data, doc):
    """Apply 1-3 random mutations (delete, replace with junk, add an unknown key) anywhere in doc."""
    junk = st.one_of(
        st.none(),
        st.integers(-10, 10**12),
        st.floats(allow_nan=True),
        st.text(max_size=12),
        st.sampled_from(["-5GB/s", "0GB/s", "1e400GB/s", "450", "2us", "80GiB", "xx", "GPU0", "NV12"]),
        st.lists(st.integers(-3, 20), max_size=4),
        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    )
    for _ in range(draw_data.draw(st.integers(1, 3))):
        node = doc
        path = []
        while isinstance(node, (dict, list)) and node and draw_data.draw(st.booleans()):
            keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
            k = draw_data.draw(st.sampled_from(keys))
            parent, node = node, node[k]
            path.append((parent, k))
        if not path:
            if isinstance(doc, dict):
                doc[draw_data.draw(st.text(max_size=6))] = draw_data.draw(junk)
            continue
        parent, k = path[-1]
        action = draw_data.draw(st.sampled_from(["delete", "replace", "replace", "unknown"]))
        if action == "delete":
            if isinstance(parent, dict):
                parent.pop(k, None)
            else:
                parent.pop(k)
        elif action == "replace":
            parent[k] = draw_data.draw(junk)
        elif isinstance(parent[k], dict):
            parent[k][draw_data.draw(st.text(min_size=1, max_size=6))] = draw_data.draw(junk)
    return doc


_SEEDS = [
    yaml.safe_load((Path(__file__).parent.parent / "topologies" / f"{n}.yaml").read_text())
    for n in ("8xh100", "8xh100-pcie-nvlink-pairs", "2x8xh100-ib", "8xmi300x", "8xrtx4090", "1xh100")
]


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_mutated_topology_escapes_as_anything_but_planner_error(data):
    doc = copy.deepcopy(data.draw(st.sampled_from(_SEEDS)))
    doc = _mutations(data, doc)
    text = yaml.safe_dump(doc) if data.draw(st.booleans()) else yaml.safe_dump(doc)[: data.draw(st.integers(0, 400))]
    try:
        topo = parse_topology(text, "mutated.yaml")
        if topo.n_gpus > 1:
            topo.path(0, topo.n_gpus - 1)
    except PlannerError as exc:
        assert "mutated.yaml" in str(exc)


# --- detect -----------------------------------------------------------------------------------


def _expected_codes(text):
    from planner.hardware.detect import parse_topo_matrix

    m = parse_topo_matrix(text)
    return m, {(int(a[3:]), int(b[3:])): m.rel[(a, b)] for a in m.gpus for b in m.gpus if a != b}


@pytest.mark.parametrize("fixture", ["dgx-h100", "dgx-a100", "pcie-h100-nvlink-pairs", "4xl40s", "workstation-2x4090"])
def test_detect_classifies_every_pair(cli, tmp_path, fixture):
    out = tmp_path / "detected.yaml"
    code, _, err = cli(
        "topology",
        "detect",
        "--from",
        str(FIXTURES / f"{fixture}.txt"),
        "--gpus-csv",
        str(FIXTURES / f"{fixture}-gpus.csv"),
        "-o",
        str(out),
    )
    assert code == 0, err
    topo = load_topology(str(out))
    _, codes = _expected_codes((FIXTURES / f"{fixture}.txt").read_text())
    assert topo.n_gpus == len({a for a, _ in codes})
    for (a, b), c in codes.items():
        if c.startswith("NV"):
            assert nvlink_links(topo, a, b) == int(c[2:]), (a, b, c)
        else:
            assert nvlink_links(topo, a, b) == 0, (a, b, c)
            expected = {"PIX": "PIX", "PXB": "PIX", "PHB": "NODE", "NODE": "NODE", "SYS": "SYS"}[c]
            assert pcie_relation(topo, a, b) == expected, (a, b, c)


def test_detect_fixture_socket_and_nics():
    from planner.hardware.detect import detect

    doc = detect((FIXTURES / "dgx-h100.txt").read_text(), gpus_csv=(FIXTURES / "dgx-h100-gpus.csv").read_text())
    topo = parse_topology(yaml.safe_dump(doc), "dgx")
    node = doc["nodes"][0]
    assert node["sockets"] == 2 and node["nvswitch"]["nvls"] is True
    assert [sw["nics"] for sw in node["pcie_switches"]] == [
        ["nic0", "nic1"],
        ["nic2", "nic3"],
        ["nic4", "nic5"],
        ["nic6", "nic7"],
    ]
    assert pcie_relation(topo, 0, 4) == "SYS" and pcie_relation(topo, 0, 1) == "PIX"


def test_detect_without_nvidia_smi_is_clear(cli, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = cli("topology", "detect")
    assert code == 1 and "nvidia-smi is not on PATH" in err


def test_detect_needs_gpu_types(cli):
    code, _, err = cli("topology", "detect", "--from", str(FIXTURES / "dgx-h100.txt"))
    assert code == 1 and "--gpus-csv" in err
    code, out, _ = cli("topology", "detect", "--from", str(FIXTURES / "dgx-h100.txt"), "--gpu-type", "h100")
    assert code == 0 and "H100-SXM5-80GB" in out


def test_units():
    from planner.units import parse_bandwidth, parse_bytes, parse_time

    assert parse_bytes("16KB") == 16000 and parse_bytes("16KiB") == 16384 and parse_bytes("80GiB") == 80 * 2**30
    assert parse_bytes(1234) == 1234
    assert parse_bandwidth("450GB/s") == 450e9 and parse_bandwidth("400Gb/s") == 50e9
    assert parse_time("2us") == 2e-6 and parse_time("1.5ms") == 1.5e-3
    for bad in ("16XB", "16K", "-5KB"):
        with pytest.raises(ValueError):
            parse_bytes(bad)
    with pytest.raises(ValueError):
        parse_bandwidth("450")
