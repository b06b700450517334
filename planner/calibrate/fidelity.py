"""Predicting the corpus: each priced row (planner.calibrate.corpus.Case) through `estimate`, errors by class, the
few constants the physics leaves open fitted by coordinate descent, and leave-one-publisher-out cross-validation.

A class is (engine, dense or MoE, metric); metrics are TPOT, TTFT and output tokens/s of closed-loop rows, and
`max_tokens`, the output tokens/s of offline (maximum-throughput) rows. A calibration is one resolved `Constants`
per engine: shared knobs (the kernels' physics) move all three alike, engine knobs one of them. The fit minimises
the sum over metrics of the median |log(predicted / measured)| of the training rows; a held-out publisher's rows
are then predicted with constants fitted without them.

The fit runs in two stages so that MoE rows never move dense physics: first the knobs every layer uses (GEMM and KV
efficiencies, the closed loop's drift, each engine's host times and GEMM efficiency) on the dense rows only, then,
with those fixed, the knobs only MoE layers use (`MOE_KNOBS`: the grouped GEMM's HBM efficiency, the fixed time per
MoE layer, MLA's absorbed attention, DP attention) on the MoE rows only. The engine's GEMM efficiency is an engine
knob: TensorRT-LLM's tuned GEMMs and vLLM's differ, and one shared value let vLLM's offline rows slow every
TensorRT-LLM prefill (the NIM rows' TTFT, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from importlib import import_module
from typing import Callable, Iterable, Sequence

from planner.calibrate.corpus import Case, case_machine
from planner.calibrate.search import Knob, coordinate_descent
from planner.cost.constants import DEFAULT, Constants
from planner.cost.engines import ENGINES, resolve_constants
from planner.cost.estimate import estimate
from planner.cost.step import compute_dtype
from planner.errors import PlannerError
from planner.plan import Workload
from planner.traffic.corpus_check import sharegpt_outputs
from planner.traffic.lengths import LengthDist, parse_length

Calibration = dict  # engine -> Constants (resolved for that engine)
METRICS = ("tpot", "ttft", "tokens", "max_tokens")

#: Shared knobs every layer uses (the same GPUs whatever the engine), fitted on dense rows, and their ranges. The
#: ranges are physical: free ranges let the fit run the efficiencies to their ends (KV reads at 100% of HBM, GEMMs at
#: 95% or 23% of peak) to absorb what the model lacks on the offline rows (benchmarks/RESULTS.md, 'Fidelity notes').
SHARED_KNOBS = {
    "kv_hbm_efficiency": (0.3, 0.85),  # paged KV reads stream no faster than the weights' GEMV (hbm_efficiency 0.85)
    "gemm_half_tokens": (0.0, 4096.0),
    "closed_loop_drift": (0.0, 1.0),
}
#: Shared knobs only MoE layers use, fitted on MoE rows with the others fixed.
MOE_KNOBS = {
    "moe_hbm_efficiency": (0.1, 1.0),
    "moe_layer_overhead_s": (0.0, 1e-3),
    "mla_flops_efficiency": (0.1, 1.0),
    "dp_attention_overhead_s": (0.0, 2e-3),
}
#: Engine knobs: host time and the GEMM kernels' efficiency differ by engine (fitted on dense rows).
#: flops_efficiency: H100 GEMMs at 0.45-0.75 of dense peak (DeepGEMM README's dense table: 1,358 of 1,979 fp8 TFLOP/s
#: at its best shape, 0.69; the 7168 x 2048 MoE shapes 815-925, 0.41-0.47).
ENGINE_KNOBS = {
    "flops_efficiency": (0.45, 0.75),
    "step_overhead_s": (0.0, 0.02),
    "sequence_overhead_s": (0.0, 1e-3),
    "request_overhead_s": (0.0, 0.5),
}


@dataclass(frozen=True)
class Outcome:
    """One case's prediction against its measurement: relative errors (predicted / measured - 1) by metric."""

    case: Case
    errors: dict  # metric -> relative error (only the measured ones)
    predicted: dict  # metric -> predicted value
    problem: str | None = None


