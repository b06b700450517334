"""What one GPU of a stage holds and reads: the model's parameters divided as the stage's layout divides them.

A stage's layout is (tp, dp, ep) on tp x dp GPUs (planner.plan.Stage):
- attention, dense MLPs, shared experts, norms, embedding and lm_head are split by `tp` as
  tensor parallelism splits them (planner.model.layergraph's shard kinds) and are whole on each of
  the `dp` data-parallel ranks;
- routed experts: with ep = tp x dp each GPU holds E/ep whole experts (expert parallelism); with
  ep = 1 each expert is sliced over the `tp` ranks (and copied on each dp rank);
- the KV cache: each dp rank holds its own sequences; GQA heads split over min(tp, KV heads),
  MLA's latent is whole on every tp rank.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

from planner.model.dtypes import UNQUANTISED_BYTES, matrix_bytes
from planner.model.layergraph import LayerInfo, ModelProfile

if TYPE_CHECKING:
    from planner.plan import Stage


class Layout(NamedTuple):
    tp: int
    dp: int = 1
    ep: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.dp


def layout_of(stage: Stage) -> Layout:
    return Layout(stage.tp, getattr(stage, "dp", 1), getattr(stage, "ep", 1))


def shard_divisor(shard: str, tp: int, profile: ModelProfile) -> int:
    if shard == "replicated":
        return 1
    if shard == "kv":
        return min(tp, profile.n_kv_heads)
    return tp


def expert_bytes(layer: LayerInfo, weight_dtype: str) -> float:
    """Bytes of one routed expert (its matrices in the weight dtype, its biases in 16 bit)."""
    experts = layer.shards["experts"]
    return (
        matrix_bytes(experts.matrix, weight_dtype, "experts") + experts.other * UNQUANTISED_BYTES
    ) / layer.moe.n_experts


def _dense_bytes(layer: LayerInfo, tp: int, profile: ModelProfile, weight_dtype: str) -> float:
    return sum(
        g.weight_bytes(weight_dtype, s) / shard_divisor(s, tp, profile)
        for s, g in layer.shards.items()
        if s != "experts"
    )


def held_weight_bytes(layer: LayerInfo, layout: Layout | int, profile: ModelProfile, weight_dtype: str) -> float:
    """Bytes of this node's weights one GPU stores."""
    layout = Layout(layout) if isinstance(layout, int) else layout
    held = _dense_bytes(layer, layout.tp, profile, weight_dtype)
    if layer.moe is not None and "experts" in layer.shards:
        total = layer.moe.n_experts * expert_bytes(layer, weight_dtype)
        held += total / layout.ep if layout.ep > 1 else total / layout.tp
    return held


def experts_touched(n_experts: float, top_k: int, total_experts: int, tokens: float) -> float:
    """Distinct experts among `n_experts` that `tokens` tokens touch, each routed to `top_k` of
    `total_experts` uniformly: n x (1 - (1 - k/E)^tokens) (docs/cost-model.md, MoE)."""
    if tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / total_experts) ** tokens)


def read_weight_bytes(
    layer: LayerInfo,
    layout: Layout | int,
    profile: ModelProfile,
    *,
    weight_dtype: str,
    tokens: float,
    stage_tokens: float | None = None,
) -> float:
    """Bytes of this node's weights one GPU reads in a step of `tokens` tokens on its rank.

    The embedding gathers only the rows it needs; a MoE layer reads the experts its tokens touch:
    under expert parallelism the tokens of the whole stage (`stage_tokens`) reach the GPU's E/ep
    experts, otherwise the rank's own tokens reach its slices of all experts.
    """
    layout = Layout(layout) if isinstance(layout, int) else layout
    if layer.kind == "embedding":
        return min(tokens, profile.vocab_size) * profile.hidden_size * UNQUANTISED_BYTES / layout.tp
    if layer.moe is None or "experts" not in layer.shards:
        return held_weight_bytes(layer, layout, profile, weight_dtype)
    moe, per_expert = layer.moe, expert_bytes(layer, weight_dtype)
    dense = _dense_bytes(layer, layout.tp, profile, weight_dtype)
    if layout.ep > 1:
        local = moe.n_experts / layout.ep
        all_tokens = tokens * layout.dp if stage_tokens is None else stage_tokens
        return dense + experts_touched(local, moe.top_k, moe.n_experts, all_tokens) * per_expert
    return dense + experts_touched(moe.n_experts, moe.top_k, moe.n_experts, tokens) * per_expert / layout.tp


