"""`planner bench`: measure a live OpenAI-compatible server against a plan's prediction, closed loop at each load
(`--concurrency`) or open loop at each Poisson request rate (`--request-rate`).

Bench's options are hand-declared typer options (not yet derived from a pydantic model, planner/cli/options.py),
so a new one is one `typer.Option` here plus its use."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional, Union

import typer

from planner.bench.fitting import fit_profile
from planner.bench.lengths import LengthDist, parse_lengths
from planner.bench.measure import BenchReport, bench, check_fit_loads
from planner.bench.openloop import OpenBenchReport, open_bench, parse_rates
from planner.bench.tables import closed_table, open_tables
from planner.cli.common import CalibrationOpt, JsonOpt, cli_errors, console, print_json, say
from planner.cli.progress import count_progress
from planner.compare import parse_concurrencies
from planner.cost.constants import load_constants
from planner.errors import InputError
from planner.plan_io import LoadedPlan, load_plan


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


@cli_errors
def bench_cmd(
    plan_file: Annotated[str, typer.Argument(help="The plan the server runs (plan.json).")],
    url: Annotated[str, typer.Option("--url", help="The server, e.g. http://localhost:8000.")],
    concurrency: Annotated[Optional[str], typer.Option("--concurrency", "-c", help="Closed loop: requests in flight, comma separated (default 1,4).")] = None,
    request_rate: Annotated[Optional[str], typer.Option("--request-rate", help="Open loop: Poisson arrivals, requests/s, comma separated for several rates (instead of --concurrency).")] = None,
    isl: Annotated[Optional[str], typer.Option("--isl", help="Prompt tokens per request (default: the plan's); with --request-rate also uniform:A-B or lognormal:MEAN,SIGMA.")] = None,
    osl: Annotated[Optional[str], typer.Option("--osl", help="Output tokens per request (default: the plan's); with --request-rate also uniform:A-B or lognormal:MEAN,SIGMA.")] = None,
    requests: Annotated[Optional[int], typer.Option("--requests", help="Requests at each load or rate (default: 4 x the load, at least 8; at a rate, 10 s of arrivals, at least 32).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the arrival times and lengths (--request-rate).")] = 0,
    max_in_flight: Annotated[int, typer.Option("--max-in-flight", help="Open loop: stop with an error when this many requests are in flight as the next is due.")] = 1000,
    fit: Annotated[Optional[str], typer.Option("--fit", help="Fit the observable constants and write a calibration profile here.")] = None,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Measured TTFT, TPOT and tokens/s next to the plan's prediction: a closed loop at each concurrency, or
    Poisson arrivals at each request rate (mean, P50, P90, P99)."""

    if concurrency is not None and request_rate is not None:
        raise InputError("--concurrency and --request-rate: give one (a closed loop, or Poisson arrivals)")
    loaded = load_plan(plan_file)
    w = loaded.plan.inputs.workload
    isl_d = parse_lengths(str(w.isl) if isl is None else isl, "--isl")
    osl_d = parse_lengths(str(w.osl) if osl is None else osl, "--osl")
    constants = load_constants(calibration)
    with count_progress(not json_out and sys.stderr.isatty(), "requests") as progress:
        if request_rate is not None:
            report: Union[BenchReport, OpenBenchReport] = _open(loaded, url, request_rate, isl=isl_d, osl=osl_d, fit=fit,
                                                                requests=requests, seed=seed,
                                                                max_in_flight=max_in_flight, progress=progress,
                                                                constants=constants)
        else:
            report = _closed(loaded, url, concurrency or "1,4", isl=isl_d, osl=osl_d, fit=fit, requests=requests,
                             progress=progress, constants=constants)
    if fit:
        outcome = fit_profile(loaded, report, fit, start=constants)
        report.fitted, report.calibration = outcome.values, fit
        report.fit_rms_error, report.fit_warnings = outcome.rms_error, outcome.warnings
        say(f"wrote {fit} (RMS error of the fit on its points: {outcome.rms_error:.1%})")
        for warning in outcome.warnings:
            say(f"warning: {warning}")
    _show(report, json_out)


def _closed(loaded: LoadedPlan, url: str, concurrency: str, *, isl: LengthDist, osl: LengthDist,
            **kw: Any) -> BenchReport:

    loads = parse_concurrencies(concurrency)
    if kw.pop("fit"):
        check_fit_loads(loads)
    for d, flag in ((isl, "--isl"), (osl, "--osl")):
        if not d.fixed:
            raise InputError(f"{flag} {d.text}: a closed loop sends identical requests; length distributions need "
                             "--request-rate")
    return bench(loaded, url, loads, isl=int(isl.a), osl=int(osl.a), **kw)


def _open(loaded: LoadedPlan, url: str, request_rate: str, *, isl: LengthDist, osl: LengthDist,
          **kw: Any) -> OpenBenchReport:

    rates = parse_rates(request_rate)
    if kw.pop("fit") and len(rates) < 2:
        raise InputError("--fit needs measurements at two or more rates (--request-rate 2,8)")
    return open_bench(loaded, url, rates, isl=isl, osl=osl, **kw)


def _show(report: Union[BenchReport, OpenBenchReport], json_out: bool) -> None:
    if json_out:
        print_json(report)
        return

    if isinstance(report, BenchReport):
        console.print(closed_table(report))
        return
    for t in open_tables(report):
        console.print(t)
