"""Rich tables rendered from the same pydantic models that `--json` prints. No logic here."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from planner.layergraph import ModelSummary
from planner.units import format_bytes, format_count


def model_table(summary: ModelSummary, *, all_layers: bool = False) -> Group:
    head = Table(title=f"{summary.name}  ({summary.architecture}, {summary.attention.upper()})", show_header=False)
    head.add_column("what")
    head.add_column("value", justify="right")
    head.add_row("parameters", f"{summary.params:,} ({format_count(summary.params)})")
    if summary.active_params != summary.params:
        head.add_row("active parameters per token", format_count(summary.active_params))
    head.add_row(f"weights ({summary.weight_dtype})", format_bytes(summary.weight_bytes))
    head.add_row(f"KV cache per token ({summary.kv_dtype})", f"{summary.kv_bytes_per_token:,.0f} B")
    head.add_row("decode FLOPs per token (zero context)", format_count(summary.decode_flops_per_token))
    head.add_row("hidden / layers / heads / KV heads", f"{summary.hidden_size} / {summary.n_layers} / "
                 f"{summary.n_heads} / {summary.n_kv_heads}")
    head.add_row("TP must divide", ", ".join(f"{k} {v}" for k, v in summary.tp_divisors.items()))

    layers = Table(title="layer graph")
    for col in ("#", "node", "kind", "params", "weights", "KV B/token", "FLOPs/token", "note"):
        layers.add_column(col, justify="right" if col not in ("node", "kind", "note") else "left")
    rows = summary.layers
    decoders = [r for r in rows if r.kind == "decoder"]
    shown = rows
    if not all_layers and len(decoders) > 6:
        # Collapse runs of identical decoder layers into one row with a count.
        shown, run = [], []
        for r in rows:
            if r.kind == "decoder" and run and _same(run[-1], r):
                run.append(r)
                continue
            if run:
                shown.append((run[0], len(run)))
                run = []
            if r.kind == "decoder":
                run = [r]
            else:
                shown.append((r, 1))
        if run:
            shown.append((run[0], len(run)))
    else:
        shown = [(r, 1) for r in rows]
    for r, count in shown:
        name = r.name if count == 1 else f"{r.name} .. layer.{int(r.name.split('.')[1]) + count - 1}"
        note = []
        if r.moe:
            note.append(f"MoE {r.moe['n_experts']}x top-{r.moe['top_k']}"
                        + (f" +{r.moe['n_shared_experts']} shared" if r.moe["n_shared_experts"] else ""))
        if r.sliding_window:
            note.append(f"window {r.sliding_window}")
        if count > 1:
            note.append(f"x{count}")
        layers.add_row(str(r.index), name, r.kind, format_count(r.params), format_bytes(r.weight_bytes),
                       f"{r.kv_bytes_per_token:,.0f}", format_count(r.decode_flops_per_token), ", ".join(note))
    return Group(head, layers)


def _same(a, b) -> bool:
    return (a.params, a.weight_bytes, a.kv_bytes_per_token, a.decode_flops_per_token, a.sliding_window) == (
        b.params, b.weight_bytes, b.kv_bytes_per_token, b.decode_flops_per_token, b.sliding_window)


def topology_table(summary) -> Group:
    from planner.units import format_bytes

    head = Table(title=f"{summary.name}: {summary.description}", show_header=True)
    for col in ("GPU", "node", "type", "memory", "HBM", "bf16"):
        head.add_column(col, justify="left" if col in ("node", "type") else "right")
    for g in summary.gpus:
        head.add_row(str(g.id), f"{g.node}/{g.local_index}", g.type, format_bytes(g.memory_bytes),
                     f"{g.hbm_bytes_per_s / 1e12:.2f} TB/s", f"{g.bf16_flops_per_s / 1e12:.0f} TFLOP/s")
    links = Table(title="links (per direction)")
    for col in ("from", "to", "kind", "bandwidth", "latency"):
        links.add_column(col)
    for link in summary.links:
        links.add_row(link.a, link.b, link.kind, f"{link.bandwidth_bytes_per_s / 1e9:g} GB/s", f"{link.latency_s * 1e6:g} us")
    n = len(summary.gpus)
    matrix = Table(title="GPU-to-GPU bandwidth, GB/s (bottleneck of the path)")
    matrix.add_column("")
    for j in range(n):
        matrix.add_column(str(j), justify="right")
    for i in range(n):
        matrix.add_row(str(i), *("X" if i == j else f"{summary.bandwidth_matrix_bytes_per_s[i][j] / 1e9:g}" for j in range(n)))
    return Group(head, links, matrix)


def collective_table(rows, title: str) -> Table:
    table = Table(title=title)
    for col in ("size", "bytes", "time", "busbw", "algorithm"):
        table.add_column(col, justify="right" if col != "algorithm" else "left")
    for r in rows:
        table.add_row(r.size, f"{r.bytes:,}", f"{r.time_us:,.1f} us", f"{r.busbw_gbps:,.2f} GB/s", f"{r.algorithm}/{r.protocol}")
    return table


def prediction_table(pred, title: str) -> Group:
    from planner.units import format_bytes

    stages = Table(title=title)
    for col in ("stage", "GPUs", "layers", "GPU", "weights/GPU", "KV/seq/GPU", "step ms", "comm ms", "max conc."):
        stages.add_column(col, justify="left" if col in ("GPUs", "GPU", "layers") else "right")
    for s in pred.stages:
        layers = f"{s.layer_start}-{s.layer_end - 1}" + ("+e" if s.has_embedding else "") + ("+h" if s.has_lm_head else "")
        stages.add_row(f"{s.index} (TP{s.tp})", ",".join(map(str, s.gpu_ids)), layers, s.gpu_type.split("-")[0],
                       format_bytes(s.weight_bytes_per_gpu), format_bytes(s.kv_bytes_per_sequence_per_gpu),
                       f"{s.step_time_ms:.2f}", f"{s.interconnect_ms + s.transfer_out_ms:.2f}", f"{s.max_concurrency:,}")
    totals = Table(show_header=False, title="per token")
    totals.add_column("what")
    totals.add_column("value", justify="right")
    totals.add_row("TPOT", f"{pred.tpot_ms:.2f} ms  (roofline floor {pred.roofline_tpot_ms:.2f} ms, {pred.roofline_ratio:.2f}x)")
    totals.add_row("TTFT", f"{pred.ttft_ms:.1f} ms")
    totals.add_row("throughput", f"{pred.tokens_per_s:,.1f} tokens/s  ({pred.tokens_per_s_per_gpu:,.1f} per GPU)")
    totals.add_row("max concurrency", f"{pred.max_concurrency:,}")
    totals.add_row("time breakdown", ", ".join(f"{k} {v:.2f} ms" for k, v in pred.time_breakdown_ms.items()))
    totals.add_row("HBM bytes per token", f"{format_bytes(pred.hbm_bytes_per_token)} (weights "
                   f"{format_bytes(pred.hbm_weight_bytes_per_token)}, KV {format_bytes(pred.hbm_kv_bytes_per_token)})")
    totals.add_row("interconnect bytes per token", format_bytes(pred.interconnect_bytes_per_token) + "  (" + ", ".join(
        f"{k} {format_bytes(v)}" for k, v in pred.interconnect_bytes_by_class.items() if v) + ")")
    worst = max(pred.memory_per_gpu_bytes.values())
    cap = min(pred.memory_capacity_bytes.values())
    totals.add_row("memory per GPU", f"up to {format_bytes(worst)} of {format_bytes(cap)}" + ("" if pred.fits else "  DOES NOT FIT"))
    return Group(stages, totals)


def plan_report(plan) -> Group:
    pred = plan.prediction
    w = plan.inputs.workload
    title = (f"{plan.inputs.model} on {plan.inputs.topology}: {plan.partition.shape}  "
             f"[{plan.inputs.objective}, concurrency {w.concurrency}, isl {w.isl}, osl {w.osl}, "
             f"{w.weight_dtype} weights, {w.kv_dtype} KV]")
    parts = [prediction_table(pred, title)]
    if plan.inputs.objective == "throughput":
        parts.append(f"throughput is at the plan's KV capacity ({pred.max_concurrency:,} sequences); TPOT and TTFT "
                     f"are at concurrency {w.concurrency}")
    if plan.replicas > 1:
        parts.append("replicas on GPUs: " + "; ".join(
            " | ".join(",".join(map(str, st)) for st in rep) for rep in plan.replica_gpu_ids))
    s = plan.solver
    gap = f", gap {s.gap:.2%}" if s.gap else ""
    parts.append(f"solver: {s.status}{gap} in {s.wall_time_s:.2f} s ({s.resolution})")
    if plan.alternatives:
        alt = Table(title="runners-up (best plan of each other shape)")
        for col in ("shape", "TPOT ms", "tokens/s", "max conc.", "layers per stage"):
            alt.add_column(col, justify="left" if col in ("shape", "layers per stage") else "right")
        for a in plan.alternatives:
            alt.add_row(a.shape, f"{a.prediction.tpot_ms:.2f}", f"{a.prediction.tokens_per_s:,.1f}",
                        f"{a.prediction.max_concurrency:,}", ",".join(str(n) for n in a.partition.layer_counts()))
        parts.append(alt)
    return Group(*parts)


def compare_table(result) -> Group:
    table = Table(title=f"{result.model}: best plan per machine and load ({result.objective})")
    for col in ("machine", "conc.", "plan", "TPOT ms", "TTFT ms", "tokens/s", "tok/s/GPU", "max conc.",
                "weights", "KV", "comm", "overhead", "x roofline"):
        table.add_column(col, justify="left" if col in ("machine", "plan") else "right")
    for r in result.rows:
        if not r.fits:
            table.add_row(r.topology, str(r.concurrency), "does not fit", *[""] * 10)
            continue
        b = r.breakdown_ms
        table.add_row(r.topology, str(r.concurrency), r.shape, f"{r.tpot_ms:.2f}", f"{r.ttft_ms:.1f}",
                      f"{r.tokens_per_s:,.0f}", f"{r.tokens_per_s_per_gpu:,.1f}", f"{r.max_concurrency:,}",
                      f"{b['weights']:.2f}", f"{b['kv']:.2f}", f"{b['interconnect']:.2f}",
                      f"{b['overhead'] + b['compute']:.2f}", f"{r.roofline_ratio:.2f}")
    return Group(table, *(f"- {line}" for line in result.verdict))


def validation_table(report) -> Group:
    table = Table(title=f"validate {report.plan}: {report.world_size} ranks, {report.backend}, {report.scale} scale, "
                        f"batch {report.batch}, {report.decode_tokens} decode steps")
    for col in ("check", "rank", "predicted", "measured", "result", "note"):
        table.add_column(col, justify="right" if col in ("rank", "predicted", "measured") else "left")
    for c in report.checks:
        result = "reported" if c.passed is None else ("pass" if c.passed else "FAIL")
        fmt = (lambda v: "" if v is None else f"{v:,.4g}")
        table.add_row(c.name, "" if c.rank is None else str(c.rank), fmt(c.predicted) + (f" {c.unit}" if c.predicted is not None else ""),
                      fmt(c.measured) + (f" {c.unit}" if c.measured is not None else ""), result, c.note)
    return Group(table, "all checks passed" if report.passed else "SOME CHECKS FAILED")
