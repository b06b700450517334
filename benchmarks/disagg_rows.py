"""Issue 28's acceptance on the corpus: the published disaggregated (xPyD) rows predicted by planner.disagg.

Usage: python benchmarks/disagg_rows.py
Per row: publisher, model, ratio, concurrency, mean isl/osl, the share of its prompts cached from earlier runs of
its sweep (planner.disagg.corpus), measured and predicted TTFT, TPOT (ms) and output tokens/s, what limits the
throughput, and the predicted TTFT's parts (ms). Then the medians of |error| per publisher and over all rows, and
the ratio ranking of dstack's sweep by tokens/s.
Target: <= 15% TPOT and tokens/s, <= 30% TTFT on >= 20 rows from >= 2 publishers and >= 2 ratios.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from planner.disagg.corpus import DisaggCase, case_workload, disagg_cases, ratio_studies
from planner.disagg.cost import DisaggPrediction, estimate_disagg
from planner.disagg.plan import make_pools
from planner.hardware import load_topology
from planner.model.catalog import load_profile


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def predict(case: DisaggCase) -> DisaggPrediction:
    """The planner's figures for one case, at its load and with its benchmark's prompt count."""
    topo = load_topology(case.topology)
    pools = make_pools(case.spec, topo.n_gpus)
    work = case_workload(case)
    return estimate_disagg(load_profile(case.model), topo, pools, work, prompts=case.entry.row.num_prompts)


def _medians(errors: dict[str, list[float]]) -> str:
    return ", ".join(f"{n} {statistics.median(v):.1%} ({len(v)} rows)" for n, v in errors.items())


def main() -> None:
    cases, _ = disagg_cases()
    errors: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    every: dict[str, list[float]] = defaultdict(list)
    print(
        f"{'publisher':<14} {'model':<14} {'ratio':<5} {'c':>4} {'isl':>6} {'osl':>5} {'hit':>4} {'TTFT meas':>9} "
        f"{'pred':>8} {'TPOT meas':>9} {'pred':>6} {'tok/s meas':>10} {'pred':>8} {'limited by':<16} TTFT parts (ms)"
    )
    predicted = []
    for k in cases:
        r = predict(k)
        predicted.append((k, r))
        for name, measured, pred in (
            ("ttft", k.ttft_ms, r.ttft_ms),
            ("tpot", k.tpot_ms, r.tpot_ms),
            ("tok/s", k.tokens_per_s, r.tokens_per_s),
        ):
            if measured:
                errors[k.entry.publisher][name].append(abs(pred / measured - 1))
                every[name].append(abs(pred / measured - 1))
        parts = " ".join(f"{n}={v:,.0f}" for n, v in r.ttft_breakdown_ms.items())
        print(
            f"{k.entry.publisher[:14]:<14} {k.model[:14]:<14} {k.spec.prefill_instances}P{k.spec.decode_instances}D "
            f"{k.concurrency:>4} {k.isl:>6} {k.osl:>5} {case_workload(k).prefix_hit:>4.0%} {_ms(k.ttft_ms):>9} "
            f"{_ms(r.ttft_ms):>8} {_ms(k.tpot_ms):>9} {_ms(r.tpot_ms):>6} {_ms(k.tokens_per_s):>10} "
            f"{_ms(r.tokens_per_s):>8} {r.limited_by:<16} {parts}"
        )
    print()
    for publisher, by_name in errors.items():
        print(f"{publisher}: median |error| {_medians(by_name)}")
    print(f"all rows: median |error| {_medians(every)}")
    studies = ratio_studies(predicted)
    agree = [s for s in studies if s.agrees]
    print(f"\ndstack's ratio sweep ranked by tokens/s as measured: {len(agree)} of {len(studies)} studies")
    for s in studies:
        if not s.agrees:
            print(
                f"  {s.key}: measured {s.measured_order}, planned {s.planned_order} (measured {s.measured_spread:.1%} apart)"
            )


if __name__ == "__main__":
    main()
