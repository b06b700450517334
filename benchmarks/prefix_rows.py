"""Issue 25's prefix-reuse acceptance on the corpus: shared-prefix rows priced with --prefix-tokens / --prefix-hit.

Usage: python benchmarks/prefix_rows.py
Per row: publisher, engine, GPUs priced, load, the hit rate the row's structure gives (planner.traffic.prefix_check:
groups, routing over replicas, eviction, multi-turn history), measured and predicted TTFT (ms), and where the
publisher ran the same engine, machine and load on prompts with nothing shared, the measured and predicted ratio of
the two TTFTs. Then each row's reuse mechanism, the median |error| per publisher and over all rows. Target: TTFT
within 30%.
"""

from __future__ import annotations

from planner.traffic.prefix_check import PrefixCheck, all_checks, by_publisher, older_release_checks, summary


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def _table(checks: list[PrefixCheck]) -> None:
    print(
        f"{'publisher':<10} {'eng':<7} {'gpu':<10} {'load':<13} {'hit':>5} {'TTFT meas':>10} {'pred':>8} "
        f"{'err':>7}  {'ratio meas':>10} {'pred':>6}"
    )
    for c in checks:
        k = c.case
        load = f"c={k.concurrency}" if k.load == "closed" else f"{k.request_rate:g} rps {k.measured.statistic}"
        err = "-" if c.error is None else f"{c.error:+.0%}"
        print(
            f"{k.publisher[:10]:<10} {k.engine:<7} {k.topology:<10} {load:<13} {c.hit_rate:>5.2f} "
            f"{_ms(k.measured.ttft_ms):>10} {_ms(c.ttft_ms):>8} {err:>7}  "
            f"{_ratio(k.measured.ttft_ms, c.paired_ttft_ms):>10} {_ratio(c.ttft_ms, c.plain_ttft_ms):>6}"
            + (f"  ({c.problem})" if c.problem else "")
        )


def _pct(v: float) -> str:
    return "-" if v != v else f"{v:.1%}"  # NaN: no rows


def main() -> None:
    checks = all_checks()
    _table(checks)
    print("\nreuse by row:")
    for c in checks:
        print(f"  {c.case.publisher[:10]:<10} {c.case.entry.file}#{c.case.entry.index}: {c.how}")
    print()
    for name, (rows, err) in by_publisher(checks).items():
        print(f"{name}: {rows} rows, median |error| TTFT {err:.1%}")
    s = summary(checks)
    print(
        f"\n{s['rows']} rows from {s['publishers']} publisher(s): median |error| TTFT {_pct(s['ttft_median_abs_error'])}; "
        f"prefix/plain TTFT ratio {_pct(s['ratio_median_abs_error'])} ({s['paired_rows']} paired rows)"
    )
    older = older_release_checks()
    o = summary(older)
    print(
        f"\nLeft out of the figures: {o['rows']} rows on engine releases older than the kernels their profile "
        "prices (planner/cost/engines/versions.py), priced anyway:"
    )
    _table(older)
    print(
        f"those rows: median |error| TTFT {_pct(o['ttft_median_abs_error'])}; prefix/plain TTFT ratio "
        f"{_pct(o['ratio_median_abs_error'])} ({o['paired_rows']} paired rows)"
    )


if __name__ == "__main__":
    main()
