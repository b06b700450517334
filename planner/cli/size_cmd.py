"""`planner size`: per GPU type, the fewest GPUs whose replicas hold the SLOs at a request rate, and the cost."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from planner.cli.common import CalibrationOpt, JsonOpt, ModelOpt, cli_errors, console, print_json, say
from planner.cli.options import Fields, derive
from planner.cost.constants import load_constants
from planner.errors import InfeasibleError
from planner.model.catalog import load_profile
from planner.model.checks import check_workload, with_native_dtype
from planner.plan import Workload
from planner.report.plots import check_plot_path
from planner.traffic.plots import plot_size
from planner.traffic.sizing import SizeOptions, load_prices, size
from planner.traffic.tables import size_table

#: size's workload: the traffic, lengths and dtypes (concurrency and mode follow from the rate).
SIZE_WORKLOAD = Fields(
    Workload, exclude=frozenset({"concurrency", "mode", "num_prompts"}), panels_excluded=frozenset({"Remedies"})
)


def register(app: typer.Typer) -> None:
    app.command("size")(size_cmd)


@cli_errors
@derive(work=SIZE_WORKLOAD, options=SizeOptions)
def size_cmd(
    model: ModelOpt,
    calibration: CalibrationOpt = None,
    plot: Annotated[
        Optional[str],
        typer.Option("--plot", help="Write a picture: cost against request rate per GPU type (.png, .svg, .pdf)."),
    ] = None,
    json_out: JsonOpt = False,
    *,
    work: Workload,
    options: SizeOptions,
) -> None:
    """How many GPUs of each type, in which replicas, hold the SLOs at this request rate, and what they cost."""
    if plot:
        check_plot_path(plot)
    constants = load_constants(calibration)
    profile = load_profile(model)
    work = with_native_dtype(work, model)
    check_workload(profile, work)
    result = size(profile, work, options, constants=constants, prices=load_prices(options.prices))
    if plot:
        say(f"wrote {plot_size(result, plot)}")
    if json_out:
        print_json(result)
    else:
        console.print(size_table(result))
    if not any(row.fits for row in result.rows):
        raise InfeasibleError(
            f"no GPU type of {options.gpu} holds the SLOs at {work.request_rate:g} requests/s",
            details=[f"{row.gpu}: {row.reason}" for row in result.rows],
        )
