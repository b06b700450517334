"""How much does NVLink buy for Llama-3.1-70B? Solve both machines at four loads and plot.

Run: python examples/compare_nvlink_pcie.py [OUT_DIR]
Writes OUT_DIR/compare.png (default: the current folder) and prints the verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

from planner.compare import compare
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload
from planner.report.plots import plot_compare


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
    result = compare(
        load_profile("llama-70b"),
        [load_topology("8xh100"), load_topology("8xh100-pcie")],
        Workload(isl=1024, osl=256),
        concurrencies=[1, 8, 32, 128],
    )
    for row in result.rows:
        print(
            f"{row.topology:12s} c={row.concurrency:<4d} {row.shape:18s} TPOT {row.tpot_ms:6.2f} ms  "
            f"{row.tokens_per_s:8.0f} tokens/s"
        )
    for line in result.verdict:
        print("-", line)
    print("wrote", plot_compare(result, out / "compare.png"))


if __name__ == "__main__":
    main()
