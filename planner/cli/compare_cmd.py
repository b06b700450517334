"""`planner compare`: the best plan on each machine at each load, side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt,
    JsonOpt,
    ModelOpt,
    WhatIfOpt,
    cli_errors,
    console,
    print_json,
    refuse_rate,
    say,
    what_if_topology,
)
from planner.cli.options import Fields, build, derive
from planner.compare import compare, parse_concurrencies
from planner.cost.constants import load_constants
from planner.disagg.frontier import compare_serving
from planner.disagg.report import compare_serving_report
from planner.errors import InputError
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.model.checks import with_native_dtype
from planner.plan import Workload
from planner.report.plans import compare_table
from planner.report.plots import check_plot_path, plot_compare
from planner.solve.options import SolveOptions

#: The loads are a list (--concurrency 1,8,32,128).
COMPARE_WORKLOAD = Fields(Workload, exclude=frozenset({"concurrency"}))
COMPARE_OPTIONS = Fields(
    SolveOptions,
    only=frozenset({"objective", "time_limit_s", "offload", "serving"}),
    defaults={"time_limit_s": 10.0},
    help={
        "objective": "latency or throughput",
        "time_limit_s": "solver time limit per machine and load, s",
        "offload": "let stages stream layers from host-memory tiers where a machine has them",
        "serving": "agg (default), or disagg / auto: each machine's best "
        "aggregated and disaggregated plans for tokens/s, side by side, and the verdict",
    },
)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


@cli_errors
@derive(work=COMPARE_WORKLOAD, options=COMPARE_OPTIONS)
def compare_cmd(
    model: ModelOpt,
    topology: Annotated[list[str], typer.Option("--topology", "-t", help="A machine; give two or more.")],
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Loads, comma separated.")] = "1,8,32,128",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the three-panel PNG here.")] = None,
    breakdown_at: Annotated[
        Optional[int], typer.Option("--breakdown-at", help="Concurrency of the breakdown panel (default the first).")
    ] = None,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
    what_if: WhatIfOpt = None,
    *,
    work: Workload,
    options: SolveOptions,
) -> None:
    """Compare machines (NVLink versus PCIe, ...) with the best plan on each, at several loads."""
    refuse_rate(work, command="compare", searches="compares at the loads --concurrency gives")
    loads = parse_concurrencies(concurrency)
    if plot:
        check_plot_path(plot)
    if breakdown_at is not None and breakdown_at not in loads:
        raise InputError(
            f"--breakdown-at {breakdown_at}: choose one of the loads --concurrency gives ({', '.join(map(str, loads))})"
        )

    work = with_native_dtype(work, model)
    work = build(Workload, {**work.model_dump(), "concurrency": loads[0]})
    constants = load_constants(calibration)
    topos = [what_if_topology(load_topology(t), what_if) for t in topology]
    if options.serving in ("auto", "disagg"):
        by_mode = compare_serving(load_profile(model), topos, work, options=options, constants=constants)
        if json_out:
            print_json(by_mode)
        else:
            console.print(compare_serving_report(by_mode))
        return
    result = compare(load_profile(model), topos, work, concurrencies=loads, options=options, constants=constants)
    if plot:
        plot_compare(result, plot, breakdown_at)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return

    console.print(compare_table(result))
