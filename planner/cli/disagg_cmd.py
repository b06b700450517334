"""`planner estimate-disagg`: price a disaggregated configuration you choose (prefill and decode pools)."""

from __future__ import annotations

import typer
from pydantic import BaseModel

from planner.cli.common import (
    CalibrationOpt,
    JsonOpt,
    ModelOpt,
    OutputOpt,
    TopologyOpt,
    cli_errors,
    console,
    load_inputs,
    print_json,
    write_file,
)
from planner.cli.options import derive
from planner.disagg.cost import DisaggPrediction, estimate_disagg
from planner.disagg.plan import Pools, PoolsSpec, make_pools
from planner.disagg.report import disagg_table
from planner.plan import SolverInfo, Workload
from planner.solve.options import SolveOptions
from planner.solve.serving import disagg_plan_of, make_ask


class DisaggReport(BaseModel):
    """`planner estimate-disagg --json`: the pools and their prediction."""

    model: str
    topology: str
    workload: Workload
    pools: Pools
    prediction: DisaggPrediction


def register(app: typer.Typer) -> None:
    app.command("estimate-disagg")(estimate_disagg_cmd)


@cli_errors
@derive(work=Workload, spec=PoolsSpec)
def estimate_disagg_cmd(
    model: ModelOpt,
    topology: TopologyOpt,
    calibration: CalibrationOpt = None,
    json_out: JsonOpt = False,
    output: OutputOpt = None,
    *,
    work: Workload,
    spec: PoolsSpec,
) -> None:
    """Predict TTFT, TPOT, throughput and memory of a prefill pool and a decode pool at one load; -o writes the
    Plan JSON (with its `pools`) for `planner launch`."""
    constants, topo, profile, work = load_inputs(model, topology, work, calibration=calibration)
    pools = make_pools(spec, topo.n_gpus)
    prediction = estimate_disagg(profile, topo, pools, work, constants)
    if output:
        ask = make_ask(profile, topo, work, options=SolveOptions(), constants=constants)
        plan = disagg_plan_of(ask, pools, prediction, SolverInfo(status="GIVEN"))
        write_file(output, plan.model_dump_json(indent=2) + "\n", "the plan")
    report = DisaggReport(model=profile.name, topology=topo.name, workload=work, pools=pools, prediction=prediction)
    if json_out:
        print_json(report)
        return
    console.print(disagg_table(report.pools, prediction, f"{profile.name} on {topo.name}: {pools.ratio}"))
