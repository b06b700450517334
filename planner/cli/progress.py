"""Live progress of a long solve on a terminal: shapes tried of total, the best plan so far.

Shown on stderr, only when it is a terminal and the output is not --json, and only once the solve
has run for `DELAY_S` (short solves stay silent). Piped or redirected runs print nothing extra.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional

DELAY_S = 1.0


@contextlib.contextmanager
def solve_progress(enabled: bool) -> Iterator[Optional[Callable]]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from planner.cli.common import err_console

    bar = Progress(TextColumn("solving"), BarColumn(), MofNCompleteColumn(), TextColumn("shapes"),
                   TimeElapsedColumn(), TextColumn("{task.description}"), console=err_console, transient=True)
    task = None

    def update(p) -> None:
        nonlocal task
        if p.elapsed_s < DELAY_S and p.done < p.total:
            return
        if task is None:
            bar.start()
            task = bar.add_task("", total=p.total)
        bar.update(task, completed=p.done, total=p.total, description=f"best: {p.best}" if p.best else "")

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()
