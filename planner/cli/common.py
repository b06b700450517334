"""What every command shares: consoles, the error edge, JSON output, option types and input loading."""

from __future__ import annotations

import functools
import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from planner.errors import InputError, PlannerError
from planner.files import write_file  # noqa: F401  (commands import it from here)

if TYPE_CHECKING:  # imported lazily at run time: start-up stays short
    from planner.cost.constants import Constants
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Workload

console = Console(soft_wrap=False)
err_console = Console(stderr=True)

WeightDtypeOpt = Annotated[str, typer.Option("--weight-dtype", help="Weight dtype: bf16, fp16, fp8, int4, mxfp4.")]
KvDtypeOpt = Annotated[str, typer.Option("--kv-dtype", help="KV-cache dtype: bf16, fp16, fp8.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (the same model the table shows).")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Catalog name or alias, config.json path, or hub id.")]
TopologyOpt = Annotated[str, typer.Option("--topology", "-t", help="Topology YAML path or shipped name.")]
IslOpt = Annotated[int, typer.Option("--isl", help="Input (prompt) tokens per sequence.")]
OslOpt = Annotated[int, typer.Option("--osl", help="Output tokens per sequence.")]
MemFracOpt = Annotated[float, typer.Option("--gpu-memory-fraction", help="Share of GPU memory the engine may use.")]
CalibrationOpt = Annotated[Optional[str], typer.Option("--calibration", help="YAML overriding cost-model constants.")]
ModeOpt = Annotated[str, typer.Option("--mode", help="serving (steady state with arrivals, the engines' default), "
                                      "static (one batch decoding alone, as microbenchmarks run) or closed (a "
                                      "closed-loop benchmark's waves of identical requests).")]


def cli_errors(fn: Callable) -> Callable:
    """Turn a PlannerError into one clear message and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(model: Any) -> None:
    """A pydantic model (or plain data) as JSON on stdout, and nothing else."""
    if hasattr(model, "model_dump_json"):
        sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(json.dumps(model, indent=2) + "\n")


def say(text: str) -> None:
    """A note for a person (`wrote ...`): stderr, so that stdout stays clean for --json and pipes."""
    err_console.print(text, highlight=False, soft_wrap=True)


def workload(concurrency: int, isl: int, osl: int, weight_dtype: str, kv_dtype: str, fraction: float,
             mode: str = "serving") -> Workload:
    """A checked Workload: one line naming the option and its range when a value is out of it."""
    from pydantic import ValidationError

    from planner.errors import validation_messages
    from planner.plan import Workload

    names = {"concurrency": "--concurrency", "isl": "--isl", "osl": "--osl", "weight_dtype": "--weight-dtype",
             "kv_dtype": "--kv-dtype", "gpu_memory_fraction": "--gpu-memory-fraction", "mode": "--mode"}
    try:
        return Workload(concurrency=concurrency, isl=isl, osl=osl, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                        gpu_memory_fraction=fraction, mode=mode)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        field = msgs[0].split(":", 1)[0]
        raise InputError(f"{names.get(field, field)}:{msgs[0].split(':', 1)[1]}", details=msgs[1:]) from None


def load_inputs(model: str, topology: str, work: Workload,
                calibration: Optional[str]) -> tuple[Constants, Topology, ModelProfile]:
    """The constants, topology and traced model every planning command starts from."""
    from planner.cost.constants import load_constants
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile

    constants = load_constants(calibration)
    topo = load_topology(topology)
    profile = load_profile(model)
    from planner.model.checks import check_workload

    check_workload(profile, work)
    return constants, topo, profile


def int_list(text: Optional[str], option: str, *, low: int = 0, high: int = 1 << 20) -> Optional[list[int]]:
    """`0,1,2,3` -> [0, 1, 2, 3] (None stays None); one line naming the option on a bad value."""
    from planner.units import parse_int_list

    return None if text is None else parse_int_list(text, option, low=low, high=high)
