"""An offline (maximum-throughput) run: `n` prompts sent at once, as `bench_serving` with no rate limit runs them.

The engine admits at most `slots` sequences (its KV cache and batch limit), prefills each admitted prompt, and
decodes every running sequence one token per step; a sequence leaves when its output is done and the next prompt
in line takes its slot. The run's output tokens/s is the total output over the makespan: the ramp-up (the first
`slots` prompts' prefill before the slots fill), the steady middle, and the tail, where the last sequences decode
in ever smaller (cheaper but less productive) steps until the longest is done. A steady-state formula (Little's law
at `slots` sequences) has neither end: it prices a 1,000-prompt burst of 4-token outputs as if every prompt got
its first token at the wave's mean TTFT instead of the last one's, and a ShareGPT run as if no request outlived
the mean.

The step is linear in the sequences it decodes, `step_s(b) = fixed_s + per_sequence_s x b` (weights and host time
once a step; KV reads and the matmuls' rows per sequence), and each admitted prompt adds its prefill time
(`prefill_s`) to the clock (its chunks share steps with the decode, and a compute-bound chunk adds its own time).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

from planner.plan import Prediction

#: The golden ratio's fractional part: request k of a run gets output quantile frac(k x this), a low-discrepancy
#: sequence, so that any stretch of consecutive requests holds short and long outputs as a random sample would.
_GOLDEN = (math.sqrt(5) - 1) / 2


@dataclass(frozen=True)
class Step:
    """A decode step's time as a line in the sequences it decodes, and one prompt's prefill time."""

    fixed_s: float
    per_sequence_s: float
    prefill_s: float

    def time_s(self, sequences: int) -> float:
        return self.fixed_s + self.per_sequence_s * sequences


def run_lengths(n: int, lengths: Sequence[float], weights: Sequence[float]) -> list[int]:
    """Output lengths of a run of `n` requests in arrival order, drawn from the distribution (`lengths` with
    probabilities `weights`; one length for a fixed one): request k gets the quantile at frac((k + 1) x golden
    ratio), a low-discrepancy sequence."""
    pairs = sorted(zip(lengths, weights))
    cumulative = list(itertools.accumulate(w for _, w in pairs))
    top = cumulative[-1]
    out = []
    for k in range(n):
        q = math.fmod((k + 1) * _GOLDEN, 1.0) * top
        i = min(bisect.bisect_left(cumulative, q), len(pairs) - 1)
        out.append(max(1, round(pairs[i][0])))
    return out


def makespan_s(lengths: Sequence[int], *, slots: int, step: Step) -> float:
    """Seconds from the burst to the last token: requests start in order as slots free, every running sequence
    gains one token per step. Between two departures the batch is constant, so the clock advances by whole runs
    of steps (an event per departure, not per step)."""
    slots = max(1, slots)
    pending = iter(lengths)
    running: list[int] = []  # token clock at which each running sequence is done
    clock, elapsed_s = 0, 0.0
    for length in pending:
        heapq.heappush(running, clock + length)
        elapsed_s += step.prefill_s
        if len(running) == slots:
            break
    while running:
        done = running[0]
        elapsed_s += (done - clock) * step.time_s(len(running))
        clock = done
        while running and running[0] == clock:
            heapq.heappop(running)
            nxt = next(pending, None)
            if nxt is not None:
                heapq.heappush(running, clock + nxt)
                elapsed_s += step.prefill_s
    return elapsed_s


def tokens_per_s(
    lengths: Sequence[int], *, slots: int, step: Step, replicas: int = 1, overhead_s: float = 0.0
) -> float:
    """Output tokens/s of the run over `replicas` replicas, each running its share of the prompts (`overhead_s`:
    the first request's fixed time before its prefill starts)."""
    share = [lengths[k] for k in range(0, len(lengths), max(1, replicas))]
    span = overhead_s + makespan_s(share, slots=math.ceil(slots / max(1, replicas)), step=step)
    return sum(share) * max(1, replicas) / span if span > 0 else 0.0


def step_of(static: Prediction, *, per_replica: int, request_overhead_s: float) -> Step:
    """The run's step line from the engine's static batch of `per_replica` sequences (decode steps alone, and the
    batch's prompts prefilled at once): once a step its weights, collectives and host time; per sequence the rest
    of the decode step; per prompt the prefill time over the batch's prompts."""
    parts = static.time_breakdown_ms
    fixed_s = (parts.get("weights", 0.0) + parts.get("interconnect", 0.0) + parts.get("overhead", 0.0)) / 1e3
    fixed_s = min(fixed_s, static.tpot_ms / 1e3)
    per_sequence_s = (static.tpot_ms / 1e3 - fixed_s) / max(1, per_replica)
    prefill_s = max(0.0, static.ttft_ms / 1e3 - request_overhead_s) / max(1, per_replica)
    return Step(fixed_s, per_sequence_s, prefill_s)
