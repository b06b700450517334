"""Fit the serving constants to published at-load measurements and report the error on held-out rows.

Usage: python benchmarks/fit_serving.py [--rounds N]       (round two: the NIM rows)
       python benchmarks/fit_serving.py --cv [--write]     (round three: the corpus, leave one publisher out)
--cv fits the shared kernel constants and each engine's host time (planner.calibrate.fidelity) on every publisher
but one, predicts that publisher's rows, and prints the held-out median |error| by engine x dense/MoE x metric; it
writes that table into benchmarks/RESULTS.md and the bands into planner/cost/engines/bands.yaml. --write then fits
on every row and writes planner/cost/engines/fitted.yaml (the shipped engine profiles).
Rows: tests/data/serving_nim.yaml (NVIDIA NIM, genai-perf closed loop; role fit / check). The fit moves
flops_efficiency, step_overhead_s, sequence_overhead_s and request_overhead_s (planner.calibrate.serving),
keeping every gpt-fast batch-1 row (tests/data/decode_gpt_fast.yaml) within 9.5%. Prints the fitted values (to
paste into planner/cost/constants.py), the median errors of the fit and check rows, and every row as a table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from planner.calibrate.serving import SERVING_FIT, Row, errors, fit, medians
from planner.cost.constants import DEFAULT, Constants
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload, make_partition

ROOT = Path(__file__).resolve().parent.parent


def serving_rows() -> list[Row]:
    doc = yaml.safe_load((ROOT / "tests" / "data" / "serving_nim.yaml").read_text())
    return [Row(mode=doc["mode"], **r) for r in doc["rows"]]


def gpt_fast_errors(c: Constants) -> list[float]:
    doc = yaml.safe_load((ROOT / "tests" / "data" / "decode_gpt_fast.yaml").read_text())
    topo = load_topology(doc["machine"])
    out = []
    for r in doc["rows"]:
        model = str(ROOT / r["model"]) if "/" in r["model"] else r["model"]
        profile = load_profile(model)
        part = make_partition(profile, topo, tp=r["tp"], gpu_ids=list(range(r["tp"])))
        pred = estimate(
            profile, topo, part, workload=Workload(concurrency=1, isl=doc["isl"], osl=doc["osl"], engine="trtllm"), c=c
        )
        out.append(pred.tpot_ms / r["ms_per_token"] - 1)
    return out


def _fold(args):
    from planner.calibrate import fidelity

    publisher, cases, rounds, per_group, offset = args
    if publisher is None:  # --write: the fit on every row, run beside the folds
        return fidelity.fit(cases, rounds=rounds, per_group=per_group, offset=offset)
    train = [c for c in cases if c.publisher != publisher]
    test = [c for c in cases if c.publisher == publisher]
    cal = fidelity.fit(train, rounds=rounds, per_group=per_group, offset=offset)
    return [
        (
            o.case.engine,
            o.case.moe,
            o.case.publisher,
            o.errors,
            o.problem,
            {
                "file": o.case.entry.file,
                "index": o.case.entry.index,
                "model": o.case.model,
                "gpus": o.case.topology,
                "tp": o.case.tp,
                "dp": o.case.dp,
                "ep": o.case.ep,
                "load": str(o.case.load),
                "isl": o.case.isl,
                "osl": o.case.osl,
                "concurrency": o.case.concurrency,
                "weight_dtype": o.case.weight_dtype,
                "predicted": o.predicted,
            },
        )
        for o in fidelity.outcomes(test, cal)
    ]


def held_out_rows(
    rounds: int, per_group: int, workers: int, *, write: bool = False, offset: float = 0.0
) -> tuple[list[dict], object, dict]:
    """Every publisher's rows predicted by a fit without them (and, with `write`, the fit on every row), with the
    corpus's counts: (rows, the full fit or None, counts)."""
    from multiprocessing import Pool

    from planner.calibrate import fidelity
    from planner.calibrate.corpus import cases

    priced, skipped = cases()
    use = [c for c in priced if fidelity.usable(c)]
    publishers = sorted({c.publisher for c in use})
    jobs = [(p, use, rounds, per_group, offset) for p in ([None] if write else []) + publishers]
    with Pool(workers) as pool:
        done = pool.map(_fold, jobs, chunksize=1)
    full = done.pop(0) if write else None
    rows = [
        {"engine": e, "moe": m, "publisher": p, "errors": x, "problem": q, "case": n}
        for fold in done
        for e, m, p, x, q, n in fold
    ]
    counts = {"used": len(use), "priced": len(priced), "skipped": len(skipped), "publishers": len(publishers)}
    return rows, full, counts


