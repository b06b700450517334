"""The artefacts: Workload, Partition (stages x GPUs x layers), Prediction and the versioned Plan.

A Plan is the single file later commands read (launch, validate, compare, bench). `estimate` writes
one with `solver.status = GIVEN`; `solve` writes one with OPTIMAL or FEASIBLE. Every figure of a
Prediction holds at one operating point: `prediction.concurrency` sequences decoding together over
all replicas (docs/cost-model.md, "one operating point").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from planner.disagg.plan import Pools, ServingChoice
from planner.errors import PartitionError
from planner.fleet import Fleet
from planner.model.dtypes import dtype_problem
from planner.traffic.arrivals import trace
from planner.traffic.lengths import DistError, LengthDist, parse_length
from planner.traffic.model import TrafficPrediction
from planner.units import layout_label

if TYPE_CHECKING:
    from planner.hardware.topology import Topology
    from planner.model.layergraph import ModelProfile

#: 2: stages carry dp and ep; predictions state their operating point. Version 1 plans still load.
#: 3: an optional `pools` (prefill/decode disaggregation, planner.disagg.plan). Versions 1 and 2 still load.
PLAN_VERSION = 3
SUPPORTED_PLAN_VERSIONS = (1, 2, 3)
#: Caps on workload sizes: far above any served model, low enough that every product stays exact.
MAX_CONCURRENCY = 1_000_000
MAX_TOKENS = 10_000_000

Mode = Literal["serving", "static", "closed", "offline"]
Engine = Literal["vllm", "sglang", "trtllm"]
Statistic = Literal["mean", "median"]


_REMEDY: JsonDict = {"panel": "Remedies"}
_TRAFFIC: JsonDict = {"panel": "Traffic"}


#: What a trace sets (`--arrivals`), and so may not be given beside it.
_FROM_TRACE = ("request_rate", "isl", "osl", "prefix_tokens", "prefix_hit")


def _with_trace(data: dict) -> dict:
    """Workload values with `arrivals` (a trace file) read into the rate, lengths, burstiness and prefix reuse it
    sets; the file itself is not kept (the figures are), so that a dumped workload validates again. A value the
    trace sets may be given beside it only at its default (commands pass their defaults)."""
    path = data.pop("arrivals", None)
    if path is None:
        return data
    given = [name for name in _FROM_TRACE if data.get(name) is not None]  # a command passes its defaults too
    clash = [f"--{n.replace('_', '-')}" for n in given if str(data[n]) != str(Workload.model_fields[n].default)]
    if clash:
        raise ValueError(f"--arrivals sets {', '.join(clash)} from the trace: give one or the other")
    try:
        t = trace(path)
    except DistError as exc:
        raise ValueError(str(exc)) from None
    isl, osl = max(1, round(t.isl.mean)), max(1, round(t.osl.mean))
    return {
        **data,
        "request_rate": t.rate_per_s,
        "isl": isl,
        "osl": osl,
        "isl_dist": t.isl,
        "osl_dist": t.osl,
        "arrival_cv2": t.gap_cv2,
        "prefix_tokens": min(t.prefix_tokens, isl),
        "prefix_hit": t.prefix_hit if t.prefix_tokens else 0.0,
        "arrival_trace": f"{t.path}: {t.requests:,} requests over {t.span_s:,.1f} s",
    }


class Workload(BaseModel):
    """What is served: the load, the lengths, the dtypes, the engine's memory share, the regime and the remedies.

    Each field is also a command-line option of every command that takes a workload (planner.cli.options derives
    them: `--` and the name in kebab case; `short`, `flag` and `panel` in the field's extra data)."""

    model_config = ConfigDict(extra="forbid")
    concurrency: StrictInt = Field(
        1,
        ge=1,
        le=MAX_CONCURRENCY,
        json_schema_extra={"short": "-c"},
        description="the load: sequences decoding together, over all replicas",
    )
    isl: StrictInt = Field(
        1024,
        ge=1,
        le=MAX_TOKENS,
        json_schema_extra={"text": True},
        description="input (prompt) tokens per sequence: a length, uniform:A-B, "
        "lognormal:MEAN,SIGMA, a histogram file or a shipped one (chat-sharegpt, history-sharegpt); "
        "a distribution keeps its mean here and itself in isl_dist",
    )
    osl: StrictInt = Field(
        256,
        ge=1,
        le=MAX_TOKENS,
        json_schema_extra={"text": True},
        description="output tokens per sequence, in the same forms as --isl",
    )
    weight_dtype: str = Field(
        "bf16",
        description="weight dtype: bf16, fp16, fp8, int4, mxfp4, nvfp4; default the "
        "checkpoint's own (fp8 for DeepSeek-V3/R1 and Kimi-K2, mxfp4 for gpt-oss, else bf16)",
        json_schema_extra={"derived": True},
    )
    kv_dtype: str = Field("bf16", description="KV-cache dtype: bf16, fp16, fp8")
    mode: Mode = Field(
        "serving",
        description="serving: steady state with arrivals (chunked prefill shares "
        "steps with decode); static: one batch decoding alone, as microbenchmarks run; closed: a "
        "closed-loop benchmark's waves of identical requests (genai-perf, planner bench); offline: "
        "every request queued at once, the engine running as many as its KV cache and batch limit "
        "hold (maximum-throughput tables)",
    )
    gpu_memory_fraction: float = Field(0.9, gt=0, le=1, description="share of GPU memory the engine may use")
    # --- engine (fidelity, issue 23): which server runs the plan; its profile prices the step ----------
    engine: Engine = Field(
        "vllm",
        description="the serving engine whose profile prices the plan (host overheads, "
        "kernels, step budget, memory accounting: planner/cost/engines/) and that launch targets",
    )
    engine_version: Optional[str] = Field(
        None,
        max_length=64,
        json_schema_extra={"text": True},
        description="the engine's release (e.g. 0.5.6): one older than the kernels its profile prices "
        "(planner/cost/engines/versions.py) is said beside the figures, which then carry no error band",
    )
    statistic: Statistic = Field(
        "mean",
        description="the statistic latency figures report over requests: mean "
        "(genai-perf, vLLM and SGLang bench_serving) or median",
    )
    # --- remedies (docs/remedies.md): each a modelled change of what a step reads or produces ---------
    spec_tokens: StrictInt = Field(
        0,
        ge=0,
        le=16,
        description="speculative decoding / MTP: draft tokens per verification pass (0: off)",
        json_schema_extra=_REMEDY,
    )
    spec_acceptance: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="speculative decoding: probability that a draft token is accepted, each independently",
        json_schema_extra=_REMEDY,
    )
    spec_draft: Literal["mtp", "free"] = Field(
        "mtp",
        description="what drafts cost: mtp, one decoder layer and the "
        "lm_head per draft token (DeepSeek's multi-token prediction, EAGLE); "
        "free, nothing (n-gram or prompt lookup)",
        json_schema_extra=_REMEDY,
    )
    mlp_sparsity: float = Field(
        0.0,
        ge=0,
        le=0.99,
        description="fraction of a dense MLP's rows a token skips (Deja Vu,"
        " CATS); a step of n tokens reads 1 - s^n of them",
        json_schema_extra=_REMEDY,
    )
    activation_sparsity: float = Field(
        0.0,
        ge=0,
        le=0.99,
        description="fraction of every decoder matrix's input "
        "channels a token skips (TEAL's model-wide sparsity); a step of n tokens "
        "reads 1 - s^n of each matrix",
        json_schema_extra=_REMEDY,
    )
    attention_sparsity: float = Field(
        0.0,
        ge=0,
        le=0.99,
        description="fraction of its KV cache a decode token skips (top-k or block-sparse attention)",
        json_schema_extra=_REMEDY,
    )

    # --- traffic (issue 25, planner.traffic): arrivals and length distributions -----------------------
    request_rate: Optional[float] = Field(
        None,
        gt=0,
        le=1e6,
        json_schema_extra=_TRAFFIC,
        description="open loop: Poisson arrivals, requests/s over all replicas; "
        "the load becomes the steady state it causes (Little's law)",
    )
    arrivals: Optional[str] = Field(
        None,
        json_schema_extra={**_TRAFFIC, "text": True},
        description="open loop from a trace: a JSON Lines file of requests (timestamp_s, prompt_tokens, "
        "output_tokens; or Mooncake's timestamp ms, input_length, output_length, hash_ids): sets the request "
        "rate, both length distributions, the arrivals' burstiness and, from hash_ids, prefix reuse",
    )
    arrival_cv2: float = Field(
        1.0,
        ge=0,
        le=1e6,
        json_schema_extra={"cli": False},
        description="squared coefficient of variation of the gaps between arrivals (1: Poisson); the queues' "
        "waits scale by Kingman's (ca^2 + cs^2) / (1 + cs^2)",
    )
    arrival_trace: Optional[str] = Field(
        None, json_schema_extra={"cli": False}, description="the trace the traffic was read from, in words"
    )
    num_prompts: Optional[StrictInt] = Field(
        None,
        ge=1,
        le=MAX_CONCURRENCY,
        json_schema_extra=_TRAFFIC,
        description="open loop: a finite run of this many requests (as "
        "bench_serving --num-prompts); above the sustainable rate the figures "
        "are the run's, its queue growing while requests arrive. Closed loop: the "
        "run's requests in all; where output lengths vary, those after the first "
        "wave arrive staggered",
    )
    scheduler_steps: StrictInt = Field(
        1,
        ge=1,
        le=64,
        json_schema_extra=_TRAFFIC,
        description="decode steps between the engine's looks at new requests (vLLM V0's "
        "--num-scheduler-steps, SGLang's --scheduler-recv-interval): newcomers "
        "start between groups, and TTFT waits (k - 1) / 2 steps more on average",
    )
    chunked_prefill: StrictBool = Field(
        True,
        json_schema_extra={"cli": False},
        description="open loop: False prices vLLM V0's default scheduler (chunked "
        "prefill off): prompts run in prefill-only steps that stall every decode "
        "(planner.traffic.nonchunked)",
    )
    prefix_tokens: StrictInt = Field(
        0,
        ge=0,
        le=MAX_TOKENS,
        json_schema_extra=_TRAFFIC,
        description="prefix reuse: tokens at the start of each prompt shared with others "
        "(a system prompt, earlier turns) that the engine's prefix cache may hold",
    )
    prefix_hit: float = Field(
        0.0,
        ge=0,
        le=1,
        json_schema_extra=_TRAFFIC,
        description="prefix reuse: share of requests whose prefix the cache holds (its prefill "
        "is skipped, its KV blocks shared)",
    )
    prefix_tier: Literal["gpu", "host"] = Field(
        "gpu",
        json_schema_extra=_TRAFFIC,
        description="prefix reuse: where the cached prefix lives: gpu (the engine's own prefix cache), or host "
        "(a host-memory KV tier, vLLM KV offloading / LMCache: a hit loads the prefix's KV over PCIe before "
        "its prefill, which can be slower than recomputing it)",
    )
    isl_dist: Optional[LengthDist] = Field(
        None, json_schema_extra={"cli": False}, description="the prompt-length distribution isl is the mean of"
    )
    osl_dist: Optional[LengthDist] = Field(
        None, json_schema_extra={"cli": False}, description="the output-length distribution osl is the mean of"
    )

    @model_validator(mode="before")
    @classmethod
    def _length_specs(cls, data):
        """`isl` / `osl` given as text: a length or a distribution (its rounded mean stays in isl / osl)."""
        if not isinstance(data, dict):
            return data
        out = _with_trace(dict(data))
        for name in ("isl", "osl"):
            value = out.get(name)
            if isinstance(value, str):
                try:
                    dist = parse_length(value, what=f"--{name}")
                except DistError as exc:
                    raise ValueError(str(exc)) from None
                out[name] = dist.mean_tokens
                if dist.kind != "fixed":
                    out[f"{name}_dist"] = dist
        return out

    @model_validator(mode="after")
    def _prefix_within_prompt(self) -> Workload:
        if self.prefix_tokens > self.isl:
            raise ValueError(f"--prefix-tokens {self.prefix_tokens} is longer than the prompt (--isl {self.isl})")
        if self.prefix_hit and not self.prefix_tokens:
            raise ValueError("give --prefix-tokens too (the shared prefix that --prefix-hit finds cached)")
        return self

    @property
    def cached_tokens(self) -> float:
        """Prompt tokens a request finds in the prefix cache on average: prefix_hit x prefix_tokens."""
        return self.prefix_hit * self.prefix_tokens

    @property
    def new_prompt_tokens(self) -> float:
        """Prompt tokens a request prefills on average: isl less what the prefix cache holds."""
        return max(1.0, self.isl - self.cached_tokens)

    @field_validator("spec_acceptance")
    @classmethod
    def _acceptance_needs_drafts(cls, v: float, info: ValidationInfo) -> float:
        if v and not info.data.get("spec_tokens"):
            raise ValueError("give --spec-tokens too (draft tokens per verification pass)")
        return v

    @field_validator("weight_dtype", "kv_dtype")
    @classmethod
    def _known_dtype(cls, v, info):
        if problem := dtype_problem("weight" if info.field_name == "weight_dtype" else "KV", v):
            raise ValueError(problem)
        return v

    @property
    def tokens_per_pass(self) -> float:
        """Tokens a sequence gains per pass over the weights: (1 - a^(k+1)) / (1 - a) under speculative decoding."""
        k, a = self.spec_tokens, self.spec_acceptance
        return 1.0 if k == 0 else (1 - a ** (k + 1)) / (1 - a)

    def remedy_labels(self) -> list[str]:
        """The remedies this workload models, in words (empty for none)."""
        out = []
        if self.spec_tokens:
            out.append(
                f"speculative k={self.spec_tokens} a={self.spec_acceptance:g} ({self.spec_draft} draft, "
                f"{self.tokens_per_pass:.2f} tokens per pass)"
            )
        for name, value in (
            ("MLP", self.mlp_sparsity),
            ("activation", self.activation_sparsity),
            ("attention", self.attention_sparsity),
        ):
            if value:
                out.append(f"{name} sparsity {value:.0%}")
        return out

    @property
    def mean_context(self) -> float:
        """Mean context over the decode: it grows from isl to isl + osl. Over length distributions a decode step
        sees each sequence in proportion to its output length: E[isl] + E[osl^2] / (2 E[osl])."""
        if self.osl_dist is None:
            return self.isl + self.osl / 2
        return self.isl + self.osl_dist.second_moment / (2 * self.osl_dist.mean)

    @property
    def prefill_context(self) -> float:
        """Mean context a prompt token attends to while prefilled: isl / 2, or over a distribution
        E[isl^2] / (2 E[isl]) (a token sits in a prompt in proportion to the prompt's length)."""
        own = self.isl / 2 if self.isl_dist is None else self.isl_dist.second_moment / (2 * self.isl_dist.mean)
        if not self.cached_tokens:
            return own
        # prefix reuse: the prefilled tokens attend to the cached prefix and to their part of the rest
        return self.cached_tokens + own * self.new_prompt_tokens / self.isl

    @property
    def sequence_tokens(self) -> int:
        """KV tokens a sequence holds of its own: its prompt and output, less the prefix blocks it shares with
        others (held once, not per sequence)."""
        return max(1, round(self.isl + self.osl - self.cached_tokens))


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer_start: StrictInt = Field(ge=0, description="first decoder layer")
    layer_end: StrictInt = Field(ge=1, description="one past the last decoder layer")
    gpu_ids: list[StrictInt] = Field(min_length=1)
    tp: StrictInt = Field(ge=1, description="attention tensor-parallel degree")
    dp: StrictInt = Field(1, ge=1, description="attention data-parallel ranks (len(gpu_ids) == tp x dp)")
    ep: StrictInt = Field(1, ge=1, description="expert-parallel degree of MoE layers: 1, or tp x dp")
    offload_layers: list[StrictInt] = Field(
        default_factory=list,
        description="decoder layers whose weights live in host memory and stream to the GPUs every step (memory tiers)",
    )

    @property
    def n_layers(self) -> int:
        return self.layer_end - self.layer_start

    @property
    def n_gpus(self) -> int:
        return self.tp * self.dp

    @property
    def label(self) -> str:
        return layout_label(self.tp, self.dp, self.ep)


