"""What a model config must say before transformers builds it: the family, and every number in its range.

A Hugging Face config.json is the user's file: a typo or a nonsense value (rope_theta -1, 10^6 layers, more
experts per token than experts) must be one line naming the file and field, not a traceback from deep inside
transformers or a plan built on garbage. The ranges are physical: far beyond any published model, tight enough
that every product the cost model and the solver form stays exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from planner.errors import ConfigError

#: The decoder families whose layers the tracer walks (planner.model.trace) and the tests cover.
SUPPORTED_FAMILIES = (
    "llama",
    "mistral",
    "mixtral",
    "qwen2",
    "qwen3",
    "qwen3_moe",
    "deepseek_v3",
    "kimi_k2",
    "gpt_oss",
    "llama4_text",
)
MLA_FAMILIES = ("deepseek_v2", "deepseek_v3", "kimi_k2")
MAX_LAYERS = 1024
MAX_WIDTH = 1 << 20  # hidden and intermediate sizes, head counts, vocabulary
MAX_EXPERTS = 4096


def _positive_finite(name: str, value: object, *, below: float = math.inf, least: float = 0.0) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < below
        or value < least
        or not math.isfinite(min(value, 1e308))
    ):  # min(): an int of 400 digits is not a float
        upper = "" if below == math.inf else f" and below {below:g}"
        lower = f"above 0 (at least {least:g})" if least else "above 0"
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:20]}... ({len(repr(value))} characters)"
        raise ValueError(f"field '{name}' must be a finite number {lower}{upper}, got {shown}")


class ModelConfigCheck(BaseModel):
    """The fields planner reads, with their ranges; every other field passes through to transformers."""

    model_config = ConfigDict(extra="allow")
    model_type: str
    architectures: Optional[list[str]] = Field(None, max_length=8)
    hidden_size: StrictInt = Field(ge=1, le=MAX_WIDTH)
    num_hidden_layers: StrictInt = Field(ge=1, le=MAX_LAYERS)
    num_attention_heads: StrictInt = Field(ge=1, le=1 << 16)
    vocab_size: StrictInt = Field(ge=1, le=1 << 24)
    intermediate_size: StrictInt = Field(ge=1, le=MAX_WIDTH)
    num_key_value_heads: Optional[StrictInt] = Field(None, ge=1, le=1 << 16)
    head_dim: Optional[StrictInt] = Field(None, ge=1, le=1 << 16)
    max_position_embeddings: Optional[StrictInt] = Field(None, ge=1, le=1 << 27)
    sliding_window: Optional[StrictInt] = Field(None, ge=1, le=1 << 27)
    num_experts_per_tok: Optional[StrictInt] = Field(None, ge=1, le=MAX_EXPERTS)
    kv_lora_rank: Optional[StrictInt] = Field(None, ge=1, le=MAX_WIDTH)
    n_group: Optional[StrictInt] = Field(None, ge=1, le=MAX_EXPERTS)
    topk_group: Optional[StrictInt] = Field(None, ge=1, le=MAX_EXPERTS)
    # Mixture-of-experts and MLA widths and layer choices (DeepSeek, Kimi-K2, Qwen3-MoE, Qwen2-MoE).
    moe_intermediate_size: Optional[StrictInt] = Field(None, ge=1, le=MAX_WIDTH)
    shared_expert_intermediate_size: Optional[StrictInt] = Field(None, ge=1, le=MAX_WIDTH)
    n_shared_experts: Optional[StrictInt] = Field(None, ge=0, le=MAX_EXPERTS)
    q_lora_rank: Optional[StrictInt] = Field(None, ge=1, le=MAX_WIDTH)
    qk_rope_head_dim: Optional[StrictInt] = Field(None, ge=1, le=1 << 16)
    qk_nope_head_dim: Optional[StrictInt] = Field(None, ge=0, le=1 << 16)
    v_head_dim: Optional[StrictInt] = Field(None, ge=1, le=1 << 16)
    first_k_dense_replace: Optional[StrictInt] = Field(None, ge=0, le=MAX_LAYERS)
    moe_layer_freq: Optional[StrictInt] = Field(None, ge=1, le=MAX_LAYERS)
    decoder_sparse_step: Optional[StrictInt] = Field(None, ge=1, le=MAX_LAYERS)
    mlp_only_layers: Optional[list[StrictInt]] = Field(None, max_length=MAX_LAYERS)

    @model_validator(mode="after")
    def _cross_fields(self) -> "ModelConfigCheck":
        extra = self.model_extra or {}
        _positive_finite("rope_theta", extra.get("rope_theta"), below=1e15, least=1.0)  # RoPE's base: 10^4 to 10^8
        _positive_finite("routed_scaling_factor", extra.get("routed_scaling_factor"), below=1e6)
        layers = self.num_hidden_layers
        bad = [i for i in self.mlp_only_layers or [] if not 0 <= i < layers]
        if bad:
            raise ValueError(f"mlp_only_layers names layer {bad[0]}, outside 0..{layers - 1} ({layers} layers)")
        if len(set(self.mlp_only_layers or [])) < len(self.mlp_only_layers or []):
            raise ValueError("mlp_only_layers names a layer twice")
        if self.first_k_dense_replace is not None and self.first_k_dense_replace > layers:
            raise ValueError(f"first_k_dense_replace ({self.first_k_dense_replace}) exceeds the {layers} layers")
        for eps in ("rms_norm_eps", "layer_norm_eps", "layer_norm_epsilon"):
            _positive_finite(eps, extra.get(eps), below=1.0)
        experts = next(
            (
                extra.get(k)
                for k in ("num_local_experts", "n_routed_experts", "num_experts")
                if extra.get(k) is not None
            ),
            None,
        )
        if experts is not None and (
            isinstance(experts, bool) or not isinstance(experts, int) or not 1 <= experts <= MAX_EXPERTS
        ):
            raise ValueError(f"the expert count must be a whole number from 1 to {MAX_EXPERTS}, got {experts!r}")
        if experts is not None and self.num_experts_per_tok is None:
            raise ValueError("a mixture-of-experts config needs num_experts_per_tok (the experts each token uses)")
        if experts is not None and self.num_experts_per_tok is not None and self.num_experts_per_tok > experts:
            raise ValueError(f"num_experts_per_tok ({self.num_experts_per_tok}) exceeds the {experts} experts")
        if (
            self.model_type in MLA_FAMILIES
            and extra.get("n_routed_experts")
            and (self.n_group is None or self.topk_group is None)
        ):
            raise ValueError("DeepSeek's grouped routing needs n_group and topk_group")
        if self.n_group is not None and self.topk_group is not None and self.topk_group > self.n_group:
            raise ValueError(f"topk_group ({self.topk_group}) exceeds n_group ({self.n_group})")
        if self.kv_lora_rank is not None and self.model_type not in MLA_FAMILIES:
            raise ValueError(f"kv_lora_rank is MLA's (DeepSeek, Kimi-K2); model_type '{self.model_type}' has no MLA")
        return self


def _family(config: dict) -> str:
    """The config's family: its model_type, or the one its architecture names (Kimi-K2 ships remote code)."""
    model_type = config.get("model_type")
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs else None
    if model_type in SUPPORTED_FAMILIES:
        return model_type
    if arch == "DeepseekV3ForCausalLM":
        return "deepseek_v3"
    raise ConfigError(
        f"model_type '{str(model_type)[:40]}' is not a supported family: planner traces {', '.join(SUPPORTED_FAMILIES)}"
    )


