"""The artefacts: Workload, Partition (stages x GPUs x layers), Prediction and the versioned Plan.

A Plan is the single file later commands read (launch, validate, compare). `estimate` writes one
with `solver.status = GIVEN`; `solve` writes one with OPTIMAL or FEASIBLE.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from planner.dtypes import dtype_problem
from planner.errors import PartitionError

PLAN_VERSION = 1


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    concurrency: int = Field(1, ge=1, description="sequences decoding together, over all replicas")
    isl: int = Field(1024, ge=1, description="input (prompt) tokens per sequence")
    osl: int = Field(256, ge=1, description="output tokens per sequence")
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    gpu_memory_fraction: float = Field(0.9, gt=0, le=1, description="share of GPU memory the engine may use")

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtype(cls, v, info):
        if problem := dtype_problem("weight" if info.field_name == "weight_dtype" else "KV", v):
            raise ValueError(problem)
        return v

    @property
    def mean_context(self) -> float:
        """Mean context over the decode: it grows from isl to isl + osl."""
        return self.isl + self.osl / 2


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer_start: int = Field(ge=0, description="first decoder layer")
    layer_end: int = Field(description="one past the last decoder layer")
    gpu_ids: list[int]
    tp: int = Field(ge=1)

    @property
    def n_layers(self) -> int:
        return self.layer_end - self.layer_start


class Partition(BaseModel):
    """Pipeline stages of one replica, and the GPUs of every replica (replica 0 = `stages`)."""

    model_config = ConfigDict(extra="forbid")
    stages: list[Stage] = Field(min_length=1)
    replicas: int = Field(1, ge=1)
    replica_gpu_ids: list[list[list[int]]] = Field(
        default_factory=list, description="per replica, per stage, its GPU ids; empty for one replica")

    @property
    def pp(self) -> int:
        return len(self.stages)

    @property
    def shape(self) -> str:
        tps = sorted({s.tp for s in self.stages})
        tp = "/".join(str(t) for t in tps)
        return f"TP{tp} x PP{self.pp} x R{self.replicas}"

    def all_gpu_ids(self) -> list[int]:
        if self.replica_gpu_ids:
            return [g for rep in self.replica_gpu_ids for st in rep for g in st]
        return [g for s in self.stages for g in s.gpu_ids]

    def layer_counts(self) -> list[int]:
        return [s.n_layers for s in self.stages]


def tp_problems(profile, tp: int) -> list[str]:
    """Why `tp` cannot split this model, with the arithmetic; empty when it can."""
    problems = []
    for what, size in profile.tp_divisors().items():
        if size % tp:
            problems.append(f"tp({tp}) must divide {what}({size})")
    kv = profile.n_kv_heads
    if profile.attention == "gqa":
        if tp <= kv and kv % tp:
            problems.append(f"tp({tp}) must divide KV heads({kv}) when tp <= KV heads")
        if tp > kv and tp % kv:
            problems.append(f"tp({tp}) must be a multiple of KV heads({kv}) when tp > KV heads (each rank holds a replica)")
    return problems


def validate_partition(partition: Partition, profile, topo) -> None:
    """Raise PartitionError naming the broken rule and its arithmetic."""
    n = profile.n_layers
    expected = 0
    for k, st in enumerate(partition.stages):
        if st.layer_start != expected:
            raise PartitionError(f"stage {k} starts at layer {st.layer_start}, expected {expected}: stages must "
                                 f"cover layers 0..{n - 1} in order, each exactly once")
        if st.layer_end <= st.layer_start:
            raise PartitionError(f"stage {k} has no layers ({st.layer_start}..{st.layer_end})")
        expected = st.layer_end
        problems = tp_problems(profile, st.tp)
        if problems:
            raise PartitionError(f"stage {k}: {'; '.join(problems)}")
        if len(st.gpu_ids) != st.tp:
            raise PartitionError(f"stage {k} has {len(st.gpu_ids)} GPUs for tp {st.tp}: they must be equal")
    if expected != n:
        raise PartitionError(f"stages cover layers 0..{expected - 1}, but {profile.name} has {n} layers")
    ids = partition.all_gpu_ids()
    for g in ids:
        topo.gpu(g)
    if len(set(ids)) != len(ids):
        dup = sorted({g for g in ids if ids.count(g) > 1})
        raise PartitionError(f"GPU ids {dup} are used twice: each GPU serves one stage of one replica")
    if partition.replicas > 1:
        if len(partition.replica_gpu_ids) != partition.replicas:
            raise PartitionError(f"{partition.replicas} replicas need replica_gpu_ids for each replica")
        for r, rep in enumerate(partition.replica_gpu_ids):
            if [len(x) for x in rep] != [s.tp for s in partition.stages]:
                raise PartitionError(f"replica {r}: its stages must have the GPU counts {[s.tp for s in partition.stages]}")


class StagePrediction(BaseModel):
    index: int
    layer_start: int
    layer_end: int
    gpu_ids: list[int]
    tp: int
    gpu_type: str
    has_embedding: bool
    has_lm_head: bool
    weight_bytes_per_gpu: float
    kv_bytes_per_sequence_per_gpu: float
    hbm_bytes_per_gpu_per_step: float
    step_time_ms: float
    weights_ms: float
    kv_ms: float
    compute_ms: float
    interconnect_ms: float
    overhead_ms: float
    transfer_out_ms: float
    max_concurrency: int


class Prediction(BaseModel):
    tpot_ms: float
    ttft_ms: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    max_concurrency: int
    fits: bool
    memory_per_gpu_bytes: dict[int, float]
    memory_capacity_bytes: dict[int, float]
    shortfall_per_gpu_bytes: dict[int, float] = Field(default_factory=dict)
    memory_breakdown: dict[int, dict[str, float]] = Field(default_factory=dict)
    hbm_bytes_per_token: float
    hbm_weight_bytes_per_token: float
    hbm_kv_bytes_per_token: float
    interconnect_bytes_per_token: float
    interconnect_bytes_by_class: dict[str, float]
    critical_path_bytes_per_token: float = Field(
        0.0, description="HBM plus interconnect bytes of one GPU per stage (the path a token takes), per token")
    time_breakdown_ms: dict[str, float]
    roofline_tpot_ms: float
    roofline_ratio: float
    stages: list[StagePrediction]


class SolverInfo(BaseModel):
    status: Literal["GIVEN", "OPTIMAL", "FEASIBLE"]
    objective: Optional[str] = None
    objective_value: Optional[float] = None
    best_bound: Optional[float] = None
    gap: Optional[float] = None
    wall_time_s: Optional[float] = None
    resolution: Optional[str] = None


class Alternative(BaseModel):
    shape: str
    partition: Partition
    prediction: Prediction


class PlanInputs(BaseModel):
    model: str
    model_source: str
    config_hash: str
    topology: str
    topology_source: str
    topology_hash: str
    workload: Workload
    objective: str = "latency"
    tpot_slo_ms: Optional[float] = None


class Plan(BaseModel):
    plan_version: int = PLAN_VERSION
    inputs: PlanInputs
    stages: list[Stage]
    replicas: int = 1
    replica_gpu_ids: list[list[list[int]]] = Field(default_factory=list)
    prediction: Prediction
    solver: SolverInfo
    alternatives: list[Alternative] = Field(default_factory=list)

    @property
    def partition(self) -> Partition:
        return Partition(stages=self.stages, replicas=self.replicas, replica_gpu_ids=self.replica_gpu_ids)


def even_layers(n_layers: int, pp: int) -> list[int]:
    """Layer counts of an even split, the remainder on the first stages."""
    if pp < 1 or pp > n_layers:
        raise PartitionError(f"pp({pp}) must be between 1 and the layer count ({n_layers})")
    base, extra = divmod(n_layers, pp)
    return [base + (1 if k < extra else 0) for k in range(pp)]


def partition_from_counts(counts: list[int], gpu_ids: list[int], tp: int, replicas: int = 1) -> Partition:
    """Stages of `counts` layers, each on the next `tp` GPUs of `gpu_ids`; replicas take the following GPUs."""
    per_replica = tp * len(counts)
    if len(gpu_ids) < per_replica * replicas:
        raise PartitionError(f"{replicas} replica(s) of tp({tp}) x pp({len(counts)}) need {per_replica * replicas} "
                             f"GPUs, {len(gpu_ids)} given")
    reps = []
    for r in range(replicas):
        base = r * per_replica
        reps.append([gpu_ids[base + k * tp: base + (k + 1) * tp] for k in range(len(counts))])
    stages, start = [], 0
    for k, n in enumerate(counts):
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=reps[0][k], tp=tp))
        start += n
    return Partition(stages=stages, replicas=replicas, replica_gpu_ids=reps if replicas > 1 else [])


def build_plan(profile, topo, partition: Partition, workload: Workload, prediction: Prediction, solver: SolverInfo,
               objective: str = "latency", tpot_slo_ms: float | None = None,
               alternatives: list[Alternative] | None = None) -> Plan:
    inputs = PlanInputs(model=profile.name, model_source=profile.source, config_hash=profile.config_hash,
                        topology=topo.name, topology_source=topo.source, topology_hash=topo.hash, workload=workload,
                        objective=objective, tpot_slo_ms=tpot_slo_ms)
    return Plan(inputs=inputs, stages=partition.stages, replicas=partition.replicas,
                replica_gpu_ids=partition.replica_gpu_ids, prediction=prediction, solver=solver,
                alternatives=alternatives or [])
