"""`estimate`: the time, traffic and memory of a partition at one operating point.

Per stage, the mean engine step of the load (planner.cost.serving: decode-only steps and steps
carrying prompt chunks, weighted) from planner.cost.step, the hand-off to the next stage, and the
memory of its GPUs. With PP > 1 a replica's sequences are split into micro-batches: a token takes
max(sum of stage times, micro-batches x slowest stage). The solver builds its coefficients from the
same functions, so `solve` and `estimate` never disagree about a plan.

The workload's engine (planner.cost.engines) resolves the constants first. In the closed and offline modes the
engine admits only the sequences its KV cache (and batch limit) holds: the figures are those of the admitted
load, and in a closed loop the rest of the clients wait a fraction of a request's time for admission. A closed
loop's later waves drift apart (`closed_loop_drift`): that share of requests sees a steady-state newcomer's TTFT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from planner.cost import offline
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import band, resolve_constants
from planner.cost.engines.versions import unmodelled_kernels
from planner.cost.memory import MAX_CAPACITY, fixed_memory_bytes, kv_budget_bytes, stage_memory
from planner.cost.offload import host_tier_bytes_per_s, offload_s, stage_weight_bytes, streamed_bytes
from planner.cost.serving import OperatingPoint, operating_point
from planner.cost.shards import Layout, layout_of, read_weight_bytes, sparse_read_bytes
from planner.cost.speculative import draft_step, draft_weight_bytes
from planner.cost.step import GroupHardware, StageContext, StageStep, StepLoad, add_steps, engine_overhead_s, stage_step
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
    kv_budget: float  # bytes of KV per GPU the engine's accounting gives

    @property
    def time_s(self) -> float:
        return self.step.time_s + self.transfer_out_s


def mean_step(parts: list[tuple[StageStep, float]]) -> StageStep:
    out = StageStep()
    for step, weight in parts:
        add_steps(out, step, weight)
    return out


def stage_context(
    profile: ModelProfile, topo: Topology, stage: Stage, workload: Workload, c: Constants
) -> StageContext:
    return StageContext.of(
        profile=profile,
        topo=topo,
        gpu_ids=stage.gpu_ids,
        layout=layout_of(stage),
        weight_dtype=workload.weight_dtype,
        kv_dtype=workload.kv_dtype,
        constants=c,
    )


def stage_capacity(
    profile: ModelProfile, topo: Topology, partition: Partition, *, k: int, workload: Workload, c: Constants
) -> tuple[float, float, float, int]:
    """(weight bytes per GPU, KV bytes per sequence per GPU, KV budget bytes per GPU, sequences the stage holds)."""
    st = partition.stages[k]
    layout = layout_of(st)
    first, last = k == 0, k == partition.pp - 1
    weights, kv_seq = stage_memory(
        profile,
        layout,
        st.layer_start,
        layer_end=st.layer_end,
        first=first,
        last=last,
        weight_dtype=workload.weight_dtype,
        kv_dtype=workload.kv_dtype,
        sequence_tokens=workload.sequence_tokens,
    )
    weights = stage_weight_bytes(weights, profile, layout, st.offload_layers, workload.weight_dtype)
    if last:
        weights += draft_weight_bytes(profile, layout, workload)
    hw = GroupHardware.of(topo, st.gpu_ids, workload.weight_dtype)
    budget = kv_budget_bytes(hw.memory_bytes, weights, workload.gpu_memory_fraction, c)
    if kv_seq <= 0:
        capacity = MAX_CAPACITY if budget >= 0 else 0
    else:
        capacity = min(MAX_CAPACITY, st.dp * max(0, math.floor(budget / kv_seq)))
    return weights, kv_seq, budget, capacity


def evaluate_stage(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    k: int,
    workload: Workload,
    op: OperatingPoint,
    c: Constants,
) -> StageEval:
    st = partition.stages[k]
    ctx = stage_context(profile, topo, st, workload, c)
    first, last = k == 0, k == partition.pp - 1
    nxt = partition.stages[k + 1] if not last else None

    def run(load: StepLoad) -> tuple[StageStep, float, dict[str, float]]:
        step = stage_step(ctx, layer_start=st.layer_start, layer_end=st.layer_end, first=first, last=last, load=load)
        step.offload_s += offload_s(ctx, layers=st.offload_layers, load=load)
        if first:
            step.overhead_s += engine_overhead_s(load, c, dp=st.dp)
        if nxt is None:
            return step, 0.0, {cls: 0.0 for cls in LINK_CLASSES}
        t, by_class = transfer(profile, topo, st.gpu_ids, dst_ids=nxt.gpu_ids, tokens=load.tokens / st.dp, c=c)
        return step, t, by_class

    runs = [(run(load), weight) for load, weight in op.tpot_loads]
    step = mean_step([(r[0], w) for r, w in runs])
    if last:
        add_steps(step, draft_step(ctx, workload=workload, decode_tokens=op.decode))
    t_out = sum(r[1] * w for r, w in runs)
    t_bytes = {cls: sum(r[2][cls] * w for r, w in runs) for cls in LINK_CLASSES}
    ttft_step, ttft_out, _ = run(op.ttft_load)
    weights, kv_seq, budget, capacity = stage_capacity(profile, topo, partition, k=k, workload=workload, c=c)
    return StageEval(step, t_out, t_bytes, ttft_step.time_s + ttft_out, weights, kv_seq, capacity, budget)


def _memory(
    partition: Partition, evals: list[StageEval], topo: Topology, *, workload: Workload, per_replica: int, c: Constants
) -> tuple[dict, dict, dict]:
    memory, capacity, breakdown = {}, {}, {}
    fixed = fixed_memory_bytes(c)
    for rep in partition.replica_stage_ids():
        for k, (st, ev) in enumerate(zip(partition.stages, evals)):
            sequences = -(-per_replica // st.dp)
            for g in rep[k]:
                kv = ev.kv_per_sequence * sequences
                memory[g] = ev.weights + kv + fixed
                capacity[g] = ev.weights + ev.kv_budget + fixed  # what the engine's accounting lets them use
                breakdown[g] = {"weights": ev.weights, "kv_cache": kv, "reserve": fixed}
    return memory, capacity, breakdown


def _roofline_s(
    profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload, op: OperatingPoint
) -> float:
    """The floor: every weight a decode step needs and every KV byte, read once at the GPUs' aggregate bandwidth."""
    bandwidth = sum(topo.gpu(g).spec.hbm_bytes_per_s for ids in partition.replica_stage_ids()[0] for g in ids)
    load = op.tpot_loads[0][0]  # the decode step, with what the remedies skip
    weights = sum(
        sparse_read_bytes(
            n,
            Layout(1),
            profile,
            weight_dtype=workload.weight_dtype,
            read=read_weight_bytes(n, 1, profile, weight_dtype=workload.weight_dtype, tokens=load.decode),
            tokens=load.decode,
            sparsity=load,
        )
        for n in profile.layers
    )
    ctx = workload.mean_context
    kv = (
        op.decode
        * (1 - workload.attention_sparsity)
        * sum(min(ctx, n.sliding_window or ctx) * n.kv_bytes_per_token(workload.kv_dtype) for n in profile.layers)
    )
    return op.micro * (weights + kv) / bandwidth / op.tokens_per_pass


