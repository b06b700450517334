"""Time `planner compare --model llama-70b --topology 8xh100.yaml --topology 8xh100-pcie.yaml --plot out.png`.

Usage: python benchmarks/compare_speed.py [--repeat N]
Warm trace cache (a first untimed call fills it). Target (issue 7): under 5 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "planner"
    with tempfile.TemporaryDirectory() as d:
        cmd = [str(exe), "compare", "--model", "llama-70b", "--topology", "8xh100.yaml", "--topology",
               "8xh100-pcie.yaml", "--plot", str(Path(d) / "out.png")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm the trace cache
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    print("| command | median s | min s | max s | runs |")
    print("|---|---|---|---|---|")
    print(f"| planner compare llama-70b 8xh100 vs 8xh100-pcie, 4 loads, --plot | {statistics.median(times):.2f} | "
          f"{min(times):.2f} | {max(times):.2f} | {args.repeat} |")


if __name__ == "__main__":
    main()
