"""Chunked prefill at low load: a prompt's chunks come as whole steps, not spread over every step.

Arrivals at rate lambda bring prompts of `isl` tokens; with `decode` sequences running, a step has room for
B' = B - decode prompt tokens, so a prompt is prefilled in ceil(isl / B') chunk steps: full ones of t_c(B') and a
last one of the remainder. Chunk steps come at k = lambda x ceil(isl / B') per second and take lambda x T_p of
each second (T_p the prompt's chunk steps together); the engine runs decode-only steps of t_d in the rest. A
running sequence gains one token a step, so it sees k + (1 - lambda T_p) / t_d steps a second and

    TPOT = 1 / (k + (1 - lambda T_p) / t_d)

(the mean per token). A request of o output tokens runs o - 1 steps after its first token, and those start as its
own prompt's chunks end: a departure from the chunk slot, an M/D/1 queue of prompts served in T_p. A departure
leaves behind on average L = rho + rho^2 / (2 (1 - rho)) prompts (rho = lambda T_p; the departure-epoch count is
the time-average number in the system, Pollaczek-Khinchine), whose chunks run next, one per step; after them chunk
steps come at k a second over the request's span, (o - 1) x TPOT above. Its o - 1 steps hold

    c = min(o - 1, L x chunks + k (o - 1) TPOT)

chunk steps of T_p / chunks each, the rest decode steps: its TPOT is t_d + c (T_p / chunks - t_d) / (o - 1). For
long outputs c / (o - 1) -> k TPOT, the per-token mean above. As lambda T_p nears 1 every step carries a chunk and
TPOT nears t_c(B'), the closed serving model's full-chunk step: past that the prompts queue and that model holds.
TTFT stays the serving model's (a chunk-slot M/D/1 wait made the open-loop rows' median worse: docs/traffic.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkSteps:
    """One prompt's chunk steps with `decode` sequences running: their count and their time together."""

    count: int
    prefill_s: float  # T_p: the chunk steps' time together


def chunk_sizes(prompt_tokens: float, room_tokens: float) -> list[float]:
    """The chunks a prompt of `prompt_tokens` is prefilled in with `room_tokens` per step: full ones, then the rest."""
    if room_tokens < 1:
        raise ValueError("a step needs room for at least one prompt token")
    count = max(1, math.ceil(prompt_tokens / room_tokens))
    return [room_tokens] * (count - 1) + [prompt_tokens - room_tokens * (count - 1)]


def granular_tpot_s(rate_per_s: float, steps: ChunkSteps, *, decode_step_s: float) -> float | None:
    """TPOT = 1 / (k + (1 - lambda T_p) / t_d), k = lambda x chunks; None where chunk steps fill every second
    (lambda T_p >= 1: prompts queue, the closed serving model's full chunks hold)."""
    busy = rate_per_s * steps.prefill_s
    if busy >= 1:
        return None
    return 1.0 / (rate_per_s * steps.count + (1 - busy) / decode_step_s)


def request_tpot_s(rate_per_s: float, steps: ChunkSteps, *, decode_step_s: float, output_tokens: float) -> float | None:
    """A request's mean TPOT over its o - 1 steps: the chunks of the prompts its own prompt leaves queued, then
    chunk steps at k a second over its span (module docstring); None where chunk steps fill every second."""
    per_token_s = granular_tpot_s(rate_per_s, steps, decode_step_s=decode_step_s)
    if per_token_s is None:
        return None
    intervals = output_tokens - 1
    if intervals <= 0:
        return per_token_s
    rho = rate_per_s * steps.prefill_s
    left_behind = rho + rho**2 / (2 * (1 - rho))
    chunk_steps = min(intervals, left_behind * steps.count + rate_per_s * steps.count * intervals * per_token_s)
    extra_s = max(0.0, steps.prefill_s / steps.count - decode_step_s)
    return decode_step_s + chunk_steps * extra_s / intervals
