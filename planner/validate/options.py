"""What `planner validate` asks, declared once: each field is an option of the command (planner.cli.options derives
them; the description is the help, a choice or bound out of range is one line naming the flag)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from planner.validate.runner import MAX_TOKENS


class ValidateOptions(BaseModel):
    """The backend and scale a plan runs at, the decode steps, and how long the run may take."""

    model_config = ConfigDict(extra="forbid")
    backend: Literal["gloo", "nccl"] = Field(
        "gloo", description="the torch.distributed backend: gloo (CPU) or nccl (GPUs)"
    )
    scale: Literal["mini", "full"] = Field(
        "mini", description="model dimensions: mini (small, CPU) or full (real, GPUs)"
    )
    tokens: StrictInt = Field(4, ge=1, le=MAX_TOKENS, description="decode steps after the prefill")
    timeout: float = Field(120.0, gt=0, description="seconds before the run is ended")

    def run_arguments(self) -> dict[str, Any]:
        """The keyword arguments of planner.validate.runner.validate."""
        return {"backend": self.backend, "scale": self.scale, "tokens": self.tokens, "timeout_s": self.timeout}