def host_memory(
    profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload
) -> tuple[dict[str, float], dict[str, float]]:
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
        index=k,
        layer_start=st.layer_start,
        layer_end=st.layer_end,
        gpu_ids=st.gpu_ids,
        tp=st.tp,
        dp=st.dp,
        ep=st.ep,
        gpu_type=hw_name,
        has_embedding=k == 0,
        has_lm_head=False,
        weight_bytes_per_gpu=ev.weights,
        kv_bytes_per_sequence_per_gpu=ev.kv_per_sequence,
        hbm_bytes_per_gpu_per_step=s.hbm_weight_bytes + s.hbm_kv_bytes,
        step_time_ms=s.time_s * 1e3,
        weights_ms=s.weights_s * 1e3,
        kv_ms=s.kv_s * 1e3,
        compute_ms=s.compute_s * 1e3,
        interconnect_ms=s.interconnect_s * 1e3,
        overhead_ms=s.overhead_s * 1e3,
        transfer_out_ms=ev.transfer_out_s * 1e3,
        max_concurrency=ev.capacity,
        offload_ms=s.offload_s * 1e3,
        offload_layers=list(st.offload_layers),
    )


def estimate(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    workload: Workload,
    c: Constants = DEFAULT,
    check: bool = True,
) -> Prediction:
    """Predict time, traffic and memory of `partition` at `workload.concurrency` under `workload.engine`; `fits`
    says whether memory holds (in the closed and offline modes: whether the engine serves the load at all)."""
    if check:
        validate_partition(partition, profile, topo)
    c = resolve_constants(c, workload.engine)
    load, admitted = workload.concurrency, admitted_sequences(profile, topo, partition, workload, c)
    run_at = admitted or load

    def at(mode: str | None) -> tuple[OperatingPoint, Prediction]:
        op = operating_point(workload, concurrency=run_at, replicas=partition.replicas, pp=partition.pp, c=c, mode=mode)
        evals = [
            evaluate_stage(profile, topo, partition, k=k, workload=workload, op=op, c=c) for k in range(partition.pp)
        ]
        return op, assemble(profile, topo, partition, workload=workload, op=op, evals=evals, c=c)

    _, pred = at(None)
    tpot_ms, ttft_ms = pred.tpot_ms, pred.ttft_ms
    drift = closed_drift(workload, c)
    if workload.mode in ("closed", "offline") and drift > 0:
        staggered_op, staggered = at("serving")
        if staggered_op.feasible:  # later waves drift apart: that share of requests sees a newcomer's wait
            d = drift
            tpot_ms = (1 - d) * tpot_ms + d * staggered.tpot_ms
            newcomer_ms = staggered.ttft_ms + scheduler_wait_ms(workload, staggered_op, staggered.tpot_ms)
            ttft_ms = (1 - d) * ttft_ms + d * newcomer_ms
    service_ttft_ms = ttft_ms
    if admitted and workload.mode == "closed":
        # n clients share `admitted` slots: each request waits (n / admitted - 1) request times for one
        request_ms = ttft_ms + workload.osl * tpot_ms
        ttft_ms += request_ms * (load / admitted - 1)
    pred = _with_figures(
        pred,
        workload,
        tpot_ms,
        ttft_ms=ttft_ms,
        service_ttft_ms=service_ttft_ms,
        admitted=admitted,
        partition=partition,
    )
    if workload.mode == "offline":  # the run's output over its makespan, ramp-up and tail included
        pred = _offline_throughput(pred, workload, static=at("static")[1], slots=run_at, partition=partition, c=c)
    return _with_bands(pred, workload, moe=profile.moe is not None, attention=profile.attention, admitted=admitted)


