"""One deadline per command: `--time-limit` bounds the whole command, every sub-search included.

A command creates one `Deadline` when it starts and hands it down. Searches stop at `SEARCH_SHARE` of the
limit, which leaves time to evaluate and report the best plan found; every CP-SAT call gets at most what is
left as its wall-clock limit. The deadline is armed once a first plan exists (`armed`): until then a search
goes on, each call within its own budget, so that a limit shorter than the first plan still gets a plan (its
deterministic budget still decides the answer when time is not short, so the same inputs give the same plan).
A search cut short keeps the bounds of what it did not finish, so the answer is FEASIBLE with an honest bound
and gap, never a false OPTIMAL.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: Share of the limit the searches may use; the rest is kept for evaluating and reporting the best plan.
SEARCH_SHARE = 0.95
#: Until this share of the limit, shapes left unsolved are still bounded (cheaply) for an honest gap.
BOUND_SHARE = 1.05
#: ... and for at least this long past the limit (or past a first plan found after it).
BOUND_MIN_S = 0.5
#: The least wall time a CP-SAT call is given (one presolve); below it the call is not made.
MIN_SOLVE_S = 0.01


@dataclass
class Deadline:
    limit_s: float
    started: float = field(default_factory=time.perf_counter)
    armed: bool = False  # a plan exists: from now on the limit holds
    armed_at_s: float = 0.0

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def remaining_s(self) -> float:
        """Search time left (the share of the limit searches may use, less what has passed)."""
        return SEARCH_SHARE * self.limit_s - self.elapsed_s()

    @property
    def expired(self) -> bool:
        return self.armed and self.remaining_s() < MIN_SOLVE_S

    @property
    def bounds_left(self) -> bool:
        """Whether there is still time to bound (without CP-SAT) what a search cut short left unsolved: up to 5% past
        the limit (at least BOUND_MIN_S), so that a cut-short answer states its gap."""
        end = max(self.limit_s, self.armed_at_s)  # a first plan found past the limit moves the end
        return self.elapsed_s() < max(BOUND_SHARE * end, end + BOUND_MIN_S)

    def arm(self) -> None:
        if not self.armed:
            self.armed, self.armed_at_s = True, self.elapsed_s()

    def wall_s(self, seconds: float) -> float:
        """A CP-SAT call's wall-clock limit: at most `seconds`, and (once armed) never past the deadline."""
        return max(MIN_SOLVE_S, min(seconds, self.remaining_s())) if self.armed else seconds
