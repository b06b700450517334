"""Rich tables of models, machines and collectives, rendered from the models `--json` prints.

Every table folds long cells onto more lines instead of cutting them (`table`): on an 80-column
terminal, or piped, every GPU id and layer range still shows in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from rich.console import Group
from rich.table import Table

from planner.model.layergraph import ModelSummary
from planner.units import format_bytes, format_count

if TYPE_CHECKING:
    from planner.cost.collective_report import CollectiveRow
    from planner.hardware.summary import TopologySummary
    from planner.hardware.topology import Topology
    from planner.model.catalog import CatalogEntry

RIGHT: Literal["right"] = "right"


def table(title: str | None, columns: list[str], *, right: tuple[str, ...] = (), show_header: bool = True) -> Table:
    """A table whose cells fold rather than truncate."""
    t = Table(title=title, show_header=show_header, title_justify="left")
    for col in columns:
        t.add_column(col, justify=RIGHT if col in right else "left", overflow="fold")
    return t


def catalog_table(entries: list[CatalogEntry]) -> Table:
    t = table("model catalog", ["name", "aliases", "dtype", "hub id"])
    for e in entries:
        t.add_row(e.name, ", ".join(a for a in e.aliases if "/" not in a), e.dtype, e.hub_id)
    return t


def _model_head(summary: ModelSummary) -> Table:
    head = table(
        f"{summary.name}  ({summary.architecture}, {summary.attention.upper()})",
        ["what", "value"],
        right=("value",),
        show_header=False,
    )
    head.add_row("parameters", f"{summary.params:,} ({format_count(summary.params)})")
    if summary.active_params != summary.params:
        head.add_row("active parameters per token", format_count(summary.active_params))
    head.add_row(f"weights ({summary.weight_dtype})", format_bytes(summary.weight_bytes))
    head.add_row(f"KV cache per token ({summary.kv_dtype})", f"{summary.kv_bytes_per_token:,.0f} B")
    head.add_row("decode FLOPs per token (zero context)", format_count(summary.decode_flops_per_token))
    head.add_row(
        "hidden / layers / heads / KV heads",
        f"{summary.hidden_size} / {summary.n_layers} / {summary.n_heads} / {summary.n_kv_heads}",
    )
    head.add_row("TP must divide", ", ".join(f"{k} {v}" for k, v in summary.tp_divisors.items()))
    return head


def _runs(rows, all_layers: bool) -> list[tuple]:
    """Rows, with runs of identical decoder layers collapsed into one row and a count."""
    if all_layers or sum(r.kind == "decoder" for r in rows) <= 6:
        return [(r, 1) for r in rows]
    shown: list = []
    run: list = []
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
    return shown


def model_table(summary: ModelSummary, *, all_layers: bool = False) -> Group:
    layers = table(
        "layer graph",
        ["#", "node", "kind", "params", "weights", "KV B/token", "FLOPs/token", "note"],
        right=("#", "params", "weights", "KV B/token", "FLOPs/token"),
    )
    for r, count in _runs(summary.layers, all_layers):
        name = r.name if count == 1 else f"{r.name} .. layer.{int(r.name.split('.')[1]) + count - 1}"
        note = []
        if r.moe:
            note.append(
                f"MoE {r.moe['n_experts']}x top-{r.moe['top_k']}"
                + (f" +{r.moe['n_shared_experts']} shared" if r.moe["n_shared_experts"] else "")
            )
        if r.sliding_window:
            note.append(f"window {r.sliding_window}")
        if count > 1:
            note.append(f"x{count}")
        layers.add_row(
            str(r.index),
            name,
            r.kind,
            format_count(r.params),
            format_bytes(r.weight_bytes),
            f"{r.kv_bytes_per_token:,.0f}",
            format_count(r.decode_flops_per_token),
            ", ".join(note),
        )
    return Group(_model_head(summary), layers)


def _same(a, b) -> bool:
    return (a.params, a.weight_bytes, a.kv_bytes_per_token, a.decode_flops_per_token, a.sliding_window) == (
        b.params,
        b.weight_bytes,
        b.kv_bytes_per_token,
        b.decode_flops_per_token,
        b.sliding_window,
    )


def topology_list_table(rows: list[tuple[str, Topology]]) -> Table:
    t = table("shipped topologies", ["name", "GPUs", "nodes", "description"], right=("GPUs", "nodes"))
    for n, topo in rows:
        t.add_row(n, str(topo.n_gpus), str(topo.n_nodes), topo.definition.description)
    return t


def _gpu_rows(summary: TopologySummary) -> Table:
    head = table(
        f"{summary.name}: {summary.description}",
        ["GPU", "node", "type", "memory", "HBM", "bf16"],
        right=("GPU", "memory", "HBM", "bf16"),
    )
    for g in summary.gpus[:64]:
        head.add_row(
            str(g.id),
            f"{g.node}/{g.local_index}",
            g.type,
            format_bytes(g.memory_bytes),
            f"{g.hbm_bytes_per_s / 1e12:.2f} TB/s",
            f"{g.bf16_flops_per_s / 1e12:.0f} TFLOP/s",
        )
    if len(summary.gpus) > 64:
        types = sorted({g.type for g in summary.gpus})
        head.add_row("...", f"{summary.n_nodes} nodes", ", ".join(types), "", "", f"{len(summary.gpus)} GPUs in all")
    return head


def topology_table(summary: TopologySummary) -> Group:
    n = len(summary.links)
    shown = "" if summary.links_total == n else f", first {n} of {summary.links_total}"
    links = table(
        f"links (per direction){shown}", ["from", "to", "kind", "bandwidth", "latency"], right=("bandwidth", "latency")
    )
    for link in summary.links:
        links.add_row(
            link.a, link.b, link.kind, f"{link.bandwidth_bytes_per_s / 1e9:g} GB/s", f"{link.latency_s * 1e6:g} us"
        )
    parts = [_gpu_rows(summary), links]
    if summary.bandwidth_matrix_bytes_per_s is not None:
        n = len(summary.gpus)
        matrix = table(
            "GPU-to-GPU bandwidth, GB/s (bottleneck of the route)",
            [""] + [str(j) for j in range(n)],
            right=tuple(str(j) for j in range(n)),
        )
        for i in range(n):
            matrix.add_row(
                str(i), *("X" if i == j else f"{summary.bandwidth_matrix_bytes_per_s[i][j] / 1e9:g}" for j in range(n))
            )
        parts.append(matrix)
    else:
        pairs = table(
            "GPU pairs by route (a summary: the machine has too many GPUs for a matrix)",
            ["where", "link class", "bandwidth", "pairs"],
            right=("bandwidth", "pairs"),
        )
        for pc in summary.pair_classes:
            pairs.add_row(pc.scope, pc.link_class, f"{pc.bandwidth_bytes_per_s / 1e9:g} GB/s", f"{pc.pairs:,}")
        parts.append(pairs)
    return Group(*parts)


def collective_table(rows: list[CollectiveRow], title: str) -> Table:
    t = table(title, ["size", "bytes", "time", "busbw", "algorithm"], right=("size", "bytes", "time", "busbw"))
    for r in rows:
        t.add_row(
            r.size, f"{r.bytes:,}", f"{r.time_us:,.1f} us", f"{r.busbw_gbps:,.2f} GB/s", f"{r.algorithm}/{r.protocol}"
        )
    return t