class Partition(BaseModel):
    """Pipeline stages of one replica, and the GPUs of every replica (replica 0 = `stages`)."""

    model_config = ConfigDict(extra="forbid")
    stages: list[Stage] = Field(min_length=1)
    replicas: StrictInt = Field(1, ge=1)
    replica_gpu_ids: list[list[list[StrictInt]]] = Field(
        default_factory=list, description="per replica, per stage, its GPU ids; empty for one replica"
    )

    @property
    def pp(self) -> int:
        return len(self.stages)

    @property
    def shape(self) -> str:
        labels = sorted({s.label for s in self.stages})
        return f"{'/'.join(labels)} x PP{self.pp} x R{self.replicas}"

    def all_gpu_ids(self) -> list[int]:
        if self.replica_gpu_ids:
            return [g for rep in self.replica_gpu_ids for st in rep for g in st]
        return [g for s in self.stages for g in s.gpu_ids]

    def replica_stage_ids(self) -> list[list[list[int]]]:
        return self.replica_gpu_ids or [[s.gpu_ids for s in self.stages]]

    def layer_counts(self) -> list[int]:
        return [s.n_layers for s in self.stages]

    def per_replica(self, concurrency: int) -> int:
        """Sequences each replica carries (the busiest replica, with an uneven remainder)."""
        return math.ceil(concurrency / self.replicas)


