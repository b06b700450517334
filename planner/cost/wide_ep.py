"""One decode step of a wide expert-parallel decode pool, as SGLang serves DeepSeek-class models over many nodes:
attention data-parallel on every GPU (tp 1), the experts over all of them, DeepEP's low-latency dispatch and
combine, two-batch overlap, EPLB's redundant experts, and the KV arriving from prefill nodes (disaggregation).

The per-layer pricing is planner.cost.step's (weights, KV, compute, per-layer overheads, and the dispatch and combine
all-to-alls on their real routes: NVSwitch inside a node, the NICs and the fabric across). What this adds, each an
assumption about the deployment, none fitted to a measurement:

- Redundant experts (EPLB, SGLang --ep-num-redundant-experts R): the ep GPUs hold E + R expert slots, (E + R) / ep
  each, so ep need only divide E + R (EP72 over 256 + 32). The copies of a hot expert split its tokens, so routing
  is priced as uniform over the E + R slots (each token to top_k of them) and each slot weighs one expert; what
  imbalance EPLB leaves stays in the constants' moe_imbalance.
- Two-batch overlap (--enable-two-batch-overlap): the batch runs as two micro-batches of half the sequences. Each
  reads every weight again (its own GEMMs) and pays the per-layer kernel overheads again; while one micro-batch's
  dispatch or combine is in flight the other's kernels run (DeepEP's low-latency kernels move tokens by RDMA and
  receive through a hook, holding no SMs). The step's GPU time is the larger of the two micro-batches' kernels and
  their communication: the overlap is taken as perfect, so this is the fastest the overlap allows.
- Host time (the engine's step_overhead_s, and sequence_overhead_s per sequence sampled) is paid by every attention
  DP rank's own scheduler process on its own sequences, all ranks at once, and not hidden under the GPU step (serial
  host, as planner.cost.estimate prices every engine). planner.cost.estimate charges the whole stage's sequences to
  one host, which is right for one scheduler, not for dp of them.
- Decode only: every sequence decodes at the mean context of its reply (isl + osl / 2); no step carries prefill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from planner.cost.constants import Constants
from planner.cost.shards import Layout
from planner.cost.step import StageContext, StepLoad, engine_overhead_s, stage_step
from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.model.layergraph import LayerInfo, ModelProfile, ParamGroup


@dataclass(frozen=True)
class WideDecode:
    """One decode step of the pool, on its slowest GPU."""

    per_gpu_batch: int
    kernels_s: float  # the GPU's kernels: weights, KV, compute, per-layer overheads (both micro-batches under TBO)
    comm_s: float  # the dispatch and combine all-to-alls (and any other collective) of the step
    host_s: float  # one DP rank's scheduler: per step and per sequence
    two_batch_overlap: bool

    @property
    def gpu_s(self) -> float:
        return max(self.kernels_s, self.comm_s) if self.two_batch_overlap else self.kernels_s + self.comm_s

    @property
    def step_s(self) -> float:
        return self.gpu_s + self.host_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.per_gpu_batch / self.step_s


def _with_slots(layer: LayerInfo, redundant: int) -> LayerInfo:
    moe = layer.moe
    if moe is None or "experts" not in layer.shards:
        return layer
    slots = moe.n_experts + redundant
    experts = layer.shards["experts"]
    grown = ParamGroup(matrix=experts.matrix * slots // moe.n_experts, other=experts.other * slots // moe.n_experts)
    shards = {**layer.shards, "experts": grown}
    params = layer.params + grown.params - experts.params
    return layer.model_copy(
        update={"moe": moe.model_copy(update={"n_experts": slots}), "shards": shards, "params": params}
    )


def slot_profile(profile: ModelProfile, redundant_experts: int) -> ModelProfile:
    """The model as EPLB lays it out: every MoE layer holds its routed experts plus `redundant_experts` copies,
    routing uniform over all the slots (module docstring)."""
    if redundant_experts <= 0:
        return profile
    return profile.model_copy(update={"layers": [_with_slots(layer, redundant_experts) for layer in profile.layers]})


def _parts(ctx: StageContext, profile: ModelProfile, load: StepLoad) -> tuple[float, float]:
    """(kernel s, communication s) of one step of `load` on the stage."""
    step = stage_step(ctx, layer_start=0, layer_end=profile.n_layers, first=True, last=True, load=load)
    return step.time_s - step.interconnect_s, step.interconnect_s


def wide_decode(
    profile: ModelProfile,
    topo: Topology,
    gpu_ids: Sequence[int],
    *,
    per_gpu_batch: int,
    context_tokens: float,
    constants: Constants,
    weight_dtype: str = "fp8",
    kv_dtype: str = "bf16",
    redundant_experts: int = 0,
    two_batch_overlap: bool = True,
) -> WideDecode:
    """The decode step of one DP = EP = len(gpu_ids) instance (tp 1) with `per_gpu_batch` sequences on every GPU at
    `context_tokens` of context each; `constants` resolved for the engine (planner.cost.engines.resolve_constants)."""
    ep = len(gpu_ids)
    moe = profile.moe
    if moe is None or ep < 2 or per_gpu_batch < 1:
        raise InputError(
            f"wide EP needs a MoE model, at least 2 GPUs and a batch; got {profile.name}, {ep} GPUs, "
            f"batch {per_gpu_batch}"
        )
    if (moe.n_experts + redundant_experts) % ep:
        raise InputError(f"ep({ep}) must divide the expert slots ({moe.n_experts} + {redundant_experts} redundant)")
    slots = slot_profile(profile, redundant_experts)
    ctx = StageContext.of(
        profile=slots,
        topo=topo,
        gpu_ids=gpu_ids,
        layout=Layout(1, ep, ep),
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        constants=constants,
    )
    host = engine_overhead_s(StepLoad(decode=per_gpu_batch), constants)
    if two_batch_overlap:
        kernels, comm = _parts(ctx, slots, StepLoad(decode=ep * per_gpu_batch / 2, context=context_tokens))
        kernels, comm = 2 * kernels, 2 * comm
    else:
        kernels, comm = _parts(ctx, slots, StepLoad(decode=ep * per_gpu_batch, context=context_tokens))
    return WideDecode(per_gpu_batch, kernels, comm, host, two_batch_overlap)
