"""`planner bench`: measure a live OpenAI-compatible server against a plan's prediction at the same loads."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from planner.bench.measure import bench, check_fit_loads, fit_profile
from planner.cli.common import CalibrationOpt, JsonOpt, cli_errors, console, print_json, say
from planner.cli.progress import count_progress
from planner.compare import parse_concurrencies
from planner.cost.constants import load_constants
from planner.plan_io import load_plan
from planner.report.plans import bench_table


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_cmd)


@cli_errors
def bench_cmd(
    plan_file: Annotated[str, typer.Argument(help="The plan the server runs (plan.json).")],
    url: Annotated[str, typer.Option("--url", help="The server, e.g. http://localhost:8000.")],
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Requests in flight, comma separated.")] = "1,4",
    isl: Annotated[Optional[int], typer.Option("--isl", help="Prompt tokens per request (default: the plan's).")] = None,
    osl: Annotated[Optional[int], typer.Option("--osl", help="Output tokens per request (default: the plan's).")] = None,
    requests: Annotated[Optional[int], typer.Option("--requests", help="Requests per load (default 4 x the load, at least 8).")] = None,
    fit: Annotated[Optional[str], typer.Option("--fit", help="Fit the observable constants and write a calibration profile here.")] = None,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Closed-loop load at each concurrency: measured TTFT, TPOT and tokens/s next to the plan's prediction."""
    loads = parse_concurrencies(concurrency)
    if fit:
        check_fit_loads(loads)
    loaded = load_plan(plan_file)
    w = loaded.plan.inputs.workload
    constants = load_constants(calibration)
    n = requests if requests is not None else max(8, 4 * max(loads))
    with count_progress(not json_out and sys.stderr.isatty(), "requests") as progress:
        report = bench(loaded, url, loads, isl=w.isl if isl is None else isl, osl=w.osl if osl is None else osl, requests=n, constants=constants,
                       progress=progress)
    if fit:
        report.fitted = fit_profile(loaded, report, fit, constants)
        report.calibration = fit
        say(f"wrote {fit}")
    if json_out:
        print_json(report)
        return

    console.print(bench_table(report))
