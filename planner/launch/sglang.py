"""SGLang (`python -m sglang.launch_server`): one command per node; several nodes through
--nnodes/--node-rank/--dist-init-addr. Ranks are stage-major like vLLM's, so CUDA_VISIBLE_DEVICES
lists each stage's GPUs in order; uneven stages go through SGLANG_PP_LAYER_PARTITION."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.errors import UnsupportedPlanError
from planner.launch.common import (
    LaunchBundle,
    ServingLimits,
    command,
    header,
    layer_partition,
    model_arg,
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


def render(plan: Plan, topo: Topology, profile: ModelProfile, *, model_path: str | None = None,
           port: int | None = 30000, plan_path: str = "plan.json", extra_args: Sequence[str] = (),
           limits: ServingLimits | None = None) -> LaunchBundle:
    layout = uniform_layout(plan, "SGLang", profile, topo)
    limits = limits or serving_limits(plan, profile, topo, None)
    w = plan.inputs.workload
    model = model_arg(plan, model_path)
    partition = layer_partition(plan)
    offload = offload_gib_per_gpu(plan, profile)
    per_node: dict[str, list[str]] = {}
    summary = [f"--cpu-offload-gb {offload}: the plan streams that much of each GPU's weights from host memory "
               "(SGLang chooses the layers)"] if offload else []
    for r in range(plan.replicas):
        nodes = replica_nodes(plan, topo, r)
        rport = port + r
        sizes = {len(n.local_indices) for n in nodes}
        if len(sizes) > 1:
            raise UnsupportedPlanError(
                f"SGLang needs the same number of GPUs on every node; replica {r} uses "
                f"{', '.join(f'{len(n.local_indices)} on {n.node}' for n in nodes)}",
                details=["re-solve with --gpu-ids so that each node holds whole stages of equal size"])
        for k, n in enumerate(nodes):
            parts = ["python", "-m", "sglang.launch_server", "--model-path", q(model),
                     *layout_flags(layout), "--pp-size", str(len(plan.stages)),
                     "--mem-fraction-static", f"{w.gpu_memory_fraction:g}",
                     "--max-running-requests", str(per_replica_concurrency(plan)),
                     "--context-length", str(limits.max_model_len), "--port", str(rport)]
            if w.weight_dtype == "fp8":
                parts += ["--quantization", "fp8"]
            elif w.weight_dtype == "int4":
                parts += ["--quantization", "awq"]
            if w.kv_dtype == "fp8":
                parts += ["--kv-cache-dtype", "fp8_e4m3"]
            if offload:  # weights the plan streams from host memory, per GPU
                parts += ["--cpu-offload-gb", str(offload)]
            if len(nodes) > 1:
                parts += ["--nnodes", str(len(nodes)), "--node-rank", str(k),
                          "--dist-init-addr", f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}:{DIST_PORT + r}"]
            lines = [f"# replica {r}, node rank {k} of {len(nodes)}: GPUs {','.join(map(str, n.global_ids))}",
                     "# CUDA_VISIBLE_DEVICES lists stage 0's TP group, then stage 1's, ...",
                     f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}"]
            if partition:
                lines.append(f"export SGLANG_PP_LAYER_PARTITION={q(partition)}  # uneven stages: layers per stage")
            lines += [command(parts + [q(a) for a in extra_args]) + f" &> sglang-replica{r}-node{k}.log &", ""]
            per_node.setdefault(n.node, []).extend(lines)
        summary.append(f"replica {r}: {' + '.join(n.node for n in nodes)}, port {rport}")
    scripts = {f"sglang-{node}.sh": "\n".join(header(plan, "sglang", ENGINE_VERSION, plan_path,
                                                      f"SGLang launch for node {node}", limits=limits) + lines + ["wait"]) + "\n"
               for node, lines in per_node.items()}
    if partition:
        summary.append(f"uneven stages: SGLANG_PP_LAYER_PARTITION={partition}")
    return LaunchBundle(engine="sglang", engine_version=ENGINE_VERSION, scripts=scripts, summary=summary)
