"""What the validation runner's model pieces share (planner.validate.model's Shard, planner.validate.mla,
planner.validate.moe): the dtypes, the deterministic weights, the byte-counting `Comm` and causal attention. A leaf:
it imports no other module of the runner, so the model and its attention and MoE layers import it, not each other.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

#: A torch.distributed process group (None: the default group).
Group = Any

DTYPE = torch.bfloat16  # weights and everything that crosses a link (2 bytes, as the cost model counts)
COMPUTE = torch.float32  # arithmetic on each rank, so that TP and the reference differ only by link roundings
ELEMENT_BYTES = 2
INIT_STD = 0.05


def full_param(name: str, shape: tuple[int, ...], *, norm: bool = False) -> torch.Tensor:
    """Deterministic random weights: the same on every rank and in the reference."""
    if norm:
        return torch.ones(shape, dtype=DTYPE)
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    return (torch.randn(shape, generator=gen) * INIT_STD).to(DTYPE)


@dataclass
class Comm:
    """Collectives and point-to-point calls with per-rank byte counts (nccl-tests' ring convention:
    an all-reduce of S bytes over n ranks sends and receives 2(n-1)/n x S per rank, an all-gather of a
    total S bytes (n-1)/n x S; a send moves its tensor's bytes)."""

    dist: Any = None  # torch.distributed, given by the caller (torch is imported lazily)
    counting: bool = False
    sent: float = 0.0
    received: float = 0.0
    calls: dict = field(default_factory=dict)

    def _count(self, kind: str, sent: float, received: float) -> None:
        if self.counting:
            self.sent += sent
            self.received += received
            self.calls[kind] = self.calls.get(kind, 0) + 1

    def all_reduce(self, t: torch.Tensor, group: Group, n: int) -> torch.Tensor:
        if n == 1:
            return t
        nbytes = t.numel() * t.element_size()
        self._count("all_reduce", 2 * (n - 1) / n * nbytes, 2 * (n - 1) / n * nbytes)
        self.dist.all_reduce(t, group=group)
        return t

    def all_gather_last(self, t: torch.Tensor, group: Group, n: int) -> torch.Tensor:
        if n == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(n)]
        total = t.numel() * t.element_size() * n
        self._count("all_gather", (n - 1) / n * total, (n - 1) / n * total)
        self.dist.all_gather(parts, t.contiguous(), group=group)
        return torch.cat(parts, dim=-1)

    def all_to_all(
        self,
        t: torch.Tensor,
        send_counts: list[int],
        recv_counts: list[int],
        me: int,
        group: Group,
        *,
        metadata: bool = False,
    ) -> torch.Tensor:
        """Rows of `t` to each rank of the group (send_counts rows each, in group-rank order); the rows a rank
        keeps for itself do not cross a link and are not counted, nor is routing `metadata`."""
        row = t[0].numel() * t.element_size() if t.numel() else t.element_size() * int(torch.tensor(t.shape[1:]).prod())
        out = torch.empty((sum(recv_counts), *t.shape[1:]), dtype=t.dtype, device=t.device)
        if not metadata:
            self._count(
                "all_to_all", (sum(send_counts) - send_counts[me]) * row, (sum(recv_counts) - recv_counts[me]) * row
            )
        self.dist.all_to_all_single(out, t.contiguous(), recv_counts, send_counts, group=group)
        return out

    def exchange_counts(self, counts: list[int], group: Group) -> list[int]:
        """How many rows each rank will send here (routing metadata: not counted as traffic)."""
        out = torch.empty(len(counts), dtype=torch.int64)
        self.dist.all_to_all_single(out, torch.tensor(counts, dtype=torch.int64), group=group)
        return out.tolist()

    def send(self, t: torch.Tensor, dst: int) -> None:
        self._count("send", t.numel() * t.element_size(), 0)
        self.dist.send(t.contiguous(), dst)

    device: str = "cpu"

    def recv(self, shape: tuple[int, ...], src: int) -> torch.Tensor:
        t = torch.empty(shape, dtype=DTYPE, device=self.device)
        self.dist.recv(t, src)
        self._count("recv", 0, t.numel() * t.element_size())
        return t


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal attention of the new tokens q [b, t, heads, d] over the cached and new k, v [b, T, heads, d]."""
    t, total = q.shape[1], k.shape[1]
    mask = torch.ones(t, total, dtype=torch.bool, device=q.device).tril(diagonal=total - t)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)
