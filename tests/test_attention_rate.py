"""Prefill attention at a narrow head dimension (planner.cost.attention_rate): FlashAttention-3's published bf16
forward rates on an H100 SXM (arXiv 2407.08608, Figure 5, no causal mask) by head dim and sequence length."""

from __future__ import annotations

import pytest

from planner.cost import attention_rate
from planner.cost.attention_rate import head_dim_factor

# Figure 5's bars, TFLOP/s at 512, 1k, 2k, 4k, 8k and 16k tokens
LENGTHS = (512, 1024, 2048, 4096, 8192, 16384)
FA3 = {64: (197, 265, 371, 420, 460, 473), 128: (467, 565, 625, 638, 646, 648)}


@pytest.mark.parametrize("head_dim", [64, 128])
def test_each_fitted_curve_is_within_6_percent_of_every_published_bar(head_dim):
    for length, bar in zip(LENGTHS, FA3[head_dim]):
        assert attention_rate._rate(head_dim, length) == pytest.approx(bar, rel=0.06)


def test_head_dim_64_runs_at_the_published_share_of_128():
    """At 16k tokens 473 / 648 = 0.730 measured; the curves give 503 x 16384 / 17206 over 669 x 16384 / 16593 =
    478.96 / 660.57 = 0.7251. At 512 tokens 197 / 467 = 0.42 measured, 0.406 from the curves."""
    assert head_dim_factor(64, 16384) == pytest.approx(0.7251, abs=5e-4)
    assert head_dim_factor(64, 16384) == pytest.approx(473 / 648, rel=0.01)
    assert head_dim_factor(64, 512) == pytest.approx(197 / 467, rel=0.05)


def test_wide_heads_and_empty_contexts_are_unchanged():
    """Head dim 256 measured 642 against 128's 648 at 16k: no gain past 128, so 128 and up (MLA's 192) keep 1."""
    assert head_dim_factor(128, 4096) == head_dim_factor(192, 4096) == head_dim_factor(256, 100) == 1.0
    assert head_dim_factor(64, 0) == 1.0
    assert head_dim_factor(64, 4096) < head_dim_factor(96, 4096) < 1.0


def test_gpt_oss_prefill_attention_is_priced_at_the_narrow_rate(monkeypatch):
    """gpt-oss-120b (head dim 64) prefilling a 32,768-token prompt on one H200 (its tokens attend to 16,384
    on average): the step's compute time drops when
    the factor is taken away (attention is most of a 32k prefill's FLOPs beyond the memory time)."""
    from planner.cost import step

    profile, ctx, load = _gpt_oss_prefill()
    slow = sum(step._compute_s(layer, ctx, load) for layer in profile.layers)
    monkeypatch.setattr(step, "head_dim_factor", lambda head_dim, context: 1.0)
    fast = sum(step._compute_s(layer, ctx, load) for layer in profile.layers)
    assert profile.head_dim == 64
    assert slow > fast * 1.10  # 1.139: 0.879 s against 0.772 s


def _gpt_oss_prefill():
    from planner.cost.constants import DEFAULT
    from planner.cost.shards import Layout
    from planner.cost.step import StageContext, StepLoad
    from planner.hardware import load_topology
    from planner.model.catalog import load_profile

    profile = load_profile("gpt-oss-120b")
    topo = load_topology("8xh200")
    ctx = StageContext.of(
        profile=profile,
        topo=topo,
        gpu_ids=[0],
        layout=Layout(tp=1, dp=1, ep=1),
        weight_dtype="mxfp4",
        kv_dtype="bf16",
        constants=DEFAULT,
    )
    load = StepLoad(decode=0, prefill=32768, context=0, prefill_context=16384)
    return profile, ctx, load
