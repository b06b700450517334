"""An arrival trace (`--arrivals FILE`): requests as they came, read into a rate, length distributions and burstiness.

A trace is JSON Lines, one request a line, in one of two spellings:
- planner's: `{"timestamp_s": 0.42, "prompt_tokens": 1830, "output_tokens": 212}` (seconds from any origin);
- Mooncake's published traces (kvcache-ai/Mooncake, FAST'25): `{"timestamp": 27482, "input_length": 6955,
  "output_length": 52, "hash_ids": [46, 47, ...]}`, the timestamp in milliseconds and `hash_ids` the prompt's
  512-token blocks by content.

What the open-loop model takes from it (`Trace`):
- the request rate, (n - 1) arrivals over the span from the first to the last;
- the prompt and output lengths, each as a histogram of the lengths seen (every cost that depends on a length is a
  sum over it: planner.traffic.lengths);
- the burstiness of the arrivals, the squared coefficient of variation of the gaps between them (1 for Poisson):
  the queues scale their waits by it (Kingman's G/G/1 approximation, planner.traffic.steady);
- where blocks are given, prefix reuse: a request's leading blocks already seen earlier in the trace are what a
  prefix cache large enough to keep everything could skip. `prefix_hit` is the share of requests that reuse at least
  one block, `prefix_tokens` the mean reused tokens of those (an upper bound: the engine's cache evicts).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from planner.traffic.lengths import MAX_LENGTH, DistError, LengthDist

#: Tokens per block of Mooncake's `hash_ids` (its trace README: one id per 512-token block of the prompt).
MOONCAKE_BLOCK_TOKENS = 512
#: Most requests a trace may hold (a day of a busy service at ~100 requests/s).
MAX_REQUESTS = 10_000_000


@dataclass(frozen=True)
class Arrival:
    """One request of a trace."""

    time_s: float
    prompt_tokens: int
    output_tokens: int
    blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class Trace:
    """What a trace says about traffic."""

    path: str
    requests: int
    span_s: float
    rate_per_s: float
    gap_cv2: float  # squared coefficient of variation of inter-arrival gaps (1: Poisson, 0: evenly spaced)
    isl: LengthDist
    osl: LengthDist
    prefix_tokens: int  # mean leading tokens a hit request shares with earlier ones (0: no blocks given)
    prefix_hit: float  # share of requests reusing at least one leading block


def _int_field(row: dict, names: tuple[str, ...], *, where: str) -> int:
    for name in names:
        if name in row:
            value = row[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LENGTH:
                raise DistError(f"{where}: {name} must be a whole number of tokens in 1 to {MAX_LENGTH:,}")
            return value
    raise DistError(f"{where}: give {' or '.join(names)}")


def _time_s(row: dict, *, where: str) -> float:
    if "timestamp_s" in row:
        name, scale = "timestamp_s", 1.0
    elif "timestamp" in row and "input_length" in row:  # Mooncake's spelling: milliseconds
        name, scale = "timestamp", 1e-3
    else:
        raise DistError(f"{where}: give timestamp_s (seconds), or Mooncake's timestamp (ms) with input_length")
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e15:
        raise DistError(f"{where}: {name} must be a non-negative number")
    return float(value) * scale


def _blocks(row: dict, *, where: str) -> tuple[int, ...]:
    ids = row.get("hash_ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise DistError(f"{where}: hash_ids must be a list of whole numbers")
    return tuple(ids)


def parse_line(text: str, *, where: str) -> Arrival:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DistError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise DistError(f"{where}: each line must be a JSON object")
    return Arrival(
        time_s=_time_s(row, where=where),
        prompt_tokens=_int_field(row, ("prompt_tokens", "input_length"), where=where),
        output_tokens=_int_field(row, ("output_tokens", "output_length"), where=where),
        blocks=_blocks(row, where=where),
    )


def read_arrivals(path: str | Path) -> list[Arrival]:
    """Every request of a JSON Lines trace, in arrival order; one line naming the file and line when one is bad."""
    p = Path(path).expanduser()
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DistError(f"--arrivals {p}: cannot read it ({exc.__class__.__name__})") from None
    out = [parse_line(t, where=f"{p}:{i}") for i, t in enumerate(lines, start=1) if t.strip()]
    if len(out) > MAX_REQUESTS:
        raise DistError(f"--arrivals {p}: {len(out):,} requests, more than {MAX_REQUESTS:,}")
    return sorted(out, key=lambda a: a.time_s)


def lengths_seen(values: list[int], *, spec: str) -> LengthDist:
    """The histogram of lengths a trace holds (each distinct length with its share)."""
    counts: dict[int, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    xs = sorted(counts)
    n = len(values)
    return LengthDist(spec=spec, kind="histogram", lengths=[float(x) for x in xs], weights=[counts[x] / n for x in xs])


def reused_tokens(arrivals: list[Arrival], *, block_tokens: int = MOONCAKE_BLOCK_TOKENS) -> list[int]:
    """Per request, the tokens of its leading blocks that earlier requests of the trace already had (a prefix cache
    matches a chain from the first block; the prompt's last, partial block is never shared whole)."""
    seen: set[tuple[int, ...]] = set()
    out = []
    for a in arrivals:
        shared = 0
        for k in range(1, len(a.blocks) + 1):
            if a.blocks[:k] in seen:
                shared = k
            else:
                break
        for k in range(1, len(a.blocks) + 1):
            seen.add(a.blocks[:k])
        out.append(min(shared * block_tokens, max(0, a.prompt_tokens - 1)))
    return out


def trace(path: str | Path) -> Trace:
    """A trace file read into the figures the open-loop model takes."""
    arrivals = read_arrivals(path)
    if len(arrivals) < 2:
        raise DistError(f"--arrivals {path}: give at least two requests (a rate needs a span)")
    times = [a.time_s for a in arrivals]
    span_s = times[-1] - times[0]
    if span_s <= 0:
        raise DistError(f"--arrivals {path}: every request has the same timestamp; a rate needs a span")
    gaps = [b - a for a, b in zip(times, times[1:])]
    mean_gap = statistics.fmean(gaps)
    cv2 = statistics.pvariance(gaps) / (mean_gap * mean_gap)
    reused = reused_tokens(arrivals)
    hits = [r for r in reused if r > 0]
    return Trace(
        path=str(path),
        requests=len(arrivals),
        span_s=span_s,
        rate_per_s=(len(arrivals) - 1) / span_s,
        gap_cv2=cv2,
        isl=lengths_seen([a.prompt_tokens for a in arrivals], spec=f"{path} (prompts)"),
        osl=lengths_seen([a.output_tokens for a in arrivals], spec=f"{path} (outputs)"),
        prefix_tokens=round(statistics.fmean(hits)) if hits else 0,
        prefix_hit=len(hits) / len(arrivals),
    )
