"""Entry point of one rank under torchrun (several nodes): `python -m planner.validate.worker PLAN.json`.

torchrun sets RANK and WORLD_SIZE; ranks are stage-major as in the plan. Rank 0 gathers every rank's
results, builds the report and prints it as JSON (or writes --report FILE). Exit code 3 if a check
fails."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from planner.plan_io import load_plan
from planner.validate.runner import build_report, make_job, run_rank


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m planner.validate.worker")
    ap.add_argument("plan")
    ap.add_argument("--backend", default="nccl", choices=["gloo", "nccl"])
    ap.add_argument("--scale", default="full", choices=["mini", "full"])
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--report", default=None, help="write the report JSON here (rank 0)")
    return ap


def main(argv: list[str] | None = None) -> int:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    args = parser().parse_args(argv)
    loaded = load_plan(args.plan)
    plan, topo = loaded.plan, loaded.topo
    job, profile = make_job(plan, args.scale, args.backend, args.tokens, args.timeout)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != job.world_size:
        print(f"error: the plan needs {job.world_size} ranks, torchrun started {world}", file=sys.stderr)
        return 1
    if args.backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    torch.set_num_threads(1)
    dist.init_process_group(args.backend, timeout=timedelta(seconds=args.timeout))
    try:
        result = run_rank(rank, job, dist)
        gathered: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(result, gathered, dst=0)
    finally:
        dist.destroy_process_group()
    if rank != 0:
        return 0
    report = build_report(args.plan, args.scale, job, profile, topo, results=gathered)
    text = report.model_dump_json(indent=2)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0 if report.passed else 3


if __name__ == "__main__":
    raise SystemExit(main())
