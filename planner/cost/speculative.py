"""Speculative decoding and multi-token prediction: several tokens per pass over the weights.

A draft proposes k tokens per sequence; one verification pass of the target model checks all k + 1
positions (planner.cost.serving: the pass carries k + 1 decode tokens per sequence, which share one
read of the sequence's KV cache). With each draft token accepted independently with probability a,
a sequence gains (1 - a^(k+1)) / (1 - a) tokens per pass (Leviathan et al. 2023, eq. 1), so
TPOT = (pass + drafting) / that.

The draft's own cost, on the last stage, each pass (`Workload.spec_draft`):
- `mtp`: k forward steps of one decoder layer and the lm_head at the pass's decode tokens, which is
  what DeepSeek-V3's multi-token prediction module and an EAGLE head cost; its weights (one decoder
  layer) are held beside the last stage's;
- `free`: nothing (n-gram or prompt-lookup drafting runs on the host).
"""

from __future__ import annotations

from planner.cost.shards import Layout, held_weight_bytes
from planner.cost.step import StageContext, StageStep, StepLoad, add_steps, stage_step
from planner.model.layergraph import ModelProfile
from planner.plan import Workload


def has_draft_head(workload: Workload) -> bool:
    return workload.spec_tokens > 0 and workload.spec_draft == "mtp"


def draft_step(ctx: StageContext, *, workload: Workload, decode_tokens: float) -> StageStep:
    """The drafting of one pass on the last stage: k steps of one decoder layer, the norm and the lm_head."""
    out = StageStep()
    if not has_draft_head(workload):
        return out
    load = StepLoad(decode=decode_tokens, context=workload.mean_context)
    last = ctx.profile.n_layers
    one = stage_step(ctx, layer_start=last - 1, layer_end=last, first=False, last=True, load=load)
    return add_steps(out, one, workload.spec_tokens)


def draft_weight_bytes(profile: ModelProfile, layout: Layout, workload: Workload) -> float:
    """The draft head's weights per GPU of the last stage: one decoder layer (it shares embedding and lm_head)."""
    if not has_draft_head(workload):
        return 0.0
    return held_weight_bytes(profile.decoders[-1], layout, profile, workload.weight_dtype)
