"""The project's error types. Library code raises these; only the CLI prints them and exits.

Exit codes (DESIGN.md): 0 ok, 1 bad input, 2 infeasible (nothing fits), 3 a validation run failed.
"""

from __future__ import annotations


class PlannerError(Exception):
    """Base class: a message meant for a person, and the process exit code that goes with it."""

    exit_code = 1

    def __init__(self, message: str, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:  # one line, then one bullet per detail
        return "\n".join([self.message, *(f"  - {d}" for d in self.details)])


class InputError(PlannerError):
    """Bad input: an unknown name, a malformed file, an impossible option. Exit 1."""

    exit_code = 1


class ModelNotFoundError(InputError):
    """A model argument that is neither a catalog name, a config file, nor a reachable hub id."""


class ConfigError(InputError):
    """A model config.json or topology YAML that does not parse or misses a field."""


class PartitionError(InputError):
    """A partition that breaks a divisibility or coverage rule."""


class InfeasibleError(PlannerError):
    """Nothing fits: the model and its KV cache exceed the memory of the GPUs offered. Exit 2."""

    exit_code = 2


class UnsupportedPlanError(PlannerError):
    """An engine cannot express a plan. Exit 2."""

    exit_code = 2


class ValidationRunError(PlannerError):
    """A `planner validate` run failed (a rank died, timed out or a check failed). Exit 3."""

    exit_code = 3
