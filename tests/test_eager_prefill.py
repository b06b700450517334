"""What a GPU's kernels reach in a step: an eager prefill step's host floor (planner.cost.step.eager_host_s), a GPU's
kernel peak share (H20) and the dtype its matmuls run in (NVFP4 on Blackwell)."""

from __future__ import annotations

import pytest

from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.engines.sglang import PROFILE as SGLANG
from planner.cost.shards import Layout
from planner.cost.step import GroupHardware, StageContext, StepLoad, compute_dtype, stage_step
from planner.hardware import load_topology
from planner.hardware.gpus import GPU_SPECS
from planner.plan import Workload
from planner.solve.candidates import Config
from planner.solve.coefficients import _Timer


def _step(profile, constants, load):
    ctx = StageContext.of(
        profile=profile,
        topo=load_topology("8xh100"),
        gpu_ids=range(8),
        layout=Layout(8, 1, 1),
        weight_dtype="fp8",
        kv_dtype="bf16",
        constants=constants,
    )
    n = profile.n_layers
    return stage_step(ctx, layer_start=0, layer_end=n, first=True, last=True, load=load)


def test_sglang_seed_prices_deepseek_v3s_one_token_eager_prefill_at_the_published_forward_cost(profiles):
    """sgl-project/sglang PR #12160: DeepSeek-V3's prefill of one new token runs 82.64 ms eagerly (23.10 ms as a
    CUDA graph). The seed, 82.64 / 61 = 1.35 ms a layer, over its 58 MoE layers (its first 3 are dense and carry
    none): 78.3 ms, the host's time, which the GPU's ~25 ms of weight reads run behind."""
    p = profiles("deepseek-v3")
    seeds = DEFAULT.model_copy(update={**SGLANG.constants, "engine": "sglang"})
    one = StepLoad(decode=0, prefill=1, prefill_context=1, prefill_kv_tokens=1, logits=1)
    step = _step(p, seeds, one)
    assert step.time_s == pytest.approx(58 * 1.35e-3, rel=1e-9)
    assert step.time_s == pytest.approx(82.64e-3, rel=0.06)
    # without the floor the same step is the GPU's alone, well under the host's
    bare = _step(p, seeds.model_copy(update={"prefill_moe_host_s_per_layer": 0}), one)
    assert bare.time_s < 0.5 * step.time_s


def test_the_floor_leaves_decode_steps_and_long_prefills_as_the_gpu_prices_them(profiles):
    """Decode steps replay CUDA graphs (no floor); a 16,384-token prefill's kernels outlast the host's ~78 ms; a dense
    model's prefill carries none."""
    p = profiles("deepseek-v3")
    c = resolve_constants(DEFAULT, "sglang")
    off = c.model_copy(update={"prefill_moe_host_s_per_layer": 0})
    decode = StepLoad(decode=4, context=1024)
    assert _step(p, c, decode).time_s == _step(p, off, decode).time_s
    long = StepLoad(decode=0, prefill=16384, prefill_context=8192, prefill_kv_tokens=16384, logits=1)
    assert _step(p, c, long).time_s == _step(p, off, long).time_s
    dense = profiles("llama-70b")
    one = StepLoad(decode=0, prefill=1, prefill_context=1, prefill_kv_tokens=1, logits=1)
    assert _step(dense, c, one).time_s == _step(dense, off, one).time_s


def test_h20_kernels_reach_a_larger_share_of_their_peak():
    """FlashMLA on H20: 120-130 of 148 TFLOP/s (deepseek-ai/FlashMLA issue #30), 0.81-0.88; on H800 660 of 989
    (FlashMLA README), 0.67: the H20's share is 1.28 times the H800's, the H100's is the reference (1)."""
    h20, h100 = GPU_SPECS["H20-96GB"], GPU_SPECS["H100-SXM5-80GB"]
    assert h20.kernel_peak_share == pytest.approx(0.86 / 0.67, rel=0.01)
    assert h100.kernel_peak_share == 1.0
    topo = load_topology("2x8xh20-roce")
    hw = GroupHardware.of(topo, range(8), "bf16")
    assert hw.flops_per_s == pytest.approx(148e12 * 1.28)
    assert hw.bf16_flops_per_s == pytest.approx(148e12 * 1.28)


def test_nvfp4_weights_run_on_blackwells_fp4_tensor_cores():
    """NVFP4 checkpoints (weights and activations in FP4 with per-16 scales) run their GEMMs on Blackwell's FP4
    tensor cores: 9 PFLOP/s dense on a B200 (datasheet), 4x its bf16 rate. A GPU without them (H100) dequantises to
    bf16; mxfp4 (gpt-oss's experts, W4A16 on Hopper) stays priced at bf16 everywhere."""
    b200, h100 = load_topology("8xb200"), load_topology("8xh100")
    assert GroupHardware.of(b200, range(8), "nvfp4").flops_per_s == pytest.approx(9000e12)
    assert GroupHardware.of(h100, range(8), "nvfp4").flops_per_s == pytest.approx(989e12)
    assert GroupHardware.of(b200, range(8), "fp8").flops_per_s == pytest.approx(4500e12)
    assert compute_dtype("mxfp4", GPU_SPECS["B200-180GB"]) == "bf16"


def test_the_solvers_layer_times_carry_the_floor_at_least_as_estimate_does(profiles):
    """The solver adds layer times (planner.solve.coefficients): each MoE layer of an SGLang prefill step takes at
    least its 1.35 ms of host time, so their sum is never under the stage's max(host, kernels) that estimate prices
    (DeepSeek-V3 one-token prefill: 58 x 1.35 ms plus the 3 dense layers' kernels)."""
    p, topo = profiles("deepseek-v3"), load_topology("8xh100")
    c = resolve_constants(DEFAULT, "sglang")
    w = Workload(weight_dtype="fp8", engine="sglang")
    timer = _Timer(p, topo, Config(tuple(range(8)), "n0", Layout(8, 1, 1)), w, c)
    one = StepLoad(decode=0, prefill=1, prefill_context=1, prefill_kv_tokens=1, logits=1)
    layers = sum(timer.step(layer, one).time_s for layer in p.decoders)
    assert layers >= 58 * 1.35e-3
    every_node = sum(timer.step(node, one).time_s for node in p.layers)
    assert every_node >= _step(p, c, one).time_s
