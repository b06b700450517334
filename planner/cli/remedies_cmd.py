"""`planner remedies`: the memory wall's remedies as what-ifs, each re-solved, against the baseline."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt,
    JsonOpt,
    ModelOpt,
    TopologyOpt,
    cli_errors,
    console,
    load_inputs,
    print_json,
    say,
)
from planner.cli.options import Fields, build, derive
from planner.cli.progress import count_progress
from planner.compare import parse_concurrencies
from planner.plan import Workload
from planner.remedies import RemedyRequest, remedies
from planner.report.plans import remedies_table
from planner.report.plots import check_plot_path, plot_remedies
from planner.solve.options import SolveOptions

#: The loads are a list (--concurrency 1,32); the remedies are what the command varies, not options.
REMEDIES_WORKLOAD = Fields(Workload, exclude=frozenset({"concurrency"}), panels_excluded=frozenset({"Remedies"}))
REMEDIES_OPTIONS = Fields(
    SolveOptions,
    only=frozenset({"gpus", "time_limit_s"}),
    defaults={"time_limit_s": 5.0},
    help={
        "time_limit_s": "solver time limit per remedy and load, s",
        "gpus": "plans may use this many GPUs of the machine",
    },
)


def register(app: typer.Typer) -> None:
    app.command("remedies")(remedies_cmd)


@cli_errors
@derive(work=REMEDIES_WORKLOAD, options=REMEDIES_OPTIONS)
def remedies_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Loads, comma separated.")] = "1,32",
    plot: Annotated[
        Optional[str],
        typer.Option("--plot", help="Write the TPOT breakdown per remedy and load here (.png, .svg, .pdf)."),
    ] = None,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
    *,
    work: Workload,
    options: SolveOptions,
) -> None:
    """What each remedy of the memory wall buys on this machine: quantisation, speculative decoding, sparsity,
    host-memory tiers, faster hardware; each re-solved and ranked by TPOT at each load."""
    loads = parse_concurrencies(concurrency)
    if plot:
        check_plot_path(plot)
    work = build(Workload, {**work.model_dump(), "concurrency": loads[0]})
    constants, topo, profile, work = load_inputs(model, topology, work, calibration=calibration)
    req = RemedyRequest(
        profile=profile, topo=topo, workload=work, concurrencies=loads, options=options, constants=constants
    )
    with count_progress(not json_out and sys.stderr.isatty(), "remedies") as progress:
        result = remedies(req, progress=progress)
    if plot:
        plot_remedies(result, plot)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return

    for t in remedies_table(result):
        console.print(t)
