"""Issue 28's acceptance on the corpus: the published disaggregated (xPyD) rows predicted by planner.disagg.

Usage: python benchmarks/disagg_rows.py
Per row: publisher, model, ratio, concurrency, mean isl/osl, measured and predicted TTFT, TPOT (ms) and output
tokens/s, and the predicted TTFT's parts (ms). Then, per publisher, the medians of |error|.
Target: <= 15% TPOT and tokens/s, <= 30% TTFT on >= 20 rows from >= 2 publishers and >= 2 ratios.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from planner.disagg.corpus import disagg_cases
from planner.disagg.cost import estimate_disagg
from planner.disagg.plan import make_pools
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def main() -> None:
    cases, _ = disagg_cases()
    errors: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    print(
        f"{'publisher':<14} {'model':<14} {'ratio':<5} {'c':>4} {'isl':>6} {'osl':>5} {'TTFT meas':>9} {'pred':>8} "
        f"{'TPOT meas':>9} {'pred':>6} {'tok/s meas':>10} {'pred':>8}  TTFT parts (ms)"
    )
    for k in cases:
        topo = load_topology(k.topology)
        pools = make_pools(k.spec, topo.n_gpus)
        work = Workload(concurrency=k.concurrency, isl=k.isl, osl=k.osl, weight_dtype=k.weight_dtype, mode="closed")
        r = estimate_disagg(load_profile(k.model), topo, pools, work, prompts=k.entry.row.num_prompts)
        for name, measured, pred in (
            ("ttft", k.ttft_ms, r.ttft_ms),
            ("tpot", k.tpot_ms, r.tpot_ms),
            ("tok/s", k.tokens_per_s, r.tokens_per_s),
        ):
            if measured:
                errors[k.entry.publisher][name].append(abs(pred / measured - 1))
        parts = " ".join(f"{n}={v:,.0f}" for n, v in r.ttft_breakdown_ms.items())
        print(
            f"{k.entry.publisher[:14]:<14} {k.model[:14]:<14} {pools.ratio:<5} {k.concurrency:>4} {k.isl:>6} "
            f"{k.osl:>5} {_ms(k.ttft_ms):>9} {_ms(r.ttft_ms):>8} {_ms(k.tpot_ms):>9} {_ms(r.tpot_ms):>6} "
            f"{_ms(k.tokens_per_s):>10} {_ms(r.tokens_per_s):>8}  {parts}"
        )
    print()
    for publisher, by_name in errors.items():
        medians = ", ".join(f"{n} {statistics.median(v):.1%} ({len(v)} rows)" for n, v in by_name.items())
        print(f"{publisher}: median |error| {medians}")


if __name__ == "__main__":
    main()
