"""What it costs: collectives, decode and prefill steps, serving at load, memory, and `estimate`."""

from planner.cost.advice import infeasible_error, suggestions
from planner.cost.constants import DEFAULT, Constants, load_constants
from planner.cost.estimate import estimate

__all__ = ["DEFAULT", "Constants", "estimate", "infeasible_error", "load_constants", "suggestions"]
