"""The queues of an open loop, and the distributions of TTFT and TPOT they and the lengths cause.

- **Prefill slot** (M/G/1): newcomers' prompts share the steps' token budget. The serving model
  (planner.cost.serving) prices the wait as M/D/1 at the prefill utilisation rho: rho / (2 (1 - rho)) chunk times.
  Prompts of varying length make the service time vary; Pollaczek-Khinchine scales the M/D/1 wait by
  (1 + cv^2), cv the coefficient of variation of the prefill time (of the prompt length: chunks are linear in it).
  Its distribution: a request waits with probability rho, and then an exponential time of mean W / rho (the usual
  heavy-traffic approximation of an M/G/1 wait).
- **Admission** (M/G/c, Erlang C): the engine runs at most `slots` sequences (its KV cache, its batch limit); a
  request finding them all busy waits, with probability C(slots, a), an exponential time of mean S / (slots - a),
  where a = rate x S is the offered load in sequences and S a sequence's time running.
- **TPOT of one request**: its osl - 1 inter-token gaps are decode-only steps, or, with probability f each
  (the share of steps carrying a prompt chunk), the longer mixed steps: the mean gap is normal around the TPOT with
  standard deviation delta x sqrt(f (1 - f) / (osl - 1)), delta the extra time of a mixed step.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

#: Percentiles a prediction reports (besides the mean).
PERCENTILES = (50, 90, 99)
#: Bisection steps of a quantile: the bracket shrinks 2^-40 (far below a microsecond for any TTFT).
BISECTION_STEPS = 40


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with `servers` and `offered` = rate x service time
    (1 when offered >= servers). Erlang B by its recursion, then C = B / (1 - rho (1 - B))."""
    if offered <= 0:
        return 0.0
    if offered >= servers:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):
        b = offered * b / (k + offered * b)
    rho = offered / servers
    return b / (1 - rho * (1 - b))


def admission_wait(*, slots: int, rate_per_s: float, service_s: float) -> tuple[float, float]:
    """(probability of waiting, mean wait of those who wait, s) for `slots` sequences each held `service_s`."""
    offered = rate_per_s * service_s
    if slots < 1 or offered >= slots:
        return 1.0, math.inf
    return erlang_c(slots, offered), service_s / (slots - offered)


def _exp_atom_cdf(x: float, p: float, mean_s: float) -> float:
    """P(W <= x) for W = 0 with probability 1 - p, else exponential of mean `mean_s`."""
    if x < 0:
        return 0.0
    if p <= 0 or mean_s <= 0:
        return 1.0
    return 1 - p * math.exp(-x / mean_s)


def wait_sum_cdf(x: float, waits: tuple[tuple[float, float], tuple[float, float]]) -> float:
    """P(W1 + W2 <= x) for two independent atom-plus-exponential waits given as (probability, mean)."""
    (p1, m1), (p2, m2) = waits
    if x < 0:
        return 0.0
    if p1 <= 0 or m1 <= 0:
        return _exp_atom_cdf(x, p2, m2)
    if p2 <= 0 or m2 <= 0:
        return _exp_atom_cdf(x, p1, m1)
    e1, e2 = 1 - math.exp(-x / m1), 1 - math.exp(-x / m2)
    if abs(m1 - m2) < 1e-12 * max(m1, m2):
        both = 1 - math.exp(-x / m1) * (1 + x / m1)  # Erlang-2
    else:
        both = 1 - (m1 * math.exp(-x / m1) - m2 * math.exp(-x / m2)) / (m1 - m2)  # hypoexponential
    return (1 - p1) * (1 - p2) + p1 * (1 - p2) * e1 + (1 - p1) * p2 * e2 + p1 * p2 * both


def quantile(cdf: Callable[[float], float], q: float, *, low: float, high: float) -> float:
    """The x in [low, high] where a non-decreasing `cdf` reaches q, by bisection (high grown until it does)."""
    for _ in range(60):
        if cdf(high) >= q:
            break
        high = high * 2 + 1e-9
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        if cdf(mid) >= q:
            high = mid
        else:
            low = mid
    return high


def ttft_quantiles(
    bases_s: Sequence[tuple[float, float]], waits: tuple[tuple[float, float], tuple[float, float]], qs: Sequence[float]
) -> list[float]:
    """Quantiles of TTFT = base + W1 + W2: `bases_s` (time without waiting, probability) over the prompt lengths."""

    def cdf(t: float) -> float:
        return sum(w * wait_sum_cdf(t - base, waits) for base, w in bases_s)

    low = min(b for b, _ in bases_s)
    spread = sum(p * m for p, m in waits if math.isfinite(m)) * 10 + 1e-6
    return [quantile(cdf, q, low=low, high=max(b for b, _ in bases_s) + spread) for q in qs]


def normal_mixture_quantiles(parts: Sequence[tuple[float, float, float]], qs: Sequence[float]) -> list[float]:
    """Quantiles of a mixture of normals given as (mean, standard deviation, weight)."""

    def cdf(x: float) -> float:
        return sum(
            w * (0.5 * (1 + math.erf((x - m) / (s * math.sqrt(2)))) if s > 0 else float(x >= m)) for m, s, w in parts
        )

    low = min(m - 8 * s for m, s, _ in parts)
    high = max(m + 8 * s for m, s, _ in parts) + 1e-12
    return [quantile(cdf, q, low=low, high=high) for q in qs]