def kv_bytes_per_token_per_gpu(layer: LayerInfo, layout: Layout | int, profile: ModelProfile, kv_dtype: str) -> float:
    """KV bytes one GPU holds per token of one of its sequences."""
    tp = layout if isinstance(layout, int) else layout.tp
    per = layer.kv_bytes_per_token(kv_dtype)
    return per / min(tp, profile.n_kv_heads) if layer.kv_sharded else per


def stage_nodes(profile: ModelProfile, layer_start: int, layer_end: int, first: bool, last: bool) -> list[LayerInfo]:
    """The layer-graph nodes a stage runs: its decoder layers, the embedding if first, norm and lm_head if last."""
    nodes = []
    for layer in profile.layers:
        if layer.kind == "decoder":
            if layer_start <= layer.decoder_index < layer_end:
                nodes.append(layer)
        elif layer.kind == "embedding" and first:
            nodes.append(layer)
        elif layer.kind in ("norm", "lm_head") and last:
            nodes.append(layer)
    return nodes


def expert_flops_per_token(layer: LayerInfo) -> float:
    """Matmul FLOPs of the routed experts for one token (top_k experts, gate/up/down)."""
    if layer.moe is None:
        return 0.0
    return 2.0 * layer.moe.params_per_expert * layer.moe.top_k


class Sparsity(Protocol):
    """What a step skips (planner.cost.step.StepLoad carries it): fractions a token skips of a dense MLP's rows
    and of every decoder matrix's input channels."""

    @property
    def mlp_sparsity(self) -> float: ...

    @property
    def activation_sparsity(self) -> float: ...


def union_fraction(skipped: float, tokens: float) -> float:
    """Fraction of a matrix a step of `tokens` tokens reads when each skips `skipped` of it independently: 1 - s^n."""
    return 1.0 - skipped ** max(1.0, tokens) if skipped > 0 else 1.0


def dense_mlp_bytes(layer: LayerInfo, layout: Layout, profile: ModelProfile, weight_dtype: str) -> float:
    """Bytes of a dense decoder layer's gated MLP (gate, up, down: 3 x hidden x intermediate) one GPU reads; 0 for
    MoE layers, whose routing already skips most of their MLP."""
    if layer.kind != "decoder" or layer.moe is not None or "split" not in layer.shards:
        return 0.0
    params = min(3 * profile.hidden_size * profile.intermediate_size, layer.shards["split"].matrix)
    return matrix_bytes(params, weight_dtype, "split") / layout.tp


def sparse_read_bytes(
    layer: LayerInfo,
    layout: Layout,
    profile: ModelProfile,
    *,
    weight_dtype: str,
    read: float,
    tokens: float,
    sparsity: Sparsity,
) -> float:
    """`read` bytes of a decoder layer after contextual sparsity: a dense MLP's rows that none of the step's
    `tokens` tokens needs are not read (Deja Vu, CATS), and with activation sparsity neither are the skipped input
    channels of any decoder matrix (TEAL). Both follow 1 - s^n over a step of n tokens."""
    if layer.kind != "decoder" or (sparsity.mlp_sparsity <= 0 and sparsity.activation_sparsity <= 0):
        return read
    mlp = dense_mlp_bytes(layer, layout, profile, weight_dtype)
    read -= mlp * (1.0 - union_fraction(sparsity.mlp_sparsity, tokens))
    return read * union_fraction(sparsity.activation_sparsity, tokens)
