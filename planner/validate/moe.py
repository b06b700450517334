"""The MoE layer of the validation runner: Mixtral's (softmax top-k) and DeepSeek's (sigmoid top-k, shared
experts), sharded as the cost model prices it.

- ep = 1: every expert's gate/up rows and down columns split over the TP ranks; one all-reduce of the partial
  sums (shared experts' partials included).
- ep > 1 (tp = 1, one rank per data-parallel rank): rank j holds experts [j E/ep, (j+1) E/ep) whole. Each token's
  hidden state goes to the owner of each of its top-k experts (the dispatch all-to-all, bf16) and the expert's
  output comes back (the combine all-to-all); rows a rank keeps for itself cross no link. The routing metadata
  (row counts, expert ids) is exchanged too but is not traffic the cost model prices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from planner.validate.common import COMPUTE, DTYPE, full_param

#: Two runs of the same weights whose hidden states differ by bf16 link roundings (TP's partial sums, EP's dispatched
#: rows) and BLAS summation order move a router score by up to a few 1e-3 (3e-3 seen under DeepSeek TP2); experts
#: whose scores lie within two bf16 ulps of a score in [0.5, 1) of the k-th are a near-tie that either run may decide
#: either way. Top-k is discrete: a flipped near-tie changes a token's output by a whole expert, which no logits
#: tolerance bounds, and the flip cascades through later layers; so the reference follows the distributed run there.
ROUTING_TIE = 2.0**-7

if TYPE_CHECKING:
    from planner.validate.common import Comm, Group
    from planner.validate.model import Shard


def is_moe_model(cfg: dict) -> bool:
    return bool(cfg.get("num_local_experts") or cfg.get("n_routed_experts"))


class MoE:
    def __init__(self, shard: Shard):
        cfg = shard.cfg
        self.shard = shard
        self.deepseek = bool(cfg.get("n_routed_experts"))
        self.n_experts = cfg.get("n_routed_experts") or cfg["num_local_experts"]
        self.top_k = cfg["num_experts_per_tok"]
        self.inter = cfg.get("moe_intermediate_size") or cfg["intermediate_size"]
        self.n_shared = cfg.get("n_shared_experts") or 0
        self.first_dense = (cfg.get("first_k_dense_replace") or 0) if self.deepseek else 0
        self.local = self.n_experts // shard.ep
        self.ep_group: Group = None  # the stage's ranks, set by the runner where ep > 1
        self.routing: dict[int, list[torch.Tensor]] = {}  # layer -> each forward's chosen experts [tokens, k]
        self.follow: dict[int, list[torch.Tensor]] | None = None  # another run's routing (the reference's input)
        self.near_ties = 0  # tokens that took `follow`'s choice, a near-tie here
        self.disagreements = 0  # tokens whose choice differs from `follow`'s beyond a near-tie

    def is_moe_layer(self, i: int) -> bool:
        return i >= self.first_dense

    def add_params(self, pre: str) -> None:
        sh, h = self.shard, self.shard.cfg["hidden_size"]
        sh.params[pre + "router"] = full_param(pre + "mlp.gate.weight", (self.n_experts, h))
        for e in self._held():
            ep = f"{pre}mlp.experts.{e}."
            if sh.ep > 1:  # whole experts
                sh.params[ep + "gate"] = full_param(ep + "gate", (self.inter, h))
                sh.params[ep + "up"] = full_param(ep + "up", (self.inter, h))
                sh.params[ep + "down"] = full_param(ep + "down", (h, self.inter))
            else:
                local = self.inter // sh.tp
                sh.params[ep + "gate"] = sh.rows(ep + "gate", (self.inter, h), local)
                sh.params[ep + "up"] = sh.rows(ep + "up", (self.inter, h), local)
                sh.params[ep + "down"] = sh.cols(ep + "down", (h, self.inter), local)
        if self.n_shared:
            sh.mlp_params(pre, self.inter * self.n_shared, "mlp.shared_experts.")

    def _held(self) -> range:
        start = self.shard.ep_rank * self.local
        return range(start, start + self.local)

    def route(self, i: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weights, experts) of each token's top-k: Mixtral normalises softmax scores, DeepSeek sigmoid scores
        (then scales them by routed_scaling_factor). Each call's choice is appended to `routing[i]`; where
        `follow` holds another run's choice for this call, the tokens take it if it is a near-tie here."""
        logits = self.shard.linear(x, self.shard.params[f"model.layers.{i}.router"])
        scores = logits.sigmoid() if self.deepseek else logits.softmax(-1)
        chosen = torch.topk(scores, self.top_k, dim=-1).indices
        calls = self.routing.setdefault(i, [])
        if self.follow is not None:
            chosen = self._follow(scores, chosen, self.follow[i][len(calls)].reshape(chosen.shape))
        calls.append(chosen)
        weights = scores.gather(-1, chosen)
        if not self.deepseek:
            return weights / weights.sum(-1, keepdim=True), chosen
        if self.shard.cfg.get("norm_topk_prob", True):
            weights = weights / weights.sum(-1, keepdim=True)
        return weights * float(self.shard.cfg.get("routed_scaling_factor", 1.0)), chosen

    def _follow(self, scores: torch.Tensor, mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
        """Per token, `theirs` where it differs from `mine` only by a near-tie: every expert it picks scores within
        ROUTING_TIE of this run's k-th score. Other differences are counted in `disagreements` and keep `mine`."""
        same = (mine.sort(-1).values == theirs.sort(-1).values).all(-1)
        kth = scores.gather(-1, mine).min(-1).values
        tie = scores.gather(-1, theirs).min(-1).values >= kth - ROUTING_TIE
        differ = ~same
        self.near_ties += int((differ & tie).sum())
        self.disagreements += int((differ & ~tie).sum())
        return torch.where((differ & tie)[:, None], theirs, mine)

    def expert(self, pre: str, e: int, x: torch.Tensor) -> torch.Tensor:
        return self.shard.gated_mlp(x, f"{pre}mlp.experts.{e}.")

    def forward(self, i: int, x: torch.Tensor, comm: Comm, group: Group) -> torch.Tensor:
        pre, shape = f"model.layers.{i}.", x.shape
        flat = x.reshape(-1, shape[-1])
        weights, chosen = self.route(i, flat)
        out = (
            self._dispatch(pre, flat, weights, chosen, comm)
            if self.shard.ep > 1
            else self._sliced(pre, flat, weights, chosen)
        )
        if self.n_shared:
            out = out + self.shard.gated_mlp(flat, pre + "mlp.shared_experts.")
        out = out.reshape(shape)
        return out if self.shard.ep > 1 else self.shard.reduce(out, comm, group)

    def _sliced(self, pre: str, x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for e in range(self.n_experts):
            sel = chosen == e
            if sel.any():
                out = out + self.expert(pre, e, x) * (weights * sel).sum(-1, keepdim=True)
        return out

    def _dispatch(
        self, pre: str, x: torch.Tensor, weights: torch.Tensor, chosen: torch.Tensor, comm: Comm
    ) -> torch.Tensor:
        sh, ep = self.shard, self.shard.ep
        token = torch.arange(x.shape[0]).repeat_interleave(self.top_k)
        expert = chosen.reshape(-1)
        order = torch.argsort(expert // self.local, stable=True)  # rows grouped by owner, in rank order
        token, expert, w = token[order], expert[order], weights.reshape(-1)[order]
        counts = torch.bincount(expert // self.local, minlength=ep).tolist()
        recv_counts = comm.exchange_counts(counts, self.ep_group)
        rows = comm.all_to_all(x[token].to(DTYPE), counts, recv_counts, sh.ep_rank, self.ep_group)
        ids = comm.all_to_all(expert.reshape(-1, 1), counts, recv_counts, sh.ep_rank, self.ep_group, metadata=True)
        y = torch.empty(rows.shape, dtype=COMPUTE)
        for e in ids.unique().tolist():
            sel = ids[:, 0] == e
            y[sel] = self.expert(pre, e, rows[sel].to(COMPUTE))
        back = comm.all_to_all(y.to(DTYPE), recv_counts, counts, sh.ep_rank, self.ep_group)
        out = torch.zeros_like(x)
        out.index_add_(0, token, back.to(COMPUTE) * w[:, None])
        return out
