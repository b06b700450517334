"""Which split: candidate GPU groups, the CP-SAT model by constraint family, and the shape search."""

from planner.solve.search import solve

__all__ = ["solve"]
