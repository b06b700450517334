"""A long fuzz run of every entry point (issue 18): the families of tests/test_fuzz.py at 10,000+ cases.

Usage: python benchmarks/fuzz.py [--scale F] [--seed S]
Prints a markdown table per family: cases, tracebacks, timeouts (over 60 s), exit codes, the cases whose mutation
must be refused and those of them that were not (exit 0 or 2), JSON that did not parse, processes left behind; then, for the cases that exited 0 after a mutation, the mutation kinds (so that every
accepted case can be judged: an unknown key that is ignored, a value replaced by another valid one, ...).
Writes every failing case to benchmarks/fuzz-failures.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fuzzing import (  # noqa: E402
    OPTION_VALUES,
    Outcome,
    extreme_file,
    hostile_options,
    mutated_file,
    run_case,
    seed_plan,
    seeds,
    unwritable_output,
    write,
)
from tests.test_fuzz import EXTREME_SUFFIX, _extreme_argv, extreme_docs  # noqa: E402

COUNTS = {
    "topology-show": 2000,
    "topology-solve": 300,
    "models-show": 500,
    "options": 2500,
    "launch": 1500,
    "calibration": 500,
    "bench-url": 150,
    "validate": 60,
    # issue 27: one numeric field of each input kind at an extreme value; refused with exit 1 where checked
    "extreme-topology": 1000,
    "extreme-model": 700,
    "extreme-plan": 700,
    "extreme-calibration": 700,
    "unwritable-output": 100,
}


def _run(n: int, strategy: st.SearchStrategy, body, seed_value: int) -> None:
    @seed(seed_value)
    @settings(
        max_examples=n, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)
    )
    @given(strategy)
    def go(x):
        body(x)

    go()


def family_cases(name: str, n: int, tmp: Path, out: list[Outcome], seed_value: int) -> None:
    data = st.data()
    if name in ("topology-show", "topology-solve"):
        tops = seeds("topology")

        def body(d):
            f, kind, _ = mutated_file(d, tops, tmp / "t.yaml")
            argv = (
                ["topology", "show", str(f), "--json"]
                if name == "topology-show"
                else ["solve", "--model", "llama-8b", "--topology", str(f), "--time-limit", "2", "--top", "0"]
            )
            out.append(run_case(name, argv, kind))
    elif name == "models-show":
        models = seeds("model")

        def body(d):
            f, kind, _ = mutated_file(d, models, tmp / "config.json", strict=False)
            out.append(run_case(name, ["models", "show", str(f), "--json"], kind))
    elif name == "options":

        def body(d):
            command, argv, added, _ = hostile_options(d)
            out.append(run_case(command, argv, added[:120]))
    elif name in ("launch", "validate"):
        base = seed_plan()

        def body(d):
            f, kind, _ = mutated_file(d, [base], tmp / "plan.json")
            argv = (
                [
                    "launch",
                    str(f),
                    "--engine",
                    d.draw(st.sampled_from(["vllm", "sglang", "trtllm", "torchrun"])),
                    "--json",
                ]
                if name == "launch"
                else ["validate", str(f), "--tokens", "1", "--timeout", "60", "--json"]
            )
            out.append(run_case(name, argv, kind))
    elif name == "calibration":
        from planner.cost.constants import DEFAULT

        base_cal = json.loads(DEFAULT.model_dump_json())

        def body(d):
            f, kind, _ = mutated_file(d, [base_cal], tmp / "cal.yaml")
            out.append(
                run_case(
                    "estimate",
                    [
                        "estimate",
                        "--model",
                        "llama-8b",
                        "--topology",
                        "8xh100",
                        "--tp",
                        "2",
                        "--calibration",
                        str(f),
                        "--json",
                    ],
                    kind,
                )
            )
    elif name.startswith("extreme-"):
        kind = name.removeprefix("extreme-")
        docs = extreme_docs(kind)

        def body(d):
            f, mutation, must = extreme_file(d, docs, tmp / EXTREME_SUFFIX[kind], kind)
            family, argv = _extreme_argv(kind, f)
            out.append(run_case(name, argv, mutation, must_reject=must))
    elif name == "unwritable-output":

        def body(d):
            _, argv, what = unwritable_output(d)
            out.append(run_case(name, argv, what, must_reject=True))
    else:  # bench-url
        plan = write(tmp / "bench-plan.json", json.dumps(seed_plan()))
        data = OPTION_VALUES

        def body(url):
            out.append(
                run_case("bench", ["bench", str(plan), "--url", url, "-c", "1", "--requests", "1", "--json"], url[:60])
            )

    _run(n, data, body, seed_value)


def table(results: dict[str, list[Outcome]]) -> list[str]:
    lines = [
        "| family | cases | tracebacks | timeouts | exit 0 | exit 1 | exit 2 | must refuse | not refused | bad JSON "
        "| leftovers | slowest s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, outs in results.items():
        codes = collections.Counter(o.code for o in outs)
        lines.append(
            f"| {name} | {len(outs)} | {sum(o.traceback is not None for o in outs)} | "
            f"{sum(o.timed_out for o in outs)} | {codes[0]} | {codes[1]} | {codes[2]} | "
            f"{sum(o.must_reject for o in outs)} | {sum(o.wrongly_accepted for o in outs)} | "
            f"{sum(o.json_ok is False for o in outs)} | {sum(bool(o.leftover) for o in outs)} | "
            f"{max((o.seconds for o in outs), default=0):.1f} |"
        )
    total = [o for outs in results.values() for o in outs]
    lines.append(
        f"| **all** | {len(total)} | {sum(o.traceback is not None for o in total)} | "
        f"{sum(o.timed_out for o in total)} | | | | {sum(o.must_reject for o in total)} | "
        f"{sum(o.wrongly_accepted for o in total)} | {sum(o.json_ok is False for o in total)} | "
        f"{sum(bool(o.leftover) for o in total)} | |"
    )
    return lines


def accepted_classes(results: dict[str, list[Outcome]]) -> list[str]:
    """Mutation kinds of the cases that exited 0 (a field deleted, replaced or added, and still accepted)."""
    lines = ["| family | mutation that still exited 0 | cases |", "|---|---|---|"]
    for name, outs in results.items():
        kinds = collections.Counter(_kind(o.mutation) for o in outs if o.code == 0)
        for kind, n in kinds.most_common(12):
            lines.append(f"| {name} | {kind} | {n} |")
    return lines


def _kind(mutation: str) -> str:
    words = mutation.split()
    return " ".join(words[:2]) if words and words[0] in ("delete", "replace", "unknown") else (mutation[:50] or "-")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every family's case count")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--only", default=None, help="comma-separated families to run (default: all)")
    ap.add_argument("--family-out", default=None, help=argparse.SUPPRESS)  # internal: one family, outcomes as JSON
    args = ap.parse_args()
    if args.family_out:  # a child: run one family, write its outcomes, exit
        outs: list[Outcome] = []
        with tempfile.TemporaryDirectory() as d:
            family_cases(args.only, max(1, int(COUNTS[args.only] * args.scale)), Path(d), outs, args.seed)
        Path(args.family_out).write_text(json.dumps([o.__dict__ for o in outs], default=str))
        return
    results: dict[str, list[Outcome]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        for name in COUNTS:
            if args.only and name not in args.only.split(","):
                continue
            # Each family in its own process: memory one family's cases leave behind (a run is thousands of
            # in-process CLI calls) is returned, and a family that dies loses only itself.
            out_file = Path(d) / f"{name}.json"
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--only",
                    name,
                    "--scale",
                    str(args.scale),
                    "--seed",
                    str(args.seed),
                    "--family-out",
                    str(out_file),
                ]
            )
            if proc.returncode != 0 or not out_file.exists():
                results[name] = [
                    Outcome(name, [], None, f"the family's process ended with {proc.returncode}", math.inf, None, [])
                ]
            else:
                results[name] = [
                    Outcome(**{**o, "seconds": float(o["seconds"])}) for o in json.loads(out_file.read_text())
                ]
            print(f"{name}: {len(results[name])} cases, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print("\n".join(table(results)))
    print()
    print("\n".join(accepted_classes(results)))
    failures = [
        o.__dict__
        for outs in results.values()
        for o in outs
        if o.traceback or o.timed_out or o.json_ok is False or o.leftover or o.wrongly_accepted
    ]
    (ROOT / "benchmarks" / "fuzz-failures.json").write_text(json.dumps(failures, indent=1, default=str))
    print(
        f"\n{sum(len(v) for v in results.values())} cases in {time.perf_counter() - started:.0f} s; "
        f"{len(failures)} failing (benchmarks/fuzz-failures.json)"
    )


if __name__ == "__main__":
    main()
