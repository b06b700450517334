"""The memory-bound passes between a MoE layer's grouped GEMMs (planner.cost.step.moe_activation_bytes): vLLM's and
SGLang's fused MoE runs gate/up GEMM -> silu_and_mul -> down GEMM -> moe_sum as separate kernels, and each pass
reads and writes activations in HBM, serial with the GEMMs."""

from __future__ import annotations

import pytest

from planner.cost import step
from planner.cost.constants import DEFAULT
from planner.cost.shards import Layout
from planner.cost.step import StageContext, StepLoad, layer_step, moe_activation_bytes
from planner.hardware import load_topology
from planner.model.catalog import load_profile


def _moe_layer(name: str):
    profile = load_profile(name)
    return profile, next(layer for layer in profile.layers if layer.moe is not None)


def test_deepseek_tp8_prefill_chunk_by_hand():
    """DeepSeek-R1 (hidden 7,168, experts of intermediate 2,048, top-8) at TP8 without expert parallelism, one
    8,192-token prefill chunk, fp8 weights on fp8 tensor cores. Per (token, expert) assignment: the activation reads
    2 x 256 and writes 256 bf16 values (3 x 256 x 2 = 1,536 B), quantises them (1.5 x 256 x 2 = 768 B), the top-k
    sum reads the down output (7,168 x 2 = 14,336 B): 16,640 B, x 8,192 x 8 assignments = 1,090,519,040 B. Per
    token: the sum writes 14,336 B and the input's fp8 quantisation reads and writes 21,504 B: 35,840 x 8,192 =
    293,601,280 B. In all 1,384,120,320 B a layer a GPU."""
    profile, layer = _moe_layer("deepseek-r1")
    assert (profile.hidden_size, layer.moe.intermediate_size, layer.moe.top_k) == (7168, 2048, 8)
    load = StepLoad(decode=0, prefill=8192, prefill_context=4096)
    got = moe_activation_bytes(
        layer, Layout(tp=8, dp=1, ep=1), load, DEFAULT, hidden_size=profile.hidden_size, fp8=True
    )
    assert got == pytest.approx(1_384_120_320)
    bf16 = moe_activation_bytes(
        layer, Layout(tp=8, dp=1, ep=1), load, DEFAULT, hidden_size=profile.hidden_size, fp8=False
    )
    assert bf16 == pytest.approx(8192 * 8 * (1536 + 14336) + 8192 * 14336)


def test_expert_parallelism_divides_the_assignments_not_the_width():
    """Under EP8 a GPU holds whole experts (intermediate 2,048 unsliced) and gets 1/8 of the assignments, times the
    busiest GPU's imbalance, and 1/8 of the tokens' sums: per assignment 3 x 2,048 x 2 + 14,336 = 26,624 B."""
    profile, layer = _moe_layer("deepseek-r1")
    load = StepLoad(decode=0, prefill=8192, prefill_context=4096)
    got = moe_activation_bytes(
        layer, Layout(tp=8, dp=1, ep=8), load, DEFAULT, hidden_size=profile.hidden_size, fp8=False
    )
    expected = 8192 * 8 / 8 * DEFAULT.moe_imbalance * 26_624 + 8192 / 8 * 14_336
    assert got == pytest.approx(expected)


def test_dense_layers_move_nothing_here():
    profile = load_profile("llama-70b")
    layer = next(layer for layer in profile.layers if layer.kind == "decoder")
    load = StepLoad(decode=64, prefill=2048, prefill_context=1024)
    assert moe_activation_bytes(layer, Layout(tp=8, dp=1, ep=1), load, DEFAULT, hidden_size=8192, fp8=True) == 0


def test_the_passes_add_to_the_step_at_the_group_bandwidth(monkeypatch):
    """The layer's time beyond its memory reads grows by exactly the passes' bytes over HBM bandwidth x efficiency:
    1,384,120,320 B over 4.8 TB/s x hbm_efficiency on an H200, serial with the GEMMs (taking the term away fails)."""
    profile, layer = _moe_layer("deepseek-r1")
    ctx = StageContext.of(
        profile=profile,
        topo=load_topology("8xh200"),
        gpu_ids=list(range(8)),
        layout=Layout(tp=8, dp=1, ep=1),
        weight_dtype="fp8",
        kv_dtype="bf16",
        constants=DEFAULT,
    )
    load = StepLoad(decode=0, prefill=8192, prefill_context=4096)
    with_passes = layer_step(ctx, layer, load)[4]
    monkeypatch.setattr(step, "moe_activation_bytes", lambda *a, **k: 0.0)
    without = layer_step(ctx, layer, load)[4]
    bw = ctx.hw.hbm_bytes_per_s * DEFAULT.hbm_efficiency
    assert with_passes - without == pytest.approx(1_384_120_320 / bw)
    assert with_passes - without > 0.25e-3  # about 0.3 ms a layer, 58 MoE layers a chunk
