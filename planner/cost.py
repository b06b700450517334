"""The cost model: bytes, time and memory of a partition of a model over real GPUs.

Pure functions from (layer graph, GPU group, workload) to seconds and bytes. Every constant comes
from planner.constants. The solver calls the same per-layer functions, so `solve` and `estimate`
never disagree about a plan.

Physics, per decode step of a stage on one of its `tp` GPUs (DESIGN.md, cost-model notes):
- weights read: each node's shards divided as tensor parallelism divides them; the embedding reads
  only the `concurrency` rows it gathers; a MoE layer reads the experts the step's routings touch,
  E x (1 - (1 - k/E)^n), plus its shared experts and router;
- KV read: concurrency x context x KV bytes per token, divided over min(tp, KV heads) for GQA and
  whole on every rank for MLA; sliding-window layers read at most their window;
- time per layer: max(HBM bytes / (HBM bandwidth x efficiency), FLOPs / (peak x efficiency)), plus
  two all-reduces of concurrency x hidden x 2 bytes on the stage's actual GPUs, plus a fixed
  per-layer overhead; the embedding adds one all-reduce, the lm_head an all-gather of the logits;
- between stages, a send of the hidden state and the residual (2 x concurrency x hidden x 2 bytes)
  from each rank to its peer in the next stage.
TPOT is evaluated at the mean context isl + osl/2 (KV and attention work are linear in context).
With PP > 1 a replica's sequences are split into micro-batches: a token takes
max(sum of stage times, micro-batches x slowest stage).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from planner.collectives import collective_time, p2p_time
from planner.constants import DEFAULT, Constants
from planner.dtypes import ACTIVATION_BYTES, UNQUANTISED_BYTES, matrix_bytes
from planner.errors import InfeasibleError
from planner.layergraph import LayerInfo, ModelProfile
from planner.plan import Partition, Prediction, StagePrediction, Workload, validate_partition
from planner.topology import LINK_CLASSES, Topology

#: vLLM's pipeline hand-off carries two tensors per token: the hidden state and the residual.
PP_TENSORS = 2


@dataclass(frozen=True)
class GroupHardware:
    """The slowest GPU of a group: it sets the pace of a tensor-parallel stage."""

    hbm_bytes_per_s: float
    flops_per_s: float
    memory_bytes: float
    name: str

    @classmethod
    def of(cls, topo: Topology, gpu_ids, weight_dtype: str) -> "GroupHardware":
        specs = [topo.gpu(g).spec for g in gpu_ids]
        compute_dtype = "fp8" if weight_dtype == "fp8" else "bf16"
        return cls(min(s.hbm_bytes_per_s for s in specs), min(s.peak_flops(compute_dtype) for s in specs),
                   min(s.memory_bytes for s in specs), "+".join(sorted({s.name for s in specs})))


def shard_divisor(shard: str, tp: int, profile: ModelProfile) -> int:
    if shard == "replicated":
        return 1
    if shard == "kv":
        return min(tp, profile.n_kv_heads)
    return tp


def held_weight_bytes(layer: LayerInfo, tp: int, profile: ModelProfile, weight_dtype: str) -> float:
    """Bytes of this node's weights one rank stores."""
    return sum(g.weight_bytes(weight_dtype) / shard_divisor(s, tp, profile) for s, g in layer.shards.items())


def read_weight_bytes(layer: LayerInfo, tp: int, profile: ModelProfile, weight_dtype: str, tokens: int) -> float:
    """Bytes of this node's weights one rank reads in a decode step of `tokens` tokens."""
    if layer.kind == "embedding":
        return min(tokens, profile.vocab_size) * profile.hidden_size * UNQUANTISED_BYTES / tp
    if layer.moe is None:
        return held_weight_bytes(layer, tp, profile, weight_dtype)
    total = 0.0
    for s, g in layer.shards.items():
        if s != "experts":
            total += g.weight_bytes(weight_dtype) / shard_divisor(s, tp, profile)
    touched = layer.moe.expected_experts_touched(tokens)
    experts = layer.shards["experts"]
    per_expert = (matrix_bytes(experts.matrix, weight_dtype) + experts.other * UNQUANTISED_BYTES) / layer.moe.n_experts
    return total + touched * per_expert / tp


