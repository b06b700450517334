"""Rich tables of predictions, plans, comparisons and validation runs. Every figure states its load."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from planner.model.checks import without_fp8_units
from planner.plan import MIN_USABLE_TOKENS_PER_S_PER_USER, Workload, layout_label
from planner.report.tables import table
from planner.units import count, format_bytes, format_ids

if TYPE_CHECKING:
    from planner.compare import CompareResult
    from planner.fleet import Fleet
    from planner.frontier import FrontierResult
    from planner.plan import Plan, Prediction, StagePrediction
    from planner.remedies import RemediesResult
    from planner.validate.runner import ValidationReport


def _layers(s: StagePrediction) -> str:
    out = f"{s.layer_start}-{s.layer_end - 1}" if s.layer_end - s.layer_start > 1 else str(s.layer_start)
    out += (" +emb" if s.has_embedding else "") + (" +head" if s.has_lm_head else "")
    return out + (f" (host: {format_ids(s.offload_layers)})" if s.offload_layers else "")


def _layout(s: StagePrediction) -> str:
    return layout_label(s.tp, s.dp, s.ep)


def stage_table(pred: Prediction, title: str) -> Table:
    t = table(
        title,
        ["stage", "GPUs", "layers", "type", "weights", "KV/seq", "step ms", "comm ms"],
        right=("weights", "KV/seq", "step ms", "comm ms"),
    )
    t.caption = "weights and KV per GPU (KV of one sequence at its full length)"
    for s in pred.stages:
        t.add_row(
            f"{s.index} {_layout(s)}",
            format_ids(s.gpu_ids),
            _layers(s),
            s.gpu_type.split("-")[0],
            format_bytes(s.weight_bytes_per_gpu),
            format_bytes(s.kv_bytes_per_sequence_per_gpu),
            f"{s.step_time_ms:.2f}",
            f"{s.interconnect_ms + s.transfer_out_ms:.2f}",
        )
    return t


def _load_line(pred: Prediction, workload: Workload) -> str:
    mode = {
        "serving": "steady-state serving",
        "static": "static batch",
        "closed": "closed-loop waves",
        "offline": "offline: every request queued at once",
    }[pred.mode]
    sequences = "1 sequence decoding" if pred.concurrency == 1 else f"{pred.concurrency:,} sequences decoding together"
    line = (
        f"at {sequences} ({mode}, isl {workload.isl}, osl {workload.osl}, "
        f"{workload.weight_dtype} weights, {workload.kv_dtype} KV"
        f"{''.join(', ' + r for r in workload.remedy_labels())})"
    )
    if pred.mode == "serving" and pred.prefill_tokens_per_step:
        line += f"; each step also prefills {pred.prefill_tokens_per_step:,.0f} prompt tokens on average"
    return line


def totals_table(pred: Prediction, workload: Workload) -> Table:
    t = table(_load_line(pred, workload), ["what", "value"], right=("value",), show_header=False)
    t.add_row(
        "TPOT", f"{pred.tpot_ms:.2f} ms  (roofline floor {pred.roofline_tpot_ms:.2f} ms, {pred.roofline_ratio:.2f}x)"
    )
    t.add_row("TTFT", f"{pred.ttft_ms:,.1f} ms")
    t.add_row(
        "throughput",
        f"{pred.tokens_per_s:,.1f} tokens/s ({pred.tokens_per_s_per_gpu:,.1f} per GPU, "
        f"{pred.tokens_per_s_per_user:,.1f} per user)",
    )
    if pred.requests_per_s:
        t.add_row("requests/s", f"{pred.requests_per_s:,.2f} completed")
    t.add_row("KV capacity", count(pred.max_concurrency, "sequence"))
    t.add_row(
        "time per token", ", ".join(f"{k} {v:.2f} ms" for k, v in pred.time_breakdown_ms.items() if v or k != "offload")
    )
    t.add_row(
        "HBM bytes per token",
        f"{format_bytes(pred.hbm_bytes_per_token)} (weights "
        f"{format_bytes(pred.hbm_weight_bytes_per_token)}, KV {format_bytes(pred.hbm_kv_bytes_per_token)})",
    )
    links = ", ".join(f"{k} {format_bytes(v)}" for k, v in pred.interconnect_bytes_by_class.items() if v)
    t.add_row(
        "link bytes per token", format_bytes(pred.interconnect_bytes_per_token) + (f" ({links})" if links else "")
    )
    worst = max(pred.memory_per_gpu_bytes.values())
    cap = min(pred.memory_capacity_bytes.values())
    t.add_row(
        "memory per GPU",
        f"up to {format_bytes(worst)} of {format_bytes(cap)}" + ("" if pred.fits else "  DOES NOT FIT"),
    )
    return t


def usability_line(pred: Prediction, osl: int) -> str | None:
    """One line for a plan past the usability bound (planner.plan.MIN_USABLE_TOKENS_PER_S_PER_USER), else None."""
    if pred.usable:
        return None
    return (
        f"NOT USABLE: TPOT {pred.tpot_ms:,.0f} ms is {pred.tokens_per_s_per_user:.2f} output tokens/s per user, "
        f"under {MIN_USABLE_TOKENS_PER_S_PER_USER:g} (an osl-{osl:,} reply takes "
        f"{osl * pred.tpot_ms / 60e3:,.1f} min): the machine is too small for this model; see `planner remedies`"
    )


def unmodelled_line(pred: Prediction) -> str | None:
    """One line where the figures rest on kernels the engine's release did not have, else None."""
    return f"NOT MODELLED: {pred.unmodelled}" if pred.unmodelled else None


