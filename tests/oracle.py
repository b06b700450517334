"""A brute-force oracle for the solver: every plan of the plan space, evaluated, on small random machines.

The plan space (docs/solver.md): R replicas of one replica's stages; each stage one layout (every
stage the same tensor-parallel degree, as engines run them), its GPUs one type on one node; contiguous
layer ranges; replicas on disjoint GPU sets that map onto replica 0's route for route. Nothing here
shares the solver's pruning: GPU groups are all subsets, replica copies are searched among all
disjoint subsets, every layer split is tried.

Plans are evaluated with the cost model's own per-node functions (planner.cost.step.node_step),
memoised per layer, which is exactly what `estimate` sums; `check_against_estimate` confirms it on
the plans the oracle returns.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import yaml

from planner.cost.constants import Constants
from planner.cost.engines import resolve_constants
from planner.cost.memory import stage_memory, usable_bytes
from planner.cost.offload import buffer_bytes, stream_bytes_per_s, streamed_layer_s
from planner.cost.serving import operating_point
from planner.cost.shards import Layout, held_weight_bytes, stage_nodes
from planner.cost.step import GroupHardware, StageContext, StepLoad, engine_overhead_s, node_step, stage_comm
from planner.cost.transfer import transfer_bytes, transfer_pair_s
from planner.model.layergraph import LayerInfo, ModelProfile, ParamGroup
from planner.plan import Partition, Stage, Workload
from planner.solve.slots import isomorphism_map

H, I, HEADS, KV, HD, V = 512, 1024, 4, 2, 128, 4096
TPS = (1, 2, 4)
# resolved for the default engine (as solve resolves them), with the small reserve kept as a calibration would keep it
CONSTANTS = resolve_constants(
    Constants(runtime_reserve_bytes=50_000_000, calibrated=("runtime_reserve_bytes",)), "vllm"
)
#: MB of each GPU its engine never sees (the CUDA context, planner.cost.memory.usable_bytes): the tier GPUs below
#: are sized as the memory they are meant to offer plus this share.
CONTEXT_MB = round(CONSTANTS.cuda_context_bytes / 1e6)
#: Small GPUs, so that KV capacities (and the throughput oracle's load search) stay small.
GPU_TYPES = {
    "tiny-a": {"memory": "1GB", "hbm_bandwidth": "2TB/s", "flops": {"bf16": "400TFLOPS"}, "link": "pcie5"},
    "tiny-b": {"memory": "2GB", "hbm_bandwidth": "1TB/s", "flops": {"bf16": "150TFLOPS"}, "link": "pcie4"},
    # small enough that a 4-6 layer tiny model (4.7 MB a layer, 8.4 MB embedding and head) must stream layers: 70 and
    # 100 MB the engine sees (0.9 x 70 - 50 = 13 MB and 0.9 x 100 - 50 = 40 MB usable), plus the CUDA context
    "tiny-s": {
        "memory": f"{70 + CONTEXT_MB}MB",
        "hbm_bandwidth": "500GB/s",
        "flops": {"bf16": "100TFLOPS"},
        "link": "pcie4",
    },
    "tiny-m": {
        "memory": f"{100 + CONTEXT_MB}MB",
        "hbm_bandwidth": "500GB/s",
        "flops": {"bf16": "100TFLOPS"},
        "link": "pcie4",
    },
}


def tiny_model(n_layers: int, dense_first: int = 0) -> ModelProfile:
    """A Llama-shaped model; the first `dense_first` layers have a 4x wider MLP (two runs of layers)."""

    def decoder(i: int) -> LayerInfo:
        inter = 4 * I if i < dense_first else I
        split = 2 * H * H + 3 * H * inter
        kvp = 2 * H * KV * HD
        return LayerInfo(
            index=i + 1,
            name=f"layer.{i}",
            kind="decoder",
            decoder_index=i,
            params=split + kvp + 2 * H,
            shards={
                "split": ParamGroup(matrix=split),
                "kv": ParamGroup(matrix=kvp),
                "replicated": ParamGroup(other=2 * H),
            },
            kv_elems_per_token=2 * KV * HD,
            decode_flops_per_token=2 * (split + kvp),
            attn_flops_per_context_token=2 * HEADS * 2 * HD,
        )

    layers = [
        LayerInfo(
            index=0,
            name="embed",
            kind="embedding",
            params=V * H,
            shards={"vocab": ParamGroup(other=V * H)},
            decode_flops_per_token=0,
        )
    ]
    layers += [decoder(i) for i in range(n_layers)]
    layers += [
        LayerInfo(
            index=n_layers + 1,
            name="norm",
            kind="norm",
            params=H,
            shards={"replicated": ParamGroup(other=H)},
            decode_flops_per_token=0,
        ),
        LayerInfo(
            index=n_layers + 2,
            name="lm_head",
            kind="lm_head",
            params=V * H,
            shards={"vocab": ParamGroup(other=V * H)},
            decode_flops_per_token=2 * V * H,
        ),
    ]
    return ModelProfile(
        name="tiny",
        source="test",
        config_hash="0",
        architecture="Tiny",
        model_type="llama",
        hidden_size=H,
        n_layers=n_layers,
        n_heads=HEADS,
        n_kv_heads=KV,
        head_dim=HD,
        intermediate_size=I,
        vocab_size=V,
        max_position_embeddings=1 << 20,
        attention="gqa",
        layers=layers,
    )


def machine_yaml(nodes: list[dict], network: bool) -> str:
    doc = {"name": "random", "gpu_types": GPU_TYPES, "nodes": nodes}
    if network:
        doc["network"] = {"bandwidth": "200Gb/s", "latency": "3us"}
    return yaml.safe_dump(doc)


@dataclass
class Best:
    value: float
    partition: Partition
    load: int  # sequences over all replicas


class Oracle:
    """Every plan of the space on one machine, evaluated with memoised per-layer costs."""

    def __init__(
        self, profile: ModelProfile, topo, workload: Workload, c: Constants = CONSTANTS, offload: bool = False
    ):
        self.p, self.topo, self.w, self.c, self.offload = profile, topo, workload, c, offload
        self._memo: dict = {}
        self.groups = {
            t: [
                g
                for g in itertools.combinations(range(topo.n_gpus), t)
                if len({topo.gpus[i].node for i in g}) == 1 and len({topo.gpus[i].spec.name for i in g}) == 1
            ]
            for t in TPS
        }

    # --- per-stage costs ---------------------------------------------------------------------------
    def _nodes(self, a: int, b: int, first: bool, last: bool) -> list[LayerInfo]:
        return stage_nodes(self.p, a, b, first, last)

    def _node(self, group: tuple, layer: LayerInfo, load: StepLoad):
        key = ("node", group, layer.index, load)
        if key not in self._memo:
            lay = Layout(len(group))
            ctx = StageContext.of(
                profile=self.p,
                topo=self.topo,
                gpu_ids=group,
                layout=lay,
                weight_dtype=self.w.weight_dtype,
                kv_dtype=self.w.kv_dtype,
                constants=self.c,
            )
            self._memo[key] = node_step(ctx, layer, stage_comm(ctx, load), load)
        return self._memo[key]

    def stage(
        self, group: tuple, a: int, b: int, first: bool, last: bool, load: StepLoad, streamed: tuple = ()
    ) -> tuple[float, float]:
        """(time s, critical-path bytes) of a stage at one step load, streaming layers `streamed` from host memory."""
        t = traffic = 0.0
        for layer in self._nodes(a, b, first, last):
            s = self._node(group, layer, load)
            t += s.time_s
            traffic += s.hbm_weight_bytes + s.hbm_kv_bytes + sum(s.interconnect.values()) / len(group)
            if layer.kind == "decoder" and layer.decoder_index in streamed:
                rate = stream_bytes_per_s(self.topo, group, self.c)
                t += streamed_layer_s(
                    s.time_s,
                    layer,
                    Layout(len(group)),
                    profile=self.p,
                    weight_dtype=self.w.weight_dtype,
                    rate_bytes_per_s=rate,
                )
        if first:
            t += engine_overhead_s(load, self.c)
        return t, traffic

    def _held(self, group: tuple, i: int) -> float:
        return held_weight_bytes(self.p.decoders[i], Layout(len(group)), self.p, self.w.weight_dtype)

    def fits(self, stages, per_replica: int) -> bool:
        host: dict[str, float] = {}
        for k, (group, a, b, off) in enumerate(stages):
            w, kv = stage_memory(
                self.p,
                Layout(len(group)),
                a,
                layer_end=b,
                first=k == 0,
                last=k == len(stages) - 1,
                weight_dtype=self.w.weight_dtype,
                kv_dtype=self.w.kv_dtype,
                sequence_tokens=self.w.sequence_tokens,
            )
            if off:
                w += buffer_bytes(max(self._held(group, i) for i in off)) - sum(self._held(group, i) for i in off)
                node = self.topo.gpus[group[0]].node
                host[node] = host.get(node, 0.0) + len(group) * sum(self._held(group, i) for i in off)
            hw = GroupHardware.of(self.topo, group, self.w.weight_dtype)
            if w + per_replica * kv > usable_bytes(hw.memory_bytes, self.w.gpu_memory_fraction, self.c):
                return False
        return all(used <= self.topo.host_capacity_bytes(node) for node, used in host.items())

    def _hop(self, ga: tuple, gb: tuple, tokens: float) -> float:
        na, nb = self.topo.gpus[ga[0]].node, self.topo.gpus[gb[0]].node
        return transfer_pair_s(self.topo, na, nb, transfer_bytes(self.p, tokens), self.c)

    def tpot_ttft(self, stages, op) -> tuple[float, float, float]:
        """(TPOT s, TTFT s, critical-path bytes per token) of replica 0's stages at an operating point."""
        pp = len(stages)
        times, traffic = [0.0] * pp, 0.0
        for load, weight in op.tpot_loads:
            for k, (g, a, b, off) in enumerate(stages):
                t, by = self.stage(g, a, b, k == 0, k == pp - 1, load, off)
                times[k] += weight * (t + (self._hop(g, stages[k + 1][0], load.tokens) if k < pp - 1 else 0.0))
                traffic += weight * by
        tpot = max(sum(times), op.micro * max(times))
        chain = sum(
            self.stage(g, a, b, k == 0, k == pp - 1, op.ttft_load, off)[0]
            + (self._hop(g, stages[k + 1][0], op.ttft_load.tokens) if k < pp - 1 else 0.0)
            for k, (g, a, b, off) in enumerate(stages)
        )
        ttft = self.c.request_overhead_s + op.ttft_wait_steps * tpot + op.ttft_chunks * chain
        traffic += (pp - 1) * transfer_bytes(self.p, op.decode)
        return tpot, ttft, traffic / op.decode

    # --- enumeration -------------------------------------------------------------------------------
    def placements(self, tp: int, pp: int):
        """Replica 0's stage groups: ordered, disjoint, tp GPUs each."""
        for combo in itertools.permutations(self.groups[tp], pp):
            used = [i for g in combo for i in g]
            if len(used) == len(set(used)):
                yield combo

    def splits(self, pp: int):
        for cuts in itertools.combinations(range(1, self.p.n_layers), pp - 1):
            bounds = (0, *cuts, self.p.n_layers)
            yield [(bounds[s], bounds[s + 1]) for s in range(pp)]

    def copies(self, combo: tuple, replicas: int) -> list[dict[int, int]] | None:
        """Maps of replica 0's GPUs onto R - 1 more disjoint, route-for-route identical GPU sets."""
        base = tuple(sorted(i for g in combo for i in g))
        free = [i for i in range(self.topo.n_gpus) if i not in base]
        maps: list[dict[int, int]] = [{i: i for i in base}]

        def search(free_ids: list[int]) -> bool:
            if len(maps) == replicas:
                return True
            for cand in itertools.combinations(free_ids, len(base)):
                m = isomorphism_map(self.topo, base, cand)
                if m is not None:
                    maps.append(m)
                    if search([i for i in free_ids if i not in cand]):
                        return True
                    maps.pop()
            return False

        return maps if search(free) else None

    def shapes(self, max_pp: int, max_replicas: int):
        n = self.topo.n_gpus
        for r in range(1, max_replicas + 1):
            for pp in range(1, max_pp + 1):
                for tp in TPS:
                    if r * pp * tp <= n and pp <= self.p.n_layers:
                        yield r, pp, tp

    def partition(self, combo: tuple, split, maps, streamed=None) -> Partition:
        streamed = streamed or [()] * len(combo)
        stages = [
            Stage(layer_start=a, layer_end=b, gpu_ids=list(g), tp=len(g), offload_layers=list(off))
            for g, (a, b), off in zip(combo, split, streamed)
        ]
        if len(maps) == 1:
            return Partition(stages=stages)
        reps = [[[m[i] for i in g] for g in combo] for m in maps]
        return Partition(stages=stages, replicas=len(maps), replica_gpu_ids=reps)