def _bools_in(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, dict):
        return any(_bools_in(v) for v in value.values())
    return isinstance(value, list) and any(isinstance(v, bool) for v in value)


class NumbersNotBooleans(BaseModel):
    """A figure read from a plan file is a number: `tpot_ms: true` is refused, not read as 1.0 (pydantic's lax
    mode would), in every field not declared a boolean (found by benchmarks/fuzz.py's extreme-plan family)."""

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                if field.annotation is not bool and _bools_in(data.get(name)):
                    raise ValueError(f"{name}: a boolean where a number is expected")
        return data


class StagePrediction(NumbersNotBooleans):
    index: int
    layer_start: int
    layer_end: int
    gpu_ids: list[int]
    tp: int
    dp: int = 1
    ep: int = 1
    gpu_type: str
    has_embedding: bool
    has_lm_head: bool
    weight_bytes_per_gpu: float
    kv_bytes_per_sequence_per_gpu: float
    hbm_bytes_per_gpu_per_step: float
    step_time_ms: float
    weights_ms: float
    kv_ms: float
    compute_ms: float
    interconnect_ms: float
    overhead_ms: float
    transfer_out_ms: float
    max_concurrency: int
    offload_ms: float = Field(0.0, description="streaming host-memory layers, beyond what the compute hides")
    offload_layers: list[int] = Field(default_factory=list, description="decoder layers streamed from host memory")


