"""A disaggregated plan served end to end on CPUs: a 1P1D pair of tiny-model vLLM servers (the CPU build in
./.venv-vllm) started from the scripts `planner launch` emits, with the KV moved by vLLM's ExampleConnector
(`--transfer-backend shared-storage`: files under PLANNER_KV_PATH), and the emitted proxy in front of them.

The CPU build registers NixlConnector but cannot run it (the nixl package ships for CUDA only); ExampleConnector
is pure torch and safetensors. A completion through the proxy is checked three ways: it is answered in full, the
prefill leg wrote the prompt's KV (one file per attention layer) and the decode instance loaded it instead of
computing it ("External Cache Hit!" in its log, not in the prefill's), and its tokens equal the prefill
instance's own greedy answer to the same prompt once the files are gone (the two servers hold the same dummy
weights: vLLM seeds them). Every process started
is stopped by its session's PID, also when the test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import alive, run_planner
from .test_vllm_cpu import TINY, Server, launch_cpu, tiny_model, vllm_env  # noqa: F401  (fixtures)

PROMPT = list(range(3, 303))  # 300 token ids: more than one KV block, so the connector stores and finds it
OUTPUT = 6


def _free_ports(n: int) -> int:
    """The first of n consecutive free TCP ports on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.fail(f"no {n} consecutive free ports")


def _launch(tmp_path: Path, tiny: Path, port: int) -> Path:
    plan = tmp_path / "plan.json"
    r = run_planner(
        "estimate-disagg",
        "--model",
        str(tiny / "config.json"),
        "--topology",
        "8xh100",
        "--prefill-instances",
        "1",
        "--decode-instances",
        "1",
        "--isl",
        str(len(PROMPT)),
        "--osl",
        str(OUTPUT),
        "--transfer-backend",
        "shared-storage",
        "-o",
        str(plan),
    )
    assert r.returncode == 0, r.stderr
    return launch_cpu(plan, port, tmp_path / "launch", "--no-enable-prefix-caching")


def _complete(url: str, model: str) -> list[int]:
    resp = httpx.post(
        f"{url}/v1/completions",
        timeout=300,
        json={
            "model": model,
            "prompt": PROMPT,
            "max_tokens": OUTPUT,
            "min_tokens": OUTPUT,
            "ignore_eos": True,
            "temperature": 0,
            "return_token_ids": True,
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (len(PROMPT), OUTPUT)
    return body["choices"][0]["token_ids"]


def test_1p1d_pair_serves_a_completion_through_the_emitted_scripts(tmp_path, vllm_env, tiny_model):  # noqa: F811
    port = _free_ports(3)  # prefill, decode, proxy
    out = _launch(tmp_path, tiny_model, port)
    kv = tmp_path / "kv"
    env = {**vllm_env, "PLANNER_KV_PATH": str(kv)}
    cores = os.cpu_count() or 1
    servers = [
        Server(out / "vllm-prefill0-dgx.sh", {**env, "VLLM_CPU_OMP_THREADS_BIND": "0"}, log="vllm-prefill0.log"),
        Server(
            out / "vllm-decode0-dgx.sh",
            {**env, "VLLM_CPU_OMP_THREADS_BIND": "1" if cores > 1 else "0"},
            log="vllm-decode0.log",
        ),
    ]
    proxy = None
    prefill, decode, front = (f"http://127.0.0.1:{port + k}" for k in range(3))
    try:
        for server, url in zip(servers, (prefill, decode)):
            server.wait_ready(url)
        proxy = Server(out / "vllm-proxy.sh", {**env, "PYTHON": sys.executable}, log="vllm-proxy.log")
        model = str(json.loads(httpx.get(f"{decode}/v1/models", timeout=10).text)["data"][0]["id"])
        assert not kv.exists()
        through = _wait_answer(front, model)  # prefill leg, then decode leg
        stored = sorted(p.name for p in kv.glob("*/*.safetensors"))
        assert len(stored) == TINY["num_hidden_layers"], stored  # the prefill leg wrote one file per layer
        assert "External Cache Hit" not in servers[0].log.read_text(errors="replace")  # it computed the prompt
        assert "External Cache Hit" in servers[1].log.read_text(errors="replace")  # the decode loaded it
        shutil.rmtree(kv)
        own = _complete(prefill, model)  # no files now: the prefill instance computes and answers alone
        assert through == own
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()
    started = set().union(*(s.started | {s.proc.pid} for s in servers))
    if proxy is not None:
        started |= proxy.started | {proxy.proc.pid}
    assert not alive(started), alive(started)


def _wait_answer(front: str, model: str) -> list[int]:
    """The proxy's answer, once it listens (it starts in well under a second)."""
    for _ in range(60):
        try:
            return _complete(front, model)
        except httpx.ConnectError:
            time.sleep(0.5)
    pytest.fail("the proxy did not answer")
