"""Wide expert parallelism across nodes: one stage over whole nodes, attention data-parallel on every GPU, the
experts split over all of them (EP = dp = n x GPUs per node), as SGLang and vLLM serve DeepSeek-class models at
scale. The CP-SAT model keeps a stage inside one node, so these shapes are priced here, each at the largest load
it serves, by the same estimate every plan is re-evaluated with (planner.cost.estimate: the dispatch and combine
all-to-alls are priced on their real routes, over the NICs and the fabric between nodes).

The space: n = 2, 3, ... nodes per replica where n x GPUs per node divides the routed experts, as many replicas
as fit. Per shape the load is the one decision; memory, TPOT, TTFT and the step budget all grow with it, so the
largest load that meets them is found by bisection (exact), and tokens/s grows with the load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from planner.cost.estimate import estimate
from planner.cost.prefill_guard import prefill_utilisation
from planner.cost.serving import operating_point
from planner.plan import Partition, Prediction, partition_from_counts
from planner.solve.cluster import _by_node
from planner.solve.objectives import Request, _largest

#: The widest EP group offered: issue 24 asks for EP over 16 to 128 GPUs (SGLang's 96-H100 DeepSeek deployment ran
#: EP over 72 decode GPUs, lmsys.org/blog/2025-05-05-large-scale-ep); the all-to-all's pricing walks every pair.
MAX_WIDE_EP_GPUS = 128


@dataclass(frozen=True)
class WidePlan:
    nodes_per_replica: int
    partition: Partition
    prediction: Prediction


def _meets(req: Request, part: Partition, per_replica: int) -> Prediction | None:
    """The prediction at `per_replica` sequences per replica where it fits and meets the SLOs and step budget."""
    o, w = req.options, req.workload
    load = part.replicas * per_replica
    op = operating_point(w, concurrency=load, replicas=part.replicas, pp=1, c=req.constants)
    if not op.feasible or prefill_utilisation(op) > o.max_prefill_utilisation:
        return None
    pred = estimate(
        req.profile, req.topo, part, workload=w.model_copy(update={"concurrency": load}), c=req.constants, check=False
    )
    if (
        not pred.fits
        or (o.tpot_slo_ms is not None and pred.tpot_ms > o.tpot_slo_ms)
        or (o.ttft_slo_ms is not None and pred.ttft_ms > o.ttft_slo_ms)
    ):
        return None
    return pred


def _serves(req: Request, part: Partition, per_replica: int) -> bool:
    return _meets(req, part, per_replica) is not None


def wide_ep_plans(
    req: Request, ids: list[int], *, most_per_replica: int = 1 << 14, stop: Callable[[], bool] = lambda: False
) -> list[WidePlan]:
    """The best load of every wide shape on the offered GPUs (copies of one node), best tokens/s first; `stop`
    (the command's deadline) ends the list early."""
    moe = req.profile.moe
    if moe is None:
        return []
    nodes = list(_by_node(req.topo, ids).values())
    per_node = len(nodes[0])
    out = []
    for n in range(2, len(nodes) + 1):
        ep = n * per_node
        if ep > MAX_WIDE_EP_GPUS or stop():
            break
        if moe.n_experts % ep:
            continue
        replicas = len(nodes) // n
        gpus = [g for node in nodes[: replicas * n] for g in node]
        part = partition_from_counts([req.profile.n_layers], gpus, 1, replicas=replicas, dp=ep, ep=ep)
        best = _largest(1, most_per_replica, functools.partial(_serves, req, part))
        pred = _meets(req, part, best) if best >= 1 else None
        if pred is not None:
            out.append(WidePlan(n, part, pred))
    return sorted(out, key=lambda p: -p.prediction.tokens_per_s)
