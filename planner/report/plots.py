"""Pictures (matplotlib, Agg): `planner compare` (three panels, one colour per machine), `planner frontier` and
`planner remedies` (where the time goes, per remedy)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from planner.compare import NAMES, CompareResult
from planner.cost.estimate import COMPONENTS
from planner.errors import InputError
from planner.files import check_writable, write_file
from planner.frontier import FrontierPoint, FrontierResult, pareto_flags

if TYPE_CHECKING:
    from planner.remedies import RemediesResult


PLOT_SUFFIXES = (".png", ".svg", ".pdf")


def check_plot_path(path: str | Path) -> Path:
    """A path matplotlib can write: a known image suffix, in a folder that exists."""
    p = Path(path)
    if p.suffix.lower() not in PLOT_SUFFIXES:
        raise InputError(f"--plot {path}: write a {', '.join(PLOT_SUFFIXES)} file")
    return check_writable(p, "the --plot picture")


def _save(fig: Any, path: Path) -> None:
    """Render in memory, then write through planner.files (one line, not a traceback, when the path fails)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format=path.suffix.lower().lstrip(".") or "png")
    write_file(path, buf.getvalue(), "the --plot picture")


def plot_compare(result: CompareResult, path: str | Path, breakdown_at: int | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    colours = {t: plt.get_cmap("tab10")(i % 10) for i, t in enumerate(result.topologies)}
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(17, 5.2), constrained_layout=True)
    fig.suptitle(
        f"{result.model}: {result.workload.weight_dtype} weights, {result.workload.kv_dtype} KV, "
        f"isl {result.workload.isl}, osl {result.workload.osl}, objective {result.objective}",
        fontsize=12,
    )
    _tpot_panel(ax_a, result, colours)
    _breakdown_panel(ax_b, result, colours, breakdown_at)
    _pareto_panel(ax_c, result, colours)
    _save(fig, path)
    plt.close(fig)
    return path


def _tpot_panel(ax: Any, result: CompareResult, colours: dict) -> None:
    """(a) TPOT against concurrency, one line per machine."""
    for t in result.topologies:
        rows = [r for r in result.rows if r.topology == t and r.fits]
        if rows:
            ax.plot([r.concurrency for r in rows], [r.tpot_ms for r in rows], "o-", color=colours[t], label=t)
    ax.set_xscale("log", base=2)
    ax.set_xticks(result.concurrencies, [str(c) for c in result.concurrencies])
    ax.set_xlabel("concurrency (sequences decoding together)")
    ax.set_ylabel("TPOT (ms per output token)")
    ax.set_title("(a) time per output token")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)


COMPONENT_HATCHES = {
    "weights": "",
    "kv": "//",
    "compute": "..",
    "interconnect": "xx",
    "overhead": "\\\\",
    "offload": "oo",
}
COMPONENT_SHADES = {"weights": 1.0, "kv": 0.8, "compute": 0.65, "interconnect": 0.5, "overhead": 0.35, "offload": 0.2}


def _breakdown_panel(ax: Any, result: CompareResult, colours: dict, breakdown_at: int | None) -> None:
    """(b) where a token's time goes at one concurrency: stacked components, one bar per machine."""
    at = breakdown_at if breakdown_at in result.concurrencies else result.concurrencies[0]
    rows = [r for t in result.topologies for r in result.rows if r.topology == t and r.concurrency == at and r.fits]
    hatches, shades = COMPONENT_HATCHES, COMPONENT_SHADES
    x = list(range(len(rows)))
    bottoms = [0.0] * len(rows)
    for comp in COMPONENTS:
        vals = [r.breakdown_ms.get(comp, 0.0) for r in rows]
        if not any(vals):
            continue
        ax.bar(
            x,
            vals,
            bottom=bottoms,
            color=[colours[r.topology] for r in rows],
            alpha=shades[comp],
            hatch=hatches[comp],
            edgecolor="black",
            linewidth=0.5,
        )
        ax.bar(
            [0],
            [0],
            color="grey",
            alpha=shades[comp],
            hatch=hatches[comp],
            edgecolor="black",
            linewidth=0.5,
            label=NAMES[comp],
        )  # a neutral legend swatch per component
        bottoms = [b + v for b, v in zip(bottoms, vals)]
    ax.set_xticks(x, [f"{r.topology}\n{r.shape}" for r in rows], fontsize=8)
    ax.set_ylabel("ms per output token")
    ax.set_title(f"(b) where a token's time goes, concurrency {at}")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _pareto_panel(ax: Any, result: CompareResult, colours: dict) -> None:
    """(c) the frontier's axes (planner.frontier): tokens/s per GPU against tokens/s per user, each machine's
    solved loads, its Pareto points joined."""
    for t in result.topologies:
        rows = [r for r in result.rows if r.topology == t and r.fits]
        if not rows:
            continue
        pts = [(1000.0 / r.tpot_ms, r.tokens_per_s_per_gpu) for r in rows]
        ax.scatter(*zip(*pts), color=colours[t], alpha=0.5)
        flags = pareto_flags([(y, x) for x, y in pts])
        front = sorted(p for p, f in zip(pts, flags) if f)
        ax.plot(*zip(*front), "o-", color=colours[t], label=f"{t} (Pareto)")
        for r, (x, y) in zip(rows, pts):
            ax.annotate(f"c={r.concurrency}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("tokens/s per user (1000 / TPOT ms)")
    ax.set_ylabel("tokens/s per GPU")
    ax.set_title("(c) throughput per GPU against speed per user")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)


