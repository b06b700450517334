"""`planner validate`: run a plan with torch.distributed and check its predictions."""

from __future__ import annotations

from typing import Annotated

import typer

from planner.cli.common import JsonOpt, cli_errors, console, print_json
from planner.errors import ValidationRunError
from planner.report.plans import validation_table
from planner.validate.runner import validate


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)


@cli_errors
def validate_cmd(
    plan_file: Annotated[str, typer.Argument(help="A plan JSON from `planner solve -o` or `planner estimate -o`.")],
    backend: Annotated[str, typer.Option("--backend", help="gloo (CPU) or nccl (GPUs).")] = "gloo",
    scale: Annotated[str, typer.Option("--scale", help="mini (small dimensions, CPU) or full (real dimensions, GPUs).")] = "mini",
    tokens: Annotated[int, typer.Option("--tokens", help="Decode steps after the prefill (1 to 256).")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before the run is ended.")] = 120.0,
    json_out: JsonOpt = False,
) -> None:
    """Run a plan with torch.distributed (its stages, GPU groups and shards) and check its predictions."""
    report = validate(plan_file, backend=backend, scale=scale, tokens=tokens, timeout_s=timeout)
    if json_out:
        print_json(report)
    else:
        console.print(validation_table(report))
    if not report.passed:
        failed = [f"{c.name}" + (f" (rank {c.rank})" if c.rank is not None else "") for c in report.checks if c.passed is False]
        raise ValidationRunError(f"{len(failed)} check(s) failed", details=failed[:10])
