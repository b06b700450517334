"""The pictures of docs/traffic.md and the README's Traffic and Sizing sections.

Usage: python scripts/traffic_pictures.py
- docs/traffic-openloop.png: llama-70b TP4 on 8xh100, lognormal prompts (mean 1000) and outputs (mean 300):
  TTFT and TPOT (mean, P50, P90, P99) against the request rate, up to the sustainable rate.
- docs/traffic-size.png: `planner size` of the same traffic at 20 requests/s on h100 and l40s, TTFT <= 1000 ms and
  TPOT <= 50 ms: fleet cost against the request rate.
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def openloop_picture(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from planner.hardware import load_topology
    from planner.model.catalog import load_profile
    from planner.plan import Workload, make_partition
    from planner.traffic.steady import open_loop

    profile, topo = load_profile("llama-70b"), load_topology("8xh100")
    part = make_partition(profile, topo, tp=4)
    work = Workload(request_rate=1.0, isl="lognormal:1000,1", osl="lognormal:300,1")
    top = open_loop(profile, topo, part, work).traffic.sustainable_rate_rps
    rates = [top * k / 20 for k in range(1, 20)]
    preds = [open_loop(profile, topo, part, work.model_copy(update={"request_rate": r})) for r in rates]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    for ax, name in ((a, "ttft"), (b, "tpot")):
        for stat, style in (("mean_ms", "-"), ("p50_ms", "--"), ("p90_ms", "-."), ("p99_ms", ":")):
            ax.plot(
                rates,
                [getattr(getattr(p.traffic, name), stat) for p in preds],
                style,
                marker="o",
                markersize=3,
                label=stat.replace("_ms", "").upper().replace("MEAN", "mean"),
            )
        ax.axvline(top, color="grey", linewidth=1)
        ax.set_xlabel("request rate, requests/s (Poisson)")
        ax.set_ylabel(f"{name.upper()} ms")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    a.set_yscale("log")
    fig.suptitle(
        f"llama-70b TP4 on 8xh100, isl lognormal:1000,1, osl lognormal:300,1: sustains {top:.2f} requests/s (grey)",
        fontsize=10,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def size_picture(path: Path) -> None:
    from planner.model.catalog import load_profile
    from planner.plan import Workload
    from planner.traffic.plots import plot_size
    from planner.traffic.sizing import SizeOptions, size

    work = Workload(request_rate=20.0, isl="lognormal:1000,1", osl="lognormal:300,1")
    result = size(load_profile("llama-70b"), work, SizeOptions(gpu="h100,l40s", ttft_slo_ms=1000, tpot_slo_ms=50))
    plot_size(result, path)


def main() -> None:
    openloop_picture(DOCS / "traffic-openloop.png")
    size_picture(DOCS / "traffic-size.png")
    print("wrote docs/traffic-openloop.png, docs/traffic-size.png")


if __name__ == "__main__":
    main()
