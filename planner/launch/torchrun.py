"""torchrun: run `planner validate` for this plan on its own GPUs, one process per GPU of replica 0.
Several nodes: one torchrun agent per node with a c10d rendezvous on the first node."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from planner.launch.common import LaunchBundle, NodeSlice, command, flag_args, node_scripts, q, replica_nodes
from planner.units import count

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.plan import Plan

RDZV_PORT = 29500


def agent_command(
    plan: Plan,
    nodes: list[NodeSlice],
    k: int,
    *,
    port: int | None,
    plan_path: str,
    scale: str,
    backend: str,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """Node rank `k`'s torchrun agent: one process per GPU of the node, the c10d rendezvous on the first node (this
    machine's loopback for one node), each process running the validation worker with --extra-args."""
    endpoint = f"${{HEAD_ADDR:?set HEAD_ADDR to the IP of node {nodes[0].node}}}" if len(nodes) > 1 else "127.0.0.1"
    return [
        "torchrun",
        *flag_args(
            {
                "--nnodes": len(nodes),
                "--nproc-per-node": len(nodes[k].local_indices),
                "--node-rank": k,
                "--rdzv-backend": "c10d",
                "--rdzv-id": f"planner-{plan.inputs.config_hash}",
                "--rdzv-endpoint": f"{endpoint}:{port or RDZV_PORT}",
            }
        ),
        "-m",
        "planner.validate.worker",
        q(plan_path),
        "--backend",
        backend,
        "--scale",
        scale,
        *(q(a) for a in extra_args),
    ]


def render(
    plan: Plan,
    topo: Topology,
    profile: ModelProfile,
    *,
    model_path: str | None = None,
    port: int | None = None,
    plan_path: str = "plan.json",
    scale: str = "full",
    backend: str = "nccl",
    extra_args: Sequence[str] = (),
) -> LaunchBundle:
    """torchrun agents running the validation worker; --extra-args go to the worker (e.g. --tokens 8)."""
    import torch as _torch

    nodes = replica_nodes(plan, topo, 0)
    per_node = {}
    for k, n in enumerate(nodes):
        agent = agent_command(
            plan, nodes, k, port=port, plan_path=plan_path, scale=scale, backend=backend, extra_args=extra_args
        )
        per_node[n.node] = [
            f"# node rank {k} of {len(nodes)}: local ranks run on GPUs {','.join(map(str, n.global_ids))}",
            "# (rank order is stage-major: stage 0's TP group first)",
            f"export CUDA_VISIBLE_DEVICES={','.join(map(str, n.local_indices))}",
            command(agent),
            "",
        ]
    version = _torch.__version__.split("+")[0]
    scripts = node_scripts(
        plan, per_node, engine="torchrun", version=version, plan_path=plan_path, what="torchrun validation", tail=()
    )
    summary = [
        f"{len(nodes)} node(s): " + ", ".join(f"{n.node} ({count(len(n.local_indices), 'GPU')})" for n in nodes),
        f"each runs `planner validate` ranks for {plan_path} ({backend}, {scale} scale)",
    ]
    return LaunchBundle(engine="torchrun", engine_version=version, scripts=scripts, summary=summary)
