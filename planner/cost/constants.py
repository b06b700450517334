"""Every efficiency constant and overhead of the cost model, each with its source.

One place, one object: `Constants`, frozen and compared by value (`Constants.key`), so every cache
keyed on it is keyed on what it says. A calibration profile (YAML or JSON with any subset of these
fields) overrides them: `load_constants(path)`; `planner ... --calibration FILE` passes one and
`planner bench --fit` writes one. The sources live in docs/calibration.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from planner.errors import ConfigError, config_error
from planner.files import load_yaml


class _Range(TypedDict):
    """A field's bounds, spread into pydantic's Field (typed, so that the type checker knows what it passes)."""

    ge: float
    le: float


_POSITIVE_S = _Range(ge=0, le=1.0)  # a fixed time: 0 to 1 s
#: An efficiency or bandwidth fraction: 1% to 100%. Below 1% is a typo or a unit slip, and it would scale the
#: solver's integer nanoseconds past int64 (1e-300 did).
_FRACTION = _Range(ge=0.01, le=1)


def _no_booleans(cls: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    """YAML's `true` is not 1.0: a boolean where a number belongs is refused (numbers and numeric text pass)."""
    if isinstance(value, bool) and cls.model_fields[info.field_name].annotation is not bool:
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    return value


class FabricProfile(BaseModel):
    """How NCCL's protocols fare on one kind of route: bandwidth fractions of the ring's bottleneck and
    the latency each ring step adds beyond the links' own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ll: float = Field(**_FRACTION, description="LL protocol (small messages): bandwidth fraction")
    ll128: float = Field(
        0.0, ge=0, le=1, description="LL128 (NVLink): bandwidth fraction; 0 where NCCL does not use it"
    )
    simple: float = Field(**_FRACTION, description="Simple protocol (large messages): bandwidth fraction")
    ll_step_s: float = Field(ge=0, le=1e-3, description="LL and LL128: latency per ring step")
    simple_step_s: float = Field(ge=0, le=1e-3, description="Simple: latency per ring step")
    direct: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Direct (all-pairs) algorithms on a full mesh: bandwidth "
        "fraction of each peer's link; 0 where the library runs none (NCCL on NVLink bonds)",
    )
    direct_step_s: float = Field(
        0.0, ge=0, le=1e-3, description="Direct algorithms: latency per step beyond the link's"
    )

    _numbers = field_validator("*", mode="before")(classmethod(_no_booleans))

    @field_validator("ll128", "direct")
    @classmethod
    def _ll128_off_or_physical(cls, v: float) -> float:
        if 0 < v < _FRACTION["ge"]:
            raise ValueError(f"is 0 (not used) or a fraction from {_FRACTION['ge']} to 1, got {v!r}")
        return v


FABRICS = ("nvlink4", "nvlink3", "xgmi", "pcie", "staged", "network")


def _fabrics() -> dict[str, FabricProfile]:
    """Fitted by benchmarks/fit_collectives.py to tests/data/collectives.yaml (docs/calibration.md)."""
    return {
        "nvlink4": FabricProfile(ll=0.495, ll128=0.951, simple=1.0, ll_step_s=0.306e-6, simple_step_s=1.82e-6),
        "nvlink3": FabricProfile(ll=0.111, ll128=0.367, simple=0.713, ll_step_s=1.63e-6, simple_step_s=3.41e-6),
        # Infinity Fabric: simple, simple_step_s and the direct (all-pairs) pair fitted to rccl-tests on 8x MI300X
        # (table mi300x-8); no row picks a ring under LL there, so ll and ll_step_s stay placeholders; no LL128 on gfx942.
        "xgmi": FabricProfile(
            ll=0.30, simple=0.70, ll_step_s=1.8e-6, simple_step_s=1.12e-6, direct=0.597, direct_step_s=5.53e-6
        ),
        # PCIe peer-to-peer: no table fitted yet; the usual fractions.
        "pcie": FabricProfile(ll=0.25, simple=0.70, ll_step_s=1.5e-6, simple_step_s=2.5e-6),
        "staged": FabricProfile(ll=0.229, simple=0.51, ll_step_s=0.317e-6, simple_step_s=2.5e-6),
        "network": FabricProfile(ll=0.08, simple=0.90, ll_step_s=2.0e-6, simple_step_s=4.0e-6),
    }


class Constants(BaseModel):
    """The cost model's constants. Sources: docs/calibration.md (one section per group below)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- Collectives (planner.cost.collectives) ---------------------------------------------------
    nccl_launch_s: float = Field(
        6.2e-6,
        **_POSITIVE_S,
        description="Fixed cost of one collective as nccl-tests times it (kernel launch and synchronisation "
        "of back-to-back iterations). Fitted to the nccl-tests tables in tests/data/collectives.yaml.",
    )
    torch_call_s: float = Field(
        12.5e-6,
        **_POSITIVE_S,
        description="Host overhead of one torch.distributed collective call timed on its own (the 'torch' "
        "context). Fitted: 8xH200 all-reduce at 32 KiB takes 39.8 us through torch.",
    )
    engine_launch_s: float = Field(
        7.5e-6,
        **_POSITIVE_S,
        description="Fixed cost of one collective inside an inference engine running under CUDA graphs. "
        "Fitted: vLLM custom all-reduce of 32 KB on H100 takes 8.7/9.2/11.8 us at TP 2/4/8 "
        "(sgl-project/sglang PR #2904).",
    )
    simple_extra_s: float = Field(
        9.8e-6,
        **_POSITIVE_S,
        description="Extra fixed latency of NCCL's Simple protocol (bigger chunks, more synchronisation).",
    )
    ll128_extra_s: float = Field(
        28.5e-6, **_POSITIVE_S, description="Extra fixed latency of NCCL's LL128 protocol over LL."
    )
    one_shot_peer_bytes_per_s: float = Field(
        50e9,
        ge=1e6,
        le=1e14,
        description="Per-peer read bandwidth of a one-shot custom all-reduce (each rank reads every "
        "peer's buffer). Fitted to the 8.7/9.2/11.8 us custom all-reduce figures.",
    )
    one_shot_max_bytes: int = Field(
        8 * 2**20,
        ge=0,
        le=2**34,
        description="Largest message engines send through their custom all-reduce (vLLM: 8 MiB).",
    )
    fabrics: dict[str, FabricProfile] = Field(
        default_factory=_fabrics,
        description=f"Protocol profiles by the fabric a ring's worst route crosses: {', '.join(FABRICS)}.",
    )
    nvls_efficiency: float = Field(
        0.60,
        **_FRACTION,
        description="NVLink SHARP all-reduce: algorithm bandwidth as a fraction of the per-GPU NVLink "
        "bandwidth. 8xH200 busbw 482 GB/s at 16 GiB = algbw 275 GB/s of 450.",
    )
    nvls_extra_s: float = Field(
        87e-6, **_POSITIVE_S, description="Fixed latency of an NVLS all-reduce beyond the launch."
    )

    # --- Decode and prefill steps (planner.cost.step) ----------------------------------------------
    hbm_efficiency: float = Field(
        0.85,
        **_FRACTION,
        description="Sustained fraction of datasheet HBM bandwidth a decode GEMV reaches. H100 SXM: "
        "~2,900 of 3,350 GB/s (87%); A100 at 330 W: ~1,700 of 2,039 GB/s (83%).",
    )
    kv_hbm_efficiency: float = Field(
        0.46,
        **_FRACTION,
        description="Sustained fraction of datasheet HBM bandwidth decode attention reaches reading the paged KV "
        "cache (scattered blocks, one query per head group): below the weights' GEMV streams at long contexts. "
        "Fitted by benchmarks/fit_serving.py to NVIDIA NIM's at-load measurements (tests/data/serving_nim.yaml).",
    )
    flops_efficiency: float = Field(
        0.6,
        **_FRACTION,
        description="Fraction of dense peak FLOP/s large prefill GEMMs reach (typical MFU of vLLM/SGLang "
        "prefill on H100; gpt-fast reports similar).",
    )
    kernel_overhead_s_per_layer: float = Field(
        50e-6,
        **_POSITIVE_S,
        description="Fixed time per decoder layer per decode step: ~10 kernels (norms, QKV, RoPE, "
        "attention, O, MLP) at ~5 us of launch/tail each under CUDA graphs. Fitted: gpt-fast Llama-3.1-8B "
        "on 1xA100 at 10.65 ms vs 8.8 ms of weight reads at 1.7 TB/s.",
    )

    prefill_moe_host_s_per_layer: float = Field(
        0.0,
        **_POSITIVE_S,
        description="Host time per MoE layer of a step that carries prompt tokens: an engine that replays decode "
        "steps as CUDA graphs but runs prefill eagerly spends this long in Python and kernel launches (attention, "
        "routing, top-k, the grouped GEMM's alignment) whatever the GPU does, and the step lasts the longer of the "
        "two. 0: prefill steps are as fast as their kernels.",
    )

    # --- Serving at load (planner.cost.serving) ----------------------------------------------------
    step_overhead_s: float = Field(
        0.64e-3,
        **_POSITIVE_S,
        description="Fixed time of one engine step outside the GPU kernels (scheduling, launching the step's "
        "graph): paid once per step, on every load. Fitted by benchmarks/fit_serving.py to NIM's measurements.",
    )
    sequence_overhead_s: float = Field(
        24.7e-6,
        **_POSITIVE_S,
        description="Time of one engine step per sequence that gets a token (sampling, logits processing, "
        "detokenising and streaming): paid on the host in every step, so it grows with the batch. Fitted by "
        "benchmarks/fit_serving.py to NIM's measurements.",
    )
    request_overhead_s: float = Field(
        7.0e-3,
        **_POSITIVE_S,
        description="Fixed part of a request's time to first token outside the model (HTTP, tokenising, "
        "admission): paid once per request. Fitted by benchmarks/fit_serving.py to NIM's measurements.",
    )
    max_num_batched_tokens: int = Field(
        8192,
        ge=64,
        le=2**20,
        description="Tokens one engine step may carry, decode and prefill chunks together (vLLM's "
        "default for an OpenAI server on a >= 70 GiB GPU; SGLang's chunked prefill size is 8192 too).",
    )

    # --- Kernels by shape (planner.cost.step; engine profiles set them, planner.cost.engines) ---------------
    gemm_half_tokens: float = Field(
        0.0,
        ge=0,
        le=65536,
        description="GEMM rows (tokens of a step on one rank) at which a matmul reaches half of flops_efficiency: "
        "efficiency = flops_efficiency x m / (m + this). Small-M GEMMs (decode) run far below peak, 8,192-token "
        "prefill chunks near it. 0: no shape dependence.",
    )
    attention_half_context: float = Field(
        0.0,
        ge=0,
        le=1e6,
        description="Context (tokens) at which prefill attention reaches half of flops_efficiency: flash attention "
        "over short prefixes is launch- and softmax-bound, over long ones near GEMM speed. 0: no dependence.",
    )
    moe_tile_tokens: int = Field(
        1,
        ge=1,
        le=512,
        description="M tile of the grouped-GEMM MoE kernel: each touched expert's tokens are padded to a multiple of "
        "it, and FLOPs are spent at the padded size (fused_moe/DeepGEMM/CUTLASS use 16-128 rows). 1: no padding.",
    )
    moe_hbm_efficiency: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of HBM bandwidth a grouped GEMM reaches streaming the touched experts' weights (few "
        "tokens per expert, fp8 block scales to dequantise). 0: hbm_efficiency.",
    )
    moe_layer_overhead_s: float = Field(
        0.0,
        **_POSITIVE_S,
        description="Fixed time per MoE layer per step outside the expert GEMMs: router GEMM, top-k, permute and "
        "unpermute, activation quantisation (fp8 block scales), the extra launches of a grouped GEMM.",
    )
    ep_dispatch_latency_s: float = Field(
        0.0,
        **_POSITIVE_S,
        description="Fixed latency of one expert-parallel dispatch or combine (small-message all-to-all: DeepEP "
        "low-latency kernels, NCCL all-to-all), paid twice per MoE layer per step under EP.",
    )
    dp_attention_overhead_s: float = Field(
        0.0,
        **_POSITIVE_S,
        description="Fixed time per decoder layer per step under data-parallel attention (dp > 1): gathering every "
        "rank's tokens for the MoE layers and scattering them back, each rank padded to the largest rank's batch, "
        "and the extra launches (SGLang --enable-dp-attention). 0: none.",
    )
    mla_flops_efficiency: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of peak bf16 FLOP/s MLA's absorbed decode attention reaches (FlashMLA: ~660 of 989 "
        "TFLOP/s on H800, deepseek-ai/FlashMLA README). 0: no absorbed-attention compute term.",
    )
    closed_loop_drift: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of a closed-loop benchmark's requests that arrive staggered rather than in a wave: after "
        "the first wave, requests finish (and their clients resend) in the order they were prefilled, so later waves "
        "drift apart and see a newcomer's TTFT, not the wave's queue. 0: every request in a wave.",
    )
    max_num_seqs: int = Field(
        1024,
        ge=1,
        le=1_000_000,
        description="Most sequences the engine schedules at once (vLLM --max-num-seqs, SGLang --max-running-requests, "
        "TensorRT-LLM max_batch_size): the batch of an offline run that queues every request.",
    )
    memory_accounting: str = Field(
        "gpu_memory_utilization",
        description="How the engine sizes its KV cache: gpu_memory_utilization (vLLM: fraction of the whole GPU for "
        "weights, activations and KV), mem_fraction_static (SGLang: fraction for weights and KV; activations and CUDA "
        "graphs outside it), free_gpu_memory_fraction (TensorRT-LLM: fraction of what is free after weights and "
        "runtime buffers).",
    )
    engine: str | None = Field(
        None,
        description="The engine profile these constants were resolved for (planner.cost.engines); None: not "
        "resolved yet. Set by resolve_constants, not by hand.",
    )
    calibrated: tuple[str, ...] = Field(
        (), description="Fields a calibration profile set: an engine profile does not override them."
    )

    moe_imbalance: float = Field(
        1.07,
        ge=1.0,
        le=8.0,
        description="Tokens the busiest GPU of an expert-parallel group receives, over the mean (1.0: uniform "
        "routing). Multiplies the expert compute and the dispatch bytes of the busiest GPU. Measured: median "
        "max/mean tokens per rank 1.069 without EPLB and 1.008 with it (vllm-project/vllm PR #50647, EP16); "
        "set 1.01 in a calibration profile where EPLB runs.",
    )

    # --- Memory tiers (planner.cost.offload) ---------------------------------------------------------
    host_stream_efficiency: float = Field(
        0.58,
        **_FRACTION,
        description="Sustained fraction of a PCIe path's bandwidth an engine's weight streaming from host memory "
        "reaches. Fitted by benchmarks/fit_offload.py to DeepSpeed ZeRO-Inference streaming OPT-30B on a T4 "
        "(0.60 tokens/s, FlexGen's table); OPT-6.7B held out at +15%. A bare pinned copy reaches 0.77 "
        "(CUDA bandwidthTest, P100 on PCIe 3.0 x16: 12,150.7 MB/s; mpicbg-scicomp/gearshifft PR #82).",
    )

    # --- Memory (planner.cost.memory) --------------------------------------------------------------
    runtime_reserve_bytes: int = Field(
        int(2.5e9),
        ge=0,
        le=2**40,
        description="Per-GPU memory outside weights and KV: CUDA context (~500 MB), NCCL buffers (hundreds "
        "of MB), cuBLAS workspace and CUDA graphs.",
    )
    cuda_context_bytes: float = Field(
        0.0,
        ge=0,
        le=2**36,
        description="Memory of a GPU the engine never sees: the driver's and CUDA context's share of what nvidia-smi "
        "reports (A100 80GB: 81,920 MiB, of which vLLM logs total_gpu_memory 79.25 GiB; dennislee22/vLLM-benchmarking "
        "README). Engines take their fractions of the rest. 0: none.",
    )
    activation_bytes_per_token: float = Field(
        0.0,
        ge=0,
        le=1e9,
        description="Per-GPU activation workspace per batched token, on top of the reserve (0: the reserve covers it).",
    )

    _numbers = field_validator("*", mode="before")(classmethod(_no_booleans))

    @field_validator("moe_hbm_efficiency", "mla_flops_efficiency")
    @classmethod
    def _zero_or_efficiency(cls, value: float) -> float:
        """0 means "use the general knob"; any other value is an efficiency, in the same physical range as every
        efficiency (0.01 to 1): 1e-300 or a subnormal is refused, as for hbm_efficiency (fuzz: extreme-calibration)."""
        if 0 < value < _FRACTION["ge"]:
            raise ValueError(f"{value:g} is neither 0 (use the general efficiency) nor an efficiency in 0.01..1")
        return value

    def fabric(self, name: str) -> FabricProfile:
        return self.fabrics.get(name) or self.fabrics.get("pcie") or next(iter(self.fabrics.values()))

    @cached_property
    def key(self) -> str:
        """A digest of every value: equal constants share caches, different ones never do."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    def __hash__(self) -> int:
        return hash(self.key)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> "Constants":
        """A copy with `update` applied, validated, and its own key (the cached digest is not carried over)."""
        return Constants.model_validate({**self.model_dump(), **(update or {})})


DEFAULT = Constants()


def load_constants(path: str | Path | None = None) -> Constants:
    """The default constants, overridden by a calibration profile (a YAML or JSON mapping)."""
    if path is None:
        return DEFAULT
    data = load_yaml(path, "the calibration profile")
    if data is None:
        return DEFAULT
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a calibration profile is a mapping of constant names to values "
            f"(for example 'hbm_efficiency: 0.8'), got {type(data).__name__}"
        )
    merged = {**DEFAULT.model_dump(), **data}
    fabrics = data.get("fabrics")
    if fabrics is None or fabrics == {}:  # `fabrics:` or `fabrics: {}`: the default table
        merged["fabrics"] = DEFAULT.model_dump()["fabrics"]
    elif isinstance(fabrics, dict):  # a partial table restates only the fabrics (and fields) it names
        unknown = sorted(str(k) for k in fabrics if k not in DEFAULT.fabrics)
        if unknown:
            raise ConfigError(f"{path}: fabrics.{unknown[0][:60]}: not a fabric; the fabrics are {', '.join(FABRICS)}")
        merged["fabrics"] = {
            name: {**profile.model_dump(), **fabrics[name]}
            if isinstance(fabrics.get(name), dict)
            else fabrics.get(name, profile.model_dump())
            for name, profile in DEFAULT.fabrics.items()
        }
    try:
        return Constants.model_validate({**merged, "calibrated": tuple(sorted(set(data) - {"calibrated", "engine"}))})
    except ValidationError as exc:
        raise config_error(str(path), exc) from None
