"""Coordinate descent in log space: the one search every fit of the cost model's constants uses.

Each knob is one constant with its range. A round tries every knob multiplied and divided by the
current step, keeps the first trial that lowers the score, and moves on; a round without a gain
takes the square root of the step, and the search ends when the step falls under `min_step`.
Few constants, smooth error surfaces and scores that are sums of log errors make this enough.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Knob(Generic[T]):
    """One fitted constant: how to read it from a candidate, how to set it, and its range."""

    name: str
    get: Callable[[T], float]
    set: Callable[[T, float], T]
    low: float
    high: float


def _trial_values(knob: Knob, value: float, step: float, from_zero: bool) -> tuple[float, ...]:
    if value > 0:
        return value * step, value / step
    return (knob.high / 1000,) if from_zero else ()


def coordinate_descent(
    start: T,
    knobs: Sequence[Knob[T]],
    score: Callable[[T], float],
    *,
    step: float = 2.0,
    rounds: int = 40,
    min_step: float = 1.02,
    guard: Callable[[T], bool] = lambda c: True,
    from_zero: bool = True,
) -> T:
    """The candidate with the lowest `score` found from `start`; `guard` may veto a candidate, and a knob at
    zero restarts from a thousandth of its upper bound where `from_zero` (else it stays at zero)."""
    c, best = start, score(start)
    for _ in range(rounds):
        improved = False
        for knob in knobs:
            for value in _trial_values(knob, knob.get(c), step, from_zero):
                trial = knob.set(c, min(knob.high, max(knob.low, value)))
                if not guard(trial):
                    continue
                trial_score = score(trial)
                if trial_score < best - 1e-9:
                    c, best, improved = trial, trial_score, True
                    break
        if not improved:
            step = math.sqrt(step)
            if step < min_step:
                break
    return c


__all__ = ["Knob", "coordinate_descent"]