def consistent(case: Case) -> bool:
    """Whether the row's figures agree with each other and with its hardware.

    - Little's law on the row itself: output tokens/s x TPOT is the number of sequences decoding at once. A queued
      (offline) run of many requests whose figures imply about one sequence reports per-request throughput, not
      the instance's: such a row cannot be a maximum-throughput figure.
    - A closed loop's mean TTFT can be no shorter than its first wave allows at the GPUs' datasheet peak
      (`first_wave_floor_ms`): a row below it was not measured as it states, on other GPUs or with its prompts
      already cached (bench_serving's seeded `random` prompts repeat across the runs of a sweep, and SGLang's
      radix cache and vLLM's prefix cache keep them)."""
    m = case.measured
    if case.load == "closed":
        floor = first_wave_floor_ms(case)
        return not (floor and m.ttft_ms and m.ttft_ms < floor)
    if case.load != "offline" or not (m.tpot_ms and m.tokens_per_s):
        return True
    requests = case.entry.row.num_prompts or case.concurrency or 0
    return not (requests > 4 and m.tokens_per_s * m.tpot_ms / 1e3 < 1.5)


def first_wave_floor_ms(case: Case) -> float | None:
    """The least mean TTFT a closed loop of c clients over N requests can measure on its GPUs, or None where no
    floor applies (one client, a statistic other than the mean, prompts not drawn fixed or uniform).

    The first c prompts are sent at once. However the engine batches and chunks them, the k-th to get its first
    token waits at least for the prefill of k of them, at best the k shortest, each 2 x active params x its length
    in FLOPs (attention left out) at the datasheet peak of every GPU of the instance. With lengths uniform from 0
    to twice the mean m (the widest spread `random` datasets draw; fixed lengths wait longer), the wave's mean
    wait is at least c / 3 prompts of m tokens; the other N - c requests wait at least nothing."""
    row = case.entry.row
    dist = (row.length_dist or "fixed").lower()
    clients = case.concurrency or 0
    if clients < 2 or row.statistic != "mean" or row.prefix or not (dist == "fixed" or dist.startswith("random")):
        return None
    try:
        profile, topo, _ = case_machine(case)
    except PlannerError:
        return None
    spec = topo.gpu(0).spec
    peak_flops_per_s = spec.peak_flops(compute_dtype(case.weight_dtype, spec)) * case.gpus
    prompt_s = 2.0 * profile.active_params * case.isl / peak_flops_per_s
    requests = max(clients, row.num_prompts or clients)
    return 1e3 * prompt_s * clients / 3 * clients / requests


def usable(case: Case) -> bool:
    """Rows the fit and the cross-validation use: closed-loop and offline rows of one aggregated instance whose
    figures agree with each other (`consistent`)."""
    return not case.disaggregated and case.load in ("closed", "offline") and case.engine in ENGINES and consistent(case)


#: Seeds for the knobs whose defaults were fitted to NVIDIA's NIM rows in round two (planner.cost.constants:
#: kv_hbm_efficiency 0.46, flops_efficiency 0.6), replaced by physical values so that NVIDIA's fold starts from
#: nothing measured on NVIDIA: KV reads as fast as the weights' GEMV (hbm_efficiency 0.85, the knob's top), GEMMs
#: at DeepGEMM's best dense shape (its README: 1,358 of 1,979 fp8 TFLOP/s on H800, 0.69).
UNFITTED_SEEDS = {"kv_hbm_efficiency": DEFAULT.hbm_efficiency, "flops_efficiency": 0.69}


def start(*, seeds: bool = True) -> Calibration:
    """The starting calibration: each engine's seeds (its module, not fitted.yaml, and UNFITTED_SEEDS for the
    defaults round two fitted, so that cross-validation never starts from values fitted on the held-out
    publisher), or the shipped profiles (`seeds` False)."""
    if not seeds:
        return {e: resolve_constants(DEFAULT, e) for e in ENGINES}
    return {
        e: DEFAULT.model_copy(
            update={**import_module(f"planner.cost.engines.{e}").PROFILE.constants, **UNFITTED_SEEDS, "engine": e}
        )
        for e in ENGINES
    }


def workload(case: Case, c: Constants) -> Workload:
    concurrency = case.concurrency or case.entry.row.num_prompts or c.max_num_seqs * case.replicas
    statistic = case.measured.latency_statistic
    # The engine's memory fraction where the row states it (vLLM --gpu-memory-utilization, SGLang
    # mem_fraction_static, TensorRT-LLM free_gpu_memory_fraction: each engine's accounting reads its own): Dennis
    # Lee's 7B rows ran at 0.25, a KV cache of 450,192 tokens, not the 0.9 default's 4x that.
    memory = (
        {}
        if case.entry.row.gpu_memory_utilization is None
        else {"gpu_memory_fraction": case.entry.row.gpu_memory_utilization}
    )
    return Workload(
        concurrency=concurrency,
        isl=case.isl,
        osl=case.osl,
        weight_dtype=case.weight_dtype,
        kv_dtype=case.kv_dtype,
        mode=case.load,
        engine=case.engine,
        statistic=statistic,
        osl_dist=output_lengths(case),
        num_prompts=case.entry.row.num_prompts if case.load == "closed" else None,
        scheduler_steps=case.scheduler_steps,
        **memory,
    )


