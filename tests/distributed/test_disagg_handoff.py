"""Issue 28 item 5: the disaggregated KV hand-off over gloo, a prefill rank to a decode rank (two processes)."""

from __future__ import annotations

import pytest

from planner.errors import InputError
from planner.validate.handoff import HandoffJob, run_handoff

#: A tiny Llama with grouped-query attention: 4 layers, 4 query heads sharing 2 KV heads of 32 dims.
TINY = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}


def test_decode_rank_continues_from_the_handed_off_kv():
    result = run_handoff(HandoffJob(config=TINY, batch=2, prompt_len=8, decode_tokens=4))
    # by hand: 4 layers x (K and V) x 2 KV heads x 32 dims x 2 bytes (bf16) x 8 prompt tokens x 2 sequences
    assert result.sent_bytes == result.received_bytes == 4 * 2 * 2 * 32 * 2 * 8 * 2 == 16_384
    assert result.predicted_bytes == result.sent_bytes  # the cost model's kv_handoff_bytes x batch
    assert result.layers == 4
    assert result.logits_equal and result.max_abs_diff == 0.0  # the aggregated run's logits, bit for bit


def test_mla_is_refused_in_one_line():
    with pytest.raises(InputError, match="MLA"):
        run_handoff(HandoffJob(config={**TINY, "kv_lora_rank": 16}))
