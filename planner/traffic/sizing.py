"""`planner size`: per GPU type, the fewest GPUs whose replicas hold the SLOs at a request rate, and their cost.

Replicas share nothing (docs/traffic.md): with requests routed at random, each of R replicas sees Poisson arrivals
at rate / R, so a fleet holds the SLOs when one replica does at rate / R. Per GPU type (its shipped 8-GPU node) and
per replica layout (TP 1, 2, 4, 8 within a node), the highest rate one replica carries within the SLOs is found by
bisection over planner.traffic.steady; R = ceil(rate / that), GPUs = R x TP, nodes = ceil(GPUs / 8). The layout
with the fewest GPUs wins. Cost: GPUs x the price table's USD per GPU-hour; per million output tokens, that over
rate x osl x 3600 tokens an hour.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planner.cost.constants import DEFAULT, Constants
from planner.errors import ConfigError, InputError, PlannerError, validation_messages
from planner.files import load_yaml
from planner.hardware import load_topology
from planner.model.layergraph import ModelProfile
from planner.plan import Prediction, Workload, make_partition
from planner.solve.options import MAX_SLO_MS, known_percentile
from planner.traffic.mixed import GPUS_PER_NODE, MixedFleet, mixed_fleet
from planner.traffic.steady import Bounds, Inputs, at_rate, bounds

#: The shipped price table (USD per GPU-hour with dated sources).
PRICES_FILE = Path(__file__).resolve().parent / "prices.yaml"
#: GPU type -> the shipped 8-GPU node a replica lives in.
NODES = {
    "h100": "8xh100",
    "h200": "8xh200",
    "a100": "8xa100",
    "l40s": "8xl40s",
    "mi300x": "8xmi300x",
    "b200": "8xb200",
    "h20": "8xh20",
    "mi325x": "8xmi325x",
    "mi355x": "8xmi355x",
}
TP_CHOICES = (1, 2, 4, 8)
#: Bisection steps for a replica's highest rate within the SLOs: 2^-8 of the sustainable rate.
RATE_STEPS = 8


class SizeOptions(BaseModel):
    """What `planner size` asks: GPU types, SLOs (bounds on the mean or a percentile) and prices."""

    model_config = ConfigDict(extra="forbid")
    gpu: str = Field("h100,h200,l40s,mi300x", description=f"GPU types to size, comma-separated, of: {', '.join(NODES)}")
    ttft_slo_ms: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_SLO_MS,
        json_schema_extra={"flag": "--ttft-slo"},
        description="TTFT bound, ms (the mean, or --slo-percentile)",
    )
    tpot_slo_ms: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_SLO_MS,
        json_schema_extra={"flag": "--tpot-slo"},
        description="TPOT bound, ms (the mean, or --slo-percentile)",
    )
    slo_percentile: Optional[int] = Field(None, description="make the SLOs bounds on this percentile: 50, 90 or 99")
    prices: Optional[str] = Field(
        None, description="price table (YAML, planner/traffic/prices.yaml's shape) instead of the shipped one"
    )
    mixed: bool = Field(
        False, description="also the cheapest fleet mixing the GPU types (replicas routed in proportion to their caps)"
    )
    available: Optional[str] = Field(
        None,
        description="GPUs on hand per type, e.g. h100=16,l40s=64: the mixed fleet uses at most these (implies --mixed)",
    )

    @field_validator("slo_percentile")
    @classmethod
    def _known_percentile(cls, v: Optional[int]) -> Optional[int]:
        return known_percentile(v)

    @field_validator("gpu")
    @classmethod
    def _known_gpus(cls, v: str) -> str:
        names = [g.strip().lower() for g in v.split(",") if g.strip()]
        unknown = [g for g in names if g not in NODES]
        if not names or unknown:
            raise ValueError(f"unknown GPU type {', '.join(unknown) or '(none)'}; known: {', '.join(NODES)}")
        return ",".join(names)

    @field_validator("available")
    @classmethod
    def _known_available(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            parse_available(v)
        return v

    @model_validator(mode="after")
    def _available_among_gpus(self) -> SizeOptions:
        missing = [g for g in self.limits if g not in self.gpus]
        if missing:
            raise ValueError(f"--available names {', '.join(missing)}, not among --gpu {self.gpu}")
        return self

    @property
    def gpus(self) -> list[str]:
        return self.gpu.split(",")

    @property
    def limits(self) -> dict[str, int]:
        return parse_available(self.available) if self.available else {}


def parse_available(text: str) -> dict[str, int]:
    """`h100=16,l40s=64` as {gpu: count}; a ValueError naming the first bad entry."""
    out: dict[str, int] = {}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, _, count = item.partition("=")
        name = name.strip().lower()
        if name not in NODES or not count.strip().isdigit() or not 0 <= int(count) <= 1_000_000:
            raise ValueError(f"'{item}': give TYPE=COUNT, TYPE one of {', '.join(NODES)}, COUNT 0 to 1,000,000")
        out[name] = int(count)
    if not out:
        raise ValueError("give TYPE=COUNT entries, e.g. h100=16,l40s=64")
    return out


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid")
    usd_per_gpu_hour: float = Field(gt=0)
    date: str
    source: str = Field(min_length=8)


class PriceTable(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prices: dict[str, Price]


def load_prices(path: str | Path | None = None) -> PriceTable:
    where = Path(path) if path else PRICES_FILE
    raw = load_yaml(where, "the price table")
    if isinstance(raw, dict):  # YAML reads an unquoted date as a date: keep it as text
        for row in (raw.get("prices") or {}).values():
            if isinstance(row, dict) and "date" in row:
                row["date"] = str(row["date"])
    try:
        return PriceTable.model_validate(raw)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        raise ConfigError(f"{where}: {msgs[0]}", details=msgs[1:]) from None


class Layout(BaseModel):
    """One replica layout of a GPU type and the most it carries within the SLOs."""

    tp: int
    max_rate_rps: float = Field(description="the highest rate one replica carries within the SLOs (0: none)")
    sustainable_rate_rps: float
    note: Optional[str] = None


class GpuSizing(BaseModel):
    gpu: str
    topology: str
    fits: bool
    reason: Optional[str] = None
    tp: Optional[int] = None
    replicas: Optional[int] = None
    gpus: Optional[int] = None
    nodes: Optional[int] = None
    rate_per_replica_rps: Optional[float] = None
    ttft_ms: Optional[float] = Field(None, description="TTFT of a replica at its rate, in the SLO's statistic")
    tpot_ms: Optional[float] = Field(None, description="TPOT likewise")
    usd_per_hour: Optional[float] = None
    usd_per_million_output_tokens: Optional[float] = None
    price: Optional[Price] = None
    layouts: list[Layout] = Field(default_factory=list)
    prediction: Optional[Prediction] = Field(None, description="one replica at its rate")


class SizeResult(BaseModel):
    model: str
    request_rate_rps: float
    isl: int
    osl: int
    isl_spec: str
    osl_spec: str
    ttft_slo_ms: Optional[float]
    tpot_slo_ms: Optional[float]
    slo_percentile: Optional[int]
    rows: list[GpuSizing]
    mixed: Optional[MixedFleet] = Field(None, description="the cheapest fleet mixing the types (--mixed)")


def _figures(pred: Prediction, percentile: Optional[int]) -> tuple[float, float]:
    """(TTFT, TPOT) in ms at the SLO's statistic: the mean, or the percentile."""
    t = pred.traffic
    if t is None or t.ttft is None or t.tpot is None:
        return pred.ttft_ms, pred.tpot_ms
    return t.ttft.at(percentile), t.tpot.at(percentile)


