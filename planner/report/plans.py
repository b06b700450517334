"""Rich tables of predictions, plans, comparisons and validation runs. Every figure states its load."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table

from planner.plan import layout_label
from planner.report.tables import table
from planner.units import format_bytes, format_ids

if TYPE_CHECKING:
    from planner.compare import CompareResult
    from planner.frontier import FrontierResult
    from planner.plan import Plan, Prediction, StagePrediction, Workload
    from planner.remedies import RemediesResult
    from planner.validate.runner import ValidationReport


def _layers(s: StagePrediction) -> str:
    out = f"{s.layer_start}-{s.layer_end - 1}" if s.layer_end - s.layer_start > 1 else str(s.layer_start)
    out += (" +emb" if s.has_embedding else "") + (" +head" if s.has_lm_head else "")
    return out + (f" (host: {format_ids(s.offload_layers)})" if s.offload_layers else "")


def _layout(s: StagePrediction) -> str:
    return layout_label(s.tp, s.dp, s.ep)


def stage_table(pred: Prediction, title: str) -> Table:
    t = table(title, ["stage", "GPUs", "layers", "type", "weights", "KV/seq", "step ms", "comm ms"],
              right=("weights", "KV/seq", "step ms", "comm ms"))
    t.caption = "weights and KV per GPU (KV of one sequence at its full length)"
    for s in pred.stages:
        t.add_row(f"{s.index} {_layout(s)}", format_ids(s.gpu_ids), _layers(s), s.gpu_type.split("-")[0],
                  format_bytes(s.weight_bytes_per_gpu), format_bytes(s.kv_bytes_per_sequence_per_gpu),
                  f"{s.step_time_ms:.2f}", f"{s.interconnect_ms + s.transfer_out_ms:.2f}")
    return t


def _load_line(pred: Prediction, workload: Workload) -> str:
    mode = {"serving": "steady-state serving", "static": "static batch", "closed": "closed-loop waves"}[pred.mode]
    sequences = "1 sequence decoding" if pred.concurrency == 1 else f"{pred.concurrency:,} sequences decoding together"
    line = (f"at {sequences} ({mode}, isl {workload.isl}, osl {workload.osl}, "
            f"{workload.weight_dtype} weights, {workload.kv_dtype} KV"
            f"{''.join(', ' + r for r in workload.remedy_labels())})")
    if pred.mode == "serving" and pred.prefill_tokens_per_step:
        line += f"; each step also prefills {pred.prefill_tokens_per_step:,.0f} prompt tokens on average"
    return line


def totals_table(pred: Prediction, workload: Workload) -> Table:
    t = table(_load_line(pred, workload), ["what", "value"], right=("value",), show_header=False)
    t.add_row("TPOT",
              f"{pred.tpot_ms:.2f} ms  (roofline floor {pred.roofline_tpot_ms:.2f} ms, {pred.roofline_ratio:.2f}x)")
    t.add_row("TTFT", f"{pred.ttft_ms:,.1f} ms")
    t.add_row("throughput", f"{pred.tokens_per_s:,.1f} tokens/s ({pred.tokens_per_s_per_gpu:,.1f} per GPU, "
              f"{pred.tokens_per_s_per_user:,.1f} per user)")
    if pred.requests_per_s:
        t.add_row("requests/s", f"{pred.requests_per_s:,.2f} completed")
    t.add_row("KV capacity", f"{pred.max_concurrency:,} sequences")
    t.add_row("time per token", ", ".join(f"{k} {v:.2f} ms" for k, v in pred.time_breakdown_ms.items()
                                          if v or k != "offload"))
    t.add_row("HBM bytes per token", f"{format_bytes(pred.hbm_bytes_per_token)} (weights "
              f"{format_bytes(pred.hbm_weight_bytes_per_token)}, KV {format_bytes(pred.hbm_kv_bytes_per_token)})")
    links = ", ".join(f"{k} {format_bytes(v)}" for k, v in pred.interconnect_bytes_by_class.items() if v)
    t.add_row("link bytes per token",
              format_bytes(pred.interconnect_bytes_per_token) + (f" ({links})" if links else ""))
    worst = max(pred.memory_per_gpu_bytes.values())
    cap = min(pred.memory_capacity_bytes.values())
    t.add_row("memory per GPU",
              f"up to {format_bytes(worst)} of {format_bytes(cap)}" + ("" if pred.fits else "  DOES NOT FIT"))
    return t


def prediction_report(pred: Prediction, title: str, workload: Workload) -> Group:
    return Group(stage_table(pred, title), totals_table(pred, workload))


def _runners_up(plan: Plan) -> Table:
    alt = table("runners-up (the best plan of each other shape; engines that run it as it is)",
                ["shape", "TPOT ms", "tokens/s", "load", "layers per stage", "engines"],
                right=("TPOT ms", "tokens/s", "load"))
    for a in plan.alternatives:
        alt.add_row(a.shape, f"{a.prediction.tpot_ms:.2f}", f"{a.prediction.tokens_per_s:,.0f}",
                    f"{a.prediction.concurrency:,}", ",".join(str(n) for n in a.partition.layer_counts()),
                    ", ".join(a.engines) or "none (--any-shape)")
    return alt


def slo_lines(plan: Plan) -> list[str]:
    """Each SLO with the plan's figure and its margin: `TPOT <= 30 ms: 29.81 ms (0.19 ms to spare) ✓`."""
    out = []
    for name, slo, value in (("TPOT", plan.inputs.tpot_slo_ms, plan.prediction.tpot_ms),
                             ("TTFT", plan.inputs.ttft_slo_ms, plan.prediction.ttft_ms)):
        if slo is None:
            continue
        ok = value <= slo
        margin = f"{slo - value:,.2f} ms to spare" if ok else f"{value - slo:,.2f} ms over"
        out.append(f"{name} <= {slo:g} ms: {value:,.2f} ms ({margin}) {'✓' if ok else '✗'}")
    return out


