"""What a solve is asked: `SolveOptions`, the one declaration the library and the command line share.

Light on purpose (pydantic only): the CLI derives its options from these fields at start-up.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

MAX_TIME_LIMIT_S = 3600.0
MAX_PP = 64
MAX_SLO_MS = 1e7


class Objective(StrEnum):
    """What a solve minimises (throughput: the negated tokens/s)."""

    LATENCY = "latency"
    THROUGHPUT = "throughput"
    TRAFFIC = "traffic"
    GOODPUT = "goodput"


OBJECTIVES = tuple(o.value for o in Objective)
#: agg: one pool serves prompts and generation; disagg: a prefill pool and a decode pool; auto: both, the better wins.
Serving = Literal["agg", "disagg", "auto"]

_SOLVER: JsonDict = {"panel": "Solver"}


class SolveOptions(BaseModel):
    """How to search: the objective, the GPUs offered, the SLOs and the solver's limits. Each field is a
    command-line option of `planner solve` (planner.cli.options derives them): `--` and the name in kebab case
    unless `flag` says otherwise; fields with `cli: False` are library-only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    objective: Objective = Field(
        Objective.LATENCY,
        description="latency (TPOT at the load), throughput (tokens/s "
        "at the best load under the SLOs), traffic (bytes per token) or goodput (requests/s with the SLOs held at "
        "--slo-percentile, default 90)",
    )
    gpus: Optional[int] = Field(
        None,
        ge=1,
        le=1 << 20,
        description="use N GPUs of the machine; the solver picks which",
        json_schema_extra=_SOLVER,
    )
    gpu_ids: Optional[list[int]] = Field(
        None, min_length=1, description="use these GPUs, e.g. 0,1,2,3", json_schema_extra=_SOLVER
    )
    tpot_slo_ms: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_SLO_MS,
        description="upper bound on TPOT in ms, at the plan's load",
        json_schema_extra={"flag": "--tpot-slo"},
    )
    ttft_slo_ms: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_SLO_MS,
        description="upper bound on TTFT in ms, at the plan's load",
        json_schema_extra={"flag": "--ttft-slo"},
    )
    slo_percentile: Optional[int] = Field(
        None,
        description="make the SLOs bounds on this percentile of TTFT and TPOT: 50, 90 or 99 (aggregated plans; "
        "planner.solve.percentile)",
    )
    max_tp: Optional[int] = Field(
        None, ge=1, le=1024, description="largest tensor-parallel degree to consider", json_schema_extra=_SOLVER
    )
    max_pp: Optional[int] = Field(
        None, ge=1, le=MAX_PP, description="most pipeline stages to consider (default 16)", json_schema_extra=_SOLVER
    )
    max_replicas: Optional[int] = Field(
        None, ge=1, le=1 << 20, description="most replicas to consider", json_schema_extra=_SOLVER
    )
    max_concurrency: Optional[int] = Field(
        None,
        ge=1,
        le=1_000_000,
        description="throughput objective: the largest load the solver may choose",
        json_schema_extra={"cli": False},
    )
    max_prefill_utilisation: float = Field(
        0.9,
        gt=0,
        le=1,
        description="TTFT guard: the largest share of a replica's steps that may carry newcomers' "
        "prompt chunks (the prefill queue's utilisation) at any load the planner chooses; past it TTFT is a queue "
        "blowing up (planner.cost.prefill_guard)",
        json_schema_extra=_SOLVER,
    )
    any_shape: bool = Field(
        False, description="also offer shapes no engine runs (stages of different layouts)", json_schema_extra=_SOLVER
    )
    offload: bool = Field(
        False,
        description="let stages stream decoder layers from their nodes' host-memory tiers (topology host_memory)",
        json_schema_extra={"panel": "Remedies"},
    )
    time_limit_s: float = Field(
        30.0,
        gt=0,
        le=MAX_TIME_LIMIT_S,
        description="solver time limit in seconds",
        json_schema_extra={"flag": "--time-limit", **_SOLVER},
    )
    top: int = Field(3, ge=0, le=100, description="runners-up of other shapes to show", json_schema_extra=_SOLVER)
    serving: Optional[Serving] = Field(
        None,
        description="agg (one pool serves prompts and generation), disagg (a prefill pool and a decode pool, "
        "each layout and instance count chosen for tokens/s under the SLOs) or auto (both; the better wins). Default "
        "auto when an SLO is given on a multi-GPU machine, else agg (planner.solve.serving)",
        json_schema_extra={"derived": True, **_SOLVER},
    )
    workers: int = Field(
        1, ge=1, le=64, description="CP-SAT search workers (1: deterministic)", json_schema_extra={"cli": False}
    )

    @field_validator("slo_percentile")
    @classmethod
    def _known_percentile(cls, v: Optional[int]) -> Optional[int]:
        return known_percentile(v)


def known_percentile(v: Optional[int]) -> Optional[int]:
    """A percentile the predictions give (planner.traffic.queueing.PERCENTILES), or None."""
    if v is not None and v not in (50, 90, 99):
        raise ValueError(f"{v} is not a percentile the predictions give (50, 90, 99)")
    return v
