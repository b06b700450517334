"""Which split: candidate GPU groups, the CP-SAT model by constraint family, and the shape search.

The CP-SAT library itself is imported on first use (planner/solve/formulation.py), so importing the package
stays light.
"""

from __future__ import annotations

from planner.solve.search import solve

__all__ = ["solve"]