def _with_bands(pred: Prediction, workload: Workload, *, moe: bool, attention: str, admitted: int | None) -> Prediction:
    """The prediction at the asked load, its engine, and the error band each figure's class earned held out (none
    where the engine's release predates the kernels its profile prices: `unmodelled` says so)."""
    tokens_metric = "max_tokens" if workload.mode == "offline" else "tokens"
    unmodelled = unmodelled_kernels(workload.engine, workload.engine_version, attention=attention)

    def earned(metric: str) -> float | None:
        return None if unmodelled else band(workload.engine, moe, metric)

    return pred.model_copy(
        update={
            "concurrency": workload.concurrency,
            "engine": workload.engine,
            "admitted_concurrency": admitted,
            "tpot_ms_band": earned("tpot"),
            "ttft_ms_band": earned("ttft"),
            "tokens_per_s_band": earned(tokens_metric),
            "unmodelled": unmodelled,
        }
    )


def newcomer_wait_s(scheduler_steps: int, step_s: float, *, busy_share: float = 1.0) -> float:
    """What a newcomer waits beyond the step in flight where the engine looks for new requests only every k decode
    steps (vLLM V0's --num-scheduler-steps, SGLang's --scheduler-recv-interval, whose SchedulerRecvSkipper counts
    each decode step once and anything else as a thousand): (k - 1) / 2 decode steps of `step_s` on average, for
    the `busy_share` of arrivals that find other sequences decoding (an idle engine looks at once). The closed loop
    (`scheduler_wait_ms`) and the open loop (planner.traffic.steady) both price it here."""
    return (scheduler_steps - 1) / 2 * busy_share * step_s


