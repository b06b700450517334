"""Bytes per element of the weight, KV-cache and activation dtypes the planner knows.

Quantised weight dtypes (fp8, int4) apply to the matrices of the decoder layers (attention
projections, MLPs, experts). Embeddings, lm_head, norms, biases and MoE routers stay in 16-bit,
as vLLM's fp8 and AWQ/GPTQ int4 checkpoints keep them.
"""

from __future__ import annotations

from typing import Literal

WeightDtype = Literal["bf16", "fp16", "fp8", "int4"]
KvDtype = Literal["bf16", "fp16", "fp8"]

WEIGHT_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int4": 0.5}
KV_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0}

#: Bytes of everything that is not a quantised matrix (embeddings, norms, biases, routers).
UNQUANTISED_BYTES = 2.0
#: Activations and all-reduce messages travel in 16-bit.
ACTIVATION_BYTES = 2

#: int4 (AWQ/GPTQ) stores one fp16 scale per group of 128 weights: 2 bytes / 128 weights.
INT4_GROUP_SIZE = 128
INT4_SCALE_BYTES = 2


def matrix_bytes(quantisable_params: float, weight_dtype: str) -> float:
    """Bytes of `quantisable_params` matrix weights stored in `weight_dtype`, scales included."""
    per = WEIGHT_DTYPES[weight_dtype]
    out = quantisable_params * per
    if weight_dtype == "int4":
        out += quantisable_params / INT4_GROUP_SIZE * INT4_SCALE_BYTES
    return out


def dtype_problem(kind: str, name: str) -> str | None:
    """Why `name` is not a known `kind` ("weight" or "KV") dtype, or None."""
    table = WEIGHT_DTYPES if kind == "weight" else KV_DTYPES
    return None if name in table else f"unknown {kind} dtype '{name}': choose one of {', '.join(table)}"


def check_weight_dtype(name: str) -> str:
    from planner.errors import InputError

    if problem := dtype_problem("weight", name):
        raise InputError(problem)
    return name


def check_kv_dtype(name: str) -> str:
    from planner.errors import InputError

    if problem := dtype_problem("KV", name):
        raise InputError(problem)
    return name
