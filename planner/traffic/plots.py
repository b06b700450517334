"""The picture of `planner size --plot`: fleet cost against request rate, one line per GPU type (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

from planner.report.plots import _save
from planner.traffic.sizing import SizeResult, cost_curve

#: Rates the curve is drawn at, as multiples of the rate asked for (log-spaced, 1/8x to 4x).
RATE_MULTIPLES = [2 ** (k / 4) for k in range(-12, 9)]


def plot_size(result: SizeResult, path: str | Path) -> Path:
    """USD per hour of the cheapest fleet holding the SLOs, against requests/s, per GPU type; the rate asked for
    marked. Steps are whole replicas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    rates = [result.request_rate_rps * m for m in RATE_MULTIPLES]
    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    for row in result.rows:
        costs = cost_curve(row, rates)
        pts = [(r, c) for r, c in zip(rates, costs) if c is not None]
        if pts:
            ax.step(
                [r for r, _ in pts],
                [c for _, c in pts],
                where="post",
                marker="o",
                markersize=3,
                label=f"{row.gpu} (TP{row.tp} replicas)" if row.tp else row.gpu,
            )
    ax.axvline(result.request_rate_rps, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    stat = f"P{result.slo_percentile}" if result.slo_percentile else "mean"
    slos = ", ".join(f"{n} <= {v:g} ms" for n, v in (("TTFT", result.ttft_slo_ms), ("TPOT", result.tpot_slo_ms)) if v)
    ax.set_title(
        f"{result.model}: fleet cost holding {stat} {slos or 'no SLOs'} (isl {result.isl_spec}, osl {result.osl_spec})",
        fontsize=10,
    )
    ax.set_xlabel("request rate, requests/s (Poisson)")
    ax.set_ylabel("USD per hour (on-demand GPU prices)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return path