def scheduler_wait_ms(workload: Workload, op: OperatingPoint, tpot_ms: float) -> float:
    """A closed loop's staggered newcomer's `newcomer_wait_s`: the others decode while it arrives, a share
    (n - 1) / n of the replica's n sequences."""
    others = (op.per_replica - 1) / op.per_replica if op.per_replica > 0 else 0.0
    return 1e3 * newcomer_wait_s(workload.scheduler_steps, tpot_ms / 1e3, busy_share=others)


def closed_drift(workload: Workload, c: Constants) -> float:
    """The share of a closed loop's requests that arrive staggered, seeing a newcomer's TTFT rather than a wave's
    queue. The first `concurrency` requests arrive together. Where output lengths vary (`osl_dist`), requests finish
    at their own times and their clients' next requests come staggered: of `num_prompts` requests in all, the
    1 - concurrency / num_prompts after the first wave. Identical requests finish together and keep arriving in
    waves; there (or where the run's size is unknown) the engine's `closed_loop_drift` holds."""
    varies = workload.osl_dist is not None and workload.osl_dist.cv2 > 0
    if workload.mode == "closed" and varies and workload.num_prompts:
        return max(0.0, 1.0 - workload.concurrency / workload.num_prompts)
    return c.closed_loop_drift


def admitted_sequences(
    profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload, c: Constants
) -> int | None:
    """Closed and offline modes: the sequences the engine runs at once where its KV cache or batch limit holds fewer
    than the load (None: all of them run, or the mode queues nothing)."""
    if workload.mode not in ("closed", "offline"):
        return None
    held = min(stage_capacity(profile, topo, partition, k=k, workload=workload, c=c)[3] for k in range(partition.pp))
    limit = min(held * partition.replicas, c.max_num_seqs * partition.replicas)
    return limit if 1 <= limit < workload.concurrency else None


def _with_figures(
    pred: Prediction,
    workload: Workload,
    tpot_ms: float,
    *,
    ttft_ms: float,
    service_ttft_ms: float,
    admitted: int | None,
    partition: Partition,
) -> Prediction:
    """The prediction's throughput figures recomputed from a TPOT and TTFT (Little's law at the running load: a
    closed loop's admitted clients each finish a request every service TTFT + osl x TPOT)."""
    running = admitted or workload.concurrency
    if workload.mode in ("closed", "offline"):
        tokens_per_s = running * workload.osl / (service_ttft_ms / 1e3 + workload.osl * tpot_ms / 1e3)
    else:
        tokens_per_s = running / (tpot_ms / 1e3)
    return pred.model_copy(
        update={
            "tpot_ms": tpot_ms,
            "ttft_ms": ttft_ms,
            "tokens_per_s": tokens_per_s,
            "tokens_per_s_per_gpu": tokens_per_s / len(partition.all_gpu_ids()),
            "tokens_per_s_per_user": 1e3 / tpot_ms,
            "requests_per_s": tokens_per_s / workload.osl,
        }
    )


def _offline_throughput(
    pred: Prediction, workload: Workload, *, static: Prediction, slots: int, partition: Partition, c: Constants
) -> Prediction:
    """An offline run's tokens/s (planner.cost.offline): `workload.concurrency` prompts through `slots` sequences,
    output lengths from `osl_dist` where the workload has one, steps priced from the static batch at `slots`."""
    dist = workload.osl_dist
    lengths = offline.run_lengths(
        workload.concurrency, dist.lengths if dist else [workload.osl], dist.weights if dist else [1.0]
    )
    per_replica = math.ceil(slots / partition.replicas)
    step = offline.step_of(static, per_replica=per_replica, request_overhead_s=c.request_overhead_s)
    tokens_per_s = offline.tokens_per_s(
        lengths, slots=slots, step=step, replicas=partition.replicas, overhead_s=c.request_overhead_s
    )
    return pred.model_copy(
        update={
            "tokens_per_s": tokens_per_s,
            "tokens_per_s_per_gpu": tokens_per_s / len(partition.all_gpu_ids()),
            "requests_per_s": tokens_per_s / workload.osl,
        }
    )