def kv_bytes_per_token_per_gpu(layer: LayerInfo, tp: int, profile: ModelProfile, kv_dtype: str) -> float:
    per = layer.kv_bytes_per_token(kv_dtype)
    return per / min(tp, profile.n_kv_heads) if layer.kv_sharded else per


def _ctx(layer: LayerInfo, context: float) -> float:
    return min(context, layer.sliding_window) if layer.sliding_window else context


@dataclass
class LayerStep:
    """One node's decode-step cost on one rank."""

    weight_bytes: float
    kv_bytes: float
    flops: float
    weights_s: float
    kv_s: float
    compute_s: float  # compute time beyond the memory time (0 when memory-bound)


def layer_step(layer: LayerInfo, tp: int, profile: ModelProfile, hw: GroupHardware, workload: Workload,
               tokens: int, context: float, c: Constants) -> LayerStep:
    w = read_weight_bytes(layer, tp, profile, workload.weight_dtype, tokens)
    kv = tokens * _ctx(layer, context) * kv_bytes_per_token_per_gpu(layer, tp, profile, workload.kv_dtype)
    flops = tokens * (layer.decode_flops_per_token + layer.attn_flops_per_context_token * _ctx(layer, context)) / tp
    bw = hw.hbm_bytes_per_s * c.hbm_efficiency
    weights_s, kv_s = w / bw, kv / bw
    compute = flops / (hw.flops_per_s * c.flops_efficiency)
    return LayerStep(w, kv, flops, weights_s, kv_s, max(0.0, compute - weights_s - kv_s))


def _collective_s(topo: Topology, ids: tuple[int, ...], nbytes: int, op: str, c: Constants) -> float:
    cache = topo.__dict__.setdefault("_engine_collective_cache", {})
    key = (ids, nbytes, op, id(c))
    if key not in cache:
        cache[key] = collective_time(topo, ids, nbytes, op, context="engine", constants=c).time_s
    return cache[key]


def allreduce_s(topo: Topology, gpu_ids, nbytes: int, c: Constants = DEFAULT, op: str = "all-reduce") -> float:
    ids = tuple(sorted(gpu_ids))
    if len(ids) < 2:
        return 0.0
    return _collective_s(topo, ids, int(nbytes), op, c)


def ring_bytes_by_class(topo: Topology, gpu_ids, nbytes: float, op: str = "all-reduce") -> dict[str, float]:
    """Bytes each ring edge carries for one collective, summed per link class (ring convention)."""
    from planner.collectives import best_ring

    ids = tuple(sorted(gpu_ids))
    n = len(ids)
    out = {k: 0.0 for k in LINK_CLASSES}
    if n < 2:
        return out
    per_edge = (2 if op == "all-reduce" else 1) * (n - 1) / n * nbytes
    order = best_ring(topo, ids).order
    for a, b in zip(order, order[1:] + order[:1]):
        out[topo.link_class(a, b)] += per_edge
    return out


@dataclass
class StageStep:
    weights_s: float = 0.0
    kv_s: float = 0.0
    compute_s: float = 0.0
    interconnect_s: float = 0.0
    overhead_s: float = 0.0
    hbm_weight_bytes: float = 0.0  # per GPU
    hbm_kv_bytes: float = 0.0  # per GPU
    interconnect: dict | None = None  # bytes by link class, whole stage

    @property
    def time_s(self) -> float:
        return self.weights_s + self.kv_s + self.compute_s + self.interconnect_s + self.overhead_s


