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

# Remedies (docs/remedies.md): modelled changes of what a step reads or produces.
SpecTokensOpt = Annotated[int, typer.Option("--spec-tokens", help="Speculative decoding / MTP: draft tokens per "
                                            "verification pass (0: off).", rich_help_panel="Remedies")]
SpecAcceptanceOpt = Annotated[float, typer.Option("--spec-acceptance", help="Probability each draft token is "
                                                  "accepted, in [0, 1).", rich_help_panel="Remedies")]
SpecDraftOpt = Annotated[str, typer.Option("--spec-draft", help="What drafting costs: mtp (a decoder layer and the "
                                           "lm_head per draft token: MTP, EAGLE) or free (n-gram lookup).",
                                           rich_help_panel="Remedies")]
MlpSparsityOpt = Annotated[float, typer.Option("--mlp-sparsity", help="Fraction of a dense MLP's rows a token skips "
                                               "(Deja Vu, CATS).", rich_help_panel="Remedies")]
ActSparsityOpt = Annotated[float, typer.Option("--activation-sparsity", help="Fraction of every decoder matrix's "
                                               "input channels a token skips (TEAL).", rich_help_panel="Remedies")]
AttnSparsityOpt = Annotated[float, typer.Option("--attention-sparsity", help="Fraction of its KV cache a decode "
                                                "token skips (top-k, block-sparse).", rich_help_panel="Remedies")]
WhatIfOpt = Annotated[Optional[str], typer.Option("--what-if", help="The machine with resources scaled, e.g. "
                                                  "hbm=2x,nvlink=2x (hbm, memory, flops, nvlink, pcie, network, "
                                                  "socket, host).", rich_help_panel="Remedies")]

REMEDY_OPTIONS = {"spec_tokens": "--spec-tokens", "spec_acceptance": "--spec-acceptance", "spec_draft": "--spec-draft",
                  "mlp_sparsity": "--mlp-sparsity", "activation_sparsity": "--activation-sparsity",
                  "attention_sparsity": "--attention-sparsity"}


def remedies(spec_tokens: int = 0, spec_acceptance: float = 0.0, spec_draft: str = "mtp", mlp_sparsity: float = 0.0,
             activation_sparsity: float = 0.0, attention_sparsity: float = 0.0) -> dict[str, Any]:
    """The remedy options as Workload fields (checked by `workload`)."""
    if spec_acceptance and not spec_tokens:
        raise InputError("--spec-acceptance: give --spec-tokens too (draft tokens per verification pass)")
    return dict(spec_tokens=spec_tokens, spec_acceptance=spec_acceptance, spec_draft=spec_draft,
                mlp_sparsity=mlp_sparsity, activation_sparsity=activation_sparsity,
                attention_sparsity=attention_sparsity)


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


def workload(concurrency: int, isl: int, osl: int, weight_dtype: str, kv_dtype: str, fraction: float,
             mode: str = "serving", extra: dict[str, Any] | None = None) -> Workload:
    """A checked Workload (with `extra` fields: the remedies): one line naming the option and its range when a
    value is out of it."""
    from pydantic import ValidationError

    from planner.errors import validation_messages
    from planner.plan import Workload

    names = {"concurrency": "--concurrency", "isl": "--isl", "osl": "--osl", "weight_dtype": "--weight-dtype",
             "kv_dtype": "--kv-dtype", "gpu_memory_fraction": "--gpu-memory-fraction", "mode": "--mode",
             **REMEDY_OPTIONS}
    try:
        return Workload(concurrency=concurrency, isl=isl, osl=osl, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                        gpu_memory_fraction=fraction, mode=mode, **(extra or {}))
    except ValidationError as exc:
        msgs = validation_messages(exc)
        field = msgs[0].split(":", 1)[0]
        raise InputError(f"{names.get(field, field)}:{msgs[0].split(':', 1)[1]}", details=msgs[1:]) from None


def load_inputs(model: str, topology: str, work: Workload, calibration: Optional[str],
                what_if: Optional[str] = None) -> tuple[Constants, Topology, ModelProfile]:
    """The constants, topology (scaled by a what-if) and traced model every planning command starts from."""
    from planner.cost.constants import load_constants
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile
    from planner.model.checks import check_workload

    constants = load_constants(calibration)
    topo = what_if_topology(load_topology(topology), what_if)
    profile = load_profile(model)
    check_workload(profile, work)
    return constants, topo, profile


def int_list(text: Optional[str], option: str, *, low: int = 0, high: int = 1 << 20) -> Optional[list[int]]:
    """`0,1,2,3` -> [0, 1, 2, 3] (None stays None); one line naming the option on a bad value."""
    from planner.units import parse_int_list

    return None if text is None else parse_int_list(text, option, low=low, high=high)


def what_if_topology(topo: Topology, what_if: Optional[str]) -> Topology:
    """The machine as `--what-if` scales it (itself without one)."""
    if not what_if:
        return topo
    from planner.hardware.whatif import apply_what_if, parse_what_if

    return apply_what_if(topo, parse_what_if(what_if))
