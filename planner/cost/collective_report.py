"""`planner topology collective`: predicted time and bus bandwidth of a collective, per message size."""

from __future__ import annotations

from pydantic import BaseModel

from planner.cost.collectives import CONTEXTS, collective_time
from planner.cost.constants import DEFAULT, Constants
from planner.errors import InputError
from planner.hardware.topology import Topology
from planner.units import parse_bytes, parse_int_list

MAX_SIZES = 64
MAX_MESSAGE_BYTES = 2**40


class CollectiveRow(BaseModel):
    size: str
    bytes: int
    time_us: float
    busbw_gbps: float
    algorithm: str
    protocol: str


class CollectiveReport(BaseModel):
    topology: str
    op: str
    context: str
    gpu_ids: list[int]
    rows: list[CollectiveRow]


def parse_gpu_ids(text: str | None, topo: Topology) -> list[int]:
    """The group: every GPU by default, else the listed ids (each on the machine, none twice)."""
    if text is None:
        return list(range(topo.n_gpus))
    ids = parse_int_list(text, "--gpu-ids", high=1 << 30)
    for i in ids:
        topo.gpu(i)
    if len(set(ids)) != len(ids):
        raise InputError(f"--gpu-ids: GPU ids repeat in '{text[:80]}'")
    return ids


def collective_estimates(
    topo: Topology, *, sizes: str, op: str, gpu_ids: str | None, context: str, constants: Constants = DEFAULT
) -> CollectiveReport:
    if context not in CONTEXTS:
        raise InputError(f"--context: choose one of {', '.join(CONTEXTS)}, got '{context}'")
    ids = parse_gpu_ids(gpu_ids, topo)
    wanted = [s.strip() for s in sizes.split(",") if s.strip()]
    if not wanted:
        raise InputError("--sizes: give at least one size")
    if len(wanted) > MAX_SIZES:
        raise InputError(f"--sizes: at most {MAX_SIZES} sizes, got {len(wanted)}")
    rows = []
    for size in wanted:
        try:
            nbytes = parse_bytes(size)
        except ValueError as exc:
            raise InputError(f"--sizes: {exc}") from None
        if not 1 <= nbytes <= MAX_MESSAGE_BYTES:
            raise InputError(f"--sizes: {size} is outside 1 B to 1 TiB")
        est = collective_time(topo, ids, nbytes, op, context=context, constants=constants)
        rows.append(
            CollectiveRow(
                size=size,
                bytes=nbytes,
                time_us=est.time_s * 1e6,
                busbw_gbps=est.busbw_bytes_per_s / 1e9 if est.time_s > 0 else 0.0,
                algorithm=est.algorithm,
                protocol=est.protocol,
            )
        )
    return CollectiveReport(topology=topo.name, op=op, context=context, gpu_ids=ids, rows=rows)
