"""A plan at a request rate: the open loop's steady state, found as a fixed point of Little's law.

With Poisson arrivals at rate lambda, the sequences the engine runs are n = lambda x S(n), S(n) the time a
sequence runs (its prefill chunks and osl decode steps) at the steps n sequences cause (planner.cost.serving's
steady state, which prices the newcomers' prompt chunks from n). S grows with n, so lambda x S(n) - n changes sign
once; bisection over whole sequences finds the fixed point. The rate is not sustained (`stable: false`) where no
fixed point exists below the engine's slots (KV capacity, batch limit) or the prompts' chunks would need more than
the step budget; the sustainable rate is then the most that any load the plan holds completes, max n / S(n).

Queues on top of the steady state (planner.traffic.queueing): the prefill slot (M/G/1 from the serving model's
M/D/1 and the prompt lengths' spread) and admission (Erlang C over the slots). Percentiles of TTFT and TPOT come
from those waits and the length distributions; docs/traffic.md states the assumptions.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace

from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate, newcomer_wait_s
from planner.cost.serving import operating_point
from planner.hardware.topology import Topology
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, Prediction, Workload
from planner.traffic.chunked import ChunkSteps, chunk_sizes, request_tpot_s
from planner.traffic.lengths import LengthDist, fixed
from planner.traffic.model import Percentiles, TrafficPrediction
from planner.traffic.nonchunked import Cycle, backlog_waits, cycle, newcomers_per_cycle
from planner.traffic.prefill_run import StepCosts, draw_requests, run_statistics, serve
from planner.traffic.queueing import PERCENTILES, admission_wait, normal_mixture_quantiles, ttft_quantiles

#: Prompt lengths the TTFT percentiles are taken over (a finer distribution is merged into this many groups).
TTFT_POINTS = 32
#: Prefill utilisation at and above which the prefill queue is taken as unbounded (the serving model caps at 0.999).
MAX_PREFILL_UTILISATION = 0.99


@dataclass(frozen=True)
class Probe:
    """The serving model at `running` sequences: the prediction and the parts of TTFT the queues replace."""

    running: int
    prediction: Prediction
    service_s: float  # a sequence's time running: TTFT without the serving model's prefill queue, plus osl x TPOT
    prefill_wait_s: float  # the M/G/1 wait for the prefill slot (prefill_queue)
    prefill_utilisation: float  # share of the steps' token budget the newcomers' prompts take
    chunk_share: float  # share of steps carrying a prompt chunk (the serving model's f)
    ok: bool  # the load can be served: memory holds, prompts fit the step budget, the prefill queue is finite
    problem: str | None


@dataclass(frozen=True)
class Inputs:
    """What every probe shares."""

    profile: ModelProfile
    topo: Topology
    partition: Partition
    workload: Workload
    constants: Constants
    cache: dict[int, Probe] = field(default_factory=dict, compare=False, repr=False)
    static_cache: dict[int, Prediction] = field(default_factory=dict, compare=False, repr=False)
    #: one prompt of N tokens on each replica, by N (the chunk steps)
    prompt_cache: dict[int, Prediction] = field(default_factory=dict, compare=False, repr=False)

    def probe(self, running: int) -> Probe:
        """The serving model at `running` sequences (cached: the searches ask for the same loads again)."""
        if running not in self.cache:
            self.cache[running] = self._probe(running)
        return self.cache[running]

    def _probe(self, running: int) -> Probe:
        if not self.workload.chunked_prefill:
            return self._probe_prefill_first(running)
        w = self.workload.model_copy(update={"concurrency": running, "mode": "serving", "request_rate": None})
        pred = estimate(self.profile, self.topo, self.partition, workload=w, c=self.constants, check=False)
        c = resolve_constants(self.constants, w.engine)
        op = operating_point(w, concurrency=running, replicas=self.partition.replicas, pp=self.partition.pp, c=c)
        others = (op.per_replica - 1) / op.per_replica
        period_s = pred.tpot_ms / 1e3 * op.tokens_per_pass
        model_wait_s = max(0.0, op.ttft_wait_steps - 0.5 * others) * period_s  # the serving model's M/D/1 part
        rho, wait_s = prefill_queue(
            w, prefill_per_step=op.prefill_per_step, room=c.max_num_batched_tokens - op.decode, period_s=period_s
        )
        service_s = pred.ttft_ms / 1e3 - model_wait_s + w.osl * pred.tpot_ms / 1e3
        problem = op.problem
        if problem is None and not pred.fits:
            problem = f"{running} running sequences do not fit in memory"
        if problem is None and rho >= MAX_PREFILL_UTILISATION:
            problem = f"prompts need {rho:.0%} of the steps' token budget: the prefill queue grows without bound"
        f = op.tpot_loads[1][1] if len(op.tpot_loads) > 1 else 0.0
        return Probe(running, pred, service_s, wait_s, rho, f, problem is None, problem)

    def _probe_prefill_first(self, running: int) -> Probe:
        """The probe with chunked prefill off (planner.traffic.nonchunked): decode bursts and prefill-only steps."""
        w = self.workload.model_copy(update={"concurrency": running, "mode": "serving", "request_rate": None})
        pred = estimate(self.profile, self.topo, self.partition, workload=w, c=self.constants, check=False)
        cyc = self.cycle(running)
        overhead_s = resolve_constants(self.constants, w.engine).request_overhead_s
        ttft_s = overhead_s + cyc.wait_s + cyc.own_prefill_s
        service_s = ttft_s + w.osl * cyc.tpot_s
        problem = None if pred.fits else f"{running} running sequences do not fit in memory"
        tokens_per_s = running * w.osl / service_s
        pred = pred.model_copy(
            update={
                "tpot_ms": cyc.tpot_s * 1e3,
                "ttft_ms": ttft_s * 1e3,
                "tokens_per_s": tokens_per_s,
                "requests_per_s": tokens_per_s / w.osl,
                "tokens_per_s_per_gpu": tokens_per_s / len(self.partition.all_gpu_ids()),
            }
        )
        return Probe(running, pred, service_s, 0.0, cyc.prefill_share, cyc.stall_share, problem is None, problem)

    def cycle(self, running: int) -> Cycle:
        """A replica's cycle at `running` sequences over all replicas: the decode-only step there and the static
        prefill of one prompt and of the cycle's mean count (rounded up, at least two) give t_d, t_p(1) and b."""
        replicas = self.partition.replicas
        w = self.workload
        steps = w.scheduler_steps
        k = newcomers_per_cycle(running / replicas, steps=steps, osl_tokens=w.osl)
        many = max(2, math.ceil(k))
        first_s, many_s = (self.prefill_step_s(m) for m in (1, many))
        return cycle(
            running / replicas,
            steps=steps,
            osl_tokens=w.osl,
            decode_step_s=_static(self, running).tpot_ms / 1e3,
            first_prompt_s=first_s,
            per_prompt_s=max(0.0, many_s - first_s) / (many - 1),
        )

    def chunk_steps(self, decode: int) -> ChunkSteps:
        """One mean prompt's chunk steps on a replica with `decode` sequences decoding beside it: chunks of up to
        B - decode tokens (planner.traffic.chunked.chunk_sizes), each step priced as the static prefill of its
        chunk and the decode tokens riding in it."""
        w = self.workload
        room = resolve_constants(self.constants, w.engine).max_num_batched_tokens - decode
        sizes = chunk_sizes(w.new_prompt_tokens, room) if room >= 1 else []
        return ChunkSteps(len(sizes), sum(self.tokens_step_s(round(x + decode)) for x in sizes))

    def tokens_step_s(self, tokens: int) -> float:
        """A prefill step of one prompt of `tokens` tokens on each replica (the static TTFT less the overhead)."""
        if tokens not in self.prompt_cache:
            w = self.workload.model_copy(
                update={
                    "concurrency": self.partition.replicas,
                    "mode": "static",
                    "request_rate": None,
                    "isl": tokens,
                    "isl_dist": None,
                }
            )
            self.prompt_cache[tokens] = estimate(
                self.profile, self.topo, self.partition, workload=w, c=self.constants, check=False
            )
        overhead_s = resolve_constants(self.constants, self.workload.engine).request_overhead_s
        return max(0.0, self.prompt_cache[tokens].ttft_ms / 1e3 - overhead_s)

    def prefill_step_s(self, prompts: int) -> float:
        """A prefill-only step of `prompts` prompts on each replica (the static batch's TTFT less the request's
        fixed overhead)."""
        overhead_s = resolve_constants(self.constants, self.workload.engine).request_overhead_s
        return max(0.0, _static(self, prompts * self.partition.replicas).ttft_ms / 1e3 - overhead_s)


