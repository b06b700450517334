"""Launch configs for serving engines, one module per engine: a Plan becomes one bash script per node."""

from __future__ import annotations

from pathlib import Path

from planner.errors import ConfigError, InputError
from planner.launch.common import LaunchBundle
from planner.plan import Plan

ENGINES = ("vllm", "sglang", "trtllm", "torchrun")


def load_plan(path: str) -> Plan:
    from pydantic import ValidationError

    from planner.topology import validation_messages

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the plan ({exc.strerror or exc})") from None
    try:
        return Plan.model_validate_json(text)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        raise ConfigError(f"{path}: not a planner Plan: {msgs[0]}", details=msgs[1:]) from None


def plan_inputs(plan: Plan):
    """The topology and the traced model a plan was made from; fails if the topology changed."""
    from planner.models import load_profile
    from planner.topology import load_topology

    topo = load_topology(plan.inputs.topology_source)
    if topo.hash != plan.inputs.topology_hash:
        raise InputError(f"topology {plan.inputs.topology_source} changed since the plan was made "
                         f"(hash {topo.hash}, plan says {plan.inputs.topology_hash}): solve again")
    source = plan.inputs.model_source
    for prefix in ("catalog:", "hub:"):
        source = source.removeprefix(prefix)
    return topo, load_profile(source)


def render(plan: Plan, engine: str, *, model_path: str | None = None, port: int | None = None,
           plan_path: str = "plan.json") -> LaunchBundle:
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    topo, profile = plan_inputs(plan)
    from importlib import import_module

    module = import_module(f"planner.launch.{engine}")
    kwargs = {"model_path": model_path, "plan_path": plan_path}
    if port is not None:
        kwargs["port"] = port
    return module.render(plan, topo, profile, **kwargs)


def write_bundle(bundle: LaunchBundle, out_dir: str) -> list[Path]:
    d = Path(out_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in {**bundle.scripts, **bundle.extra_files}.items():
            path = d / name
            path.write_text(text)
            if name.endswith(".sh"):
                path.chmod(0o755)
            written.append(path)
    except OSError as exc:
        raise InputError(f"{out_dir}: cannot write the scripts ({exc.strerror or exc})") from None
    return written
