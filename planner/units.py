"""Parse and format quantities with units: bytes (`80GiB`, `16KB`), bandwidth (`450GB/s`), time (`2us`).

Decimal prefixes are powers of 1000 and binary ones (`Ki`, `Mi`, `Gi`, `Ti`) powers of 1024, as
nccl-tests and vendor datasheets use them. A plain number is taken in the base unit (bytes, bytes/s,
seconds) only where the caller allows it: bandwidths and latencies in topology files must carry a unit.

Every quantity has a physical range (`RANGES`), checked where it enters: a value outside it is a typo
or a unit slip, never a machine. The ranges also bound the solver's integer scaling (nanoseconds and
bytes in int64), see docs/solver.md.
"""

from __future__ import annotations

import math
import re

from planner.errors import InputError

_DECIMAL = {"": 1, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_BYTES_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|[kKMGTP])?(?P<unit>B)?$")
_BW_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|[kKMGTP])?(?P<unit>B/s|b/s|bps|Bps)$")
_TIME_RE = re.compile(_NUMBER + r"\s*(?P<unit>s|ms|us|µs|ns)$")
_FLOPS_RE = re.compile(_NUMBER + r"\s*(?P<prefix>[kKMGTP])?(?:FLOPS|FLOP/s|flops)?$")
_MAX_TEXT = 64

#: Physical ranges, inclusive: (low, high, unit shown in messages).
RANGES: dict[str, tuple[float, float, str]] = {
    "bandwidth": (1e6, 1e14, "1MB/s to 100TB/s"),
    "latency": (0.0, 1.0, "0 to 1s"),
    "memory": (1e6, 1e14, "1MB to 100TB"),
    "flops": (1e9, 1e18, "1GFLOPS to 1EFLOPS"),
    "size": (0, 2**40, "0 to 1TiB"),
}


def in_range(kind: str, value: float, text: object) -> float:
    """`value` if it lies in the physical range of `kind`, else a ValueError naming the range."""
    low, high, shown = RANGES[kind]
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{kind} {text!r} is outside the physical range {shown}")
    return value


def _prefix_factor(prefix: str | None) -> float:
    prefix = prefix or ""
    return _BINARY[prefix] if prefix in _BINARY else _DECIMAL[prefix]


def _text(value: object) -> str:
    text = str(value).strip()
    if len(text) > _MAX_TEXT:
        raise ValueError(f"cannot read a {len(text)}-character value as a quantity")
    return text


def parse_bytes(value: str | int | float, *, allow_plain: bool = True, kind: str = "size") -> int:
    """`16KB` -> 16000, `16KiB` -> 16384, `80GiB` -> 85899345920; a plain integer is bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 80GiB, got {value!r}")
    if isinstance(value, (int, float)):
        if not allow_plain:
            raise ValueError(f"size {value!r} needs a unit, such as 80GB or 80GiB")
        return int(in_range(kind, value, value))
    text = _text(value)
    m = _BYTES_RE.match(text)
    if not m or (not allow_plain and not (m.group("prefix") or m.group("unit"))):
        raise ValueError(f"cannot read {text!r} as a size: write it as 80GB, 80GiB, 16KB or bytes")
    if m.group("prefix") and not m.group("unit"):
        raise ValueError(f"cannot read {text!r} as a size: the unit B is missing (write {text}B)")
    return int(round(in_range(kind, float(m.group("num")) * _prefix_factor(m.group("prefix")), text)))


def parse_memory(value: str | int | float) -> int:
    """A memory capacity with a unit (`80GiB`), between 1 MB and 100 TB."""
    return parse_bytes(value, allow_plain=False, kind="memory")


def parse_bandwidth(value: str | int | float) -> float:
    """`450GB/s` -> 4.5e11 bytes/s; `400Gb/s` (bits) -> 5e10 bytes/s. A unit is required."""
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"bandwidth {value!r} needs a unit, such as 450GB/s or 400Gb/s")
    text = _text(value)
    m = _BW_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a bandwidth: write it as 450GB/s or 400Gb/s")
    bits = m.group("unit") in ("b/s", "bps")
    bytes_per_s = float(m.group("num")) * _prefix_factor(m.group("prefix")) / (8 if bits else 1)
    return in_range("bandwidth", bytes_per_s, text)


def parse_time(value: str | int | float) -> float:
    """`2us` -> 2e-6 seconds. A unit is required."""
    if isinstance(value, (bool, int, float)):
        raise ValueError(f"time {value!r} needs a unit, such as 2us or 1.5ms")
    text = _text(value)
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a time: write it as 2us, 1.5ms or 0.5s")
    return in_range("latency", float(m.group("num")) * _TIME[m.group("unit")], text)


def parse_flops(value: str | int | float) -> float:
    """`989TFLOPS` or `989e12` -> 9.89e14 FLOP/s."""
    if isinstance(value, bool):
        raise ValueError(f"expected FLOP/s, got {value!r}")
    if isinstance(value, (int, float)):
        return float(in_range("flops", value, value))
    text = _text(value)
    m = _FLOPS_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as FLOP/s: write it as 989TFLOPS or 989e12")
    return in_range("flops", float(m.group("num")) * _prefix_factor(m.group("prefix")), text)


def format_bytes(n: float) -> str:
    """Decimal units, as vendors quote memory: 141.1 GB."""
    for unit, factor in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n:.0f} B"


def format_count(n: float) -> str:
    for unit, factor in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= factor:
            return f"{n / factor:.2f}{unit}"
    return f"{n:.0f}"


def format_ids(ids: list[int] | tuple[int, ...]) -> str:
    """GPU ids as ranges: [0, 1, 2, 3, 6, 7] -> '0-3,6-7'. Nothing is cut."""
    out: list[str] = []
    run: list[int] = []
    for i in [*ids, None]:
        if run and (i is None or i != run[-1] + 1):
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run = []
        if i is not None:
            run.append(i)
    return ",".join(out)


def layout_label(tp: int, dp: int = 1, ep: int = 1) -> str:
    """The one spelling of a stage layout (tp, dp, ep): TP4, DP2xTP4, DP8, TP4+EP8."""
    out = f"TP{tp}"
    if dp > 1:
        out = f"DP{dp}xTP{tp}" if tp > 1 else f"DP{dp}"
    return out + (f"+EP{ep}" if ep > 1 else "")


def parse_int_list(text: str, option: str, *, low: int = 0, high: int = 1 << 20) -> list[int]:
    """`0,1,2,3` -> [0, 1, 2, 3]; InputError naming the option when a value is not a whole number in range."""
    if len(text) > 10_000:
        raise InputError(f"{option}: the list is {len(text)} characters long")
    parts = [x.strip() for x in text.split(",")]
    if len(parts) > 1 and "" in parts:  # `1,,32` is a slip, not `1,32`
        raise InputError(f"{option}: an empty entry in '{text[:80]}' (write the values separated by single commas)")
    try:
        values = [int(x) for x in parts if x]
    except ValueError:
        raise InputError(f"{option}: expected comma-separated whole numbers, got '{text[:80]}'") from None
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise InputError(f"{option}: {bad[0]} is outside {low}..{high}")
    if not values:
        raise InputError(f"{option}: give at least one value")
    return values


def count(n: int, noun: str) -> str:
    """`1 GPU`, `8 GPUs`, `1,105 sequences`: a count with its noun in the right number."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
