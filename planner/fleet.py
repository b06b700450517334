"""A heterogeneous fleet's throughput answer: one best replica shape per node type, summed (planner.solve.cluster).

Types only (pydantic): `Plan.fleet` holds it, beside the plan of the type that contributes most.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class FleetPart(BaseModel):
    """One node type's share: its own best plan (as `planner solve --gpu-ids` on its GPUs gives it)."""

    node_type: str = Field(description="the node entry of the topology")
    gpu_type: str
    gpus: int
    shape: str = Field(description="the replica shape, e.g. TP8 x PP1 x R4")
    concurrency: int
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    status: str = Field(description="OPTIMAL or FEASIBLE")
    gap: Optional[float] = None


class Fleet(BaseModel):
    """The sum over node types. Exact over plans whose replicas each stay on one node type; a replica whose stages
    span types is not searched (it could help only to balance stages across types; where a type cannot hold a
    replica alone the solver searches the whole machine instead and gives no fleet)."""

    parts: list[FleetPart]
    tokens_per_s: float
    concurrency: int
    status: str = Field(description="OPTIMAL where every part is; else FEASIBLE")
    gap: Optional[float] = Field(None, description="relative gap of the sum: (sum of bounds - sum) / sum")
