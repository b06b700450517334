"""The CP-SAT partition solver: which GPUs, which layers, which tensor-parallel degree.

Shape loop (small, outer): replicas R and pipeline depth PP. For each (R, PP) one CP-SAT model
decides everything else for replica 0 (replicas are copies on isomorphic slots of GPUs):

# Data.
- candidate GPU groups: subsets of one node, one GPU type, of a size that tensor parallelism can
  use (tp divides heads and intermediate sizes). A node whose GPUs all sit on one NVSwitch offers
  aligned blocks (all groups of a size are alike); a small irregular slot (<= 8 GPUs) offers every
  subset; larger slots offer aligned blocks of a locality order (GPUs sorted so that the best
  connected pairs, then switches, then sockets are adjacent). Identical nodes are interchangeable,
  so only the first PP nodes of each node class are offered.
- per (group, run of identical layers): the decode time of one layer, from the same cost-model
  functions `estimate` uses, in integer nanoseconds; bytes in integer bytes.

# Model.
- use[s, g]: stage s runs on group g; exactly one group per stage, each GPU in at most one stage.
- n[s, g, r]: layers of run r that stage s runs on group g (0 unless use[s, g]); the run counts per
  stage follow from integer boundaries 0 = b_0 < b_1 < ... < b_PP = L (contiguous, uneven allowed).
- stage time: sum of per-layer times x n, plus the embedding on stage 0, norm + lm_head on the
  last stage, plus the hand-off to the next stage (priced by the pair of nodes).
- memory per GPU of each used group: weights + KV for the replica's sequences + reserve <= capacity.
- objective: latency = TPOT = max(sum of stages, micro-batches x slowest stage); throughput = the
  largest concurrency the KV cache holds (then the slowest stage), optionally under a TPOT SLO;
  traffic = HBM + interconnect bytes per step on the critical path.
The best (R, PP) wins; the others become `alternatives`. Every candidate plan is re-evaluated with
`planner.cost.estimate`, so solve and estimate never disagree about a plan.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

from planner import cpsat
from planner.cpsat import lin_sum
from planner.constants import DEFAULT, Constants
from planner.cost import (
    GroupHardware,
    fixed_memory_bytes,
    held_weight_bytes,
    kv_bytes_per_token_per_gpu,
    stage_nodes,
    stage_step,
    transfer_bytes,
    transfer_pair_s,
    estimate,
)
from planner.errors import InfeasibleError, InputError
from planner.layergraph import LayerInfo, ModelProfile
from planner.plan import (
    Alternative,
    Partition,
    Plan,
    Prediction,
    SolverInfo,
    Stage,
    Workload,
    build_plan,
    tp_problems,
)
from planner.topology import Topology

OBJECTIVES = ("latency", "throughput", "traffic")
#: Integer resolution of the CP-SAT model: times in nanoseconds, bytes in bytes.
TIME_UNITS_PER_S = 1e9
RESOLUTION = "times in integer nanoseconds, bytes in integer bytes"
EXHAUSTIVE_SLOT_MAX = 8
MAX_CAPACITY = 1_000_000
#: CP-SAT deterministic time for each runner-up shape (best found, not necessarily proven).
RUNNER_UP_BUDGET = 0.2
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Group:
    gpu_ids: tuple[int, ...]
    node: str

    @property
    def tp(self) -> int:
        return len(self.gpu_ids)


@dataclass
class ShapeResult:
    replicas: int
    pp: int
    partition: Partition
    prediction: Prediction
    objective_value: float  # in the objective's natural unit (ms, -tokens/s... see _score)


# --- candidate groups ---------------------------------------------------------------------

def locality_order(topo: Topology, gpu_ids: list[int]) -> list[int]:
    """GPUs ordered so that the best-connected ones sit together (agglomerative merging)."""
    clusters = [[g] for g in sorted(gpu_ids)]

    def link(a: list[int], b: list[int]):
        worst_bw = min(topo.path(x, y).bandwidth_bytes_per_s for x in a for y in b)
        worst_lat = max(topo.path(x, y).latency_s for x in a for y in b)
        return (-worst_bw, worst_lat, min(a + b))

    while len(clusters) > 1:
        best = None
        for i, j in itertools.combinations(range(len(clusters)), 2):
            if topo.gpus[clusters[i][0]].node != topo.gpus[clusters[j][0]].node:
                continue
            key = link(clusters[i], clusters[j])
            if best is None or key < best[0]:
                best = (key, i, j)
        if best is None:  # different nodes: concatenate node by node
            clusters.sort(key=lambda c: (topo.gpus[c[0]].node_index, c[0]))
            return [g for c in clusters for g in c]
        _, i, j = best
        merged = clusters[i] + clusters[j]
        clusters = [c for k, c in enumerate(clusters) if k not in (i, j)] + [merged]
        clusters.sort(key=lambda c: (topo.gpus[c[0]].node_index, min(c)))
    return clusters[0]


def _valid_tps(profile: ModelProfile, max_tp: int) -> list[int]:
    return [t for t in range(1, max_tp + 1) if not tp_problems(profile, t)]


def _fully_switched_node(topo: Topology, ids: list[int]) -> bool:
    switches = {topo.nvswitch_of(i) for i in ids}
    types = {topo.gpus[i].spec.name for i in ids}
    return len(switches) == 1 and None not in switches and len(types) == 1


def candidate_groups(profile: ModelProfile, topo: Topology, slot: list[int], max_nodes: int,
                     max_tp: int | None = None, aligned_only: bool = False) -> list[Group]:
    by_node: dict[str, list[int]] = {}
    for g in slot:
        by_node.setdefault(topo.gpus[g].node, []).append(g)
    # identical nodes are interchangeable: offer the first `max_nodes` of each class
    classes: dict[tuple, list[str]] = {}
    for node, ids in by_node.items():
        sig = (tuple(topo.gpus[i].spec.name for i in sorted(ids)),
               tuple(round(topo.path(a, b).bandwidth_bytes_per_s) for a in sorted(ids) for b in sorted(ids) if a != b))
        classes.setdefault(sig, []).append(node)
    offered = sorted((n for nodes in classes.values() for n in nodes[:max_nodes]),
                     key=lambda n: topo.gpus[by_node[n][0]].node_index)
    exhaustive = len(slot) <= EXHAUSTIVE_SLOT_MAX and not aligned_only
    groups: list[Group] = []
    for node in offered:
        ids = sorted(by_node[node])
        tps = _valid_tps(profile, min(len(ids), max_tp or len(ids)))
        if exhaustive and not _fully_switched_node(topo, ids):
            for t in tps:
                for combo in itertools.combinations(ids, t):
                    if len({topo.gpus[i].spec.name for i in combo}) == 1:
                        groups.append(Group(combo, node))
        else:
            order = locality_order(topo, ids)
            for t in tps:
                for start in range(0, len(order) - t + 1, t):
                    combo = tuple(sorted(order[start:start + t]))
                    if len({topo.gpus[i].spec.name for i in combo}) == 1:
                        groups.append(Group(combo, node))
    return groups


def layer_runs(profile: ModelProfile) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of decoder layers with identical costs."""
    def sig(layer: LayerInfo):
        return (layer.params, layer.decode_flops_per_token, layer.attn_flops_per_context_token,
                layer.kv_elems_per_token, layer.sliding_window, layer.moe is not None,
                tuple(sorted((k, v.matrix, v.other) for k, v in layer.shards.items())))

    runs = []
    decs = profile.decoders
    start = 0
    for i in range(1, len(decs) + 1):
        if i == len(decs) or sig(decs[i]) != sig(decs[start]):
            runs.append((start, i))
            start = i
    return runs


