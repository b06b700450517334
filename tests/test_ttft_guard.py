"""Issue 26 item 2: the TTFT guard. Every load the planner chooses keeps the prefill queue's utilisation at or
below SolveOptions.max_prefill_utilisation (0.9); a given load past it is warned about."""

from __future__ import annotations

from planner.cost.constants import DEFAULT
from planner.cost.prefill_guard import plan_prefill_utilisation, prefill_utilisation
from planner.cost.serving import operating_point
from planner.frontier import frontier
from planner.hardware import load_topology
from planner.plan import Workload
from planner.solve import solve
from planner.solve.options import SolveOptions


def test_prefill_utilisation_by_hand():
    """One replica, one stage, n sequences at isl 1024 / osl 256: newcomers need p = (n - 1) x 1024 / 256 prompt
    tokens per step (planner.cost.serving), carried in chunks of q = isl = 1024 while p < isl, so f = p / 1024:
    n = 9 gives 32 / 1024; n = 231 gives 920 / 1024 = 0.898 and n = 232 gives 924 / 1024 = 0.902."""
    w = Workload()
    assert DEFAULT.max_num_batched_tokens - 232 >= 1024  # the chunk is the prompt, not the step budget's room
    for n, expected in ((1, 0.0), (9, 32 / 1024), (231, 920 / 1024), (232, 924 / 1024)):
        assert (
            abs(prefill_utilisation(operating_point(w, concurrency=n, replicas=1, pp=1, c=DEFAULT)) - expected) < 1e-12
        )
    assert (
        prefill_utilisation(
            operating_point(w.model_copy(update={"mode": "static"}), concurrency=64, replicas=1, pp=1, c=DEFAULT)
        )
        == 0.0
    )


def test_throughput_load_stops_at_the_guard(profiles):
    """Llama-3.1-8B on 8xH100 for throughput: without the guard (bound 1) it picks 8 x 348 sequences whose prompts
    queue without bound (TTFT tens of seconds); with it, 231 per replica, the last load with f <= 0.9 (above)."""
    p, topo = profiles("llama-8b"), load_topology("8xh100")
    guarded = solve(p, topo, Workload(), options=SolveOptions(objective="throughput", top=0))
    unguarded = solve(
        p, topo, Workload(), options=SolveOptions(objective="throughput", top=0, max_prefill_utilisation=1.0)
    )
    assert guarded.replicas == 8 and guarded.prediction.concurrency == 8 * 231
    assert plan_prefill_utilisation(guarded) <= 0.9 < plan_prefill_utilisation(unguarded)
    assert guarded.prediction.ttft_ms < unguarded.prediction.ttft_ms / 10


def test_frontier_drops_points_past_the_guard(profiles):
    p, topo = profiles("llama-8b"), load_topology("8xh100")
    opts = SolveOptions(objective="throughput", gpus=2, time_limit_s=20)
    guarded = frontier(p, topo, Workload(), options=opts)
    loose = frontier(p, topo, Workload(), options=opts.model_copy(update={"max_prefill_utilisation": 1.0}))

    def util(pt) -> float:
        return prefill_utilisation(
            operating_point(Workload(), concurrency=pt.concurrency, replicas=pt.plan.replicas, pp=pt.plan.pp, c=DEFAULT)
        )

    assert guarded.points and all(util(pt) <= 0.9 for pt in guarded.points)
    assert any(util(pt) > 0.9 for pt in loose.points)


def test_estimate_past_the_guard_warns(cli):
    """TP4 x 2 replicas at 600 sequences: 300 per replica, f = min(1, 299 x 4 / 1024) = 1; at 64, f = 0.25."""
    code, _, err = cli(
        "estimate",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--tp",
        "4",
        "--replicas",
        "2",
        "--concurrency",
        "600",
    )
    assert code == 0 and "prefill queue utilisation 1.00 is past 0.9" in err, err
    code, _, err = cli(
        "estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "4", "--replicas", "2", "--concurrency", "64"
    )
    assert code == 0 and "prefill queue" not in err, err
