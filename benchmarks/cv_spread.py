"""How far the held-out table moves with the training sample alone: the cross-validation of fit_serving.py --cv
run with the sample shifted within each group's stride (fidelity.training_sample's offset), same code and corpus.

Usage: python benchmarks/cv_spread.py [--offsets 0,0.333,0.667] [--per-group 6] [--workers 2]
Prints, for every engine together, each class x metric's held-out median |error| per offset and the spread
(largest less smallest). A change to the model is worth its held-out figures only where it moves them by more than
this spread (benchmarks/RESULTS.md, 'Fidelity notes'). Writes nothing: the shipped table stays fit_serving's.
About 2.5 minutes an offset on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_serving import held_out_medians, held_out_rows  # noqa: E402

NAMES = {"tpot": "TPOT", "tokens": "output tokens/s", "ttft": "TTFT", "max_tokens": "max-throughput tokens/s"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--offsets", default="0,0.333,0.667", help="training sample offsets, each in [0, 1)")
    ap.add_argument("--per-group", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    try:
        offsets = [float(x) for x in args.offsets.split(",")]
    except ValueError:
        ap.error(f"--offsets {args.offsets!r}: give numbers separated by commas")
    if not offsets or any(not 0.0 <= o < 1.0 for o in offsets):
        ap.error(f"--offsets {args.offsets!r}: each offset must be in [0, 1)")
    runs = []
    for o in offsets:
        started = time.perf_counter()
        rows, _, _ = held_out_rows(4, args.per_group, args.workers, offset=o)
        runs.append(held_out_medians(rows))
        print(f"offset {o:g}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(f"| class | metric | {' | '.join(f'offset {o:g}' for o in offsets)} | spread |")
    print(f"|---|---|{'---|' * len(offsets)}---|")
    for cls in ("dense", "moe"):
        for metric, name in NAMES.items():
            values = [r.get(("all", cls, metric)) for r in runs]
            if any(v is None for v in values):
                continue
            cells = " | ".join(f"{v:.1%}" for v in values)
            print(f"| {cls} | {name} | {cells} | {max(values) - min(values):.1%} |")


if __name__ == "__main__":
    main()
