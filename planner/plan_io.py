"""Reading a plan file: one function every command uses (launch, validate, bench).

A plan is checked on load: its schema and version, its model and topology (found again and compared
by hash with the ones it was made from), and its partition against them (layer coverage, GPU ids,
tp/dp/ep rules), so a hand-edited or stale plan fails with one line instead of emitting a script.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from planner.errors import ConfigError, InputError, PartitionError, config_error
from planner.files import parse_json, read_text
from planner.hardware import load_topology
from planner.hardware.topology import Topology
from planner.model.catalog import load_profile
from planner.model.checks import check_workload
from planner.model.layergraph import ModelProfile
from planner.plan import Plan, validate_partition


@dataclass(frozen=True)
class LoadedPlan:
    plan: Plan
    profile: ModelProfile
    topo: Topology
    path: str


def parse_plan(text: str, source: str) -> Plan:
    data = parse_json(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: not a planner Plan (a JSON object with plan_version, inputs and stages)")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc, "not a planner Plan: ") from None


def plan_inputs(plan: Plan, source: str = "the plan") -> tuple[Topology, ModelProfile]:
    """The topology and the traced model a plan was made from; fails if either changed since."""
    topo = load_topology(plan.inputs.topology_source)
    if topo.hash != plan.inputs.topology_hash:
        raise InputError(
            f"{source}: topology {plan.inputs.topology_source} changed since the plan was made "
            f"(hash {topo.hash}, plan says {plan.inputs.topology_hash}): solve again"
        )
    model = plan.inputs.model_source
    for prefix in ("catalog:", "hub:"):
        model = model.removeprefix(prefix)
    profile = load_profile(model)
    if profile.config_hash != plan.inputs.config_hash:
        raise InputError(
            f"{source}: the model config {plan.inputs.model_source} changed since the plan was made "
            f"(hash {profile.config_hash}, plan says {plan.inputs.config_hash}): solve again"
        )
    return topo, profile


def load_plan(path: str | Path) -> LoadedPlan:
    """A plan file, checked against the model and topology it names."""
    source = str(path)
    plan = parse_plan(read_text(path, "the plan"), source)
    topo, profile = plan_inputs(plan, source)
    try:
        validate_partition(plan.partition, profile, topo)
    except PartitionError as exc:
        raise PartitionError(f"{source}: {exc.message}") from None

    try:
        check_workload(profile, plan.inputs.workload)
    except InputError as exc:
        raise InputError(f"{source}: {exc.message}") from None
    return LoadedPlan(plan, profile, topo, source)
