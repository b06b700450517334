"""Checks of a workload against the model it runs on."""

from __future__ import annotations

from planner.errors import InputError
from planner.model.layergraph import ModelProfile


def check_workload(profile: ModelProfile, workload) -> None:
    """isl + osl must fit the model's context (its rope-scaled length where the config scales it)."""
    limit = profile.context_length
    total = workload.isl + workload.osl
    if limit and total > limit:
        raise InputError(f"--isl {workload.isl} + --osl {workload.osl} = {total:,} tokens exceeds {profile.name}'s "
                         f"context of {limit:,} tokens")
