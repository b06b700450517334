"""The tables `planner bench` prints: measured against predicted, closed loop per load, open loop per rate."""

from __future__ import annotations

import math
from typing import Optional, Union

from rich.table import Table

from planner.bench.measure import BenchReport
from planner.bench.openloop import OpenBenchReport, OpenPoint, Percentiles
from planner.report.tables import table

#: What the error column means, under every bench table.
ERROR_SIGN = (
    "error = predicted / measured - 1: positive means predicted higher (slower for TTFT and TPOT, more for tokens/s)"
)


def _num(value: Optional[float]) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.1f}" if abs(value) < 10_000 else f"{value:,.0f}"


def _pct(value: Optional[float]) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.0%}"


def fit_caption(report: Union[BenchReport, OpenBenchReport]) -> str:
    if not report.calibration:
        return ""
    rms = "" if report.fit_rms_error is None else f"; RMS error of the fit on its points {report.fit_rms_error:.1%}"
    return f"\nfitted into {report.calibration}: " + ", ".join(f"{k} {v:.3g}" for k, v in report.fitted.items()) + rms


def closed_table(report: BenchReport) -> Table:
    """Measured against predicted at each load (a closed loop of identical requests): a row per figure, so that it
    fits 80 columns without splitting a number."""
    t = table(
        f"{report.url} against {report.plan} (isl {report.isl}, osl {report.osl}, closed loop)",
        ["load", "requests", "figure", "measured", "predicted", "error"],
        right=("load", "requests", "measured", "predicted", "error"),
    )
    for p in report.points:
        m, pr, e = p.measured, p.predicted, p.error
        t.add_row(str(p.concurrency), str(p.requests), "TTFT ms", _num(m.ttft_ms), _num(pr.ttft_ms), _pct(e.ttft_ms))
        t.add_row("", "", "TPOT ms", _num(m.tpot_ms), _num(pr.tpot_ms), _pct(e.tpot_ms))
        t.add_row(
            "", "", "tokens/s", _num(m.tokens_per_s), _num(pr.tokens_per_s), _pct(e.tokens_per_s), end_section=True
        )
    t.caption = ERROR_SIGN + fit_caption(report)
    t.caption_justify = "left"
    return t


def _figure_row(t: Table, name: str, m: Percentiles, *, pred: Optional[float], err: Optional[float]) -> None:
    t.add_row(name, _num(m.mean), _num(m.p50), _num(m.p90), _num(m.p99), _num(pred), _pct(err))


def open_table(report: OpenBenchReport, p: OpenPoint) -> Table:
    """One rate: TTFT and TPOT over its requests, the rates achieved, the prediction's means beside them."""
    m, pred, err = p.measured, p.predicted, p.error
    load = (
        f"predicted at load {p.little_load} by Little's law"
        if p.little_load is not None
        else "past what the plan sustains: no prediction"
    )
    t = table(
        f"{p.request_rate:g} requests/s (Poisson, {p.requests} requests, sent at {m.sent_per_s:.3g}/s; "
        f"isl {report.isl}, osl {report.osl}; {load})",
        ["figure", "mean", "P50", "P90", "P99", "predicted", "error"],
        right=("mean", "P50", "P90", "P99", "predicted", "error"),
    )
    _figure_row(t, "TTFT ms", m.ttft_ms, pred=pred.ttft_ms if pred else None, err=err.ttft_ms if err else None)
    _figure_row(t, "TPOT ms", m.tpot_ms, pred=pred.tpot_ms if pred else None, err=err.tpot_ms if err else None)
    rps = p.predicted_requests_per_s
    t.add_row(
        "requests/s",
        _num(m.requests_per_s),
        "",
        "",
        "",
        _num(rps),
        _pct(None if rps is None else rps / m.requests_per_s - 1),
    )
    t.add_row(
        "tokens/s",
        _num(m.tokens_per_s),
        "",
        "",
        "",
        _num(pred.tokens_per_s if pred else None),
        _pct(err.tokens_per_s if err else None),
    )
    t.caption = (
        f"{ERROR_SIGN}. Predicted TTFT and TPOT: means of the closed loop at the load Little's law gives "
        "(rate x predicted time in system), an approximation of Poisson arrivals; requests/s and tokens/s: "
        "the steady state's (the rate, and rate x mean osl)"
    )
    t.caption_justify = "left"
    return t


def open_tables(report: OpenBenchReport) -> list[Table | str]:
    """A table per rate, then what --fit wrote (once, for all the rates)."""
    out: list[Table | str] = [open_table(report, p) for p in report.points]
    if report.calibration:
        out.append(
            fit_caption(report).strip() + " (fitted at each rate's mean load in flight, Little's law, with "
            "the closed-loop model)"
        )
    return out