def stage_nodes(profile: ModelProfile, layer_start: int, layer_end: int, first: bool, last: bool) -> list[LayerInfo]:
    nodes = []
    for layer in profile.layers:
        if layer.kind == "decoder":
            if layer_start <= layer.decoder_index < layer_end:
                nodes.append(layer)
        elif layer.kind == "embedding" and first:
            nodes.append(layer)
        elif layer.kind in ("norm", "lm_head") and last:
            nodes.append(layer)
    return nodes


def stage_step(profile: ModelProfile, topo: Topology, gpu_ids, layer_start: int, layer_end: int, first: bool,
               last: bool, workload: Workload, tokens: int, context: float, c: Constants = DEFAULT) -> StageStep:
    tp = len(gpu_ids)
    hw = GroupHardware.of(topo, gpu_ids, workload.weight_dtype)
    out = StageStep(interconnect={k: 0.0 for k in LINK_CLASSES})
    msg = tokens * profile.hidden_size * ACTIVATION_BYTES
    ar = allreduce_s(topo, gpu_ids, msg, c)
    ar_bytes = ring_bytes_by_class(topo, gpu_ids, msg)
    for layer in stage_nodes(profile, layer_start, layer_end, first, last):
        step = layer_step(layer, tp, profile, hw, workload, tokens, context, c)
        out.weights_s += step.weights_s
        out.kv_s += step.kv_s
        out.compute_s += step.compute_s
        out.hbm_weight_bytes += step.weight_bytes
        out.hbm_kv_bytes += step.kv_bytes
        n_ar = 2 if layer.kind == "decoder" else 1 if layer.kind == "embedding" else 0
        if tp > 1 and n_ar:
            out.interconnect_s += n_ar * ar
            for k, v in ar_bytes.items():
                out.interconnect[k] += n_ar * v
        if layer.kind == "decoder":
            out.overhead_s += c.kernel_overhead_s_per_layer
        if layer.kind == "lm_head" and tp > 1:
            logits = tokens * profile.vocab_size * ACTIVATION_BYTES
            out.interconnect_s += allreduce_s(topo, gpu_ids, logits, c, op="all-gather")
            for k, v in ring_bytes_by_class(topo, gpu_ids, logits, "all-gather").items():
                out.interconnect[k] += v
    return out


def transfer_pair_s(topo: Topology, node_a: str, node_b: str, nbytes: float, c: Constants = DEFAULT) -> float:
    """Pipeline hand-off time between a stage on node_a and the next on node_b.

    The worst p2p path between the two nodes (within one node: its worst GPU pair) bounds it: a
    conservative figure that depends on nodes only, so the solver can price it exactly.
    """
    cache = topo.__dict__.setdefault("_transfer_cache", {})
    key = (node_a, node_b, int(nbytes), id(c))
    if key not in cache:
        ga, gb = topo.node_gpus()[node_a], topo.node_gpus()[node_b]
        pairs = [(a, b) for a in ga for b in gb if a != b]
        cache[key] = max((p2p_time(topo, a, b, nbytes, constants=c) for a, b in pairs), default=0.0)
    return cache[key]


def transfer_bytes(profile: ModelProfile, tokens: int) -> float:
    return PP_TENSORS * tokens * profile.hidden_size * ACTIVATION_BYTES


def transfer_pairs(src_ids, dst_ids) -> list[tuple[int, int]]:
    """Who sends to whom at a stage boundary: rank j of the next stage receives from rank j mod tp of
    this one (rank i to rank i when the TP degrees match, as in vLLM)."""
    return [(src_ids[j % len(src_ids)], dst) for j, dst in enumerate(dst_ids)]


