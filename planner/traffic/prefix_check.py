"""The prefix-sharing rows of the calibration corpus against the serving model with prefix reuse (`--prefix-tokens`,
`--prefix-hit`): per row the predicted and measured TTFT, and, where the same publisher ran the same engine, machine
and load on prompts with nothing shared, the measured and predicted ratio of the two TTFTs (the prefix cache's own
effect, whatever the engine's kernels cost).

The hit rate is not fitted: it follows from the row's sharing structure, the routing in front of the replicas and
the KV cache each replica has (`reuse`):

- Groups of k prompts sharing a prefix (generated-shared-prefix, inference-perf shared_prefix): the first request of
  a group on a replica finds nothing cached. On one instance h = 1 - 1 / k. A router that spreads requests over R
  replicas (random, round-robin, load-balanced: `routing: spread`) has every replica pay its own first miss, and
  every replica holds every group; prefix-affinity routing (`routing: affinity`) keeps a group on one replica, which
  holds G / R groups. A stage of a rate ladder that does not give k reuses the groups of the stages before it: no
  first misses (warm).
- Eviction: where a replica's groups outgrow its KV cache (G x P tokens against C), an LRU cache under requests
  spread evenly over the groups holds C / (G x P) of them, and that share of requests hits.
- Multi-turn conversations with N clients in a closed loop: a turn reuses its conversation's history (the prompt
  less the new user turn) if that is still cached; between two turns of one conversation the other N - 1 clients
  each send a turn, so the history survives only if N prompts fit in the KV cache; otherwise only the prefix common
  to all conversations hits (an LRU cache visited in a cycle longer than itself keeps nothing of it).

A published hit rate is used as given. A row whose fleet spans more nodes than a shipped topology has (independent
TP=1 replicas behind a router) is priced as one node's share: its 8 GPUs at 8 / gpus of the rate. A row that states
the gateway's own per-request time (`router_overhead_ms`: the router's tokenizer hop, measured on the same rig) has
it added to the predicted TTFT.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from planner.calibrate.corpus import Case, Entry, Skip, case_machine, cases, older_release, resolve
from planner.cost.constants import DEFAULT
from planner.cost.engines import resolve_constants
from planner.cost.estimate import estimate
from planner.errors import PlannerError
from planner.plan import Workload
from planner.traffic.steady import open_loop

#: GPUs of the largest shipped single-node topology of a GPU (a fleet of independent replicas is priced per node).
NODE_GPUS = 8


@dataclass(frozen=True)
class Reuse:
    """What the prefix cache holds for a row: the reusable part of each prompt and the share of requests that find
    it cached, with the mechanism in words."""

    prefix_tokens: int
    hit: float
    how: str


def lru_resident_share(working_set_tokens: float, kv_tokens: float) -> float:
    """Share of a working set an LRU cache of `kv_tokens` holds when requests spread evenly over it: all of it if it
    fits, else kv_tokens / working_set_tokens (under independent uniform references LRU keeps the most recent
    C tokens, any given group among them with probability C / working set)."""
    return 1.0 if working_set_tokens <= kv_tokens else kv_tokens / working_set_tokens


def group_reuse(prefix: dict, *, replicas: int, kv_tokens: float) -> Reuse:
    """Reuse of G groups of P-token prefixes over `replicas` behind the row's router (module docstring)."""
    tokens, groups = int(prefix["shared_prefix_tokens"]), int(prefix.get("prefix_groups") or 1)
    spread = prefix.get("routing", "affinity") == "spread" and replicas > 1
    held = groups if spread else math.ceil(groups / replicas)  # groups each replica holds
    resident = lru_resident_share(held * tokens, kv_tokens)
    per_group = prefix.get("prompts_per_group")
    if per_group:  # first misses: one per group on each replica its requests reach
        reached = replicas * (1 - (1 - 1 / replicas) ** per_group) if spread else 1.0
        first = reached / per_group
    else:
        first = 0.0
    hit = resident * (1 - first)
    how = (
        f"{groups} groups x {tokens:,} tokens, {'spread over' if spread else 'affinity on'} {replicas} replica(s): "
        f"{held} groups a replica, {resident:.0%} resident in {kv_tokens:,.0f} KV tokens"
        + (f", first misses {first:.1%}" if per_group else ", warm")
    )
    return Reuse(tokens, hit, how)