#: A row's random lengths "+-P%" around the mean (the vLLM blog's "~20k input / ~2k output (+-15%)").
_PLUS_MINUS = re.compile(r"^random \(\+-(\d+(?:\.\d+)?)%\)$")


def output_lengths(case: Case) -> LengthDist | None:
    """The output lengths a row's benchmark drew, where they vary (else None: one length).

    - ShareGPT: the shipped histogram of vLLM benchmark_serving's ShareGPT sample (planner/traffic/data/
      chat-sharegpt.yaml) scaled to the row's own mean;
    - bench_serving's random dataset at `--random-range-ratio R` (`random:R`): SGLang's draws randint(L x R, L), a
      uniform whose mean is L (1 + R) / 2; with the row's osl that mean, uniform over [2R / (1 + R), 2 / (1 + R)] x osl
      (R = 0, SGLang's default: 1 to 2 osl);
    - `random (+-P%)`: uniform over osl x (1 -/+ P / 100).

    An offline run's tail is set by them (planner.cost.offline), and a closed loop's requests after its first wave
    arrive staggered where they vary (planner.cost.estimate.closed_drift)."""
    dist = (case.entry.row.length_dist or "").lower().strip()
    if case.load not in ("offline", "closed"):
        return None
    if dist == "sharegpt":
        return sharegpt_outputs(case.osl)
    if case.load != "closed":
        return None
    if m := _PLUS_MINUS.match(dist):
        spread = float(m.group(1)) / 100
        return _uniform(case.osl * (1 - spread), case.osl * (1 + spread))
    if dist.startswith("random:"):
        try:
            ratio = float(dist.removeprefix("random:"))
        except ValueError:
            return None
        if 0 <= ratio < 1:
            return _uniform(case.osl * 2 * ratio / (1 + ratio), case.osl * 2 / (1 + ratio))
    return None


def _uniform(low: float, high: float) -> LengthDist | None:
    a, b = max(1, round(low)), max(1, round(high))
    return parse_length(f"uniform:{a}-{b}", what="--osl") if a < b else None


def predict(case: Case, cal: Calibration) -> Outcome:
    c = cal[case.engine]
    try:
        profile, topo, part = case_machine(case)
        p = estimate(profile, topo, part, workload=workload(case, c), c=c)
    except PlannerError as exc:
        return Outcome(case, {}, {}, str(exc))
    m = case.measured
    predicted = {"tpot": p.tpot_ms, "ttft": p.ttft_ms, "tokens": p.tokens_per_s, "max_tokens": p.tokens_per_s}
    measured = (
        {"max_tokens": m.tokens_per_s}
        if case.load == "offline"
        else {"tpot": m.tpot_ms, "ttft": m.ttft_ms, "tokens": m.tokens_per_s}
    )
    errors = {k: predicted[k] / v - 1 for k, v in measured.items() if v}
    if not p.fits:
        return Outcome(case, errors, predicted, "does not fit")
    return Outcome(case, errors, predicted)


def outcomes(cases: Iterable[Case], cal: Calibration) -> list[Outcome]:
    return [predict(c, cal) for c in cases]


def score(outs: Sequence[Outcome]) -> float:
    """Sum over metrics of the median |log(predicted / measured)|; rows that cannot be priced count as a factor e."""
    total = 0.0
    for metric in METRICS:
        logs = [
            abs(math.log1p(o.errors[metric])) if o.problem is None else 1.0
            for o in outs
            if metric in o.errors and o.errors[metric] > -1
        ]
        if logs:
            total += statistics.median(logs)
    return total


def _shared_knob(name: str) -> Knob[Calibration]:
    low, high = {**SHARED_KNOBS, **MOE_KNOBS}[name]

    def set_(cal: Calibration, v: float) -> Calibration:
        return {e: c.model_copy(update={name: v}) for e, c in cal.items()}

    return Knob(name, lambda cal: getattr(cal["vllm"], name), set_, low, high)


def _engine_knob(engine: str, name: str) -> Knob[Calibration]:
    low, high = ENGINE_KNOBS[name]

    def set_(cal: Calibration, v: float) -> Calibration:
        return {**cal, engine: cal[engine].model_copy(update={name: v})}

    return Knob(f"{engine}.{name}", lambda cal: getattr(cal[engine], name), set_, low, high)


#: Closed-loop training rows with a measured TTFT an engine needs before its request overhead is fitted: only
#: they see it, and with fewer (vLLM's 2 when GPUStack is held out) the fit trades it freely against the offline
#: rows' throughput (38 ms in one fit, 9 ms in the next; benchmarks/RESULTS.md): the seed stays.
MIN_TTFT_ROWS = 4