# --- slots for replicas ----------------------------------------------------------------------

def replica_slots(topo: Topology, gpu_ids: list[int], replicas: int) -> list[list[int]] | None:
    """R isomorphic, disjoint slots of GPUs (consecutive in locality order), or None."""
    order = []
    by_node: dict[int, list[int]] = {}
    for g in gpu_ids:
        by_node.setdefault(topo.gpus[g].node_index, []).append(g)
    for k in sorted(by_node):
        order += locality_order(topo, by_node[k])
    size = len(order) // replicas
    if size < 1:
        return None
    slots = [order[r * size:(r + 1) * size] for r in range(replicas)]
    ref = slots[0]
    for other in slots[1:]:
        if [topo.gpus[g].spec.name for g in other] != [topo.gpus[g].spec.name for g in ref]:
            return None
        if len({topo.gpus[g].node for g in other}) != len({topo.gpus[g].node for g in ref}):
            return None
        if size <= 16:
            for (a, b), (x, y) in zip(itertools.permutations(ref, 2), itertools.permutations(other, 2)):
                if abs(topo.path(a, b).bandwidth_bytes_per_s - topo.path(x, y).bandwidth_bytes_per_s) > 1:
                    return None
    return slots


# --- one (R, PP) model -----------------------------------------------------------------------

