"""Solve Llama-3.1-70B on a DGX H100 and write the vLLM launch script for the plan.

Run: python examples/solve_and_launch.py [OUT_DIR]
Writes OUT_DIR/plan.json and OUT_DIR/vllm-<node>.sh (default: ./launch).
"""

from __future__ import annotations

import sys
from pathlib import Path

from planner.hardware import load_topology
from planner.launch import render, write_bundle
from planner.model.catalog import load_profile
from planner.plan import Workload
from planner.solve import solve


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("launch")
    out.mkdir(parents=True, exist_ok=True)
    plan = solve(load_profile("llama-70b"), load_topology("8xh100"), Workload(concurrency=8, isl=2048, osl=512))
    (out / "plan.json").write_text(plan.model_dump_json(indent=2))
    print(f"plan: {plan.partition.shape}, TPOT {plan.prediction.tpot_ms:.2f} ms, {plan.solver.status}")
    bundle = render(plan, "vllm", plan_path=str(out / "plan.json"))
    for path in write_bundle(bundle, str(out)):
        print("wrote", path)


if __name__ == "__main__":
    main()
