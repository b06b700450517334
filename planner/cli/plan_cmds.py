"""`planner estimate` (a partition you choose) and `planner solve` (the best one)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from planner.cli.common import (
    CalibrationOpt,
    JsonOpt,
    ModelOpt,
    OutputOpt,
    TopologyOpt,
    WhatIfOpt,
    cli_errors,
    console,
    int_list,
    load_inputs,
    print_json,
    refuse_rate,
    say,
    write_file,
)
from planner.cli.launch_cmd import emit_scripts
from planner.cli.options import Fields, derive
from planner.cli.progress import solve_progress
from planner.cost import estimate, infeasible_error
from planner.cost.estimate import prefix_tier_verdict
from planner.cost.prefill_guard import DEFAULT_MAX_PREFILL_UTILISATION, plan_prefill_utilisation, ttft_warning
from planner.disagg.report import serving_report
from planner.errors import InfeasibleError, InputError
from planner.model.checks import fp8_warning
from planner.plan import (
    EstimateReport,
    Partition,
    Plan,
    Prediction,
    SolverInfo,
    Workload,
    build_plan,
    make_partition,
)
from planner.remedies import REMEDIES_OPTIONS, RemedyRequest, within_reach
from planner.report.plans import plan_report, prediction_report, usability_line
from planner.solve.options import Objective, SolveOptions
from planner.solve.serving import solve_serving
from planner.traffic.steady import open_loop
from planner.traffic.tables import traffic_table

if TYPE_CHECKING:
    from planner.cost.constants import Constants
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile

#: solve's --concurrency: absent, the load is 1, or with --objective throughput the solver's choice.
SOLVE_WORKLOAD = Fields(
    Workload,
    defaults={"concurrency": None},
    help={
        "concurrency": "The load: sequences decoding together (all replicas). Default 1; with --objective throughput "
        "the solver chooses the load, up to this many."
    },
)
SOLVE_OPTIONS = Fields(SolveOptions, defaults={"time_limit_s": 60.0, "objective": None})  # None: --serving can tell


def register(app: typer.Typer) -> None:
    app.command("estimate")(estimate_cmd)
    app.command("solve")(solve_cmd)


@cli_errors
@derive(work=Workload)
def estimate_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel degree of every stage.")],
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages.")] = 1,
    dp: Annotated[int, typer.Option("--dp", help="Attention data-parallel ranks per stage (MoE models).")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="Expert-parallel degree: 1, or tp x dp (MoE models).")] = 1,
    layers: Annotated[
        Optional[str], typer.Option("--layers", help="Layers per stage, e.g. 20,20,20,20; default even.")
    ] = None,
    gpu_ids: Annotated[
        Optional[str], typer.Option("--gpu-ids", help="GPUs in stage order; default the first ones.")
    ] = None,
    replicas: Annotated[int, typer.Option("--replicas", help="Data-parallel copies on the following GPUs.")] = 1,
    calibration: CalibrationOpt = None,
    output: OutputOpt = None,
    json_out: JsonOpt = False,
    offload_layers: Annotated[
        Optional[str],
        typer.Option(
            "--offload-layers",
            help="Decoder layers whose weights stream from host memory, e.g. 70,71,72.",
            rich_help_panel="Remedies",
        ),
    ] = None,
    what_if: WhatIfOpt = None,
    *,
    work: Workload,
) -> None:
    """Predict time, traffic and memory of a partition you choose (TP, DP, EP, PP, layers, GPUs) at one load."""
    constants, topo, profile, work = load_inputs(model, topology, work, calibration=calibration, what_if=what_if)
    partition = make_partition(
        profile,
        topo,
        tp=tp,
        pp=pp,
        layers=int_list(layers, "--layers", low=1),
        gpu_ids=int_list(gpu_ids, "--gpu-ids"),
        replicas=replicas,
        dp=dp,
        ep=ep,
        offload_layers=int_list(offload_layers, "--offload-layers"),
    )
    prediction = _predict(profile, topo, partition, work=work, constants=constants)
    plan = build_plan(profile, topo, partition, workload=work, prediction=prediction, solver=SolverInfo(status="GIVEN"))
    if prediction.traffic is None:
        warn_unusable(plan)
    elif not prediction.traffic.stable:
        say(f"unstable: {prediction.traffic.problem}")
    if verdict := prefix_tier_verdict(prediction, work):
        say(verdict)
    _show_estimate(
        plan, work, title=f"{profile.name} on {topo.name}: {partition.shape}", output=output, json_out=json_out
    )


def _show_estimate(plan: Plan, work: Workload, *, title: str, output: Optional[str], json_out: bool) -> None:
    """The plan written where -o says, then printed: as JSON, or the prediction's report and its traffic table."""
    if output:
        write_file(output, plan.model_dump_json(indent=2) + "\n", "the plan")
        say(f"wrote {output}")
    if json_out:
        print_json(EstimateReport.of(plan))
        return

    console.print(prediction_report(plan.prediction, title, work))
    if plan.prediction.traffic is not None:
        console.print(traffic_table(plan.prediction.traffic))


