"""Time `planner solve` (whole process, warm trace cache) and the solver alone at several scales.

Usage: python benchmarks/solve_scale.py [--gpus 8,16,64] [--models llama-70b,llama-405b] [--time-limit S]
       [--objectives latency,throughput,frontier]
Machines: N/8 DGX H100 nodes on NDR InfiniBand (homogeneous) and, for "mixed", half of the nodes
DGX A100. Writes a markdown table to stdout (paste into benchmarks/RESULTS.md), with each run's peak
memory (the process's maximum resident set, from /usr/bin/time where it exists, else getrusage).
Targets (issue 5): 8 GPUs < 1 s whole process; 64 GPUs optimal < 10 s; 512 GPUs < 60 s, gap < 1%.
Targets (issue 24): throughput and latency at 64 to 10,240 GPUs < 10 s whole process, < 1 GB, OPTIMAL
(or a stated gap under 1% on irregular machines).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


MAX_PER_ENTRY = 2048  # the schema's most copies per node entry: bigger machines repeat the entry


def _entries(node: dict, name: str, count: int) -> list[dict]:
    out, k = [], 0
    while count > 0:
        n = min(count, MAX_PER_ENTRY)
        out.append(dict(node, name=f"{name}-part{k}" if k else name, count=n))
        count, k = count - n, k + 1
    return out


def machine(n_gpus: int, mixed: bool) -> dict:
    h100 = yaml.safe_load((ROOT / "topologies" / "4x8xh100-ib.yaml").read_text())["nodes"][0]
    a100 = yaml.safe_load((ROOT / "topologies" / "h100-a100-ib.yaml").read_text())["nodes"][1]
    nodes = n_gpus // 8
    if not mixed:
        doc = {"name": f"{nodes}x8xh100", "nodes": _entries(h100, "h", nodes)}
    else:
        doc = {
            "name": f"{nodes}x8-mixed",
            "nodes": _entries(h100, "h", max(1, nodes // 2)) + _entries(a100, "a", max(1, nodes - nodes // 2)),
        }
    if nodes > 1 or mixed:
        doc["network"] = {"bandwidth": "400Gb/s", "latency": "3us"}
    return doc


def timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess, float]:
    """Wall time, the completed run and its peak memory in MB."""
    gnu_time = shutil.which("time") if os.path.exists("/usr/bin/time") else None
    start = time.perf_counter()
    if gnu_time:
        r = subprocess.run(["/usr/bin/time", "-f", "PEAK_KB %M %U %S", *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - start
        lines = r.stderr.strip().splitlines()
        last = next((x.split() for x in reversed(lines) if x.startswith("PEAK_KB")), ["", "0", "0", "0"])
        peak = int(last[1]) / 1024
        r.cpu_s = float(last[2]) + float(last[3])  # type: ignore[attr-defined]  # user + system: what load leaves alone
        r.stderr = "\n".join(x for x in lines if not x.startswith("PEAK_KB"))
        return wall, r, peak
    r = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - start, r, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _row(
    model: str, n: int, mixed: bool, wd: str, objective: str, wall: str, peak: float, r: subprocess.CompletedProcess
) -> tuple:
    where = "mixed" if mixed else "homogeneous"
    if r.returncode != 0:
        return (
            model,
            n,
            where,
            wd,
            objective,
            wall,
            "-",
            f"{peak:.0f}",
            "-",
            (r.stderr.strip().splitlines() or ["?"])[0][:60],
            "-",
            "-",
        )
    out = json.loads(r.stdout)
    cpu = f"{getattr(r, 'cpu_s', float('nan')):.2f}"
    if objective == "frontier":
        front = [p for p in out["points"] if p["frontier"]]
        return (
            model,
            n,
            where,
            wd,
            objective,
            wall,
            cpu,
            f"{peak:.0f}",
            f"{out['wall_time_s']:.2f}",
            "-",
            "-",
            f"{len(out['points'])} points, {len(front)} on the frontier",
        )
    s = out["solver"]
    shape = f"TP{'/'.join(sorted({str(st['tp']) for st in out['stages']}))}xPP{len(out['stages'])}xR{out['replicas']}"
    gap = "-" if s["gap"] is None else f"{s['gap']:.2%}"
    what = shape + (f", {out['prediction']['tokens_per_s']:,.0f} tok/s" if objective == "throughput" else "")
    status = s["status"]
    if out.get("fleet"):  # one plan per node type, summed (planner.fleet)
        f = out["fleet"]
        what = " + ".join(p["shape"].replace(" ", "") for p in f["parts"]) + f", {f['tokens_per_s']:,.0f} tok/s"
        status, gap = f["status"], "-" if f["gap"] is None else f"{f['gap']:.2%}"
    return (model, n, where, wd, objective, wall, cpu, f"{peak:.0f}", f"{s['wall_time_s']:.2f}", status, gap, what)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", default="8,16,64")
    ap.add_argument("--models", default="llama-70b,llama-405b")
    ap.add_argument("--objectives", default="latency", help="latency, throughput, frontier (comma-separated)")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--tpot-slo", type=float, default=None, help="ms, for the throughput rows")
    ap.add_argument("--machines", default="homogeneous,mixed")
    ap.add_argument("--repeat", type=int, default=1, help="runs per row; the median run is reported, with the range")
    args = ap.parse_args()
    exe = Path(sys.executable).parent / "planner"
    rows = []
    for model in args.models.split(","):
        subprocess.run([str(exe), "models", "show", model, "--json"], check=True, stdout=subprocess.DEVNULL)  # warm
        for n in [int(x) for x in args.gpus.split(",")]:
            for mixed in (False, True):
                if (
                    mixed
                    and (n < 16 or "mixed" not in args.machines)
                    or not mixed
                    and "homogeneous" not in args.machines
                ):
                    continue
                for objective in args.objectives.split(","):
                    with tempfile.TemporaryDirectory() as d:
                        topo = Path(d) / "m.yaml"
                        topo.write_text(yaml.safe_dump(machine(n, mixed)))
                        wd = "fp8" if model == "llama-405b" and n == 8 else "bf16"
                        if objective == "frontier":
                            cmd = [str(exe), "frontier", "--model", model, "--topology", str(topo)]
                        else:
                            cmd = [
                                str(exe),
                                "solve",
                                "--model",
                                model,
                                "--topology",
                                str(topo),
                                "--objective",
                                objective,
                            ]
                            if objective == "throughput" and args.tpot_slo:
                                cmd += ["--tpot-slo", str(args.tpot_slo)]
                        cmd += ["--weight-dtype", wd, "--time-limit", str(args.time_limit), "--json"]
                        runs = sorted((timed(cmd) for _ in range(args.repeat)), key=lambda x: x[0])
                        wall, r, peak = runs[len(runs) // 2]  # the median run, its wall time, plan and memory
                        spread = f"{wall:.2f} ({runs[0][0]:.2f}-{runs[-1][0]:.2f})" if len(runs) > 1 else f"{wall:.2f}"
                        rows.append(_row(model, n, mixed, wd, objective, spread, peak, r))
    print(
        "| model | GPUs | machine | weights | objective | whole process s | CPU s | peak MB | solver s | status | gap "
        "| plan |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")


if __name__ == "__main__":
    main()
