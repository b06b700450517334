"""The corpus's disaggregated rows as the planner can price them: pools, topology, load and what was measured.

A row maps when its model is in the catalog, its machine has a shipped topology, both pools' instance
counts and TP degrees are stated, it is a closed loop with its concurrency, and it ran without speculative
decoding (whose draft count and acceptance the rows do not give: planner.calibrate.corpus skips such rows too).
Mean lengths come from the benchmark's published token totals where the notes copy them (`total_output_tokens=N
over M completed, total_input_tokens=K`): without `--ignore-eos` outputs end early, so the nominal output length
overstates the work.

**Reruns of the same prompts.** `vllm bench serve --dataset-name random` draws its prompts from a seeded generator
(`--seed`, 0 unless given), so every run of one sweep (one ratio, prompt and output length, run at concurrency
128, then 64, then 32: dstack's `run_benchmark.sh "128 64 32"`) sends the same prompts. SGLang's radix cache is on
by default, and a prefill instance that prefilled a prompt in an earlier run still holds its KV when the next run
sends it again, so a rerun's prefill computes only its last token (the decode instance still receives the whole
KV). A run's `reruns` counts the earlier runs of its sweep (ordered by the start time in its source's file name).
With one prefill instance every prompt returns to the instance that cached it: the whole rerun is cached. With P
instances the router pairs prompts with instances in a way the rows do not state: round robin sends prompt i to
instance (n + i) mod P, n the requests it routed before (earlier runs, each benchmark's test prompt), so a rerun
finds all its prompts cached or none, and which one the rows do not say; no share is assumed (the expected one,
1 - (1 - 1 / P)^reruns, is in benchmarks/RESULTS.md for comparison). The cache holds the run's prompts only if
their KV fits in the instance's memory at all (500 prompts of 32,784 tokens of gpt-oss do not: each rerun evicts,
least recently used first, what it is about to ask for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from planner.calibrate.corpus import _DTYPES, CLUSTER_TOPOLOGY, NODE_TOPOLOGY, Entry, catalog_model, load_corpus
from planner.disagg.cost import DisaggPrediction, kv_handoff_bytes
from planner.disagg.plan import PoolsSpec
from planner.hardware import load_topology
from planner.model.catalog import load_profile
from planner.plan import Workload

#: Clusters the disaggregated rows run on beyond the calibration corpus's (topologies/2x8xh20-roce.yaml: the machine
#: of Mooncake's SGLang PD benchmark).
DISAGG_CLUSTERS = {("h20", 2): "2x8xh20-roce", ("h800", 2): "2x8xh800-roce"}
TOTALS = re.compile(r"total_output_tokens=(\d+) over (\d+) completed, total_input_tokens=(\d+)")
#: A run's file in its source (`from 1p3d_conc64_in2048_out128_20250923_033822.json`): its sweep and start time.
_RUN = re.compile(r"from (\d+p\d+d)_conc\d+_(in\d+_out\d+)_(\d{8}_\d{6})\.json")


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
    reruns: int = 0  # earlier runs of the same prompts in the row's sweep (module docstring)


def _lengths(entry: Entry) -> tuple[float, float]:
    row = entry.row
    found = TOTALS.search(row.notes or "")
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
    if row.speculative:
        return f"speculative decoding ({row.speculative}) is not priced from corpus rows"
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


def _sweep_run(case: DisaggCase) -> tuple[tuple[str, ...], str] | None:
    """(the sweep, the start time) of a row whose source names its run's file and whose prompts are seeded random
    ones; None otherwise."""
    row = case.entry.row
    found = _RUN.search(row.source)
    if not found or not (row.length_dist or "").startswith("random"):
        return None
    sweep = (case.entry.file, row.source.split(" (")[0], found.group(1), found.group(2), str(row.num_prompts))
    return sweep, found.group(3)


def _with_reruns(cases: list[DisaggCase]) -> list[DisaggCase]:
    """Each case with the number of earlier runs of its sweep (the same prompts, module docstring)."""
    runs = [_sweep_run(k) for k in cases]
    out = []
    for k, run in zip(cases, runs):
        earlier = 0 if run is None else sum(1 for o in runs if o is not None and o[0] == run[0] and o[1] < run[1])
        out.append(replace(k, reruns=earlier))
    return out


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
    return _with_reruns(cases), skipped


def rerun_prefix_hit(case: DisaggCase) -> float:
    """Share of a rerun's prompts its prefill instance holds cached (module docstring): all of them on one prefill
    instance whose GPUs' memory holds the run's prompts' KV; none where that memory cannot, where the router's
    pairing over several instances is not known, or on a first run."""
    if case.reruns == 0 or case.spec.prefill_instances > 1:
        return 0.0
    topo, profile = load_topology(case.topology), load_profile(case.model)
    held_bytes = kv_handoff_bytes(profile, case.isl, "bf16") * (case.entry.row.num_prompts or 0)
    gpus = case.spec.prefill_tp * case.spec.prefill_dp
    return 1.0 if held_bytes <= gpus * topo.gpu(0).spec.memory_bytes else 0.0


def case_workload(case: DisaggCase) -> Workload:
    """The load a case asks the planner to price: its closed loop, mean lengths and dtype, and what its prefill
    instances hold from earlier runs of the same prompts."""
    hit = rerun_prefix_hit(case)
    return Workload(
        concurrency=case.concurrency,
        isl=case.isl,
        osl=case.osl,
        weight_dtype=case.weight_dtype,
        mode="closed",
        prefix_tokens=case.isl - 1 if hit else 0,
        prefix_hit=hit,
    )


@dataclass(frozen=True)
class RatioStudy:
    """One point of a publisher's ratio sweep (concurrency, asked prompt and output length): its xPyD ratios in
    the order of their measured output tokens/s and in the order the planner predicts, fastest first."""

    key: tuple[str, int, float, float]  # publisher, concurrency, asked isl, asked osl
    measured_order: tuple[str, ...]
    planned_order: tuple[str, ...]
    measured_spread: float  # the smallest gap between neighbours in the measured order, relative to the slower

    @property
    def agrees(self) -> bool:
        return self.measured_order == self.planned_order


def ratio_studies(predicted: list[tuple[DisaggCase, DisaggPrediction]]) -> list[RatioStudy]:
    """The ratio sweeps in `predicted` ((case, prediction) pairs): per publisher and point, every ratio measured
    there, when there are at least two, ranked by measured and by predicted output tokens/s."""
    points: dict[tuple[str, int, float, float], list[tuple[str, float, float]]] = {}
    for k, r in predicted:
        if not k.tokens_per_s:
            continue
        key = (k.entry.publisher, k.concurrency, k.entry.row.isl or 0.0, k.entry.row.osl or 0.0)
        ratio = f"{k.spec.prefill_instances}P{k.spec.decode_instances}D"
        points.setdefault(key, []).append((ratio, k.tokens_per_s, r.tokens_per_s))
    out = []
    for key, rows in sorted(points.items()):
        if len({ratio for ratio, _, _ in rows}) < 2:
            continue
        measured = sorted(rows, key=lambda x: -x[1])
        planned = sorted(rows, key=lambda x: -x[2])
        spread = min(a[1] / b[1] - 1 for a, b in zip(measured, measured[1:]))
        out.append(RatioStudy(key, tuple(x[0] for x in measured), tuple(x[0] for x in planned), spread))
    return out
