"""`planner size --mixed`: the cheapest fleet mixing GPU types that holds the SLOs at the request rate.

Each GPU type's replica layouts come from planner.traffic.sizing with the most one replica carries within the SLOs
(`cap`). A router that sends each replica a share of the traffic proportional to its cap splits Poisson arrivals
into Poisson arrivals at rate x cap_j / sum(caps), which is at most cap_j as long as the caps add up to the rate:
every replica then runs at or below its own SLO-bound rate, so the fleet holds the SLOs (TTFT and TPOT grow with
the rate). The cheapest such fleet is an integer cover, solved exactly by CP-SAT:

    minimise  sum_j n_j x tp_j x price_j    subject to  sum_j n_j x cap_j >= rate,
              sum_{j of type g} n_j x tp_j <= available_g  (where `--available` limits a type)

Rates and prices are scaled to integers (micro-requests/s rounded down, so the cover never rests on rounding; tenths
of a cent per hour).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from planner.traffic.sizing import GpuSizing

#: GPUs of one node of every sized type (the shipped 8-GPU topologies).
GPUS_PER_NODE = 8

#: Integer scale of rates (micro-requests/s) and of prices (tenths of a cent per hour).
RATE_SCALE = 1_000_000
PRICE_SCALE = 1_000
#: The mixed fleet's CP-SAT time limit: a few dozen small integers solve in milliseconds.
TIME_LIMIT_S = 10.0


class FleetPart(BaseModel):
    gpu: str
    tp: int
    replicas: int
    gpus: int
    cap_rps: float = Field(description="the most one replica carries within the SLOs")
    rate_per_replica_rps: float = Field(description="what the proportional router sends each replica")
    usd_per_hour: float


class MixedFleet(BaseModel):
    fits: bool
    reason: Optional[str] = None
    parts: list[FleetPart] = Field(default_factory=list)
    gpus: int = 0
    nodes: int = Field(0, description="per GPU type, ceil(GPUs / 8) of its 8-GPU nodes, summed")
    usd_per_hour: Optional[float] = None
    usd_per_million_output_tokens: Optional[float] = None
    load_share: Optional[float] = Field(None, description="rate / sum of the replicas' caps: each runs at this share")
    best_single_usd_per_hour: Optional[float] = Field(None, description="the cheapest one-type fleet, for comparison")


def _candidates(rows: list[GpuSizing]) -> list[tuple[str, int, float, float]]:
    """(gpu, tp, cap rps, USD per hour of one replica) of every priced layout that carries any traffic."""
    out = []
    for row in rows:
        if row.price is None:
            continue
        for lay in row.layouts:
            if lay.max_rate_rps > 0:
                out.append((row.gpu, lay.tp, lay.max_rate_rps, lay.tp * row.price.usd_per_gpu_hour))
    return out


def _solve(
    cands: list[tuple[str, int, float, float]], *, rate_rps: float, available: dict[str, int]
) -> Optional[list[int]]:
    from ortools.sat.python import cp_model  # deferred: `planner size` must start without OR-Tools (code health)

    m = cp_model.CpModel()
    need = math.ceil(rate_rps * RATE_SCALE)
    counts = []
    for gpu, tp, cap, _ in cands:
        top = math.ceil(rate_rps / cap)
        if gpu in available:
            top = min(top, available[gpu] // tp)
        counts.append(m.new_int_var(0, max(0, top), f"{gpu}_tp{tp}"))
    m.add(sum(n * math.floor(c[2] * RATE_SCALE) for n, c in zip(counts, cands)) >= need)
    for gpu, limit in available.items():
        m.add(sum(n * c[1] for n, c in zip(counts, cands) if c[0] == gpu) <= limit)
    m.minimize(sum(n * round(c[3] * PRICE_SCALE) for n, c in zip(counts, cands)))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = TIME_LIMIT_S
    solver.parameters.num_workers = 1
    if solver.solve(m) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [solver.value(n) for n in counts]


def mixed_fleet(
    rows: list[GpuSizing], *, rate_rps: float, osl: int, available: dict[str, int] | None = None
) -> MixedFleet:
    """The cheapest fleet of the sized types' replica layouts (each type within `available` GPUs where given)."""
    cands, limits = _candidates(rows), available or {}
    singles = [
        r.usd_per_hour
        for r in rows
        if r.fits and r.usd_per_hour is not None and r.gpus is not None and r.gpus <= limits.get(r.gpu, r.gpus)
    ]
    best_single = min(singles, default=None)
    if not cands:
        return MixedFleet(fits=False, reason="no priced GPU type carries the traffic within the SLOs")
    chosen = _solve(cands, rate_rps=rate_rps, available=limits)
    if chosen is None:
        return MixedFleet(fits=False, reason="the GPUs --available cannot carry the rate within the SLOs")
    total_cap = sum(n * c[2] for n, c in zip(chosen, cands))
    share = rate_rps / total_cap
    parts = [
        FleetPart(
            gpu=gpu, tp=tp, replicas=n, gpus=n * tp, cap_rps=cap, rate_per_replica_rps=cap * share, usd_per_hour=n * usd
        )
        for n, (gpu, tp, cap, usd) in zip(chosen, cands)
        if n > 0
    ]
    by_type: dict[str, int] = {}
    for p in parts:
        by_type[p.gpu] = by_type.get(p.gpu, 0) + p.gpus
    cost = sum(p.usd_per_hour for p in parts)
    return MixedFleet(
        fits=True,
        parts=parts,
        gpus=sum(by_type.values()),
        nodes=sum(math.ceil(g / GPUS_PER_NODE) for g in by_type.values()),
        usd_per_hour=cost,
        usd_per_million_output_tokens=cost / (rate_rps * osl * 3600) * 1e6,
        load_share=share,
        best_single_usd_per_hour=best_single,
    )
