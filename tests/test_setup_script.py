"""Issue 26 item 9: ./setup.sh says what it is doing, a line per step, and lets pip show its progress.

setup.sh runs here against a stub `.venv/bin/python` that records its arguments (and reports torch missing,
so that every step runs): no network, no install, and the test asserts the order and the flags of what ran."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STUB = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../../calls.log"
if [ "$1" = "-c" ]; then exit 1; fi
exit 0
"""


def test_setup_prints_a_line_per_step_and_pip_progress(tmp_path):
    shutil.copy(REPO / "setup.sh", tmp_path / "setup.sh")
    stub = tmp_path / ".venv" / "bin" / "python"
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB)
    stub.chmod(0o755)
    proc = subprocess.Popen(
        ["bash", str(tmp_path / "setup.sh")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out
    steps = [line.split(" (at ")[0] for line in out.splitlines() if line.startswith("setup [")]
    assert steps == [
        "setup [1/4] virtual environment .venv",
        "setup [2/4] torch (CPU wheel)",
        "setup [3/4] planner and its test extra (pip install -e .[test])",
        "setup [4/4] byte-compiling planner",
    ]
    assert out.splitlines()[-1].startswith("setup done in ")
    pip = [line for line in (tmp_path / "calls.log").read_text().splitlines() if line.startswith("-m pip install")]
    assert pip == ["-m pip install --progress-bar on torch==2.13.0", "-m pip install --progress-bar on -e .[test]"]
    assert not any(" -q" in line for line in pip)  # pip's own progress is shown, not silenced