def conversation_reuse(prefix: dict, *, isl: int, kv_tokens: float) -> Reuse:
    """Reuse of multi-turn conversations from `clients` closed-loop clients (module docstring): the history (the
    prompt less the new turn) hits if `clients` prompts fit in the KV cache, else only the common prefix does. A
    conversation's first turn has no history: 1 / turns of the requests find only the common prefix."""
    common = int(prefix.get("shared_prefix_tokens") or 0)
    reusable = max(common, isl - int(prefix.get("new_tokens_per_turn") or 0))
    clients, turns = int(prefix["clients"]), int(prefix.get("turns") or 1)
    cycle_tokens = clients * isl  # this conversation's prompt and the N - 1 others sent before its next turn
    only_common = common / reusable if reusable else 0.0
    if cycle_tokens <= kv_tokens:
        hit = (1 - 1 / turns) + only_common / turns
        how = f"history resident ({clients} x {isl:,} tokens fit in {kv_tokens:,.0f})"
    else:
        hit = only_common
        how = f"history evicted ({clients} x {isl:,} tokens > {kv_tokens:,.0f} KV tokens): {common} common tokens hit"
    return Reuse(reusable, hit, how)


def kv_tokens_per_replica(case: Case) -> float:
    """A replica's KV capacity in tokens: the row's published figure, else the model's (sequences of 1,024 + 1
    tokens the plan holds, over its replicas)."""
    if case.entry.row.kv_cache_tokens:
        return float(case.entry.row.kv_cache_tokens)
    profile, topo, part = case_machine(case)
    w = Workload(concurrency=1, isl=1024, osl=1, weight_dtype=case.weight_dtype, kv_dtype=case.kv_dtype)
    pred = estimate(profile, topo, part, workload=w, c=resolve_constants(DEFAULT, case.engine), check=False)
    return pred.max_concurrency * 1025 / case.replicas