def prediction_report(pred: Prediction, title: str, workload: Workload) -> Group:
    lines = filter(None, [usability_line(pred, workload.osl), unmodelled_line(pred)])
    return Group(stage_table(pred, title), totals_table(pred, workload), *lines)


def _runners_up(plan: Plan) -> Table:
    alt = table(
        "runners-up (the best plan of each other shape; engines that run it as it is)",
        ["shape", "TPOT ms", "tokens/s", "load", "layers per stage", "engines"],
        right=("TPOT ms", "tokens/s", "load"),
    )
    for a in plan.alternatives:
        no_fp8 = without_fp8_units((s.gpu_type for s in a.prediction.stages), plan.inputs.workload.weight_dtype)
        engines = [e for e in a.engines if not (no_fp8 and e == "trtllm")]
        alt.add_row(
            a.shape,
            f"{a.prediction.tpot_ms:.2f}",
            f"{a.prediction.tokens_per_s:,.0f}",
            f"{a.prediction.concurrency:,}",
            ",".join(str(n) for n in a.partition.layer_counts()),
            ", ".join(engines) or "none (--any-shape)",
        )
    return alt


def slo_lines(plan: Plan) -> list[str]:
    """Each SLO with the plan's figure and its margin: `TPOT <= 30 ms: 29.81 ms (0.19 ms to spare) ✓`."""
    out = []
    for name, slo, value in (
        ("TPOT", plan.inputs.tpot_slo_ms, plan.prediction.tpot_ms),
        ("TTFT", plan.inputs.ttft_slo_ms, plan.prediction.ttft_ms),
    ):
        if slo is None:
            continue
        ok = value <= slo
        margin = f"{slo - value:,.2f} ms to spare" if ok else f"{value - slo:,.2f} ms over"
        out.append(f"{name} <= {slo:g} ms: {value:,.2f} ms ({margin}) {'✓' if ok else '✗'}")
    return out


_REPLICA_NOTE = re.compile(r"^(\d+) replicas? of (\d+) GPUs? (.*)$")


def note_lines(note: str | None, replicas: int) -> list[str]:
    """The solver's notes: those about shapes of another replica count than the plan's are said to be about the
    search (why the plan is not proven optimal), not about the plan, and gathered on one line."""
    if not note:
        return []
    own: list[str] = []
    other: list[str] = []
    for part in note.split("; "):
        m = _REPLICA_NOTE.match(part)
        (other if m and int(m.group(1)) != replicas else own).append(part)
    out = [f"note: {p}" for p in own]
    if other:
        matches = [m for m in map(_REPLICA_NOTE.match, other) if m]
        shapes = ", ".join(f"{m.group(1)} x {m.group(2)} GPUs" for m in matches)
        rest = matches[0].group(3)
        out.append(
            f"note on the search, not this {replicas}-replica plan: the other shapes' replicas ({shapes}) {rest}"
        )
    return out


def plan_report(plan: Plan) -> Group:
    pred, w = plan.prediction, plan.inputs.workload
    slos = [f"TPOT <= {plan.inputs.tpot_slo_ms:g} ms" for _ in [1] if plan.inputs.tpot_slo_ms is not None]
    slos += [f"TTFT <= {plan.inputs.ttft_slo_ms:g} ms" for _ in [1] if plan.inputs.ttft_slo_ms is not None]
    title = (
        f"{plan.inputs.model} on {plan.inputs.topology}: {plan.partition.shape} "
        f"[{plan.inputs.objective}{', ' + ', '.join(slos) if slos else ''}]"
    )
    parts: list[Table | str] = [
        stage_table(pred, title),
        totals_table(pred, w),
        *slo_lines(plan),
        *filter(None, [usability_line(pred, w.osl), unmodelled_line(pred)]),
    ]
    if plan.replicas > 1:
        parts.append(
            "replicas on GPUs: " + "; ".join(" | ".join(format_ids(st) for st in rep) for rep in plan.replica_gpu_ids)
        )
    s = plan.solver
    gap = f", gap {s.gap:.2%}" if s.gap else ""
    parts.append(f"solver: {s.status}{gap} in {s.wall_time_s:.2f} s ({s.resolution})")
    parts += note_lines(s.note, plan.replicas)
    if plan.fleet is not None:
        parts.append(fleet_table(plan.fleet))
    if plan.alternatives:
        parts.append(_runners_up(plan))
    return Group(*parts)


