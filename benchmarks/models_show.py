"""Time `planner models show MODEL --json` cold (empty trace cache) and warm, as a user runs it.

Usage: python benchmarks/models_show.py [MODEL] [--repeat N]
Prints a markdown table; targets (issue 2): cold < 5 s, warm < 1 s for llama-405b on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(model: str, cache: str) -> float:
    exe = Path(sys.executable).parent / "planner"
    env = dict(os.environ, PLANNER_CACHE_DIR=cache)
    start = time.perf_counter()
    subprocess.run([str(exe), "models", "show", model, "--json"], check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", nargs="?", default="llama-405b")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeat):
        cache = tempfile.mkdtemp(prefix="planner-bench-")
        cold.append(run_once(args.model, cache))
        warm.append(run_once(args.model, cache))
        shutil.rmtree(cache)
    print("| model | cold median s | cold min-max s | warm median s | warm min-max s | runs |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {statistics.median(cold):.2f} | {min(cold):.2f}-{max(cold):.2f} "
        f"| {statistics.median(warm):.2f} | {min(warm):.2f}-{max(warm):.2f} | {args.repeat} |"
    )


if __name__ == "__main__":
    main()