def cross_validation(
    rounds: int, per_group: int, workers: int, write: bool, rows_out: str = "", offset: float = 0.0
) -> None:
    import time

    from planner.calibrate import fidelity

    started = time.perf_counter()
    rows, full, n = held_out_rows(rounds, per_group, workers, write=write, offset=offset)
    shifted = f", training sample offset {offset:g}" if offset else ""
    header = (
        f"Leave-one-publisher-out over {n['used']} corpus rows ({n['priced']} priced, {n['skipped']} skipped) "
        f"from {n['publishers']} publishers; `python benchmarks/fit_serving.py --cv` "
        f"({time.perf_counter() - started:.0f} s, {workers} workers, {rounds} rounds, {per_group} training rows "
        f"per group{shifted})."
    )
    if rows_out:
        Path(rows_out).write_text(json.dumps({"header": header, "rows": rows}, indent=0))
    report(header, rows)
    if full is not None:
        from planner.cost.engines import FITTED_FILE

        values = fidelity.fitted_values(full)
        FITTED_FILE.write_text(
            "# Fitted by python benchmarks/fit_serving.py --cv --write on every usable corpus row\n"
            + yaml.safe_dump(
                {
                    "source": f"benchmarks/fit_serving.py on {n['used']} corpus rows of {n['publishers']} publishers",
                    **values,
                },
                sort_keys=False,
            )
        )
        print(yaml.safe_dump(values, sort_keys=False))


def held_out_groups(rows: list[dict]) -> tuple[dict, dict]:
    """The held-out rows' |errors| and publishers by (engine or 'all', 'dense' or 'moe', metric)."""
    from collections import defaultdict

    groups: dict = defaultdict(list)
    pubs: dict = defaultdict(set)
    for r in rows:
        for metric, e in r["errors"].items():
            for eng in (r["engine"], "all"):
                groups[(eng, "moe" if r["moe"] else "dense", metric)].append(abs(e))
                pubs[(eng, "moe" if r["moe"] else "dense", metric)].add(r["publisher"])
    return groups, pubs


def held_out_medians(rows: list[dict]) -> dict[tuple[str, str, str], float]:
    """Median |error| held out by (engine or 'all', class, metric)."""
    import statistics

    return {k: statistics.median(v) for k, v in held_out_groups(rows)[0].items()}