def prefill_queue(w: Workload, *, prefill_per_step: float, room: float, period_s: float) -> tuple[float, float]:
    """(utilisation, mean wait s) of the prefill slot as an M/G/1 queue of prompt tokens: the steps offer `room`
    tokens beside decode, newcomers need `prefill_per_step` of them (rho = their ratio), a prompt of x tokens takes
    x / room steps, so by Pollaczek-Khinchine W = rho / (1 - rho) x E[x^2] / (2 E[x]) / room steps."""
    if room < 1:
        return 1.0, math.inf
    rho = prefill_per_step / room
    if rho >= 1:
        return rho, math.inf
    residual_tokens = w.prefill_context  # E[x^2] / (2 E[x]): isl / 2 for a fixed length
    return rho, rho / (1 - rho) * residual_tokens / room * period_s * burst_factor(w, service_cv2=_prompt_cv2(w))


def _prompt_cv2(w: Workload) -> float:
    return w.isl_dist.cv2 if w.isl_dist is not None else 0.0


def burst_factor(w: Workload, *, service_cv2: float) -> float:
    """Kingman's G/G/1 correction of a wait priced for Poisson arrivals: (ca^2 + cs^2) / (1 + cs^2), ca^2 the
    arrivals' squared coefficient of variation (1: Poisson, so 1 here; a trace's own: planner.traffic.arrivals),
    cs^2 the service time's."""
    return (w.arrival_cv2 + service_cv2) / (1.0 + service_cv2)


