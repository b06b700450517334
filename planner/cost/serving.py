"""From a load to engine steps: what each step of a replica carries, in steady state or as a static batch.

**Serving** (the aggregated mode of vLLM, SGLang and TensorRT-LLM, chunked prefill on: their
defaults). A replica holds `n` sequences decoding together, split into `micro` micro-batches of `d`
(pipeline stages keep several in flight). Every step decodes one token of each of its d sequences.
As sequences finish, newcomers take their places, and their prompts are prefilled in the same steps:
per step, on average, `p = d x isl/osl x (n-1)/n` prompt tokens (a sequence's own prompt was
prefilled before it decoded, so it is not in its own TPOT). A step has a token budget `B`
(`max_num_batched_tokens`): decode first, then prompt chunks of up to `q = min(B - d, max(isl, p))`
tokens. So a fraction `f = p / q` of steps carries a chunk and costs more; TPOT is the mean step:
`(1 - f) x step(d) + f x step(d, q)`. A load whose prefill needs more than the budget (`p > B - d`)
cannot be served in steady state: prompts queue without bound.

TTFT of a newcomer: the request's fixed overhead, half a step of residual wait, an M/D/1 queue for
the prefill slot (utilisation `f`), and its `ceil(isl / q)` chunk steps through every stage.

**Static** (no arrivals, as microbenchmark tables run): every step decodes d tokens and nothing else;
TTFT is the prefill of the micro-batch's d prompts at once.

**Closed** (a closed-loop benchmark: n clients send requests of identical length back to back, as
genai-perf and `planner bench` do). Requests run in waves: the n prompts arrive together and are
prefilled first come first served in steps of B tokens; request i gets its first token when the step
holding the end of its prompt finishes, then decodes in every later prefill step and in decode-only
steps until the wave ends. TTFT is the mean over the wave; TPOT the mean inter-token time.

The decode context is the mean over the decode, isl + osl/2 (KV reads and attention are linear in
it). See docs/cost-model.md for the derivation and the calibration against published serving
measurements.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

from planner.cost.constants import Constants
from planner.cost.step import StepLoad
from planner.plan import Workload


@dataclass(frozen=True)
class OperatingPoint:
    """How a replica's sequences become steps at one load. TPOT is the weighted mean of `tpot_loads`."""

    concurrency: int  # sequences decoding together, all replicas
    per_replica: int
    micro: int  # micro-batches in flight (one per pipeline stage at most)
    decode: int  # decode tokens per micro-batch step
    tpot_loads: tuple[tuple[StepLoad, float], ...]
    ttft_load: StepLoad  # the step a newcomer's prompt chunk rides in
    ttft_chunks: float  # steps the prompt's prefill takes (a mean over a wave's prompts)
    ttft_wait_steps: float  # mean wait before the first chunk, in mean steps
    prefill_per_step: float  # mean prompt tokens a step carries
    problem: str | None = None  # why this load cannot be served (None: it can)
    tokens_per_pass: float = 1.0  # tokens a sequence gains per step (speculative decoding: more than one)

    @property
    def feasible(self) -> bool:
        return self.problem is None


def operating_point(
    workload: Workload, *, concurrency: int, replicas: int, pp: int, c: Constants, mode: str | None = None
) -> OperatingPoint:
    """The step mix of one replica at `concurrency` sequences over `replicas` replicas of `pp` stages (in `mode`,
    default the workload's; offline runs are steady state at the sequences the engine admits)."""
    per_replica = math.ceil(concurrency / replicas)
    micro = max(1, min(pp, per_replica))
    d = math.ceil(per_replica / micro)
    mode = mode or workload.mode
    if mode == "static":
        op = _static(workload, concurrency, per_replica, micro, d)
    elif mode in ("closed", "offline"):  # an offline run is waves of the sequences the engine admits
        op = _closed(workload, concurrency, per_replica, micro=micro, d=d, c=c)
    else:
        op = _serving(workload, concurrency, per_replica, micro=micro, d=d, c=c)
    return _with_remedies(op, workload)


def _with_remedies(op: OperatingPoint, w: Workload) -> OperatingPoint:
    """Speculative decoding and sparsity as the steps see them: a verification pass carries k + 1 tokens of each
    decoding sequence (all get logits; they share one read of the sequence's KV cache), and every step skips
    what the sparsity remedies skip."""
    queries = w.spec_tokens + 1

    def change(load: StepLoad) -> StepLoad:
        return replace(
            load,
            decode=load.decode * queries,
            logits=load.logit_tokens + load.decode * (queries - 1),
            queries=queries,
            mlp_sparsity=w.mlp_sparsity,
            activation_sparsity=w.activation_sparsity,
            attention_sparsity=w.attention_sparsity,
        )

    if queries == 1 and not (w.mlp_sparsity or w.activation_sparsity or w.attention_sparsity):
        return op
    return replace(
        op,
        tpot_loads=tuple((change(load), weight) for load, weight in op.tpot_loads),
        ttft_load=change(op.ttft_load),
        tokens_per_pass=w.tokens_per_pass,
    )


