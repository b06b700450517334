"""Every efficiency constant and overhead of the models, each with its source.

One place, one object: `Constants`. A calibration profile (YAML or JSON with any subset of these
fields) overrides them: `load_constants(path)`; `planner ... --calibration FILE` passes one.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import ConfigError


class ProtocolEfficiency(BaseModel):
    """Fraction of the ring's bottleneck link bandwidth that NCCL's protocols reach on a fabric."""

    model_config = ConfigDict(extra="forbid")
    ll: float = Field(gt=0, le=1, description="LL protocol (small messages)")
    simple: float = Field(gt=0, le=1, description="Simple protocol (large messages)")


class Constants(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- Collectives (planner.collectives) ---------------------------------------------------
    nccl_launch_s: float = Field(
        24e-6,
        description="Fixed cost of one standalone NCCL collective as nccl-tests times it (kernel launch, "
        "proxy, synchronisation). Fitted: 8xH200 all-reduce at 32 KiB takes 39.8 us (busbw 1.44 GB/s, "
        "calibration.md), of which 14 ring steps x 1 us are hops.",
    )
    engine_launch_s: float = Field(
        7.5e-6,
        description="Fixed cost of one collective inside an inference engine running under CUDA graphs. "
        "Fitted: vLLM custom all-reduce of 32 KB on H100 takes 8.7/9.2/11.8 us at TP 2/4/8 "
        "(sgl-project/sglang PR #2904, calibration.md).",
    )
    simple_extra_s: float = Field(
        26e-6,
        description="Extra fixed latency of NCCL's Simple protocol over LL (bigger chunks, more "
        "synchronisation). Fitted to the 8xH200 and 8xA100 nccl-tests tables (calibration.md).",
    )
    one_shot_peer_bytes_per_s: float = Field(
        50e9,
        description="Per-peer read bandwidth of a one-shot custom all-reduce (each rank reads every "
        "peer's buffer). Fitted to the 8.7/9.2/11.8 us custom all-reduce figures (calibration.md).",
    )
    one_shot_max_bytes: int = Field(
        8 * 2**20,
        description="Largest message engines send through their custom all-reduce (vLLM: 8 MiB).",
    )
    protocol_efficiency: dict[str, ProtocolEfficiency] = Field(
        default_factory=lambda: {
            # 8xH200 NVSwitch, NCCL 2.27 (calibration.md): LL reaches ~131 GB/s algbw of 257 theoretical.
            "nvlink4": ProtocolEfficiency(ll=0.51, simple=1.0),
            # 8xA100 nccl-tests (calibration.md): 256 KiB in 61.4 us, 128 MiB in 1328 us.
            "nvlink3": ProtocolEfficiency(ll=0.08, simple=0.67),
            # PCIe and Infinity Fabric: no published table in calibration.md; NVLink3's fractions.
            "pcie5": ProtocolEfficiency(ll=0.08, simple=0.67),
            "pcie4": ProtocolEfficiency(ll=0.08, simple=0.67),
            "xgmi": ProtocolEfficiency(ll=0.08, simple=0.67),
            "network": ProtocolEfficiency(ll=0.08, simple=0.9),
        },
        description="Keyed by the GPU's link generation (GpuSpec.link), or 'network' across nodes.",
    )
    nvls_efficiency: float = Field(
        0.58,
        gt=0, le=1,
        description="NVLink SHARP all-reduce: algorithm bandwidth as a fraction of the per-GPU NVLink "
        "bandwidth. 8xH200 busbw 482 GB/s at 16 GiB = algbw 275 GB/s of 450 (calibration.md).",
    )

    # --- Decode and prefill (planner.cost) ----------------------------------------------------
    hbm_efficiency: float = Field(
        0.85,
        gt=0, le=1,
        description="Sustained fraction of datasheet HBM bandwidth a decode GEMV reaches. H100 SXM: "
        "~2,900 of 3,350 GB/s (87%); A100 at 330 W: ~1,700 of 2,039 GB/s (83%) (calibration.md).",
    )
    flops_efficiency: float = Field(
        0.6,
        gt=0, le=1,
        description="Fraction of dense peak FLOP/s large prefill GEMMs reach (typical MFU of vLLM/SGLang "
        "prefill on H100; gpt-fast reports similar).",
    )
    kernel_overhead_s_per_layer: float = Field(
        50e-6,
        description="Fixed time per decoder layer per decode step: ~10 kernels (norms, QKV, RoPE, "
        "attention, O, MLP) at ~5 us of launch/tail each under CUDA graphs. Fitted: gpt-fast Llama-3.1-8B "
        "on 1xA100 at 10.65 ms vs 8.8 ms of weight reads at 1.7 TB/s (calibration.md).",
    )
    runtime_reserve_bytes: int = Field(
        int(2.5e9),
        description="Per-GPU memory outside weights and KV: CUDA context (~500 MB), NCCL buffers (hundreds "
        "of MB), cuBLAS workspace and CUDA graphs (DESIGN.md cost-model notes).",
    )
    activation_bytes_per_token: float = Field(
        0.0,
        description="Per-GPU activation workspace per batched token, on top of the reserve (0: the reserve covers it).",
    )
    max_num_batched_tokens: int = Field(
        8192,
        description="Prefill chunk the engine's activation workspace is sized for (vLLM default).",
    )


DEFAULT = Constants()


def load_constants(path: str | None = None) -> Constants:
    if path is None:
        return DEFAULT
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the calibration profile ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return Constants.model_validate({**DEFAULT.model_dump(), **data})
    except ValidationError as exc:
        from planner.topology import validation_messages

        msgs = validation_messages(exc)
        raise ConfigError(f"{p}: {msgs[0]}", details=msgs[1:]) from None
