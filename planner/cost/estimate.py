"""`estimate`: the time, traffic and memory of a partition at one operating point.

Per stage, the mean engine step of the load (planner.cost.serving: decode-only steps and steps
carrying prompt chunks, weighted) from planner.cost.step, the hand-off to the next stage, and the
memory of its GPUs. With PP > 1 a replica's sequences are split into micro-batches: a token takes
max(sum of stage times, micro-batches x slowest stage). The solver builds its coefficients from the
same functions, so `solve` and `estimate` never disagree about a plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.cost.constants import DEFAULT, Constants
from planner.cost.memory import fixed_memory_bytes, kv_capacity, stage_memory, usable_bytes
from planner.cost.offload import offload_s, stage_weight_bytes, streamed_bytes
from planner.cost.serving import OperatingPoint, operating_point
from planner.cost.shards import Layout, layout_of, read_weight_bytes, sparse_read_bytes
from planner.cost.speculative import draft_step, draft_weight_bytes
from planner.cost.step import GroupHardware, StageStep, StepLoad, add_steps, engine_overhead_s, stage_step
from planner.cost.transfer import transfer, transfer_bytes
from planner.hardware.topology import LINK_CLASSES, Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Stage, StagePrediction, Workload, validate_partition

COMPONENTS = ("weights", "kv", "compute", "interconnect", "overhead", "offload")


@dataclass
class StageEval:
    """One stage at one operating point: its mean step, hand-off, prefill chain time and memory."""

    step: StageStep
    transfer_out_s: float
    transfer_bytes: dict[str, float]
    ttft_s: float  # the newcomer's prefill chunk through this stage (and its hand-off)
    weights: float
    kv_per_sequence: float
    capacity: int

    @property
    def time_s(self) -> float:
        return self.step.time_s + self.transfer_out_s


def mean_step(parts: list[tuple[StageStep, float]]) -> StageStep:
    out = StageStep()
    for step, weight in parts:
        add_steps(out, step, weight)
    return out


def evaluate_stage(profile: ModelProfile, topo: Topology, partition: Partition, k: int, workload: Workload,
                   op: OperatingPoint, c: Constants) -> StageEval:
    st = partition.stages[k]
    layout = layout_of(st)
    first, last = k == 0, k == partition.pp - 1
    nxt = partition.stages[k + 1] if not last else None

    def run(load: StepLoad) -> tuple[StageStep, float, dict[str, float]]:
        step = stage_step(profile, topo, st.gpu_ids, layout, st.layer_start, st.layer_end, first, last,
                          workload.weight_dtype, workload.kv_dtype, load, c)
        step.offload_s += offload_s(profile, topo, st.gpu_ids, layout, st.offload_layers, workload.weight_dtype,
                                    workload.kv_dtype, load, c)
        if first:
            step.overhead_s += engine_overhead_s(load, c)
        if nxt is None:
            return step, 0.0, {cls: 0.0 for cls in LINK_CLASSES}
        t, by_class = transfer(profile, topo, st.gpu_ids, nxt.gpu_ids, load.tokens / st.dp, c)
        return step, t, by_class

    runs = [(run(load), weight) for load, weight in op.tpot_loads]
    step = mean_step([(r[0], w) for r, w in runs])
    if last:
        add_steps(step, draft_step(profile, topo, st.gpu_ids, layout, workload, op.decode, c))
    t_out = sum(r[1] * w for r, w in runs)
    t_bytes = {cls: sum(r[2][cls] * w for r, w in runs) for cls in LINK_CLASSES}
    ttft_step, ttft_out, _ = run(op.ttft_load)
    weights, kv_seq = stage_memory(profile, layout, st.layer_start, st.layer_end, first, last, workload.weight_dtype,
                                   workload.kv_dtype, workload.sequence_tokens)
    weights = stage_weight_bytes(weights, profile, layout, st.offload_layers, workload.weight_dtype)
    if last:
        weights += draft_weight_bytes(profile, layout, workload)
    hw = GroupHardware.of(topo, st.gpu_ids, workload.weight_dtype)
    capacity = kv_capacity(usable_bytes(hw.memory_bytes, workload.gpu_memory_fraction, c), weights, kv_seq, st.dp)
    return StageEval(step, t_out, t_bytes, ttft_step.time_s + ttft_out, weights, kv_seq, capacity)


def _memory(partition: Partition, evals: list[StageEval], topo: Topology, workload: Workload, per_replica: int,
            c: Constants) -> tuple[dict, dict, dict]:
    memory, capacity, breakdown = {}, {}, {}
    fixed = fixed_memory_bytes(c)
    for rep in partition.replica_stage_ids():
        for k, (st, ev) in enumerate(zip(partition.stages, evals)):
            sequences = -(-per_replica // st.dp)
            for g in rep[k]:
                kv = ev.kv_per_sequence * sequences
                memory[g] = ev.weights + kv + fixed
                capacity[g] = topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction
                breakdown[g] = {"weights": ev.weights, "kv_cache": kv, "reserve": fixed}
    return memory, capacity, breakdown


def _roofline_s(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload,
                op: OperatingPoint) -> float:
    """The floor: every weight a decode step needs and every KV byte, read once at the GPUs' aggregate bandwidth."""
    bandwidth = sum(topo.gpu(g).spec.hbm_bytes_per_s for ids in partition.replica_stage_ids()[0] for g in ids)
    load = op.tpot_loads[0][0]  # the decode step, with what the remedies skip
    weights = sum(sparse_read_bytes(n, Layout(1), profile, workload.weight_dtype,
                                    read_weight_bytes(n, 1, profile, workload.weight_dtype, load.decode), load.decode, load)
                  for n in profile.layers)
    ctx = workload.mean_context
    kv = op.decode * (1 - workload.attention_sparsity) * sum(min(ctx, n.sliding_window or ctx)
                                                             * n.kv_bytes_per_token(workload.kv_dtype)
                                                             for n in profile.layers)
    return op.micro * (weights + kv) / bandwidth / op.tokens_per_pass


