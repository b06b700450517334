"""Parse and format quantities with units: bytes (`80GiB`, `16KB`), bandwidth (`450GB/s`), time (`2us`).

Decimal prefixes are powers of 1000 and binary ones (`Ki`, `Mi`, `Gi`, `Ti`) powers of 1024, as
nccl-tests and vendor datasheets use them. A plain number is taken in the base unit (bytes, bytes/s,
seconds) only where the caller allows it: bandwidths and latencies in topology files must carry a unit.
"""

from __future__ import annotations

import re

_DECIMAL = {"": 1, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}

_NUMBER = r"(?P<num>[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_BYTES_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|[kKMGTP])?(?P<unit>B)?$")
_BW_RE = re.compile(_NUMBER + r"\s*(?P<prefix>Ki|Mi|Gi|Ti|[kKMGTP])?(?P<unit>B/s|b/s|bps|Bps)$")
_TIME_RE = re.compile(_NUMBER + r"\s*(?P<unit>s|ms|us|µs|ns)$")


def _prefix_factor(prefix: str | None) -> float:
    prefix = prefix or ""
    return _BINARY[prefix] if prefix in _BINARY else _DECIMAL[prefix]


def parse_bytes(value: str | int | float, *, allow_plain: bool = True) -> int:
    """`16KB` -> 16000, `16KiB` -> 16384, `80GiB` -> 85899345920; a plain integer is bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 80GiB, got {value!r}")
    if isinstance(value, (int, float)):
        if not allow_plain:
            raise ValueError(f"size {value!r} needs a unit, such as 80GB or 80GiB")
        if value < 0:
            raise ValueError(f"size must not be negative, got {value!r}")
        return int(value)
    text = str(value).strip()
    m = _BYTES_RE.match(text)
    if not m or (not allow_plain and not (m.group("prefix") or m.group("unit"))):
        raise ValueError(f"cannot read {text!r} as a size: write it as 80GB, 80GiB, 16KB or bytes")
    if m.group("prefix") and not m.group("unit"):
        raise ValueError(f"cannot read {text!r} as a size: the unit B is missing (write {text}B)")
    return int(round(float(m.group("num")) * _prefix_factor(m.group("prefix"))))


def parse_bandwidth(value: str | int | float) -> float:
    """`450GB/s` -> 4.5e11 bytes/s; `400Gb/s` (bits) -> 5e10 bytes/s. A unit is required."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"bandwidth {value!r} needs a unit, such as 450GB/s or 400Gb/s")
    text = str(value).strip()
    m = _BW_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a bandwidth: write it as 450GB/s or 400Gb/s")
    factor = _prefix_factor(m.group("prefix"))
    bits = m.group("unit") in ("b/s", "bps")
    bytes_per_s = float(m.group("num")) * factor / (8 if bits else 1)
    if bytes_per_s <= 0:
        raise ValueError(f"bandwidth must be positive, got {text!r}")
    return bytes_per_s


def parse_time(value: str | int | float) -> float:
    """`2us` -> 2e-6 seconds. A unit is required."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"time {value!r} needs a unit, such as 2us or 1.5ms")
    text = str(value).strip()
    m = _TIME_RE.match(text)
    if not m:
        raise ValueError(f"cannot read {text!r} as a time: write it as 2us, 1.5ms or 0.5s")
    return float(m.group("num")) * _TIME[m.group("unit")]


def parse_flops(value: str | int | float) -> float:
    """`989TFLOPS` or `989e12` -> 9.89e14 FLOP/s."""
    if isinstance(value, bool):
        raise ValueError(f"expected FLOP/s, got {value!r}")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"FLOP/s must be positive, got {value!r}")
        return float(value)
    text = str(value).strip()
    m = re.match(_NUMBER + r"\s*(?P<prefix>[kKMGTP])?(?:FLOPS|FLOP/s|flops)?$", text)
    if not m:
        raise ValueError(f"cannot read {text!r} as FLOP/s: write it as 989TFLOPS or 989e12")
    out = float(m.group("num")) * _prefix_factor(m.group("prefix"))
    if out <= 0:
        raise ValueError(f"FLOP/s must be positive, got {text!r}")
    return out


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