def meets(pred: Prediction, opts: SizeOptions) -> bool:
    if pred.traffic is None or not pred.traffic.stable or not pred.fits:
        return False
    ttft, tpot = _figures(pred, opts.slo_percentile)
    return (opts.ttft_slo_ms is None or ttft <= opts.ttft_slo_ms) and (
        opts.tpot_slo_ms is None or tpot <= opts.tpot_slo_ms
    )


def max_rate(inputs: Inputs, b: Bounds, opts: SizeOptions) -> float:
    """The highest rate one replica carries within the SLOs (0 where even a trickle misses them)."""
    high = b.sustainable_rps * 0.999
    low = high / 2**RATE_STEPS
    if high <= 0 or not meets(at_rate(inputs, low, b), opts):
        return 0.0
    if meets(at_rate(inputs, high, b), opts):
        return high
    for _ in range(RATE_STEPS):
        mid = (low + high) / 2
        if meets(at_rate(inputs, mid, b), opts):
            low = mid
        else:
            high = mid
    return low


def layouts(
    profile: ModelProfile, gpu: str, workload: Workload, opts: SizeOptions, constants: Constants
) -> list[tuple[Layout, Inputs | None, Bounds | None]]:
    """Every TP a replica of `gpu` can take, with the most it carries within the SLOs."""
    topo = load_topology(NODES[gpu])
    out: list[tuple[Layout, Inputs | None, Bounds | None]] = []
    for tp in TP_CHOICES:
        if tp > len(topo.gpus):
            continue
        try:
            part = make_partition(profile, topo, tp=tp)
        except PlannerError as exc:
            out.append((Layout(tp=tp, max_rate_rps=0.0, sustainable_rate_rps=0.0, note=exc.message), None, None))
            continue
        inputs = Inputs(profile, topo, part, workload, constants)
        b = bounds(inputs)
        if b.top is None:
            note = inputs.probe(1).problem or "does not serve one sequence"
            out.append((Layout(tp=tp, max_rate_rps=0.0, sustainable_rate_rps=0.0, note=note), None, None))
            continue
        rate = max_rate(inputs, b, opts)
        note = None if rate > 0 else "misses the SLOs at any rate"
        out.append((Layout(tp=tp, max_rate_rps=rate, sustainable_rate_rps=b.sustainable_rps, note=note), inputs, b))
    return out


