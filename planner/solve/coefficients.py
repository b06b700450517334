"""Integer coefficients of the CP-SAT model: what one layer costs on one stage configuration at one load.

Times are integer nanoseconds and bytes integer bytes (`RESOLUTION`). They come from the same
functions `estimate` uses (planner.cost.step, planner.cost.serving), per run of identical decoder
layers, so a plan's CP-SAT value and its estimate agree to the rounding of one unit per term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.cost.constants import Constants
from planner.cost.memory import stage_memory, usable_bytes
from planner.cost.offload import host_tier_bytes_per_s, stream_bytes_per_s, streamed_layer_s
from planner.cost.serving import OperatingPoint
from planner.cost.shards import held_weight_bytes
from planner.cost.speculative import draft_step, draft_weight_bytes
from planner.cost.step import (
    StageComm,
    StageContext,
    StageStep,
    StepLoad,
    add_steps,
    engine_overhead_s,
    floor_eager_prefill,
    node_step,
    stage_comm,
)
from planner.cost.transfer import transfer_bytes, transfer_pair_s
from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.model.layergraph import LayerInfo, ModelProfile
from planner.plan import Workload
from planner.solve.candidates import Config

TIME_UNITS_PER_S = 1e9
RESOLUTION = "times in integer nanoseconds, bytes in integer bytes"


#: Largest time coefficient handed to CP-SAT: 2^40 ns (18 minutes for one layer's share of a step). The model's
#: bounds sum such terms over 1,024 layers, two kinds and up to 128 stages and micro-batches: 2^58, inside int64
#: with headroom. A larger one comes from inputs no machine has (an efficiency of 1e-300 made 10^300).
MAX_NS = 2**40


def ns(seconds: float) -> int:
    """Seconds as integer nanoseconds for CP-SAT; an InputError when they cannot be (not finite, or past MAX_NS)."""
    if not math.isfinite(seconds) or abs(seconds) * TIME_UNITS_PER_S > MAX_NS:
        raise InputError(
            f"a cost of {seconds:.3g} s per step is beyond what the solver can represent (at most "
            f"{MAX_NS / TIME_UNITS_PER_S:,.0f} s): check the calibration's efficiencies, the "
            f"--what-if factors and the topology's bandwidths and FLOP/s"
        )
    return int(round(seconds * TIME_UNITS_PER_S))


@dataclass(frozen=True)
class Extra:
    """What the embedding (first stage) or norm + lm_head (last stage) add to a stage."""

    tpot_ns: int = 0
    ttft_ns: int = 0
    traffic_bytes: int = 0
    weight_bytes: int = 0


@dataclass(frozen=True)
class Streaming:
    """What streaming one layer of each run from host memory changes (planner.cost.offload)."""

    tpot_ns: tuple[int, ...]  # added to the mean step, per token
    ttft_ns: tuple[int, ...]  # added to a newcomer's prefill (all its chunks)
    host_bytes: tuple[int, ...]  # host memory per GPU (the shard that leaves HBM)


@dataclass(frozen=True)
class Coefficients:
    """One configuration at one operating point, per run of identical decoder layers. Step times are per output
    token: a pass over the weights divided by the tokens it yields (more than one under speculative decoding)."""

    tpot_ns: tuple[int, ...]  # one layer's share of the mean step
    ttft_ns: tuple[int, ...]  # one layer's share of a newcomer's prefill (all its chunks)
    traffic_bytes: tuple[int, ...]  # HBM + link bytes per GPU per step
    weight_bytes: tuple[int, ...]  # held per GPU
    kv_bytes: tuple[int, ...]  # per sequence per GPU
    first: Extra
    last: Extra
    capacity_bytes: int  # what weights and KV may use per GPU
    sequences: int  # sequences each GPU holds KV for (its data-parallel rank's share of the replica)
    streaming: Streaming | None = None  # None: this configuration cannot stream layers (no tier, or not asked)


def layer_runs(profile: ModelProfile) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of decoder layers with identical costs."""

    def sig(layer: LayerInfo) -> tuple:
        return (
            layer.params,
            layer.decode_flops_per_token,
            layer.attn_flops_per_context_token,
            layer.kv_elems_per_token,
            layer.sliding_window,
            layer.moe is not None,
            tuple(sorted((k, v.matrix, v.other) for k, v in layer.shards.items())),
        )

    decs, runs, start = profile.decoders, [], 0
    for i in range(1, len(decs) + 1):
        if i == len(decs) or sig(decs[i]) != sig(decs[start]):
            runs.append((start, i))
            start = i
    return runs


