"""`planner bench`: measure a live OpenAI-compatible server against a plan's prediction, closed loop at each load
(`--concurrency`) or open loop at each Poisson request rate (`--request-rate`).

Bench's options are the fields of `BenchOptions` (planner/bench/options.py), derived by planner/cli/options.py: a new
one is a field there plus its use; the plan, `--url`, `--calibration` and `--json` are declared here."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Union

import typer

from planner.bench.fitting import fit_profile
from planner.bench.measure import BenchReport, bench, check_fit_loads
from planner.bench.openloop import OpenBenchReport, open_bench, parse_rates
from planner.bench.options import BenchOptions
from planner.bench.tables import closed_table, open_tables
from planner.cli.common import CalibrationOpt, JsonOpt, cli_errors, console, print_json, say
from planner.cli.options import derive
from planner.cli.progress import count_progress
from planner.compare import parse_concurrencies
from planner.cost.constants import load_constants
from planner.errors import InputError
from planner.plan_io import LoadedPlan, load_plan


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


@cli_errors
@derive(options=BenchOptions)
def bench_cmd(
    plan_file: Annotated[str, typer.Argument(help="The plan the server runs (plan.json).")],
    url: Annotated[str, typer.Option("--url", help="The server, e.g. http://localhost:8000.")],
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
    *,
    options: BenchOptions,
) -> None:
    """Measured TTFT, TPOT and tokens/s next to the plan's prediction: a closed loop at each concurrency, or
    Poisson arrivals at each request rate (mean, P50, P90, P99)."""
    loaded = load_plan(plan_file)
    constants = load_constants(calibration)
    with count_progress(not json_out and sys.stderr.isatty(), "requests") as progress:
        run = _open if options.request_rate is not None else _closed
        report: Union[BenchReport, OpenBenchReport] = run(loaded, url, options, progress=progress, constants=constants)
    if options.fit:
        outcome = fit_profile(loaded, report, options.fit, start=constants)
        report.fitted, report.calibration = outcome.values, options.fit
        report.fit_rms_error, report.fit_warnings = outcome.rms_error, outcome.warnings
        say(f"wrote {options.fit} (RMS error of the fit on its points: {outcome.rms_error:.1%})")
        for warning in outcome.warnings:
            say(f"warning: {warning}")
    _show(report, json_out)


def _closed(loaded: LoadedPlan, url: str, options: BenchOptions, **kw: Any) -> BenchReport:
    """A closed loop at each --concurrency (default 1,4); the lengths are fixed (BenchOptions refuses others)."""
    loads = parse_concurrencies(options.concurrency or "1,4")
    if options.fit:
        check_fit_loads(loads)
    isl, osl = options.lengths(loaded.plan.inputs.workload)
    return bench(loaded, url, loads, isl=int(isl.lengths[0]), osl=int(osl.lengths[0]), requests=options.requests, **kw)


def _open(loaded: LoadedPlan, url: str, options: BenchOptions, **kw: Any) -> OpenBenchReport:
    rates = parse_rates(options.request_rate or "")
    if options.fit and len(rates) < 2:
        raise InputError("--fit needs measurements at two or more rates (--request-rate 2,8)")
    isl, osl = options.lengths(loaded.plan.inputs.workload)
    return open_bench(
        loaded,
        url,
        rates,
        isl=isl,
        osl=osl,
        requests=options.requests,
        seed=options.seed,
        max_in_flight=options.max_in_flight,
        **kw,
    )


def _show(report: Union[BenchReport, OpenBenchReport], json_out: bool) -> None:
    if json_out:
        print_json(report)
        return

    if isinstance(report, BenchReport):
        console.print(closed_table(report))
        return
    for t in open_tables(report):
        console.print(t)
