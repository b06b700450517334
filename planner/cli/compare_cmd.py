"""`planner compare`: the best plan on each machine at each load, side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt,
    IslOpt,
    JsonOpt,
    KvDtypeOpt,
    MemFracOpt,
    ModelOpt,
    ModeOpt,
    OslOpt,
    WeightDtypeOpt,
    cli_errors,
    console,
    print_json,
    say,
    workload,
)
from planner.errors import InputError


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


@cli_errors
def compare_cmd(
    model: ModelOpt,
    topology: Annotated[list[str], typer.Option("--topology", "-t", help="A machine; give two or more.")],
    concurrency: Annotated[str, typer.Option("--concurrency", "-c", help="Loads, comma separated.")] = "1,8,32,128",
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    objective: Annotated[str, typer.Option("--objective", help="latency or throughput.")] = "latency",
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    mode: ModeOpt = "serving",
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write the three-panel PNG here.")] = None,
    breakdown_at: Annotated[Optional[int], typer.Option("--breakdown-at", help="Concurrency of the breakdown panel (default the first).")] = None,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit per machine and load, s.")] = 10.0,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Compare machines (NVLink versus PCIe, ...) with the best plan on each, at several loads."""
    from planner.compare import compare, parse_concurrencies
    from planner.cost.constants import load_constants
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile
    from planner.report.plots import check_plot_path

    loads = parse_concurrencies(concurrency)
    if plot:
        check_plot_path(plot)
    if breakdown_at is not None and breakdown_at not in loads:
        raise InputError(f"--breakdown-at {breakdown_at}: choose one of the loads --concurrency gives "
                         f"({', '.join(map(str, loads))})")
    work = workload(loads[0], isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction, mode)
    constants = load_constants(calibration)
    topos = [load_topology(t) for t in topology]
    result = compare(load_profile(model), topos, work, loads, objective=objective, time_limit_s=time_limit,
                     constants=constants)
    if plot:
        from planner.report.plots import plot_compare

        plot_compare(result, plot, breakdown_at)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return
    from planner.report.plans import compare_table

    console.print(compare_table(result))