#: The usability bound (issue 26 item 5): under 1 output token/s per user a 256-token reply takes over 4 minutes, and
#: reading runs at about 4 words/s (238 words/min silent reading: Brysbaert 2019, J. Memory and Language 109), some
#: 5 tokens/s; a plan past it is flagged, not presented as an answer.
MIN_USABLE_TOKENS_PER_S_PER_USER = 1.0


class Prediction(NumbersNotBooleans):
    """Every figure at one operating point: `concurrency` sequences decoding together (all replicas)."""

    concurrency: int = Field(1, description="sequences decoding together over all replicas: the load")
    mode: Mode = "serving"
    tpot_ms: float
    ttft_ms: float
    tokens_per_s: float = Field(description="output tokens/s over all replicas = concurrency x 1000 / tpot_ms")
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float = Field(0.0, description="1000 / tpot_ms")
    requests_per_s: float = Field(0.0, description="completed requests/s: concurrency / (ttft + osl x tpot)")
    prefill_tokens_per_step: float = Field(0.0, description="prompt tokens an average step carries beside decode")
    max_concurrency: int = Field(description="KV capacity: the most sequences the plan's KV cache holds")
    fits: bool
    memory_per_gpu_bytes: dict[int, float]
    memory_capacity_bytes: dict[int, float]
    shortfall_per_gpu_bytes: dict[int, float] = Field(default_factory=dict)
    memory_breakdown: dict[int, dict[str, float]] = Field(default_factory=dict)
    host_memory_bytes: dict[str, float] = Field(
        default_factory=dict, description="per node: streamed layers' bytes in its host-memory tier"
    )
    host_capacity_bytes: dict[str, float] = Field(default_factory=dict, description="per node: its tier's capacity")
    hbm_bytes_per_token: float
    hbm_weight_bytes_per_token: float
    hbm_kv_bytes_per_token: float
    interconnect_bytes_per_token: float
    interconnect_bytes_by_class: dict[str, float]
    critical_path_bytes_per_token: float = Field(
        0.0, description="HBM plus interconnect bytes of one GPU per stage (the path a token takes), per token"
    )
    time_breakdown_ms: dict[str, float]
    roofline_tpot_ms: float
    roofline_ratio: float
    stages: list[StagePrediction]
    # --- fidelity (issue 23) ---------------------------------------------------------------------------
    engine: str = Field("vllm", description="the engine profile the figures were predicted for")
    admitted_concurrency: Optional[int] = Field(
        None,
        description="sequences the engine runs at once where its KV "
        "cache or batch limit holds fewer than the load (the rest wait for "
        "admission); None where every sequence runs",
    )
    prefix_tier_load_ms: Optional[float] = Field(
        None,
        description="--prefix-tier host: the mean time a request loads its cached prefix's KV from host memory "
        "(in ttft_ms)",
    )
    prefix_recompute_ms: Optional[float] = Field(
        None, description="--prefix-tier host: the time prefilling the same cached tokens would take instead"
    )
    tpot_ms_band: Optional[float] = Field(
        None,
        description="relative error band of tpot_ms: the median |error| "
        "this class (engine x dense/MoE) earned held out in cross-validation",
    )
    ttft_ms_band: Optional[float] = Field(None, description="relative error band of ttft_ms, likewise")
    tokens_per_s_band: Optional[float] = Field(
        None,
        description="relative error band of tokens_per_s, likewise (maximum-throughput rows' band in offline mode)",
    )
    unmodelled: Optional[str] = Field(
        None,
        description="what the figures do not model, in words (an engine release older than the kernels its "
        "profile prices); its bands are then None",
    )
    # --- traffic (issue 25) -----------------------------------------------------------------------------
    traffic: Optional[TrafficPrediction] = Field(
        None,
        description="open loop (--request-rate): the steady state, "
        "whether the rate is sustained, queues and percentiles",
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="False past the usability bound: under MIN_USABLE_TOKENS_PER_S_PER_USER output "
        "tokens/s per user (TPOT above 1 s)"
    )
    @property
    def usable(self) -> bool:
        return self.tpot_ms <= 1000.0 / MIN_USABLE_TOKENS_PER_S_PER_USER


