"""Time `planner solve` (whole process, warm trace cache) and the solver alone at several scales.

Usage: python benchmarks/solve_scale.py [--gpus 8,16,64] [--models llama-70b,llama-405b] [--time-limit S]
Machines: N/8 DGX H100 nodes on NDR InfiniBand (homogeneous) and, for "mixed", half of the nodes
DGX A100. Writes a markdown table to stdout (paste into benchmarks/RESULTS.md).
Targets (issue 5): 8 GPUs < 1 s whole process; 64 GPUs optimal < 10 s; 512 GPUs < 60 s, gap < 1%.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def machine(n_gpus: int, mixed: bool) -> dict:
    h100 = yaml.safe_load((ROOT / "topologies" / "8xh100.yaml").read_text())["nodes"][0]
    a100 = yaml.safe_load((ROOT / "topologies" / "8xa100.yaml").read_text())["nodes"][0]
    nodes = n_gpus // 8
    if not mixed:
        node = dict(h100, name="h", count=nodes)
        doc = {"name": f"{nodes}x8xh100", "nodes": [node]}
    else:
        doc = {"name": f"{nodes}x8-mixed", "nodes": [dict(h100, name="h", count=max(1, nodes // 2)),
                                                     dict(a100, name="a", count=max(1, nodes - nodes // 2))]}
    if nodes > 1 or mixed:
        doc["network"] = {"bandwidth": "400Gb/s", "latency": "3us"}
    return doc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default="8,16,64")
    ap.add_argument("--models", default="llama-70b,llama-405b")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median run is reported, with the range")
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "planner"
    rows = []
    for model in args.models.split(","):
        subprocess.run([str(exe), "models", "show", model, "--json"], check=True, stdout=subprocess.DEVNULL)  # warm
        for n in [int(x) for x in args.gpus.split(",")]:
            for mixed in (False, True):
                if mixed and n < 16:
                    continue
                with tempfile.TemporaryDirectory() as d:
                    topo = Path(d) / "m.yaml"
                    topo.write_text(yaml.safe_dump(machine(n, mixed)))
                    wd = "fp8" if model == "llama-405b" and n == 8 else "bf16"
                    cmd = [str(exe), "solve", "--model", model, "--topology", str(topo), "--weight-dtype", wd,
                           "--time-limit", str(args.time_limit), "--json"]
                    runs = []
                    for _ in range(args.repeat):
                        start = time.perf_counter()
                        r = subprocess.run(cmd, capture_output=True, text=True)
                        runs.append((time.perf_counter() - start, r))
                    runs.sort(key=lambda x: x[0])
                    wall, r = runs[len(runs) // 2]  # the median run, its wall time and its plan
                    spread = f"{wall:.2f} ({runs[0][0]:.2f}-{runs[-1][0]:.2f})" if len(runs) > 1 else f"{wall:.2f}"
                    if r.returncode != 0:
                        rows.append((model, n, "mixed" if mixed else "homogeneous", wd, spread, "-", r.stderr.strip().splitlines()[0][:60], "-", "-"))
                        continue
                    plan = json.loads(r.stdout)
                    s = plan["solver"]
                    shape = f"TP{'/'.join(sorted({str(st['tp']) for st in plan['stages']}))}xPP{len(plan['stages'])}xR{plan['replicas']}"
                    rows.append((model, n, "mixed" if mixed else "homogeneous", wd, spread, f"{s['wall_time_s']:.2f}",
                                 s["status"], f"{(s['gap'] or 0):.2%}", shape))
    print("| model | GPUs | machine | weights | whole process s, median (min-max) | solver s | status | gap | plan |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
