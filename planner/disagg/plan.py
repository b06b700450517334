"""The disaggregated plan space: a prefill pool and a decode pool, each `instances` x one layout.

A request's prompt is prefilled on one prefill instance; its KV cache then moves to one decode
instance, which generates the output. The pools may differ in layout (TP, attention DP, EP) and in
GPUs. This module imports nothing of planner.plan at import time (planner.plan refers to `Pools`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator
from pydantic.config import JsonDict

from planner.errors import PartitionError
from planner.units import layout_label

Role = Literal["prefill", "decode"]
#: How the KV moves. nixl and mooncake: GPU-direct RDMA (NVLink inside a node, the NICs across nodes);
#: both start the transfer once the prompt is prefilled unless `transfer_overlap` says layer by layer.
#: shared-storage (vLLM only): vLLM's ExampleConnector, which writes each layer's KV to a file under a path both
#: instances see and the decode instance reads it back, through host memory (one host, or a shared file system).
TransferBackend = Literal["nixl", "mooncake", "shared-storage"]

_POOLS: JsonDict = {"panel": "Pools"}


class Pool(BaseModel):
    """One pool: `instances` engine instances of one layout; `gpu_ids[i]` are instance i's GPUs."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    instances: StrictInt = Field(ge=1)
    tp: StrictInt = Field(1, ge=1)
    dp: StrictInt = Field(1, ge=1)
    ep: StrictInt = Field(1, ge=1)
    gpu_ids: list[list[StrictInt]] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> Pool:
        if len(self.gpu_ids) != self.instances:
            raise ValueError(f"{self.role} pool: {self.instances} instances but {len(self.gpu_ids)} GPU lists")
        for i, ids in enumerate(self.gpu_ids):
            if len(ids) != self.tp * self.dp:
                raise ValueError(f"{self.role} instance {i}: {len(ids)} GPUs for tp({self.tp}) x dp({self.dp})")
        return self

    @property
    def n_gpus(self) -> int:
        return self.instances * self.tp * self.dp

    @property
    def label(self) -> str:
        return f"{self.instances}x {layout_label(self.tp, self.dp, self.ep)}"


class Pools(BaseModel):
    """A disaggregated plan's two pools and how the KV moves between them (Plan JSON `pools`)."""

    model_config = ConfigDict(extra="forbid")
    prefill: Pool
    decode: Pool
    transfer_backend: TransferBackend = "nixl"
    transfer_overlap: bool = False

    @model_validator(mode="after")
    def _disjoint(self) -> Pools:
        if self.prefill.role != "prefill" or self.decode.role != "decode":
            raise ValueError("pools: prefill must have role prefill, decode role decode")
        ids = [g for pool in (self.prefill, self.decode) for inst in pool.gpu_ids for g in inst]
        if len(set(ids)) != len(ids):
            dup = sorted({g for g in ids if ids.count(g) > 1})
            raise ValueError(f"pools: GPU ids {dup} are used twice; each GPU serves one instance of one pool")
        return self

    @property
    def ratio(self) -> str:
        """1P3D: prefill instances P, decode instances D."""
        return f"{self.prefill.instances}P{self.decode.instances}D"

    @property
    def n_gpus(self) -> int:
        return self.prefill.n_gpus + self.decode.n_gpus


class PoolsSpec(BaseModel):
    """The disaggregated configuration to price: each field is a command-line option (`planner estimate-disagg`)."""

    model_config = ConfigDict(extra="forbid")
    prefill_instances: StrictInt = Field(
        1, ge=1, le=4096, description="prefill instances (P of xPyD)", json_schema_extra=_POOLS
    )
    prefill_tp: StrictInt = Field(
        1, ge=1, le=1024, description="tensor-parallel degree of each prefill instance", json_schema_extra=_POOLS
    )
    prefill_dp: StrictInt = Field(
        1,
        ge=1,
        le=1024,
        description="attention data-parallel ranks of each prefill instance (MoE models)",
        json_schema_extra=_POOLS,
    )
    prefill_ep: StrictInt = Field(
        1,
        ge=1,
        le=1024,
        description="expert-parallel degree of each prefill instance: 1, or tp x dp",
        json_schema_extra=_POOLS,
    )
    decode_instances: StrictInt = Field(
        1, ge=1, le=4096, description="decode instances (D of xPyD)", json_schema_extra=_POOLS
    )
    decode_tp: StrictInt = Field(
        1, ge=1, le=1024, description="tensor-parallel degree of each decode instance", json_schema_extra=_POOLS
    )
    decode_dp: StrictInt = Field(
        1,
        ge=1,
        le=1024,
        description="attention data-parallel ranks of each decode instance (MoE models)",
        json_schema_extra=_POOLS,
    )
    decode_ep: StrictInt = Field(
        1,
        ge=1,
        le=1024,
        description="expert-parallel degree of each decode instance: 1, or tp x dp",
        json_schema_extra=_POOLS,
    )
    pool_gpu_ids: list[int] | None = Field(
        None,
        description="GPUs of the prefill instances, then of the decode "
        "instances, in order; default the machine's first GPUs",
        json_schema_extra=_POOLS,
    )
    transfer_backend: TransferBackend = Field(
        "nixl",
        description="how the KV moves from a prefill to a decode instance: nixl or mooncake (GPU-direct RDMA), or "
        "shared-storage (vLLM's ExampleConnector: files on a path both instances see, through host memory)",
        json_schema_extra=_POOLS,
    )
    transfer_overlap: bool = Field(
        False,
        description="the KV moves layer by layer while the prompt is still prefilled, instead of after it",
        json_schema_extra=_POOLS,
    )


