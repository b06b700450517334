"""A benchmark's finite run on vLLM V0's prefill-first scheduler, request by request: the per-request TPOT statistic.

vLLM's benchmark_serving reports TPOT per request, (e2e latency - TTFT) / (o - 1) for a request of o > 1 output
tokens, and then its mean (or median) over requests. A request's o - 1 decode intervals are decode steps of t_d,
plus whatever prefill-only steps run between them (planner.traffic.nonchunked: a scheduler call that finds prompts
waiting prefills them and runs no decode). Two things make that statistic differ from the per-token mean:

- The first interval is not a random one: it starts at the end of the request's own prefill step, and the next
  scheduler call prefills again if any prompt arrived meanwhile. Poisson arrivals during a step of t_p seconds
  are none with probability exp(-lambda t_p), so at lambda x b near 1 (b: a further prompt's prefill) a chain of
  prefill steps runs on for a long time, and while a backlog waits (a run above the prefill rate, or 1000 prompts
  sent at once) no decode runs at all until it is prefilled. That wait F_i sits whole in the first interval:

      TPOT_i = t_d + (F_i + S_i) / (o_i - 1)

  with S_i the prefill steps that interrupt its later decode bursts. The mean over requests weighs
  F / (o - 1) by E[1 / (o - 1)] (0.038 for ShareGPT's outputs at a 180-token mean), so a 2-token request that waited
  10 s for the backlog has a TPOT of 10 s, while the per-token mean spreads F over all the run's tokens.
- The run is finite and not stationary: it starts empty (short bursts, small prefill steps), goes through the
  backlog (prefill steps of up to the token budget, decodes starved), and ends in a drain where nothing arrives
  and decode runs without stalls. Which phase a request lives in depends on when it arrives.

Rather than a closed form per phase, the run is stepped through as the scheduler runs it (`serve`), with the step
costs of the cost model: a prefill step of prompts x_1..x_K costs t_p(1) + b (sum x_j / mean x - 1) (its fixed
part once, b per mean-length prompt), a burst is N (`--num-scheduler-steps`) decode steps of t_d(n) at the n
sequences running. TPOT_i and TTFT_i follow from the times of each request's first and last token.

Assumptions: arrivals are Poisson (benchmark_serving's exponential gaps; drawn from a fixed seed, so a prediction is
reproducible), output and prompt lengths independent draws from the workload's distributions; a step admits the
waiting prompts in arrival order while they fit the token budget (vLLM's default without chunking, max(max_model_len,
2048)) and the slots (max_num_seqs, KV capacity at the mean lengths); a sequence finishing inside a burst leaves at
its last step; t_d(n) is linear between the sampled loads; preemption and the request's host overhead beyond TTFT
are not modelled; replicas split the requests evenly and run alike.

Where it is used (planner.traffic.steady.at_rate): TPOT of a run of num_prompts above the sustainable rate with
chunked prefill off. Sustained rows keep the steady state (with the cost model's step costs a 1,000-prompt run
from empty at 16 requests/s on MI300X stays far below the near-critical load the measured figures show), and
TTFT keeps the fluid queue's (`finite_run_waits`, `backlog_waits`).
"""

from __future__ import annotations

import bisect
import random
import statistics
from collections import deque
from dataclasses import dataclass

#: Seed of the arrival gaps and length draws (benchmark_serving's own default seed is 0).
SEED = 0


@dataclass(frozen=True)
class StepCosts:
    """What the scheduler's steps cost on one replica."""

    steps: int  # N: decode steps per scheduler call
    first_prompt_s: float  # t_p(1): a prefill step of one mean-length prompt
    per_prompt_s: float  # b: what each further mean-length prompt adds
    mean_prompt_tokens: float
    decode_loads: tuple[int, ...]  # running sequences at which t_d is known (increasing)
    decode_steps_s: tuple[float, ...]  # t_d there
    budget_tokens: int  # prompt tokens one prefill step may carry
    slots: int  # sequences running at once

    def decode_s(self, running: int) -> float:
        """t_d at `running` sequences, linear between the known loads (constant beyond them)."""
        xs, ys = self.decode_loads, self.decode_steps_s
        if running <= xs[0]:
            return ys[0]
        if running >= xs[-1]:
            return ys[-1]
        j = bisect.bisect_left(xs, running)
        share = (running - xs[j - 1]) / (xs[j] - xs[j - 1])
        return ys[j - 1] + share * (ys[j] - ys[j - 1])

    def prefill_s(self, prompt_tokens: float) -> float:
        """A prefill-only step of prompts holding `prompt_tokens` in all."""
        return self.first_prompt_s + self.per_prompt_s * (prompt_tokens / self.mean_prompt_tokens - 1)