def _slo_ok(tpot: float, ttft: float, tpot_slo_ms, ttft_slo_ms) -> bool:
    margin = 1e-6  # the solver's integer model keeps 1 us under an SLO (planner.solve.objectives.SLO_MARGIN_NS)
    return (tpot_slo_ms is None or tpot <= tpot_slo_ms * 1e-3 - margin) and (
        ttft_slo_ms is None or ttft <= ttft_slo_ms * 1e-3 - margin
    )


def plans(o: Oracle, r: int, pp: int, tp: int):
    """Every (partition stages, replica maps) of a shape."""
    seen: dict[tuple, list | None] = {}
    for combo in o.placements(tp, pp):
        key = tuple(sorted(i for g in combo for i in g))
        if key not in seen:
            seen[key] = o.copies(combo, r)
        if seen[key] is None:
            continue
        base = sorted(key)
        maps = [{g: m[g] for g in base} for m in seen[key]]
        for split in o.splits(pp):
            for streamed in _streamings(o, combo, split, r):
                yield [(g, a, b, off) for g, (a, b), off in zip(combo, split, streamed)], maps


def _streamings(o: Oracle, combo: tuple, split, replicas: int):
    """Every choice of layers each stage streams from host memory: every subset of its layers (none unless the
    oracle offloads, one replica, and the stage's GPUs have a tier)."""
    options = []
    for g, (a, b) in zip(combo, split):
        can = o.offload and replicas == 1 and all(o.topo.host_memory(i) is not None for i in g)
        subsets = [c for k in range(b - a + 1) for c in itertools.combinations(range(a, b), k)]
        options.append(subsets if can else [()])
    yield from itertools.product(*options)


