"""Live progress of a long solve on a terminal: shapes tried of total, the best plan so far.

Shown on stderr, only when it is a terminal and the output is not --json, and only once the solve
has run for `DELAY_S` (short solves stay silent). Piped or redirected runs print nothing extra.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from planner.cli.common import err_console

if TYPE_CHECKING:
    from planner.solve.search import Progress

DELAY_S = 1.0


@contextlib.contextmanager
def solve_progress(enabled: bool) -> Iterator[Optional[Callable[[Progress], None]]]:
    """A callback for `solve(progress=...)`; the bar appears after DELAY_S (a timer, so that a first shape
    that takes long is not silent) and is erased when the solve ends."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar
    from rich.table import Column

    bar = Bar(
        TextColumn("solving", table_column=Column(no_wrap=True)),
        BarColumn(bar_width=16, table_column=Column(min_width=16, no_wrap=True)),
        TextColumn("{task.fields[counts]}", table_column=Column(min_width=13, no_wrap=True)),
        TimeElapsedColumn(table_column=Column(min_width=7, no_wrap=True)),
        TextColumn("{task.description}", table_column=Column(ratio=1, overflow="ellipsis", no_wrap=True)),
        console=err_console,
        transient=True,
        expand=True,
    )
    task = bar.add_task("", total=None, counts="")
    lock = threading.Lock()

    def show() -> None:
        with lock:
            bar.start()

    def update(p: Progress) -> None:
        with lock:
            bar.update(
                task,
                completed=p.done,
                total=p.total,
                counts=f"{p.done}/{p.total} shapes",
                description=f"best {p.best}" if p.best else "",
            )

    timer = threading.Timer(DELAY_S, show)
    timer.daemon = True
    timer.start()
    try:
        yield update
    finally:
        timer.cancel()
        with lock:
            bar.stop()


@contextlib.contextmanager
def count_progress(enabled: bool, label: str) -> Iterator[Optional[Callable[[int, int], None]]]:
    """A callback (done, total) drawing a bar on stderr while work runs on a terminal; nothing otherwise."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn(label),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        bar.stop()
