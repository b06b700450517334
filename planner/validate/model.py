"""A decoder of the Llama family (Llama, Qwen2, Mistral, Mixtral) or of DeepSeek-V3 (MLA attention, shared
and routed experts), sharded the way the cost model and the engines shard it, with every collective and
send/recv going through a byte-counting `Comm`. MLA lives in planner.validate.mla, the MoE layer (expert
slices under TP, whole experts and an all-to-all under expert parallelism) in planner.validate.moe.

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

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

#: A torch.distributed process group (None: the default group).
Group = Any

DTYPE = torch.bfloat16  # weights and everything that crosses a link (2 bytes, as the cost model counts)
COMPUTE = torch.float32  # arithmetic on each rank, so that TP and the reference differ only by link roundings
ELEMENT_BYTES = 2
INIT_STD = 0.05


def full_param(name: str, shape: tuple[int, ...], *, norm: bool = False) -> torch.Tensor:
    """Deterministic random weights: the same on every rank and in the reference."""
    if norm:
        return torch.ones(shape, dtype=DTYPE)
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return (torch.randn(shape, generator=gen) * INIT_STD).to(DTYPE)


@dataclass
class Comm:
    """Collectives and point-to-point calls with per-rank byte counts (nccl-tests' ring convention:
    an all-reduce of S bytes over n ranks sends and receives 2(n-1)/n x S per rank, an all-gather of a
    total S bytes (n-1)/n x S; a send moves its tensor's bytes)."""

    dist: object = None
    counting: bool = False
    sent: float = 0.0
    received: float = 0.0
    calls: dict = field(default_factory=dict)

    def _count(self, kind: str, sent: float, received: float) -> None:
        if self.counting:
            self.sent += sent
            self.received += received
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def all_reduce(self, t: torch.Tensor, group: Group, n: int) -> torch.Tensor:
        if n == 1:
            return t
        nbytes = t.numel() * t.element_size()
        self._count("all_reduce", 2 * (n - 1) / n * nbytes, 2 * (n - 1) / n * nbytes)
        self.dist.all_reduce(t, group=group)
        return t

    def all_gather_last(self, t: torch.Tensor, group: Group, n: int) -> torch.Tensor:
        if n == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(n)]
        total = t.numel() * t.element_size() * n
        self._count("all_gather", (n - 1) / n * total, (n - 1) / n * total)
        self.dist.all_gather(parts, t.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    def all_to_all(self, t: torch.Tensor, send_counts: list[int], recv_counts: list[int], me: int,
                   group: Group, *, metadata: bool = False) -> torch.Tensor:
        """Rows of `t` to each rank of the group (send_counts rows each, in group-rank order); the rows a rank
        keeps for itself do not cross a link and are not counted, nor is routing `metadata`."""
        row = t[0].numel() * t.element_size() if t.numel() else t.element_size() * int(torch.tensor(t.shape[1:]).prod())
        out = torch.empty((sum(recv_counts), *t.shape[1:]), dtype=t.dtype, device=t.device)
        if not metadata:
            self._count("all_to_all", (sum(send_counts) - send_counts[me]) * row,
                        (sum(recv_counts) - recv_counts[me]) * row)
        self.dist.all_to_all_single(out, t.contiguous(), recv_counts, send_counts, group=group)
        return out

    def exchange_counts(self, counts: list[int], group: Group) -> list[int]:
        """How many rows each rank will send here (routing metadata: not counted as traffic)."""
        out = torch.empty(len(counts), dtype=torch.int64)
        self.dist.all_to_all_single(out, torch.tensor(counts, dtype=torch.int64), group=group)
        return out.tolist()

    def send(self, t: torch.Tensor, dst: int) -> None:
        self._count("send", t.numel() * t.element_size(), 0)
        self.dist.send(t.contiguous(), dst)

    device: str = "cpu"

    def recv(self, shape: tuple[int, ...], src: int) -> torch.Tensor:
        t = torch.empty(shape, dtype=DTYPE, device=self.device)
        self.dist.recv(t, src)
        self._count("recv", 0, t.numel() * t.element_size())
        return t


class Shard:
    """What one rank holds of one stage: parameters, a KV cache, and the forward pass."""

    def __init__(self, cfg: dict, layers: range, tp: int, tp_rank: int, first: bool, *, last: bool,
                 ep: int = 1, ep_rank: int = 0):
        from planner.validate import mla, moe

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
            p["embed"] = self._rows("model.embed_tokens.weight", (cfg["vocab_size"], h), self.vocab_local)
        for i in layers:
            pre = f"model.layers.{i}."
            p[pre + "ln1"] = full_param(pre + "input_layernorm.weight", (h,), norm=True)
            p[pre + "ln2"] = full_param(pre + "post_attention_layernorm.weight", (h,), norm=True)
            mla.add_params(self, pre) if self.mla else self._attention_params(pre)
            if self.moe is not None and self.moe.is_moe_layer(i):
                self.moe.add_params(pre)
            else:
                self._mlp_params(pre, cfg["intermediate_size"])
        if last:
            p["norm"] = full_param("model.norm.weight", (h,), norm=True)
            p["lm_head"] = self._rows("lm_head.weight", (cfg["vocab_size"], h), self.vocab_local)
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _attention_params(self, pre: str) -> None:
        p, h, heads = self.params, self.cfg["hidden_size"], self.cfg["num_attention_heads"]
        p[pre + "q"] = self._rows(pre + "self_attn.q_proj.weight", (heads * self.hd, h), self.heads_local * self.hd)
        p[pre + "k"] = self._kv_rows(pre + "self_attn.k_proj.weight", (self.kv * self.hd, h))
        p[pre + "v"] = self._kv_rows(pre + "self_attn.v_proj.weight", (self.kv * self.hd, h))
        if self.bias:
            p[pre + "qb"] = self._rows(pre + "self_attn.q_proj.bias", (heads * self.hd,), self.heads_local * self.hd)
            p[pre + "kb"] = self._kv_rows(pre + "self_attn.k_proj.bias", (self.kv * self.hd,))
            p[pre + "vb"] = self._kv_rows(pre + "self_attn.v_proj.bias", (self.kv * self.hd,))
        p[pre + "o"] = self._cols(pre + "self_attn.o_proj.weight", (h, heads * self.hd), self.heads_local * self.hd)

    def _mlp_params(self, pre: str, inter: int, name: str = "mlp.") -> None:
        """A gated MLP of width `inter`, sliced over the TP ranks (also DeepSeek's shared experts)."""
        p, h, local = self.params, self.cfg["hidden_size"], inter // self.tp
        p[pre + name + "gate"] = self._rows(pre + name + "gate_proj.weight", (inter, h), local)
        p[pre + name + "up"] = self._rows(pre + name + "up_proj.weight", (inter, h), local)
        p[pre + name + "down"] = self._cols(pre + name + "down_proj.weight", (h, inter), local)

    def to(self, device: str) -> "Shard":
        self.params = {k: v.to(device) for k, v in self.params.items()}
        self.device = device
        return self

    device = "cpu"

    # Slicing of the full deterministic tensors ------------------------------------------------
    def _rows(self, name: str, shape: tuple[int, ...], local: int) -> torch.Tensor:
        return full_param(name, shape)[self.r * local:(self.r + 1) * local].contiguous()

    def _cols(self, name: str, shape: tuple[int, ...], local: int) -> torch.Tensor:
        return full_param(name, shape)[:, self.r * local:(self.r + 1) * local].contiguous()

    def _kv_rows(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        local = self.kv_local * self.hd
        return full_param(name, shape)[self.kv_index * local:(self.kv_index + 1) * local].contiguous()

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

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None, positions: torch.Tensor, comm: Comm,
                group: Group) -> tuple[torch.Tensor, torch.Tensor]:
        from planner.validate import mla

        for i in self.layers:
            pre = f"model.layers.{i}."
            residual = hidden if residual is None else hidden + residual
            x = self.norm(residual, self.params[pre + "ln1"])
            hidden = mla.attention(self, i, x, positions, comm, group=group) if self.mla else \
                self._attention(i, x, positions, comm, group)
            residual = hidden + residual
            hidden = self._mlp(i, self.norm(residual, self.params[pre + "ln2"]), comm, group)
        return hidden, residual

    def logits(self, hidden: torch.Tensor, residual: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        x = self.norm(hidden + residual, self.params["norm"])
        return comm.all_gather_last(self.linear(x[:, -1:], self.params["lm_head"]).to(DTYPE), group, self.tp)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention of the new tokens q [b, t, heads, d] over the cached and new k, v [b, T, heads, d]."""
    t, total = q.shape[1], k.shape[1]
    mask = torch.ones(t, total, dtype=torch.bool, device=q.device).tril(diagonal=total - t)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)
