"""`planner frontier`: tokens/s per GPU against tokens/s per user over plan shapes and loads."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

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
    refuse_rate,
    say,
)
from planner.cli.options import Fields, derive
from planner.cli.progress import solve_progress
from planner.disagg.frontier import combine, disagg_points
from planner.disagg.report import disagg_frontier_table
from planner.frontier import frontier
from planner.plan import Workload
from planner.report.plans import frontier_table
from planner.report.plots import check_plot_path, plot_frontier
from planner.solve.options import SolveOptions

if TYPE_CHECKING:
    from planner.cost.constants import Constants
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile

#: The frontier runs every load itself (no --concurrency) and offers no remedies (planner remedies does).
FRONTIER_WORKLOAD = Fields(Workload, exclude=frozenset({"concurrency"}), panels_excluded=frozenset({"Remedies"}))
FRONTIER_OPTIONS = Fields(
    SolveOptions,
    only=frozenset({"gpus", "gpu_ids", "max_pp", "time_limit_s", "max_prefill_utilisation", "serving"}),
    defaults={"time_limit_s": 20.0},
    help={
        "time_limit_s": "solver time for placing every shape, s",
        "gpus": "plans may use at most this many GPUs (any of them)",
        "gpu_ids": "plans use only these GPUs, e.g. 0,1,2,3",
        "serving": "agg (default), disagg (prefill and decode pools) or auto (both, side by "
        "side, the frontier over both, and the verdict)",
    },
)


def register(app: typer.Typer) -> None:
    app.command("frontier")(frontier_cmd)


@cli_errors
@derive(work=FRONTIER_WORKLOAD, options=FRONTIER_OPTIONS)
def frontier_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    plot: Annotated[
        Optional[str], typer.Option("--plot", help="Write the frontier picture here (.png, .svg, .pdf).")
    ] = None,
    all_points: Annotated[bool, typer.Option("--all", help="List every point, not only the frontier.")] = False,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
    *,
    work: Workload,
    options: SolveOptions,
) -> None:
    """The Pareto frontier: each shape's plan at loads from one sequence per replica to its capacity."""
    refuse_rate(work, command="frontier", searches="sweeps the load (one sequence per replica to capacity)")
    if plot:
        check_plot_path(plot)
    constants, topo, profile, work = load_inputs(model, topology, work, calibration=calibration)
    if options.serving in ("auto", "disagg"):
        _serving_frontier(
            profile, topo, work, options=options, constants=constants, json_out=json_out, all_points=all_points
        )
        return
    with solve_progress(enabled=not json_out and sys.stderr.isatty()) as progress:
        result = frontier(profile, topo, work, options=options, constants=constants, progress=progress)
    if plot:
        plot_frontier(result, plot)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return

    console.print(frontier_table(result, all_points))


def _serving_frontier(
    profile: ModelProfile,
    topo: Topology,
    work: Workload,
    *,
    options: SolveOptions,
    constants: Constants,
    json_out: bool,
    all_points: bool,
) -> None:
    """frontier --serving auto|disagg: both modes' points (planner.disagg.frontier), the frontier over them."""
    agg = frontier(profile, topo, work, options=options, constants=constants) if options.serving == "auto" else None
    result = combine(agg, disagg_points(profile, topo, work, options=options, constants=constants))
    if json_out:
        print_json(result)
        return
    if result.agg is not None:
        console.print(frontier_table(result.agg, all_points))
    console.print(disagg_frontier_table(result.disagg, all_points))
    console.print(f"verdict: {result.verdict}")