def fleet_table(fleet: Fleet) -> Table:
    """Each node type's best plan and its share of the fleet's tokens/s (the plan above is the largest part)."""
    gap = f", gap {fleet.gap:.2%}" if fleet.gap else ""
    t = table(
        f"fleet: {fleet.tokens_per_s:,.0f} tokens/s at {fleet.concurrency:,} sequences, {fleet.status}{gap} "
        "(replicas within one node type)",
        ["node type", "GPU", "GPUs", "plan", "load", "tokens/s", "tok/s/GPU", "share"],
    )
    for p in fleet.parts:
        t.add_row(
            p.node_type,
            p.gpu_type.split("-")[0],
            f"{p.gpus:,}",
            p.shape,
            f"{p.concurrency:,}",
            f"{p.tokens_per_s:,.0f}",
            f"{p.tokens_per_s_per_gpu:,.1f}",
            f"{p.tokens_per_s / fleet.tokens_per_s:.0%}",
        )
    return t


def workload_label(w: Workload) -> str:
    """Every workload setting that changes the figures, in words: lengths, dtypes, regime, engine, remedies."""
    parts = [f"isl {w.isl}", f"osl {w.osl}", f"{w.weight_dtype} weights", f"{w.kv_dtype} KV", w.mode, w.engine]
    if w.statistic != "mean":
        parts.append(w.statistic)
    if w.gpu_memory_fraction != Workload.model_fields["gpu_memory_fraction"].default:
        parts.append(f"gpu memory fraction {w.gpu_memory_fraction:g}")
    return ", ".join(parts + w.remedy_labels())


def _load_cell(concurrency: int, solved_at: int | None) -> str:
    return f"{concurrency:,}" if solved_at in (None, concurrency) else f"{concurrency:,} (as {solved_at:,})"


def _compare_block(result: CompareResult, topology: str) -> list[Table]:
    """One machine's rows: the headline figures, then the time per token by component (two tables of at most seven
    columns each, so that every figure fits 80 columns whole)."""
    rows = [r for r in result.rows if r.topology == topology]
    n_gpus = rows[0].n_gpus if rows else 0
    head = table(
        f"{topology} ({count(n_gpus, 'GPU')})",
        ["load", "plan", "TPOT ms", "TTFT ms", "tok/s", "tok/s /GPU", "KV cap."],
        right=("load", "TPOT ms", "TTFT ms", "tok/s", "tok/s /GPU", "KV cap."),
    )
    parts = table(
        None,
        ["load", "weights ms", "KV ms", "comm ms", "other ms", "x roofline"],
        right=("load", "weights ms", "KV ms", "comm ms", "other ms", "x roofline"),
    )
    for r in rows:
        load = _load_cell(r.concurrency, r.solved_concurrency)
        if not r.fits:
            head.add_row(load, "does not fit", "", "", "", "", "")
            continue
        b = r.breakdown_ms
        head.add_row(
            load,
            (r.shape or "").replace(" x ", "x"),
            f"{r.tpot_ms:.2f}",
            f"{r.ttft_ms:,.1f}",
            f"{r.tokens_per_s:,.0f}",
            f"{r.tokens_per_s_per_gpu:,.1f}",
            f"{r.max_concurrency:,}",
        )
        parts.add_row(
            load,
            f"{b['weights']:.2f}",
            f"{b['kv']:.2f}",
            f"{b['interconnect']:.2f}",
            f"{sum(v for k, v in b.items() if k not in ('weights', 'kv', 'interconnect')):.2f}",
            f"{r.roofline_ratio:.2f}",
        )
    parts.caption = "ms per token; other: compute, overhead, host streaming"
    return [head, parts] if parts.row_count else [head]


def compare_table(result: CompareResult) -> Group:
    """Per machine, its best plan at each load (blocks, so 80 columns hold every figure whole), then the verdict."""
    title = f"{result.model}: best plan per machine and load ({result.objective}; {workload_label(result.workload)})"
    blocks = [b for topo in result.topologies for b in _compare_block(result, topo)]
    return Group(title, *blocks, *(f"- {line}" for line in result.verdict))