def slots(inputs: Inputs) -> int:
    """Sequences the engine can run at once over all replicas: its KV capacity and its batch limit."""
    c = resolve_constants(inputs.constants, inputs.workload.engine)
    kv = inputs.probe(1).prediction.max_concurrency
    return max(1, min(kv, c.max_num_seqs * inputs.partition.replicas))


def largest_served(inputs: Inputs, limit: int) -> Probe | None:
    """The probe at the most sequences (<= limit) the plan serves in steady state (a served load stays served
    when fewer run), or None where even one is not."""
    if not inputs.probe(1).ok:
        return None
    top = inputs.probe(limit)
    if top.ok:
        return top
    low, high = 0, limit  # served at low (or low is 0), not at high
    best = None
    while high - low > 1:
        mid = (low + high) // 2
        p = inputs.probe(mid)
        if p.ok:
            low, best = mid, p
        else:
            high = mid
    return best


def fixed_point(inputs: Inputs, rate_per_s: float, top: Probe) -> Probe | None:
    """The smallest n <= top.running with rate x S(n) <= n (the steady state), or None where there is none."""
    if rate_per_s * top.service_s > top.running:
        return None
    low, high = 0, top.running  # demand exceeds low (or low is 0), and is met at high
    best = top
    while high - low > 1:
        mid = (low + high) // 2
        p = inputs.probe(mid)
        if p.ok and rate_per_s * p.service_s <= mid:
            high, best = mid, p
        else:
            low = mid
    return best


def sustainable_rate(inputs: Inputs, limit: int) -> float:
    """The most requests/s any load the plan serves completes: max over n <= limit of n / S(n)."""
    best, n = 0.0, 1
    grid = set()
    while n < limit:
        grid.add(n)
        n = max(n + 1, math.ceil(n * 1.5))  # completions n / S(n) rise with n up to saturation: a coarse grid
    grid.add(limit)
    for n in sorted(grid):
        p = inputs.probe(n)
        if p.ok:
            best = max(best, n / p.service_s)
    return best


