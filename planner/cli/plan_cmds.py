"""`planner estimate` (a partition you choose) and `planner solve` (the best one)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from planner.cli.common import (
    ActSparsityOpt, AttnSparsityOpt, CalibrationOpt, IslOpt, JsonOpt, KvDtypeOpt, MemFracOpt, MlpSparsityOpt, ModelOpt,
    ModeOpt, OslOpt, SpecAcceptanceOpt, SpecDraftOpt, SpecTokensOpt, TopologyOpt, WeightDtypeOpt, WhatIfOpt, cli_errors,
    console, int_list, load_inputs, print_json, remedies, say, workload, write_file)
from planner.cli.progress import solve_progress

OutputOpt = Annotated[Optional[str], typer.Option("-o", "--output", help="Write the Plan JSON here.")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", "-c", help="Sequences decoding together (all replicas): the load.")]


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_cmd)
    app.command("solve")(solve_cmd)


@cli_errors
def estimate_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree of every stage.")],
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages.")] = 1,
    dp: Annotated[int, typer.Option("--dp", help="Attention data-parallel ranks per stage (MoE models).")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="Expert-parallel degree: 1, or tp x dp (MoE models).")] = 1,
    layers: Annotated[Optional[str], typer.Option("--layers", help="Layers per stage, e.g. 20,20,20,20; default even.")] = None,
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="GPUs in stage order; default the first ones.")] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Data-parallel copies on the following GPUs.")] = 1,
    concurrency: ConcurrencyOpt = 1,
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    mode: ModeOpt = "serving",
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    offload_layers: Annotated[Optional[str], typer.Option("--offload-layers", help="Decoder layers whose weights stream from host memory, e.g. 70,71,72.", rich_help_panel="Remedies")] = None,
    spec_tokens: SpecTokensOpt = 0,
    spec_acceptance: SpecAcceptanceOpt = 0.0,
    spec_draft: SpecDraftOpt = "mtp",
    mlp_sparsity: MlpSparsityOpt = 0.0,
    activation_sparsity: ActSparsityOpt = 0.0,
    attention_sparsity: AttnSparsityOpt = 0.0,
    what_if: WhatIfOpt = None,
) -> None:
    """Predict time, traffic and memory of a partition you choose (TP, DP, EP, PP, layers, GPUs) at one load."""
    from planner.cost import estimate, infeasible_error
    from planner.plan import SolverInfo, build_plan, make_partition

    extra = remedies(spec_tokens, spec_acceptance, spec_draft, mlp_sparsity, activation_sparsity, attention_sparsity)
    work = workload(concurrency, isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction, mode, extra)
    constants, topo, profile = load_inputs(model, topology, work, calibration, what_if)
    partition = make_partition(profile, topo, tp=tp, pp=pp, layers=int_list(layers, "--layers", low=1),
                               gpu_ids=int_list(gpu_ids, "--gpu-ids"), replicas=replicas, dp=dp, ep=ep,
                               offload_layers=int_list(offload_layers, "--offload-layers"))
    prediction = estimate(profile, topo, partition, work, constants)
    if not prediction.fits:
        raise infeasible_error(profile, topo, partition, work, prediction, constants)
    plan = build_plan(profile, topo, partition, work, prediction, SolverInfo(status="GIVEN"))
    if output:
        write_file(output, plan.model_dump_json(indent=2) + "\n", "the plan")
        say(f"wrote {output}")
    if json_out:
        keys = ("concurrency", "tpot_ms", "ttft_ms", "tokens_per_s", "tokens_per_s_per_gpu", "tokens_per_s_per_user",
                "max_concurrency", "memory_per_gpu_bytes", "hbm_bytes_per_token", "interconnect_bytes_per_token",
                "roofline_tpot_ms", "fits")
        flat = {k: getattr(prediction, k) for k in keys}
        print_json({**flat, "plan": plan.model_dump(mode="json")})
        return
    from planner.report.plans import prediction_report

    console.print(prediction_report(prediction, f"{profile.name} on {topo.name}: {partition.shape}", work))


@cli_errors
def solve_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", "-c", help="The load: sequences decoding together (all replicas). Default 1; with --objective throughput the solver chooses the load, up to this many.")] = None,
    isl: IslOpt = 1024,
    osl: OslOpt = 256,
    objective: Annotated[str, typer.Option("--objective", help="latency (TPOT at the load), throughput (tokens/s at the best load under the SLOs) or traffic (bytes per token).")] = "latency",
    tpot_slo: Annotated[Optional[float], typer.Option("--tpot-slo", help="Upper bound on TPOT in ms, at the plan's load.")] = None,
    ttft_slo: Annotated[Optional[float], typer.Option("--ttft-slo", help="Upper bound on TTFT in ms, at the plan's load.")] = None,
    weight_dtype: WeightDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = "bf16",
    mode: ModeOpt = "serving",
    gpus: Annotated[Optional[int], typer.Option("--gpus", help="Use N GPUs of the machine; the solver picks which.")] = None,
    gpu_ids: Annotated[Optional[str], typer.Option("--gpu-ids", help="Use these GPUs, e.g. 0,1,2,3.")] = None,
    max_tp: Annotated[Optional[int], typer.Option("--max-tp", help="Largest tensor-parallel degree to consider.")] = None,
    max_pp: Annotated[Optional[int], typer.Option("--max-pp", help="Most pipeline stages to consider (default 16).")] = None,
    max_replicas: Annotated[Optional[int], typer.Option("--max-replicas", help="Most replicas to consider.")] = None,
    any_shape: Annotated[bool, typer.Option("--any-shape", help="Also offer shapes no engine runs (stages of different layouts).")] = False,
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit in seconds.")] = 60.0,
    top: Annotated[int, typer.Option("--top", help="Runners-up of other shapes to show.")] = 3,
    gpu_memory_fraction: MemFracOpt = 0.9,
    calibration: CalibrationOpt = None,
    output: Annotated[Optional[str], typer.Option("-o", "--output", help="Write the Plan JSON here (with --emit: a folder for the plan and the scripts).")] = None,
    emit: Annotated[Optional[str], typer.Option("--emit", help="Also write launch scripts for this engine (needs -o).")] = None,
    json_out: JsonOpt = False,
    offload: Annotated[bool, typer.Option("--offload", help="Let stages stream decoder layers from their nodes' host-memory tiers (topology host_memory).", rich_help_panel="Remedies")] = False,
    spec_tokens: SpecTokensOpt = 0,
    spec_acceptance: SpecAcceptanceOpt = 0.0,
    spec_draft: SpecDraftOpt = "mtp",
    mlp_sparsity: MlpSparsityOpt = 0.0,
    activation_sparsity: ActSparsityOpt = 0.0,
    attention_sparsity: AttnSparsityOpt = 0.0,
    what_if: WhatIfOpt = None,
) -> None:
    """Find the best split of a model over a machine with CP-SAT: stages, GPUs, layouts, replicas and the load."""
    from planner.errors import InputError
    from planner.solve import solve

    if emit and not output:
        raise InputError("--emit writes the plan and its scripts into a folder: give -o FOLDER")
    extra = remedies(spec_tokens, spec_acceptance, spec_draft, mlp_sparsity, activation_sparsity, attention_sparsity)
    work = workload(1 if concurrency is None else concurrency, isl, osl, weight_dtype, kv_dtype, gpu_memory_fraction,
                    mode, extra)
    constants, topo, profile = load_inputs(model, topology, work, calibration, what_if)
    cap = concurrency if objective == "throughput" else None
    with solve_progress(enabled=not json_out and sys.stderr.isatty()) as progress:
        plan = solve(profile, topo, work, objective=objective, gpus=gpus, gpu_ids=int_list(gpu_ids, "--gpu-ids"),
                     tpot_slo_ms=tpot_slo, ttft_slo_ms=ttft_slo, time_limit_s=time_limit, top=top, max_tp=max_tp,
                     max_pp=max_pp, max_replicas=max_replicas, max_concurrency=cap, constants=constants,
                     any_shape=any_shape, offload=offload, progress=progress)
    _write_solve_outputs(plan, output, emit)
    if json_out:
        print_json(plan)
        return
    from planner.report.plans import plan_report

    console.print(plan_report(plan))


def _write_solve_outputs(plan, output: Optional[str], emit: Optional[str]) -> None:
    from pathlib import Path

    if not output:
        return
    plan_path = str(Path(output) / "plan.json") if emit else output
    if emit:
        from planner.errors import InputError

        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{output}: cannot make the folder ({exc.strerror or exc})") from None
    write_file(plan_path, plan.model_dump_json(indent=2) + "\n", "the plan")
    say(f"wrote {plan_path}")
    if emit:
        from planner.cli.launch_cmd import emit_scripts

        emit_scripts(plan, emit, output, plan_path=plan_path)