def _static(w: Workload, concurrency: int, per_replica: int, micro: int, d: int) -> OperatingPoint:
    decode = StepLoad(decode=d, context=w.mean_context)
    prefill = StepLoad(decode=0, prefill=d * w.isl, prefill_context=w.isl / 2, prefill_kv_tokens=d * w.isl, logits=d)
    return OperatingPoint(concurrency, per_replica, micro, d, ((decode, 1.0),), prefill, 1, 0.0, 0.0)


def _closed(w: Workload, concurrency: int, per_replica: int, *, micro: int, d: int, c: Constants) -> OperatingPoint:
    """A closed-loop benchmark's waves: all n clients' prompts arrive together, are prefilled first come first
    served in steps of the token budget B, and then decode together until they finish together."""
    budget = c.max_num_batched_tokens
    new = w.new_prompt_tokens  # prefix reuse: the wave prefills each prompt less what the prefix cache holds
    n, total = per_replica, per_replica * new
    chunk = min(budget, total)
    steps = math.ceil(total / chunk)
    done_at = [math.ceil((i + 1) * new / chunk) for i in range(n)]  # the step that ends request i's prompt
    mean_step = sum(done_at) / n if w.statistic == "mean" else float(statistics.median(done_at))
    # after its first token a request decodes in every later prefill step, then in decode-only steps
    decode_steps = w.osl / w.tokens_per_pass - 1  # speculative decoding gains several tokens a step
    in_prefill = sum(min(decode_steps, steps - k) for k in done_at) / n
    f = in_prefill / max(1.0, decode_steps)
    decode = StepLoad(decode=d, context=w.mean_context)
    kv_read = chunk + max(0.0, new - chunk) / 2 + w.cached_tokens  # a chunk reads its prompt's cached prefix too
    attends = w.prefill_context if w.cached_tokens else w.isl / 2
    mixed = StepLoad(
        decode=d / 2,
        prefill=chunk,
        context=w.isl,
        prefill_context=attends,
        prefill_kv_tokens=kv_read,
        logits=d / 2 + chunk / new,
    )
    wave = StepLoad(decode=0, prefill=chunk, prefill_context=attends, prefill_kv_tokens=kv_read, logits=chunk / new)
    loads = ((decode, 1.0 - f), (mixed, f)) if f > 0 else ((decode, 1.0),)
    return OperatingPoint(concurrency, per_replica, micro, d, loads, wave, mean_step, 0.0, f * chunk)


def _serving(w: Workload, concurrency: int, per_replica: int, *, micro: int, d: int, c: Constants) -> OperatingPoint:
    budget = c.max_num_batched_tokens
    others = (per_replica - 1) / per_replica
    new = w.new_prompt_tokens  # the prompt less what the prefix cache holds (w.isl without prefix reuse)
    p = d * new / w.osl * w.tokens_per_pass * others  # sequences finish tokens_per_pass times sooner
    room = budget - d
    problem = None
    if room < 1:
        problem = f"{d} decode tokens per step fill the engine's {budget}-token step budget"
        room = 1
    q = min(room, max(new, p))
    if problem is None and p > room:
        problem = (
            f"newcomers' prompts need {p:,.0f} tokens per step beside {d} decode tokens, more than the "
            f"{budget}-token step budget: prompts would queue without bound"
        )
    f = min(1.0, p / q) if q > 0 else 0.0
    chunks = max(1, math.ceil(new / q))
    mean_prefix = max(0.0, new - q) / 2 + w.cached_tokens
    decode = StepLoad(decode=d, context=w.mean_context)
    mixed = StepLoad(
        decode=d,
        prefill=q,
        context=w.mean_context,
        prefill_context=w.prefill_context,
        prefill_kv_tokens=q + mean_prefix,
        logits=d + q / new,
    )
    own = StepLoad(
        decode=d * others,
        prefill=q,
        context=w.mean_context,
        prefill_context=w.prefill_context,
        prefill_kv_tokens=q + mean_prefix,
        logits=d * others + q / new,
    )
    rho = min(f, 0.999)
    wait = 0.5 * others + rho / (2 * (1 - rho)) * chunks
    loads = ((decode, 1.0 - f), (mixed, f)) if f > 0 else ((decode, 1.0),)
    return OperatingPoint(concurrency, per_replica, micro, d, loads, own, chunks, wait, p, problem)
