"""What an engine profile is: the constants in which vLLM, SGLang and TensorRT-LLM differ, with their sources.

A profile sets a subset of `planner.cost.constants.Constants` (host time per step, per sequence and per request,
kernel efficiencies by shape, the token budget of a step, the most sequences scheduled, memory accounting and
reserves) and says, per number, where it comes from. Fitted numbers live in `fitted.yaml` beside this file
(written by `python benchmarks/fit_serving.py --write`), seeds in the engine's module; the fitted ones win.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.cost.constants import Constants


class EngineProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="vllm, sglang or trtllm")
    version: str = Field(description="the engine version the profile's fitted numbers were measured on")
    constants: dict[str, float | int | str] = Field(description="Constants fields this engine sets")
    sources: dict[str, str] = Field(description="per constant: where its value comes from")
    launch_flags: str = Field("", description="the memory and batching flags the profile assumes, as the engine "
                              "spells them")

    @model_validator(mode="after")
    def _every_number_has_a_source(self):
        unknown = sorted(set(self.constants) - set(Constants.model_fields))
        if unknown:
            raise ValueError(f"engine {self.name}: {unknown} are not cost-model constants")
        missing = sorted(set(self.constants) - set(self.sources))
        if missing:
            raise ValueError(f"engine {self.name}: no source for {missing}")
        return self
