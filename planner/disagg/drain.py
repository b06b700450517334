"""What a closed-loop benchmark of N prompts measures for throughput: its output over its whole run, drain included.

`vllm bench serve --max-concurrency c --num-prompts N` (and its like) keeps c requests in flight until the last
prompt is sent, then waits for the c still running. Its output tokens/s is the run's total output over the run's
length, and the run outlasts N requests packed c at a time: once the last prompt is sent, fewer and fewer clients
are busy while the stragglers finish. With the steady rate X the run lasts

    N / X + DRAIN_SERVICES x (c - 1) / c x t_served

where t_served is a request's time in service (its TTFT less any queue wait, plus its decode): the tail is the
longest in-flight request's remaining time less the mean one's, a multiple of t_served set by how unequal the
requests are (one lone client has no tail: (c - 1) / c). For equal requests that start out of step the tail is half
a request; outputs that stop at EOS, unequal, make it longer.

DRAIN_SERVICES is fitted on dstack's 1P1D rows (tests/data/corpus/dstack.yaml, comparison/pd_ratio), which do not
map (their TP is not stated) and so are none of the rows the planner is checked on: from each row's published
figures alone (run length = N / requests_per_s; t_served = mean TTFT + (mean output - 1) x mean ITL, the
token-weighted decode time), over its 10 complete load-bound rows (TTFT under a fifth of t_served): 0.29-1.68,
median 1.14. Rows with 32,768-token prompts, whose outputs are nearly as long as asked, drain less (0.3-0.4);
EOS-stopped outputs of 2,048 asked drain more (0.9-1.7).
"""

from __future__ import annotations

#: The run's tail in requests' service times (fitted on dstack's unmapped 1P1D rows, module docstring).
DRAIN_SERVICES = 1.1


def drain_s(*, concurrency: int, served_s: float, drain_services: float = DRAIN_SERVICES) -> float:
    """How much longer than N / X a closed-loop run of `concurrency` clients lasts: its tail."""
    return drain_services * (concurrency - 1) / concurrency * served_s


def run_requests_per_s(steady_per_s: float, *, concurrency: int, prompts: int, served_s: float) -> float:
    """Requests/s over the whole run of `prompts` requests: the steady rate stretched by the run's tail."""
    if steady_per_s <= 0:
        return 0.0
    makespan_s = prompts / steady_per_s + drain_s(concurrency=concurrency, served_s=served_s)
    return prompts / makespan_s


def measured_drain_services(*, concurrency: int, prompts: int, run_s: float, served_s: float) -> float:
    """DRAIN_SERVICES as one run's published figures imply it: its length beyond N packed c at a time, in service
    times, over (c - 1) / c. The fit's formula (module docstring), for the rows' own numbers."""
    packed_s = prompts * served_s / concurrency
    return (run_s - packed_s) / served_s * concurrency / (concurrency - 1)
