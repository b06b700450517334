"""Shrink a plan to `--scale mini`: same architecture family, head counts (so the same TP splits and KV
replication), TP/PP shape and GPU ids, the layer split in the same proportions; small hidden size,
intermediate size, vocabulary and layer count so a CPU runs it in seconds."""

from __future__ import annotations

import math

from planner.errors import InputError
from planner.plan import Plan, Stage

SUPPORTED = ("llama", "qwen2", "mistral", "mixtral", "deepseek_v3")
MINI_HEAD_DIM = 8
MINI_LAYERS = 8  # at least; 4 per stage beyond two stages


def check_family(config: dict) -> None:
    if config.get("model_type") not in SUPPORTED:
        raise InputError(
            f"validate runs the {', '.join(SUPPORTED)} families; model_type "
            f"'{config.get('model_type')}' is not supported yet"
        )
    if config.get("model_type") == "deepseek_v3" and not config.get("q_lora_rank"):
        raise InputError("validate runs DeepSeek's MLA with a q_lora_rank (V3, R1, Kimi-K2), not without one (V2-Lite)")


def mini_counts(plan: Plan, n_layers: int) -> list[int]:
    """Layers per stage at mini scale: the plan's proportions, at least one per stage."""
    pp = len(plan.stages)
    total = min(n_layers, max(MINI_LAYERS, 4 * pp))
    counts = [max(1, round(s.n_layers * total / n_layers)) for s in plan.stages]
    while sum(counts) > total:
        k = max(range(pp), key=lambda i: counts[i])
        counts[k] -= 1
    while sum(counts) < total:
        k = max(range(pp), key=lambda i: plan.stages[i].n_layers / counts[i])
        counts[k] += 1
    return counts


def mini_config(config: dict, plan: Plan) -> dict:
    """The plan's model config at mini scale."""
    check_family(config)
    heads = config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or heads
    tps = [s.tp for s in plan.stages]
    lcm_tp = math.lcm(*tps)
    hidden = heads * MINI_HEAD_DIM
    scale = hidden / config["hidden_size"]

    def shrink(size: int) -> int:
        step = lcm_tp * 8
        return max(step, int(round(size * scale / step)) * step)

    out = {k: v for k, v in config.items() if k not in ("quantization_config", "auto_map", "rope_scaling", "head_dim")}
    out.update(
        hidden_size=hidden,
        head_dim=MINI_HEAD_DIM,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=shrink(config["intermediate_size"]),
        vocab_size=64 * lcm_tp,
        num_hidden_layers=sum(mini_counts(plan, config["num_hidden_layers"])),
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        sliding_window=None,
        use_sliding_window=False,
        bos_token_id=0,
        eos_token_id=1,
    )
    if config.get("model_type") == "deepseek_v3":
        out.update(_mini_mla_moe(config, plan, out["num_hidden_layers"]))
    return out


def _mini_mla_moe(config: dict, plan: Plan, n_layers: int) -> dict:
    """DeepSeek's MLA and MoE at mini scale: small latent and head dims, 16 routed experts (at least two per
    expert-parallel rank) of top-4, one shared expert, the first layer dense; the head count stays."""
    ep = max(st.ep for st in plan.stages)
    n_experts = max(16, 2 * ep)
    return {
        "q_lora_rank": 48,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "v_head_dim": 8,
        "n_routed_experts": n_experts,
        "num_experts_per_tok": min(4, config["num_experts_per_tok"]),
        "n_shared_experts": 1,
        "moe_intermediate_size": 16 * math.lcm(*[s.tp for s in plan.stages]),
        "first_k_dense_replace": min(1, n_layers - 1),
        "n_group": 1,
        "topk_group": 1,
        "num_nextn_predict_layers": 0,
        "rope_scaling": None,
    }


def mini_stages(plan: Plan, n_layers: int) -> list[Stage]:
    stages, start = [], 0
    for st, n in zip(plan.stages, mini_counts(plan, n_layers)):
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=st.gpu_ids, tp=st.tp, dp=st.dp, ep=st.ep))
        start += n
    return stages
