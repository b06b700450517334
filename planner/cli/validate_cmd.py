"""`planner validate`: run a plan with torch.distributed and check its predictions (options: `ValidateOptions`,
planner/validate/options.py, derived by planner/cli/options.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from planner.cli.common import JsonOpt, cli_errors, console, print_json
from planner.cli.options import derive
from planner.errors import ValidationRunError
from planner.report.plans import validation_table
from planner.validate.options import ValidateOptions
from planner.validate.runner import validate


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)


@cli_errors
@derive(options=ValidateOptions)
def validate_cmd(
    plan_file: Annotated[str, typer.Argument(help="A plan JSON from `planner solve -o` or `planner estimate -o`.")],
    json_out: JsonOpt = False,
    *,
    options: ValidateOptions,
) -> None:
    """Run a plan with torch.distributed (its stages, GPU groups and shards) and check its predictions."""
    report = validate(plan_file, **options.run_arguments())
    if json_out:
        print_json(report)
    else:
        console.print(validation_table(report))
    if not report.passed:
        failed = [
            f"{c.name}" + (f" (rank {c.rank})" if c.rank is not None else "")
            for c in report.checks
            if c.passed is False
        ]
        raise ValidationRunError(f"{len(failed)} check(s) failed", details=failed[:10])
