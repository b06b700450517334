"""Length distributions of prompts and outputs: a fixed value, `uniform:A-B`, `lognormal:MEAN,SIGMA` or a histogram.

A `LengthDist` is a set of (length, weight) points, so that every moment the cost model needs is a sum: the mean
(what `Workload.isl` and `Workload.osl` keep, rounded), E[x^2] (prefill attention is quadratic in a prompt's
length; a decode step sees sequences weighted by how long they decode), and quantiles (percentiles of TTFT and
TPOT). Continuous shapes are discretised at `POINTS` equal-probability bands.

A histogram file is YAML: `bins:` a list of `[low, high, weight]` (tokens, tokens, any non-negative weight) and a
`source:` saying where the counts came from, or `prompt: {bins: ...}` and `output: {bins: ...}` (--isl reads the
first, --osl the second). The shipped ones live in planner/traffic/data/ (made by scripts/length_histograms.py
from ShareGPT): chat-sharegpt (first turns, as serving benchmarks sample them) and history-sharegpt (every turn
with its whole conversation before it as the prompt).
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from planner.files import load_yaml

#: Equal-probability bands a continuous distribution is discretised at.
POINTS = 128
#: The shipped histograms, by the name `--isl` and `--osl` accept.
DATA_DIR = Path(__file__).resolve().parent / "data"
MAX_LENGTH = 10_000_000

_UNIFORM = re.compile(r"^uniform:(\d+)-(\d+)$")
_LOGNORMAL = re.compile(r"^lognormal:([\d.]+),([\d.]+)$")


class DistError(ValueError):
    """A length specification that cannot be read: the message names what was wrong."""


class LengthDist(BaseModel):
    """A discrete distribution of token lengths: `lengths[i]` with probability `weights[i]` (summing to 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    spec: str = Field(description="as given: 1024, uniform:A-B, lognormal:MEAN,SIGMA, or a histogram file")
    kind: Literal["fixed", "uniform", "lognormal", "histogram"]
    lengths: list[float]
    weights: list[float]
    source: str = ""

    @property
    def mean(self) -> float:
        return sum(x * w for x, w in zip(self.lengths, self.weights))

    @property
    def second_moment(self) -> float:
        """E[x^2]."""
        return sum(x * x * w for x, w in zip(self.lengths, self.weights))

    @property
    def cv2(self) -> float:
        """Squared coefficient of variation, Var[x] / E[x]^2 (0 for a fixed length)."""
        m = self.mean
        return max(0.0, self.second_moment / (m * m) - 1.0) if m > 0 else 0.0

    def quantile(self, q: float) -> float:
        """The smallest length whose cumulative probability reaches q (0 < q <= 1)."""
        total = 0.0
        for x, w in sorted(zip(self.lengths, self.weights)):
            total += w
            if total >= q - 1e-12:
                return x
        return max(self.lengths)

    def scaled_to(self, mean_tokens: float) -> LengthDist:
        """The same shape with every length scaled so that the mean is `mean_tokens` (a shipped histogram fitted to a
        benchmark's own mean), no length below one token."""
        scale = mean_tokens / self.mean
        return LengthDist(
            spec=f"{self.spec} x {scale:.3f}",
            kind="histogram",
            weights=self.weights,
            lengths=[max(1.0, x * scale) for x in self.lengths],
            source=self.source,
        )

    @property
    def mean_tokens(self) -> int:
        """The mean, rounded to whole tokens (at least 1): Workload.isl / osl."""
        return max(1, round(self.mean))

    def sample(self, rng: random.Random, *, low: int = 1, high: int = MAX_LENGTH) -> int:
        """One length drawn with `rng` (as `planner bench --request-rate` sends them), rounded to whole tokens and
        kept within [low, high]. uniform:A-B and lognormal:MEAN,SIGMA are drawn from their continuous shapes (read
        back from `spec`, not from the bands the moments use); a histogram from its bins' midpoints by weight; a
        fixed length draws nothing from `rng`."""
        uniform = _UNIFORM.match(self.spec.strip()) if self.kind == "uniform" else None
        lognormal = _LOGNORMAL.match(self.spec.strip()) if self.kind == "lognormal" else None
        value: float
        if uniform:
            value = rng.randint(int(uniform[1]), int(uniform[2]))
        elif lognormal:
            mean, sigma = float(lognormal[1]), float(lognormal[2])
            value = rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)
        elif len(self.lengths) == 1:
            value = self.lengths[0]
        else:
            value = rng.choices(self.lengths, weights=self.weights)[0]
        return int(min(high, max(low, round(value))))


def fixed(n: int) -> LengthDist:
    return LengthDist(spec=str(n), kind="fixed", lengths=[float(n)], weights=[1.0])