def plan_report(plan: Plan) -> Group:
    pred, w = plan.prediction, plan.inputs.workload
    slos = [f"TPOT <= {plan.inputs.tpot_slo_ms:g} ms" for _ in [1] if plan.inputs.tpot_slo_ms is not None]
    slos += [f"TTFT <= {plan.inputs.ttft_slo_ms:g} ms" for _ in [1] if plan.inputs.ttft_slo_ms is not None]
    title = (f"{plan.inputs.model} on {plan.inputs.topology}: {plan.partition.shape} "
             f"[{plan.inputs.objective}{', ' + ', '.join(slos) if slos else ''}]")
    parts: list[Table | str] = [stage_table(pred, title), totals_table(pred, w), *slo_lines(plan)]
    if plan.replicas > 1:
        parts.append("replicas on GPUs: "
                     + "; ".join(" | ".join(format_ids(st) for st in rep) for rep in plan.replica_gpu_ids))
    s = plan.solver
    gap = f", gap {s.gap:.2%}" if s.gap else ""
    parts.append(f"solver: {s.status}{gap} in {s.wall_time_s:.2f} s ({s.resolution})")
    if s.note:
        parts.append(f"note: {s.note}")
    if plan.alternatives:
        parts.append(_runners_up(plan))
    return Group(*parts)


def compare_table(result: CompareResult) -> Group:
    t = table(f"{result.model}: best plan per machine and load ({result.objective})",
              ["machine", "load", "plan", "TPOT ms", "TTFT ms", "tokens/s", "tok/s/GPU", "KV cap.", "weights", "KV",
               "comm", "overhead", "x roofline"],
              right=("load", "TPOT ms", "TTFT ms", "tokens/s", "tok/s/GPU", "KV cap.", "weights", "KV", "comm",
                     "overhead", "x roofline"))
    for r in result.rows:
        if not r.fits:
            t.add_row(r.topology, str(r.concurrency), "does not fit", *[""] * 10)
            continue
        b = r.breakdown_ms
        t.add_row(r.topology, str(r.concurrency), r.shape, f"{r.tpot_ms:.2f}", f"{r.ttft_ms:.1f}",
                  f"{r.tokens_per_s:,.0f}", f"{r.tokens_per_s_per_gpu:,.1f}", f"{r.max_concurrency:,}",
                  f"{b['weights']:.2f}", f"{b['kv']:.2f}", f"{b['interconnect']:.2f}",
                  f"{b['overhead'] + b['compute']:.2f}", f"{r.roofline_ratio:.2f}")
    return Group(t, *(f"- {line}" for line in result.verdict))


