"""Output that fits a terminal: nothing a user needs is cut at 80 columns or in a pipe, and a long solve
shows live progress on a terminal but stays silent when piped."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path

from .conftest import run_planner

PLANNER = str(Path(sys.executable).parent / "planner")
#: A solve that runs past the progress bar's 1 s delay (planner.cli.progress.DELAY_S) on the full shape loop
#: (--max-replicas keeps it off the per-node-type fleet path, planner.solve.search._fleet, which takes under 1 s).
LONG_SOLVE = [
    "solve",
    "--model",
    "llama-70b",
    "--topology",
    "h100-a100-ib",
    "--objective",
    "throughput",
    "--max-replicas",
    "16",
]


def test_solve_piped_at_80_columns_shows_every_gpu_id_and_layer_range():
    r = run_planner("solve", "--model", "llama-70b", "--topology", "8xh100", env={"COLUMNS": "80"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in r.stdout  # rich's truncation mark: nothing is cut
    stage = next(line for line in lines if line.startswith("│ 0 TP8"))
    assert "0-7" in stage and "0-79" in stage  # every GPU id (a range) and the whole layer range
    assert "+emb" in r.stdout and "+head" in r.stdout


def test_runners_up_list_engine_runnable_shapes_first():
    r = run_planner("solve", "--model", "llama-70b", "--topology", "8xh100", "--top", "3", "--json")
    import json

    alts = json.loads(r.stdout)["alternatives"]
    runnable = [bool(a["engines"]) for a in alts]
    assert runnable == sorted(runnable, reverse=True)  # no shape an engine cannot run before one it can


def _run_under_pty(args: list[str], timeout_s: float = 120) -> tuple[int, bytes]:
    """Run the console script with stderr on a pseudo-terminal (stdout to a pipe); return (exit, terminal bytes)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([PLANNER, *args], stdout=subprocess.DEVNULL, stderr=slave, stdin=slave, close_fds=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    return proc.returncode, out


def test_long_solve_shows_progress_on_a_terminal():
    # a throughput solve of 70B over two unlike 8-GPU nodes (H100 + A100) takes several seconds (about 10 s: 98
    # shapes through the full shape loop), past the 1 s delay. Not 2x8xh100-ib: identical nodes take the cluster
    # path (planner.solve.cluster), which settles them in under a second, before the bar would appear.
    code, out = _run_under_pty(LONG_SOLVE)
    assert code == 0
    text = out.decode(errors="replace")
    assert "solving" in text and "shapes" in text and "best TP" in text


def test_progress_stays_silent_when_piped_or_json():
    # the long solve of the test above: past the delay, so silence here is the pipe's and --json's doing
    r = run_planner(*LONG_SOLVE)
    assert r.returncode == 0 and "solving" not in r.stderr
    code, out = _run_under_pty([*LONG_SOLVE, "--json"])
    assert code == 0 and b"solving" not in out