def fixed_load(
    o: Oracle, objective: str, max_pp: int, max_replicas: int, tpot_slo_ms=None, ttft_slo_ms=None
) -> Best | None:
    """The least TPOT (latency) or critical-path bytes per token (traffic) at the workload's load."""
    best = None
    load = o.w.concurrency
    for r, pp, tp in o.shapes(max_pp, min(max_replicas, load)):
        op = operating_point(o.w, concurrency=load, replicas=r, pp=pp, c=o.c)
        if not op.feasible:
            continue
        for stages, maps in plans(o, r, pp, tp):
            if not o.fits(stages, op.per_replica):
                continue
            tpot, ttft, traffic = o.tpot_ttft(stages, op)
            if not _slo_ok(tpot, ttft, tpot_slo_ms, ttft_slo_ms):
                continue
            value = tpot if objective == "latency" else traffic
            if best is None or value < best.value:
                best = Best(
                    value,
                    o.partition(
                        [g for g, *_ in stages], [(a, b) for _, a, b, _ in stages], maps, [off for *_, off in stages]
                    ),
                    load,
                )
    return best


def _largest(lo: int, hi: int, ok) -> int:
    if hi < lo or not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
    return lo


def _slot_class(o: Oracle, reps: list[tuple], gpus: tuple) -> int:
    """The isomorphism class of a replica's GPU set (each slot class is its own shape, as in the solver)."""
    for k, rep in enumerate(reps):
        if isomorphism_map(o.topo, rep, gpus) is not None:
            return k
    reps.append(gpus)
    return len(reps) - 1