def knobs(
    engines: Iterable[str] = ENGINES, *, moe: bool = False, timed: Iterable[str] | None = None
) -> list[Knob[Calibration]]:
    """The dense stage's knobs (shared, then each engine's), or the MoE stage's (`moe`); an engine outside `timed`
    (default: all of them) keeps its request overhead."""
    if moe:
        return [_shared_knob(n) for n in MOE_KNOBS]
    timed = set(engines if timed is None else timed)
    out = [_shared_knob(n) for n in SHARED_KNOBS]
    out += [
        _engine_knob(e, n)
        for e in sorted(set(engines))
        for n in ENGINE_KNOBS
        if n != "request_overhead_s" or e in timed
    ]
    return out


def timed_engines(rows: Sequence[Case]) -> set[str]:
    """The engines with at least MIN_TTFT_ROWS closed-loop rows whose TTFT is measured."""
    count: dict[str, int] = defaultdict(int)
    for c in rows:
        if c.load == "closed" and c.measured.ttft_ms:
            count[c.engine] += 1
    return {e for e, n in count.items() if n >= MIN_TTFT_ROWS}


def training_sample(cases: Sequence[Case], per_group: int = 12, offset: float = 0.0) -> list[Case]:
    """At most `per_group` rows of each (publisher, engine, dense/MoE, load), evenly spaced: the fit sees every kind
    of row without paying for every row (the 2-core machine). `offset` (0 to 1) shifts where in each stride the
    sample falls, for another equally fair sample of a large group (benchmarks/cv_spread.py)."""
    if not 0.0 <= offset < 1.0:
        raise ValueError(f"offset {offset} is outside [0, 1)")
    groups: dict[tuple, list[Case]] = defaultdict(list)
    for c in cases:
        groups[(c.publisher, c.engine, c.moe, c.load)].append(c)
    out = []
    for key in sorted(groups):
        rows = groups[key]
        step = max(1, len(rows) / per_group)
        out += [rows[min(len(rows) - 1, int((i + offset) * step))] for i in range(min(per_group, len(rows)))]
    return out


def fit(
    cases: Sequence[Case],
    cal: Calibration | None = None,
    *,
    rounds: int = 6,
    per_group: int = 12,
    offset: float = 0.0,
) -> Calibration:
    """Two stages (module docstring): the dense rows fit the knobs every layer uses, then the MoE rows the MoE knobs."""
    train = training_sample(cases, per_group, offset)
    cal = cal or start()
    for moe in (False, True):
        rows = [c for c in train if c.moe == moe]
        if rows:
            cal = coordinate_descent(
                cal,
                knobs({c.engine for c in rows}, moe=moe, timed=timed_engines(rows)),
                _scorer(rows),
                step=1.6,
                rounds=rounds,
                min_step=1.08,
            )
    return cal


def _scorer(rows: Sequence[Case]) -> Callable[[Calibration], float]:
    return lambda cal: score(outcomes(rows, cal))


def median_errors(outs: Sequence[Outcome]) -> dict:
    """(engine, 'moe'|'dense', metric) -> (median |error|, rows)."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for o in outs:
        for metric, e in o.errors.items():
            groups[(o.case.engine, "moe" if o.case.moe else "dense", metric)].append(abs(e))
            groups[("all", "moe" if o.case.moe else "dense", metric)].append(abs(e))
    return {k: (statistics.median(v), len(v)) for k, v in groups.items()}


def cross_validate(
    cases: Sequence[Case],
    *,
    rounds: int = 6,
    per_group: int = 12,
    progress: Callable[[str, int], None] = lambda publisher, n: None,
) -> list[Outcome]:
    """Leave one publisher (organisation) out: fit on the others, predict its rows."""
    held: list[Outcome] = []
    for publisher in sorted({c.publisher for c in cases}):
        train = [c for c in cases if c.publisher != publisher]
        test = [c for c in cases if c.publisher == publisher]
        cal = fit(train, rounds=rounds, per_group=per_group)
        held += outcomes(test, cal)
        progress(publisher, len(test))
    return held


def fitted_values(cal: Calibration) -> dict:
    """What fitted.yaml stores: the shared knobs once, each engine's knobs under its name."""
    out: dict = {"shared": {n: float(getattr(cal["vllm"], n)) for n in (*SHARED_KNOBS, *MOE_KNOBS)}}
    for e in ENGINES:
        out[e] = {n: float(getattr(cal[e], n)) for n in ENGINE_KNOBS}
    return out