def _measure(value: float | None, unit: str) -> str:
    return "" if value is None else f"{value:,.4g} {unit}"


def validation_table(report: ValidationReport) -> Group:
    """Each check with its figures; the notes below the table, numbered, so that a row fits 80 columns."""
    t = table(
        f"validate {report.plan}: {report.world_size} ranks, {report.backend}, {report.scale} scale, "
        f"batch {report.batch}, {report.decode_tokens} decode steps",
        ["check", "rank", "predicted", "measured", "result", "note"],
        right=("rank", "predicted", "measured", "note"),
    )
    notes: list[str] = []
    for c in report.checks:
        if c.note and c.note not in notes:
            notes.append(c.note)
        result = "reported" if c.passed is None else ("pass" if c.passed else "FAIL")
        t.add_row(
            c.name,
            "" if c.rank is None else str(c.rank),
            _measure(c.predicted, c.unit),
            _measure(c.measured, c.unit),
            result,
            f"[{notes.index(c.note) + 1}]" if c.note else "",
        )
    lines = [f"[{k}] {n}" for k, n in enumerate(notes, 1)]
    return Group(t, *lines, "all checks passed" if report.passed else "SOME CHECKS FAILED")


#: engines by one letter in 80-column tables (the caption spells them out).
ENGINE_LETTERS = {"vllm": "v", "sglang": "s", "trtllm": "t"}


def _engine_letters(engines: list[str]) -> str:
    return "".join(ENGINE_LETTERS.get(e, e) for e in engines) or "-"


def frontier_table(result: FrontierResult, all_points: bool = False) -> Table:
    """The frontier's points (or every point), fastest per user first; each at its own load. Seven short columns, so
    that a row fits 80 columns on one line."""
    w = result.workload
    pts = sorted(result.points if all_points else result.on_frontier, key=lambda p: -p.tokens_per_s_per_user)
    t = table(
        f"{result.model} on {count(result.gpus, 'GPU')} of {result.topology}: "
        f"{'every point' if all_points else 'the Pareto frontier'} ({workload_label(w)})",
        ["shape", "load", "TPOT ms", "TTFT ms", "tok/s/user", "tok/s/GPU", "eng"],
        right=("load", "TPOT ms", "TTFT ms", "tok/s/user", "tok/s/GPU"),
    )
    for p in pts:
        t.add_row(
            p.shape.replace(" x ", "x") + ("*" if p.frontier else ""),
            f"{p.concurrency:,}",
            f"{p.tpot_ms:.1f}",
            f"{p.ttft_ms:,.0f}",
            f"{p.tokens_per_s_per_user:.1f}",
            f"{p.tokens_per_s_per_gpu:,.0f}",
            _engine_letters(p.engines),
        )
    t.caption = (
        f"{len(result.on_frontier)} frontier points (*) of {len(result.points)}; every figure at its own "
        "load; eng: engines that run the plan as it is (v vLLM, s SGLang, t TensorRT-LLM)"
    )
    return t


def _change(value: float | None) -> str:
    return "" if value is None else f"{value:+.0%}"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def remedies_table(result: RemediesResult) -> list[Table]:
    """One table per load: each remedy's re-solved plan, ranked by TPOT, against the baseline; then what each
    remedy assumes and what is not modelled."""
    out = []
    for c in result.concurrencies:
        t = table(
            f"{result.model}, {count(result.gpus, 'GPU')} of {result.topology}, {count(c, 'sequence')} (isl "
            f"{result.workload.isl}, osl {result.workload.osl}): each remedy re-solved",
            ["remedy", "plan", "TPOT ms", "vs", "TTFT ms", "tok/s", "vs", "KV cap"],
            right=("TPOT ms", "vs", "TTFT ms", "tok/s", "KV cap"),
        )
        for r in (r for r in result.rows if r.concurrency == c):
            if not r.fits:
                t.add_row(r.remedy, "does not fit", "", "", "", "", "", "")
                continue
            plan = r.shape.replace(" x ", "x") + (f" host:{format_ids(r.streamed_layers)}" if r.streamed_layers else "")
            t.add_row(
                r.remedy,
                plan,
                _ms(r.tpot_ms),
                _change(r.tpot_change),
                _ms(r.ttft_ms),
                f"{r.tokens_per_s:,.1f}",
                _change(r.tokens_per_s_change),
                f"{r.max_concurrency:,}",
            )
        out.append(t)
    notes = table(
        "what each figure rests on (vs: change against the baseline at the same load)",
        ["remedy", "assumes", "not modelled"],
    )
    seen = set()
    for r in result.rows:
        if r.remedy not in seen:
            seen.add(r.remedy)
            notes.add_row(r.remedy, r.assumption, r.caveat)
    return out + [notes]
