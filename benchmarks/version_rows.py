"""The corpus rows run on engine releases older than the kernels their profile prices, priced anyway.

Usage: python benchmarks/version_rows.py
These rows (planner.cost.engines.versions: SGLang before 0.4.4 and vLLM before 0.8.0 serving a model with latent
attention) are left out of the fit, the cross-validation and the accuracy figures, and `estimate --engine-version`
says so beside their figures. This prints how far the shipped profiles are from them, so the reason they are left
out stays checkable: per engine release, GPU and metric, the rows, the median signed and absolute error, and every
row (measured, predicted).
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from planner.calibrate import fidelity
from planner.calibrate.corpus import Case, cases, older_release


def older_rows() -> list[Case]:
    """Every corpus row skipped for its engine release, resolved as if it were not."""
    return [c for c in cases(older_kernels=True)[0] if older_release(c)]


def main() -> None:
    cal = fidelity.start(seeds=False)
    outs = [o for o in fidelity.outcomes(older_rows(), cal) if o.case.load in ("closed", "offline")]
    groups: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    print(f"{'engine':<7} {'release':<24} {'gpus':<9} {'load':<8} {'c':>5} {'metric':<10} {'meas':>9} {'pred':>9} err")
    for o in outs:
        k = o.case
        for metric, err in o.errors.items():
            groups[(k.engine, str(k.entry.row.engine_version), k.topology, metric)].append(err)
            print(
                f"{k.engine:<7} {str(k.entry.row.engine_version)[:24]:<24} {k.topology:<9} {k.load:<8} "
                f"{k.concurrency or '-':>5} {metric:<10} {o.predicted[metric] / (1 + err):>9,.1f} {o.predicted[metric]:>9,.1f} "
                f"{err:+.0%}"
            )
        if o.problem:
            print(f"{k.engine:<7} {str(k.entry.row.engine_version)[:24]:<24} {k.topology:<9} not priced: {o.problem}")
    print()
    for (engine, release, gpus, metric), errs in sorted(groups.items()):
        print(
            f"{engine:<7} {release[:24]:<24} {gpus:<9} {metric:<10} {len(errs):>3} rows  median "
            f"{statistics.median(errs):+.0%}  |median| {statistics.median(map(abs, errs)):.0%}"
        )


if __name__ == "__main__":
    main()