def _memory_figures(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    evals: list[StageEval],
    workload: Workload,
    op: OperatingPoint,
    c: Constants,
) -> dict[str, Any]:
    """The Prediction's memory fields: HBM per GPU (used, capacity, shortfall, breakdown), the host-memory tier
    of nodes with streamed layers, and whether both hold."""
    memory, capacity, breakdown = _memory(partition, evals, topo, workload=workload, per_replica=op.per_replica, c=c)
    shortfall = {g: memory[g] - capacity[g] for g in memory if memory[g] > capacity[g]}
    host_used, host_capacity = host_memory(profile, topo, partition, workload)
    host_short = any(host_used[n] > host_capacity[n] for n in host_used)
    return {
        "fits": not shortfall and not host_short,
        "memory_per_gpu_bytes": memory,
        "memory_capacity_bytes": capacity,
        "shortfall_per_gpu_bytes": shortfall,
        "memory_breakdown": breakdown,
        "host_memory_bytes": host_used,
        "host_capacity_bytes": host_capacity,
    }


def _byte_figures(
    profile: ModelProfile, partition: Partition, evals: list[StageEval], op: OperatingPoint
) -> dict[str, Any]:
    """The Prediction's bytes per output token: HBM reads (weights, KV), interconnect traffic (in all and per link
    class) and the critical path (one GPU's reads and collectives per stage, plus the stages' hand-offs)."""
    tokens_per_period = op.decode * op.micro * op.tokens_per_pass
    traffic = {cls: sum(ev.step.interconnect[cls] + ev.transfer_bytes[cls] for ev in evals) for cls in LINK_CLASSES}
    tokens = op.decode * op.tokens_per_pass  # tokens one micro-batch's pass produces
    hbm_w = sum(ev.step.hbm_weight_bytes * st.n_gpus for ev, st in zip(evals, partition.stages))
    hbm_kv = sum(ev.step.hbm_kv_bytes * st.n_gpus for ev, st in zip(evals, partition.stages))
    critical = sum(
        ev.step.hbm_weight_bytes + ev.step.hbm_kv_bytes + sum(ev.step.interconnect.values()) / st.n_gpus
        for ev, st in zip(evals, partition.stages)
    )
    critical += (partition.pp - 1) * transfer_bytes(profile, op.decode)
    return {
        "hbm_bytes_per_token": (hbm_w + hbm_kv) / tokens,
        "hbm_weight_bytes_per_token": hbm_w / tokens,
        "hbm_kv_bytes_per_token": hbm_kv / tokens,
        "interconnect_bytes_per_token": sum(traffic.values()) * op.micro / tokens_per_period,
        "interconnect_bytes_by_class": {k: v * op.micro / tokens_per_period for k, v in traffic.items()},
        "critical_path_bytes_per_token": critical / tokens,
    }


def _time_breakdown_s(evals: list[StageEval]) -> dict[str, float]:
    """Seconds of one pass through every stage, per component (COMPONENTS; a stage's hand-off is interconnect)."""
    totals = {name: 0.0 for name in COMPONENTS}
    for ev in evals:
        s = ev.step
        for name, value in zip(
            COMPONENTS,
            (s.weights_s, s.kv_s, s.compute_s, s.interconnect_s + ev.transfer_out_s, s.overhead_s, s.offload_s),
        ):
            totals[name] += value
    return totals