def transfer(profile: ModelProfile, topo: Topology, src_ids, dst_ids, tokens: int, c: Constants = DEFAULT):
    """Pipeline hand-off of (hidden, residual) to every rank of the next stage. (time_s, bytes by class)."""
    nbytes = transfer_bytes(profile, tokens)
    by_class = {k: 0.0 for k in LINK_CLASSES}
    for a, b in transfer_pairs(src_ids, dst_ids):
        if a != b:
            by_class[topo.link_class(a, b)] += nbytes
    t = transfer_pair_s(topo, topo.gpus[src_ids[0]].node, topo.gpus[dst_ids[0]].node, nbytes, c)
    return t, by_class


def stage_memory(profile: ModelProfile, tp: int, layer_start: int, layer_end: int, first: bool, last: bool,
                 workload: Workload, c: Constants = DEFAULT) -> tuple[float, float]:
    """(weight bytes per GPU, KV bytes per sequence per GPU at isl + osl tokens)."""
    nodes = stage_nodes(profile, layer_start, layer_end, first, last)
    weights = sum(held_weight_bytes(n, tp, profile, workload.weight_dtype) for n in nodes)
    seq = workload.isl + workload.osl
    kv = sum(min(seq, n.sliding_window or seq) * kv_bytes_per_token_per_gpu(n, tp, profile, workload.kv_dtype)
             for n in nodes)
    return weights, kv


def fixed_memory_bytes(c: Constants) -> float:
    return c.runtime_reserve_bytes + c.activation_bytes_per_token * c.max_num_batched_tokens


def prefill_stage_s(profile: ModelProfile, topo: Topology, gpu_ids, layer_start, layer_end, first, last,
                    workload: Workload, c: Constants = DEFAULT) -> float:
    """One request's prefill of `isl` tokens through a stage: compute-bound GEMMs, causal attention,
    two all-reduces of isl x hidden per layer."""
    tp = len(gpu_ids)
    hw = GroupHardware.of(topo, gpu_ids, workload.weight_dtype)
    n = workload.isl
    total = 0.0
    ar = allreduce_s(topo, gpu_ids, n * profile.hidden_size * ACTIVATION_BYTES, c)
    for layer in stage_nodes(profile, layer_start, layer_end, first, last):
        w = read_weight_bytes(layer, tp, profile, workload.weight_dtype, n)
        flops = (n * layer.decode_flops_per_token + layer.attn_flops_per_context_token * n * n / 2) / tp
        if layer.kind == "lm_head":
            flops = layer.decode_flops_per_token / tp  # logits of the last token only
        total += max(w / (hw.hbm_bytes_per_s * c.hbm_efficiency), flops / (hw.flops_per_s * c.flops_efficiency))
        if layer.kind == "decoder":
            total += 2 * ar + c.kernel_overhead_s_per_layer
    return total


def _replica_ids(partition: Partition) -> list[list[list[int]]]:
    return partition.replica_gpu_ids or [[s.gpu_ids for s in partition.stages]]