class SolverInfo(BaseModel):
    status: Literal["GIVEN", "OPTIMAL", "FEASIBLE"]
    objective: Optional[str] = None
    objective_value: Optional[float] = None
    best_bound: Optional[float] = None
    gap: Optional[float] = None
    wall_time_s: Optional[float] = None
    resolution: Optional[str] = None
    exact_candidates: Optional[bool] = Field(None, description="False where GPU groups were pruned heuristically")
    note: Optional[str] = None


class Alternative(BaseModel):
    shape: str
    partition: Partition
    prediction: Prediction
    engines: list[str] = Field(default_factory=list, description="engines that can run this plan as it is")


class PlanInputs(BaseModel):
    model: str
    model_source: str
    config_hash: str
    topology: str
    topology_source: str
    topology_hash: str
    workload: Workload
    objective: str = "latency"
    tpot_slo_ms: Optional[float] = None
    ttft_slo_ms: Optional[float] = None


class Plan(BaseModel):
    """The artefact every later step reads. Strict: an unknown or missing top-level field is refused, not guessed."""

    model_config = ConfigDict(extra="forbid")
    plan_version: StrictInt
    inputs: PlanInputs
    stages: list[Stage] = Field(min_length=1)
    replicas: StrictInt = Field(1, ge=1)
    replica_gpu_ids: list[list[list[int]]] = Field(default_factory=list)
    prediction: Prediction
    solver: SolverInfo
    alternatives: list[Alternative] = Field(default_factory=list)
    pools: Optional[Pools] = Field(
        None,
        description="disaggregated serving: the prefill and decode pools (then "
        "`stages` and `prediction` are the decode pool's); None: aggregated",
    )
    fleet: Optional[Fleet] = Field(
        None,
        description="throughput on several node types: each type's best plan, "
        "summed (then `stages` and `prediction` are the largest part's); None: one type",
    )
    serving: Optional[ServingChoice] = Field(
        None, description="solve --serving: the mode chosen, the other mode's best plan and the margin"
    )

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data):
        """Version 1 plans: predictions had no operating point; it was the workload's concurrency."""
        if isinstance(data, dict) and data.get("plan_version") == 1:
            pred = data.get("prediction")
            load = ((data.get("inputs") or {}).get("workload") or {}).get("concurrency", 1)
            if isinstance(pred, dict) and "concurrency" not in pred:
                data = {**data, "prediction": {**pred, "concurrency": load, "mode": "static"}}
        return data

    @field_validator("plan_version")
    @classmethod
    def _known_version(cls, v):
        if v not in SUPPORTED_PLAN_VERSIONS:
            known = ", ".join(map(str, SUPPORTED_PLAN_VERSIONS))
            raise ValueError(f"plan_version {v} is not one this planner reads ({known})")
        return v

    @property
    def partition(self) -> Partition:
        return Partition(stages=self.stages, replicas=self.replicas, replica_gpu_ids=self.replica_gpu_ids)


