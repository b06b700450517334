"""The `planner` command line: parse, call the library, render. No logic lives here.

Errors are caught at this edge only: a PlannerError prints one message (and its bullets) to
stderr and exits with its code (1 bad input, 2 infeasible, 3 validation failed).
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from planner.errors import PlannerError

app = typer.Typer(
    help="Plan how to split an LLM over GPUs for inference: which GPUs, which layers, which parallelism.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="The model catalog and traced layer graphs.", no_args_is_help=True)
app.add_typer(models_app, name="models")

console = Console()
err_console = Console(stderr=True)

WeightDtypeOpt = Annotated[str, typer.Option("--weight-dtype", help="Weight dtype: bf16, fp16, fp8, int4.")]
KvDtypeOpt = Annotated[str, typer.Option("--kv-dtype", help="KV-cache dtype: bf16, fp16, fp8.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only (the same model the table shows).")]


def cli_errors(fn):
    """Turn a PlannerError into one clear message and its exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PlannerError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def print_json(model) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


@models_app.command("list")
@cli_errors
def models_list(json_out: JsonOpt = False) -> None:
    """List the shipped model catalog with aliases."""
    from planner.models import catalog

    entries = list(catalog().values())
    if json_out:
        import json

        sys.stdout.write(json.dumps([{"name": e.name, "hub_id": e.hub_id, "aliases": list(e.aliases)} for e in entries],
                                    indent=2) + "\n")
        return
    from rich.table import Table

    table = Table(title="model catalog")
    table.add_column("name")
    table.add_column("aliases")
    table.add_column("hub id")
    for e in entries:
        table.add_row(e.name, ", ".join(e.aliases), e.hub_id)
    console.print(table)


@models_app.command("show")
@cli_errors
def models_show(
    model: Annotated[str, typer.Argument(help="Catalog name or alias, a config.json path, or a hub id.")],
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    all_layers: Annotated[bool, typer.Option("--all-layers", help="One row per layer, not runs.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Trace a model and show its layer graph: parameters, weight bytes, KV bytes and FLOPs per token."""
    from planner.dtypes import check_kv_dtype, check_weight_dtype
    from planner.layergraph import summarize
    from planner.models import load_profile

    check_weight_dtype(weight_dtype)
    check_kv_dtype(kv_dtype)
    summary = summarize(load_profile(model), weight_dtype, kv_dtype)
    if json_out:
        print_json(summary)
        return
    from planner.report import model_table

    console.print(model_table(summary, all_layers=all_layers))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
