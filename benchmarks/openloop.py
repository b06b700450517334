"""Issue 25's acceptance on the corpus: open-loop (request-rate) rows predicted by planner.traffic.steady.open_loop.

Usage: python benchmarks/openloop.py
Per row: publisher, engine, model, GPUs, rate, the statistic it publishes, measured and predicted TPOT and TTFT
(ms), and whether the model finds the rate sustained (else the sustainable rate, and 'run' where the row's
finite run of num_prompts is priced as its transient). Then the medians of |error| over
the sustained rows. Target: <= 15% TPOT and <= 30% TTFT on >= 20 rows from >= 3 publishers and 2 engines.
"""

from __future__ import annotations

from planner.traffic.corpus_check import check, open_cases, summary


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def main() -> None:
    checks = [check(c) for c in open_cases()]
    print(
        f"{'publisher':<18} {'eng':<6} {'model':<16} {'gpus':>4} {'rps':>6} {'stat':<6} "
        f"{'TPOT meas':>9} {'pred':>8} {'TTFT meas':>10} {'pred':>9}  sustained"
    )
    for c in checks:
        k = c.case
        state = "yes" if c.stable else f"no (<= {c.sustainable_rps:.3g})" + (" run" if c.finite_run else "")
        print(
            f"{k.publisher[:18]:<18} {k.engine:<6} {k.model[:16]:<16} {k.gpus:>4} {k.request_rate:>6g} "
            f"{k.measured.statistic:<6} {_ms(k.measured.tpot_ms):>9} {_ms(c.tpot_ms):>8} "
            f"{_ms(k.measured.ttft_ms):>10} {_ms(c.ttft_ms):>9}  {state}"
        )
    s = summary(checks)
    print(
        f"\ncompared rows (sustained, or finite runs above it): {s['rows']} from {s['publishers']} publishers, {s['engines']} engines; "
        f"median |error| TPOT {s['tpot_median_abs_error']:.1%} ({s['tpot_rows']} rows), "
        f"TTFT {s['ttft_median_abs_error']:.1%} ({s['ttft_rows']} rows)"
    )


if __name__ == "__main__":
    main()