@dataclass(frozen=True)
class Request:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Served:
    request: Request
    first_token_s: float
    last_token_s: float

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.request.arrival_s

    @property
    def tpot_s(self) -> float | None:
        """benchmark_serving's TPOT: (e2e - TTFT) / (o - 1); None for a single output token."""
        o = self.request.output_tokens
        return (self.last_token_s - self.first_token_s) / (o - 1) if o > 1 else None


def draw_requests(
    n: int,
    *,
    rate_per_s: float,
    prompts: list[tuple[float, float]],
    outputs: list[tuple[float, float]],
    seed: int = SEED,
) -> list[Request]:
    """`n` requests of a Poisson run at `rate_per_s`, lengths drawn from (length, probability) pairs."""
    rng = random.Random(seed)
    t, out = 0.0, []
    px, pw = zip(*prompts)
    ox, ow = zip(*outputs)
    for _ in range(n):
        t += rng.expovariate(rate_per_s)
        x = rng.choices(px, pw)[0]
        o = rng.choices(ox, ow)[0]
        out.append(Request(t, max(1, round(x)), max(1, round(o))))
    return out


def serve(requests: list[Request], costs: StepCosts) -> list[Served]:
    """Each request's first and last token times as vLLM V0's default scheduler runs them on one replica: a call
    that finds prompts waiting (and a free slot) prefills them in one step; only a call that admits none runs a
    burst of N decode steps of every running sequence; with nothing to do the engine waits for the next arrival."""
    pending = deque(sorted(requests, key=lambda r: r.arrival_s))
    waiting: deque[Request] = deque()
    running: list[list] = []  # [tokens still to come, request, first token time]
    done: list[Served] = []
    t = 0.0
    while pending or waiting or running:
        while pending and pending[0].arrival_s <= t:
            waiting.append(pending.popleft())
        if waiting and len(running) < costs.slots:
            t = _prefill(t, waiting, running, done, costs)
        elif running:
            t = _burst(t, running, done, costs)
        else:
            t = pending[0].arrival_s
    return done


def _prefill(t: float, waiting: deque[Request], running: list[list], done: list[Served], costs: StepCosts) -> float:
    """One prefill-only step of the waiting prompts that fit the budget and the slots (at least one)."""
    batch: list[Request] = []
    tokens = 0
    while waiting and len(running) + len(batch) < costs.slots:
        x = waiting[0].prompt_tokens
        if batch and tokens + x > costs.budget_tokens:
            break
        batch.append(waiting.popleft())
        tokens += x
    t += costs.prefill_s(tokens)
    for r in batch:  # the prefill step gives each its first token
        if r.output_tokens > 1:
            running.append([r.output_tokens - 1, r, t])
        else:
            done.append(Served(r, t, t))
    return t


def _burst(t: float, running: list[list], done: list[Served], costs: StepCosts) -> float:
    """N decode steps of every running sequence (fewer when all finish sooner); finished sequences leave."""
    step_s = costs.decode_s(len(running))
    steps = min(costs.steps, max(s[0] for s in running))
    keep = []
    for s in running:
        if s[0] <= steps:
            done.append(Served(s[1], s[2], t + s[0] * step_s))
        else:
            s[0] -= steps
            keep.append(s)
    running[:] = keep
    return t + steps * step_s


def statistic(values: list[float], *, median: bool) -> float:
    return statistics.median(values) if median else statistics.fmean(values)


def run_statistics(served: list[Served], *, median: bool) -> tuple[float, float]:
    """(TPOT s, TTFT s) over the run's requests in the benchmark's statistic (TPOT over requests of o > 1)."""
    tpots = [v for s in served if (v := s.tpot_s) is not None]
    ttfts = [s.ttft_s for s in served]
    return (statistic(tpots, median=median) if tpots else 0.0), statistic(ttfts, median=median)