@dataclass(frozen=True)
class Bounds:
    """What a plan can carry whatever the rate: its slots, the most sequences it serves, its sustainable rate."""

    limit: int
    top: Probe | None
    sustainable_rps: float


def bounds(inputs: Inputs) -> Bounds:
    limit = slots(inputs)
    top = largest_served(inputs, limit)
    return Bounds(limit, top, sustainable_rate(inputs, top.running) if top is not None else 0.0)


def open_loop(
    profile: ModelProfile, topo: Topology, partition: Partition, workload: Workload, constants: Constants = DEFAULT
) -> Prediction:
    """The prediction of `partition` at `workload.request_rate` Poisson arrivals: the serving model's figures at
    the steady state's running load, TTFT with the queues' waits, and `traffic` (stable, sustainable rate,
    percentiles). An unsustained rate gives the figures at the most the plan serves, `traffic.stable` False."""
    rate = workload.request_rate
    if rate is None:
        raise ValueError("open_loop needs workload.request_rate")
    inputs = Inputs(profile, topo, partition, workload, constants)
    return at_rate(inputs, rate, bounds(inputs))


def at_rate(inputs: Inputs, rate: float, b: Bounds) -> Prediction:
    """`open_loop` at `rate` for inputs whose bounds are known (the sizing search asks many rates of one plan)."""
    found = fixed_point(inputs, rate, b.top) if b.top is not None else None
    if found is not None:
        found = with_chunk_steps(inputs, found, rate) if inputs.workload.chunked_prefill else found
        return _stable(inputs, found, rate, sustainable=b.sustainable_rps, limit=b.limit)
    at = b.top or inputs.probe(1)
    problem = (
        f"{rate:g} requests/s is more than the plan sustains ({b.sustainable_rps:.3g} requests/s: "
        f"{at.running} sequences running, {b.limit} slots)"
    )
    pred = _unstable(inputs, at, rate, sustainable=b.sustainable_rps, limit=b.limit, problem=problem)
    w = inputs.workload
    if w.chunked_prefill or not w.num_prompts or b.top is None:
        return pred
    # a finite run above the sustainable rate on the prefill-first scheduler: TPOT in the benchmark's per-request
    # statistic, from the run stepped through (its phases: ramp, backlog with decodes starved, drain)
    return pred.model_copy(update={"tpot_ms": prefill_first_run(inputs, at, rate, limit=b.limit)[0] * 1e3})


def with_chunk_steps(inputs: Inputs, p: Probe, rate: float) -> Probe:
    """The steady state at `rate` with the prompts' chunks as whole steps (planner.traffic.chunked): TPOT a
    request's mean over the chunk and decode steps it sees, the chunk share theirs; unchanged where chunk steps
    would fill every second (the closed serving model's full chunks hold there)."""
    w = inputs.workload
    replicas = inputs.partition.replicas
    per_replica = math.ceil(p.running / replicas)
    steps = inputs.chunk_steps(max(0, per_replica - 1))
    if steps.count == 0:
        return p
    decode_s = _static(inputs, p.running).tpot_ms / 1e3
    tpot_s = request_tpot_s(rate / replicas, steps, decode_step_s=decode_s, output_tokens=w.osl)
    if tpot_s is None:
        return p
    extra_s = steps.prefill_s / steps.count - decode_s
    share = min(1.0, max(0.0, (tpot_s - decode_s) / extra_s)) if extra_s > 0 else 0.0
    old_s = p.prediction.tpot_ms / 1e3
    pred = p.prediction.model_copy(update={"tpot_ms": tpot_s * 1e3})
    return replace(p, prediction=pred, service_s=p.service_s + w.osl * (tpot_s - old_s), chunk_share=share)


def _decode_loads(per_replica: int) -> tuple[int, ...]:
    """Loads (sequences per replica, doubling from 1, and the slots) at which a run's decode step is priced."""
    loads, m = [], 1
    while m < per_replica:
        loads.append(m)
        m *= 2
    return (*loads, per_replica)


