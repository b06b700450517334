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
    from planner.models import load_profile

    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_profile(name)
        return cache[name]

    return get


@pytest.fixture()
def cli():
    """Run the typer app in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from planner.cli import app

    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


def run_planner(*args: str, env: dict | None = None, timeout: float = 120):
    """Run the installed console script in a subprocess (what a user runs)."""
    import subprocess

    full_env = dict(os.environ, **(env or {}))
    exe = Path(sys.executable).parent / "planner"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=full_env, timeout=timeout)