def validation_table(report: ValidationReport) -> Group:
    t = table(f"validate {report.plan}: {report.world_size} ranks, {report.backend}, {report.scale} scale, "
              f"batch {report.batch}, {report.decode_tokens} decode steps",
              ["check", "rank", "predicted", "measured", "result", "note"], right=("rank", "predicted", "measured"))

    def fmt(v, unit):
        return "" if v is None else f"{v:,.4g} {unit}"

    for c in report.checks:
        result = "reported" if c.passed is None else ("pass" if c.passed else "FAIL")
        t.add_row(c.name, "" if c.rank is None else str(c.rank), fmt(c.predicted, c.unit), fmt(c.measured, c.unit),
                  result, c.note)
    return Group(t, "all checks passed" if report.passed else "SOME CHECKS FAILED")


def frontier_table(result: FrontierResult, all_points: bool = False) -> Table:
    """The frontier's points (or every point), fastest per user first; each at its own load."""
    w = result.workload
    pts = sorted(result.points if all_points else result.on_frontier, key=lambda p: -p.tokens_per_s_per_user)
    t = table(f"{result.model} on {result.gpus} GPUs of {result.topology}: "
              f"{'every point' if all_points else 'the Pareto frontier'} (isl {w.isl}, osl {w.osl}, {w.mode})",
              ["shape", "load", "TPOT ms", "TTFT ms", "tok/s/user", "tok/s/GPU", "front", "engines"],
              right=("load", "TPOT ms", "TTFT ms", "tok/s/user", "tok/s/GPU"))
    for p in pts:
        t.add_row(p.shape, f"{p.concurrency:,}", f"{p.tpot_ms:.1f}", f"{p.ttft_ms:,.0f}",
                  f"{p.tokens_per_s_per_user:.1f}",
                  f"{p.tokens_per_s_per_gpu:,.0f}", "*" if p.frontier else "", ", ".join(p.engines) or "none")
    t.caption = f"{len(result.on_frontier)} frontier points of {len(result.points)}; every figure at its own load"
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
        t = table(f"{result.model}, {result.gpus} GPUs of {result.topology}, {c:,} sequences (isl "
                  f"{result.workload.isl}, osl {result.workload.osl}): each remedy re-solved",
                  ["remedy", "plan", "TPOT ms", "vs", "TTFT ms", "tok/s", "vs", "KV cap"],
                  right=("TPOT ms", "vs", "TTFT ms", "tok/s", "KV cap"))
        for r in (r for r in result.rows if r.concurrency == c):
            if not r.fits:
                t.add_row(r.remedy, "does not fit", "", "", "", "", "", "")
                continue
            plan = r.shape.replace(" x ", "x") + (f" host:{format_ids(r.streamed_layers)}" if r.streamed_layers else "")
            t.add_row(r.remedy, plan, _ms(r.tpot_ms), _change(r.tpot_change), _ms(r.ttft_ms),
                      f"{r.tokens_per_s:,.1f}", _change(r.tokens_per_s_change), f"{r.max_concurrency:,}")
        out.append(t)
    notes = table("what each figure rests on (vs: change against the baseline at the same load)",
                  ["remedy", "assumes", "not modelled"])
    seen = set()
    for r in result.rows:
        if r.remedy not in seen:
            seen.add(r.remedy)
            notes.add_row(r.remedy, r.assumption, r.caveat)
    return out + [notes]