def parse_length(spec: str, *, what: str) -> LengthDist:
    """A distribution from its command-line spelling (`what` names the option in messages)."""
    text = spec.strip()
    if text.isdigit():
        n = int(text)
        if not 1 <= n <= MAX_LENGTH:
            raise DistError(f"{what} {n} is out of range (1 to {MAX_LENGTH:,} tokens)")
        return fixed(n)
    if m := _UNIFORM.match(text):
        low, high = int(m.group(1)), int(m.group(2))
        if not 1 <= low <= high <= MAX_LENGTH:
            raise DistError(f"{what} {text}: need 1 <= A <= B <= {MAX_LENGTH:,}")
        return _uniform(text, low, high)
    if m := _LOGNORMAL.match(text):
        return _lognormal(text, float(m.group(1)), float(m.group(2)), what)
    path = Path(text).expanduser()
    if not path.suffix and (DATA_DIR / f"{text}.yaml").exists():
        path = DATA_DIR / f"{text}.yaml"
    if path.suffix in (".yaml", ".yml"):
        return histogram_file(path, what=what)
    raise DistError(
        f"{what} '{text}': give a length (1024), uniform:A-B, lognormal:MEAN,SIGMA, a histogram file "
        f"(.yaml) or a shipped histogram ({', '.join(shipped())})"
    )


def shipped() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.yaml"))


def _uniform(spec: str, low: int, high: int) -> LengthDist:
    n = high - low + 1
    if n <= POINTS:
        xs = [float(low + i) for i in range(n)]
    else:
        xs = [low + (i + 0.5) * (n - 1) / POINTS for i in range(POINTS)]
    return LengthDist(spec=spec, kind="uniform", lengths=xs, weights=[1.0 / len(xs)] * len(xs))


def _lognormal(spec: str, mean: float, sigma: float, what: str) -> LengthDist:
    """A lognormal with this mean (tokens) and log-space sigma at POINTS equal-probability bands, each at its
    conditional mean (so the mean is exact; E[x^2] misses only the spread inside the bands, about 5% at sigma 1),
    clipped to [1, MAX_LENGTH]."""
    if not 1 <= mean <= MAX_LENGTH or not 0 <= sigma <= 3:
        raise DistError(f"{what} {spec}: need MEAN in 1 to {MAX_LENGTH:,} tokens and SIGMA in 0 to 3")
    unit = NormalDist()
    edges = [-math.inf] + [unit.inv_cdf(i / POINTS) for i in range(1, POINTS)] + [math.inf]

    def cdf(z: float) -> float:
        return 0.0 if z == -math.inf else 1.0 if z == math.inf else unit.cdf(z)

    # E[X | z in (a, b)] = E[X] (Phi(b - sigma) - Phi(a - sigma)) / (Phi(b) - Phi(a)), the band's probability 1/POINTS
    xs = [mean * (cdf(b - sigma) - cdf(a - sigma)) * POINTS for a, b in zip(edges, edges[1:])]
    xs = [min(MAX_LENGTH, max(1.0, x)) for x in xs]
    return LengthDist(spec=spec, kind="lognormal", lengths=xs, weights=[1.0 / POINTS] * POINTS)


def histogram_file(path: Path, *, what: str) -> LengthDist:
    """A histogram from YAML (`bins: [[low, high, weight], ...]`, `source: ...`); each bin is its midpoint."""
    raw = load_yaml(path, f"the {what} histogram")
    part = "output" if what == "--osl" else "prompt"  # a file may hold both: `prompt: {bins}`, `output: {bins}`
    if isinstance(raw, dict) and isinstance(raw.get(part), dict):
        raw = {**raw, **raw[part]}
    bins = raw.get("bins") if isinstance(raw, dict) else None
    if not isinstance(bins, list) or not bins:
        raise DistError(f"{path}: bins: give a list of [low, high, weight]")
    xs, ws = [], []
    for i, b in enumerate(bins):
        ok = isinstance(b, list) and len(b) == 3 and all(isinstance(v, (int, float)) for v in b)
        if not ok or not 1 <= b[0] <= b[1] <= MAX_LENGTH or b[2] < 0:
            raise DistError(f"{path}: bins[{i}]: need [low, high, weight] with 1 <= low <= high and weight >= 0")
        xs.append((b[0] + b[1]) / 2)
        ws.append(float(b[2]))
    total = sum(ws)
    if total <= 0:
        raise DistError(f"{path}: bins: the weights sum to 0")
    return LengthDist(
        spec=str(path), kind="histogram", lengths=xs, weights=[w / total for w in ws], source=str(raw.get("source", ""))
    )
