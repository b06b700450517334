"""Memory tiers: decoder layers whose weights live in host memory and stream to the GPUs every step.

A stage may keep some decoder layers' weights in its node's host-memory tier (DRAM or CXL memory
beside the CPU sockets, `host_memory` in the topology). Every step then copies each such layer's
shard to every GPU of the stage over its PCIe path, one layer ahead of the compute (prefetch into a
double buffer, as FlexGen and DeepSpeed ZeRO-Inference do):

- time: a streamed layer adds `max(0, stream_s - layer_s)` to the step, where stream_s is its shard's
  bytes over the rate each GPU gets when the stage's GPUs stream at once (shared PCIe uplinks and the
  socket's memory bandwidth, planner.hardware.topology.host_stream_bytes_per_s) times
  `host_stream_efficiency`, and layer_s the time the layer itself takes (its transfer overlaps it);
- GPU memory: the layer's shard leaves HBM; two buffers of the largest streamed shard stay;
- host memory: every GPU's shard of every streamed layer, summed per node, within the node's tier.

Linear in the number of streamed layers of a run of identical layers, so the solver places them
(planner.solve.formulation) with the same coefficients `estimate` uses.
"""

from __future__ import annotations

from typing import Sequence

from planner.cost.constants import Constants
from planner.cost.shards import Layout, held_weight_bytes
from planner.cost.step import StageContext, StepLoad, node_step, stage_comm
from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.model.layergraph import LayerInfo, ModelProfile

#: Buffers of a streamed layer in HBM: the one computing and the one arriving.
STREAM_BUFFERS = 2


def stream_bytes_per_s(topo: Topology, gpu_ids: Sequence[int], c: Constants) -> float:
    """What one GPU of the stage receives from host memory per second while all of them stream (0: no tier)."""
    return topo.host_stream_bytes_per_s(gpu_ids) * c.host_stream_efficiency


def host_tier_bytes_per_s(topo: Topology, gpu_ids: Sequence[int], c: Constants) -> float:
    """What each GPU of a group loads from a host-memory KV tier at once: the weight-streaming rate (its PCIe path
    and socket, `stream_bytes_per_s`); one line naming the topology where it has no host memory."""
    rate = stream_bytes_per_s(topo, gpu_ids, c)
    if rate <= 0:
        raise InputError(
            f"--prefix-tier host: {topo.name} describes no host memory to hold the tier (give each node's "
            "host_memory: {capacity, bandwidth} per socket, as topologies/8xl40s.yaml does)"
        )
    return rate


def stream_extra_s(held_bytes: float, layer_s: float, rate_bytes_per_s: float) -> float:
    """Time a streamed layer adds to a step beyond its own compute: its copy not hidden behind that compute."""
    if rate_bytes_per_s <= 0:
        return float("inf")
    return max(0.0, held_bytes / rate_bytes_per_s - layer_s)


def buffer_bytes(largest_streamed_bytes: float) -> float:
    """HBM a stage keeps for streaming: two buffers of its largest streamed layer shard."""
    return STREAM_BUFFERS * largest_streamed_bytes


def streamed_layer_s(
    step_s: float,
    layer: LayerInfo,
    layout: Layout,
    *,
    profile: ModelProfile,
    weight_dtype: str,
    rate_bytes_per_s: float,
) -> float:
    """What streaming one decoder layer adds to a step in which the layer takes `step_s` on the GPU."""
    return stream_extra_s(held_weight_bytes(layer, layout, profile, weight_dtype), step_s, rate_bytes_per_s)


def offload_s(ctx: StageContext, *, layers: Sequence[int], load: StepLoad) -> float:
    """The time a stage's streamed `layers` add to one step of `load`."""
    if not layers:
        return 0.0
    rate = stream_bytes_per_s(ctx.topo, ctx.gpu_ids, ctx.constants)
    comm = stage_comm(ctx, load)
    total = 0.0
    for i in layers:
        layer = ctx.profile.decoders[i]
        step = node_step(ctx, layer, comm, load)
        total += streamed_layer_s(
            step.time_s, layer, ctx.layout, profile=ctx.profile, weight_dtype=ctx.weight_dtype, rate_bytes_per_s=rate
        )
    return total


def streamed_bytes(
    profile: ModelProfile, layout: Layout, layers: Sequence[int], weight_dtype: str
) -> tuple[float, float]:
    """(bytes per GPU the streamed layers take out of HBM, the largest of them): what leaves and what one buffer holds."""
    sizes = [held_weight_bytes(profile.decoders[i], layout, profile, weight_dtype) for i in layers]
    return sum(sizes), max(sizes, default=0.0)


def stage_weight_bytes(
    held_bytes: float, profile: ModelProfile, layout: Layout, layers: Sequence[int], weight_dtype: str
) -> float:
    """HBM weights per GPU of a stage holding `held_bytes` before streaming `layers`: those leave, two buffers stay."""
    if not layers:
        return held_bytes
    out, largest = streamed_bytes(profile, layout, layers, weight_dtype)
    return held_bytes - out + buffer_bytes(largest)
