"""planner launch for a disaggregated plan (issue 28 item 4): one script per instance and node, the engines' own
disaggregation flags, SGLang's router and vLLM's prefill-then-decode proxy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from planner.cost.constants import DEFAULT
from planner.disagg.cost import estimate_disagg
from planner.disagg.plan import Pool, Pools
from planner.hardware import load_topology
from planner.launch import render
from planner.launch.vllm_disagg_proxy import serve
from planner.model.catalog import load_profile
from planner.plan import SolverInfo, Workload
from planner.solve.options import SolveOptions
from planner.solve.serving import _Ask, disagg_plan_of
from tests.test_launch import commands, engine_flags, flags_of


def _plan(model: str, topo_name: str, pools: Pools, **work):
    profile, topo = load_profile(model), load_topology(topo_name)
    w = Workload(**work)
    pred = estimate_disagg(profile, topo, pools, w)
    ask = _Ask(profile, topo, w, SolveOptions(), DEFAULT, tuple(range(topo.n_gpus)), topo.n_gpus)
    return disagg_plan_of(ask, pools, pred, SolverInfo(status="GIVEN"))


@pytest.fixture(scope="module")
def one_node():
    """Llama-3.1-8B 1P2D on one 8 x H100 node: prefill TP2 on GPUs 0-1, decode TP1 on 2 and on 3."""
    pools = Pools(
        prefill=Pool(role="prefill", instances=1, tp=2, gpu_ids=[[0, 1]]),
        decode=Pool(role="decode", instances=2, tp=1, gpu_ids=[[2], [3]]),
    )
    return _plan("llama-8b", "8xh100", pools, concurrency=32, isl=4096, osl=256)


@pytest.fixture(scope="module")
def two_nodes():
    """DeepSeek-V3 fp8 1P1D, each instance DP16+EP16 over two 8-GPU nodes of 4x8xh100-ib, KV by mooncake."""
    pools = Pools(
        prefill=Pool(role="prefill", instances=1, tp=1, dp=16, ep=16, gpu_ids=[list(range(16))]),
        decode=Pool(role="decode", instances=1, tp=1, dp=16, ep=16, gpu_ids=[list(range(16, 32))]),
        transfer_backend="mooncake",
    )
    return _plan("deepseek-v3", "4x8xh100-ib", pools, concurrency=256, isl=4096, osl=1024, weight_dtype="fp8")


@pytest.mark.parametrize("engine", ["sglang", "vllm"])
def test_every_emitted_flag_exists_in_the_engine(engine, one_node, two_nodes):
    known = engine_flags(engine)
    seen = files = 0
    for plan in (one_node, two_nodes):
        scripts = render(plan, engine).scripts
        files += len(scripts) - 1  # less the router or proxy
        for name, script in scripts.items():
            for argv in commands(script, engine):
                assert not [f for f in flags_of(argv) if f not in known], (name, argv)
                seen += 1
    assert files == 3 + 4  # one script per instance and node: 1P2D on one node, 1P1D over 2 + 2 nodes
    # both engines start a server on every node of an instance (vLLM's multi-node data parallelism: one
    # `vllm serve --data-parallel-size-local 8` per node, --headless past node rank 0; issue 24)
    assert seen == {"sglang": 3 + 4, "vllm": 3 + 4}[engine]


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_sglang_pools_and_router(one_node):
    scripts = render(one_node, "sglang", port=9000).scripts
    assert sorted(scripts) == [
        "sglang-decode0-dgx.sh",
        "sglang-decode1-dgx.sh",
        "sglang-prefill0-dgx.sh",
        "sglang-router.sh",
    ]
    (pre,) = commands(scripts["sglang-prefill0-dgx.sh"], "sglang")
    assert (_opt(pre, "--disaggregation-mode"), _opt(pre, "--disaggregation-transfer-backend")) == ("prefill", "nixl")
    assert (_opt(pre, "--tp-size"), _opt(pre, "--port"), _opt(pre, "--disaggregation-bootstrap-port")) == (
        "2",
        "9000",
        "8998",
    )
    assert "export CUDA_VISIBLE_DEVICES=0,1" in scripts["sglang-prefill0-dgx.sh"]
    decode_ports = []
    for j, gpu in ((0, 2), (1, 3)):
        (dec,) = commands(scripts[f"sglang-decode{j}-dgx.sh"], "sglang")
        assert _opt(dec, "--disaggregation-mode") == "decode" and "--disaggregation-bootstrap-port" not in dec
        assert f"export CUDA_VISIBLE_DEVICES={gpu}" in scripts[f"sglang-decode{j}-dgx.sh"]
        decode_ports.append(_opt(dec, "--port"))
    assert decode_ports == ["9001", "9002"]
    router = " ".join(scripts["sglang-router.sh"].replace("\\\n", " ").split())
    assert (
        "python -m sglang_router.launch_router --pd-disaggregation --prefill http://127.0.0.1:9000 8998 "
        "--decode http://127.0.0.1:9001 --decode http://127.0.0.1:9002 --host 0.0.0.0 --port 9003"
    ) in router


def test_two_node_instances_get_a_script_per_node(two_nodes):
    scripts = render(two_nodes, "sglang").scripts
    servers = sorted(n for n in scripts if n != "sglang-router.sh")
    assert len(servers) == 4 and all(re.fullmatch(r"sglang-(prefill|decode)0-.+\.sh", n) for n in servers)
    for name in servers:
        (argv,) = commands(scripts[name], "sglang")
        assert _opt(argv, "--nnodes") == "2" and _opt(argv, "--disaggregation-transfer-backend") == "mooncake"
        assert (_opt(argv, "--tp-size"), _opt(argv, "--dp-size"), _opt(argv, "--ep-size")) == ("16", "16", "16")
        assert _opt(argv, "--host") == "0.0.0.0"  # the router reaches it from another node
    router = scripts["sglang-router.sh"]
    assert re.search(r'--prefill "http://\$\{\w+_ADDR:\?[^}]*\}:30000" ', router.replace("\\\n", " "))


def test_vllm_pools_carry_the_nixl_connector_and_a_proxy(one_node, tmp_path, cli):
    bundle = render(one_node, "vllm")
    for name in ("vllm-prefill0-dgx.sh", "vllm-decode0-dgx.sh", "vllm-decode1-dgx.sh"):
        (argv,) = commands(bundle.scripts[name], "vllm")
        assert json.loads(_opt(argv, "--kv-transfer-config")) == {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
    ports = [
        re.search(r"VLLM_NIXL_SIDE_CHANNEL_PORT:-(\d+)", bundle.scripts[n]).group(1)
        for n in ("vllm-prefill0-dgx.sh", "vllm-decode0-dgx.sh", "vllm-decode1-dgx.sh")
    ]
    assert len(set(ports)) == 3  # three instances on one node: three side channels
    proxy = " ".join(bundle.scripts["vllm-proxy.sh"].replace("\\\n", " ").split())
    assert (
        '--port 8003 --prefill "http://127.0.0.1:8000" --decode "http://127.0.0.1:8001" '
        '--decode "http://127.0.0.1:8002"'
    ) in proxy
    assert "def prefill_body" in bundle.extra_files["vllm-disagg-proxy.py"]


def test_launch_refuses_what_cannot_run_a_disaggregated_plan(one_node, tmp_path, cli):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(one_node.model_dump_json())
    code, _, err = cli("launch", str(plan_file), "--engine", "trtllm")
    assert code == 2 and "a disaggregated plan launches with sglang or vllm" in err and "Traceback" not in err
    code, _, err = cli("launch", str(plan_file), "--engine", "vllm", "--device", "cpu")
    assert code == 1 and "KV connector" in err
    code, _, err = cli("launch", str(plan_file), "--engine", "vllm", "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert (tmp_path / "out" / "vllm-proxy.sh").stat().st_mode & 0o111


@pytest.fixture(scope="module")
def shared_storage():
    """Llama-3.1-8B 1P1D TP1 on GPUs 0 and 1, the KV through files (vLLM's ExampleConnector)."""
    pools = Pools(
        prefill=Pool(role="prefill", instances=1, tp=1, gpu_ids=[[0]]),
        decode=Pool(role="decode", instances=1, tp=1, gpu_ids=[[1]]),
        transfer_backend="shared-storage",
    )
    return _plan("llama-8b", "8xh100", pools, concurrency=4, isl=1024, osl=64)


def test_shared_storage_launches_vllms_example_connector_on_cpus(shared_storage, tmp_path, cli):
    """Both instances get ExampleConnector in the kv_both role with one shared path; on CPUs each runs on the CPU
    build's cores (VLLM_CPU_OMP_THREADS_BIND) with no CUDA_VISIBLE_DEVICES; the proxy is the same."""
    bundle = render(shared_storage, "vllm", device="cpu")
    for name in ("vllm-prefill0-dgx.sh", "vllm-decode0-dgx.sh"):
        text = bundle.scripts[name]
        assert '--kv-transfer-config "$PLANNER_KV_CONFIG"' in text
        setup = "\n".join(line for line in text.splitlines() if line.startswith(("export PLANNER_KV", "PLANNER_KV")))
        for path, env in (("/tmp/planner-kv", {}), ("/srv/kv files", {"PLANNER_KV_PATH": "/srv/kv files"})):
            shown = subprocess.run(
                ["bash", "-c", setup + '\nprintf %s "$PLANNER_KV_CONFIG"'],
                env={"PATH": os.environ["PATH"], **env},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert json.loads(shown.stdout) == {
                "kv_connector": "ExampleConnector",
                "kv_role": "kv_both",
                "kv_connector_extra_config": {"shared_storage_path": path},
            }
        assert "VLLM_CPU_OMP_THREADS_BIND" in text and "CUDA_VISIBLE_DEVICES" not in text
        assert "NIXL" not in text  # no side channel without NIXL
    assert "(ExampleConnector)" in bundle.scripts["vllm-proxy.sh"]
    gpu = render(shared_storage, "vllm")
    assert "CUDA_VISIBLE_DEVICES=0" in gpu.scripts["vllm-prefill0-dgx.sh"]
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(shared_storage.model_dump_json())
    code, _, err = cli("launch", str(plan_file), "--engine", "sglang")
    assert code == 2 and "no file-system backend" in err and "Traceback" not in err
    code, _, err = cli("launch", str(plan_file), "--engine", "vllm", "--device", "cpu", "-o", str(tmp_path / "o"))
    assert code == 0, err


class _Fake(BaseHTTPRequestHandler):
    """A vLLM instance stand-in: logs each request body, answers prefill legs with kv_transfer_params."""

    protocol_version = "HTTP/1.0"
    role = ""
    log: list = []

    def log_message(self, *args) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.log.append((self.role, body))
        if self.role == "prefill":
            answer = {
                "choices": [{"text": "x"}],
                "kv_transfer_params": {"remote_engine_id": "p0", "remote_block_ids": [7, 8]},
            }
        else:
            answer = {"choices": [{"text": "decoded"}], "got": body["kv_transfer_params"]}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_proxy_sends_prefill_then_decode_with_the_kv_location():
    log: list = []
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), type(f"F{role}", (_Fake,), {"role": role, "log": log}))
        for role in ("prefill", "decode")
    ]
    urls = [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    proxy = serve(0, [urls[0]], [urls[1]], host="127.0.0.1")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in [*servers, proxy]]
    for t in threads:
        t.start()
    try:
        r = httpx.post(
            f"http://127.0.0.1:{proxy.server_address[1]}/v1/completions",
            json={"model": "m", "prompt": "hi", "max_tokens": 50, "min_tokens": 50, "stream": False},
            timeout=30,
        )
        assert r.status_code == 200
        assert r.json() == {
            "choices": [{"text": "decoded"}],
            "got": {"remote_engine_id": "p0", "remote_block_ids": [7, 8]},
        }
        assert [role for role, _ in log] == ["prefill", "decode"]  # causal: the decode leg follows the prefill's
        pre, dec = log[0][1], log[1][1]
        assert pre["max_tokens"] == 1 and pre["stream"] is False and pre["kv_transfer_params"]["do_remote_decode"]
        assert "min_tokens" not in pre  # vLLM refuses min_tokens above max_tokens (found serving a real pair)
        assert dec["max_tokens"] == 50 and dec["min_tokens"] == 50 and dec["prompt"] == "hi"
        assert httpx.post(f"http://127.0.0.1:{proxy.server_address[1]}/v1/other", json={}).status_code == 404
    finally:
        for s in [*servers, proxy]:
            s.shutdown()
            s.server_close()
