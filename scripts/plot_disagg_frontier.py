"""The README's aggregated-versus-disaggregated frontier picture (docs/disagg-frontier.png).

    .venv/bin/python scripts/plot_disagg_frontier.py [--model deepseek-v3 --topology 4x8xh100-ib ...] [-o PNG]

Both modes' points come from the library `planner frontier --serving auto` uses (planner.frontier and
planner.disagg.frontier); the frontier is marked over both together.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from planner.cost.constants import DEFAULT  # noqa: E402
from planner.disagg.frontier import combine, disagg_points  # noqa: E402
from planner.frontier import frontier  # noqa: E402
from planner.hardware import load_topology  # noqa: E402
from planner.model.catalog import load_profile  # noqa: E402
from planner.plan import Workload  # noqa: E402
from planner.solve.options import SolveOptions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="deepseek-v3")
    ap.add_argument("--topology", default="4x8xh100-ib")
    ap.add_argument("--weight-dtype", default="fp8")
    ap.add_argument("--isl", type=int, default=4096)
    ap.add_argument("--osl", type=int, default=1024)
    ap.add_argument("-o", "--output", default="docs/disagg-frontier.png")
    args = ap.parse_args()
    profile, topo = load_profile(args.model), load_topology(args.topology)
    work = Workload(isl=args.isl, osl=args.osl, weight_dtype=args.weight_dtype)
    options = SolveOptions(time_limit_s=30.0)
    both = combine(
        frontier(profile, topo, work, options=options, constants=DEFAULT),
        disagg_points(profile, topo, work, options=options, constants=DEFAULT),
    )
    assert both.agg is not None
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points, color in (
        ("aggregated", both.agg.points, "tab:blue"),
        ("disaggregated", both.disagg, "tab:orange"),
    ):
        xs = [p.tokens_per_s_per_user for p in points]
        ys = [p.tokens_per_s_per_gpu for p in points]
        ax.scatter(xs, ys, s=10, alpha=0.25, color=color, label=f"{name} plans")
        front = sorted((p.tokens_per_s_per_user, p.tokens_per_s_per_gpu) for p in points if p.frontier)
        if front:
            ax.scatter(*zip(*front), s=36, color=color, edgecolor="black", label=f"{name} on the frontier")
    ax.set_xlabel("tokens/s per user (1000 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(
        f"{profile.name} on {topo.name}, isl {args.isl}, osl {args.osl}: aggregated vs disaggregated", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(
        0.01,
        0.01,
        "frontier over both modes; TTFT guard 0.9 (prefill utilisation); planner frontier --serving auto",
        fontsize=7,
        color="grey",
    )
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
