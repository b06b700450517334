"""What an open-loop prediction adds to a Prediction: the steady state at a request rate and the percentiles."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, Field


class Percentiles(BaseModel):
    """A latency over requests: its mean and percentiles, in ms."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float

    def at(self, percentile: int | None) -> float:
        """The mean (None) or the percentile 50, 90 or 99."""
        if percentile is None:
            return self.mean_ms
        return {50: self.p50_ms, 90: self.p90_ms, 99: self.p99_ms}[percentile]


class TrafficPrediction(BaseModel):
    """A plan at `request_rate_rps` Poisson arrivals: stable or not, the steady state, its queues and percentiles."""

    request_rate_rps: float = Field(description="arrivals, requests/s over all replicas")
    stable: bool = Field(description="whether the plan sustains the rate (a steady state exists)")
    sustainable_rate_rps: float = Field(description="the highest rate the plan sustains (steady state, finite waits)")
    running_concurrency: int = Field(description="sequences the engine runs at the steady state (all replicas)")
    in_system: Optional[float] = Field(
        None,
        description="requests in the system, waiting or running: rate x mean "
        "time in system (None where the rate is not sustained)",
    )
    prefill_utilisation: float = Field(description="share of steps carrying a newcomer's prompt chunk")
    prefill_wait_ms: Optional[float] = Field(None, description="mean wait for the prefill slot (M/G/1)")
    admission_wait_ms: Optional[float] = Field(
        None, description="mean wait for a sequence slot where KV or the batch limit is full (Erlang C)"
    )
    slots: int = Field(description="sequences the engine can run at once: KV capacity and batch limit, all replicas")
    ttft: Optional[Percentiles] = None
    tpot: Optional[Percentiles] = None
    arrival_cv2: float = Field(1.0, description="squared coefficient of variation of the arrivals' gaps (1: Poisson)")
    trace: Optional[str] = Field(None, description="the arrival trace the rate and lengths came from (--arrivals)")
    problem: Optional[str] = Field(None, description="why the rate is not sustained (None: it is)")
    finite_run: bool = Field(
        False,
        description="the figures are those of a finite run of num_prompts requests "
        "above the sustainable rate (a transient: the queue grows while they arrive)",
    )