def _predict(
    profile: ModelProfile, topo: Topology, partition: Partition, *, work: Workload, constants: Constants
) -> Prediction:
    """The partition's prediction at the load (with --request-rate: at that open-loop rate); a partition that does
    not fit is an error naming why."""
    if work.request_rate is not None:
        prediction = open_loop(profile, topo, partition, work, constants)
    else:
        prediction = estimate(profile, topo, partition, workload=work, c=constants)
    if not prediction.fits:
        raise infeasible_error(profile, topo, partition, workload=work, prediction=prediction, c=constants)
    return prediction


@cli_errors
@derive(work=SOLVE_WORKLOAD, options=SOLVE_OPTIONS)
def solve_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    calibration: CalibrationOpt = None,
    output: Annotated[
        Optional[str],
        typer.Option(
            "-o", "--output", help="Write the Plan JSON here (with --emit: a folder for the plan and the scripts)."
        ),
    ] = None,
    emit: Annotated[
        Optional[str], typer.Option("--emit", help="Also write launch scripts for this engine (needs -o).")
    ] = None,
    json_out: JsonOpt = False,
    what_if: WhatIfOpt = None,
    *,
    work: Workload,
    options: SolveOptions,
) -> None:
    """Find the best split of a model over a machine with CP-SAT: stages, GPUs, layouts, replicas and the load."""
    if emit and not output:
        raise InputError("--emit writes the plan and its scripts into a folder: give -o FOLDER")
    refuse_rate(work, command="solve", searches="searches at a load (--concurrency)")
    constants, topo, profile, work = load_inputs(model, topology, work, calibration=calibration, what_if=what_if)
    given = "concurrency" in work.model_fields_set
    if options.objective == Objective.THROUGHPUT and given:
        options = options.model_copy(update={"max_concurrency": work.concurrency})
    try:
        with solve_progress(enabled=not json_out and sys.stderr.isatty()) as progress:
            plan = solve_serving(profile, topo, work, options=options, constants=constants, progress=progress)
    except InfeasibleError as exc:
        raise _with_reach(exc, profile, topo, work=work, options=options, constants=constants) from None
    warn_unusable(plan, options.max_prefill_utilisation)
    _write_solve_outputs(plan, output, emit)
    if json_out:
        print_json(plan)
        return

    console.print(plan_report(plan))
    if plan.serving is not None:
        console.print(serving_report(plan.serving, plan.pools))


def _with_reach(
    exc: Exception,
    profile: ModelProfile,
    topo: Topology,
    *,
    work: Workload,
    options: SolveOptions,
    constants: Constants,
) -> Exception:
    """An SLO infeasibility with the best achievable figures and the first remedy that meets the SLOs."""
    if not isinstance(exc, InfeasibleError) or " meets " not in exc.message:
        return exc
    req = RemedyRequest(
        profile=profile,
        topo=topo,
        workload=work,
        concurrencies=[work.concurrency],
        options=REMEDIES_OPTIONS.model_copy(
            update={
                "tpot_slo_ms": options.tpot_slo_ms,
                "ttft_slo_ms": options.ttft_slo_ms,
                "objective": options.objective,
            }
        ),
        constants=constants,
    )
    extra = within_reach(req)
    details = [d for d in exc.details if not d.startswith("raise the SLOs")] if extra else exc.details
    return InfeasibleError(exc.message, details=details + extra)


def warn_unusable(plan: Plan, max_utilisation: float | None = None) -> None:
    """Warning lines on stderr: a TTFT that is a prefill queue blowing up (planner.cost.prefill_guard), a plan past
    the usability bound (planner.report.plans.usability_line), fp8 weights without fp8 tensor cores."""
    bound = DEFAULT_MAX_PREFILL_UTILISATION if max_utilisation is None else max_utilisation
    fp8 = fp8_warning((s.gpu_type for s in plan.prediction.stages), plan.inputs.workload.weight_dtype)
    lines = [
        ttft_warning(plan_prefill_utilisation(plan), bound),
        usability_line(plan.prediction, plan.inputs.workload.osl),
        fp8,
    ]
    for line in filter(None, lines):
        say(f"warning: {line}")


def _write_solve_outputs(plan: Plan, output: Optional[str], emit: Optional[str]) -> None:
    from pathlib import Path

    if not output:
        return
    plan_path = str(Path(output) / "plan.json") if emit else output
    if emit:
        try:
            Path(output).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{output}: cannot make the folder ({exc.strerror or exc})") from None
    write_file(plan_path, plan.model_dump_json(indent=2) + "\n", "the plan")
    say(f"wrote {plan_path}")
    if emit:
        emit_scripts(plan, emit, output, plan_path=plan_path)
