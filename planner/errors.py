"""The project's error types. Library code raises these; only the CLI prints them and exits.

Exit codes (docs/architecture.md): 0 ok, 1 bad input, 2 infeasible (nothing fits), 3 a validation
run failed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


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
    """A model config.json, topology YAML, plan or calibration file that does not parse or check."""


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


class BenchError(InputError):
    """`planner bench` could not measure: a bad URL, a server that is down or fails mid-stream. Exit 1."""


_HIDDEN_LOC_PARTS = ("GpusShorthand", "list[GpuDef]")


def _format_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def validation_messages(exc: ValidationError) -> list[str]:
    """One line per pydantic error: the field path, then what is wrong (`nodes[0].nvswitch.latency: ...`)."""
    msgs = []
    for err in exc.errors():
        loc = tuple(
            p
            for p in err["loc"]
            if not (
                isinstance(p, str)
                and ("function-" in p or p in _HIDDEN_LOC_PARTS or p.startswith(("tagged-union", "union")))
            )
        )
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        msgs.append(f"{_format_loc(loc)}: {msg}")
    return msgs


def config_error(source: str, exc: ValidationError, prefix: str = "") -> ConfigError:
    """A ConfigError naming the file and the first bad field; the others as details."""
    msgs = validation_messages(exc)
    return ConfigError(f"{source}: {prefix}{msgs[0]}", details=msgs[1:])
