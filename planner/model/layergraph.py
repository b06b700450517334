"""The traced model: per-node parameter counts, KV elements and FLOPs, and its networkx view.

`ModelProfile` is what tracing produces and what the disk cache stores. It holds counts, not
bytes, so one trace serves every weight and KV dtype: bytes are computed from the counts here.
`ModelProfile.graph(weight_dtype, kv_dtype)` gives the `LayerGraph`: a `networkx.DiGraph` in
execution order (embedding, decoder layers, final norm, lm_head) whose nodes carry the numbers.

How tensor parallelism divides each parameter (`Shard`), following vLLM's layers:
- `split`: divided by `tp` (Q and O projections, dense MLP, shared experts, MLA's b-projections);
- `kv`: K and V projections, divided by `min(tp, n_kv_heads)` (replicated past the KV head count);
- `replicated`: whole on every rank (norms, MoE routers, MLA's a-projections);
- `experts`: routed experts, each sliced over the `tp` ranks;
- `vocab`: embedding and lm_head, divided by `tp` (vocab-parallel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.model.dtypes import KV_DTYPES, UNQUANTISED_BYTES, matrix_bytes

if TYPE_CHECKING:
    import networkx as nx

PROFILE_VERSION = 2

Shard = Literal["split", "kv", "replicated", "experts", "vocab"]
NodeKind = Literal["embedding", "decoder", "norm", "lm_head"]


class ParamGroup(BaseModel):
    """Parameters of one shard kind: `matrix` ones follow the weight dtype, `other` stay 16-bit."""

    model_config = ConfigDict(extra="forbid")
    matrix: int = 0
    other: int = 0

    @property
    def params(self) -> int:
        return self.matrix + self.other

    def weight_bytes(self, weight_dtype: str, shard: str = "split") -> float:
        return matrix_bytes(self.matrix, weight_dtype, shard) + self.other * UNQUANTISED_BYTES


class MoEInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_experts: int
    top_k: int
    n_shared_experts: int = 0
    params_per_expert: int = Field(description="matrix parameters of one routed expert")
    intermediate_size: int

    def expert_bytes(self, weight_dtype: str) -> float:
        return matrix_bytes(self.params_per_expert, weight_dtype, "experts")

    def expected_experts_touched(self, tokens: int) -> float:
        """Distinct routed experts a step touches with `tokens` tokens each routed to `top_k`.

        With uniform routing an expert is missed by one token with probability (1 - k/E), so
        E * (1 - (1 - k/E)^n) are touched (docs/cost-model.md, MoE).
        """
        if tokens <= 0:
            return 0.0
        e, k = self.n_experts, self.top_k
        return e * (1.0 - (1.0 - k / e) ** tokens)


class LayerInfo(BaseModel):
    """One node of the layer graph."""

    model_config = ConfigDict(extra="forbid")
    index: int = Field(description="position in execution order")
    name: str
    kind: NodeKind
    decoder_index: int | None = Field(None, description="0-based decoder layer number")
    params: int
    shards: dict[Shard, ParamGroup]
    kv_elems_per_token: int = Field(0, description="K and V (or MLA latent) elements cached per token")
    kv_sharded: bool = Field(True, description="False where the cache is replicated on every TP rank (MLA)")
    decode_flops_per_token: int = Field(description="matmul FLOPs of one token at zero context")
    attn_flops_per_context_token: int = Field(0, description="extra FLOPs per token per token of context")
    sliding_window: int | None = None
    moe: MoEInfo | None = None

    def weight_bytes(self, weight_dtype: str) -> float:
        return sum(g.weight_bytes(weight_dtype, s) for s, g in self.shards.items())

    def kv_bytes_per_token(self, kv_dtype: str) -> float:
        return self.kv_elems_per_token * KV_DTYPES[kv_dtype]

    def node_data(self, weight_dtype: str, kv_dtype: str) -> dict:
        data = self.model_dump()
        data["weight_bytes"] = self.weight_bytes(weight_dtype)
        data["kv_bytes_per_token"] = self.kv_bytes_per_token(kv_dtype)
        if self.moe is not None:
            data["moe"]["bytes_per_expert"] = self.moe.expert_bytes(weight_dtype)
        return data


class ModelProfile(BaseModel):
    """Everything the planner knows about a model, from its config and a meta-device trace."""

    model_config = ConfigDict(extra="forbid")
    profile_version: int = PROFILE_VERSION
    name: str
    source: str = Field(description="catalog, file path or hub id the config came from")
    config_hash: str
    architecture: str
    model_type: str
    hidden_size: int
    n_layers: int = Field(description="decoder layers")
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    context_length: int = Field(
        0,
        description="longest isl + osl the model serves (rope-scaled where the "
        "config scales it); 0 when the config does not say",
    )
    attention: Literal["gqa", "mla"]
    layers: list[LayerInfo]

    # Totals ---------------------------------------------------------------------------------
    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    def weight_bytes(self, weight_dtype: str) -> float:
        return sum(layer.weight_bytes(weight_dtype) for layer in self.layers)

    def kv_bytes_per_token(self, kv_dtype: str) -> float:
        return sum(layer.kv_bytes_per_token(kv_dtype) for layer in self.layers)

    @property
    def decode_flops_per_token(self) -> int:
        return sum(layer.decode_flops_per_token for layer in self.layers)

    @property
    def decoders(self) -> list[LayerInfo]:
        return [layer for layer in self.layers if layer.kind == "decoder"]

    @property
    def moe(self) -> MoEInfo | None:
        return next((layer.moe for layer in self.layers if layer.moe is not None), None)

    @property
    def active_params(self) -> float:
        """Parameters one token uses: routed experts count only top_k of them."""
        total = 0.0
        for layer in self.layers:
            total += layer.params
            if layer.moe is not None:
                idle = layer.moe.n_experts - layer.moe.top_k
                total -= idle * layer.moe.params_per_expert
        return total

    def tp_divisors(self) -> dict[str, int]:
        """The sizes a tensor-parallel degree must divide (KV heads are replicated past their count)."""
        out = {"attention heads": self.n_heads, "intermediate size": self.intermediate_size}
        if self.moe is not None:
            out["expert intermediate size"] = self.moe.intermediate_size
        return out

    def graph(self, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> nx.DiGraph:
        """The LayerGraph (a networkx.DiGraph): nodes in execution order, an edge from each node to the next."""
        import networkx as nx  # imported here: the numbers alone do not need it, and start-up stays short

        g = nx.DiGraph(name=self.name, weight_dtype=weight_dtype, kv_dtype=kv_dtype)
        for layer in self.layers:
            g.add_node(layer.name, **layer.node_data(weight_dtype, kv_dtype))
        for a, b in zip(self.layers, self.layers[1:]):
            g.add_edge(a.name, b.name, activation_elems_per_token=self.hidden_size)
        return g


class LayerSummary(BaseModel):
    """One node of `planner models show --json`."""

    index: int
    name: str
    kind: NodeKind
    params: int
    weight_bytes: float
    kv_bytes_per_token: float
    decode_flops_per_token: int
    attn_flops_per_context_token: int
    sliding_window: int | None = None
    shards: dict[Shard, ParamGroup]
    moe: dict | None = None


class ModelSummary(BaseModel):
    """What `planner models show` prints: totals and one row per layer-graph node."""

    name: str
    source: str
    architecture: str
    attention: str
    weight_dtype: str
    kv_dtype: str
    params: int
    active_params: float
    weight_bytes: float
    kv_bytes_per_token: float
    decode_flops_per_token: int
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tp_divisors: dict[str, int]
    layers: list[LayerSummary]


def summarize(profile: ModelProfile, weight_dtype: str, kv_dtype: str) -> ModelSummary:
    # the same node data the LayerGraph carries, without building the graph
    rows = [LayerSummary.model_validate(layer.node_data(weight_dtype, kv_dtype)) for layer in profile.layers]
    return ModelSummary(
        name=profile.name,
        source=profile.source,
        architecture=profile.architecture,
        attention=profile.attention,
        weight_dtype=weight_dtype,
        kv_dtype=kv_dtype,
        params=profile.params,
        active_params=profile.active_params,
        weight_bytes=profile.weight_bytes(weight_dtype),
        kv_bytes_per_token=profile.kv_bytes_per_token(kv_dtype),
        decode_flops_per_token=profile.decode_flops_per_token,
        hidden_size=profile.hidden_size,
        n_layers=profile.n_layers,
        n_heads=profile.n_heads,
        n_kv_heads=profile.n_kv_heads,
        head_dim=profile.head_dim,
        intermediate_size=profile.intermediate_size,
        vocab_size=profile.vocab_size,
        tp_divisors=profile.tp_divisors(),
        layers=rows,
    )
