"""vLLM (`vllm serve`): single node with its multiprocessing executor, several nodes through Ray.

Ranks run stage-major (rank = pp_rank x tp + tp_rank) and rank r takes the r-th visible GPU, so
CUDA_VISIBLE_DEVICES lists each stage's GPUs in order: every TP group lands on the GPUs the plan
chose. Uneven stages go through VLLM_PP_LAYER_PARTITION. Replicas are separate servers on
disjoint GPUs and consecutive ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from planner.launch.common import (
    LaunchBundle, batch_limit_per_dp_rank, command, header, layer_partition, model_arg, q, replica_nodes,
    uniform_layout)

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.cost.shards import Layout
    from planner.plan import Plan

ENGINE_VERSION = "0.33.0"
RAY_PORT = 6379


def quant_flags(plan: Plan) -> list[str]:
    w = plan.inputs.workload
    flags = []
    if w.weight_dtype == "fp8":
        flags += ["--quantization", "fp8"]
    elif w.weight_dtype == "int4":
        flags += ["--quantization", "awq"]  # an int4 group-128 checkpoint (AWQ); use gptq for GPTQ ones
    if w.kv_dtype == "fp8":
        flags += ["--kv-cache-dtype", "fp8"]
    return flags


def serve_command(plan: Plan, layout: Layout, model: str, port: int, multi_node: bool) -> list[str]:
    """`vllm serve` with the plan's layout: attention DP ranks (`--data-parallel-size`, each with its own
    scheduler, so `--max-num-seqs` is per rank) and expert parallelism (`--enable-expert-parallel`: the MoE
    layers' experts split over the tp x dp GPUs)."""
    w = plan.inputs.workload
    parts = ["vllm", "serve", q(model),
             "--tensor-parallel-size", str(layout.tp),
             "--pipeline-parallel-size", str(len(plan.stages))]
    if layout.dp > 1:
        parts += ["--data-parallel-size", str(layout.dp)]
    if layout.ep > 1:
        parts += ["--enable-expert-parallel"]
    parts += ["--max-model-len", str(w.isl + w.osl),
              "--gpu-memory-utilization", f"{w.gpu_memory_fraction:g}",
              "--max-num-seqs", str(batch_limit_per_dp_rank(plan, layout.dp)),
              *quant_flags(plan),
              "--port", str(port)]
    if multi_node:
        parts += ["--distributed-executor-backend", "ray"]
    return parts


def render(plan: Plan, topo: Topology, profile: ModelProfile, *, model_path: str | None = None,
           port: int | None = 8000, plan_path: str = "plan.json") -> LaunchBundle:
    layout = uniform_layout(plan, "vLLM", profile, topo)
    model = model_arg(plan, model_path)
    partition = layer_partition(plan)
    scripts: dict[str, str] = {}
    summary = []
    per_node: dict[str, list[str]] = {}
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        rport = port + r
        env = [f"export VLLM_PP_LAYER_PARTITION={q(partition)}  # uneven stages: layers per stage"] if partition else []
        if len(nodes) == 1:
            n = nodes[0]
            lines = [f"# replica {r}: GPUs {','.join(map(str, n.global_ids))} of node {n.node}, port {rport}",
                     "# CUDA_VISIBLE_DEVICES lists stage 0's TP group, then stage 1's, ...: rank r runs on its r-th entry",
                     f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}", *env,
                     command(serve_command(plan, layout, model, rport, False)) + f" &> vllm-replica{r}.log &",
                     f"echo \"replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)\"", ""]
            per_node.setdefault(n.node, []).extend(lines)
            summary.append(f"replica {r}: node {n.node}, CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}, port {rport}")
            continue
        head = nodes[0]
        head_addr = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {head.node}}}"
        for k, n in enumerate(nodes):
            lines = [f"# replica {r}: node {n.node} holds ranks for GPUs {','.join(map(str, n.global_ids))}"
                     f" ({'Ray head' if k == 0 else 'Ray worker'})",
                     f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}", *env]
            if k == 0:
                lines += [f"ray start --head --port={RAY_PORT} --num-gpus={len(n.local_indices)}",
                          "# start the worker scripts on the other nodes now",
                          f"until python3 -c \"import ray, sys; ray.init(address='auto', logging_level='ERROR'); "
                          f"sys.exit(ray.cluster_resources().get('GPU', 0) < {sum(len(x.local_indices) for x in nodes)})\"; "
                          "do sleep 5; done  # wait for every worker node's GPUs",
                          command(serve_command(plan, layout, model, rport, True)) + f" &> vllm-replica{r}.log &",
                          f"echo \"replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)\""]
            else:
                lines += [f"ray start --address={head_addr}:{RAY_PORT} --num-gpus={len(n.local_indices)} --block &"]
            lines.append("")
            per_node.setdefault(n.node, []).extend(lines)
        summary.append(f"replica {r}: Ray head on {head.node}, workers on {', '.join(n.node for n in nodes[1:])}, port {rport}")
    for node, lines in per_node.items():
        head = header(plan, "vllm", ENGINE_VERSION, plan_path, f"vLLM launch for node {node}")
        scripts[f"vllm-{node}.sh"] = "\n".join(head + lines + ["wait"]) + "\n"
    if partition:
        summary.append(f"uneven stages: VLLM_PP_LAYER_PARTITION={partition}")
    return LaunchBundle(engine="vllm", engine_version=ENGINE_VERSION, scripts=scripts, summary=summary)
