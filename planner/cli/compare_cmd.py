"""`planner compare`: the best plan on each machine at each load, side by side."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from planner.cli.common import (
    ActSparsityOpt,
    AttnSparsityOpt,
    CalibrationOpt,
    IslOpt,
    JsonOpt,
    KvDtypeOpt,
    MemFracOpt,
    MlpSparsityOpt,
    ModelOpt,
    ModeOpt,
    OslOpt,
    SpecAcceptanceOpt,
    SpecDraftOpt,
    SpecTokensOpt,
    WeightDtypeOpt,
    WhatIfOpt,
    cli_errors,
    console,
    print_json,
    remedies,
    say,
    what_if_topology,
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
    offload: Annotated[bool, typer.Option("--offload", help="Let stages stream layers from host-memory tiers where a machine has them.", rich_help_panel="Remedies")] = False,
    spec_tokens: SpecTokensOpt = 0,
    spec_acceptance: SpecAcceptanceOpt = 0.0,
    spec_draft: SpecDraftOpt = "mtp",
    mlp_sparsity: MlpSparsityOpt = 0.0,
    activation_sparsity: ActSparsityOpt = 0.0,
    attention_sparsity: AttnSparsityOpt = 0.0,
    what_if: WhatIfOpt = None,
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
    extra = remedies(spec_tokens, spec_acceptance, spec_draft, mlp_sparsity, activation_sparsity, attention_sparsity)
    work = workload(loads[0], isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction, mode, extra)
    constants = load_constants(calibration)
    topos = [what_if_topology(load_topology(t), what_if) for t in topology]
    result = compare(load_profile(model), topos, work, loads, objective=objective, time_limit_s=time_limit,
                     constants=constants, offload=offload)
    if plot:
        from planner.report.plots import plot_compare

        plot_compare(result, plot, breakdown_at)
        say(f"wrote {plot}")
    if json_out:
        print_json(result)
        return
    from planner.report.plans import compare_table

    console.print(compare_table(result))