def host_memory(profile: ModelProfile, topo: Topology, partition: Partition,
                workload: Workload) -> tuple[dict[str, float], dict[str, float]]:
    """Per node with streamed layers: the host memory their shards take (every replica's GPUs) and the tier's size."""
    used: dict[str, float] = {}
    for rep in partition.replica_stage_ids():
        for st, ids in zip(partition.stages, rep):
            per_gpu = streamed_bytes(profile, layout_of(st), st.offload_layers, workload.weight_dtype)[0]
            for g in ids if per_gpu else []:
                node = topo.gpu(g).node
                used[node] = used.get(node, 0.0) + per_gpu
    return used, {node: topo.host_capacity_bytes(node) for node in used}


def _stage_prediction(k: int, st: Stage, ev: StageEval, hw_name: str) -> StagePrediction:
    s = ev.step
    return StagePrediction(
        index=k, layer_start=st.layer_start, layer_end=st.layer_end, gpu_ids=st.gpu_ids, tp=st.tp, dp=st.dp, ep=st.ep,
        gpu_type=hw_name, has_embedding=k == 0, has_lm_head=False, weight_bytes_per_gpu=ev.weights,
        kv_bytes_per_sequence_per_gpu=ev.kv_per_sequence, hbm_bytes_per_gpu_per_step=s.hbm_weight_bytes + s.hbm_kv_bytes,
        step_time_ms=s.time_s * 1e3, weights_ms=s.weights_s * 1e3, kv_ms=s.kv_s * 1e3, compute_ms=s.compute_s * 1e3,
        interconnect_ms=s.interconnect_s * 1e3, overhead_ms=s.overhead_s * 1e3, transfer_out_ms=ev.transfer_out_s * 1e3,
        max_concurrency=ev.capacity, offload_ms=s.offload_s * 1e3, offload_layers=list(st.offload_layers))


def estimate(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload,
             c: Constants = DEFAULT, *, check: bool = True) -> Prediction:
    """Predict time, traffic and memory of `partition` at `workload.concurrency`; `fits` says whether memory holds."""
    if check:
        validate_partition(partition, profile, topo)
    op = operating_point(workload, workload.concurrency, partition.replicas, partition.pp, c)
    evals = [evaluate_stage(profile, topo, partition, k, workload, op, c) for k in range(partition.pp)]
    return assemble(profile, topo, partition, workload, op, evals, c)