def _frontier_line(ax: Any, front: list[FrontierPoint]) -> None:
    """The frontier over the shapes' lines: joined in black, its points in gold, each labelled with its shape and
    load."""
    users, per_gpu = [p.tokens_per_s_per_user for p in front], [p.tokens_per_s_per_gpu for p in front]
    ax.plot(users, per_gpu, "-", color="black", linewidth=2.2, zorder=3, label="Pareto frontier")
    ax.scatter(users, per_gpu, s=60, facecolor="gold", edgecolor="black", zorder=4)
    for k, p in enumerate(front):  # alternate sides so that neighbours' labels do not overlap
        right = k % 2 == 0
        ax.annotate(
            f"{p.shape} @{p.concurrency}",
            (p.tokens_per_s_per_user, p.tokens_per_s_per_gpu),
            fontsize=7,
            xytext=(8 if right else -8, 4 if right else -10),
            textcoords="offset points",
            zorder=5,
            ha="left" if right else "right",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def plot_frontier(result: FrontierResult, path: str | Path) -> Path:
    """tokens/s per GPU against tokens/s per user: each shape's loads as a faint line, the frontier highlighted
    and each of its points labelled with its shape and load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(11, 7), constrained_layout=True)
    shapes = sorted({p.shape for p in result.points})
    cmap = plt.get_cmap("tab20")
    for i, shape in enumerate(shapes):
        pts = sorted((p for p in result.points if p.shape == shape), key=lambda p: p.concurrency)
        ax.plot(
            [p.tokens_per_s_per_user for p in pts],
            [p.tokens_per_s_per_gpu for p in pts],
            "o-",
            color=cmap(i % 20),
            alpha=0.45,
            markersize=4,
            linewidth=1,
            label=shape,
        )
    _frontier_line(ax, result.on_frontier)
    w = result.workload
    ax.set_title(
        f"{result.model} on {result.gpus} GPUs of {result.topology}: isl {w.isl}, osl {w.osl}, "
        f"{w.weight_dtype} weights, {w.mode} mode"
    )
    ax.set_xlabel("tokens/s per user (1000 / TPOT ms)")
    ax.set_ylabel("tokens/s per GPU (output tokens, all users)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    _save(fig, path)
    plt.close(fig)
    return path


COMPONENT_COLOURS = {
    "weights": "tab:blue",
    "kv": "tab:orange",
    "compute": "tab:green",
    "interconnect": "tab:red",
    "overhead": "tab:gray",
    "offload": "tab:purple",
}


def _remedy_panel(ax: Any, rows: list, title: str) -> None:
    """Horizontal bars, one per remedy that fits, TPOT split into where the time goes."""
    labels = [r.remedy for r in rows]
    y = list(range(len(rows)))[::-1]
    left = [0.0] * len(rows)
    for comp in COMPONENTS:
        vals = [r.breakdown_ms.get(comp, 0.0) for r in rows]
        if any(vals):
            ax.barh(y, vals, left=left, color=COMPONENT_COLOURS[comp], edgecolor="black", linewidth=0.4)
            left = [a + b for a, b in zip(left, vals)]
    for yy, r, total in zip(y, rows, left):
        change = "" if r.tpot_change is None else f"  ({r.tpot_change:+.0%})"
        ax.text(total, yy, f" {r.tpot_ms:,.1f} ms{change}", va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlabel("TPOT, ms per output token")
    ax.set_title(title, fontsize=10)
    ax.set_xlim(0, max(left, default=1.0) * 1.3)
    ax.grid(True, axis="x", alpha=0.3)


def plot_remedies(result: RemediesResult, path: str | Path) -> Path:
    """Per load, the baseline and each remedy's TPOT split into weights, KV, compute, interconnect, overhead and
    host-memory streaming: where the time goes and what each remedy removes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    loads = result.concurrencies
    heights = [max(2.0, 0.32 * sum(1 for r in result.rows if r.concurrency == c and r.fits) + 1.0) for c in loads]
    fig, axes = plt.subplots(
        len(loads),
        1,
        figsize=(11, sum(heights)),
        constrained_layout=True,
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for ax, c in zip(axes[:, 0], loads):
        rows = [r for r in result.rows if r.concurrency == c and r.fits]
        _remedy_panel(ax, rows, f"{c:,} sequences decoding together")
    from matplotlib.patches import Patch

    shown = [c for c in COMPONENTS if any(r.breakdown_ms.get(c) for r in result.rows if r.fits)]
    fig.legend(
        [Patch(facecolor=COMPONENT_COLOURS[c], edgecolor="black") for c in shown],
        [NAMES[c] for c in shown],
        loc="outside lower center",
        ncol=len(shown),
        fontsize=9,
    )
    w = result.workload
    fig.suptitle(
        f"{result.model} on {result.gpus} GPUs of {result.topology}: each remedy re-solved (isl {w.isl}, osl {w.osl})",
        fontsize=12,
    )
    _save(fig, path)
    plt.close(fig)
    return path
