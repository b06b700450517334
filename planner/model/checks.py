"""Checks of a workload against the model it runs on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.errors import InputError
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
