"""TensorRT-LLM (`trtllm-serve`, PyTorch backend). Flags cover TP, PP, batch, sequence length and the
KV-cache memory fraction; the KV dtype goes in an extra options YAML. Several nodes: one mpirun
from the first node starts every rank. TensorRT-LLM splits layers evenly, so an uneven plan is
refused with the closest even plan."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.errors import UnsupportedPlanError
from planner.launch.common import (
    LaunchBundle,
    ServingLimits,
    batch_limit_per_dp_rank,
    closest_uniform,
    command,
    header,
    layer_partition,
    model_arg,
    q,
    refuse_offload,
    replica_nodes,
    serving_limits,
    uniform_layout,
)
from planner.model.checks import without_fp8_units

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Plan

ENGINE_VERSION = "main@00209af"  # tensorrt_llm/commands/serve.py at that commit


def refuse_fp8_without_units(plan: Plan) -> None:
    """Exit 2 for fp8 weights on GPUs without fp8 tensor cores: TensorRT-LLM's fp8 runs on them only."""
    lacking = without_fp8_units((s.gpu_type for s in plan.prediction.stages), plan.inputs.workload.weight_dtype)
    if lacking:
        raise UnsupportedPlanError(f"TensorRT-LLM runs fp8 weights on fp8 tensor cores; {', '.join(lacking)} has none",
                                   details=["emit for vllm (weight-only FP8 Marlin kernels), or solve with "
                                            "--weight-dtype int4 or bf16"])


def render(plan: Plan, topo: Topology, profile: ModelProfile, *, model_path: str | None = None,
           port: int | None = 8000, plan_path: str = "plan.json", extra_args: Sequence[str] = (),
           limits: ServingLimits | None = None) -> LaunchBundle:
    layout = uniform_layout(plan, "TensorRT-LLM", profile, topo)
    refuse_offload(plan, "TensorRT-LLM")
    refuse_fp8_without_units(plan)
    if layer_partition(plan):
        raise UnsupportedPlanError(
            f"TensorRT-LLM splits layers evenly across pipeline stages; this plan's stages hold "
            f"{','.join(map(str, plan.partition.layer_counts()))} layers",
            details=closest_uniform(plan, profile, topo, even_layers=True))
    w = plan.inputs.workload
    limits = limits or serving_limits(plan, profile, topo, None)
    model = model_arg(plan, model_path)
    options = ["# trtllm-serve --extra_llm_api_options: what the flags do not cover",
               "kv_cache_config:", f"  free_gpu_memory_fraction: {w.gpu_memory_fraction:g}"]
    if w.kv_dtype == "fp8":
        options.append("  dtype: fp8")
    if layout.dp > 1:  # attention data parallelism: each of the tp_size ranks runs attention for its own sequences
        options.append("enable_attention_dp: true")
    extra = {"trtllm-extra-options.yaml": "\n".join(options) + "\n"}
    per_node: dict[str, list[str]] = {}
    summary = []
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        rport = port + r
        serve = ["trtllm-serve", q(model), "--backend", "pytorch", "--tp_size", str(layout.tp * layout.dp),
                 "--pp_size", str(len(plan.stages)), *(["--ep_size", str(layout.ep)] if layout.ep > 1 else []),
                 "--max_batch_size", str(batch_limit_per_dp_rank(plan, layout.dp)), "--max_seq_len",
                 str(limits.max_model_len),
                 "--kv_cache_free_gpu_memory_fraction", f"{w.gpu_memory_fraction:g}",
                 "--host", "0.0.0.0", "--port", str(rport), "--extra_llm_api_options", "trtllm-extra-options.yaml",
                 *(q(a) for a in extra_args)]
        head = nodes[0]
        if len(nodes) == 1:
            lines = [f"# replica {r}: GPUs {','.join(map(str, head.global_ids))}; ranks are stage-major",
                     f"export CUDA_VISIBLE_DEVICES={','.join(map(str, head.local_indices))}",
                     command(serve) + f" &> trtllm-replica{r}.log &", ""]
            per_node.setdefault(head.node, []).extend(lines)
        else:
            hosts = ",".join(f"${{HOST_{n.node_index}:?set HOST_{n.node_index} to node {n.node}}}:{len(n.local_indices)}"
                             for n in nodes)
            total = sum(len(n.local_indices) for n in nodes)
            lines = [f"# replica {r}: one mpirun here starts all {total} ranks on {', '.join(n.node for n in nodes)}",
                     "# (passwordless ssh between the nodes; each node exports its CUDA_VISIBLE_DEVICES below)",
                     command(["mpirun", "-H", hosts, "-n", str(total),
                              "-x", "CUDA_VISIBLE_DEVICES", "trtllm-llmapi-launch", *serve]) + f" &> trtllm-replica{r}.log &", ""]
            per_node.setdefault(head.node, []).extend(
                [f"export CUDA_VISIBLE_DEVICES={','.join(map(str, head.local_indices))}", *lines])
            for n in nodes[1:]:
                per_node.setdefault(n.node, []).extend([
                    f"# replica {r}: ranks on this node are started by mpirun from {head.node}; make its GPUs visible",
                    f"echo 'export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}' >> ~/.bashrc", ""])
        summary.append(f"replica {r}: {' + '.join(n.node for n in nodes)}, port {rport}")
    scripts = {f"trtllm-{node}.sh": "\n".join(header(plan, "trtllm", ENGINE_VERSION, plan_path,
                                                      f"TensorRT-LLM launch for node {node}", limits=limits) + lines + ["wait"]) + "\n"
               for node, lines in per_node.items()}
    return LaunchBundle(engine="trtllm", engine_version=ENGINE_VERSION, scripts=scripts, extra_files=extra, summary=summary)
