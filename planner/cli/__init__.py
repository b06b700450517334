"""The `planner` command line: parse, call the library, render. No logic lives here.

Errors are caught at this edge only: a PlannerError prints one message (and its bullets) to stderr
and exits with its code (1 bad input, 2 infeasible, 3 validation failed); with `planner --debug ...` or
PLANNER_DEBUG=1 the full traceback comes first. A command line that does
not parse (an unknown option, a missing value, a value of the wrong type) is bad input: exit 1.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from planner import __version__
from planner.cli import (
    bench_cmd,
    compare_cmd,
    disagg_cmd,
    frontier_cmd,
    launch_cmd,
    plan_cmds,
    remedies_cmd,
    size_cmd,
    validate_cmd,
)
from planner.cli.models_cmd import models_app
from planner.cli.topology_cmd import topology_app

app = typer.Typer(
    help="Plan how to split an LLM over GPUs for inference: which GPUs, which layers, which parallelism.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"planner {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback behind an error message (as PLANNER_DEBUG=1 does).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the planner's version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    if debug:
        os.environ["PLANNER_DEBUG"] = "1"


app.add_typer(models_app, name="models")
app.add_typer(topology_app, name="topology")
for module in (
    plan_cmds,
    disagg_cmd,
    compare_cmd,
    frontier_cmd,
    remedies_cmd,
    launch_cmd,
    validate_cmd,
    bench_cmd,
    size_cmd,
):
    module.register(app)


def _usage_error_types() -> tuple[type[Exception], ...]:
    """The command-line parser's usage-error classes (typer vendors click; older typers use click)."""
    out: list[type[Exception]] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = __import__(name, fromlist=["ClickException"])
            out.append(module.ClickException)
        except ImportError:
            pass
    return tuple(out)


def run(argv: list[str] | None = None) -> int:
    """Run the app on `argv` (default sys.argv[1:]) and return its exit code; parse errors exit 1."""
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="planner", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        sys.stderr.write("Aborted.\n")
        return 1
    except _usage_error_types() as exc:  # usage errors: unknown option, bad value, missing argument
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]  # click's ClickException.show
        return 1
    except (BrokenPipeError, KeyboardInterrupt):
        return 1


def main() -> None:
    """The console script: run the app without the cyclic garbage collector, then end the process
    without the interpreter's teardown.

    With torch and transformers loaded, Python's shutdown (clearing every module, then libtorch's
    static destructors) takes about 1 s on 2 cores, a fifth of a cold `models show`. By the time
    the app returns, everything it wrote is closed (cache files are written whole, then renamed),
    so: run the atexit handlers (logging, coverage), flush stdout and stderr, and exit at once.
    """
    # Importing torch and transformers creates ~600k long-lived objects, and the cyclic collector
    # rescans them again and again: 0.5-0.7 s of a cold `models show` on 2 cores. A run is short and
    # reference counting frees what it drops, so the collector stays off in the console script.
    import atexit
    import gc

    gc.disable()
    code = run()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # reader went away (`| head`), or stream closed
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
