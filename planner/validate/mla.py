"""Multi-head latent attention (DeepSeek-V3, Kimi-K2) for the validation runner, sharded as the engines shard it.

q_a and kv_a (the down-projections) are whole on every TP rank, as vLLM's ReplicatedLinear keeps them; q_b, kv_b
and o split by heads. The KV cache holds the compressed latent (kv_lora_rank) and the one shared RoPE key
(qk_rope_head_dim) per token, whole on every TP rank: what the cost model counts as MLA's KV bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from planner.validate.common import attend, full_param

if TYPE_CHECKING:
    from planner.validate.common import Comm, Group
    from planner.validate.model import Shard


def _dims(cfg: dict) -> tuple[int, int, int, int, int]:
    return (
        cfg["qk_nope_head_dim"],
        cfg["qk_rope_head_dim"],
        cfg["v_head_dim"],
        cfg["kv_lora_rank"],
        cfg["q_lora_rank"],
    )


def add_params(shard: Shard, pre: str) -> None:
    cfg, p = shard.cfg, shard.params
    h, heads, hl = cfg["hidden_size"], cfg["num_attention_heads"], shard.heads_local
    nope, rope, vdim, kvr, qr = _dims(cfg)
    a = pre + "self_attn."
    p[a + "q_a"] = full_param(a + "q_a_proj.weight", (qr, h))
    p[a + "q_a_norm"] = full_param(a + "q_a_layernorm.weight", (qr,), norm=True)
    p[a + "q_b"] = shard.rows(a + "q_b_proj.weight", (heads * (nope + rope), qr), hl * (nope + rope))
    p[a + "kv_a"] = full_param(a + "kv_a_proj_with_mqa.weight", (kvr + rope, h))
    p[a + "kv_a_norm"] = full_param(a + "kv_a_layernorm.weight", (kvr,), norm=True)
    p[a + "kv_b"] = shard.rows(a + "kv_b_proj.weight", (heads * (nope + vdim), kvr), hl * (nope + vdim))
    p[a + "o"] = shard.cols(a + "o_proj.weight", (h, heads * vdim), hl * vdim)


def attention(
    shard: Shard, i: int, x: torch.Tensor, positions: torch.Tensor, comm: Comm, *, group: Group
) -> torch.Tensor:
    p, a = shard.params, f"model.layers.{i}.self_attn."
    nope, rope, vdim, kvr, _ = _dims(shard.cfg)
    b, t, _ = x.shape
    hl = shard.heads_local
    q = shard.linear(shard.norm(shard.linear(x, p[a + "q_a"]), p[a + "q_a_norm"]), p[a + "q_b"]).view(b, t, hl, -1)
    q = torch.cat([q[..., :nope], shard.rope(q[..., nope:], positions, rope)], dim=-1)
    ckv = shard.linear(x, p[a + "kv_a"])
    latent = shard.norm(ckv[..., :kvr], p[a + "kv_a_norm"])
    k_pe = shard.rope(ckv[..., kvr:].reshape(b, t, 1, rope), positions, rope)
    if i in shard.cache:  # the cache holds the latent and the shared RoPE key: MLA's KV
        latent = torch.cat([shard.cache[i][0], latent], dim=1)
        k_pe = torch.cat([shard.cache[i][1], k_pe], dim=1)
    shard.cache[i] = (latent, k_pe)
    kv = shard.linear(latent, p[a + "kv_b"]).view(b, latent.shape[1], hl, nope + vdim)
    k = torch.cat([kv[..., :nope], k_pe.expand(-1, -1, hl, -1)], dim=-1)
    out = attend(q, k, kv[..., nope:])
    return shard.reduce(shard.linear(out.reshape(b, t, hl * vdim), p[a + "o"]), comm, group)
