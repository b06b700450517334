"""`planner validate`: run a plan's stages and TP slices with torch.distributed and check the plan.

One process per GPU of replica 0, ranks stage-major (stage 0's TP group first). Locally the ranks are
started with torch.multiprocessing on a free loopback port; across nodes `planner launch --engine
torchrun` starts them and `python -m planner.validate.worker` is the entry point. Every rank builds
its shard of the model from deterministic random weights, runs a prefill and N teacher-forced decode
steps with a KV cache, and reports its parameter bytes, the bytes it sent and received per decode
step, its step time, and (last stage) the final logits. The report compares them with the plan's
cost model at the same scale and with a single-process reference run of the same weights.
"""

from __future__ import annotations

import math
import os
import queue
import socket
import time
import traceback
from types import ModuleType
from typing import TYPE_CHECKING, Any, Optional

from pydantic import BaseModel

from planner.cost.constants import DEFAULT
from planner.cost.memory import stage_memory
from planner.cost.shards import layout_of
from planner.cost.step import StageContext, StepLoad, stage_step
from planner.cost.transfer import transfer, transfer_bytes, transfer_pairs
from planner.errors import InputError, ValidationRunError
from planner.model.catalog import config_hash, resolve
from planner.model.trace import trace_config
from planner.plan import Plan, Stage
from planner.plan_io import load_plan
from planner.validate.mini import check_family, mini_config, mini_stages

if TYPE_CHECKING:
    import torch

    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile
    from planner.validate.common import Comm
    from planner.validate.model import Shard

#: Numerics: the distributed logits match the reference within this fraction of the reference's
#: largest magnitude. bf16 keeps 8 bits of mantissa and the TP all-reduces sum partial products in
#: another order than the single-process matmul.
LOGITS_RTOL = 0.03
#: Expert-parallel traffic depends on where the run's tokens were routed; the cost model prices the expectation
#: of uniform routing ((n-1)/n of each token's top-k rows leave its GPU). Judged within this fraction.
EP_TRAFFIC_RTOL = 0.30
PROMPT_LEN = 8
#: Decode steps a run may take: the checks need a few (default 4); every step re-reads a growing KV cache, so the
#: run's time grows with the square of the steps.
MAX_TOKENS = 256
#: Share of the machine's available memory a run may plan to use (ranks, their KV caches and the reference).
MEMORY_SHARE = 0.8
MAX_BATCH = 4


class Check(BaseModel):
    name: str
    rank: Optional[int] = None
    passed: Optional[bool] = None  # None: reported, not judged
    predicted: Optional[float] = None
    measured: Optional[float] = None
    unit: str = ""
    note: str = ""


class ValidationReport(BaseModel):
    plan: str
    scale: str
    backend: str
    world_size: int
    batch: int
    decode_tokens: int
    stages: list[Stage]
    model_config_used: dict
    checks: list[Check]
    passed: bool


class Job(BaseModel):
    """Everything a rank needs (sent to every process)."""

    config: dict
    stages: list[Stage]
    batch: int
    prompt_len: int
    decode_tokens: int
    backend: str
    timeout_s: float
    fail_rank: Optional[int] = None

    def rank_layout(self, rank: int) -> tuple[int, int]:
        """(stage, index within the stage) of a global rank: ranks are stage-major; index j is TP rank j % tp
        of data-parallel rank j // tp."""
        offset = 0
        for s, st in enumerate(self.stages):
            if rank < offset + st.n_gpus:
                return s, rank - offset
            offset += st.n_gpus
        raise ValueError(f"rank {rank} beyond {offset} ranks")

    def stage_ranks(self, s: int) -> list[int]:
        start = sum(st.n_gpus for st in self.stages[:s])
        return list(range(start, start + self.stages[s].n_gpus))

    def tp_group_ranks(self, s: int, dp_rank: int) -> list[int]:
        tp = self.stages[s].tp
        return self.stage_ranks(s)[dp_rank * tp : (dp_rank + 1) * tp]

    def dp_rows(self, s: int, dp_rank: int) -> slice:
        """The sequences of the batch a data-parallel rank serves."""
        per = self.batch // self.stages[s].dp
        return slice(dp_rank * per, (dp_rank + 1) * per)

    @property
    def world_size(self) -> int:
        return sum(st.n_gpus for st in self.stages)


