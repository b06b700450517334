"""What a disaggregated plan costs: TTFT, TPOT, throughput with rate matching, and memory per pool.

Each pool is priced alone by the aggregated cost model (planner.cost.estimate) in its `static` mode,
which is exactly a pool's regime here: the decode pool's steps carry decode tokens only (no prefill
chunks), and a prefill instance's step is a batch of whole prompts with no decode beside it.

- **Prefill service.** An instance batches up to `b = max(1, B // u)` prompts per step (B, the engine's token
  budget; u, the prompt tokens its prefix cache lacks: `uncached_tokens`), and no more than it has clients; the
  step prefilling b prompts takes `T(b)` (static TTFT less the request overhead). Each request also costs the
  instance's scheduler its host time (planner.disagg.ttft.PD_HOST_S), serial with the steps, so the pool admits
  `P x b / (T(b) + b x PD_HOST_S / dp)` requests/s (with attention DP each of the dp ranks has a scheduler of its
  own). (A stand-in for the fidelity branch's prefill model, which replaces
  `prefill_s` after the merge.)
- **KV hand-off.** A request's KV, `sum over layers of kv_bytes_per_token x min(isl, window)`, moves
  from its prefill instance to its decode instance: decode rank j receives its shard from prefill
  rank j mod tp_p (planner.cost.transfer.transfer_pairs), each sender's bytes priced with
  `collectives.p2p_time` on the real route (NVLink in a node, NICs across nodes, host staging where
  there is no peer-to-peer). Through `shared-storage` (vLLM's ExampleConnector) the bytes go to host memory
  and back over each GPU's PCIe link instead (`_storage_handoff`). The figure is the mean over all (prefill,
  decode) instance pairs, as a round-robin router spreads requests. Layer by layer (`transfer_overlap`) only the
  part beyond the prefill, plus one layer's share, is exposed. A cached prefix saves prefill, not hand-off.
- **Decode admission.** A decode instance's scheduler admits one request per PD_HOST_S (each DP rank's, with
  attention DP): the pool admits at most `D x dp / PD_HOST_S` requests/s, and newcomers wait for it (M/D/1) as it
  gets busy.
- **TTFT** = request overhead + waits (for a prefill slot, for the decode pool's admission) + prefill + exposed
  transfer + first decode step + the request's host time + a closed loop's first wave (planner.disagg.ttft). The
  prefill wait is M/D/1 per instance at the prefill pool's utilisation in `serving` mode; in `closed` mode (c
  clients back to back) the mean-value relation `c = X x (TTFT + (osl - 1) x TPOT)` holds with every part of TTFT
  in it, solved by bisection on X (the clients' rate falls as the load grows), so when a pool's cap binds (the
  prefill pool, the decode pool's admission or its KV slots) TTFT is what is left over; `static` prefills one batch
  of c prompts, the mean prompt waiting for half of its instance's others.
- **TPOT** is the decode pool's at its own load: the sequences decoding at once, `n_d = X x osl x TPOT`
  (Little's law), spread over D instances.
- **Throughput** is the lesser of what the prefill pool admits, what the decode pool admits and what it generates;
  for a closed-loop benchmark of known prompt count, over the whole run, its tail included (planner.disagg.drain).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from planner.cost.collectives import p2p_time
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.cost.memory import stage_memory
from planner.cost.shards import Layout
from planner.cost.transfer import transfer_pairs
from planner.disagg.drain import run_requests_per_s
from planner.disagg.plan import Pool, Pools
from planner.disagg.ttft import PD_HOST_S, pd_ttft_parts
from planner.errors import PartitionError
from planner.hardware.topology import LINK_CLASSES, Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Mode, Partition, Prediction, Stage, Workload, layout_problems

#: Fixed-point rounds of the closed-loop and serving load (TPOT, TTFT and throughput settle well within it).
ROUNDS = 12
#: Utilisation above which a queue is reported as saturated (M/D/1 waits grow without bound at 1).
RHO_MAX = 0.98
#: Halvings of the closed loop's throughput interval (its fixed point to 2^-40 of the cap).
BISECTIONS = 40

LimitedBy = Literal["load", "prefill", "decode-admission", "decode-memory"]


class DisaggPrediction(BaseModel):
    """Every figure of a disaggregated plan at one operating point."""

    concurrency: int = Field(description="the load: clients (closed), sequences decoding (serving) or the batch")
    mode: Mode
    ttft_ms: float
    ttft_breakdown_ms: dict[str, float] = Field(
        description="request, queue, prefill, transfer, first_decode, host, first_wave (planner.disagg.ttft)"
    )
    tpot_ms: float = Field(description="the decode pool's step at its own load, no prefill chunks in it")
    tokens_per_s: float = Field(description="output tokens/s of the whole deployment")
    tokens_per_s_per_gpu: float
    requests_per_s: float
    decode_concurrency: float = Field(description="sequences decoding at once, all decode instances")
    prefill_capacity_requests_per_s: float = Field(description="what the prefill pool admits at most")
    decode_capacity_requests_per_s: float = Field(description="what the decode pool's KV slots sustain at most")
    prefill_utilisation: float = Field(description="busy share of the prefill pool")
    decode_utilisation: float = Field(description="share of the decode pool's KV slots in use")
    limited_by: LimitedBy = Field(description="what caps the throughput: the offered load, or a pool")
    prefill_batch: int = Field(description="prompts one prefill step carries (token budget / isl)")
    prefill_step_ms: float
    kv_bytes_per_request: float = Field(description="KV cache one request hands from prefill to decode")
    kv_transfer_ms: float = Field(description="mean time of one request's KV hand-off (before any overlap)")
    kv_transfer_bytes_by_class: dict[str, float] = Field(description="per request, bytes over each link class")
    decode_max_concurrency: int
    prefill_memory_per_gpu_bytes: dict[int, float]
    decode_memory_per_gpu_bytes: dict[int, float]
    memory_capacity_bytes: dict[int, float]
    fits: bool
    problem: str | None = Field(None, description="why this load cannot be served in steady state (None: it can)")


def pool_partition(profile: ModelProfile, pool: Pool, instances: int | None = None) -> Partition:
    """One partition for the pool's first `instances` instances (all by default): replicas of one stage."""
    n = pool.instances if instances is None else instances
    stages = [
        Stage(layer_start=0, layer_end=profile.n_layers, gpu_ids=pool.gpu_ids[0], tp=pool.tp, dp=pool.dp, ep=pool.ep)
    ]
    reps = [[ids] for ids in pool.gpu_ids[:n]] if n > 1 else []
    return Partition(stages=stages, replicas=n, replica_gpu_ids=reps)


