"""Launch configs for serving engines, one module per engine: a Plan becomes one bash script per node."""

from __future__ import annotations

from pathlib import Path

from planner.errors import InputError
from planner.launch.common import LaunchBundle
from planner.plan import Plan

ENGINES = ("vllm", "sglang", "trtllm", "torchrun")


def render(plan: Plan, engine: str, *, model_path: str | None = None, port: int | None = None,
           plan_path: str = "plan.json", extra_args: str | None = None, device: str = "gpu") -> LaunchBundle:
    from planner.plan_io import plan_inputs

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