def estimate(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload,
             c: Constants = DEFAULT, *, check: bool = True) -> Prediction:
    """Predict time, traffic and memory of `partition`; `fits` says whether memory holds."""
    if check:
        validate_partition(partition, profile, topo)
    stages = partition.stages
    pp = len(stages)
    per_replica = math.ceil(workload.concurrency / partition.replicas)
    micro = min(pp, per_replica)
    tokens = math.ceil(per_replica / micro)
    ctx = workload.mean_context

    stage_preds: list[StagePrediction] = []
    memory, capacity, breakdown = {}, {}, {}
    totals = {"weights": 0.0, "kv": 0.0, "compute": 0.0, "interconnect": 0.0, "overhead": 0.0}
    traffic = {k: 0.0 for k in LINK_CLASSES}
    hbm_w = hbm_kv = 0.0
    stage_times, ttft = [], 0.0
    critical_bytes = 0.0
    max_conc = []
    for k, st in enumerate(stages):
        first, last = k == 0, k == pp - 1
        step = stage_step(profile, topo, st.gpu_ids, st.layer_start, st.layer_end, first, last, workload, tokens, ctx, c)
        t_out = 0.0
        if not last:
            t_out, tr = transfer(profile, topo, st.gpu_ids, stages[k + 1].gpu_ids, tokens, c)
            for cls, v in tr.items():
                traffic[cls] += v
        for cls, v in step.interconnect.items():
            traffic[cls] += v
        critical_bytes += step.hbm_weight_bytes + step.hbm_kv_bytes + sum(step.interconnect.values()) / st.tp
        if not last:
            critical_bytes += transfer_bytes(profile, tokens)
        hbm_w += step.hbm_weight_bytes * st.tp
        hbm_kv += step.hbm_kv_bytes * st.tp
        totals["weights"] += step.weights_s
        totals["kv"] += step.kv_s
        totals["compute"] += step.compute_s
        totals["interconnect"] += step.interconnect_s + t_out
        totals["overhead"] += step.overhead_s
        stage_times.append(step.time_s + t_out)
        ttft += prefill_stage_s(profile, topo, st.gpu_ids, st.layer_start, st.layer_end, first, last, workload, c)
        if not last:
            ttft += transfer(profile, topo, st.gpu_ids, stages[k + 1].gpu_ids, workload.isl, c)[0]
        weights, kv_seq = stage_memory(profile, st.tp, st.layer_start, st.layer_end, first, last, workload, c)
        hw = GroupHardware.of(topo, st.gpu_ids, workload.weight_dtype)
        fixed = fixed_memory_bytes(c)
        free = hw.memory_bytes * workload.gpu_memory_fraction - weights - fixed
        stage_max = max(0, int(free // kv_seq)) if kv_seq > 0 else 10**9
        max_conc.append(stage_max)
        for rep in _replica_ids(partition):
            for g in rep[k]:
                cap = topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction
                used = weights + kv_seq * per_replica + fixed
                memory[g], capacity[g] = used, cap
                breakdown[g] = {"weights": weights, "kv_cache": kv_seq * per_replica, "reserve": fixed}
        stage_preds.append(StagePrediction(
            index=k, layer_start=st.layer_start, layer_end=st.layer_end, gpu_ids=st.gpu_ids, tp=st.tp,
            gpu_type=hw.name, has_embedding=first, has_lm_head=last, weight_bytes_per_gpu=weights,
            kv_bytes_per_sequence_per_gpu=kv_seq, hbm_bytes_per_gpu_per_step=step.hbm_weight_bytes + step.hbm_kv_bytes,
            step_time_ms=step.time_s * 1e3, weights_ms=step.weights_s * 1e3, kv_ms=step.kv_s * 1e3,
            compute_ms=step.compute_s * 1e3, interconnect_ms=step.interconnect_s * 1e3,
            overhead_ms=step.overhead_s * 1e3, transfer_out_ms=t_out * 1e3, max_concurrency=stage_max))

    tpot_s = max(sum(stage_times), micro * max(stage_times))
    scale = tpot_s / sum(stage_times)  # pipeline bubbles stretch every component alike
    steps_per_token = micro  # micro-batches per token period, each of `tokens` sequences
    tokens_per_step = tokens * steps_per_token
    shortfall = {g: memory[g] - capacity[g] for g in memory if memory[g] > capacity[g]}
    n_gpus = len(partition.all_gpu_ids())
    agg_bw = sum(topo.gpu(g).spec.hbm_bytes_per_s for rep in _replica_ids(partition)[:1] for ids in rep for g in ids)
    unique_weights = sum(read_weight_bytes(n, 1, profile, workload.weight_dtype, tokens) for n in profile.layers)
    unique_kv = tokens * sum(_ctx(n, ctx) * n.kv_bytes_per_token(workload.kv_dtype) for n in profile.layers)
    roofline_s = steps_per_token * (unique_weights + unique_kv) / agg_bw
    tokens_per_s = min(workload.concurrency, per_replica * partition.replicas) / tpot_s
    return Prediction(
        tpot_ms=tpot_s * 1e3, ttft_ms=ttft * 1e3, tokens_per_s=tokens_per_s, tokens_per_s_per_gpu=tokens_per_s / n_gpus,
        max_concurrency=min(max_conc) * partition.replicas, fits=not shortfall,
        memory_per_gpu_bytes=memory, memory_capacity_bytes=capacity, shortfall_per_gpu_bytes=shortfall,
        memory_breakdown=breakdown,
        hbm_bytes_per_token=(hbm_w + hbm_kv) * steps_per_token / tokens_per_step,
        hbm_weight_bytes_per_token=hbm_w * steps_per_token / tokens_per_step,
        hbm_kv_bytes_per_token=hbm_kv * steps_per_token / tokens_per_step,
        interconnect_bytes_per_token=sum(traffic.values()) * steps_per_token / tokens_per_step,
        interconnect_bytes_by_class={k: v * steps_per_token / tokens_per_step for k, v in traffic.items()},
        critical_path_bytes_per_token=critical_bytes / tokens,
        time_breakdown_ms={k: v * scale * 1e3 for k, v in totals.items()},
        roofline_tpot_ms=roofline_s * 1e3, roofline_ratio=tpot_s / roofline_s if roofline_s else float("inf"),
        stages=stage_preds,
    )


def infeasible_error(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload,
                     prediction: Prediction) -> InfeasibleError:
    """The shortfall per GPU in GB and what would fit."""
    worst = max(prediction.shortfall_per_gpu_bytes.values())
    details = [f"GPU {g}: needs {prediction.memory_per_gpu_bytes[g] / 1e9:.1f} GB, has "
               f"{prediction.memory_capacity_bytes[g] / 1e9:.1f} GB ({workload.gpu_memory_fraction:g} of "
               f"{topo.gpu(g).spec.memory_bytes / 1e9:.1f} GB): short by {s / 1e9:.1f} GB"
               for g, s in sorted(prediction.shortfall_per_gpu_bytes.items())]
    details += suggestions(profile, topo, partition, workload)
    return InfeasibleError(
        f"{profile.name} does not fit on {partition.shape} of {topo.name}: short by up to {worst / 1e9:.1f} GB per GPU",
        details=details)


def suggestions(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload) -> list[str]:
    out = []
    n_gpus = len(partition.all_gpu_ids())
    fixed = fixed_memory_bytes(DEFAULT)
    cap = min(topo.gpu(g).spec.memory_bytes for g in partition.all_gpu_ids()) * workload.gpu_memory_fraction - fixed
    weights = {d: profile.weight_bytes(d) for d in ("bf16", "fp8", "int4")}
    seq = workload.isl + workload.osl
    kv_total = profile.kv_bytes_per_token(workload.kv_dtype) * seq * workload.concurrency
    if workload.weight_dtype in ("bf16", "fp16"):
        need = (weights["fp8"] + kv_total) / n_gpus
        out.append(f"try --weight-dtype fp8: weights {weights['fp8'] / 1e9:.0f} GB instead of {weights['bf16'] / 1e9:.0f} GB"
                   + (" (fits)" if need <= cap else " (still short)"))
    if workload.kv_dtype in ("bf16", "fp16") and kv_total > 0.05 * cap * n_gpus:
        out.append(f"try --kv-dtype fp8: halves the KV cache ({kv_total / 1e9:.0f} GB at concurrency {workload.concurrency})")
    if workload.concurrency > 1:
        out.append(f"fewer concurrent sequences: each takes {profile.kv_bytes_per_token(workload.kv_dtype) * seq / 1e9:.2f} GB of KV")
    gpus_needed = math.ceil((profile.weight_bytes(workload.weight_dtype) + kv_total) / cap)
    out.append(f"more GPUs: about {gpus_needed} x {topo.gpu(partition.all_gpu_ids()[0]).spec.name} hold the weights and KV")
    return out
