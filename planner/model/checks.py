"""Checks of a workload against the model it runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.errors import InputError
from planner.model.catalog import native_weight_dtype
from planner.model.layergraph import ModelProfile

if TYPE_CHECKING:
    from planner.plan import Workload


def check_workload(profile: ModelProfile, workload: Workload) -> None:
    """isl + osl must fit the model's context (its rope-scaled length where the config scales it)."""
    limit = profile.context_length
    total = workload.isl + workload.osl
    if limit and total > limit:
        raise InputError(f"--isl {workload.isl} + --osl {workload.osl} = {total:,} tokens exceeds {profile.name}'s "
                         f"context of {limit:,} tokens")


def with_native_dtype(workload: Workload, model: str) -> Workload:
    """The workload with the model's own checkpoint dtype for its weights where `--weight-dtype` was not given
    (fp8 for DeepSeek-V3/R1 and Kimi-K2, mxfp4 for gpt-oss, a config's quantization_config, else bf16)."""
    if "weight_dtype" in workload.model_fields_set:
        return workload

    return workload.model_copy(update={"weight_dtype": native_weight_dtype(model)})
