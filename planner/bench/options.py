"""What `planner bench` asks, declared once: each field is an option of the command (planner.cli.options derives
them; the description is the help, the bounds are checked in one line naming the flag).

`--isl` and `--osl` are read by planner.traffic's parser (a length, uniform:A-B, lognormal:MEAN,SIGMA or a histogram);
unset, they are the plan's lengths. A closed loop (`--concurrency`) sends identical requests, so it takes fixed
lengths only; Poisson arrivals (`--request-rate`) sample each request's lengths from a seeded generator.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from planner.bench.measure import MAX_REQUESTS
from planner.plan import Workload
from planner.traffic.lengths import LengthDist, fixed, parse_length

_LENGTH_FORMS = (
    "; with --request-rate also uniform:A-B, lognormal:MEAN,SIGMA or a histogram (a .yaml file, or "
    "chat-sharegpt, history-sharegpt)"
)


class BenchOptions(BaseModel):
    """The load (closed loop or Poisson arrivals), the lengths, the requests, and where a fit goes."""

    model_config = ConfigDict(extra="forbid")
    concurrency: Optional[str] = Field(
        None,
        json_schema_extra={"short": "-c"},
        description="closed loop: requests in flight, comma separated (default 1,4)",
    )
    request_rate: Optional[str] = Field(
        None,
        description="open loop: Poisson arrivals, requests/s, comma separated "
        "for several rates (instead of --concurrency)",
    )
    isl: Optional[LengthDist] = Field(
        None,
        json_schema_extra={"text": True},
        description="prompt tokens per request (default: the plan's)" + _LENGTH_FORMS,
    )
    osl: Optional[LengthDist] = Field(
        None,
        json_schema_extra={"text": True},
        description="output tokens per request (default: the plan's)" + _LENGTH_FORMS,
    )
    requests: Optional[int] = Field(
        None,
        ge=1,
        le=MAX_REQUESTS,
        description="requests at each load or rate "
        "(default: 4 x the load, at least 8; at a rate, 10 s of arrivals, at least 32)",
    )
    seed: int = Field(0, ge=0, description="seed of the arrival times and lengths (--request-rate)")
    max_in_flight: int = Field(
        1000,
        ge=1,
        le=MAX_REQUESTS,
        description="open loop: stop with an error when this many requests are in flight as the next is due",
    )
    fit: Optional[str] = Field(None, description="fit the observable constants and write a calibration profile here")

    @model_validator(mode="before")
    @classmethod
    def _length_specs(cls, data: Any) -> Any:
        """`isl` / `osl` given as text: read by planner.traffic's parser (its message names the flag)."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for name in ("isl", "osl"):
            if isinstance(out.get(name), str):
                out[name] = parse_length(out[name], what=f"--{name}")  # a DistError is a ValueError: one line
        return out

    @model_validator(mode="after")
    def _one_loop(self) -> BenchOptions:
        if self.concurrency is not None and self.request_rate is not None:
            raise ValueError("--concurrency and --request-rate: give one (a closed loop, or Poisson arrivals)")
        if self.request_rate is None:
            for name, d in (("--isl", self.isl), ("--osl", self.osl)):
                if d is not None and d.kind != "fixed":
                    raise ValueError(
                        f"{name} {d.spec}: a closed loop sends identical requests; length "
                        "distributions need --request-rate"
                    )
        return self

    def lengths(self, workload: Workload) -> tuple[LengthDist, LengthDist]:
        """The prompt and output lengths: as given, else the plan's (its mean lengths, fixed)."""
        return self.isl or fixed(workload.isl), self.osl or fixed(workload.osl)