def prefill_first_run(inputs: Inputs, at: Probe, rate: float, *, limit: int) -> tuple[float, float]:
    """(TPOT s, TTFT s) of the workload's run of num_prompts on vLLM V0's prefill-first scheduler, request by
    request (planner.traffic.prefill_run), in the workload's statistic. Step costs: the cycle's t_p(1) and b at the
    probe's load, t_d of the static batch at doubling loads; the budget is vLLM's default without chunking,
    max(max_model_len, 2048), the model's context length standing in for max_model_len."""
    w = inputs.workload
    replicas = inputs.partition.replicas
    per_replica = max(1, limit // replicas)
    cyc = inputs.cycle(at.running)
    loads = _decode_loads(per_replica)
    c = resolve_constants(inputs.constants, w.engine)
    context = inputs.profile.context_length or inputs.profile.max_position_embeddings
    isl, osl = w.isl_dist or fixed(w.isl), w.osl_dist or fixed(w.osl)
    costs = StepCosts(
        steps=w.scheduler_steps,
        first_prompt_s=inputs.prefill_step_s(1),
        per_prompt_s=cyc.per_prompt_s,
        mean_prompt_tokens=isl.mean,
        decode_loads=loads,
        decode_steps_s=tuple(_static(inputs, m * replicas).tpot_ms / 1e3 for m in loads),
        budget_tokens=max(c.max_num_batched_tokens, context, 2048),
        slots=per_replica,
    )
    assert w.num_prompts is not None
    requests = draw_requests(
        math.ceil(w.num_prompts / replicas),
        rate_per_s=rate / replicas,
        prompts=coarse(isl, 64),
        outputs=list(zip(osl.lengths, osl.weights)),
    )
    tpot_s, ttft_s = run_statistics(serve(requests, costs), median=w.statistic == "median")
    return tpot_s, ttft_s + c.request_overhead_s


def _unstable(inputs: Inputs, at: Probe, rate: float, *, sustainable: float, limit: int, problem: str) -> Prediction:
    """Figures at the most the plan runs; for a finite run (`num_prompts`), TTFT with the queue it builds."""
    w = inputs.workload
    base_s = at.service_s - w.osl * at.prediction.tpot_ms / 1e3
    traffic = TrafficPrediction(
        request_rate_rps=rate,
        stable=False,
        sustainable_rate_rps=sustainable,
        running_concurrency=at.running,
        prefill_utilisation=at.prefill_utilisation,
        slots=limit,
        problem=problem,
        arrival_cv2=w.arrival_cv2,
        trace=w.arrival_trace,
    )
    update: dict = {
        "traffic": traffic,
        "ttft_ms": (base_s + (at.prefill_wait_s if math.isfinite(at.prefill_wait_s) else 0.0)) * 1e3,
    }
    if w.num_prompts and sustainable > 0:
        # the run's queue, at the rate the plan completes, holds the prompts: the prefill slot's steady-state wait
        # at the top load would count them twice
        waits = finite_run_waits(
            w.num_prompts, rate_per_s=rate, served_per_s=sustainable, running=head_start(inputs, at.running)
        )
        if not w.chunked_prefill:  # prefills go first: the backlog of prompts waits for the prefill steps
            cyc = inputs.cycle(at.running)
            prompts_per_s = inputs.partition.replicas / cyc.per_prompt_s if cyc.per_prompt_s > 0 else math.inf
            backlog = backlog_waits(w.num_prompts, rate_per_s=rate, prompts_per_s=prompts_per_s)
            waits = [max(a, b) for a, b in zip(waits, backlog)]
        median = w.statistic == "median"
        wait_s = statistics.median(waits) if median else statistics.fmean(waits)
        own_s = weighted_median(request_bases(inputs, base_s)) if median else base_s
        update["ttft_ms"] = (own_s + wait_s) * 1e3
        update["traffic"] = traffic.model_copy(update={"finite_run": True, "admission_wait_ms": wait_s * 1e3})
    return at.prediction.model_copy(update=update)


def head_start(inputs: Inputs, running: int) -> int:
    """Of `running` admitted sequences, those whose first token comes straight away in a finite run's backlog: all
    of them where a prompt fits the room a step leaves beside the decodes (admitted, it is prefilled in a step);
    where a prompt needs many steps' room (x tokens against a room of R), chunked prefill works through the prompts
    in turn, R / x of them at once, and the other admitted ones wait like the queue behind them."""
    w = inputs.workload
    if not w.chunked_prefill:
        return running
    replicas = inputs.partition.replicas
    room = resolve_constants(inputs.constants, w.engine).max_num_batched_tokens - running / replicas
    share = min(1.0, max(0.0, room) / w.new_prompt_tokens)
    return max(1, round(running * share)) if running else 0


def finite_run_waits(n: int, *, rate_per_s: float, served_per_s: float, running: int) -> list[float]:
    """Each request's wait in a run of `n` arrivals at `rate_per_s` above what the plan completes (`served_per_s`),
    as a fluid queue: the first `running` start at once, request i then starts when i - running have finished,
    at (i - running) / served_per_s, and waits that less its arrival i / rate_per_s (never below zero)."""
    return [max(0.0, (i - running) / served_per_s - i / rate_per_s) for i in range(n)]


def _stable(inputs: Inputs, p: Probe, rate: float, *, sustainable: float, limit: int) -> Prediction:
    w = inputs.workload
    rho = p.prefill_utilisation
    prefill_wait_s = p.prefill_wait_s
    replicas = inputs.partition.replicas
    wait_p, wait_mean_s = admission_wait(
        slots=max(1, limit // replicas), rate_per_s=rate / replicas, service_s=p.service_s
    )
    wait_mean_s *= burst_factor(w, service_cv2=1.0)  # Erlang C's service is exponential
    admission_s = wait_p * wait_mean_s
    pred = p.prediction
    base_s = p.service_s - w.osl * pred.tpot_ms / 1e3  # TTFT without waiting
    # multi-step: newcomers start between groups (with chunked prefill off the probe's TTFT holds that wait)
    group_wait_s = newcomer_wait_s(w.scheduler_steps, pred.tpot_ms / 1e3) if w.chunked_prefill else 0.0
    base_s += group_wait_s
    ttft_s = base_s + prefill_wait_s + admission_s
    waits = ((rho, prefill_wait_s / rho if rho > 0 else 0.0), (wait_p, wait_mean_s))
    ttft = _ttft_percentiles(request_bases(inputs, base_s), waits, mean_s=ttft_s)
    tpot = _tpot_percentiles(p, w.osl_dist or fixed(w.osl), decode_s=_static(inputs, p.running).tpot_ms / 1e3)
    in_system = rate * (ttft_s + w.osl * pred.tpot_ms / 1e3)
    traffic = TrafficPrediction(
        request_rate_rps=rate,
        stable=True,
        sustainable_rate_rps=sustainable,
        running_concurrency=p.running,
        in_system=in_system,
        prefill_utilisation=rho,
        prefill_wait_ms=prefill_wait_s * 1e3,
        admission_wait_ms=admission_s * 1e3,
        slots=limit,
        ttft=ttft,
        tpot=tpot,
        arrival_cv2=w.arrival_cv2,
        trace=w.arrival_trace,
    )
    median = w.statistic == "median"
    return pred.model_copy(
        update={
            "traffic": traffic,
            "ttft_ms": ttft.p50_ms if median else ttft.mean_ms,
            "tpot_ms": tpot.p50_ms if median else tpot.mean_ms,
            "requests_per_s": rate,
            "tokens_per_s": rate * w.osl,
            "tokens_per_s_per_gpu": rate * w.osl / len(inputs.partition.all_gpu_ids()),
        }
    )


def new_token_points(w: Workload) -> list[tuple[float, float]]:
    """(prompt tokens a request prefills, probability): each prompt length (merged into TTFT_POINTS groups), less
    the shared prefix for the share prefix_hit of requests that find it cached; the others prefill it whole. The
    mean is w.new_prompt_tokens: a median request is a hit where more than half hit, a miss where fewer do."""
    points = coarse(w.isl_dist or fixed(w.isl), TTFT_POINTS)
    hit, prefix = w.prefix_hit, w.prefix_tokens
    if not prefix or hit <= 0:
        return points
    hits = [(max(1.0, x - prefix), p * hit) for x, p in points]
    return hits if hit >= 1 else hits + [(x, p * (1 - hit)) for x, p in points]


def request_bases(inputs: Inputs, base_s: float) -> list[tuple[float, float]]:
    """(TTFT without waiting, probability) per request kind: the mean request's `base_s` with its prompt's part
    (one mean prompt prefilled alone, less the fixed overhead) scaled to the tokens that request prefills."""
    w = inputs.workload
    overhead_s = resolve_constants(inputs.constants, w.engine).request_overhead_s
    alone = _static(inputs, 1)
    prefill_s = min(max(0.0, alone.ttft_ms / 1e3 - overhead_s), max(0.0, base_s - overhead_s))
    points = new_token_points(w)
    mean_tokens = sum(x * p for x, p in points) / sum(p for _, p in points)
    return [(base_s - prefill_s + prefill_s * x / mean_tokens, p) for x, p in points]


def weighted_median(values: list[tuple[float, float]]) -> float:
    """The median of (value, probability) pairs: the smallest value whose cumulative probability reaches half."""
    total, acc = sum(p for _, p in values), 0.0
    ordered = sorted(values)
    for v, p in ordered:
        acc += p
        if acc >= total / 2:
            return v
    return ordered[-1][0]


def _static(inputs: Inputs, sequences: int) -> Prediction:
    """The serving model's static batch of `sequences`: decode steps alone, and its prompts' prefill (cached)."""
    if sequences not in inputs.static_cache:
        w = inputs.workload.model_copy(update={"concurrency": sequences, "mode": "static", "request_rate": None})
        inputs.static_cache[sequences] = estimate(
            inputs.profile, inputs.topo, inputs.partition, workload=w, c=inputs.constants, check=False
        )
    return inputs.static_cache[sequences]


def coarse(dist: LengthDist, points: int) -> list[tuple[float, float]]:
    """(length, probability) of `dist` merged into at most `points` consecutive groups of equal count, each at its
    probability-weighted mean length."""
    pairs = sorted(zip(dist.lengths, dist.weights))
    if len(pairs) <= points:
        return pairs
    out = []
    for k in range(points):
        group = pairs[k * len(pairs) // points : (k + 1) * len(pairs) // points]
        w = sum(p for _, p in group)
        if w > 0:
            out.append((sum(x * p for x, p in group) / w, w))
    return out


def _ttft_percentiles(
    bases_s: list[tuple[float, float]], waits: tuple[tuple[float, float], tuple[float, float]], *, mean_s: float
) -> Percentiles:
    """TTFT over prompt lengths (`bases_s`: TTFT without waiting, probability) and the two waits."""
    p50, p90, p99 = ttft_quantiles(bases_s, waits, [q / 100 for q in PERCENTILES])
    return Percentiles(mean_ms=mean_s * 1e3, p50_ms=p50 * 1e3, p90_ms=p90 * 1e3, p99_ms=p99 * 1e3)


def _tpot_percentiles(p: Probe, osl: LengthDist, *, decode_s: float) -> Percentiles:
    """Per-request TPOT: decode-only steps (`decode_s`) and, with probability f each (the share of steps carrying
    a prompt chunk), mixed steps (docs/traffic.md)."""
    tpot_s = p.prediction.tpot_ms / 1e3
    f = p.chunk_share
    if f <= 0 or f >= 1:
        return Percentiles(mean_ms=tpot_s * 1e3, p50_ms=tpot_s * 1e3, p90_ms=tpot_s * 1e3, p99_ms=tpot_s * 1e3)
    delta_s = max(0.0, tpot_s - decode_s) / f  # a mixed step's extra time
    parts = [
        (tpot_s, delta_s * math.sqrt(f * (1 - f) / max(1.0, x - 1)), wt) for x, wt in zip(osl.lengths, osl.weights)
    ]
    p50, p90, p99 = normal_mixture_quantiles(parts, [q / 100 for q in PERCENTILES])
    return Percentiles(mean_ms=tpot_s * 1e3, p50_ms=p50 * 1e3, p90_ms=p90 * 1e3, p99_ms=p99 * 1e3)
