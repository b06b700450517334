"""Shrink a plan to `--scale mini`: same architecture family, head counts (so the same TP splits and KV
replication), TP/PP shape and GPU ids, the layer split in the same proportions; small hidden size,
intermediate size, vocabulary and layer count so a CPU runs it in seconds."""

from __future__ import annotations

import math

from planner.errors import InputError
from planner.plan import Plan, Stage

SUPPORTED = ("llama", "qwen2", "mistral", "mixtral")
MINI_HEAD_DIM = 8
MINI_LAYERS = 8  # at least; 4 per stage beyond two stages


def check_family(config: dict) -> None:
    if config.get("model_type") not in SUPPORTED or config.get("kv_lora_rank"):
        raise InputError(f"validate runs the {', '.join(SUPPORTED)} families; model_type "
                         f"'{config.get('model_type')}' (MLA or another layout) is not supported yet")


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
    out.update(hidden_size=hidden, head_dim=MINI_HEAD_DIM, num_attention_heads=heads, num_key_value_heads=kv,
               intermediate_size=shrink(config["intermediate_size"]), vocab_size=64 * lcm_tp,
               num_hidden_layers=sum(mini_counts(plan, config["num_hidden_layers"])), max_position_embeddings=4096,
               tie_word_embeddings=False, sliding_window=None, use_sliding_window=False,
               bos_token_id=0, eos_token_id=1)
    return out


def mini_stages(plan: Plan, n_layers: int) -> list[Stage]:
    stages, start = [], 0
    for st, n in zip(plan.stages, mini_counts(plan, n_layers)):
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=st.gpu_ids, tp=st.tp))
        start += n
    return stages