def check_pools(profile: ModelProfile, topo: Topology, pools: Pools) -> None:
    """Raise PartitionError when a pool's layout cannot run the model or names a GPU the machine lacks."""
    for pool in (pools.prefill, pools.decode):
        stage = pool_partition(profile, pool, 1).stages[0]
        if problems := layout_problems(profile, stage):
            raise PartitionError(f"{pool.role} pool: {'; '.join(problems)}")
        for ids in pool.gpu_ids:
            for g in ids:
                topo.gpu(g)


def kv_handoff_bytes(profile: ModelProfile, isl: int, kv_dtype: str) -> float:
    """One request's KV cache after its prompt: every layer's KV bytes per token x the tokens it keeps."""
    return sum(min(isl, n.sliding_window or isl) * n.kv_bytes_per_token(kv_dtype) for n in profile.layers)


def _pair_handoff(
    topo: Topology, src: list[int], dst: list[int], *, per_gpu_bytes: float, c: Constants
) -> tuple[float, dict[str, float]]:
    """One request's hand-off from prefill GPUs `src` to decode GPUs `dst`: the slowest sender sets the time."""
    sent: dict[int, tuple[int, float]] = {}
    by_class = {k: 0.0 for k in LINK_CLASSES}
    for a, b in transfer_pairs(src, dst):
        first, total = sent.get(a, (b, 0.0))
        sent[a] = (first, total + per_gpu_bytes)
        if a != b:
            by_class[topo.link_class(a, b)] += per_gpu_bytes
    time_s = max(p2p_time(topo, a, b, int(total), constants=c) for a, (b, total) in sent.items())
    return time_s, by_class


