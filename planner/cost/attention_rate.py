"""How fast prefill attention runs at a model's head dimension, relative to head dim 128.

The engines' efficiencies (`flops_efficiency`) are fitted on rows of models with 128-wide heads (Llama, Qwen) or
wider (DeepSeek's MLA, 192). A narrower head does fewer matmul FLOPs per attention score while the softmax work per
score stays the same, so the kernel reaches a smaller share of the tensor cores: FlashAttention-3's bf16 forward
pass on an H100 SXM (arXiv 2407.08608, Figure 5, no causal mask) runs 473 TFLOP/s at head dim 64 and 648 at 128 for
16k tokens, 197 and 467 at 512 (and 642 at 256: no gain past 128). Each curve is fitted as rate x L / (L + half) over
its six lengths (within 5.3% and 2.8% of every published bar): head dim 64 at 503 TFLOP/s with half 822 tokens, 128
at 669 with half 209. gpt-oss (head dim 64) is the catalog model this moves; measured on Hopper only.
"""

from __future__ import annotations

#: (saturating TFLOP/s, context tokens at half of it) of FA3's forward by head dim, fitted to the paper's bars
FA3_CURVES: dict[int, tuple[float, float]] = {64: (503.0, 822.0), 128: (669.0, 209.0)}


def _rate(head_dim: int, context: float) -> float:
    lo, hi = FA3_CURVES[64], FA3_CURVES[128]
    share = min(1.0, max(0.0, (head_dim - 64) / 64))
    rate = lo[0] + share * (hi[0] - lo[0])
    half = lo[1] + share * (hi[1] - lo[1])
    return rate * context / (context + half)


def head_dim_factor(head_dim: int, context: float) -> float:
    """Prefill attention's rate at `head_dim` and `context` tokens as a share of head dim 128's (1 from 128 up;
    head dims between 64 and 128 interpolate the two curves, narrower ones take 64's)."""
    if head_dim >= 128 or context <= 0:
        return 1.0
    return _rate(head_dim, context) / _rate(128, context)
