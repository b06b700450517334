"""`planner models list|show`: the catalog and traced layer graphs."""

from __future__ import annotations

from typing import Annotated

import typer

from planner.cli.common import JsonOpt, cli_errors, console, print_json
from planner.cli.options import Fields, derive
from planner.model.catalog import catalog, load_profile
from planner.model.checks import with_native_dtype
from planner.model.layergraph import summarize
from planner.plan import Workload
from planner.report.tables import catalog_table, model_table

#: A model's bytes depend on the dtypes alone.
DTYPES = Fields(Workload, only=frozenset({"weight_dtype", "kv_dtype"}))

models_app = typer.Typer(help="The model catalog and traced layer graphs.", no_args_is_help=True)


@models_app.command("list")
@cli_errors
def models_list(json_out: JsonOpt = False) -> None:
    """List the shipped model catalog with aliases."""
    entries = list(catalog().values())
    if json_out:
        print_json(
            [{"name": e.name, "hub_id": e.hub_id, "aliases": list(e.aliases), "dtype": e.dtype} for e in entries]
        )
        return

    console.print(catalog_table(entries))


@models_app.command("show")
@cli_errors
@derive(work=DTYPES)
def models_show(
    model: Annotated[str, typer.Argument(help="Catalog name or alias, a config.json path, or a hub id.")],
    all_layers: Annotated[bool, typer.Option("--all-layers", help="One row per layer, not runs.")] = False,
    json_out: JsonOpt = False,
    *,
    work: Workload,
) -> None:
    """Trace a model and show its layer graph: parameters, weight bytes, KV bytes and FLOPs per token."""
    work = with_native_dtype(work, model)
    summary = summarize(load_profile(model), work.weight_dtype, work.kv_dtype)
    if json_out:
        print_json(summary)
        return

    console.print(model_table(summary, all_layers=all_layers))
