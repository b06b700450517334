"""A decoder of the Llama family (Llama, Qwen2, Mistral, Mixtral) or of DeepSeek-V3 (MLA attention, shared
and routed experts), sharded the way the cost model and the engines shard it, with every collective and
send/recv going through a byte-counting `Comm`. MLA lives in planner.validate.mla, the MoE layer (expert
slices under TP, whole experts and an all-to-all under expert parallelism) in planner.validate.moe; what the
three share (dtypes, deterministic weights, the `Comm`, causal attention) in planner.validate.common, a leaf.

Why explicit collectives instead of DTensor's `parallelize_module` (ColwiseParallel/RowwiseParallel):
- the traffic check must count the bytes each rank sends and receives per collective call, and
  DTensor issues its collectives inside tensor dispatch where a plain wrapper cannot see them;
- GQA with tp > KV heads needs each rank to hold a replica of one KV head, which ColwiseParallel
  (an even split of the output dimension) cannot express;
- the KV cache, RoPE offsets and the vocab-parallel embedding's masked lookup are simplest on
  plain local tensors.
Pipeline stages hand over (hidden, residual) with send/recv, as vLLM does, instead of
torch.distributed.pipelining: its schedules do not carry a KV cache across decode steps.

Sharding (planner.model.layergraph's shard kinds): q/o, gate/up/down and experts' slices split over `tp`;
k/v split over min(tp, KV heads) (replicated beyond); norms and the MoE router whole; embedding and
lm_head split by vocabulary rows. A stage of tp x dp ranks runs attention data-parallel: rank j is TP rank
j % tp of DP rank j // tp and serves that DP rank's sequences; with expert parallelism (ep = tp x dp) it
holds experts [j E/ep, (j+1) E/ep) whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from planner.validate import mla, moe
from planner.validate.common import COMPUTE, DTYPE, Comm, Group, attend, full_param


class Shard:
    """What one rank holds of one stage: parameters, a KV cache, and the forward pass."""

    def __init__(
        self, cfg: dict, layers: range, tp: int, tp_rank: int, first: bool, *, last: bool, ep: int = 1, ep_rank: int = 0
    ):
        self.cfg, self.layers, self.tp, self.r, self.first, self.last = cfg, layers, tp, tp_rank, first, last
        self.ep, self.ep_rank = ep, ep_rank
        h, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.kv = cfg.get("num_key_value_heads") or heads
        self.hd = cfg.get("head_dim") or h // heads
        self.heads_local = heads // tp
        self.kv_split = min(tp, self.kv)
        self.kv_local = self.kv // self.kv_split
        # with tp > KV heads, rank r holds KV head r // (tp / KV heads)
        self.kv_index = tp_rank * self.kv_split // tp
        self.bias = cfg.get("model_type") == "qwen2" or cfg.get("attention_bias", False)
        self.mla = bool(cfg.get("kv_lora_rank"))
        self.inter_local = cfg["intermediate_size"] // tp
        self.vocab_local = cfg["vocab_size"] // tp
        self.params: dict[str, torch.Tensor] = {}
        self.moe = moe.MoE(self) if moe.is_moe_model(cfg) else None
        p = self.params
        if first:
            p["embed"] = self.rows("model.embed_tokens.weight", (cfg["vocab_size"], h), self.vocab_local)
        for i in layers:
            pre = f"model.layers.{i}."
            p[pre + "ln1"] = full_param(pre + "input_layernorm.weight", (h,), norm=True)
            p[pre + "ln2"] = full_param(pre + "post_attention_layernorm.weight", (h,), norm=True)
            mla.add_params(self, pre) if self.mla else self._attention_params(pre)
            if self.moe is not None and self.moe.is_moe_layer(i):
                self.moe.add_params(pre)
            else:
                self.mlp_params(pre, cfg["intermediate_size"])
        if last:
            p["norm"] = full_param("model.norm.weight", (h,), norm=True)
            p["lm_head"] = self.rows("lm_head.weight", (cfg["vocab_size"], h), self.vocab_local)
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _attention_params(self, pre: str) -> None:
        p, h, heads = self.params, self.cfg["hidden_size"], self.cfg["num_attention_heads"]
        p[pre + "q"] = self.rows(pre + "self_attn.q_proj.weight", (heads * self.hd, h), self.heads_local * self.hd)
        p[pre + "k"] = self._kv_rows(pre + "self_attn.k_proj.weight", (self.kv * self.hd, h))
        p[pre + "v"] = self._kv_rows(pre + "self_attn.v_proj.weight", (self.kv * self.hd, h))
        if self.bias:
            p[pre + "qb"] = self.rows(pre + "self_attn.q_proj.bias", (heads * self.hd,), self.heads_local * self.hd)
            p[pre + "kb"] = self._kv_rows(pre + "self_attn.k_proj.bias", (self.kv * self.hd,))
            p[pre + "vb"] = self._kv_rows(pre + "self_attn.v_proj.bias", (self.kv * self.hd,))
        p[pre + "o"] = self.cols(pre + "self_attn.o_proj.weight", (h, heads * self.hd), self.heads_local * self.hd)

    def mlp_params(self, pre: str, inter: int, name: str = "mlp.") -> None:
        """A gated MLP of width `inter`, sliced over the TP ranks (also DeepSeek's shared experts)."""
        p, h, local = self.params, self.cfg["hidden_size"], inter // self.tp
        p[pre + name + "gate"] = self.rows(pre + name + "gate_proj.weight", (inter, h), local)
        p[pre + name + "up"] = self.rows(pre + name + "up_proj.weight", (inter, h), local)
        p[pre + name + "down"] = self.cols(pre + name + "down_proj.weight", (h, inter), local)

    def to(self, device: str) -> "Shard":
        self.params = {k: v.to(device) for k, v in self.params.items()}
        self.device = device
        return self

    device = "cpu"

    # Slicing of the full deterministic tensors ------------------------------------------------
    def rows(self, name: str, shape: tuple[int, ...], local: int) -> torch.Tensor:
        return full_param(name, shape)[self.r * local : (self.r + 1) * local].contiguous()

    def cols(self, name: str, shape: tuple[int, ...], local: int) -> torch.Tensor:
        return full_param(name, shape)[:, self.r * local : (self.r + 1) * local].contiguous()

    def _kv_rows(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        local = self.kv_local * self.hd
        return full_param(name, shape)[self.kv_index * local : (self.kv_index + 1) * local].contiguous()

    def param_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.params.values())

    # Forward ------------------------------------------------------------------------------------
    def embed(self, ids: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        lo = self.r * self.vocab_local
        mask = (ids >= lo) & (ids < lo + self.vocab_local)
        local = torch.where(mask, ids - lo, torch.zeros_like(ids))
        out = F.embedding(local, self.params["embed"]) * mask.unsqueeze(-1).to(DTYPE)
        return comm.all_reduce(out, group, self.tp).to(COMPUTE)

    def rope(self, x: torch.Tensor, positions: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        theta = float(self.cfg.get("rope_theta", 10000.0))
        half = (dim or self.hd) // 2
        freqs = 1.0 / theta ** (torch.arange(0, half, dtype=torch.float32, device=x.device) / half)
        ang = positions.float()[:, None] * freqs[None, :]
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        x1, x2 = x[..., :half].float(), x[..., half:].float()
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    @staticmethod
    def norm(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w.to(COMPUTE)

    @staticmethod
    def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, w.to(COMPUTE), None if b is None else b.to(COMPUTE))

    def reduce(self, x: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        """Partial sums cross the link in bf16, as an engine's all-reduce does."""
        return comm.all_reduce(x.to(DTYPE), group, self.tp).to(COMPUTE)

    def gated_mlp(self, x: torch.Tensor, pre: str) -> torch.Tensor:
        """This rank's partial output of a gated MLP (before the all-reduce)."""
        p = self.params
        return self.linear(F.silu(self.linear(x, p[pre + "gate"])) * self.linear(x, p[pre + "up"]), p[pre + "down"])

    def _attention(self, i: int, x: torch.Tensor, positions: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        p, pre = self.params, f"model.layers.{i}."
        b, t, _ = x.shape
        q = self.linear(x, p[pre + "q"], p.get(pre + "qb")).view(b, t, self.heads_local, self.hd)
        k = self.linear(x, p[pre + "k"], p.get(pre + "kb")).view(b, t, self.kv_local, self.hd)
        v = self.linear(x, p[pre + "v"], p.get(pre + "vb")).view(b, t, self.kv_local, self.hd)
        q, k = self.rope(q, positions), self.rope(k, positions)
        if i in self.cache:
            k = torch.cat([self.cache[i][0], k], dim=1)
            v = torch.cat([self.cache[i][1], v], dim=1)
        self.cache[i] = (k, v)
        # the local query heads' KV heads (GQA): global head h uses KV head h // (heads / KV heads)
        group_size = self.cfg["num_attention_heads"] // self.kv
        first_head = self.r * self.heads_local
        kv_ids = [(first_head + j) // group_size - self.kv_index * self.kv_local for j in range(self.heads_local)]
        out = attend(q, k[:, :, kv_ids], v[:, :, kv_ids])
        return self.reduce(self.linear(out.reshape(b, t, -1), p[pre + "o"]), comm, group)

    def _mlp(self, i: int, x: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        if self.moe is not None and self.moe.is_moe_layer(i):
            return self.moe.forward(i, x, comm, group)
        return self.reduce(self.gated_mlp(x, f"model.layers.{i}.mlp."), comm, group)

    def forward(
        self, hidden: torch.Tensor, residual: torch.Tensor | None, positions: torch.Tensor, comm: Comm, group: Group
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for i in self.layers:
            pre = f"model.layers.{i}."
            residual = hidden if residual is None else hidden + residual
            x = self.norm(residual, self.params[pre + "ln1"])
            hidden = (
                mla.attention(self, i, x, positions, comm, group=group)
                if self.mla
                else self._attention(i, x, positions, comm, group)
            )
            residual = hidden + residual
            hidden = self._mlp(i, self.norm(residual, self.params[pre + "ln2"]), comm, group)
        return hidden, residual

    def logits(self, hidden: torch.Tensor, residual: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        x = self.norm(hidden + residual, self.params["norm"])
        return comm.all_gather_last(self.linear(x[:, -1:], self.params["lm_head"]).to(DTYPE), group, self.tp)
