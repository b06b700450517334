"""Trace a Hugging Face config into a ModelProfile, on torch's meta device (no weights allocated).

The model is built by `transformers` from its config, exactly as it would be for serving, and
walked module by module. Parameter counts come from the built modules; decode FLOPs come from
running each distinct decoder layer on meta tensors under `torch.utils.flop_counter.FlopCounterMode`.

FLOPs per layer are measured at two sequence lengths, T=1 and T=8, with eager attention (which
computes the full T x T score matrix). Then flops(T) = a*T + b*T^2, where `a` is the matmul work of
one token and `b` the attention work per token per token of context: a decode step at context C
costs a + b*C.

Routed experts in transformers dispatch tokens with data-dependent indexing, which meta tensors
cannot run. For the FLOP count only, each experts module is given a forward that sends every token
through `top_k` experts of the same shape: the same matmuls a real routing performs.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any

from planner.errors import ConfigError
from planner.model.layergraph import LayerInfo, ModelProfile, MoEInfo, ParamGroup

_T_SHORT, _T_LONG = 1, 8


def _shard_of(param_name: str, module_type: str) -> str:
    """How tensor parallelism divides a decoder-layer parameter (see planner.model.layergraph)."""
    leaf = param_name.rsplit(".", 1)[-1]
    if ".experts." in f".{param_name}" and "shared_expert" not in param_name:
        return "experts"
    if "Router" in module_type or "Gate" in module_type or leaf == "e_score_correction_bias":
        return "replicated"
    if "norm" in param_name.lower():
        return "replicated"
    if "q_a_proj" in param_name or "kv_a_proj" in param_name:
        return "replicated"  # MLA's down-projections are ReplicatedLinear in vLLM
    if "k_proj" in param_name or "v_proj" in param_name:
        return "kv"
    return "split"


def _is_matrix(param_name: str, ndim: int, shard: str) -> bool:
    """Matrices follow the weight dtype; norms, biases and routers stay 16-bit."""
    if ndim < 2:
        return False
    if shard == "replicated" and "proj" not in param_name:
        return False  # the MoE router
    return True


def _group_params(module) -> dict[str, ParamGroup]:
    owners = {name: type(sub).__name__ for name, sub in module.named_modules()}
    shards: dict[str, ParamGroup] = {}
    for name, param in module.named_parameters():
        owner = owners.get(name.rsplit(".", 1)[0] if "." in name else "", "")
        shard = _shard_of(name, owner)
        group = shards.setdefault(shard, ParamGroup())
        if _is_matrix(name, param.dim(), shard):
            group.matrix += param.numel()
        else:
            group.other += param.numel()
    return dict(sorted(shards.items()))


def _matmul(x: Any, weight: Any) -> Any:
    """x times one expert's matrix, stored [out, in] (nn.Linear's layout) or [in, out] (gpt-oss's)."""
    import torch.nn.functional as F

    return F.linear(x, weight) if weight.shape[-1] == x.shape[-1] else x @ weight


def _dense_experts_forward(self: Any, hidden_states: Any, top_k_index: Any = None, *_: Any, **__: Any) -> Any:
    """Every token through `top_k` experts of this module's shape (FLOP counting only)."""
    import torch

    top_k = top_k_index.shape[-1] if top_k_index is not None else 1
    out = torch.zeros_like(hidden_states)
    for _expert in range(top_k):
        if hasattr(self, "gate_up_proj"):
            gate, up = _matmul(hidden_states, self.gate_up_proj[0]).chunk(2, dim=-1)
        else:  # separate gate and up tensors
            gate, up = _matmul(hidden_states, self.gate_proj[0]), _matmul(hidden_states, self.up_proj[0])
        out = out + _matmul(gate * up, self.down_proj[0])
    return out


def _count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _layer_flops(model, layer, hidden_size: int) -> tuple[int, int]:
    import torch

    for sub in layer.modules():
        if type(sub).__name__.endswith("Experts"):
            sub.forward = types.MethodType(_dense_experts_forward, sub)
    totals = {}
    for t in (_T_SHORT, _T_LONG):
        x = torch.empty(1, t, hidden_size, device="meta", dtype=torch.bfloat16)
        pos = torch.arange(t, device="meta")[None]
        pe = model.model.rotary_emb(x, pos)
        mask = torch.zeros(1, 1, t, t, device="meta", dtype=torch.bfloat16)
        totals[t] = _count_flops(lambda: layer(x, attention_mask=mask, position_embeddings=pe, position_ids=pos))
    # flops(T) = a*T + b*T^2 at T=1 and T=8
    b = (totals[_T_LONG] - _T_LONG * totals[_T_SHORT]) // (_T_LONG * _T_LONG - _T_LONG)
    a = totals[_T_SHORT] - b
    return a, b


@contextlib.contextmanager
def _no_parameter_init():
    """Meta tensors hold no values: skip the random initialisation of Linear and Embedding layers."""
    import torch

    saved = {cls: cls.reset_parameters for cls in (torch.nn.Linear, torch.nn.Embedding)}
    try:
        for cls in saved:
            cls.reset_parameters = lambda self: None
        yield
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn


def _build(config_dict: dict, name: str):
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    clean = {k: v for k, v in config_dict.items() if k not in ("quantization_config", "auto_map")}
    clean["model_type"] = _known_model_type(clean)
    try:
        config = AutoConfig.for_model(**clean)
    except Exception as exc:  # transformers and huggingface_hub's strict dataclasses raise many kinds
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        raise ConfigError(
            f"{name}: transformers {transformers.__version__} rejects this config "
            f"(model_type '{config_dict.get('model_type')}'): {' '.join(lines[:2])[:300]}"
        ) from None
    config._attn_implementation = "eager"
    try:
        with torch.device("meta"), _no_parameter_init():
            model = AutoModelForCausalLM.from_config(config)
    except Exception as exc:  # transformers raises many kinds for a config it cannot build
        raise ConfigError(f"{name}: transformers could not build the model: {str(exc).splitlines()[0]}") from None
    return config, model


def _known_model_type(config_dict: dict) -> Any:
    """The config's model_type, or, where transformers does not know it (Kimi-K2's `kimi_k2` ships remote code
    for DeepseekV3ForCausalLM), the model_type of the architecture the config names."""
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config_dict.get("model_type")
    if model_type in CONFIG_MAPPING:
        return model_type
    by_class = {cls: mt for mt, cls in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items() if isinstance(cls, str)}
    for arch in config_dict.get("architectures") or []:
        if isinstance(arch, str) and arch in by_class:
            return by_class[arch]
    return model_type


def _moe_info(config, layer_shards: dict[str, ParamGroup]) -> MoEInfo | None:
    experts = layer_shards.get("experts")
    if experts is None:
        return None
    n_experts = (
        getattr(config, "num_local_experts", None)
        or getattr(config, "n_routed_experts", None)
        or getattr(config, "num_experts")
    )
    shared = getattr(config, "n_shared_experts", None) or 0
    moe_inter = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
    return MoEInfo(
        n_experts=n_experts,
        top_k=config.num_experts_per_tok,
        n_shared_experts=shared,
        params_per_expert=experts.matrix // n_experts,
        intermediate_size=moe_inter,
    )


def _kv(config) -> tuple[int, bool, str, int, int]:
    """(KV elements per token per layer, sharded over TP?, attention kind, kv heads, head dim)."""
    heads = config.num_attention_heads
    if getattr(config, "kv_lora_rank", None):
        # MLA caches the compressed latent plus the shared RoPE key, replicated on every TP rank.
        head_dim = config.qk_nope_head_dim + config.qk_rope_head_dim
        return config.kv_lora_rank + config.qk_rope_head_dim, False, "mla", heads, head_dim
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return 2 * kv_heads * head_dim, True, "gqa", kv_heads, head_dim


def _sliding_windows(config, n_layers: int) -> list[int | None]:
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not window:
        return [None] * n_layers
    if layer_types:
        return [window if t == "sliding_attention" else None for t in layer_types]
    if getattr(config, "use_sliding_window", True) is False:
        return [None] * n_layers
    return [window] * n_layers


def context_length(config: dict) -> int:
    """The longest sequence the config serves: max_position_embeddings, or original x factor under
    rope scaling when that is longer (YaRN configs that keep the original length there)."""
    longest = config.get("max_position_embeddings") or 0
    scaling = config.get("rope_scaling") or {}
    if isinstance(scaling, dict):
        original, factor = scaling.get("original_max_position_embeddings"), scaling.get("factor")
        if isinstance(original, (int, float)) and isinstance(factor, (int, float)) and original > 0 and factor > 0:
            longest = max(longest, int(original * factor))
    return int(longest) if isinstance(longest, (int, float)) else 0


def trace_config(config_dict: dict, *, name: str, source: str, config_hash: str) -> ModelProfile:
    config, model = _build(config_dict, name)
    try:
        return _walk(config, model, config_dict, name, source, config_hash=config_hash)
    except ConfigError:
        raise
    except Exception as exc:  # a config transformers builds but cannot run: one line, not its traceback
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ConfigError(
            f"{name}: transformers built the model but could not run a layer of it "
            f"({type(exc).__name__}: {first[:200]}); check the config's fields"
        ) from None


def _walk(config: Any, model: Any, config_dict: dict, name: str, source: str, *, config_hash: str) -> ModelProfile:
    """The layer graph of a built model: nodes, parameter groups, FLOPs, KV."""
    embed = model.get_input_embeddings()
    embed_params = sum(p.numel() for p in embed.parameters())
    layers = [
        LayerInfo(
            index=0,
            name="embed",
            kind="embedding",
            params=embed_params,
            shards={"vocab": ParamGroup(other=embed_params)},
            decode_flops_per_token=0,
        )
    ]
    layers += _decoder_nodes(config, model, first_index=1)
    tied = model.get_output_embeddings().weight is embed.weight
    layers += _tail_nodes(model, config.hidden_size, tied, first_index=len(layers))
    total = sum(layer.params for layer in layers)
    built = sum(p.numel() for p in model.parameters())
    if total != built:  # every parameter must land in exactly one node
        raise ConfigError(f"{name}: traced {total} parameters but the model has {built}; unsupported layout")
    _, _, attention, kv_heads, head_dim = _kv(config)
    return ModelProfile(
        name=name,
        source=source,
        config_hash=config_hash,
        architecture=(config_dict.get("architectures") or [type(model).__name__])[0],
        model_type=config.model_type,
        hidden_size=config.hidden_size,
        n_layers=config.num_hidden_layers,
        n_heads=config.num_attention_heads,
        n_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=config.intermediate_size,
        vocab_size=config.vocab_size,
        max_position_embeddings=getattr(config, "max_position_embeddings", 0) or 0,
        context_length=context_length(config_dict),
        attention=attention,
        layers=layers,
    )


def _decoder_nodes(config: Any, model: Any, first_index: int) -> list[LayerInfo]:
    """One node per decoder layer: its parameters by shard kind, KV per token, FLOPs (measured once per
    distinct layer signature), sliding window and MoE details."""
    kv_elems, kv_sharded, _, _, _ = _kv(config)
    windows = _sliding_windows(config, config.num_hidden_layers)
    flops_by_signature: dict[tuple, tuple[int, int]] = {}
    out = []
    for i, layer in enumerate(model.model.layers):
        shards = _group_params(layer)
        signature = tuple((n, tuple(p.shape)) for n, p in layer.named_parameters())
        if signature not in flops_by_signature:
            flops_by_signature[signature] = _layer_flops(model, layer, config.hidden_size)
        per_token, per_context = flops_by_signature[signature]
        out.append(
            LayerInfo(
                index=first_index + i,
                name=f"layer.{i}",
                kind="decoder",
                decoder_index=i,
                params=sum(g.params for g in shards.values()),
                shards=shards,
                kv_elems_per_token=kv_elems,
                kv_sharded=kv_sharded,
                decode_flops_per_token=per_token,
                attn_flops_per_context_token=per_context,
                sliding_window=windows[i],
                moe=_moe_info(config, shards),
            )
        )
    return out


def _tail_nodes(model: Any, hidden: int, tied: bool, first_index: int) -> list[LayerInfo]:
    """The final norm and the lm_head (no parameters of its own when tied to the embedding)."""
    import torch

    norm_params = sum(p.numel() for p in model.model.norm.parameters())
    lm_head = model.get_output_embeddings()
    head_params = 0 if tied else sum(p.numel() for p in lm_head.parameters())
    x = torch.empty(1, 1, hidden, device="meta", dtype=torch.bfloat16)
    return [
        LayerInfo(
            index=first_index,
            name="norm",
            kind="norm",
            params=norm_params,
            shards={"replicated": ParamGroup(other=norm_params)},
            decode_flops_per_token=0,
        ),
        LayerInfo(
            index=first_index + 1,
            name="lm_head",
            kind="lm_head",
            params=head_params,
            shards={"vocab": ParamGroup(other=head_params)},
            decode_flops_per_token=_count_flops(lambda: lm_head(x)),
        ),
    ]