def _message(err: Mapping[str, Any]) -> str:
    """A pydantic error as one line naming the field and its allowed range."""
    field = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"field '{field}' is missing"
    if not field:  # a cross-field check
        return err["msg"].removeprefix("Value error, ")
    top = str(err["loc"][0])
    lo = hi = None
    for m in getattr(ModelConfigCheck.model_fields.get(top), "metadata", []):
        lo = getattr(m, "ge", lo)
        hi = getattr(m, "le", hi)
    if (
        lo is None
        or hi is None
        or "int" not in err["type"]
        and "greater" not in err["type"]
        and "less" not in err["type"]
    ):
        return f"field '{field}': {err['msg']}, got {err['input']!r}"[:200]
    return f"field '{field}' must be a whole number from {lo} to {hi:,}, got {err['input']!r}"[:200]


def check_model_config(config: object, origin: str) -> None:
    """One line naming the file and the field (or the family) when the config cannot become a plan."""
    if not isinstance(config, dict):
        raise ConfigError(f"{origin}: a model config must be a JSON object, got {type(config).__name__}")
    if not isinstance(config.get("model_type"), str) or not config.get("model_type"):
        raise ConfigError(f"{origin}: field 'model_type' is missing or not a string (for example \"llama\")")
    try:
        _family(config)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc.message}") from None
    try:
        checked = ModelConfigCheck.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {_message(exc.errors()[0])}") from None
    heads, hidden = checked.num_attention_heads, checked.hidden_size
    if checked.head_dim is None and checked.kv_lora_rank is None and hidden % heads:
        raise ConfigError(
            f"{origin}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) "
            "and no head_dim is given"
        )
    kv = checked.num_key_value_heads or heads
    if heads % kv:
        raise ConfigError(f"{origin}: num_attention_heads ({heads}) is not divisible by num_key_value_heads ({kv})")
