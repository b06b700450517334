"""What every command shares: consoles, the error edge, JSON output, option types and input loading."""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from planner.cost.constants import load_constants
from planner.errors import InputError, PlannerError
from planner.files import write_file  # noqa: F401  (commands import it from here)
from planner.hardware import load_topology
from planner.hardware.whatif import apply_what_if, parse_what_if
from planner.model.catalog import load_profile
from planner.model.checks import check_workload, with_native_dtype
from planner.units import parse_int_list

if TYPE_CHECKING:  # imported lazily at run time: start-up stays short
    from planner.cost.constants import Constants
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Workload

console = Console(soft_wrap=False)
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (the same model the table shows).")]
OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Write the Plan JSON here.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog name or alias, config.json path, or hub id.")]
TopologyOpt = Annotated[str, typer.Option("--topology", "-t", help="Topology YAML path or shipped name.")]
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="YAML overriding cost-model constants.")]
WhatIfOpt = Annotated[
    Optional[str],
    typer.Option(
        "--what-if",
        help="The machine with resources scaled, e.g. "
        "hbm=2x,nvlink=2x (hbm, memory, flops, nvlink, pcie, network, "
        "socket, host).",
        rich_help_panel="Remedies",
    ),
]


def debugging() -> bool:
    """Whether a one-line error also shows its traceback: PLANNER_DEBUG=1 or `planner --debug`."""
    return os.environ.get("PLANNER_DEBUG", "") not in ("", "0")


#: The longest error text printed: a message that quotes a huge input is cut, never an 800 KB line.
MAX_ERROR_CHARS = 2000


def bounded(text: str) -> str:
    """`text`, cut at MAX_ERROR_CHARS with a note of how much was left out."""
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return f"{text[:MAX_ERROR_CHARS]} ... ({len(text) - MAX_ERROR_CHARS:,} more characters)"


def cli_errors(fn: Callable) -> Callable:
    """Turn a PlannerError into one clear message and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            if debugging():
                err_console.print_exception()
            err_console.print(f"[bold red]error:[/] {bounded(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(model: Any) -> None:
    """A pydantic model (or plain data) as JSON on stdout, and nothing else."""
    if hasattr(model, "model_dump_json"):  # pydantic writes NaN and infinities as null
        sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(json.dumps(_finite(model), indent=2, allow_nan=False) + "\n")


def _finite(data: Any) -> Any:
    """`data` with NaN and infinities as None: JSON has no such numbers (`NaN` is not JSON)."""
    if isinstance(data, float):
        return data if data == data and abs(data) != float("inf") else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def say(text: str) -> None:
    """A note for a person (`wrote ...`): stderr, so that stdout stays clean for --json and pipes."""
    err_console.print(text, highlight=False, soft_wrap=True)


def refuse_rate(work: Workload, *, command: str, searches: str) -> None:
    """A command that prices loads, not rates, says so instead of ignoring `--request-rate` or `--arrivals`."""
    if work.request_rate is None:
        return
    flag = "--arrivals" if work.arrival_trace else "--request-rate"
    raise InputError(
        f"{flag}: {command} {searches}; price a plan at a rate with planner estimate {flag}, "
        "or size a fleet with planner size"
    )


def load_inputs(
    model: str, topology: str, work: Workload, *, calibration: Optional[str], what_if: Optional[str] = None
) -> tuple[Constants, Topology, ModelProfile, Workload]:
    """The constants, topology (scaled by a what-if), traced model and workload (with the checkpoint's own weight
    dtype unless --weight-dtype was given) every planning command starts from."""
    constants = load_constants(calibration)
    topo = what_if_topology(load_topology(topology), what_if)
    profile = load_profile(model)
    work = with_native_dtype(work, model)
    check_workload(profile, work)
    return constants, topo, profile, work


def int_list(text: Optional[str], option: str, *, low: int = 0, high: int = 1 << 20) -> Optional[list[int]]:
    """`0,1,2,3` -> [0, 1, 2, 3] (None stays None); one line naming the option on a bad value."""
    return None if text is None else parse_int_list(text, option, low=low, high=high)


def what_if_topology(topo: Topology, what_if: Optional[str]) -> Topology:
    """The machine as `--what-if` scales it (itself without one)."""
    if not what_if:
        return topo

    return apply_what_if(topo, parse_what_if(what_if))