def tp_problems(profile: ModelProfile, tp: int, experts_split: bool = True) -> list[str]:
    """Why `tp` cannot split this model, with the arithmetic; empty when it can. Under expert
    parallelism (`experts_split` False) experts are whole, so their width need not divide by tp."""
    problems = []
    for what, size in profile.tp_divisors().items():
        if what == "expert intermediate size" and not experts_split:
            continue
        if size % tp:
            problems.append(f"tp({tp}) must divide {what}({size})")
    kv = profile.n_kv_heads
    if profile.attention == "gqa":
        if tp <= kv and kv % tp:
            problems.append(f"tp({tp}) must divide KV heads({kv}) when tp <= KV heads")
        if tp > kv and tp % kv:
            problems.append(
                f"tp({tp}) must be a multiple of KV heads({kv}) when tp > KV heads (each rank holds a replica)"
            )
    return problems


def layout_problems(profile: ModelProfile, stage: Stage) -> list[str]:
    """Why a stage's tp/dp/ep cannot run this model; empty when it can."""
    problems = tp_problems(profile, stage.tp, experts_split=stage.ep == 1)
    if len(stage.gpu_ids) != stage.tp * stage.dp:
        problems.append(f"{len(stage.gpu_ids)} GPUs for tp({stage.tp}) x dp({stage.dp}): they must be equal")
    if stage.ep not in (1, stage.tp * stage.dp):
        problems.append(f"ep({stage.ep}) must be 1 or tp x dp ({stage.tp * stage.dp})")
    moe = profile.moe
    if stage.ep > 1 and moe is None:
        problems.append(f"ep({stage.ep}) needs a mixture-of-experts model; {profile.name} is dense")
    elif stage.ep > 1 and moe.n_experts % stage.ep:
        problems.append(f"ep({stage.ep}) must divide the routed experts({moe.n_experts})")
    if stage.dp > 1 and moe is None:
        problems.append(
            f"dp({stage.dp}) inside a stage needs a mixture-of-experts model; use replicas for {profile.name}"
        )
    return problems