def fleet_replicas(case: Case) -> int:
    """Replicas of the row's whole fleet (the router's), which a per-node case prices only part of."""
    gpus = (case.entry.row.model_extra or {}).get("fleet_gpus") or case.gpus
    return max(case.replicas, int(gpus) // (case.tp * case.dp * case.pp))


def reuse(case: Case) -> Reuse | None:
    """The row's prefix reuse by mechanism (module docstring), or None where its structure is not published."""
    prefix = case.entry.row.prefix or {}
    if prefix.get("hit_rate") is not None:
        return Reuse(int(prefix.get("shared_prefix_tokens") or 0), float(prefix["hit_rate"]), "published hit rate")
    if prefix.get("clients"):
        return conversation_reuse(prefix, isl=case.isl, kv_tokens=kv_tokens_per_replica(case))
    if prefix.get("shared_prefix_tokens") and (prefix.get("prompts_per_group") or prefix.get("prefix_groups")):
        return group_reuse(prefix, replicas=fleet_replicas(case), kv_tokens=kv_tokens_per_replica(case))
    return None


@dataclass(frozen=True)
class PrefixCheck:
    case: Case
    hit_rate: float
    ttft_ms: float | None  # predicted with prefix reuse
    plain_ttft_ms: float | None  # predicted for the same prompts with nothing cached
    paired_ttft_ms: float | None = None  # measured: the publisher's own run without a shared prefix, if any
    problem: str | None = None
    how: str = ""  # the reuse mechanism, in words

    @property
    def error(self) -> float | None:
        """predicted / measured TTFT - 1."""
        measured = self.case.measured.ttft_ms
        return None if self.ttft_ms is None or not measured else self.ttft_ms / measured - 1

    @property
    def ratio_error(self) -> float | None:
        """(predicted prefix / plain TTFT) / (measured prefix / plain TTFT) - 1: the prefix cache's effect alone."""
        m, paired = self.case.measured.ttft_ms, self.paired_ttft_ms
        if self.ttft_ms is None or not self.plain_ttft_ms or not m or not paired:
            return None
        return (self.ttft_ms / self.plain_ttft_ms) / (m / paired) - 1


def node_entry(entry: Entry) -> Entry:
    """The row as the prefix check prices it: a fleet of independent replicas wider than a node cut to one node's
    share (8 GPUs at 8 / gpus of the rate and prompts), and a multi-turn row's mean prompt from its published rates
    (input tokens/s over the requests/s that (total - input) tokens/s of osl-token answers make)."""
    row, update = entry.row, dict[str, float | int | None]()
    per_replica = (row.tp or 1) * (row.dp or 1) * (row.pp or 1)
    if row.gpus and row.gpus > NODE_GPUS and NODE_GPUS % per_replica == 0 and row.disagg is None:
        share = NODE_GPUS / row.gpus
        update["gpus"], update["fleet_gpus"] = NODE_GPUS, row.gpus
        update["request_rate"] = row.request_rate * share if row.request_rate else row.request_rate
        update["num_prompts"] = round(row.num_prompts * share) if row.num_prompts else row.num_prompts
    prefix = row.prefix or {}
    if row.isl is None and prefix.get("input_tokens_per_s") and row.total_tokens_per_s and row.osl:
        requests_per_s = (row.total_tokens_per_s - prefix["input_tokens_per_s"]) / row.osl
        update["isl"] = round(prefix["input_tokens_per_s"] / requests_per_s)
    return entry if not update else Entry(entry.publisher, entry.file, entry.index, row.model_copy(update=update))


def prefix_cases(corpus: list[Case], skipped: list[Skip] | None = None) -> list[Case]:
    """Aggregated corpus rows with a shared prefix whose reuse is published or follows from its structure: the
    resolved ones and those resolved once cut to a node or given their mean prompt (`node_entry`)."""
    out = []
    for c in corpus:
        if _is_prefix_row(c):
            out.append(c)
    for s in skipped or []:
        if not s.entry.row.prefix:
            continue
        again = resolve(node_entry(s.entry))
        if isinstance(again, Case) and _is_prefix_row(again):
            out.append(again)
    return out


def _is_prefix_row(c: Case) -> bool:
    p = c.entry.row.prefix or {}
    if c.disaggregated or not p:
        return False
    structured = p.get("prompts_per_group") or p.get("prefix_groups") or p.get("clients")
    return p.get("hit_rate") is not None or bool(p.get("shared_prefix_tokens") and structured)


def _paired(case: Case, corpus: list[Case]) -> float | None:
    """Measured TTFT of the same publisher's run on the same engine build, machine, layout, load and requested
    lengths (the row's, not the realized means, which differ run to run) with nothing shared (None if it has none)."""
    r = case.entry.row
    key = (case.engine, case.topology, case.gpus, case.load, case.concurrency, case.request_rate, r.isl, r.osl)
    for c in corpus:
        o = c.entry.row
        if (
            c.entry.file == case.entry.file
            and not o.prefix
            and o.engine_version == r.engine_version
            and (c.engine, c.topology, c.gpus, c.load, c.concurrency, c.request_rate, o.isl, o.osl) == key
        ):
            return c.measured.ttft_ms
    return None


def _ttft_ms(case: Case, work: Workload) -> float:
    profile, topo, part = case_machine(case)
    c = resolve_constants(DEFAULT, case.engine)
    gateway_ms = float((case.entry.row.model_extra or {}).get("router_overhead_ms") or 0.0)
    if case.load == "open":
        return open_loop(profile, topo, part, work, c).ttft_ms + gateway_ms
    return estimate(profile, topo, part, workload=work, c=c).ttft_ms + gateway_ms


def check(case: Case, corpus: list[Case]) -> PrefixCheck:
    """`case` priced with and without its prefix reuse, and paired with its plain twin among `corpus`."""
    plain = Workload(
        concurrency=case.concurrency or case.entry.row.num_prompts or 1,
        isl=case.isl,
        osl=case.osl,
        request_rate=case.request_rate if case.load == "open" else None,
        num_prompts=case.entry.row.num_prompts if case.load == "open" else None,
        weight_dtype=case.weight_dtype,
        kv_dtype=case.kv_dtype,
        engine=case.engine,
        statistic=case.measured.latency_statistic,
        mode="serving" if case.load == "open" else case.load,
    )
    try:
        found = reuse(case) or Reuse(0, 0.0, "no structure")
        shared = plain.model_copy(update={"prefix_tokens": found.prefix_tokens, "prefix_hit": found.hit})
        paired = _paired(case, corpus)
        return PrefixCheck(case, found.hit, _ttft_ms(case, shared), _ttft_ms(case, plain), paired, how=found.how)
    except PlannerError as exc:
        return PrefixCheck(case, 0.0, None, None, problem=str(exc))


def all_checks() -> list[PrefixCheck]:
    """Every prefix row of the corpus checked (the corpus resolved once)."""
    corpus, skipped = cases()
    return [check(c, corpus) for c in prefix_cases(corpus, skipped)]


def older_release_checks() -> list[PrefixCheck]:
    """The prefix rows left out for their engine release (planner.cost.engines.versions), checked as if they were
    not, beside their plain twins: benchmarks/prefix_rows.py prints them apart from the figures."""
    corpus, skipped = cases(older_kernels=True)
    return [check(c, corpus) for c in prefix_cases(corpus, skipped) if older_release(c)]


def summary(checks: list[PrefixCheck]) -> dict[str, float | int]:
    """Rows priced, their publishers, the median |error| of TTFT and of the prefix-to-plain TTFT ratio."""
    errs = [abs(e) for c in checks if (e := c.error) is not None]
    ratios = [abs(e) for c in checks if (e := c.ratio_error) is not None]
    return {
        "rows": len(errs),
        "publishers": len({c.case.publisher for c in checks if c.error is not None}),
        "ttft_median_abs_error": statistics.median(errs) if errs else float("nan"),
        "paired_rows": len(ratios),
        "ratio_median_abs_error": statistics.median(ratios) if ratios else float("nan"),
    }


def by_publisher(checks: list[PrefixCheck]) -> dict[str, tuple[int, float]]:
    """Per publisher: (rows priced, median |TTFT error|)."""
    errs: dict[str, list[float]] = {}
    for c in checks:
        if (e := c.error) is not None:
            errs.setdefault(c.case.publisher, []).append(abs(e))
    return {name: (len(v), statistics.median(v)) for name, v in sorted(errs.items())}