def inputs(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    vocab = job.config["vocab_size"]
    prompt = (torch.arange(job.batch * job.prompt_len).view(job.batch, job.prompt_len) * 7 + 3) % vocab
    decode = (torch.arange(job.batch * job.decode_tokens).view(job.batch, job.decode_tokens) * 13 + 5) % vocab
    return prompt, decode


def _groups(job: Job, dist: ModuleType) -> dict[tuple, Any]:
    """Every TP group (stage, dp rank) and EP group (stage, "ep"), created on every rank in one order."""
    out: dict[tuple, Any] = {}
    for s, st in enumerate(job.stages):
        for d in range(st.dp):
            out[(s, d)] = dist.new_group(job.tp_group_ranks(s, d)) if st.tp > 1 else None
        if st.ep > 1:
            out[(s, "ep")] = dist.new_group(job.stage_ranks(s))
    return out


def _shard(job: Job, rank: int, groups: dict[tuple, Any], device: str) -> Shard:
    """The rank's shard of the model on `device`: its stage's layers, its TP slice and (expert parallelism) its
    experts, with the EP group its all-to-alls run in."""
    from planner.validate.model import Shard

    s, j = job.rank_layout(rank)
    st = job.stages[s]
    shard = Shard(
        job.config,
        range(st.layer_start, st.layer_end),
        st.tp,
        j % st.tp,
        s == 0,
        last=s == len(job.stages) - 1,
        ep=st.ep,
        ep_rank=j if st.ep > 1 else 0,
    ).to(device)
    if shard.moe is not None:
        shard.moe.ep_group = groups.get((s, "ep"))
    return shard


def _rank_result(
    rank: int, job: Job, shard: Shard, comm: Comm, *, times: list[float], logits: torch.Tensor | None
) -> dict:
    """What a rank reports: where it ran, its parameter bytes, its bytes and collective calls per decode step, its
    median step time; TP rank 0 of the last stage its logits, and of an MoE shard the experts its DP rank's
    sequences chose in each forward ([b, t, k])."""
    s, j = job.rank_layout(rank)
    d, r = divmod(j, job.stages[s].tp)
    rows = job.dp_rows(s, d)
    out = {
        "rank": rank,
        "stage": s,
        "tp_rank": r,
        "dp_rank": d,
        "param_bytes": shard.param_bytes(),
        "sent_per_step": comm.sent / job.decode_tokens,
        "received_per_step": comm.received / job.decode_tokens,
        "calls_per_step": {k: v / job.decode_tokens for k, v in comm.calls.items()},
        "step_time_s": sorted(times)[len(times) // 2],
    }
    if s == len(job.stages) - 1 and r == 0:
        out["logits"] = logits.float().cpu().tolist()
    if shard.moe is not None and r == 0:
        out["routing"] = {
            i: [c.cpu().reshape(rows.stop - rows.start, -1, c.shape[-1]).tolist() for c in calls]
            for i, calls in shard.moe.routing.items()
        }
    return out


def run_rank(rank: int, job: Job, dist: ModuleType) -> dict:
    """One rank's whole run, inside an initialised process group."""
    import torch

    from planner.validate.common import Comm

    device = f"cuda:{torch.cuda.current_device()}" if job.backend == "nccl" else "cpu"
    s, j = job.rank_layout(rank)
    pp, st = len(job.stages), job.stages[s]
    d = j // st.tp
    groups = _groups(job, dist)
    shard = _shard(job, rank, groups, device)
    comm = Comm(dist=dist, device=device)
    group, rows = groups[(s, d)], job.dp_rows(s, d)
    batch, hidden_size = rows.stop - rows.start, job.config["hidden_size"]
    prev = [a for a, b in transfer_pairs(job.stage_ranks(s - 1), job.stage_ranks(s)) if b == rank] if s > 0 else []
    nxt = [b for a, b in transfer_pairs(job.stage_ranks(s), job.stage_ranks(s + 1)) if a == rank] if s < pp - 1 else []
    prompt, decode = (x[rows] for x in inputs(job))

    def step(ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor | None:
        t = ids.shape[1]
        if s == 0:
            hidden, residual = shard.embed(ids.to(device), comm, group), None
        else:
            # the hand-off crosses the link in bf16 (2 bytes per element, as the cost model counts)
            hidden = comm.recv((batch, t, hidden_size), prev[0]).float()
            residual = comm.recv((batch, t, hidden_size), prev[0]).float()
        hidden, residual = shard.forward(hidden, residual, positions.to(device), comm, group)
        for dst in nxt:
            comm.send(hidden.to(torch.bfloat16), dst)
            comm.send(residual.to(torch.bfloat16), dst)
        return shard.logits(hidden, residual, comm, group) if s == pp - 1 else None

    logits = step(prompt, torch.arange(job.prompt_len))
    comm.counting = True
    times = []
    for k in range(job.decode_tokens):
        if job.fail_rank == rank and k == job.decode_tokens // 2:
            raise RuntimeError(f"injected fault at decode step {k}")
        dist.barrier()
        t0 = time.perf_counter()
        logits = step(decode[:, k : k + 1], torch.tensor([job.prompt_len + k]))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return _rank_result(rank, job, shard, comm, times=times, logits=logits)


def reference_logits(job: Job, follow: dict[int, list[torch.Tensor]] | None = None) -> tuple[torch.Tensor, dict]:
    """The same weights in one process, no parallelism. With `follow` (the distributed run's routing, layer -> each
    forward's chosen experts [tokens, k]) a token whose top-k differs from it only by a near-tie takes the run's
    choice (planner.validate.moe.ROUTING_TIE); returns the logits and {"near_ties", "disagreements"}: tokens that
    followed, and tokens whose routing differs beyond a near-tie."""
    import torch

    from planner.validate.common import Comm
    from planner.validate.model import Shard

    n_layers = job.stages[-1].layer_end
    shard = Shard(job.config, range(n_layers), 1, 0, True, last=True)
    if shard.moe is not None:
        shard.moe.follow = follow
    comm = Comm()
    prompt, decode = inputs(job)
    h = shard.embed(prompt, comm, None)
    h, res = shard.forward(h, None, torch.arange(job.prompt_len), comm, None)
    logits = shard.logits(h, res, comm, None)
    for k in range(job.decode_tokens):
        h = shard.embed(decode[:, k : k + 1], comm, None)
        h, res = shard.forward(h, None, torch.tensor([job.prompt_len + k]), comm, None)
        logits = shard.logits(h, res, comm, None)
    moe = shard.moe
    return logits.float(), {"near_ties": moe.near_ties if moe else 0, "disagreements": moe.disagreements if moe else 0}


def merged_routing(results: list[dict]) -> dict[int, list[torch.Tensor]] | None:
    """The distributed run's routing over the whole batch: layer -> each forward's chosen experts [tokens, k], the
    DP ranks' sequences in order (TP rank 0 of each DP rank and stage reports its own)."""
    import torch

    parts: dict[int, list[tuple[int, list]]] = {}
    for res in results:
        for i, calls in res.get("routing", {}).items():
            parts.setdefault(int(i), []).append((res["dp_rank"], calls))
    if not parts:
        return None
    out = {}
    for i, ranks in parts.items():
        ranks.sort(key=lambda x: x[0])
        out[i] = [
            torch.cat([torch.tensor(calls[c]) for _, calls in ranks]).flatten(0, 1) for c in range(len(ranks[0][1]))
        ]
    return out


# --- the local launcher --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_entry(rank: int, job_json: str, init: str, results) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    job = Job.model_validate_json(job_json)
    torch.set_num_threads(1)
    try:
        if job.backend == "nccl":
            torch.cuda.set_device(rank % max(1, torch.cuda.device_count()))
        dist.init_process_group(
            job.backend,
            init_method=init,
            rank=rank,
            world_size=job.world_size,
            timeout=timedelta(seconds=job.timeout_s),
        )
        results.put(("ok", rank, run_rank(rank, job, dist)))
    except BaseException as exc:  # report, then die: the parent ends the others
        results.put(("error", rank, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))
        raise SystemExit(1)
    finally:
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:
                pass


def run_local(job: Job) -> list[dict]:
    """Start one process per rank on this machine; all finish, or all are ended and the failure named."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    init = f"tcp://127.0.0.1:{_free_port()}"
    procs = [
        ctx.Process(target=_rank_entry, args=(r, job.model_dump_json(), init, results), daemon=True)
        for r in range(job.world_size)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + job.timeout_s
    done: dict[int, dict] = {}
    error = None
    try:
        while len(done) < len(procs) and error is None:
            try:
                msg = results.get(timeout=0.2)
            except queue.Empty:
                dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in done]
                if dead:
                    error = (dead[0], f"exited with code {procs[dead[0]].exitcode} without a report")
                elif time.monotonic() > deadline:
                    missing = [r for r in range(len(procs)) if r not in done]
                    error = (
                        missing[0],
                        f"did not finish within the {job.timeout_s:g} s timeout (ranks {missing} still running)",
                    )
                continue
            if msg[0] == "ok":
                done[msg[1]] = msg[2]
            else:
                error = (msg[1], msg[2])
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    if error is not None:
        rank, what = error
        stage, j = job.rank_layout(rank)
        tp = job.stages[stage].tp
        where = f"TP rank {j}" if job.stages[stage].dp == 1 else f"DP rank {j // tp}, TP rank {j % tp}"
        raise ValidationRunError(
            f"rank {rank} (stage {stage}, {where}) failed: {what}",
            details=["every other rank was stopped; no process is left running"],
        )
    return [done[r] for r in range(len(procs))]


# --- plan -> job, results -> report -----------------------------------------------------------


def make_job(
    plan: Plan, scale: str, backend: str, tokens: int, timeout_s: float, *, fail_rank: int | None = None
) -> tuple[Job, ModelProfile]:
    """The job and the traced profile at the chosen scale."""
    if scale not in ("mini", "full"):
        raise InputError(f"--scale: choose mini or full, got '{scale}'")
    if backend not in ("gloo", "nccl"):
        raise InputError(f"--backend: choose gloo or nccl, got '{backend}'")
    if isinstance(tokens, bool) or not 1 <= tokens <= MAX_TOKENS:
        raise InputError(f"--tokens must be from 1 to {MAX_TOKENS:,}, got {tokens}")
    source = plan.inputs.model_source
    for prefix in ("catalog:", "hub:"):
        source = source.removeprefix(prefix)
    config = resolve(source).config
    check_family(config)
    if scale == "mini":
        cfg = mini_config(config, plan)
        stages = mini_stages(plan, config["num_hidden_layers"])
    else:
        cfg = {k: v for k, v in config.items() if k != "quantization_config"}
        stages = list(plan.stages)
    _check_layouts(stages)
    profile = trace_config(cfg, name=f"{plan.inputs.model} ({scale})", source=source, config_hash=config_hash(cfg))
    dp = max(st.dp for st in stages)
    batch = max(1, min(MAX_BATCH, math.ceil(plan.inputs.workload.concurrency / plan.replicas)))
    batch = dp * max(1, batch // dp)  # every data-parallel rank serves the same number of sequences
    job = Job(
        config=cfg,
        stages=stages,
        batch=batch,
        prompt_len=PROMPT_LEN,
        decode_tokens=tokens,
        backend=backend,
        timeout_s=timeout_s,
        fail_rank=fail_rank,
    )
    check_memory(job, profile, scale)
    return job, profile


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(job: Job, profile: ModelProfile, scale: str, available: int | None = None) -> None:
    """Refuse up front a run whose ranks and reference would not fit in this machine's memory (bf16 weights and KV:
    the ranks hold one copy split between them, the single-process reference another)."""
    tokens = job.batch * (job.prompt_len + job.decode_tokens)
    need = 2 * (profile.weight_bytes("bf16") + tokens * profile.kv_bytes_per_token("bf16"))
    available = available_memory_bytes() if available is None else available
    if available is not None and need > MEMORY_SHARE * available:
        raise InputError(
            f"validate --scale {scale}: the run needs about {need / 1e9:,.1f} GB of memory (weights and "
            f"KV of {job.world_size} ranks and the reference), this machine has {available / 1e9:,.1f} GB "
            "available" + ("; use --scale mini" if scale == "full" else "")
        )


def _check_layouts(stages: list[Stage]) -> None:
    """What the runner executes: attention data parallelism without pipeline stages (as the engines run it),
    and expert parallelism over one rank per data-parallel rank (tp 1)."""
    if len(stages) > 1 and any(st.dp > 1 for st in stages):
        raise InputError("validate runs attention data parallelism in single-stage plans only (as the engines do)")
    for st in stages:
        if st.ep > 1 and st.tp > 1:
            raise InputError(
                f"validate runs expert parallelism with tp 1 per data-parallel rank; this stage has "
                f"tp {st.tp} x dp {st.dp} with ep {st.ep}"
            )


def predictions(job: Job, profile: ModelProfile, topo: Topology) -> dict[int, dict]:
    """Per rank, the cost model at this scale: parameter bytes, bytes per decode step, step time."""
    out: dict[int, dict] = {}
    pp = len(job.stages)
    uniform = DEFAULT.model_copy(update={"moe_imbalance": 1.0})  # the expectation of uniform routing
    load = StepLoad(decode=job.batch, context=job.prompt_len + job.decode_tokens / 2)
    for s, st in enumerate(job.stages):
        first, last = s == 0, s == pp - 1
        layout = layout_of(st)
        ctx = StageContext.of(
            profile=profile,
            topo=topo,
            gpu_ids=st.gpu_ids,
            layout=layout,
            weight_dtype="bf16",
            kv_dtype="bf16",
            constants=uniform,
        )
        step = stage_step(ctx, layer_start=st.layer_start, layer_end=st.layer_end, first=first, last=last, load=load)
        weights, _ = stage_memory(
            profile,
            layout,
            st.layer_start,
            layer_end=st.layer_end,
            first=first,
            last=last,
            weight_dtype="bf16",
            kv_dtype="bf16",
            sequence_tokens=job.prompt_len + job.decode_tokens,
        )
        per_rank_coll = sum(step.interconnect.values()) / st.n_gpus
        t_out = (
            transfer(profile, topo, st.gpu_ids, dst_ids=job.stages[s + 1].gpu_ids, tokens=job.batch, c=DEFAULT)[0]
            if not last
            else 0.0
        )
        for rank in job.stage_ranks(s):
            out[rank] = {
                "param_bytes": weights,
                "sent": per_rank_coll,
                "received": per_rank_coll,
                "step_time_s": step.time_s + t_out,
            }
    nbytes = transfer_bytes(profile, job.batch)
    for s in range(pp - 1):
        for a, b in transfer_pairs(job.stage_ranks(s), job.stage_ranks(s + 1)):
            out[a]["sent"] += nbytes
            out[b]["received"] += nbytes
    return out


def _rank_checks(job: Job, res: dict, p: dict) -> list[Check]:
    """One rank against the cost model (`p`, its predictions): parameter bytes exactly, bytes sent and received per
    decode step (expert parallelism: within EP_TRAFFIC_RTOL of the expectation), step time reported."""
    r = res["rank"]
    checks = [
        Check(
            name="memory: parameter bytes",
            rank=r,
            passed=res["param_bytes"] == round(p["param_bytes"]),
            predicted=p["param_bytes"],
            measured=res["param_bytes"],
            unit="B",
        )
    ]
    routed = job.stages[res["stage"]].ep > 1
    for key, name in (
        ("sent", "traffic: bytes sent per decode step"),
        ("received", "traffic: bytes received per decode step"),
    ):
        measured = res[f"{key}_per_step"]
        tolerance = EP_TRAFFIC_RTOL if routed else 1e-6
        note = ", ".join(f"{k} {v:g}" for k, v in sorted(res["calls_per_step"].items()))
        if routed:
            note += (
                f"; expert-parallel: the cost model's bytes are the expectation of uniform routing, "
                f"judged within {EP_TRAFFIC_RTOL:.0%} of the routing this run took"
            )
        checks.append(
            Check(
                name=name,
                rank=r,
                passed=abs(measured - p[key]) <= tolerance * max(1.0, p[key]),
                predicted=p[key],
                measured=measured,
                unit="B",
                note=note,
            )
        )
    checks.append(
        Check(
            name="time: decode step",
            rank=r,
            passed=None,
            predicted=p["step_time_s"] * 1e3,
            measured=res["step_time_s"] * 1e3,
            unit="ms",
            note="reported, not judged" if job.backend == "gloo" else "GPU timing",
        )
    )
    return checks


def _numerics_checks(job: Job, results: list[dict]) -> list[Check]:
    """The distributed run against a single-process reference of the same weights (mini scale): the final logits
    within LOGITS_RTOL, and for MoE models the experts each token was routed to."""
    import torch

    from planner.validate.moe import ROUTING_TIE

    ref, routing = reference_logits(job, merged_routing(results))
    parts = sorted((res for res in results if "logits" in res), key=lambda res: res["dp_rank"])
    got = torch.cat([torch.tensor(res["logits"]) for res in parts])  # each DP rank's sequences, in order
    err = (got - ref).abs().max().item()
    bound = LOGITS_RTOL * ref.abs().max().item()
    checks = []
    if any("routing" in res for res in results):
        checks.append(
            Check(
                name="numerics: MoE routing vs single-process reference",
                passed=routing["disagreements"] == 0,
                predicted=0.0,
                measured=float(routing["disagreements"]),
                unit="tokens",
                note=f"tokens whose top-k experts differ beyond a near-tie (scores within "
                f"{ROUTING_TIE:g} of the k-th); {routing['near_ties']} near-ties decided the "
                f"other way by the run's roundings, which the reference followed",
            )
        )
    checks.append(
        Check(
            name="numerics: final logits vs single-process reference",
            passed=err <= bound,
            predicted=0.0,
            measured=err,
            unit="max |diff|",
            note=f"tolerance {bound:.4f} = {LOGITS_RTOL} x max |logit| (bf16)",
        )
    )
    return checks


#: The model config fields a report names (of the config the run used: mini scale shrinks some).
REPORTED_CONFIG = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)


def build_report(
    plan_name: str, scale: str, job: Job, profile: ModelProfile, topo: Topology, *, results: list[dict]
) -> ValidationReport:
    pred = predictions(job, profile, topo)
    checks = [check for res in results for check in _rank_checks(job, res, pred[res["rank"]])]
    if scale == "mini":
        checks += _numerics_checks(job, results)
    else:
        checks.append(
            Check(
                name="numerics: final logits vs single-process reference",
                passed=None,
                note="not run at full scale: a single-process reference does not fit one GPU",
            )
        )
    judged = [c for c in checks if c.passed is not None]
    return ValidationReport(
        plan=plan_name,
        scale=scale,
        backend=job.backend,
        world_size=job.world_size,
        batch=job.batch,
        decode_tokens=job.decode_tokens,
        stages=job.stages,
        model_config_used={k: job.config[k] for k in REPORTED_CONFIG},
        checks=checks,
        passed=all(c.passed for c in judged),
    )


def validate(
    plan_path: str, *, backend: str = "gloo", scale: str = "mini", tokens: int = 4, timeout_s: float = 120.0
) -> ValidationReport:
    loaded = load_plan(plan_path)
    plan, topo = loaded.plan, loaded.topo
    fail = os.environ.get("PLANNER_VALIDATE_FAIL_RANK")  # test hook: make this rank raise mid-run
    job, profile = make_job(plan, scale, backend, tokens, timeout_s, fail_rank=int(fail) if fail else None)
    results = run_local(job)
    return build_report(plan_path, scale, job, profile, topo, results=results)