def validate_partition(partition: Partition, profile: ModelProfile, topo: Topology) -> None:
    """Raise PartitionError naming the broken rule and its arithmetic."""
    n = profile.n_layers
    expected = 0
    for k, st in enumerate(partition.stages):
        if st.layer_start != expected:
            raise PartitionError(
                f"stage {k} starts at layer {st.layer_start}, expected {expected}: stages must "
                f"cover layers 0..{n - 1} in order, each exactly once"
            )
        if st.layer_end <= st.layer_start:
            raise PartitionError(f"stage {k} has no layers ({st.layer_start}..{st.layer_end})")
        expected = st.layer_end
        if problems := layout_problems(profile, st):
            raise PartitionError(f"stage {k}: {'; '.join(problems)}")
        outside = [i for i in st.offload_layers if not st.layer_start <= i < st.layer_end]
        if outside or len(set(st.offload_layers)) != len(st.offload_layers):
            raise PartitionError(
                f"stage {k}: offload_layers must be distinct layers of the stage "
                f"({st.layer_start}..{st.layer_end - 1}); got {st.offload_layers[:8]}"
            )
        if st.offload_layers and not _has_host_memory(topo, st.gpu_ids):
            raise PartitionError(
                f"stage {k} streams layers from host memory, but the nodes of GPUs {st.gpu_ids} "
                "declare no host_memory tier"
            )
    if expected != n:
        raise PartitionError(f"stages cover layers 0..{expected - 1}, but {profile.name} has {n} layers")
    _check_gpus(partition, topo)


def _has_host_memory(topo: Topology, gpu_ids: list[int]) -> bool:
    return all(topo.host_memory(g) is not None for g in gpu_ids)


def _check_gpus(partition: Partition, topo) -> None:
    ids = partition.all_gpu_ids()
    for g in ids:
        topo.gpu(g)
    if len(set(ids)) != len(ids):
        dup = sorted({g for g in ids if ids.count(g) > 1})
        raise PartitionError(f"GPU ids {dup} are used twice: each GPU serves one stage of one replica")
    if partition.replicas > 1 or partition.replica_gpu_ids:
        if len(partition.replica_gpu_ids) != partition.replicas:
            raise PartitionError(
                f"replicas is {partition.replicas} but replica_gpu_ids lists "
                f"{len(partition.replica_gpu_ids)}: give one list of stage GPU ids per replica"
            )
        expected = [s.n_gpus for s in partition.stages]
        for r, rep in enumerate(partition.replica_gpu_ids):
            if [len(x) for x in rep] != expected:
                raise PartitionError(f"replica {r}: its stages must have the GPU counts {expected}")
        if partition.replica_gpu_ids[0] != [s.gpu_ids for s in partition.stages]:
            raise PartitionError("replica 0's GPU ids must be the stages' gpu_ids")


def even_layers(n_layers: int, pp: int) -> list[int]:
    """Layer counts of an even split, the remainder on the first stages."""
    if pp < 1 or pp > n_layers:
        raise PartitionError(f"pp({pp}) must be between 1 and the layer count ({n_layers})")
    base, extra = divmod(n_layers, pp)
    return [base + (1 if k < extra else 0) for k in range(pp)]


def partition_from_counts(
    counts: list[int], gpu_ids: list[int], tp: int, replicas: int = 1, *, dp: int = 1, ep: int = 1
) -> Partition:
    """Stages of `counts` layers, each on the next tp x dp GPUs of `gpu_ids`; replicas take the following GPUs."""
    width = tp * dp
    per_replica = width * len(counts)
    if len(gpu_ids) < per_replica * replicas:
        raise PartitionError(
            f"{replicas} replica(s) of {width} GPU(s) x pp({len(counts)}) need "
            f"{per_replica * replicas} GPUs, {len(gpu_ids)} given"
        )
    reps = []
    for r in range(replicas):
        base = r * per_replica
        reps.append([gpu_ids[base + k * width : base + (k + 1) * width] for k in range(len(counts))])
    stages, start = [], 0
    for k, n in enumerate(counts):
        stages.append(Stage(layer_start=start, layer_end=start + n, gpu_ids=reps[0][k], tp=tp, dp=dp, ep=ep))
        start += n
    return Partition(stages=stages, replicas=replicas, replica_gpu_ids=reps if replicas > 1 else [])


