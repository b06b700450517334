"""Rich tables of traffic predictions (returned, never printed: the CLI prints them). Fit 80 columns."""

from __future__ import annotations

from rich.table import Table

from planner.report.tables import table
from planner.traffic.mixed import MixedFleet
from planner.traffic.model import TrafficPrediction
from planner.traffic.sizing import SizeResult


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def traffic_table(t: TrafficPrediction) -> Table:
    """The open loop at its rate: stable or not, the steady state, the queues, and TTFT/TPOT percentiles."""
    state = "stable" if t.stable else "UNSTABLE"
    title = (
        f"open loop at {t.request_rate_rps:g} requests/s: {state} (sustains {t.sustainable_rate_rps:.3g} requests/s)"
    )
    if t.trace:
        title += f"; from {t.trace}, gaps' cv^2 {t.arrival_cv2:.2f} (Poisson 1)"
    out = table(title, ["figure", "mean", "P50", "P90", "P99"], right=("mean", "P50", "P90", "P99"))
    for name, p in (("TTFT ms", t.ttft), ("TPOT ms", t.tpot)):
        if p is not None:
            out.add_row(name, _ms(p.mean_ms), _ms(p.p50_ms), _ms(p.p90_ms), _ms(p.p99_ms))
    out.add_row("running sequences", f"{t.running_concurrency:,}", "", "", "")
    if t.in_system is not None:
        out.add_row("in system (Little)", f"{t.in_system:,.1f}", "", "", "")
    out.add_row("prefill utilisation", f"{t.prefill_utilisation:.0%}", "", "", "")
    out.add_row("prefill wait ms", _ms(t.prefill_wait_ms), "", "", "")
    out.add_row("admission wait ms", _ms(t.admission_wait_ms), "", "", "")
    out.add_row("engine slots", f"{t.slots:,}", "", "", "")
    return out


def _money(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"${v:,.{digits}f}"


def size_table(r: SizeResult) -> Table:
    """One row per GPU type: the replica plan, the fleet, the figures at the SLO's statistic, and the cost."""
    stat = f"P{r.slo_percentile}" if r.slo_percentile else "mean"
    slos = ", ".join(f"{n} <= {v:g} ms" for n, v in (("TTFT", r.ttft_slo_ms), ("TPOT", r.tpot_slo_ms)) if v)
    title = (
        f"{r.model} at {r.request_rate_rps:g} requests/s, isl {r.isl_spec}, osl {r.osl_spec}; "
        f"{stat} {slos or 'no SLOs'}"
    )
    out = table(
        title,
        ["GPU", "replica", "GPUs", "nodes", f"TTFT {stat}", f"TPOT {stat}", "$/hour", "$/M out"],
        right=("GPUs", "nodes", f"TTFT {stat}", f"TPOT {stat}", "$/hour", "$/M out"),
    )
    for row in r.rows:
        if not row.fits:
            out.add_row(row.gpu, f"none: {row.reason}", "", "", "", "", "", "")
            continue
        out.add_row(
            row.gpu,
            f"TP{row.tp} x{row.replicas}",
            f"{row.gpus:,}",
            f"{row.nodes:,}",
            _ms(row.ttft_ms),
            _ms(row.tpot_ms),
            _money(row.usd_per_hour),
            _money(row.usd_per_million_output_tokens),
        )
    if r.mixed is not None:
        _mixed_row(out, r.mixed)
    return out


def _mixed_row(out: Table, m: MixedFleet) -> None:
    """The mixed fleet as one more row, and in the caption what each replica carries."""
    if not m.fits:
        out.add_row("mixed", f"none: {m.reason}", "", "", "", "", "", "")
        return
    parts = " + ".join(f"{p.gpu} TP{p.tp} x{p.replicas}" for p in m.parts)
    out.add_row(
        "mixed",
        parts,
        f"{m.gpus:,}",
        f"{m.nodes:,}",
        "<= SLO",
        "<= SLO",
        _money(m.usd_per_hour),
        _money(m.usd_per_million_output_tokens),
    )
    saving = ""
    if m.best_single_usd_per_hour and m.usd_per_hour is not None:
        saving = f"; cost {m.usd_per_hour / m.best_single_usd_per_hour - 1:+.1%} against the best single type"
    out.caption = (
        f"mixed: requests routed in proportion to each replica's SLO-bound rate; each runs at "
        f"{m.load_share:.0%} of it{saving}"
    )
