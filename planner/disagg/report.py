"""The table of a disaggregated prediction (the same model as `--json`), 80 columns wide."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from planner.disagg.cost import DisaggPrediction
from planner.disagg.frontier import ServingCompare
from planner.disagg.plan import Pools, ServingChoice
from planner.units import format_ids


def disagg_table(pools: Pools, p: DisaggPrediction, title: str) -> Table:
    table = Table(title=title, width=80)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("prefill pool", f"{pools.prefill.label} on {pools.prefill.n_gpus} GPUs"),
        ("decode pool", f"{pools.decode.label} on {pools.decode.n_gpus} GPUs"),
        (f"load ({p.mode})", f"{p.concurrency:,}"),
        ("TTFT ms", f"{p.ttft_ms:,.1f}"),
        *((f"  {k} ms", f"{v:,.2f}") for k, v in p.ttft_breakdown_ms.items()),
        ("TPOT ms", f"{p.tpot_ms:,.2f}"),
        ("output tokens/s", f"{p.tokens_per_s:,.0f}"),
        ("tokens/s per GPU", f"{p.tokens_per_s_per_gpu:,.0f}"),
        ("sequences decoding", f"{p.decode_concurrency:,.1f} of {p.decode_max_concurrency:,}"),
        ("prefill / decode utilisation", f"{p.prefill_utilisation:.0%} / {p.decode_utilisation:.0%}"),
        ("limited by", p.limited_by),
        ("KV per request MB", f"{p.kv_bytes_per_request / 1e6:,.1f} in {p.kv_transfer_ms:,.2f} ms"),
        ("fits", "yes" if p.fits else "no"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if p.problem:
        table.caption = p.problem
    return table


def serving_report(choice: ServingChoice, pools: Pools | None) -> Group:
    """solve --serving: the chosen mode beside the other mode's best plan, the margin and the verdict."""
    table = Table(title=f"serving: {choice.chosen} chosen (asked {choice.asked})", width=80)
    for name in ("mode", "plan", "GPUs", "load", "TPOT ms", "TTFT ms", "tokens/s"):
        table.add_column(name, justify="left" if name in ("mode", "plan") else "right")
    for r in filter(None, [choice.best, choice.other]):
        table.add_row(
            r.mode + (" *" if r is choice.best else ""),
            r.shape,
            str(r.gpus),
            f"{r.concurrency:,}",
            f"{r.tpot_ms:,.2f}",
            f"{r.ttft_ms:,.1f}",
            f"{r.tokens_per_s:,.0f}",
        )
    parts: list[Table | str] = [table]
    if pools is not None:
        parts.append(
            f"prefill pool: {pools.prefill.label} on GPUs "
            + "; ".join(format_ids(ids) for ids in pools.prefill.gpu_ids)
        )
        parts.append(
            f"decode pool: {pools.decode.label} on GPUs " + "; ".join(format_ids(ids) for ids in pools.decode.gpu_ids)
        )
    if choice.margin is not None and choice.other is not None:
        parts.append(f"margin: {choice.margin:+.1%} tokens/s over the best {choice.other.mode} plan")
    elif choice.other_problem:
        parts.append(f"the other mode: {choice.other_problem}")
    parts.append(f"verdict: {choice.verdict}")
    return Group(*parts)


def disagg_frontier_table(points: list, all_points: bool) -> Table:
    """frontier --serving: the disaggregated points (frontier ones unless --all), 80 columns."""
    table = Table(title="disaggregated points (* on the frontier over both modes)", width=80)
    for name in ("pools", "load", "TPOT ms", "TTFT ms", "tok/s/GPU", "tok/s/user"):
        table.add_column(name, justify="left" if name == "pools" else "right")
    for p in sorted(points, key=lambda p: -p.tokens_per_s_per_user):
        if all_points or p.frontier:
            table.add_row(
                p.shape + (" *" if p.frontier else ""),
                f"{p.concurrency:,}",
                f"{p.tpot_ms:,.2f}",
                f"{p.ttft_ms:,.1f}",
                f"{p.tokens_per_s_per_gpu:,.0f}",
                f"{p.tokens_per_s_per_user:,.1f}",
            )
    return table


def compare_serving_report(result: ServingCompare) -> Group:
    """compare --serving: per machine, both modes' best tokens/s, the winner, the margin and why."""
    table = Table(title=f"{result.model}: aggregated against disaggregated, per machine", width=80)
    for name in ("machine", "agg plan", "agg tok/s", "disagg plan", "disagg tok/s", "won"):
        table.add_column(name, justify="right" if "tok/s" in name else "left")
    lines: list[Table | str] = [table]
    for m in result.machines:
        s = m.serving
        by = {r.mode: r for r in filter(None, [s.best, s.other])}
        cells = [
            (by[k].shape, f"{by[k].tokens_per_s:,.0f}") if k in by else ("none fits", "") for k in ("agg", "disagg")
        ]
        margin = f" +{s.margin:.0%}" if s.margin is not None else ""
        table.add_row(m.topology, *cells[0], *cells[1], s.chosen + margin)
        lines.append(f"{m.topology}: {s.verdict}")
    return Group(*lines)
