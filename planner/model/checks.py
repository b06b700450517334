"""Checks of a workload against the model it runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from planner.errors import InputError
from planner.hardware.gpus import find_gpu_type
from planner.model.catalog import native_weight_dtype, resolve
from planner.model.layergraph import ModelProfile

if TYPE_CHECKING:
    from planner.plan import Workload


def check_workload(profile: ModelProfile, workload: Workload) -> None:
    """isl + osl must fit the model's context (its rope-scaled length where the config scales it)."""
    limit = profile.context_length
    total = workload.isl + workload.osl
    if limit and total > limit:
        raise InputError(
            f"--isl {workload.isl} + --osl {workload.osl} = {total:,} tokens exceeds {profile.name}'s "
            f"context of {limit:,} tokens"
        )


def with_native_dtype(workload: Workload, model: str) -> Workload:
    """The workload with the model's own checkpoint dtype for its weights where `--weight-dtype` was not given
    (fp8 for DeepSeek-V3/R1 and Kimi-K2, mxfp4 for gpt-oss, a config's quantization_config, else bf16)."""
    if "weight_dtype" in workload.model_fields_set:
        return workload

    return workload.model_copy(update={"weight_dtype": native_weight_dtype(model)})


def without_fp8_units(gpu_types: Iterable[str], weight_dtype: str) -> list[str]:
    """The GPU types of a plan that run its fp8 weights without fp8 tensor cores (A100 and older: weight-only fp8)."""
    if weight_dtype != "fp8":
        return []
    specs = [find_gpu_type(name) for name in sorted(set(gpu_types))]
    return [s.name for s in specs if s is not None and not s.has_fp8]


def fp8_warning(gpu_types: Iterable[str], weight_dtype: str) -> str | None:
    """One line where fp8 weights meet GPUs without fp8 tensor cores: how they are priced and which engine runs them."""
    lacking = without_fp8_units(gpu_types, weight_dtype)
    if not lacking:
        return None
    return (
        f"fp8 weights on {', '.join(lacking)}, which has no fp8 tensor cores: priced as weight-only fp8 (1-byte "
        "weights dequantised to bf16 for the matmul, as vLLM's FP8 Marlin kernels run them); TensorRT-LLM does "
        "not run fp8 there"
    )


def mtp_layers(profile: ModelProfile) -> int:
    """Multi-token-prediction layers the model's checkpoint ships (config `num_nextn_predict_layers`: 1 for
    DeepSeek-V3/R1, 0 for Kimi-K2, absent for Llama, Qwen, gpt-oss); 0 where the config cannot be read."""
    source = profile.source.split(":", 1)[1] if profile.source.startswith(("catalog:", "hub:")) else profile.source
    try:
        config = resolve(source).config
    except Exception:  # noqa: BLE001 - a profile whose config moved: no MTP head is claimed
        return 0
    value = config.get("num_nextn_predict_layers", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def checkpoint_note(weight_dtype: str, engine: str, *, native_dtype: str) -> str | None:
    """What checkpoint a launch script of a quantised plan needs, by engine (None for 16-bit weights)."""
    if weight_dtype in ("bf16", "fp16"):
        return None
    if weight_dtype == native_dtype:
        return f"the model's own checkpoint ships in {weight_dtype}: serve it as it is"
    if engine == "trtllm":
        form = {
            "fp8": "an FP8 checkpoint quantised with NVIDIA TensorRT Model Optimizer (hf_quant_config.json, "
            "e.g. nvidia/Llama-3.1-70B-Instruct-FP8)",
            "int4": "an INT4 AWQ (W4A16) checkpoint quantised with TensorRT Model Optimizer",
            "mxfp4": "an MXFP4 checkpoint (as openai/gpt-oss ships)",
            "nvfp4": "an NVFP4 checkpoint quantised with TensorRT Model Optimizer (e.g. nvidia/*-FP4)",
        }
        return (
            f"the plan's weights are {weight_dtype}: TensorRT-LLM reads the quantisation from the checkpoint, "
            f"so point --model at {form.get(weight_dtype, 'a quantised checkpoint')}; a bf16 one serves in bf16"
        )
    form = {
        "fp8": "an FP8 checkpoint (llm-compressor or ModelOpt); given a bf16 one, --quantization fp8 quantises it "
        "on load (dynamic per-tensor scales)",
        "int4": "an AWQ int4 group-128 checkpoint (e.g. hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4; "
        "for GPTQ write --quantization gptq)",
        "mxfp4": "an MXFP4 checkpoint (as openai/gpt-oss ships)",
        "nvfp4": "an NVFP4 checkpoint (ModelOpt, e.g. nvidia/*-FP4)",
    }
    return f"the plan's weights are {weight_dtype}: point --model at {form.get(weight_dtype, 'a quantised checkpoint')}"
