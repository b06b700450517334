"""The layouts a stage may take: tensor-parallel degree, attention data-parallel ranks, expert parallelism.

A dense model's stage is tp GPUs (tp divides its heads and widths). A mixture-of-experts model's stage
may also run attention data-parallel over dp ranks of tp GPUs each, and its routed experts either
sliced by tp (ep = 1) or whole, E/ep per GPU (ep = tp x dp). What the engines run (vLLM, SGLang,
TensorRT-LLM, read from their argument definitions; README.md, "Launch a plan"): one layout for every pipeline
stage, and data-parallel attention without pipeline stages. `any_shape` offers the others too.
"""

from __future__ import annotations

from typing import Sequence

from planner.cost.shards import Layout
from planner.model.layergraph import ModelProfile
from planner.plan import Stage, tp_problems


def layouts_for(profile: ModelProfile, gpus: int, max_tp: int | None = None) -> list[Layout]:
    """Every valid (tp, dp, ep) on `gpus` GPUs, tp first, then attention data parallelism."""
    out = []
    moe = profile.moe
    for tp in range(1, gpus + 1):
        if gpus % tp or (max_tp is not None and tp > max_tp):
            continue
        dp = gpus // tp
        if moe is None:
            if dp == 1 and not tp_problems(profile, tp):
                out.append(Layout(tp, 1, 1))
            continue
        if not tp_problems(profile, tp):
            out.append(Layout(tp, dp, 1))
        if gpus > 1 and moe.n_experts % gpus == 0 and not tp_problems(profile, tp, experts_split=False):
            out.append(Layout(tp, dp, gpus))
    return out


def engine_runnable(layouts: list[Layout], pp: int) -> bool:
    """Whether vLLM or SGLang runs stages of these layouts: one layout, and no attention DP with PP."""
    if len(set(layouts)) != 1:
        return False
    return pp == 1 or layouts[0].dp == 1


def engines_for(stages: Sequence[Stage], uneven: bool) -> list[str]:
    """Engines that run a plan as it is: one layout everywhere (TensorRT-LLM also needs even stages and has no
    weight offloading)."""
    layouts = [Layout(s.tp, s.dp, s.ep) for s in stages]
    if not engine_runnable(layouts, len(stages)):
        return []
    streams = any(getattr(s, "offload_layers", None) for s in stages)
    return ["vllm", "sglang"] + ([] if uneven or streams else ["trtllm"])