@dataclass
class _Costs:
    """Integer coefficients of one group for one (R, PP)."""

    time_per_layer: list[int]  # per run, ns
    bytes_per_layer: list[int]  # per run, HBM + interconnect bytes per GPU (traffic objective)
    weight_per_layer: list[int]  # per run, held bytes per GPU
    kv_per_layer: list[int]  # per run, KV bytes per sequence per GPU
    first_time: int
    last_time: int
    first_bytes: int
    last_bytes: int
    first_weight: int
    last_weight: int
    capacity: int  # memory available for weights + KV
    stage_max_time: list[int] = field(default_factory=list)


def _group_costs(profile, topo, g: Group, runs, workload, tokens, ctx, c: Constants) -> _Costs:
    def step(start, end, first, last):
        return stage_step(profile, topo, list(g.gpu_ids), start, end, first, last, workload, tokens, ctx, c)

    def ns(x):
        return int(round(x * TIME_UNITS_PER_S))

    def traffic_bytes(st):
        return int(round(st.hbm_weight_bytes + st.hbm_kv_bytes + sum(st.interconnect.values()) / g.tp))

    t_layer, b_layer, w_layer, kv_layer = [], [], [], []
    seq = workload.isl + workload.osl
    for a, _ in runs:
        st = step(a, a + 1, False, False)
        t_layer.append(ns(st.time_s))
        b_layer.append(traffic_bytes(st))
        layer = profile.decoders[a]
        w_layer.append(int(math.ceil(held_weight_bytes(layer, g.tp, profile, workload.weight_dtype))))
        kv_layer.append(int(math.ceil(min(seq, layer.sliding_window or seq)
                                      * kv_bytes_per_token_per_gpu(layer, g.tp, profile, workload.kv_dtype))))
    L = profile.n_layers
    first, last = step(0, 0, True, False), step(L, L, False, True)
    w_first = sum(held_weight_bytes(n, g.tp, profile, workload.weight_dtype) for n in stage_nodes(profile, 0, 0, True, False))
    w_last = sum(held_weight_bytes(n, g.tp, profile, workload.weight_dtype) for n in stage_nodes(profile, L, L, False, True))
    hw = GroupHardware.of(topo, g.gpu_ids, workload.weight_dtype)
    cap = int(hw.memory_bytes * workload.gpu_memory_fraction - fixed_memory_bytes(c))
    return _Costs(t_layer, b_layer, w_layer, kv_layer, ns(first.time_s), ns(last.time_s), traffic_bytes(first),
                  traffic_bytes(last), int(math.ceil(w_first)), int(math.ceil(w_last)), cap)


def _shape_data(profile, topo, slot, replicas, pp, workload, c, cache, max_tp=None, aligned_only=False):
    per_replica = math.ceil(workload.concurrency / replicas)
    micro = min(pp, per_replica)
    tokens = math.ceil(per_replica / micro)
    runs = layer_runs(profile)
    groups = candidate_groups(profile, topo, slot, max_nodes=pp, max_tp=max_tp, aligned_only=aligned_only)
    costs = []
    for g in groups:
        key = (g.gpu_ids, tokens)
        if key not in cache:
            cache[key] = _group_costs(profile, topo, g, runs, workload, tokens, workload.mean_context, c)
        costs.append(cache[key])
    return per_replica, micro, tokens, runs, groups, costs


def _lower_bound(objective, profile, topo, slot, pp, micro, tokens, runs, groups, costs, c) -> float | None:
    """A bound no plan of this shape can beat (latency: ns, traffic: bytes); None if none is cheap."""
    if objective == "throughput" or not groups:
        return None
    min_tp = min(g.tp for g in groups)
    t_max = len(slot) - (pp - 1) * min_tp
    usable = [k for g, k in zip(groups, costs) if g.tp <= t_max]
    if not usable:
        return float("inf")
    field_ = "time_per_layer" if objective == "latency" else "bytes_per_layer"
    total = sum((hi - lo) * min(getattr(k, field_)[r] for k in usable) for r, (lo, hi) in enumerate(runs))
    if objective == "latency":
        total += min(k.first_time for k in usable) + min(k.last_time for k in usable)
        if pp > 1:  # every hand-off costs at least the cheapest hop between two nodes of the slot
            nodes = sorted({g.node for g in groups})
            tbytes = transfer_bytes(profile, tokens)
            cheapest = min(transfer_pair_s(topo, a, b, tbytes, c) for a in nodes for b in nodes)
            total += (pp - 1) * int(round(cheapest * TIME_UNITS_PER_S))
        return max(total, micro * total / pp, _pipeline_bound(pp, micro, len(slot), groups, costs, profile.n_layers))
    return total + min(k.first_bytes for k in usable) + min(k.last_bytes for k in usable)


