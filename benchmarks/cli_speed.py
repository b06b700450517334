"""Time whole `planner` commands as a user runs them: compare (issue 7) and frontier (issue 13).

Usage: python benchmarks/cli_speed.py [--repeat N]
Warm trace cache (a first untimed call of each fills it). Targets on the 2-core machine: compare of two
machines at four loads with a plot under 5 s; frontier of llama-70b on 8xh100 with a plot under 10 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "planner compare llama-70b 8xh100 vs 8xh100-pcie, 4 loads, --plot": [
        "compare",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100.yaml",
        "--topology",
        "8xh100-pcie.yaml",
        "--plot",
        "{d}/compare.png",
    ],
    "planner frontier llama-70b 8xh100, --plot": [
        "frontier",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--plot",
        "{d}/frontier.png",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "planner"
    print("| command | median s | min s | max s | runs |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for name, argv in COMMANDS.items():
            cmd = [str(exe), *(a.format(d=d) for a in argv)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the cache
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            print(f"| {name} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} | {args.repeat} |")


if __name__ == "__main__":
    main()
