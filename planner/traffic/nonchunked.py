"""vLLM V0's default scheduler (chunked prefill off) under open-loop arrivals: prefill-only steps stall every decode.

What the engine does (vllm/core/scheduler.py, `Scheduler._schedule_default`, v0.6.x; read, not copied): each
scheduler call first admits the waiting prompts that fit the step's token budget (without chunking
`max_num_batched_tokens` defaults to max(max_model_len, 2048), so in practice all of them) and `max_num_seqs`, and runs
them as one prefill-only step; only a call that admits no prompt runs a decode step, of every running sequence.
With multi-step scheduling (`--num-scheduler-steps N`) the engine calls the scheduler once per N decode steps; a
prompt's prefill is a single step (no lookahead slots for prompts without chunking), so a newcomer waits for the
current burst of N decode steps to end, and the decodes wait for its prefill.

The model is a cycle: a burst of N decode steps of t_d (the decode-only step at the running load n) and the prefill
step of the K prompts that arrived meanwhile. In steady state the prompts prefilled per cycle match the sequences
that finish: n sequences gain N tokens a cycle and each needs osl, so K has mean k = n N / osl (Poisson). A step of K
prompts costs t_p(K) = t_p(1) + (K - 1) b (its fixed part paid once, b per further prompt), so a cycle's expected
prefill time is P = (1 - e^-k) (t_p(1) - b) + k b, and

    T = N t_d + P,    TPOT = T / N = t_d + P / N

(over its osl tokens a request spans osl / N cycles, each with one prefill stall: with N = 1 every step's arrivals
insert a prefill step). A newcomer lands at a random time in the cycle and waits for the part it lands in to end
(the residual E[L^2] / (2 E[L]) over the two parts, ((N t_d)^2 + P^2) / (2 T)), then rides its own prefill step
with the other arrivals of its cycle, t_p(1) + k b.

Assumptions: prompts arriving during a prefill step join the next cycle's (vLLM runs one more prefill step at once:
the same work, one more step's fixed part); the budget never splits a cycle's prompts; t_p comes from the cost
model's static prefill of K prompts; preemption (a full KV cache) is not modelled; TPOT is the mean over tokens
(a benchmark's mean over requests weights short outputs more: a finite run above the sustainable rate is stepped
through request by request instead, planner.traffic.prefill_run).

A finite run above the sustainable rate builds a backlog of prompts, and prefills go first: the engine prefills
1 / b prompts a second while any wait (`backlog_waits`), beside the wait for a free slot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Cycle:
    """One decode burst and the prefill step after it, at one running load (a replica's)."""

    steps: int  # N: decode steps per scheduler call
    decode_step_s: float  # t_d
    newcomers: float  # k: mean prompts prefilled per cycle
    prefill_s: float  # P: expected prefill time per cycle
    own_prefill_s: float  # the prefill step a newcomer rides in
    per_prompt_s: float  # b: what each further prompt adds to a prefill step

    @property
    def burst_s(self) -> float:
        return self.steps * self.decode_step_s

    @property
    def cycle_s(self) -> float:
        return self.burst_s + self.prefill_s

    @property
    def tpot_s(self) -> float:
        return self.cycle_s / self.steps

    @property
    def wait_s(self) -> float:
        """A newcomer's mean wait for the scheduler call that admits it (the residual of the part it lands in)."""
        return (self.burst_s**2 + self.prefill_s**2) / (2 * self.cycle_s) if self.cycle_s > 0 else 0.0

    @property
    def prefill_share(self) -> float:
        """Share of the time the engine prefills."""
        return self.prefill_s / self.cycle_s if self.cycle_s > 0 else 0.0

    @property
    def stall_share(self) -> float:
        """Share of a sequence's token gaps that hold a prefill step: one gap a cycle, when a prompt arrived."""
        return (1 - math.exp(-self.newcomers)) / self.steps


def newcomers_per_cycle(running: float, *, steps: int, osl_tokens: float) -> float:
    """k = n N / osl: prompts per cycle in steady state, as many as the sequences that finish."""
    return running * steps / osl_tokens


def cycle(
    running: float, *, steps: int, osl_tokens: float, decode_step_s: float, first_prompt_s: float, per_prompt_s: float
) -> Cycle:
    """The cycle at `running` sequences of a replica: `decode_step_s` is t_d there, `first_prompt_s` the prefill step
    of one prompt t_p(1), `per_prompt_s` what each further prompt of the step adds (b)."""
    k = newcomers_per_cycle(running, steps=steps, osl_tokens=osl_tokens)
    prefill_s = (1 - math.exp(-k)) * (first_prompt_s - per_prompt_s) + k * per_prompt_s
    return Cycle(steps, decode_step_s, k, prefill_s, first_prompt_s + k * per_prompt_s, per_prompt_s)


def backlog_waits(n: int, *, rate_per_s: float, prompts_per_s: float) -> list[float]:
    """Each request's wait for its prefill in a run of `n` arrivals at `rate_per_s` when prefills go first: the
    engine prefills `prompts_per_s` whenever prompts wait, so request i starts its prefill at (i / prompts_per_s) at
    the earliest and waits that less its arrival i / rate_per_s (a fluid queue from an empty start; zero where the
    prefills keep up)."""
    return [max(0.0, i / prompts_per_s - i / rate_per_s) for i in range(n)]