def throughput(
    o: Oracle, max_pp: int, max_replicas: int, tpot_slo_ms=None, ttft_slo_ms=None, cap: int = 1_000_000
) -> Best | None:
    """Per shape (R, PP, tp, and for R > 1 the class of the replicas' GPU sets): the largest load any of
    its plans serves (memory, step budget, SLOs), the least TPOT there; over shapes, the most tokens/s."""
    best = None
    for r, pp, tp in o.shapes(max_pp, max_replicas):

        def ok(stages, c):
            op = operating_point(o.w, concurrency=c * r, replicas=r, pp=pp, c=o.c)
            # the TTFT guard (issue 26): no chosen load has a prefill slot busier than 0.9 of the steps
            busy = op.prefill_per_step / op.ttft_load.prefill if op.ttft_load.prefill > 0 else 0.0
            if not op.feasible or busy > 0.9 or not o.fits(stages, c):
                return False
            tpot, ttft, _ = o.tpot_ttft(stages, op)
            return _slo_ok(tpot, ttft, tpot_slo_ms, ttft_slo_ms)

        reps: list[tuple] = []
        groups: dict[int, list] = {}
        for s, m in plans(o, r, pp, tp):
            c = _largest(1, cap, lambda c, s=s: ok(s, c))
            if c >= 1:
                key = _slot_class(o, reps, tuple(sorted(i for g, *_ in s for i in g))) if r > 1 else 0
                groups.setdefault(key, []).append((s, m, c))
        for found in groups.values():
            c_max = max(f[2] for f in found)
            op = operating_point(o.w, concurrency=c_max * r, replicas=r, pp=pp, c=o.c)
            tpot, stages, maps = min(
                ((o.tpot_ttft(s, op)[0], s, m) for s, m, c in found if c >= c_max), key=lambda x: x[0]
            )
            value = c_max * r / tpot
            if best is None or value > best.value:
                best = Best(
                    value,
                    o.partition(
                        [g for g, *_ in stages], [(a, b) for _, a, b, _ in stages], maps, [off for *_, off in stages]
                    ),
                    c_max * r,
                )
    return best
