"""Bytes per element of the weight, KV-cache and activation dtypes the planner knows.

Quantised weight dtypes (fp8, int4) apply to the matrices of the decoder layers (attention
projections, MLPs, experts). Embeddings, lm_head, norms, biases and MoE routers stay in 16-bit,
as vLLM's fp8 and AWQ/GPTQ int4 checkpoints keep them. `mxfp4` (OCP microscaling FP4, as gpt-oss
ships) quantises only the routed experts: 4-bit values with one 8-bit scale per 32 (4.25 bits a
weight); attention and everything else stay 16-bit. `nvfp4` (NVIDIA's FP4, as TensorRT-LLM's and
SGLang's FP4 checkpoints ship) quantises every decoder matrix: 4-bit values with one FP8 (E4M3) scale per 16
(4.5 bits a weight; NVIDIA's "Introducing NVFP4" blog and TensorRT Model Optimizer's format notes).
"""

from __future__ import annotations

from typing import Literal

from planner.errors import InputError

WeightDtype = Literal["bf16", "fp16", "fp8", "int4", "mxfp4", "nvfp4"]
KvDtype = Literal["bf16", "fp16", "fp8"]

WEIGHT_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int4": 0.5, "mxfp4": 0.5, "nvfp4": 0.5}
KV_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}

#: Bytes of everything that is not a quantised matrix (embeddings, norms, biases, routers).
UNQUANTISED_BYTES = 2.0
#: Activations and all-reduce messages travel in 16-bit.
ACTIVATION_BYTES = 2

#: int4 (AWQ/GPTQ) stores one fp16 scale per group of 128 weights: 2 bytes / 128 weights.
INT4_GROUP_SIZE = 128
INT4_SCALE_BYTES = 2
#: mxfp4 (OCP Microscaling Formats v1.0): one E8M0 scale byte per block of 32 FP4 values.
MXFP4_BLOCK_SIZE = 32
MXFP4_SCALE_BYTES = 1
#: nvfp4: one E4M3 scale byte per block of 16 FP4 values (plus one fp32 scale per tensor, negligible).
NVFP4_BLOCK_SIZE = 16
NVFP4_SCALE_BYTES = 1


def matrix_bytes(quantisable_params: float, weight_dtype: str, shard: str = "split") -> float:
    """Bytes of `quantisable_params` matrix weights of one shard kind stored in `weight_dtype`, scales included."""
    if weight_dtype == "mxfp4" and shard != "experts":
        weight_dtype = "bf16"  # mxfp4 checkpoints quantise the routed experts only
    out = quantisable_params * WEIGHT_DTYPES[weight_dtype]
    if weight_dtype == "int4":
        out += quantisable_params / INT4_GROUP_SIZE * INT4_SCALE_BYTES
    elif weight_dtype == "mxfp4":
        out += quantisable_params / MXFP4_BLOCK_SIZE * MXFP4_SCALE_BYTES
    elif weight_dtype == "nvfp4":
        out += quantisable_params / NVFP4_BLOCK_SIZE * NVFP4_SCALE_BYTES
    return out


def dtype_problem(kind: str, name: str) -> str | None:
    """Why `name` is not a known `kind` ("weight" or "KV") dtype, or None."""
    table = WEIGHT_DTYPES if kind == "weight" else KV_DTYPES
    return None if name in table else f"unknown {kind} dtype '{name}': choose one of {', '.join(table)}"


def check_weight_dtype(name: str) -> str:
    if problem := dtype_problem("weight", name):
        raise InputError(problem)
    return name


def check_kv_dtype(name: str) -> str:
    if problem := dtype_problem("KV", name):
        raise InputError(problem)
    return name