def report(header: str, rows: list[dict]) -> None:
    """The held-out table (RESULTS.md) and the bands (bands.yaml, by engine and for all engines together) from the
    held-out rows' errors; `--report ROWS.json` rebuilds them from a run's saved rows without fitting again."""
    from collections import defaultdict

    from planner.cost.engines import BANDS_FILE

    groups, pubs = held_out_groups(rows)
    meds = held_out_medians(rows)
    names = {"tpot": "TPOT", "ttft": "TTFT", "tokens": "output tokens/s", "max_tokens": "max-throughput tokens/s"}
    lines = [
        header,
        "",
        "| engine | class | metric | median abs error held out | rows | publishers |",
        "|---|---|---|---|---|---|",
    ]
    bands: dict = defaultdict(lambda: defaultdict(dict))
    for key in sorted(groups, key=lambda k: (k[0] != "all", k)):
        engine, cls, metric = key
        med = meds[key]
        lines.append(f"| {engine} | {cls} | {names[metric]} | {med:.1%} | {len(groups[key])} | {len(pubs[key])} |")
        bands[engine][cls][metric] = round(med, 3)
    table = "\n".join(lines)
    print(table)
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    text = results_md.read_text()
    head = "## Fidelity: held-out errors on the calibration corpus (issue 23)"
    if head in text:
        before, _, rest = text.partition(head)
        after = rest[rest.find("\n## ", 1) :] if "\n## " in rest else ""
        text = before.rstrip() + "\n\n"
    else:
        text, after = text.rstrip() + "\n\n", ""
    results_md.write_text(text + head + "\n\n" + table + "\n" + after)
    BANDS_FILE.write_text(
        "# Relative error bands (median |error| held out, leave-one-publisher-out) by engine x class x\n"
        "# metric ('all': every engine's rows together); written by python benchmarks/fit_serving.py\n"
        "# --cv. tokens: closed-loop output tokens/s; max_tokens: offline maximum-throughput rows.\n"
        + yaml.safe_dump({"bands": {e: {k: dict(v) for k, v in d.items()} for e, d in bands.items()}}, sort_keys=True)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--cv", action="store_true", help="leave-one-publisher-out over the corpus")
    ap.add_argument("--write", action="store_true", help="with --cv: also fit on every row, write fitted.yaml")
    ap.add_argument("--per-group", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rows", default="", help="with --cv: write every held-out row's errors to this JSON file")
    ap.add_argument("--report", default="", help="rebuild the table and bands from a --rows file (no fitting)")
    ap.add_argument(
        "--sample-offset",
        type=float,
        default=0.0,
        help="with --cv: where in each stride of a large group the training rows fall, 0 to 1 (default 0)",
    )
    args = ap.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        if isinstance(saved, list):  # a bare list of rows: the run's header is the one RESULTS.md holds
            head = "## Fidelity: held-out errors on the calibration corpus (issue 23)\n\n"
            text = (ROOT / "benchmarks" / "RESULTS.md").read_text()
            saved = {"header": text.partition(head)[2].splitlines()[0], "rows": saved}
        report(saved["header"], saved["rows"])
        return
    if args.cv:
        if not 0.0 <= args.sample_offset < 1.0:
            ap.error(f"--sample-offset {args.sample_offset} is outside [0, 1)")
        cross_validation(min(args.rounds, 4), args.per_group, args.workers, args.write, args.rows, args.sample_offset)
        return
    rows = serving_rows()
    train = [r for r in rows if r.role == "fit"]
    c = fit(train, DEFAULT, rounds=args.rounds, guard=lambda t: max(abs(e) for e in gpt_fast_errors(t)) <= 0.095)
    for name in SERVING_FIT:
        print(f"{name} = {getattr(c, name):.4g}")
    errs = errors(rows, c)
    for role in ("fit", "check"):
        m = medians([e for e in errs if e.row.role == role])
        print(f"{role}: median |error| TPOT {m['tpot']:.1%}, TTFT {m['ttft']:.1%}, tokens/s {m['tokens']:.1%}")
    m = medians(errs)
    print(f"all: median |error| TPOT {m['tpot']:.1%}, TTFT {m['ttft']:.1%}, tokens/s {m['tokens']:.1%}")
    print(f"gpt-fast batch 1: worst |error| {max(abs(e) for e in gpt_fast_errors(c)):.1%}")
    print("\n| role | model | GPUs | isl/osl | c | TPOT ms meas / pred | TTFT ms meas / pred | tokens/s meas / pred |")
    print("|---|---|---|---|---|---|---|---|")
    for e in errs:
        r, p = e.row, e.prediction
        print(
            f"| {r.role} | {r.model} | {r.tp}x {r.machine[2:]} | {r.isl}/{r.osl} | {r.concurrency} | "
            f"{r.itl_ms:.1f} / {p.tpot_ms:.1f} ({e.tpot:+.0%}) | {r.ttft_ms:,.0f} / {p.ttft_ms:,.0f} ({e.ttft:+.0%}) | "
            f"{r.tokens_per_s:,.0f} / {p.tokens_per_s:,.0f} ({e.tokens:+.0%}) |"
        )


if __name__ == "__main__":
    main()
