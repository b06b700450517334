"""`planner frontier`: tokens/s per GPU against tokens/s per user over plan shapes and loads."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt, IslOpt, JsonOpt, KvDtypeOpt, MemFracOpt, ModelOpt, ModeOpt, OslOpt, TopologyOpt, WeightDtypeOpt,
    cli_errors, console, int_list, load_inputs, print_json, say, workload)
from planner.cli.progress import solve_progress


def register(app: typer.Typer) -> None:
    app.command("frontier")(frontier_cmd)


@cli_errors
def frontier_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="Plans may use at most this many GPUs (any of them).")] = None,
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="Plans use only these GPUs, e.g. 0,1,2,3.")] = None,
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    mode: ModeOpt = "serving",
    max_pp: Annotated[Optional[int], typer.Option("--max-pp", help="Deepest pipeline tried.")] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the frontier picture here (.png, .svg, .pdf).")] = None,
    all_points: Annotated[bool, typer.Option("--all", help="List every point, not only the frontier.")] = False,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time for placing every shape, s.")] = 20.0,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The Pareto frontier: each shape's plan at loads from one sequence per replica to its capacity."""
    from planner.frontier import frontier
    from planner.report.plots import check_plot_path

    if plot:
        check_plot_path(plot)
    work = workload(1, isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction, mode)
    constants, topo, profile = load_inputs(model, topology, work, calibration)
    with solve_progress(enabled=not json_out and sys.stderr.isatty()) as progress:
        result = frontier(profile, topo, work, gpus=gpus, gpu_ids=int_list(gpu_ids, "--gpu-ids"), max_pp=max_pp,
                          constants=constants, time_limit_s=time_limit, progress=progress)
    if plot:
        from planner.report.plots import plot_frontier

        plot_frontier(result, plot)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return
    from planner.report.plans import frontier_table

    console.print(frontier_table(result, all_points))