def _throughput_bound(profile, topo, slot, replicas, pp, workload, c, cache, max_tp) -> float:
    """Tokens/s no plan of this shape can beat at its KV capacity. Every weight and every sequence's KV
    is held at least once in a replica, so capacity <= (usable memory - weights) / KV per sequence; a
    token takes at least the latency bound at that load; and C / TPOT(C) grows with C."""
    usable = sum(topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction - fixed_memory_bytes(c) for g in slot)
    seq = workload.isl + workload.osl
    kv_seq = sum(min(seq, n.sliding_window or seq) * n.kv_bytes_per_token(workload.kv_dtype) for n in profile.layers)
    free = usable - profile.weight_bytes(workload.weight_dtype)
    if free <= 0 or kv_seq <= 0:
        return 0.0
    cap = min(MAX_CAPACITY, int(free // kv_seq))
    if cap < 1:
        return 0.0
    at_cap = workload.model_copy(update={"concurrency": cap * replicas})
    data = _shape_data(profile, topo, slot, replicas, pp, at_cap, c, cache, max_tp)
    lb = _lower_bound("latency", profile, topo, slot, pp, *data[1:], c)
    if lb is None or lb <= 0 or lb == float("inf"):
        return 0.0 if lb == float("inf") else float("inf")
    return replicas * cap / (lb / TIME_UNITS_PER_S)


def _pipeline_bound(pp, micro, n_gpus, groups, costs, n_layers) -> float:
    """micro x slowest stage, at best: stages of TP t_s (sum of t_s <= GPUs) share the layers in
    proportion to their speed 1/f(t_s), so the slowest takes L / sum_s 1/f(t_s)."""
    if micro <= 1:
        return 0.0
    speed: dict[int, float] = {}
    for g, k in zip(groups, costs):
        f = min(k.time_per_layer)
        if f > 0:
            speed[g.tp] = max(speed.get(g.tp, 0.0), 1.0 / f)
    if not speed:
        return 0.0
    # best[used] = the largest total speed of the stages placed so far on `used` GPUs
    best = {0: 0.0}
    for _ in range(pp):
        nxt: dict[int, float] = {}
        for used, total in best.items():
            for t, v in speed.items():
                if used + t <= n_gpus and total + v > nxt.get(used + t, -1.0):
                    nxt[used + t] = total + v
        best = nxt
    if not best:
        return float("inf")
    return micro * n_layers / max(best.values())


def _solve_shape(profile, topo, slot, replicas, pp, workload, objective, tpot_slo_ms, time_limit_s, c, workers,
                 data, incumbent=None):
    """CP-SAT for one (R, PP). Returns (partition, objective, bound, optimal) or None if infeasible."""
    # Data.
    per_replica, micro, tokens, runs, groups, costs = data
    L = profile.n_layers
    if not groups or pp > L:
        return None
    nodes = sorted({g.node for g in groups}, key=lambda n: topo.gpus[topo.node_gpus()[n][0]].node_index)
    tbytes = transfer_bytes(profile, tokens)
    hop = {(a, b): int(round(transfer_pair_s(topo, a, b, tbytes, c) * TIME_UNITS_PER_S)) for a in nodes for b in nodes}
    hop_bytes = int(round(tbytes))

    # Model.
    m = cpsat.Model()
    S, G, R = range(pp), range(len(groups)), range(len(runs))
    use = {(s, g): m.new_bool_var(f"use[{s},{g}]") for s in S for g in G}
    n = {(s, g, r): m.new_int_var(0, runs[r][1] - runs[r][0], f"n[{s},{g},{r}]") for s in S for g in G for r in R}
    b = [m.new_int_var(0, L, f"b[{s}]") for s in range(pp + 1)]
    # One group per stage; each GPU in at most one stage.
    for s in S:
        m.add_exactly_one(use[s, g] for g in G)
    for gpu in slot:
        holders = [use[s, g] for s in S for g in G if gpu in groups[g].gpu_ids]
        if len(holders) > 1:
            m.add_at_most_one(holders)
    # Contiguous layer ranges: 0 = b_0 < b_1 < ... < b_PP = L.
    m.add(b[0] == 0)
    m.add(b[pp] == L)
    for s in S:
        m.add(b[s + 1] >= b[s] + 1)
    # Layers of run r in stage s = overlap of [b_s, b_s+1) with the run, split over the stage's group.
    for s in S:
        for r in R:
            lo, hi = runs[r]
            start = m.new_int_var(0, L, f"start[{s},{r}]")
            end = m.new_int_var(lo, hi, f"end[{s},{r}]")
            m.add_max_equality(start, [b[s], lo])
            clip_start = m.new_int_var(lo, hi, f"cs[{s},{r}]")
            m.add_min_equality(clip_start, [start, hi])
            e0 = m.new_int_var(0, L, f"e0[{s},{r}]")
            m.add_max_equality(e0, [b[s + 1], lo])
            m.add_min_equality(end, [e0, hi])
            m.add(lin_sum(n[s, g, r] for g in G) == end - clip_start)
            for g in G:
                m.add(n[s, g, r] <= (hi - lo) * use[s, g])
    # Memory: weights + KV for the replica's sequences fit each GPU of every used group.
    cap_var = None
    if objective == "throughput":
        cap_var = m.new_int_var(0, MAX_CAPACITY, "max_concurrency")
    for s in S:
        for g in G:
            k = costs[g]
            weights = lin_sum(k.weight_per_layer[r] * n[s, g, r] for r in R)
            weights += (k.first_weight if s == 0 else 0) * use[s, g] + (k.last_weight if s == pp - 1 else 0) * use[s, g]
            kv_seq = lin_sum(k.kv_per_layer[r] * n[s, g, r] for r in R)
            m.add(weights + per_replica * kv_seq <= k.capacity)
            if cap_var is not None and len(runs) == 1:
                # One run of identical layers: the KV capacity of the stage is a table over its layer count.
                extra = (k.first_weight if s == 0 else 0) + (k.last_weight if s == pp - 1 else 0)
                table = []
                for count in range(L + 1):
                    kv = k.kv_per_layer[0] * count
                    free = k.capacity - extra - k.weight_per_layer[0] * count
                    table.append(MAX_CAPACITY if kv == 0 else max(0, min(MAX_CAPACITY, free // kv)))
                cap_sg = m.new_int_var(0, MAX_CAPACITY, f"cap[{s},{g}]")
                m.add_element(n[s, g, 0], table, cap_sg)
                m.add(cap_var <= cap_sg).only_enforce_if(use[s, g])
            elif cap_var is not None:
                kv_var = m.new_int_var(0, sum(k.kv_per_layer[r] * (runs[r][1] - runs[r][0]) for r in R), f"kv[{s},{g}]")
                m.add(kv_var == kv_seq)
                prod = m.new_int_var(0, MAX_CAPACITY * max(1, sum(k.kv_per_layer)) * L, f"capkv[{s},{g}]")
                m.add_multiplication_equality(prod, [cap_var, kv_var])
                m.add(weights + prod <= k.capacity).only_enforce_if(use[s, g])
    # Stage times, with the hand-off priced by the pair of nodes.
    on_node = {(s, nd): m.new_bool_var(f"on[{s},{nd}]") for s in S for nd in nodes}
    for s in S:
        for nd in nodes:
            m.add(on_node[s, nd] == lin_sum(use[s, g] for g in G if groups[g].node == nd))
    stage_t = []
    stage_bytes = []
    for s in S:
        t_terms = [costs[g].time_per_layer[r] * n[s, g, r] for g in G for r in R]
        t_terms += [((costs[g].first_time if s == 0 else 0) + (costs[g].last_time if s == pp - 1 else 0)) * use[s, g]
                    for g in G]
        by = lin_sum([costs[g].bytes_per_layer[r] * n[s, g, r] for g in G for r in R]
                     + [((costs[g].first_bytes if s == 0 else 0) + (costs[g].last_bytes if s == pp - 1 else 0)) * use[s, g]
                        for g in G])
        if s < pp - 1:
            for a in nodes:
                for bnode in nodes:
                    pair = m.new_bool_var(f"hop[{s},{a},{bnode}]")
                    m.add_bool_and([on_node[s, a], on_node[s + 1, bnode]]).only_enforce_if(pair)
                    m.add_bool_or([on_node[s, a].Not(), on_node[s + 1, bnode].Not(), pair])
                    t_terms.append(hop[a, bnode] * pair)
            by += hop_bytes
        tv = m.new_int_var(0, 10**15, f"T[{s}]")
        m.add(tv == lin_sum(t_terms))
        stage_t.append(tv)
        stage_bytes.append(by)
    tpot = m.new_int_var(0, 10**16, "tpot")
    m.add(tpot >= lin_sum(stage_t))
    slowest = m.new_int_var(0, 10**15, "slowest")
    m.add_max_equality(slowest, stage_t)
    m.add(tpot >= micro * slowest)
    if tpot_slo_ms is not None:
        m.add(tpot <= int(tpot_slo_ms * 1e-3 * TIME_UNITS_PER_S))
    if incumbent is not None and objective == "latency":
        m.add(tpot <= incumbent)  # only plans at least as good as the best shape so far matter
    # Symmetry: used groups of one stage size come in candidate order is not imposed (stages differ).

    # Deterministic time (CP-SAT's own work units, roughly seconds) keeps the same inputs giving the same
    # plan on any machine; the wall-clock limit is only a safety net.
    limits = dict(deterministic_time_s=max(0.05, time_limit_s), wall_time_s=max(1.0, 4 * time_limit_s),
                  workers=workers, seed=0)
    if objective == "latency":
        m.minimize(tpot)
    elif objective == "traffic":
        total = m.new_int_var(0, 10**16, "traffic")
        m.add(total == lin_sum(stage_bytes))
        if incumbent is not None:
            m.add(total <= incumbent)
        m.minimize(total)
    else:
        m.maximize(cap_var)
    res = m.solve(**limits)
    if res.status == "UNKNOWN":
        return UNKNOWN  # the time ran out before a plan of this shape was found
    if res.status not in ("OPTIMAL", "FEASIBLE"):
        return None
    optimal = res.status == "OPTIMAL"
    value, bound = res.objective, res.bound
    if objective == "latency" and pp > 1:
        # Second phase: among plans of the best TPOT, balance the stages (the slowest as fast as possible).
        m.add(tpot <= int(round(value)))
        m.minimize(slowest)
        res = m.solve(**limits)
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            return None
        optimal = optimal and res.status == "OPTIMAL"
    if objective == "throughput":
        # Second phase: keep the best capacity, make the slowest stage as fast as possible.
        best_cap = res.value(cap_var)
        m.add(cap_var >= best_cap)
        m.minimize(micro * slowest)
        res = m.solve(**limits)
        if res.status not in ("OPTIMAL", "FEASIBLE"):
            return None
        optimal = optimal and res.status == "OPTIMAL"
    stages, start = [], 0
    for s in S:
        g = next(g for g in G if res.value(use[s, g]))
        end = res.value(b[s + 1])
        stages.append(Stage(layer_start=start, layer_end=end, gpu_ids=list(groups[g].gpu_ids), tp=groups[g].tp))
        start = end
    return stages, value, bound, optimal


def _evaluate(profile, topo, partition: Partition, workload: Workload, objective: str, c: Constants) -> Prediction:
    """The cost model's prediction of a plan; for throughput, tokens/s at the plan's KV capacity."""
    pred = estimate(profile, topo, partition, workload, c, check=False)
    if objective == "throughput":
        sat = workload.model_copy(update={"concurrency": max(1, pred.max_concurrency)})
        at_capacity = estimate(profile, topo, partition, sat, c, check=False)
        pred = pred.model_copy(update={"tokens_per_s": at_capacity.tokens_per_s,
                                       "tokens_per_s_per_gpu": at_capacity.tokens_per_s_per_gpu})
    return pred


def _score(objective: str, pred: Prediction, workload: Workload) -> float:
    """Lower is better: TPOT (ms), -tokens/s at the KV-capacity concurrency, or bytes per token."""
    if objective == "latency":
        return pred.tpot_ms
    if objective == "traffic":
        return pred.critical_path_bytes_per_token
    return -pred.tokens_per_s


def solve(
    profile: ModelProfile,
    topo: Topology,
    workload: Workload,
    *,
    objective: str = "latency",
    gpu_ids: list[int] | None = None,
    tpot_slo_ms: float | None = None,
    time_limit_s: float = 30.0,
    top: int = 3,
    max_pp: int | None = None,
    max_replicas: int | None = None,
    max_tp: int | None = None,
    constants: Constants = DEFAULT,
    workers: int = 1,
) -> Plan:
    """The best plan for `profile` on `topo` (or the given GPUs) under `workload`."""
    started = time.perf_counter()
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective '{objective}': choose one of {', '.join(OBJECTIVES)}")
    ids = sorted(gpu_ids) if gpu_ids is not None else list(range(topo.n_gpus))
    for g in ids:
        topo.gpu(g)
    if not ids:
        raise InputError("no GPUs to plan on")
    if not _valid_tps(profile, 1):
        raise InputError(f"{profile.name}: no tensor-parallel degree divides its dimensions")
    max_pp = min(max_pp or 16, profile.n_layers, len(ids))
    max_r = min(max_replicas or len(ids), len(ids), workload.concurrency if objective != "throughput" else len(ids))
    shapes = []
    for r in range(1, max_r + 1):
        slots = replica_slots(topo, ids, r)
        if slots is None:
            continue
        for pp in range(1, min(max_pp, len(slots[0])) + 1):
            shapes.append((r, pp, slots))
    results: list[ShapeResult] = []
    all_optimal = True
    cost_cache: dict = {}
    pruned: list = []
    incumbent = None  # best CP-SAT objective so far (latency: ns, traffic: bytes)
    best_tokens = None  # throughput: the best saturated tokens/s so far
    if objective == "throughput":
        bounds = {(r, pp): _throughput_bound(profile, topo, slots[0], r, pp, workload, constants, cost_cache, max_tp)
                  for r, pp, slots in shapes}
        shapes.sort(key=lambda x: (-bounds[x[0], x[1]], x[0], x[1]))  # most promising first
    shape_bounds: list[float] = []  # per shape not proven infeasible: a bound on its score (see _score)

    def in_score_units(value: float, tokens: int) -> float:
        """A CP-SAT objective value (ns, or bytes per step) in the units of _score."""
        return value / 1e6 if objective == "latency" else value / tokens

    for k, (r, pp, slots) in enumerate(shapes):
        data = _shape_data(profile, topo, slots[0], r, pp, workload, constants, cost_cache, max_tp)
        tokens = data[2]
        lb = _lower_bound(objective, profile, topo, slots[0], pp, *data[1:], constants)
        shape_lb = -bounds[r, pp] if objective == "throughput" else in_score_units(lb, tokens)
        if lb is not None and incumbent is not None and lb >= incumbent:
            pruned.append((lb, r, pp, slots, data))
            shape_bounds.append(shape_lb)
            continue  # no plan of this shape beats the incumbent: the bound proves it
        if objective == "throughput" and best_tokens is not None and bounds[r, pp] <= best_tokens:
            pruned.append((-bounds[r, pp], r, pp, slots, data))
            shape_bounds.append(shape_lb)
            continue  # even all of its memory as KV at the fastest speed cannot beat the incumbent
        budget = max(0.05, time_limit_s / len(shapes))
        out = _solve_shape(profile, topo, slots[0], r, pp, workload, objective, tpot_slo_ms, budget, constants, workers,
                           data, incumbent)
        if out is None:
            continue  # proven infeasible
        if out == UNKNOWN:
            all_optimal = False
            shape_bounds.append(shape_lb)
            continue
        stages, value, bound, optimal = out
        if objective in ("latency", "traffic") and (incumbent is None or value < incumbent):
            incumbent = int(value)
        all_optimal &= optimal
        if not optimal:
            shape_bounds.append(shape_lb if objective == "throughput" else in_score_units(bound, tokens))
        partition = _replicate(stages, slots, r)
        pred = _evaluate(profile, topo, partition, workload, objective, constants)
        if not pred.fits:
            continue
        if tpot_slo_ms is not None and pred.tpot_ms > tpot_slo_ms * (1 + 1e-9):
            continue
        results.append(ShapeResult(r, pp, partition, pred, _score(objective, pred, workload)))
        if objective == "throughput" and (best_tokens is None or pred.tokens_per_s > best_tokens):
            best_tokens = pred.tokens_per_s
    if pruned and len({x.partition.shape for x in results}) <= top:
        # Runners-up: solve the most promising pruned shapes on their own (small budget each).
        # They use aligned blocks of the locality order only, which keeps these models small.
        for lb, r, pp, slots, data in sorted(pruned, key=lambda x: x[0])[:top]:
            data = _shape_data(profile, topo, slots[0], r, pp, workload, constants, cost_cache, max_tp, aligned_only=True)
            out = _solve_shape(profile, topo, slots[0], r, pp, workload, objective, tpot_slo_ms,
                               RUNNER_UP_BUDGET, constants, workers, data)
            if out is None or out == UNKNOWN:
                continue
            partition = _replicate(out[0], slots, r)
            pred = _evaluate(profile, topo, partition, workload, objective, constants)
            if pred.fits:
                results.append(ShapeResult(r, pp, partition, pred, _score(objective, pred, workload)))
    if not results:
        raise _nothing_fits(profile, topo, ids, workload, tpot_slo_ms)
    results.sort(key=lambda x: (x.objective_value, x.replicas, x.pp, [s.gpu_ids for s in x.partition.stages]))
    best = results[0]
    # The best bound: the best plan where every shape was solved to optimality (or pruned by a bound);
    # otherwise the weakest bound of the shapes left open.
    if all_optimal:
        bound_val, gap = best.objective_value, 0.0
    else:
        bound_val = min([best.objective_value, *shape_bounds])
        gap = abs(best.objective_value - bound_val) / max(abs(best.objective_value), 1e-12)
    seen, alts = {best.partition.shape}, []
    for res in results[1:]:
        if res.partition.shape not in seen and len(alts) < top:
            seen.add(res.partition.shape)
            alts.append(Alternative(shape=res.partition.shape, partition=res.partition, prediction=res.prediction))
    proven = all_optimal or gap <= 1e-9  # the open shapes' bounds cannot beat the best plan
    info = SolverInfo(status="OPTIMAL" if proven else "FEASIBLE", objective=objective,
                      objective_value=best.objective_value, best_bound=bound_val, gap=gap,
                      wall_time_s=time.perf_counter() - started, resolution=RESOLUTION)
    return build_plan(profile, topo, best.partition, workload, best.prediction, info, objective, tpot_slo_ms, alts)


def _replicate(stages: list[Stage], slots: list[list[int]], replicas: int) -> Partition:
    if replicas == 1:
        return Partition(stages=stages)
    ref = slots[0]
    pos = {g: i for i, g in enumerate(ref)}
    reps = [[[slot[pos[g]] for g in st.gpu_ids] for st in stages] for slot in slots]
    return Partition(stages=stages, replicas=replicas, replica_gpu_ids=reps)


def _nothing_fits(profile, topo, ids, workload, tpot_slo_ms) -> InfeasibleError:
    from planner.cost import suggestions
    from planner.units import format_bytes

    cap = sum(topo.gpu(g).spec.memory_bytes * workload.gpu_memory_fraction - fixed_memory_bytes(DEFAULT) for g in ids)
    weights = profile.weight_bytes(workload.weight_dtype)
    kv = profile.kv_bytes_per_token(workload.kv_dtype) * (workload.isl + workload.osl) * workload.concurrency
    need = weights + kv
    if tpot_slo_ms is not None and need <= cap:
        return InfeasibleError(f"no plan of {profile.name} on {len(ids)} GPUs of {topo.name} meets TPOT <= {tpot_slo_ms:g} ms",
                               details=["raise --tpot-slo, lower --concurrency, or add GPUs"])
    details = [f"weights {format_bytes(weights)} + KV {format_bytes(kv)} (concurrency {workload.concurrency} x "
               f"{workload.isl + workload.osl} tokens) = {format_bytes(need)} against {format_bytes(cap)} usable "
               f"on {len(ids)} GPUs",
               f"per GPU: short by about {max(0.0, need - cap) / len(ids) / 1e9:.1f} GB"
               if need > cap else "the total fits, but no stage split respects every GPU's memory and the TP rules"]
    everything = Partition(stages=[Stage(layer_start=0, layer_end=profile.n_layers, gpu_ids=ids, tp=len(ids))])
    details += suggestions(profile, topo, everything, workload)
    return InfeasibleError(f"{profile.name} does not fit on {len(ids)} GPUs of {topo.name}", details=details)
