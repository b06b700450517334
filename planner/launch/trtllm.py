"""TensorRT-LLM (`trtllm-serve`, PyTorch backend). Flags cover TP, PP, batch, sequence length and the
KV-cache memory fraction; the KV dtype goes in an extra options YAML. Several nodes: one mpirun
from the first node starts every rank. TensorRT-LLM splits layers evenly, so an uneven plan is
refused with the closest even plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.errors import UnsupportedPlanError
from planner.launch.common import (
    LaunchBundle,
    NodeSlice,
    ServingLimits,
    batch_limit_per_dp_rank,
    closest_uniform,
    command,
    flag_args,
    layer_partition,
    model_arg,
    node_scripts,
    q,
    refuse_offload,
    replica_nodes,
    serving_limits,
    uniform_layout,
)
from planner.model.checks import without_fp8_units

if TYPE_CHECKING:
    from planner.cost.shards import Layout
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Plan

ENGINE_VERSION = "main@00209af"  # tensorrt_llm/commands/serve.py at that commit
#: The extra options YAML written beside the scripts (trtllm-serve --extra_llm_api_options).
OPTIONS_FILE = "trtllm-extra-options.yaml"


def refuse_fp8_without_units(plan: Plan) -> None:
    """Exit 2 for fp8 weights on GPUs without fp8 tensor cores: TensorRT-LLM's fp8 runs on them only."""
    lacking = without_fp8_units((s.gpu_type for s in plan.prediction.stages), plan.inputs.workload.weight_dtype)
    if lacking:
        raise UnsupportedPlanError(
            f"TensorRT-LLM runs fp8 weights on fp8 tensor cores; {', '.join(lacking)} has none",
            details=["emit for vllm (weight-only FP8 Marlin kernels), or solve with --weight-dtype int4 or bf16"],
        )


def _refuse(plan: Plan, profile: ModelProfile, topo: Topology) -> Layout:
    """The plan's one layout; exit 2 for what TensorRT-LLM cannot run: mixed layouts, streamed weights, fp8 without
    fp8 tensor cores, uneven stages (with the closest even plan)."""
    layout = uniform_layout(plan, "TensorRT-LLM", profile, topo)
    refuse_offload(plan, "TensorRT-LLM")
    refuse_fp8_without_units(plan)
    if layer_partition(plan):
        raise UnsupportedPlanError(
            f"TensorRT-LLM splits layers evenly across pipeline stages; this plan's stages hold "
            f"{','.join(map(str, plan.partition.layer_counts()))} layers",
            details=closest_uniform(plan, profile, topo, even_layers=True),
        )
    return layout


def extra_options(plan: Plan, layout: Layout) -> str:
    """trtllm-extra-options.yaml: the KV cache's memory fraction and dtype, and attention data parallelism."""
    w = plan.inputs.workload
    options = [
        "# trtllm-serve --extra_llm_api_options: what the flags do not cover",
        "kv_cache_config:",
        f"  free_gpu_memory_fraction: {w.gpu_memory_fraction:g}",
    ]
    if w.kv_dtype == "fp8":
        options.append("  dtype: fp8")
    if layout.dp > 1:  # attention data parallelism: each of the tp_size ranks runs attention for its own sequences
        options.append("enable_attention_dp: true")
    return "\n".join(options) + "\n"


def serve_command(
    plan: Plan, layout: Layout, model: str, port: int, *, limits: ServingLimits, extra_args: Sequence[str] = ()
) -> list[str]:
    """`trtllm-serve` (PyTorch backend) with the plan's layout, batch limit per DP rank and served length."""
    w = plan.inputs.workload
    return [
        "trtllm-serve",
        q(model),
        *flag_args(
            {
                "--backend": "pytorch",
                "--tp_size": layout.tp * layout.dp,
                "--pp_size": len(plan.stages),
                "--ep_size": layout.ep if layout.ep > 1 else None,
                "--max_batch_size": batch_limit_per_dp_rank(plan, layout.dp),
                "--max_seq_len": limits.max_model_len,
                "--kv_cache_free_gpu_memory_fraction": f"{w.gpu_memory_fraction:g}",
                "--host": "0.0.0.0",
                "--port": port,
                "--extra_llm_api_options": OPTIONS_FILE,
            }
        ),
        *(q(a) for a in extra_args),
    ]


def _single_node(r: int, n: NodeSlice, serve: list[str]) -> list[str]:
    """One replica on one node: its GPUs in rank order, the server, its log."""
    return [
        f"# replica {r}: GPUs {','.join(map(str, n.global_ids))}; ranks are stage-major",
        f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
        command(serve) + f" &> trtllm-replica{r}.log &",
        "",
    ]


def _mpirun_nodes(r: int, nodes: list[NodeSlice], serve: list[str]) -> dict[str, list[str]]:
    """One replica over several nodes: one mpirun on the first node starts every rank; the other nodes only make
    their GPUs visible to the ranks it starts there."""
    head = nodes[0]
    hosts = ",".join(
        f"${{HOST_{n.node_index}:?set HOST_{n.node_index} to node {n.node}}}:{len(n.local_indices)}" for n in nodes
    )
    total = sum(len(n.local_indices) for n in nodes)
    mpirun = ["mpirun", "-H", hosts, "-n", str(total), "-x", "CUDA_VISIBLE_DEVICES", "trtllm-llmapi-launch", *serve]
    out = {
        head.node: [
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, head.local_indices))}",
            f"# replica {r}: one mpirun here starts all {total} ranks on {', '.join(n.node for n in nodes)}",
            "# (passwordless ssh between the nodes; each node exports its CUDA_VISIBLE_DEVICES below)",
            command(mpirun) + f" &> trtllm-replica{r}.log &",
            "",
        ]
    }
    for n in nodes[1:]:
        out[n.node] = [
            f"# replica {r}: ranks on this node are started by mpirun from {head.node}; make its GPUs visible",
            f"echo 'export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}' >> ~/.bashrc",
            "",
        ]
    return out


def render(
    plan: Plan,
    topo: Topology,
    profile: ModelProfile,
    *,
    model_path: str | None = None,
    port: int | None = 8000,
    plan_path: str = "plan.json",
    extra_args: Sequence[str] = (),
    limits: ServingLimits | None = None,
) -> LaunchBundle:
    layout = _refuse(plan, profile, topo)
    limits = limits or serving_limits(plan, profile, topo, None)
    model = model_arg(plan, model_path)
    per_node: dict[str, list[str]] = {}
    summary = []
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        serve = serve_command(plan, layout, model, port + r, limits=limits, extra_args=extra_args)
        spread = (
            {nodes[0].node: _single_node(r, nodes[0], serve)} if len(nodes) == 1 else _mpirun_nodes(r, nodes, serve)
        )
        for node, lines in spread.items():
            per_node.setdefault(node, []).extend(lines)
        summary.append(f"replica {r}: {' + '.join(n.node for n in nodes)}, port {port + r}")
    scripts = node_scripts(
        plan,
        per_node,
        engine="trtllm",
        version=ENGINE_VERSION,
        plan_path=plan_path,
        what="TensorRT-LLM launch",
        limits=limits,
    )
    return LaunchBundle(
        engine="trtllm",
        engine_version=ENGINE_VERSION,
        scripts=scripts,
        extra_files={OPTIONS_FILE: extra_options(plan, layout)},
        summary=summary,
    )