def prefix_tier_s(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    workload: Workload,
    evals: list[StageEval],
    c: Constants,
) -> tuple[float | None, float | None]:
    """(mean host-tier load s, the prefill those tokens would cost instead) of a request under `--prefix-tier host`
    ((None, None) otherwise). Each stage's GPUs load their layers' KV of the cached tokens at once, every GPU at what
    streaming from host memory gives it beside the others (its PCIe path and socket: planner.cost.offload's rate); the
    stages load in parallel, so the slowest sets the time. The recompute is the difference between prefilling the
    whole prompt and prefilling only its new tokens against the cached prefix, each as one step through the stages."""
    if workload.prefix_tier != "host" or workload.cached_tokens <= 0:
        return None, None
    load_s = 0.0
    for st, ev in zip(partition.stages, evals):
        rate = host_tier_bytes_per_s(topo, st.gpu_ids, c)
        load_s = max(load_s, workload.cached_tokens * ev.kv_per_sequence / workload.sequence_tokens / rate)
    cached, new = workload.cached_tokens, workload.new_prompt_tokens
    whole = StepLoad(decode=0, prefill=cached + new, prefill_context=(cached + new) / 2, prefill_kv_tokens=0, logits=1)
    rest = StepLoad(decode=0, prefill=new, prefill_context=cached + new / 2, prefill_kv_tokens=cached, logits=1)
    recompute_s = 0.0
    for k, st in enumerate(partition.stages):
        ctx = stage_context(profile, topo, st, workload, c)
        first, last = k == 0, k == partition.pp - 1
        for load, sign in ((whole, 1.0), (rest, -1.0)):
            step = stage_step(
                ctx, layer_start=st.layer_start, layer_end=st.layer_end, first=first, last=last, load=load
            )
            recompute_s += sign * step.time_s
    return load_s, max(0.0, recompute_s)


def prefix_tier_verdict(pred: Prediction, workload: Workload) -> str | None:
    """In words, whether a host-tier hit pays at this prefix length (None without --prefix-tier host)."""
    load, recompute = pred.prefix_tier_load_ms, pred.prefix_recompute_ms
    if load is None or recompute is None:
        return None
    faster = "recomputing them is faster: the host tier does not pay here" if load > recompute else "the tier pays"
    return (
        f"prefix tier host: a request loads {workload.cached_tokens:,.0f} cached tokens' KV in {load:,.1f} ms "
        f"on average; prefilling them would take {recompute:,.1f} ms ({faster})"
    )


def assemble(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    workload: Workload,
    op: OperatingPoint,
    evals: list[StageEval],
    c: Constants,
) -> Prediction:
    """A Prediction from the stages' evaluations at one operating point."""
    times = [ev.time_s for ev in evals]
    period_s = max(sum(times), op.micro * max(times))  # one pass of every micro-batch
    tpot_s = period_s / op.tokens_per_pass
    scale = tpot_s / sum(times)  # pipeline bubbles stretch every component alike (per token)
    ttft_s = c.request_overhead_s + op.ttft_wait_steps * period_s + op.ttft_chunks * sum(ev.ttft_s for ev in evals)
    tier_s, recompute_s = prefix_tier_s(profile, topo, partition, workload=workload, evals=evals, c=c)
    ttft_s += tier_s or 0.0
    roofline = _roofline_s(profile, topo, partition, workload, op)
    tokens_per_s = op.concurrency / tpot_s
    if workload.mode in ("closed", "offline"):  # a closed loop's clients (an offline run's waves) wait for first tokens
        tokens_per_s = op.concurrency * workload.osl / (ttft_s + workload.osl * tpot_s)
    stages = [
        _stage_prediction(k, st, ev, GroupHardware.of(topo, st.gpu_ids, workload.weight_dtype).name)
        for k, (st, ev) in enumerate(zip(partition.stages, evals))
    ]
    stages[-1] = stages[-1].model_copy(update={"has_lm_head": True})
    return Prediction(
        concurrency=op.concurrency,
        mode=workload.mode,
        tpot_ms=tpot_s * 1e3,
        ttft_ms=ttft_s * 1e3,
        prefix_tier_load_ms=None if tier_s is None else tier_s * 1e3,
        prefix_recompute_ms=None if recompute_s is None else recompute_s * 1e3,
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_gpu=tokens_per_s / len(partition.all_gpu_ids()),
        tokens_per_s_per_user=1.0 / tpot_s,
        requests_per_s=tokens_per_s / workload.osl,
        prefill_tokens_per_step=op.prefill_per_step,
        max_concurrency=min(ev.capacity for ev in evals) * partition.replicas,
        **_memory_figures(profile, topo, partition, evals=evals, workload=workload, op=op, c=c),
        **_byte_figures(profile, partition, evals, op),
        time_breakdown_ms={k: v * scale * 1e3 for k, v in _time_breakdown_s(evals).items()},
        roofline_tpot_ms=roofline * 1e3,
        roofline_ratio=tpot_s / roofline if roofline else float("inf"),
        stages=stages,
    )