def _storage_handoff(
    topo: Topology, src: list[int], dst: list[int], *, per_gpu_bytes: float, c: Constants
) -> tuple[float, dict[str, float]]:
    """One request's hand-off through files (vLLM's ExampleConnector, `shared-storage`): each prefill GPU copies its
    KV to host memory over its PCIe link and the file is written; once the prefill's forward has written every
    layer, each decode GPU reads its file back over its own PCIe link. The legs are serial; the slowest sender and
    the slowest receiver set the time. Between nodes the file system is priced at the route between the two GPUs
    (the NICs); the file system's own throughput and latency are not modelled (page cache on one host)."""
    sent: dict[int, float] = {}
    got: dict[int, float] = {}
    by_class = {k: 0.0 for k in LINK_CLASSES}
    remote = 0.0
    for a, b in transfer_pairs(src, dst):
        sent[a] = sent.get(a, 0.0) + per_gpu_bytes
        got[b] = got.get(b, 0.0) + per_gpu_bytes
        by_class["pcie"] += 2 * per_gpu_bytes
        if topo.gpu(a).node != topo.gpu(b).node:
            by_class["network"] += per_gpu_bytes
            remote = max(remote, p2p_time(topo, a, b, int(per_gpu_bytes), constants=c))
    write_s = max(n / topo.gpu(a).spec.pcie_bytes_per_s for a, n in sent.items())
    read_s = max(n / topo.gpu(b).spec.pcie_bytes_per_s for b, n in got.items())
    return write_s + remote + read_s, by_class


def kv_handoff(
    profile: ModelProfile, topo: Topology, pools: Pools, workload: Workload, c: Constants = DEFAULT
) -> tuple[float, dict[str, float]]:
    """(mean hand-off time s over all instance pairs, mean bytes by link class) of one request's KV."""
    dec = pools.decode
    layout = Layout(dec.tp, dec.dp, dec.ep)
    _, per_gpu = stage_memory(
        profile,
        layout,
        0,
        layer_end=profile.n_layers,
        first=True,
        last=True,
        weight_dtype=workload.weight_dtype,
        kv_dtype=workload.kv_dtype,
        sequence_tokens=workload.isl,
    )
    pairs = [(s, d) for s in pools.prefill.gpu_ids for d in dec.gpu_ids]
    pair = _storage_handoff if pools.transfer_backend == "shared-storage" else _pair_handoff
    times, classes = zip(*(pair(topo, s, d, per_gpu_bytes=per_gpu, c=c) for s, d in pairs))
    mean_classes = {k: sum(x[k] for x in classes) / len(pairs) for k in LINK_CLASSES}
    return sum(times) / len(pairs), mean_classes


def exposed_transfer_s(transfer_s: float, prefill_s: float, n_layers: int, overlap: bool) -> float:
    """What of the hand-off the request waits for: all of it after the prefill, or, layer by layer, the last
    layer's share plus whatever outlasts the prefill."""
    if not overlap:
        return transfer_s
    return transfer_s / n_layers + max(0.0, transfer_s - prefill_s)


@dataclass(frozen=True)
class PrefillService:
    batch: int  # prompts per step
    step_s: float  # one step prefilling `batch` prompts
    single_s: float  # one step prefilling one prompt
    prediction: Prediction  # the instance at `batch` prompts (its memory)
    host_s: float = 0.0  # the instance's host time per request, serial with its steps (planner.disagg.ttft)

    @property
    def iteration_s(self) -> float:
        """One loop of the instance at full batches: the step and its `batch` requests' host time."""
        return self.step_s + self.batch * self.host_s

    def time_s(self, rho: float) -> float:
        """A prompt's prefill step at utilisation rho: batches fill up as the pool gets busy (its own host time is a
        TTFT part of its own, the others' is in its queue)."""
        if self.batch == 1:
            return self.single_s
        return self.single_s + min(1.0, rho) * (self.step_s - self.single_s)


