"""What an engine profile is: the constants in which vLLM, SGLang and TensorRT-LLM differ, with their sources.

A profile sets a subset of `planner.cost.constants.Constants` (host time per step, per sequence and per request,
kernel efficiencies by shape, the token budget of a step, the most sequences scheduled, memory accounting and
reserves) and says, per number, where it comes from. Fitted numbers live in `fitted.yaml` beside this file
(written by `python benchmarks/fit_serving.py --write`), seeds in the engine's module; the fitted ones win.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.cost.constants import Constants

#: Seeds every engine shares (the GPU's and the kernels' physics, and host-time seeds no engine has a measurement of
#: its own for), with their sources. The fit
#: (planner.calibrate.fidelity) starts from them; fitted.yaml's values win.
COMMON_CONSTANTS: dict[str, float | int | str] = {
    "cuda_context_bytes": 0.8e9,
    "flops_efficiency": 0.6,
    "moe_hbm_efficiency": 0.62,
    "moe_layer_overhead_s": 30e-6,
    "mla_flops_efficiency": 0.67,
    "step_overhead_s": 1.0e-3,
    "sequence_overhead_s": 25e-6,
    "request_overhead_s": 15e-3,
}
COMMON_SOURCES = {
    "cuda_context_bytes": "A100 80GB: nvidia-smi 81,920 MiB, vLLM logs total_gpu_memory 79.25 GiB "
    "(dennislee22/vLLM-benchmarking@b474d1e:README.md): 0.8 GB the engine never sees",
    "flops_efficiency": "seed: large prefill GEMMs at ~60% of dense peak (the round-two fit to NVIDIA NIM's "
    "TensorRT-LLM rows, tests/data/serving_nim.yaml, benchmarks/RESULTS.md 'Serving at load'); "
    "fitted per engine on dense rows (fitted.yaml)",
    "moe_hbm_efficiency": "seed: deepseek-ai/DeepGEMM README, 'Grouped GEMMs for MoE models (masked layout)': 4 groups "
    "x 256 rows, 7168 x 2048, 2,064 GB/s on H800 (3,350 GB/s datasheet) = 0.62",
    "moe_layer_overhead_s": "seed: ~6 launches a MoE layer adds (router GEMM, top-k, permute, activation quantisation, "
    "unpermute, combine) at ~5 us each, as kernel_overhead_s_per_layer prices a layer's kernels",
    "mla_flops_efficiency": "seed: deepseek-ai/FlashMLA README: absorbed MLA decode at 660 of 989 bf16 TFLOP/s on H800",
    "step_overhead_s": "seed, every engine alike (TensorRT-LLM's too, not round two's fit to NVIDIA's NIM rows, so "
    "that cross-validation's NVIDIA fold starts from nothing fitted on NVIDIA); fitted per engine: fitted.yaml",
    "sequence_overhead_s": "seed, every engine alike; fitted per engine: fitted.yaml",
    "request_overhead_s": "seed, every engine alike; fitted per engine where it has TTFT rows: fitted.yaml",
}


class KernelFloor(BaseModel):
    """The first release of an engine whose kernels for one attention kind are the ones the profile prices
    (planner.cost.engines.versions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attention: Literal["gqa", "mla"] = Field(description="the models it concerns, by attention kind")
    since: str = Field(description="the first release the profile describes, e.g. 0.8.0")
    why: str = Field(description="what changed at that release, in words, with its source")


class EngineProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="vllm, sglang or trtllm")
    version: str = Field(description="the engine version the profile's fitted numbers were measured on")
    constants: dict[str, float | int | str] = Field(description="Constants fields this engine sets")
    sources: dict[str, str] = Field(description="per constant: where its value comes from")
    launch_flags: str = Field(
        "", description="the memory and batching flags the profile assumes, as the engine spells them"
    )
    kernel_floors: tuple[KernelFloor, ...] = Field(
        (), description="releases before these run other kernels than the profile prices (versions.py)"
    )

    @model_validator(mode="after")
    def _every_number_has_a_source(self):
        unknown = sorted(set(self.constants) - set(Constants.model_fields))
        if unknown:
            raise ValueError(f"engine {self.name}: {unknown} are not cost-model constants")
        missing = sorted(set(self.constants) - set(self.sources))
        if missing:
            raise ValueError(f"engine {self.name}: no source for {missing}")
        return self
