"""SGLang (`python -m sglang.launch_server`): one command per node; several nodes through
--nnodes/--node-rank/--dist-init-addr. Ranks are stage-major like vLLM's, so CUDA_VISIBLE_DEVICES
lists each stage's GPUs in order; uneven stages go through SGLANG_PP_LAYER_PARTITION."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.errors import UnsupportedPlanError
from planner.launch.common import (
    LaunchBundle,
    NodeSlice,
    ServingLimits,
    command,
    flag_args,
    layer_partition,
    model_arg,
    node_scripts,
    offload_gib_per_gpu,
    per_replica_concurrency,
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

ENGINE_VERSION = "0.5.23"
DIST_PORT = 5000
#: --quantization for the plan's weight dtype (int4: an AWQ checkpoint); bf16 and fp16 need none.
QUANTIZATION = {"fp8": "fp8", "int4": "awq"}


def layout_flags(layout: Layout) -> list[str]:
    """SGLang's `--tp-size` counts every GPU of a stage; attention data parallelism splits them into dp ranks
    (`--dp-size`, `--enable-dp-attention`); `--ep-size` splits the experts, with DeepEP's all-to-all
    (`--moe-a2a-backend deepep`) as the cost model prices it. `--max-running-requests` is the server's total."""
    flags = ["--tp-size", str(layout.tp * layout.dp)]
    if layout.dp > 1:
        flags += ["--dp-size", str(layout.dp), "--enable-dp-attention"]
    if layout.ep > 1:
        flags += ["--ep-size", str(layout.ep), "--moe-a2a-backend", "deepep"]
    return flags


def server_command(
    plan: Plan, layout: Layout, model: str, port: int, *, limits: ServingLimits, offload_gib: int = 0
) -> list[str]:
    """`python -m sglang.launch_server` with the plan's layout, batch limit, served length and dtypes, on `port`."""
    w = plan.inputs.workload
    return [
        "python",
        "-m",
        "sglang.launch_server",
        "--model-path",
        q(model),
        *layout_flags(layout),
        *flag_args(
            {
                "--pp-size": len(plan.stages),
                "--mem-fraction-static": f"{w.gpu_memory_fraction:g}",
                "--max-running-requests": per_replica_concurrency(plan),
                "--context-length": limits.max_model_len,
                "--port": port,
                "--quantization": QUANTIZATION.get(w.weight_dtype),
                "--kv-cache-dtype": "fp8_e4m3" if w.kv_dtype == "fp8" else None,
                "--cpu-offload-gb": offload_gib or None,  # weights the plan streams from host memory, per GPU
            }
        ),
    ]


def _check_even_nodes(r: int, nodes: list[NodeSlice]) -> None:
    """SGLang starts the same number of ranks on every node of a replica: refuse a replica that is uneven."""
    if len({len(n.local_indices) for n in nodes}) > 1:
        raise UnsupportedPlanError(
            f"SGLang needs the same number of GPUs on every node; replica {r} uses "
            f"{', '.join(f'{len(n.local_indices)} on {n.node}' for n in nodes)}",
            details=["re-solve with --gpu-ids so that each node holds whole stages of equal size"],
        )


def _node_lines(
    r: int, k: int, nodes: list[NodeSlice], server: list[str], *, partition: str | None, extra_args: Sequence[str]
) -> list[str]:
    """Node rank `k` of replica `r`: its GPUs in rank order, the server (several nodes: with its node rank and the
    first node's address) and --extra-args, its log."""
    n = nodes[k]
    if len(nodes) > 1:
        head = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}:{DIST_PORT + r}"
        server = server + flag_args({"--nnodes": len(nodes), "--node-rank": k, "--dist-init-addr": head})
    lines = [
        f"# replica {r}, node rank {k} of {len(nodes)}: GPUs {','.join(map(str, n.global_ids))}",
        "# CUDA_VISIBLE_DEVICES lists stage 0's TP group, then stage 1's, ...",
        f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
    ]
    if partition:
        lines.append(f"export SGLANG_PP_LAYER_PARTITION={q(partition)}  # uneven stages: layers per stage")
    return lines + [command(server + [q(a) for a in extra_args]) + f" &> sglang-replica{r}-node{k}.log &", ""]


def render(
    plan: Plan,
    topo: Topology,
    profile: ModelProfile,
    *,
    model_path: str | None = None,
    port: int | None = 30000,
    plan_path: str = "plan.json",
    extra_args: Sequence[str] = (),
    limits: ServingLimits | None = None,
) -> LaunchBundle:
    layout = uniform_layout(plan, "SGLang", profile, topo)
    limits = limits or serving_limits(plan, profile, topo, None)
    model = model_arg(plan, model_path)
    partition = layer_partition(plan)
    offload = offload_gib_per_gpu(plan, profile)
    per_node: dict[str, list[str]] = {}
    summary = (
        [
            f"--cpu-offload-gb {offload}: the plan streams that much of each GPU's weights from host memory "
            "(SGLang chooses the layers)"
        ]
        if offload
        else []
    )
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        _check_even_nodes(r, nodes)
        server = server_command(plan, layout, model, port + r, limits=limits, offload_gib=offload)
        for k, n in enumerate(nodes):
            per_node.setdefault(n.node, []).extend(
                _node_lines(r, k, nodes, server, partition=partition, extra_args=extra_args)
            )
        summary.append(f"replica {r}: {' + '.join(n.node for n in nodes)}, port {port + r}")
    scripts = node_scripts(
        plan,
        per_node,
        engine="sglang",
        version=ENGINE_VERSION,
        plan_path=plan_path,
        what="SGLang launch",
        limits=limits,
    )
    if partition:
        summary.append(f"uneven stages: SGLANG_PP_LAYER_PARTITION={partition}")
    return LaunchBundle(engine="sglang", engine_version=ENGINE_VERSION, scripts=scripts, summary=summary)
