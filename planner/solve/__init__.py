"""Which split: candidate GPU groups, the CP-SAT model by constraint family, and the shape search.

`solve` is imported on first use: `planner.solve.options` (what the command line derives its options from)
stays light to import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["solve"]


def __getattr__(name: str) -> Any:
    if name == "solve":
        from planner.solve.search import solve

        return solve
    raise AttributeError(f"module 'planner.solve' has no attribute {name!r}")
