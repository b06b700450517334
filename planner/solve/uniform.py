"""KV capacity without CP-SAT where every stage configuration holds the same bytes (a regular cluster's shape).

When every configuration a shape offers has the same per-GPU weights and KV per layer, the same extras and
the same usable memory (one GPU type, one layout: the pools of identical nodes), which GPUs a stage takes
does not change what it holds; only the layer boundaries do. Then the most sequences a replica holds is
found exactly: for a number of sequences q per rank, stages filled left to right as far as memory allows
reach furthest for each count of stages (a stage's bytes only grow with its range), so q fits in PP stages
iff for some t <= PP the layers left after t - 1 greedy stages fit the last stage with the head; and fitting
is monotone in q, so bisection finds the largest. A plan with fewer stages splits into PP non-empty ones
without using more memory on any GPU (L >= PP).
"""

from __future__ import annotations

import bisect
import itertools

from planner.solve.candidates import Config
from planner.solve.coefficients import Coefficients
from planner.solve.formulation import CAPACITY_MAX


def _placeable(configs: list[Config], pools: dict[str, list[int]], pp: int) -> bool:
    width = configs[0].size
    return all(c.pool is not None for c in configs) and sum(len(ids) // width for ids in pools.values()) >= pp


def uniform_capacity(
    configs: list[Config],
    coefs: list[Coefficients],
    pools: dict[str, list[int]],
    *,
    runs: list[tuple[int, int]],
    n_layers: int,
    pp: int,
) -> int | None:
    """The most sequences one replica holds, or None where configurations differ in what they hold."""
    keys = {
        (
            k.weight_bytes,
            k.kv_bytes,
            k.capacity_bytes,
            k.first.weight_bytes,
            k.last.weight_bytes,
            c.size,
            c.layout.dp,
            k.streaming is None,
        )
        for c, k in zip(configs, coefs)
    }
    if len(keys) != 1 or not configs or coefs[0].streaming is not None or not _placeable(configs, pools, pp):
        return None
    k, dp = coefs[0], configs[0].layout.dp
    w = [k.weight_bytes[r] for r, (lo, hi) in enumerate(runs) for _ in range(lo, hi)]
    kv = [k.kv_bytes[r] for r, (lo, hi) in enumerate(runs) for _ in range(lo, hi)]
    W, K = [0, *itertools.accumulate(w)], [0, *itertools.accumulate(kv)]
    cap, e0, e1 = k.capacity_bytes, k.first.weight_bytes, k.last.weight_bytes

    def fits(q: int) -> bool:
        held = [W[i] + q * K[i] for i in range(n_layers + 1)]  # increasing: a stage [a, b) holds held[b] - held[a]
        reach = 0
        for t in range(1, pp + 1):
            extra = e0 if t == 1 else 0
            if held[n_layers] - held[reach] + extra + e1 <= cap:
                return True  # the rest fits the last stage, head included
            if t == pp:
                return False
            # the furthest end this stage can hold, leaving the last stage at least one layer
            end = min(bisect.bisect_right(held, cap - extra + held[reach]) - 1, n_layers - 1)
            if end <= reach:
                return False
            reach = end
        return False

    if not fits(0):
        return 0
    lo, hi = 0, CAPACITY_MAX
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return min(CAPACITY_MAX, dp * lo)