def prefill_service(
    profile: ModelProfile, topo: Topology, pools: Pools, workload: Workload, c: Constants = DEFAULT
) -> PrefillService:
    """How fast one prefill instance turns prompts into KV (the stand-in prefill model, module docstring): the
    step computes only what its prefix cache lacks (`uncached_tokens`), and each request costs its host time."""
    uncached = uncached_tokens(workload)
    # a step carries what the token budget holds, and no more prompts than the instance has clients
    clients = math.ceil(workload.concurrency / pools.prefill.instances)
    batch = max(1, min(c.max_num_batched_tokens // uncached, clients))
    part = pool_partition(profile, pools.prefill, 1)
    lengths = {"isl": uncached, "prefix_tokens": 0, "prefix_hit": 0.0}

    def run(n: int) -> Prediction:
        w = workload.model_copy(update={"mode": "static", "concurrency": n, "osl": 1, **lengths})
        return estimate(profile, topo, part, workload=w, c=c, check=False)

    one, full = run(1), run(batch)
    step_s, single_s = full.ttft_ms / 1e3 - c.request_overhead_s, one.ttft_ms / 1e3 - c.request_overhead_s
    return PrefillService(batch, step_s, single_s, full, PD_HOST_S / pools.prefill.dp)


def uncached_tokens(workload: Workload) -> int:
    """Prompt tokens a prefill step computes per request on average: the prompt less the prefix its instance's
    cache holds (`prefix_tokens` on `prefix_hit` of the requests), at least one (the engine recomputes the last
    token for its logits). The hand-off still moves the whole prompt's KV: the decode instance holds none of it."""
    return max(1, round(workload.isl - workload.prefix_hit * workload.prefix_tokens))


def decode_step(
    profile: ModelProfile, topo: Topology, pools: Pools, *, workload: Workload, sequences: float, c: Constants = DEFAULT
) -> Prediction:
    """The decode pool decoding `sequences` at once over its instances, nothing else in its steps."""
    w = workload.model_copy(update={"mode": "static", "concurrency": max(1, round(sequences))})
    return estimate(profile, topo, pool_partition(profile, pools.decode), workload=w, c=c, check=False)


def md1_wait_s(rho: float, service_s: float) -> float:
    """Mean wait in an M/D/1 queue at utilisation rho with service time `service_s` (Pollaczek-Khinchine)."""
    rho = min(rho, RHO_MAX)
    return rho / (2 * (1 - rho)) * service_s


@dataclass
class _Load:
    """The operating point the load settles at: requests/s, the TTFT parts, TPOT and the decode batch."""

    requests_per_s: float
    queue_s: float
    prefill_s: float
    transfer_s: float
    tpot_s: float
    decode_sequences: float
    limited_by: LimitedBy = "load"
    problem: str | None = None


@dataclass(frozen=True)
class _Pools:
    """What the load solver needs of the pools: prefill service, hand-off, capacities and the decode pool's TPOT."""

    svc: PrefillService
    instances: int
    transfer_s: float
    overlap: bool
    n_layers: int
    capacity_per_s: float  # requests/s the prefill pool admits
    slots: int  # sequences the decode pool's KV holds
    tpot_s: object  # callable: sequences -> decode step s
    admit_per_s: float = math.inf  # requests/s the decode pool's schedulers admit (D x dp / host time)
    admit_s: float = 0.0  # the decode pool's time per admission, its schedulers together (1 / admit_per_s x D)

    def parts(self, rho: float) -> tuple[float, float]:
        prefill = self.svc.time_s(rho)
        return prefill, exposed_transfer_s(self.transfer_s, prefill, self.n_layers, self.overlap)


def _static_load(w: Workload, p: _Pools) -> _Load:
    """One batch of c prompts: spread over the prefill instances, batched b at a time, then decoded together."""
    per_instance = math.ceil(w.concurrency / p.instances)
    batches = math.ceil(per_instance / p.svc.batch)
    prefill, transfer = p.parts(min(1.0, per_instance / p.svc.batch))
    tpot = p.tpot_s(w.concurrency)  # type: ignore[operator]
    queue = (batches - 1) / 2 * p.svc.iteration_s
    x = w.concurrency / (queue + prefill + transfer + w.osl * tpot)
    problem = None if w.concurrency <= p.slots else _slots_problem(w.concurrency, p.slots)
    return _Load(x, queue, prefill, transfer, tpot, w.concurrency, problem=problem)


def _slots_problem(sequences: float, slots: int) -> str:
    return f"{sequences:,.0f} sequences decoding need more KV than the decode pool holds ({slots:,} sequences)"


def _serving_load(w: Workload, p: _Pools) -> _Load:
    """Steady state with `concurrency` sequences decoding: newcomers arrive as fast as sequences finish."""
    tpot = p.tpot_s(w.concurrency)  # type: ignore[operator]
    x = w.concurrency / (w.osl * tpot)
    rho, rho_d = x / p.capacity_per_s, x / p.admit_per_s
    prefill, transfer = p.parts(rho)
    queue = md1_wait_s(rho, prefill) + md1_wait_s(rho_d, p.admit_s)
    load = _Load(x, queue, prefill, transfer, tpot, w.concurrency)
    if rho >= 1 and rho >= rho_d:
        load.limited_by = "prefill"
        load.problem = (
            f"the decode pool finishes {x:,.1f} requests/s but the prefill "
            f"pool admits {p.capacity_per_s:,.1f}: prompts queue without bound"
        )
    elif rho_d >= 1:
        load.limited_by = "decode-admission"
        load.problem = (
            f"the decode pool finishes {x:,.1f} requests/s but its schedulers admit {p.admit_per_s:,.1f} "
            "(a request's host time each): newcomers queue without bound"
        )
    elif w.concurrency > p.slots:
        load.limited_by, load.problem = "decode-memory", _slots_problem(w.concurrency, p.slots)
    return load


def _caps(tpot: float, w: Workload, p: _Pools) -> tuple[float, LimitedBy]:
    """The least of what the prefill pool admits, what the decode pool's schedulers admit and what its KV slots
    sustain (requests/s), with the name of that cap."""
    caps: list[tuple[float, LimitedBy]] = [
        (p.capacity_per_s, "prefill"),
        (p.admit_per_s, "decode-admission"),
        (p.slots / (w.osl * tpot), "decode-memory"),
    ]
    return min(caps, key=lambda cap: cap[0])


@dataclass(frozen=True)
class _Cycle:
    """One closed-loop client's cycle at a throughput: the queue wait, the prefill and its exposed hand-off."""

    w: Workload
    p: _Pools
    tpot_s: float
    fixed_s: float  # TTFT parts outside the load: request overhead, hand-shake, first wave
    queue_cap_s: float  # at most every other client of its instance ahead of it
    wave_s: float  # the first wave's mean extra wait over the run

    def parts(self, x: float) -> tuple[float, float, float]:
        """(queue, prefill, transfer) s at `x` requests/s."""
        rho = min(1.0, x / self.p.capacity_per_s)
        prefill, transfer = self.p.parts(rho)
        queue = min(self.queue_cap_s, md1_wait_s(rho, prefill)) + self.wave_s
        return queue + md1_wait_s(x / self.p.admit_per_s, self.p.admit_s), prefill, transfer

    def rate(self, x: float) -> float:
        """What c clients send at `x`: c over the cycle (TTFT and the other osl - 1 tokens)."""
        queue, prefill, transfer = self.parts(x)
        return self.w.concurrency / (self.fixed_s + queue + prefill + transfer + self.w.osl * self.tpot_s)

    def settle(self) -> tuple[float, LimitedBy]:
        """The throughput where the clients' rate meets it (it falls as the load grows), or the binding cap."""
        cap, name = _caps(self.tpot_s, self.w, self.p)
        if self.rate(cap) >= cap:
            return cap, name
        lo, hi = 0.0, cap
        for _ in range(BISECTIONS):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if self.rate(mid) > mid else (lo, mid)
        return (lo + hi) / 2, "load"


def _closed_load(w: Workload, p: _Pools, prompts: int | None = None, *, fixed_s: float = 0.0) -> _Load:
    """c clients back to back: the fixed point of c = X (TTFT + (osl - 1) TPOT), X capped by both pools. Every part
    of TTFT is in the cycle: `fixed_s` holds those outside the load (request overhead, hand-shake, first wave). With
    `prompts` (the benchmark's request count) the first c requests arrive together: that share of requests
    waits, on average, for half of its instance's wave of c / P prompts."""
    c, n_d = w.concurrency, min(w.concurrency, p.slots) / 2
    if p.slots < 1:
        tpot = p.tpot_s(1)  # type: ignore[operator]
        return _Load(0.0, 0.0, 0.0, 0.0, tpot, 0.0, "decode-memory", "the decode pool holds no sequence's KV")
    queue_cap = math.ceil(max(0.0, c / p.instances - 1) / p.svc.batch) * p.svc.iteration_s
    wave_share = min(1.0, c / prompts) if prompts else 0.0
    wave = wave_share * max(0.0, queue_cap - p.svc.iteration_s) / 2
    load = _Load(0.0, 0.0, 0.0, 0.0, 0.0, n_d)
    for _ in range(ROUNDS):
        cycle = _Cycle(w, p, p.tpot_s(max(1.0, n_d)), fixed_s, queue_cap, wave)  # type: ignore[operator]
        x, limit = cycle.settle()
        queue, prefill, transfer = cycle.parts(x)
        # a capped loop's clients wait out what the cap leaves of their cycle
        queue = max(queue, c / x - w.osl * cycle.tpot_s - prefill - transfer - fixed_s)
        n_d = 0.5 * (n_d + min(p.slots, x * w.osl * cycle.tpot_s))
        load = _Load(x, queue, prefill, transfer, cycle.tpot_s, n_d, limit)
    return load


def _pools_model(
    profile: ModelProfile, topo: Topology, pools: Pools, workload: Workload, c: Constants, *, transfer_s: float
) -> _Pools:
    """The pools as the load solver sees them: the prefill service and what the pool admits, the hand-off, the decode
    pool's KV slots, its TPOT at a load and what its schedulers admit."""
    svc = prefill_service(profile, topo, pools, workload, c)
    slots = decode_step(profile, topo, pools, workload=workload, sequences=1, c=c).max_concurrency

    def tpot_s(sequences: float) -> float:
        return decode_step(profile, topo, pools, workload=workload, sequences=sequences, c=c).tpot_ms / 1e3

    return _Pools(
        svc,
        pools.prefill.instances,
        transfer_s,
        pools.transfer_overlap,
        profile.n_layers,
        pools.prefill.instances * svc.batch / svc.iteration_s,
        slots,
        tpot_s,
        pools.decode.instances * pools.decode.dp / PD_HOST_S if PD_HOST_S > 0 else math.inf,
        PD_HOST_S / pools.decode.dp,
    )


def _settle(w: Workload, p: _Pools, prompts: int | None, *, fixed_s: float) -> _Load:
    """The operating point of the workload's mode: a closed loop's fixed point, a static batch, or serving."""
    if w.mode == "closed":
        return _closed_load(w, p, prompts, fixed_s=fixed_s)
    return _static_load(w, p) if w.mode == "static" else _serving_load(w, p)


def _memory_figures(pools: Pools, svc: PrefillService, dec: Prediction) -> dict[str, Any]:
    """The memory fields of a DisaggPrediction: per GPU, each prefill instance's as the one priced (instance 0's,
    GPU by GPU in order) and the decode pool's; every GPU's capacity; whether both pools fit."""
    pre_mem = svc.prediction.memory_per_gpu_bytes
    capacity = {**svc.prediction.memory_capacity_bytes, **dec.memory_capacity_bytes}
    prefill_memory = {
        g: pre_mem[pools.prefill.gpu_ids[0][k]] for ids in pools.prefill.gpu_ids for k, g in enumerate(ids)
    }
    capacity.update(
        {g: capacity[pools.prefill.gpu_ids[0][k]] for ids in pools.prefill.gpu_ids for k, g in enumerate(ids)}
    )
    return {
        "prefill_memory_per_gpu_bytes": prefill_memory,
        "decode_memory_per_gpu_bytes": dec.memory_per_gpu_bytes,
        "memory_capacity_bytes": capacity,
        "fits": svc.prediction.fits and dec.fits,
    }


def _tokens_per_s(w: Workload, load: _Load, *, ttft_s: float, prompts: int | None) -> float:
    """Output tokens/s: a static batch's at its TPOT; a closed-loop benchmark of `prompts` requests over its whole
    run, drain included (planner.disagg.drain); otherwise the steady state's."""
    if w.mode == "static":
        return w.concurrency / load.tpot_s
    if w.mode != "closed" or not prompts:
        return load.requests_per_s * w.osl
    served_s = ttft_s - load.queue_s + (w.osl - 1) * load.tpot_s
    rate = run_requests_per_s(load.requests_per_s, concurrency=w.concurrency, prompts=prompts, served_s=served_s)
    return rate * w.osl


def estimate_disagg(
    profile: ModelProfile,
    topo: Topology,
    pools: Pools,
    workload: Workload,
    c: Constants = DEFAULT,
    *,
    check: bool = True,
    prompts: int | None = None,
) -> DisaggPrediction:
    """Predict TTFT, TPOT, throughput, each pool's utilisation and memory of `pools` at `workload`'s load
    (`prompts`: a closed-loop benchmark's request count, whose first wave arrives at once)."""
    if check:
        check_pools(profile, topo, pools)
    c = resolve_constants(c, workload.engine)  # the engine's step budget and request overhead, as estimate's
    transfer_s, by_class = kv_handoff(profile, topo, pools, workload, c)
    p = _pools_model(profile, topo, pools, workload, c, transfer_s=transfer_s)
    svc, slots = p.svc, p.slots
    outside = {"request": c.request_overhead_s, **pd_ttft_parts(workload, pools.decode, prompts)}
    load = _settle(workload, p, prompts, fixed_s=sum(outside.values()))
    dec = decode_step(profile, topo, pools, workload=workload, sequences=load.decode_sequences, c=c)
    ttft = {
        "request": outside.pop("request"),
        "queue": load.queue_s,
        "prefill": load.prefill_s,
        "transfer": load.transfer_s,
        "first_decode": load.tpot_s,
        **outside,
    }
    tokens_per_s = _tokens_per_s(workload, load, ttft_s=sum(ttft.values()), prompts=prompts)
    return DisaggPrediction(
        concurrency=workload.concurrency,
        mode=workload.mode,
        ttft_ms=sum(ttft.values()) * 1e3,
        ttft_breakdown_ms={k: v * 1e3 for k, v in ttft.items()},
        tpot_ms=load.tpot_s * 1e3,
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_gpu=tokens_per_s / pools.n_gpus,
        requests_per_s=tokens_per_s / workload.osl,
        decode_concurrency=load.decode_sequences,
        prefill_capacity_requests_per_s=p.capacity_per_s,
        decode_capacity_requests_per_s=slots / (workload.osl * load.tpot_s),
        prefill_utilisation=min(1.0, load.requests_per_s / p.capacity_per_s),
        decode_utilisation=min(1.0, load.decode_sequences / max(1, slots)),
        limited_by=load.limited_by,
        prefill_batch=svc.batch,
        prefill_step_ms=svc.step_s * 1e3,
        kv_bytes_per_request=kv_handoff_bytes(profile, workload.isl, workload.kv_dtype),
        kv_transfer_ms=transfer_s * 1e3,
        kv_transfer_bytes_by_class=by_class,
        decode_max_concurrency=slots,
        problem=load.problem,
        **_memory_figures(pools, svc, dec),
    )