def size_gpu(
    profile: ModelProfile,
    gpu: str,
    workload: Workload,
    opts: SizeOptions,
    *,
    price: Optional[Price],
    constants: Constants = DEFAULT,
) -> GpuSizing:
    """The fewest GPUs of `gpu` whose replicas hold the SLOs at workload.request_rate, and what they cost."""
    rate = workload.request_rate or 0.0
    found = layouts(profile, gpu, workload, opts, constants)
    usable = [(lay, inp, b) for lay, inp, b in found if lay.max_rate_rps > 0 and inp is not None and b is not None]
    row = GpuSizing(gpu=gpu, topology=NODES[gpu], fits=False, layouts=[lay for lay, _, _ in found], price=price)
    if not usable:
        notes = sorted({lay.note for lay, _, _ in found if lay.note})
        return row.model_copy(update={"reason": "; ".join(notes) or "no replica layout"})
    lay, inputs, b = min(usable, key=lambda u: (math.ceil(rate / u[0].max_rate_rps) * u[0].tp, u[0].tp))
    replicas = math.ceil(rate / lay.max_rate_rps)
    assert inputs is not None and b is not None
    pred = at_rate(inputs, rate / replicas, b)
    ttft, tpot = _figures(pred, opts.slo_percentile)
    gpus = replicas * lay.tp
    cost = gpus * price.usd_per_gpu_hour if price else None
    per_million = cost / (rate * workload.osl * 3600) * 1e6 if cost is not None and rate > 0 else None
    return row.model_copy(
        update={
            "fits": True,
            "tp": lay.tp,
            "replicas": replicas,
            "gpus": gpus,
            "nodes": math.ceil(gpus / GPUS_PER_NODE),
            "rate_per_replica_rps": rate / replicas,
            "ttft_ms": ttft,
            "tpot_ms": tpot,
            "usd_per_hour": cost,
            "usd_per_million_output_tokens": per_million,
            "prediction": pred,
        }
    )


def size(
    profile: ModelProfile,
    workload: Workload,
    opts: SizeOptions,
    *,
    constants: Constants = DEFAULT,
    prices: PriceTable | None = None,
) -> SizeResult:
    """Every GPU type of `opts` sized for `workload.request_rate`."""
    if workload.request_rate is None:
        raise InputError("planner size needs --request-rate (requests/s over the fleet)")
    table = prices or load_prices(opts.prices)
    rows = [size_gpu(profile, g, workload, opts, price=table.prices.get(g), constants=constants) for g in opts.gpus]
    mixed = None
    if opts.mixed or opts.available:
        mixed = mixed_fleet(rows, rate_rps=workload.request_rate, osl=workload.osl, available=opts.limits)
    return SizeResult(
        model=profile.name,
        request_rate_rps=workload.request_rate,
        isl=workload.isl,
        osl=workload.osl,
        isl_spec=workload.isl_dist.spec if workload.isl_dist else str(workload.isl),
        osl_spec=workload.osl_dist.spec if workload.osl_dist else str(workload.osl),
        ttft_slo_ms=opts.ttft_slo_ms,
        tpot_slo_ms=opts.tpot_slo_ms,
        slo_percentile=opts.slo_percentile,
        rows=rows,
        mixed=mixed,
    )


def cost_curve(row: GpuSizing, rates_rps: list[float]) -> list[Optional[float]]:
    """USD per hour of the cheapest layout at each rate (replicas scale; each layout's SLO-bound rate is known)."""
    if row.price is None:
        return [None] * len(rates_rps)
    usable = [lay for lay in row.layouts if lay.max_rate_rps > 0]
    out: list[Optional[float]] = []
    for r in rates_rps:
        gpus = min((math.ceil(r / lay.max_rate_rps) * lay.tp for lay in usable), default=None)
        out.append(None if gpus is None else gpus * row.price.usd_per_gpu_hour)
    return out
