"""Shared fixtures: a private trace cache for the whole session, and a CLI runner."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# One trace cache for the test session (subprocesses inherit it), so tests never read a user's cache.
_CACHE = tempfile.mkdtemp(prefix="planner-test-cache-")
os.environ["PLANNER_CACHE_DIR"] = _CACHE
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def profiles():
    """Traced profiles of the whole catalog, traced once per session."""
    from planner.model.catalog import load_profile

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_profile(name)
        return cache[name]

    return get


@pytest.fixture()
def cli():
    """Run the command line in-process as the console script does (parse errors exit 1); returns
    (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from planner.cli import run

    runner = CliRunner()

    def invoke(*args: str):
        with runner.isolation(env={"COLUMNS": "200"}) as (out, err, _):
            code = run(list(args))
            sys.stdout.flush()
            sys.stderr.flush()
            return code, out.getvalue().decode(), err.getvalue().decode()

    return invoke


def run_planner(*args: str, env: dict | None = None, timeout: float = 120):
    """Run the installed console script in a subprocess (what a user runs)."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    exe = Path(sys.executable).parent / "planner"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def children_of(pids: set[int]) -> set[int]:
    """Every live process whose parent is in `pids` (Linux /proc)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid in pids:
            out.add(int(entry.name))
    return out


def run_planner_tracked(*args: str, env: dict | None = None, timeout: float = 240):
    """Run the console script and record the PIDs of every process it starts (polled through /proc while it
    runs). Returns (CompletedProcess, started PIDs); the caller checks that none outlives the command."""
    import subprocess
    import time

    full_env = dict(os.environ, **(env or {}))
    exe = Path(sys.executable).parent / "planner"
    proc = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        seen |= children_of({proc.pid} | seen)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), seen


def alive(pids: set[int]) -> list[int]:
    """The PIDs of `pids` still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on: the system's pick, released at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def plan_file(tmp_path, cli):
    """A small plan for bench's tests (Llama-3.1-8B on one H100, 64/16 tokens), written to a file."""
    path = tmp_path / "plan.json"
    code, _, err = cli(
        "solve", "--model", "llama-8b", "--topology", "1xh100", "--isl", "64", "--osl", "16", "-o", str(path)
    )
    assert code == 0, err
    return path