def make_pools(spec: PoolsSpec, n_gpus: int) -> Pools:
    """The Pools a spec asks for: prefill instances on the first GPUs (or `pool_gpu_ids`), decode on the next."""
    widths = (spec.prefill_tp * spec.prefill_dp, spec.decode_tp * spec.decode_dp)
    need = spec.prefill_instances * widths[0] + spec.decode_instances * widths[1]
    ids = list(range(n_gpus)) if spec.pool_gpu_ids is None else list(spec.pool_gpu_ids)
    if len(ids) < need:
        raise PartitionError(
            f"{spec.prefill_instances} prefill x {widths[0]} GPU(s) + {spec.decode_instances} "
            f"decode x {widths[1]} GPU(s) need {need} GPUs, {len(ids)} given"
        )
    if len(set(ids)) != len(ids):
        raise PartitionError(f"--pool-gpu-ids: GPU ids repeat in {ids}")
    bad = [g for g in ids if not 0 <= g < n_gpus]
    if bad:
        raise PartitionError(f"--pool-gpu-ids: GPU {bad[0]} is not on this machine (0..{n_gpus - 1})")
    cut = spec.prefill_instances * widths[0]
    pre = [ids[i * widths[0] : (i + 1) * widths[0]] for i in range(spec.prefill_instances)]
    dec = [ids[cut + i * widths[1] : cut + (i + 1) * widths[1]] for i in range(spec.decode_instances)]
    return Pools(
        prefill=Pool(
            role="prefill",
            instances=spec.prefill_instances,
            tp=spec.prefill_tp,
            dp=spec.prefill_dp,
            ep=spec.prefill_ep,
            gpu_ids=pre,
        ),
        decode=Pool(
            role="decode",
            instances=spec.decode_instances,
            tp=spec.decode_tp,
            dp=spec.decode_dp,
            ep=spec.decode_ep,
            gpu_ids=dec,
        ),
        transfer_backend=spec.transfer_backend,
        transfer_overlap=spec.transfer_overlap,
    )


ServingMode = Literal["agg", "disagg"]


class ModeResult(BaseModel):
    """The best plan one serving mode found, in the figures the choice compares (throughput under the SLOs)."""

    model_config = ConfigDict(extra="forbid")
    mode: ServingMode
    shape: str = Field(description="TP8 x PP2 x R2 (agg) or 1P3D: prefill 1x TP8 / decode 3x TP8 (disagg)")
    gpus: int
    concurrency: int = Field(description="sequences decoding together at the chosen load")
    tokens_per_s: float
    tpot_ms: float
    ttft_ms: float
    status: str = Field(description="OPTIMAL or FEASIBLE: how that mode's search ended")
    prefill_utilisation: float | None = Field(None, description="disagg: busy share of the prefill pool")
    decode_utilisation: float | None = Field(None, description="disagg: share of the decode pool's KV slots used")
    limited_by: str | None = Field(None, description="disagg: load, prefill, decode-admission or decode-memory")
    kv_transfer_ms: float | None = Field(None, description="disagg: one request's KV hand-off")


class ServingChoice(BaseModel):
    """Aggregated or disaggregated: which mode won, the best plan of the other and the margin (Plan JSON `serving`)."""

    model_config = ConfigDict(extra="forbid")
    asked: Literal["agg", "disagg", "auto"]
    chosen: ServingMode
    best: ModeResult
    other: ModeResult | None = Field(None, description="the other mode's best plan; None: not asked, or none fits")
    other_problem: str | None = Field(None, description="why the other mode has no plan")
    margin: float | None = Field(None, description="best tokens/s over the other's, less 1 (0.25: 25% more)")
    verdict: str = Field("", description="why the winner won, in words")