class _Timer:
    """A configuration's per-node steps at the loads of one operating point."""

    def __init__(self, profile: ModelProfile, topo: Topology, cfg: Config, workload: Workload, c: Constants):
        self.profile, self.topo, self.cfg, self.w, self.c = profile, topo, cfg, workload, c
        self.ctx = StageContext.of(
            profile=profile,
            topo=topo,
            gpu_ids=cfg.gpu_ids,
            layout=cfg.layout,
            weight_dtype=workload.weight_dtype,
            kv_dtype=workload.kv_dtype,
            constants=c,
        )
        self.hw = self.ctx.hw
        self._comm: dict[StepLoad, StageComm] = {}

    def step(self, layer: LayerInfo, load: StepLoad) -> StageStep:
        if load not in self._comm:
            self._comm[load] = stage_comm(self.ctx, load)
        # an eager prefill's host floor, layer by layer: the sum is at least estimate's max(host, kernels) over the
        # whole stage (stage_step), so a TTFT SLO the solver holds, the plan holds
        out = node_step(self.ctx, layer, self._comm[load], load)
        return floor_eager_prefill(out, [layer], self.ctx.constants, load)

    def mean(self, layer: LayerInfo, op: OperatingPoint) -> StageStep:
        total = StageStep()
        for load, weight in op.tpot_loads:
            add_steps(total, self.step(layer, load), weight)
        return total

    def traffic(self, step: StageStep) -> int:
        return int(round(step.hbm_weight_bytes + step.hbm_kv_bytes + sum(step.interconnect.values()) / self.cfg.size))


def _extra(
    timer: _Timer, nodes: list[LayerInfo], op: OperatingPoint, engine: Constants | None, draft: bool = False
) -> Extra:
    """The embedding's (with the engine's per-step host time, `engine` given) or the head's time and bytes, with
    the speculative draft head's (`draft`) on the last stage."""
    mean, ttft = StageStep(), StageStep()
    dp = timer.cfg.layout.dp  # one scheduler per attention DP rank (planner.cost.step.engine_overhead_s)
    mean_overhead_s = (
        0.0 if engine is None else sum(w * engine_overhead_s(load, engine, dp=dp) for load, w in op.tpot_loads)
    )
    ttft_overhead_s = 0.0 if engine is None else engine_overhead_s(op.ttft_load, engine, dp=dp)
    for layer in nodes:
        add_steps(mean, timer.mean(layer, op))
        add_steps(ttft, timer.step(layer, op.ttft_load))
    held = sum(held_weight_bytes(n, timer.cfg.layout, timer.profile, timer.w.weight_dtype) for n in nodes)
    if draft:
        t = timer
        add_steps(mean, draft_step(t.ctx, workload=t.w, decode_tokens=op.decode))
        held += draft_weight_bytes(t.profile, t.cfg.layout, t.w)
    return Extra(
        ns((mean.time_s + mean_overhead_s) / op.tokens_per_pass),
        ns(op.ttft_chunks * (ttft.time_s + ttft_overhead_s)),
        timer.traffic(mean),
        int(math.ceil(held)),
    )


def _streaming(timer: _Timer, runs: list[tuple[int, int]], op: OperatingPoint) -> Streaming | None:
    """Per run: what streaming one of its layers from host memory adds (None where the GPUs have no tier)."""
    t = timer
    rate = stream_bytes_per_s(t.topo, t.cfg.gpu_ids, t.c)
    if rate <= 0:
        return None
    tpot, ttft, host = [], [], []
    for a, _ in runs:
        layer = t.profile.decoders[a]

        def extra(load: StepLoad, layer: LayerInfo = layer) -> float:
            return streamed_layer_s(
                t.step(layer, load).time_s,
                layer,
                t.cfg.layout,
                profile=t.profile,
                weight_dtype=t.w.weight_dtype,
                rate_bytes_per_s=rate,
            )

        tpot.append(ns(sum(w * extra(load) for load, w in op.tpot_loads) / op.tokens_per_pass))
        ttft.append(ns(op.ttft_chunks * extra(op.ttft_load)))
        host.append(int(math.ceil(held_weight_bytes(layer, t.cfg.layout, t.profile, t.w.weight_dtype))))
    return Streaming(tuple(tpot), tuple(ttft), tuple(host))


