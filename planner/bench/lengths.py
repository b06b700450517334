"""Prompt and answer lengths for `planner bench --request-rate`: a fixed value, `uniform:A-B` or
`lognormal:MEAN,SIGMA`, sampled per request from a seeded generator.

A stand-in with the traffic package's grammar (issue 25, item 2): `parse_lengths` and `LengthDist` are the two
names bench uses, so that planner/traffic's parser can replace this module once it lands. `lognormal:MEAN,SIGMA`
is given by the mean of the lengths in tokens (not the median) and the standard deviation of their logarithm:
mu = ln(MEAN) - SIGMA^2 / 2, so that the lengths' mean is MEAN. Samples are rounded to whole tokens and kept
within [low, high] (at least 1 token, and inside the model's context).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Literal

from planner.errors import InputError

#: The longest length any form may ask for: the workload cap on isl/osl (planner/plan.py).
MAX_LENGTH = 1 << 20
_NUMBER = r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
_UNIFORM = re.compile(r"uniform:(\d+)-(\d+)")
_LOGNORMAL = re.compile(rf"lognormal:{_NUMBER},{_NUMBER}")


@dataclass(frozen=True)
class LengthDist:
    """One length distribution, as given (`text`)."""

    text: str
    kind: Literal["fixed", "uniform", "lognormal"]
    a: float  # fixed: the value; uniform: the lowest; lognormal: the mean in tokens
    b: float  # uniform: the highest; lognormal: sigma of ln(length); fixed: the value

    @property
    def mean(self) -> float:
        """The distribution's mean before rounding and clipping (tokens)."""
        return (self.a + self.b) / 2 if self.kind == "uniform" else self.a

    @property
    def fixed(self) -> bool:
        return self.kind == "fixed"

    def sample(self, rng: random.Random, *, low: int = 1, high: int = MAX_LENGTH) -> int:
        """One length, rounded and kept within [low, high]."""
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.randint(int(self.a), int(self.b))
        else:
            value = rng.lognormvariate(math.log(self.a) - self.b**2 / 2, self.b)
        return int(min(high, max(low, round(value))))


def parse_lengths(text: str, flag: str) -> LengthDist:
    """A length distribution from the command line; one line naming `flag` when it is not one."""
    spec = text.strip().lower()
    if spec.isdigit():
        return _checked(LengthDist(text, "fixed", float(spec), float(spec)), flag)
    if m := _UNIFORM.fullmatch(spec):
        return _checked(LengthDist(text, "uniform", float(m[1]), float(m[2])), flag)
    if m := _LOGNORMAL.fullmatch(spec):
        return _checked(LengthDist(text, "lognormal", float(m[1]), float(m[2])), flag)
    raise InputError(f"{flag}: '{text[:80]}' is not a length: give a number of tokens, uniform:A-B (whole tokens, "
                     "A <= B) or lognormal:MEAN,SIGMA (mean tokens, sigma of the log)")


def _checked(d: LengthDist, flag: str) -> LengthDist:
    if d.kind == "uniform" and not 1 <= d.a <= d.b <= MAX_LENGTH:
        raise InputError(f"{flag}: uniform:A-B needs 1 <= A <= B <= {MAX_LENGTH:,}, got '{d.text[:80]}'")
    if d.kind == "lognormal" and not (1 <= d.a <= MAX_LENGTH and 0 <= d.b <= 3):
        raise InputError(f"{flag}: lognormal:MEAN,SIGMA needs a MEAN from 1 to {MAX_LENGTH:,} tokens and a SIGMA "
                         f"from 0 to 3, got '{d.text[:80]}'")
    if d.kind == "fixed" and not 0 <= d.a <= MAX_LENGTH:
        raise InputError(f"{flag}: at most {MAX_LENGTH:,} tokens, got '{d.text[:80]}'")
    return d
