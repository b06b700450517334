"""`planner remedies`: the memory wall's remedies as what-ifs, each re-solved, against the baseline."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt, IslOpt, JsonOpt, KvDtypeOpt, MemFracOpt, ModelOpt, ModeOpt, OslOpt, TopologyOpt, WeightDtypeOpt,
    cli_errors, console, load_inputs, print_json, say, workload)
from planner.cli.progress import count_progress


def register(app: typer.Typer) -> None:
    app.command("remedies")(remedies_cmd)


@cli_errors
def remedies_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="Plans may use this many GPUs of the machine.")] = None,
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Loads, comma separated.")] = "1,32",
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    mode: ModeOpt = "serving",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the TPOT breakdown per remedy and load here (.png, .svg, .pdf).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit per remedy and load, s.")] = 5.0,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What each remedy of the memory wall buys on this machine: quantisation, speculative decoding, sparsity,
    host-memory tiers, faster hardware; each re-solved and ranked by TPOT at each load."""
    from planner.compare import parse_concurrencies
    from planner.remedies import RemedyRequest, remedies
    from planner.report.plots import check_plot_path

    loads = parse_concurrencies(concurrency)
    if plot:
        check_plot_path(plot)
    work = workload(loads[0], isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction, mode)
    constants, topo, profile = load_inputs(model, topology, work, calibration)
    req = RemedyRequest(profile, topo, work, loads, gpus, constants, time_limit)
    with count_progress(not json_out and sys.stderr.isatty(), "remedies") as progress:
        result = remedies(req, progress)
    if plot:
        from planner.report.plots import plot_remedies

        plot_remedies(result, plot)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return
    from planner.report.plans import remedies_table

    for t in remedies_table(result):
        console.print(t)
