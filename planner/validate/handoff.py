"""The disaggregated KV hand-off, run for real over torch.distributed (gloo): a prefill rank prefills a batch of
prompts, sends every layer's K and V of them to a decode rank, and the decode rank continues decoding from that
cache alone (teacher-forced, as planner.validate.runner's decode steps).

Checked: the bytes that cross equal the cost model's `kv_handoff_bytes` (layers x KV bytes per token x prompt
tokens, per sequence), and the decode rank's logits equal, bit for bit, those of the aggregated run (one process
prefilling and decoding with the same deterministic weights, its KV cache kept in bf16 as an engine with a bf16 KV
cache keeps it): the KV crosses in bf16, the bytes the cost model counts, so nothing is rounded beyond what the
aggregated engine rounds. Dense and GQA attention families (the MLA latent cache is another layout: not handed off here).
"""

from __future__ import annotations

import queue
import time
import traceback
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from planner.disagg.cost import kv_handoff_bytes
from planner.errors import InputError, ValidationRunError
from planner.model.trace import trace_config
from planner.validate.runner import _free_port

if TYPE_CHECKING:
    import torch

PREFILL_RANK, DECODE_RANK = 0, 1


class HandoffJob(BaseModel):
    config: dict
    batch: int = 2
    prompt_len: int = 8
    decode_tokens: int = 4
    timeout_s: float = 120.0


class HandoffResult(BaseModel):
    """What the two ranks and the aggregated reference measured."""

    sent_bytes: int = 0  # KV bytes the prefill rank sent
    received_bytes: int = 0  # KV bytes the decode rank received
    predicted_bytes: float = 0.0  # kv_handoff_bytes x batch
    layers: int = 0
    logits_equal: bool = False  # decode rank's last logits == the aggregated run's, bit for bit
    max_abs_diff: float = 0.0


def _inputs(job: HandoffJob) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    vocab = job.config["vocab_size"]
    prompt = (torch.arange(job.batch * job.prompt_len).view(job.batch, job.prompt_len) * 7 + 3) % vocab
    decode = (torch.arange(job.batch * job.decode_tokens).view(job.batch, job.decode_tokens) * 13 + 5) % vocab
    return prompt, decode


def _shard(job: HandoffJob) -> Any:
    from planner.validate.model import Shard

    return Shard(job.config, range(job.config["num_hidden_layers"]), 1, 0, True, last=True)


def _decode(shard: Any, comm: Any, job: HandoffJob, decode: torch.Tensor) -> torch.Tensor:
    import torch

    logits = None
    for k in range(job.decode_tokens):
        h = shard.embed(decode[:, k : k + 1], comm, None)
        h, res = shard.forward(h, None, torch.tensor([job.prompt_len + k]), comm, None)
        logits = shard.logits(h, res, comm, None)
    assert logits is not None
    return logits


def run_handoff_rank(rank: int, job: HandoffJob, dist: Any) -> dict:
    """One rank's part: prefill and send (rank 0), or receive and decode (rank 1)."""
    import torch

    from planner.validate.model import DTYPE, Comm

    shard, comm = _shard(job), Comm(dist=dist, counting=True)
    prompt, decode = _inputs(job)
    layers = sorted(shard.layers)
    shape = (job.batch, job.prompt_len, shard.kv_local, shard.hd)
    if rank == PREFILL_RANK:
        h = shard.embed(prompt, comm, None)
        shard.forward(h, None, torch.arange(job.prompt_len), comm, None)
        for i in layers:  # layer by layer, K then V, as a transfer engine moves a request's blocks
            for t in shard.cache[i]:
                comm.send(t.to(DTYPE), DECODE_RANK)
        return {"rank": rank, "sent": comm.sent, "layers": len(layers)}
    shard.cache = {i: (comm.recv(shape, PREFILL_RANK).float(), comm.recv(shape, PREFILL_RANK).float()) for i in layers}
    logits = _decode(shard, comm, job, decode)
    return {"rank": rank, "received": comm.received, "logits": logits.float().tolist()}


def aggregated_logits(job: HandoffJob) -> torch.Tensor:
    """The same prompts prefilled and decoded in one process: what the decode rank must reproduce."""
    import torch

    from planner.validate.model import DTYPE, Comm

    shard, comm = _shard(job), Comm()
    prompt, decode = _inputs(job)
    h = shard.embed(prompt, comm, None)
    shard.forward(h, None, torch.arange(job.prompt_len), comm, None)
    shard.cache = {i: (k.to(DTYPE).float(), v.to(DTYPE).float()) for i, (k, v) in shard.cache.items()}  # bf16 KV
    return _decode(shard, comm, job, decode).float()


def _entry(rank: int, job_json: str, init: str, results: Any) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    job = HandoffJob.model_validate_json(job_json)
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            "gloo", init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=job.timeout_s)
        )
        results.put(("ok", rank, run_handoff_rank(rank, job, dist)))
    except BaseException as exc:  # report, then die: the parent ends the other rank
        results.put(("error", rank, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=3)))
        raise SystemExit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _collect(procs: list[Any], results: Any, timeout_s: float) -> dict[int, dict]:
    """Both ranks' reports; ValidationRunError naming the rank that failed, exited or ran past the timeout."""
    done: dict[int, dict] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(procs):
        try:
            msg = results.get(timeout=0.2)
        except queue.Empty:
            dead = [r for r, p in enumerate(procs) if p.exitcode not in (None, 0) and r not in done]
            if dead or time.monotonic() > deadline:
                what = "exited without a report" if dead else f"did not finish within {timeout_s:g} s"
                raise ValidationRunError(f"KV hand-off: rank {(dead or [len(done)])[0]} {what}") from None
            continue
        if msg[0] != "ok":
            raise ValidationRunError(f"KV hand-off: rank {msg[1]} failed: {msg[2]}")
        done[msg[1]] = msg[2]
    return done


def run_handoff(job: HandoffJob) -> HandoffResult:
    """The prefill and decode ranks as two local processes over gloo, stopped by their PIDs whatever happens."""
    import torch
    import torch.multiprocessing as mp

    if job.config.get("kv_lora_rank"):
        raise InputError("KV hand-off: MLA's latent cache is not handed off by this check (dense and GQA only)")
    profile = trace_config(job.config, name="handoff", source="handoff", config_hash="handoff")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    init = f"tcp://127.0.0.1:{_free_port()}"
    procs = [ctx.Process(target=_entry, args=(r, job.model_dump_json(), init, results), daemon=True) for r in (0, 1)]
    for p in procs:
        p.start()
    try:
        done = _collect(procs, results, job.timeout_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    got, want = torch.tensor(done[DECODE_RANK]["logits"]), aggregated_logits(job)
    return HandoffResult(
        sent_bytes=int(done[PREFILL_RANK]["sent"]),
        received_bytes=int(done[DECODE_RANK]["received"]),
        predicted_bytes=kv_handoff_bytes(profile, job.prompt_len, "bf16") * job.batch,
        layers=done[PREFILL_RANK]["layers"],
        logits_equal=bool(torch.equal(got, want)),
        max_abs_diff=float((got - want).abs().max()),
    )