def assemble(profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload, op: OperatingPoint,
             evals: list[StageEval], c: Constants) -> Prediction:
    """A Prediction from the stages' evaluations at one operating point."""
    times = [ev.time_s for ev in evals]
    period_s = max(sum(times), op.micro * max(times))  # one pass of every micro-batch
    tpot_s = period_s / op.tokens_per_pass
    scale = tpot_s / sum(times)  # pipeline bubbles stretch every component alike (per token)
    ttft_s = c.request_overhead_s + op.ttft_wait_steps * period_s + op.ttft_chunks * sum(ev.ttft_s for ev in evals)
    memory, capacity, breakdown = _memory(partition, evals, topo, workload, op.per_replica, c)
    shortfall = {g: memory[g] - capacity[g] for g in memory if memory[g] > capacity[g]}
    host_used, host_capacity = host_memory(profile, topo, partition, workload)
    host_short = any(host_used[n] > host_capacity[n] for n in host_used)
    tokens_per_period = op.decode * op.micro * op.tokens_per_pass
    traffic = {cls: sum(ev.step.interconnect[cls] + ev.transfer_bytes[cls] for ev in evals) for cls in LINK_CLASSES}
    tokens = op.decode * op.tokens_per_pass  # tokens one micro-batch's pass produces
    hbm_w = sum(ev.step.hbm_weight_bytes * st.n_gpus for ev, st in zip(evals, partition.stages))
    hbm_kv = sum(ev.step.hbm_kv_bytes * st.n_gpus for ev, st in zip(evals, partition.stages))
    critical = sum(ev.step.hbm_weight_bytes + ev.step.hbm_kv_bytes + sum(ev.step.interconnect.values()) / st.n_gpus
                   for ev, st in zip(evals, partition.stages))
    critical += (partition.pp - 1) * transfer_bytes(profile, op.decode)
    totals = {name: 0.0 for name in COMPONENTS}
    for ev in evals:
        s = ev.step
        for name, value in zip(COMPONENTS, (s.weights_s, s.kv_s, s.compute_s, s.interconnect_s + ev.transfer_out_s,
                                            s.overhead_s, s.offload_s)):
            totals[name] += value
    roofline = _roofline_s(profile, topo, partition, workload, op)
    tokens_per_s = op.concurrency / tpot_s
    if workload.mode == "closed":  # a closed loop's clients also wait for their first tokens
        tokens_per_s = op.concurrency * workload.osl / (ttft_s + workload.osl * tpot_s)
    stages = [_stage_prediction(k, st, ev, GroupHardware.of(topo, st.gpu_ids, workload.weight_dtype).name)
              for k, (st, ev) in enumerate(zip(partition.stages, evals))]
    stages[-1] = stages[-1].model_copy(update={"has_lm_head": True})
    return Prediction(
        concurrency=op.concurrency, mode=workload.mode, tpot_ms=tpot_s * 1e3, ttft_ms=ttft_s * 1e3,
        tokens_per_s=tokens_per_s, tokens_per_s_per_gpu=tokens_per_s / len(partition.all_gpu_ids()),
        tokens_per_s_per_user=1.0 / tpot_s, requests_per_s=tokens_per_s / workload.osl,
        prefill_tokens_per_step=op.prefill_per_step, max_concurrency=min(ev.capacity for ev in evals) * partition.replicas,
        fits=not shortfall and not host_short, memory_per_gpu_bytes=memory, memory_capacity_bytes=capacity,
        shortfall_per_gpu_bytes=shortfall, memory_breakdown=breakdown,
        host_memory_bytes=host_used, host_capacity_bytes=host_capacity,
        hbm_bytes_per_token=(hbm_w + hbm_kv) / tokens, hbm_weight_bytes_per_token=hbm_w / tokens,
        hbm_kv_bytes_per_token=hbm_kv / tokens,
        interconnect_bytes_per_token=sum(traffic.values()) * op.micro / tokens_per_period,
        interconnect_bytes_by_class={k: v * op.micro / tokens_per_period for k, v in traffic.items()},
        critical_path_bytes_per_token=critical / tokens,
        time_breakdown_ms={k: v * scale * 1e3 for k, v in totals.items()},
        roofline_tpot_ms=roofline * 1e3, roofline_ratio=tpot_s / roofline if roofline else float("inf"),
        stages=stages)
