"""The corpus's disaggregated rows as the planner can price them: pools, topology, load and what was measured.

A row maps when its model is in the catalog, its machine has a shipped topology, both pools' instance
counts and TP degrees are stated, and it is a closed loop with its concurrency. Mean lengths come from
the benchmark's published token totals where the notes copy them (`total_output_tokens=N over M
completed, total_input_tokens=K`): without `--ignore-eos` outputs end early, so the nominal output length
overstates the work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from planner.calibrate.corpus import _DTYPES, CLUSTER_TOPOLOGY, NODE_TOPOLOGY, Entry, catalog_model, load_corpus
from planner.disagg.plan import PoolsSpec

#: Clusters the disaggregated rows run on beyond the calibration corpus's (topologies/2x8xh20-roce.yaml: the machine
#: of Mooncake's SGLang PD benchmark).
DISAGG_CLUSTERS = {("h20", 2): "2x8xh20-roce"}
_TOTALS = re.compile(r"total_output_tokens=(\d+) over (\d+) completed, total_input_tokens=(\d+)")


@dataclass(frozen=True)
class DisaggCase:
    entry: Entry
    model: str
    topology: str
    spec: PoolsSpec
    concurrency: int
    isl: int
    osl: int
    weight_dtype: str
    tpot_ms: float | None
    ttft_ms: float | None
    tokens_per_s: float | None


def _lengths(entry: Entry) -> tuple[float, float]:
    row = entry.row
    found = _TOTALS.search(row.notes or "")
    if found:
        out, done, total_in = (float(g) for g in found.groups())
        return total_in / done, out / done
    return float(row.isl or 0), float(row.osl or 0)


def disagg_case(entry: Entry) -> DisaggCase | str:
    """The case a disaggregated row asks for, or why it cannot be priced."""
    row, d = entry.row, entry.row.disagg
    if d is None:
        return "not disaggregated"
    if None in (d.prefill_instances, d.prefill_tp, d.decode_instances, d.decode_tp):
        return "pool sizes or TP degrees not stated"
    for role, n, tp, gpus in (
        ("prefill", d.prefill_instances, d.prefill_tp, d.prefill_gpus),
        ("decode", d.decode_instances, d.decode_tp, d.decode_gpus),
    ):
        if gpus is not None and gpus != n * tp:
            return f"{role} pool: {gpus} GPUs are not {n} x tp {tp} (attention DP is not mapped)"
    if row.load != "closed" or row.concurrency is None:
        return f"load {row.load} without a concurrency"
    model = catalog_model(row.model)
    if model is None:
        return f"model {row.model} is not in the catalog"
    gpus = d.prefill_instances * d.prefill_tp + d.decode_instances * d.decode_tp
    gpu = row.gpu.lower()
    nodes = -(-gpus // 8)
    topology = (
        NODE_TOPOLOGY.get(gpu) if gpus <= 8 else CLUSTER_TOPOLOGY.get((gpu, nodes), DISAGG_CLUSTERS.get((gpu, nodes)))
    )
    if topology is None:
        return f"no shipped topology for {gpus} x {row.gpu}"
    weight = _DTYPES.get((row.weight_dtype or "bf16").lower())
    if weight is None:
        return f"weight dtype {row.weight_dtype} is not priced"
    isl, osl = _lengths(entry)
    spec = PoolsSpec(
        prefill_instances=d.prefill_instances,
        prefill_tp=d.prefill_tp,
        decode_instances=d.decode_instances,
        decode_tp=d.decode_tp,
    )
    return DisaggCase(
        entry,
        model,
        topology,
        spec,
        round(row.concurrency),
        max(1, round(isl)),
        max(1, round(osl)),
        weight,
        row.tpot_ms or row.itl_ms,
        row.ttft_ms,
        row.output_tokens_per_s,
    )


def disagg_cases() -> tuple[list[DisaggCase], list[tuple[Entry, str]]]:
    """Every disaggregated row of the shipped corpus: those that map, and the others with the reason."""
    cases, skipped = [], []
    for entry in load_corpus():
        if entry.row.disagg is None:
            continue
        out = disagg_case(entry)
        if isinstance(out, str):
            skipped.append((entry, out))
        else:
            cases.append(out)
    return cases, skipped
