"""Every efficiency constant and overhead of the cost model, each with its source.

One place, one object: `Constants`, frozen and compared by value (`Constants.key`), so every cache
keyed on it is keyed on what it says. A calibration profile (YAML or JSON with any subset of these
fields) overrides them: `load_constants(path)`; `planner ... --calibration FILE` passes one and
`planner bench --fit` writes one. The sources live in docs/calibration.md.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import ConfigError, config_error
from planner.files import load_yaml

_POSITIVE_S = dict(ge=0, le=1.0)  # a fixed time: 0 to 1 s


class ProtocolEfficiency(BaseModel):
    """Fraction of the ring's bottleneck link bandwidth that NCCL's protocols reach on a fabric."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ll: float = Field(gt=0, le=1, description="LL protocol (small messages)")
    simple: float = Field(gt=0, le=1, description="Simple protocol (large messages)")


def _protocols() -> dict[str, ProtocolEfficiency]:
    return {
        # 8xH200 NVSwitch, NCCL 2.27 (docs/calibration.md): LL reaches ~131 GB/s algbw of 257 theoretical.
        "nvlink4": ProtocolEfficiency(ll=0.51, simple=1.0),
        # 8xA100 nccl-tests (docs/calibration.md): 256 KiB in 61.4 us, 128 MiB in 1328 us.
        "nvlink3": ProtocolEfficiency(ll=0.08, simple=0.67),
        # PCIe and Infinity Fabric: NVLink3's fractions until a table says otherwise.
        "pcie5": ProtocolEfficiency(ll=0.08, simple=0.67),
        "pcie4": ProtocolEfficiency(ll=0.08, simple=0.67),
        "xgmi": ProtocolEfficiency(ll=0.08, simple=0.67),
        "network": ProtocolEfficiency(ll=0.08, simple=0.9),
    }


class Constants(BaseModel):
    """The cost model's constants. Sources: docs/calibration.md (one section per group below)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- Collectives (planner.cost.collectives) ---------------------------------------------------
    nccl_launch_s: float = Field(
        24e-6, **_POSITIVE_S,
        description="Fixed cost of one standalone NCCL collective as nccl-tests times it (kernel launch, "
        "proxy, synchronisation). Fitted: 8xH200 all-reduce at 32 KiB takes 39.8 us (busbw 1.44 GB/s), "
        "of which 14 ring steps x 1 us are hops.")
    engine_launch_s: float = Field(
        7.5e-6, **_POSITIVE_S,
        description="Fixed cost of one collective inside an inference engine running under CUDA graphs. "
        "Fitted: vLLM custom all-reduce of 32 KB on H100 takes 8.7/9.2/11.8 us at TP 2/4/8 "
        "(sgl-project/sglang PR #2904).")
    simple_extra_s: float = Field(
        26e-6, **_POSITIVE_S,
        description="Extra fixed latency of NCCL's Simple protocol over LL (bigger chunks, more "
        "synchronisation). Fitted to the 8xH200 and 8xA100 nccl-tests tables.")
    one_shot_peer_bytes_per_s: float = Field(
        50e9, ge=1e6, le=1e14,
        description="Per-peer read bandwidth of a one-shot custom all-reduce (each rank reads every "
        "peer's buffer). Fitted to the 8.7/9.2/11.8 us custom all-reduce figures.")
    one_shot_max_bytes: int = Field(
        8 * 2**20, ge=0, le=2**34,
        description="Largest message engines send through their custom all-reduce (vLLM: 8 MiB).")
    protocol_efficiency: dict[str, ProtocolEfficiency] = Field(
        default_factory=_protocols,
        description="Keyed by the GPU's link generation (GpuSpec.link), or 'network' across nodes.")
    nvls_efficiency: float = Field(
        0.58, gt=0, le=1,
        description="NVLink SHARP all-reduce: algorithm bandwidth as a fraction of the per-GPU NVLink "
        "bandwidth. 8xH200 busbw 482 GB/s at 16 GiB = algbw 275 GB/s of 450.")

    # --- Decode and prefill steps (planner.cost.step) ----------------------------------------------
    hbm_efficiency: float = Field(
        0.85, gt=0, le=1,
        description="Sustained fraction of datasheet HBM bandwidth a decode GEMV reaches. H100 SXM: "
        "~2,900 of 3,350 GB/s (87%); A100 at 330 W: ~1,700 of 2,039 GB/s (83%).")
    flops_efficiency: float = Field(
        0.6, gt=0, le=1,
        description="Fraction of dense peak FLOP/s large prefill GEMMs reach (typical MFU of vLLM/SGLang "
        "prefill on H100; gpt-fast reports similar).")
    kernel_overhead_s_per_layer: float = Field(
        50e-6, **_POSITIVE_S,
        description="Fixed time per decoder layer per decode step: ~10 kernels (norms, QKV, RoPE, "
        "attention, O, MLP) at ~5 us of launch/tail each under CUDA graphs. Fitted: gpt-fast Llama-3.1-8B "
        "on 1xA100 at 10.65 ms vs 8.8 ms of weight reads at 1.7 TB/s.")

    # --- Serving at load (planner.cost.serving) ----------------------------------------------------
    step_overhead_s: float = Field(
        0.0, **_POSITIVE_S,
        description="Fixed time of one engine step outside the GPU kernels (scheduling, sampling, "
        "detokenisation handed off): paid once per step, on every load.")
    request_overhead_s: float = Field(
        0.0, **_POSITIVE_S,
        description="Fixed part of a request's time to first token outside the model (HTTP, tokenising, "
        "admission): paid once per request.")
    max_num_batched_tokens: int = Field(
        8192, ge=64, le=2**20,
        description="Tokens one engine step may carry, decode and prefill chunks together (vLLM's "
        "default for an OpenAI server on a >= 70 GiB GPU; SGLang's chunked prefill size is 8192 too).")

    moe_imbalance: float = Field(
        1.0, ge=1.0, le=8.0,
        description="Tokens the busiest GPU of an expert-parallel group receives, over the mean (1.0: "
        "uniform routing). Multiplies the expert compute and the dispatch bytes of the busiest GPU.")

    # --- Memory (planner.cost.memory) --------------------------------------------------------------
    runtime_reserve_bytes: int = Field(
        int(2.5e9), ge=0, le=2**40,
        description="Per-GPU memory outside weights and KV: CUDA context (~500 MB), NCCL buffers (hundreds "
        "of MB), cuBLAS workspace and CUDA graphs.")
    activation_bytes_per_token: float = Field(
        0.0, ge=0, le=1e9,
        description="Per-GPU activation workspace per batched token, on top of the reserve (0: the reserve covers it).")

    @cached_property
    def key(self) -> str:
        """A digest of every value: equal constants share caches, different ones never do."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.key)


DEFAULT = Constants()


def load_constants(path: str | Path | None = None) -> Constants:
    """The default constants, overridden by a calibration profile (a YAML or JSON mapping)."""
    if path is None:
        return DEFAULT
    data = load_yaml(path, "the calibration profile")
    if data is None:
        return DEFAULT
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a calibration profile is a mapping of constant names to values "
                          f"(for example 'hbm_efficiency: 0.8'), got {type(data).__name__}")
    try:
        return Constants.model_validate({**DEFAULT.model_dump(), **data})
    except ValidationError as exc:
        raise config_error(str(path), exc) from None