def _tier_tokens_per_rate(topo: Topology, cfg: Config, workload: Workload, c: Constants) -> float:
    """Cached tokens a request loads from a host-memory KV tier over what each GPU of the configuration loads a
    second (`--prefix-tier host`, planner.cost.estimate.prefix_tier_s); 0 without the tier. Summed over a shape's
    stages the solver's TTFT counts the stages' loads one after another: at least what `estimate` prices (the stages
    load at once, the slowest sets the time), so an SLO the solver holds, the plan holds."""
    if workload.prefix_tier != "host" or workload.cached_tokens <= 0:
        return 0.0
    return workload.cached_tokens / host_tier_bytes_per_s(topo, cfg.gpu_ids, c)


def coefficients(
    profile: ModelProfile,
    topo: Topology,
    cfg: Config,
    *,
    runs: list[tuple[int, int]],
    workload: Workload,
    op: OperatingPoint,
    c: Constants,
    offload: bool = False,
) -> Coefficients:
    timer = _Timer(profile, topo, cfg, workload, c)
    tpot, ttft, traffic, weights, kv = [], [], [], [], []
    tier = _tier_tokens_per_rate(topo, cfg, workload, c)
    for a, _ in runs:
        layer = profile.decoders[a]
        mean = timer.mean(layer, op)
        tpot.append(ns(mean.time_s / op.tokens_per_pass))
        traffic.append(timer.traffic(mean))
        w, k = stage_memory(
            profile,
            cfg.layout,
            a,
            layer_end=a + 1,
            first=False,
            last=False,
            weight_dtype=workload.weight_dtype,
            kv_dtype=workload.kv_dtype,
            sequence_tokens=workload.sequence_tokens,
        )
        weights.append(int(math.ceil(w)))
        kv.append(int(math.ceil(k)))
        # a host-tier hit loads this layer's KV of the cached tokens before the prompt's prefill
        ttft.append(ns(op.ttft_chunks * timer.step(layer, op.ttft_load).time_s + tier * k / workload.sequence_tokens))
    first = [n for n in profile.layers if n.kind == "embedding"]
    last = [n for n in profile.layers if n.kind in ("norm", "lm_head")]
    capacity = int(usable_bytes(timer.hw.memory_bytes, workload.gpu_memory_fraction, c))
    return Coefficients(
        tuple(tpot),
        tuple(ttft),
        tuple(traffic),
        tuple(weights),
        tuple(kv),
        _extra(timer, first, op, c),
        _extra(timer, last, op, None, draft=True),
        capacity,
        -(-op.per_replica // cfg.layout.dp),
        _streaming(timer, runs, op) if offload else None,
    )


@dataclass(frozen=True)
class Hops:
    """Hand-off costs between the nodes a shape's stages may use: tpot (mean step) and ttft (a prefill chunk)."""

    tpot_ns: dict[tuple[str, str], int]
    ttft_ns: dict[tuple[str, str], int]
    traffic_bytes: int


def hops(profile: ModelProfile, topo: Topology, nodes: list[str], op: OperatingPoint, c: Constants) -> Hops:
    tpot, ttft = {}, {}
    for a in nodes:
        for b in nodes:
            tpot[a, b] = ns(
                sum(
                    w * transfer_pair_s(topo, a, b, transfer_bytes(profile, load.tokens), c)
                    for load, w in op.tpot_loads
                )
                / op.tokens_per_pass
            )
            ttft[a, b] = ns(
                op.ttft_chunks * transfer_pair_s(topo, a, b, transfer_bytes(profile, op.ttft_load.tokens), c)
            )
    return Hops(tpot, ttft, int(round(transfer_bytes(profile, op.decode))))