class EstimateReport(BaseModel):
    """`planner estimate --json`: the headline figures of a prediction at its load, and the plan they belong to."""

    concurrency: int
    tpot_ms: float
    ttft_ms: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    max_concurrency: int
    memory_per_gpu_bytes: dict[int, float]
    hbm_bytes_per_token: float
    interconnect_bytes_per_token: float
    roofline_tpot_ms: float
    fits: bool
    usable: bool = Field(description="False under 1 output token/s per user (TPOT above 1 s)")
    stable: Optional[bool] = Field(None, description="open loop (--request-rate): whether the plan sustains the rate")
    sustainable_rate_rps: Optional[float] = Field(None, description="open loop: the highest rate the plan sustains")
    unmodelled: Optional[str] = Field(None, description="what the figures do not model, in words")
    traffic: Optional[TrafficPrediction] = None
    plan: Plan

    @classmethod
    def of(cls, plan: Plan) -> EstimateReport:
        p = plan.prediction
        t = p.traffic
        own = {"plan", "stable", "sustainable_rate_rps"}
        return cls(
            plan=plan,
            stable=t.stable if t else None,
            sustainable_rate_rps=t.sustainable_rate_rps if t else None,
            **{name: getattr(p, name) for name in cls.model_fields if name not in own},
        )


def build_plan(
    profile: ModelProfile,
    topo: Topology,
    partition: Partition,
    *,
    workload: Workload,
    prediction: Prediction,
    solver: SolverInfo,
    objective: str = "latency",
    tpot_slo_ms: float | None = None,
    ttft_slo_ms: float | None = None,
    alternatives: list[Alternative] | None = None,
) -> Plan:
    inputs = PlanInputs(
        model=profile.name,
        model_source=profile.source,
        config_hash=profile.config_hash,
        topology=topo.name,
        topology_source=topo.source,
        topology_hash=topo.hash,
        workload=workload,
        objective=objective,
        tpot_slo_ms=tpot_slo_ms,
        ttft_slo_ms=ttft_slo_ms,
    )
    return Plan(
        plan_version=PLAN_VERSION,
        inputs=inputs,
        stages=partition.stages,
        replicas=partition.replicas,
        replica_gpu_ids=partition.replica_gpu_ids,
        prediction=prediction,
        solver=solver,
        alternatives=alternatives or [],
    )


def make_partition(
    profile: ModelProfile,
    topo: Topology,
    *,
    tp: int,
    pp: int = 1,
    layers: list[int] | None = None,
    gpu_ids: list[int] | None = None,
    replicas: int = 1,
    dp: int = 1,
    ep: int = 1,
    offload_layers: list[int] | None = None,
) -> Partition:
    """The partition `estimate` is asked for: checked here, so the API rejects what the CLI rejects. Each of
    `offload_layers` (decoder layers) streams from host memory on the stage that runs it."""
    for name, value in (("--tp", tp), ("--pp", pp), ("--replicas", replicas), ("--dp", dp), ("--ep", ep)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 16:
            raise PartitionError(f"{name} must be a whole number of at least 1, got {value!r}")
    if layers is not None:
        if len(layers) != pp and pp != 1:
            raise PartitionError(f"--layers gives {len(layers)} stages but --pp is {pp}")
        if any(n < 1 for n in layers):
            raise PartitionError(f"--layers: every stage needs at least one layer, got {','.join(map(str, layers))}")
        if sum(layers) != profile.n_layers:
            raise PartitionError(f"--layers sums to {sum(layers)}, but {profile.name} has {profile.n_layers} layers")
    counts = layers or even_layers(profile.n_layers, pp)
    ids = list(range(topo.n_gpus)) if gpu_ids is None else list(gpu_ids)
    if len(set(ids)) != len(ids):
        raise PartitionError(f"--gpu-ids: GPU ids repeat in {ids}")
    for g in ids:
        topo.gpu(g)
    part = partition_from_counts(counts, ids, tp, replicas, dp=dp, ep=ep)
    if not offload_layers:
        return part
    bad = [i for i in offload_layers if not 0 <= i < profile.n_layers]
    if bad:
        raise PartitionError(
            f"--offload-layers: {profile.name} has decoder layers 0..{profile.n_layers - 1}, got {bad[0]}"
        )
    stages = [
        st.model_copy(
            update={"offload_layers": sorted({i for i in offload_layers if st.layer_start <= i < st.layer_end})}
        )
        for st in part.stages
    ]
    return part.model_copy(update={"stages": stages})
