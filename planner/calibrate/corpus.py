"""The calibration corpus: measured serving results from many publishers, and what each row asks the model.

`tests/data/corpus/<publisher>.yaml` holds one publisher's rows in the schema of
`tests/data/corpus/SCHEMA.md`: every number copied from a public source (its `source` field names the
repository at a commit, or the page and table) with the statistic it reports. `load_corpus` reads and
checks them; `resolve` turns one row into a `Case` — the catalog model, the shipped topology, the layout and
the workload the planner must price, and the measured figures to compare against — or a `Skip` that says
why the planner cannot price it yet (a model not in the catalog, a machine with no shipped topology, a
load the model does not price). Nothing here traces a model or runs the cost model: the fits
(benchmarks/fit_serving.py) do that, with leave-one-publisher-out cross-validation over `publisher`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.cost.engines.versions import unmodelled_kernels
from planner.errors import ConfigError, validation_messages
from planner.files import load_yaml
from planner.hardware import load_topology
from planner.hardware.topology import Topology
from planner.model.catalog import catalog, load_profile, native_weight_dtype
from planner.model.catalog import resolve as resolve_model
from planner.model.layergraph import ModelProfile
from planner.plan import Partition, make_partition

Engine = Literal["vllm", "sglang", "trtllm"]
Load = Literal["closed", "open", "offline"]
Statistic = Literal["mean", "median", "p50", "p90", "p95", "p99"]

#: The folder of the shipped corpus (a source checkout; the corpus is test data, not package data).
CORPUS_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "corpus"


#: Files of the corpus folder that hold collective timings (tests/data/collectives.yaml's format), not rows.
COLLECTIVE_TABLES = ("rccl-", "nccl-")


class Disagg(BaseModel):
    model_config = ConfigDict(extra="allow")
    prefill_instances: Optional[int] = None
    prefill_tp: Optional[int] = None
    prefill_gpus: Optional[int] = None
    decode_instances: Optional[int] = None
    decode_tp: Optional[int] = None
    decode_gpus: Optional[int] = None
    transfer: Optional[str] = None
    nodes: Optional[int] = None


class CorpusRow(BaseModel):
    """One measured result, as SCHEMA.md describes it. Unknown fields are kept (`model_extra`)."""

    model_config = ConfigDict(extra="allow")
    source: str = Field(min_length=8)
    statistic: Optional[str] = None
    engine: str
    engine_version: Optional[str] = None
    model: str
    weight_dtype: Optional[str] = None
    kv_dtype: Optional[str] = None
    gpu: str
    gpus: Optional[int] = Field(None, ge=1, le=100_000)
    tp: Optional[int] = Field(None, ge=1, le=1024)
    pp: Optional[int] = Field(None, ge=1, le=1024)
    dp: Optional[int] = Field(None, ge=1, le=1024)
    ep: Optional[int] = Field(None, ge=1, le=1024)
    load: Optional[str] = None
    concurrency: Optional[float] = Field(None, gt=0)
    request_rate: Optional[float] = None
    num_prompts: Optional[int] = None
    isl: Optional[float] = Field(None, gt=0)
    osl: Optional[float] = Field(None, gt=0)
    length_dist: Optional[str] = None
    tpot_ms: Optional[float] = Field(None, gt=0)
    itl_ms: Optional[float] = Field(None, gt=0)
    ttft_ms: Optional[float] = Field(None, gt=0)
    e2e_ms: Optional[float] = Field(None, gt=0)
    output_tokens_per_s: Optional[float] = Field(None, gt=0)
    total_tokens_per_s: Optional[float] = Field(None, gt=0)
    requests_per_s: Optional[float] = Field(None, ge=0)
    kv_cache_tokens: Optional[float] = Field(None, gt=0)
    gpu_memory_utilization: Optional[float] = None
    max_model_len: Optional[int] = None
    disagg: Optional[Disagg] = None
    prefix: Optional[dict] = None
    speculative: Optional[str] = None
    notes: Optional[str] = None
    # the engine's scheduler as the source states it (null: the notes' flags, else the engine's default)
    chunked_prefill: Optional[bool] = None
    scheduler_steps: Optional[int] = Field(None, ge=1, le=64)
    max_num_seqs: Optional[int] = Field(None, ge=1, le=1_000_000)
    max_num_batched_tokens: Optional[int] = Field(None, ge=64, le=2**20)


class CorpusFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    publisher: str = Field(min_length=2)
    publisher_kind: Optional[str] = None
    rows: list[CorpusRow]


@dataclass(frozen=True)
class Entry:
    """A row with where it came from."""

    publisher: str
    file: str
    index: int
    row: CorpusRow

    @property
    def organisation(self) -> str:
        """The organisation behind the publisher: 'NVIDIA (NIM)' and 'NVIDIA (TensorRT-LLM)' are both NVIDIA. Leave-one-
        publisher-out holds out an organisation's rows together."""
        return self.publisher.split(" (")[0].strip()


@dataclass(frozen=True)
class Measured:
    """The measured figures of a row, in the planner's names, and the statistic of the latencies."""

    tpot_ms: Optional[float]
    ttft_ms: Optional[float]
    tokens_per_s: Optional[float]
    kv_cache_tokens: Optional[float]
    statistic: str

    @property
    def latency_statistic(self) -> Literal["mean", "median"]:
        """The statistic a Workload prices the latencies in: the row's median (or p50), else its mean."""
        return "median" if self.statistic in ("median", "p50") else "mean"


@dataclass(frozen=True)
class Case:
    """What one row asks the planner: price `model` on `topology`'s first GPUs with this layout and load."""

    entry: Entry
    model: str
    topology: str
    engine: Engine
    load: Load
    tp: int
    dp: int
    ep: int
    pp: int
    replicas: int
    isl: int
    osl: int
    concurrency: Optional[int]
    request_rate: Optional[float]
    weight_dtype: str
    kv_dtype: str
    moe: bool
    measured: Measured
    disaggregated: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    scheduler_steps: int = 1  # vLLM V0's --num-scheduler-steps or SGLang's --scheduler-recv-interval (newcomers' TTFT)
    max_num_seqs: Optional[int] = None  # the engine's batch limit where the notes or the engine version set it
    chunked_prefill: bool = True  # False: vLLM V0's default scheduler, prefill-only steps before decode (open loop)
    max_num_batched_tokens: Optional[int] = None  # the step's token budget where the row states it

    @property
    def publisher(self) -> str:
        return self.entry.organisation

    @property
    def gpus(self) -> int:
        return self.tp * self.dp * self.pp * self.replicas


@dataclass(frozen=True)
class Skip:
    entry: Entry
    reason: str


def load_corpus(folder: str | Path | None = None) -> list[Entry]:
    """Every row of every `*.yaml` in the folder (the shipped corpus by default), in file order."""
    root = Path(folder) if folder else CORPUS_DIR
    out: list[Entry] = []
    for path in sorted(root.glob("*.yaml")):
        if not path.name.startswith(COLLECTIVE_TABLES):
            out += load_file(path)
    return out


def load_file(path: Path) -> list[Entry]:
    raw = load_yaml(path, "a corpus file")
    try:
        parsed = CorpusFile.model_validate(raw)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        raise ConfigError(f"{path}: {msgs[0]}", details=msgs[1:]) from None
    return [Entry(parsed.publisher, path.name, i, row) for i, row in enumerate(parsed.rows)]


# --- models ---------------------------------------------------------------------------------------

_SUFFIX_WORDS = (
    r"instruct|chat|it|hf|bf16|fp8|fp4|nvfp4|mxfp4|fp8-dynamic|fp8-kv|kv|w8a8|w4a16|awq|gptq|int4|int8|"
    r"dynamic|block|preview|\d{4}|original|base"
)
_SUFFIXES = re.compile(rf"(-({_SUFFIX_WORDS}|v\d+(\.\d+)?))+$")
#: The same without versions: where dropping them leaves a bare family name, the version names the architecture
#: (DeepSeek-V2, -V3 and -V3.2, whose sparse attention adds an indexer, all reduce to 'deepseek' otherwise).
_SUFFIXES_KEEP_VERSION = re.compile(rf"(-({_SUFFIX_WORDS}))+$")


def model_key(name: str) -> str:
    """A hub id reduced to its architecture's name: owner, 'meta-' and serving suffixes dropped.
    `RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8` -> `llama-3.1-70b`; `deepseek-ai/DeepSeek-R1-0528` -> `deepseek-r1`."""
    key = name.strip().split("/")[-1].lower().replace("_", "-")
    key = key.removeprefix("meta-")
    stripped = _SUFFIXES.sub("", key)
    return stripped if re.search(r"\d", stripped) else _SUFFIXES_KEEP_VERSION.sub("", key)


def catalog_model(hub_id: str) -> Optional[str]:
    """The catalog name whose name, hub id or alias reduces to the same key as `hub_id`, or None."""
    key = model_key(hub_id)
    for entry in catalog().values():
        if key in {model_key(n) for n in (entry.name, entry.hub_id, *entry.aliases)}:
            return entry.name
    return None


# --- machines -------------------------------------------------------------------------------------

#: GPU names of the corpus -> the shipped 8-GPU topology of that GPU.
NODE_TOPOLOGY = {
    "h100-sxm": "8xh100",
    "h100": "8xh100",
    "h100-pcie": "8xh100-pcie",
    "h200": "8xh200",
    "h20": "8xh20",
    "h800": "8xh800",
    "b200": "8xb200",
    "a100-80g": "8xa100",
    "a100": "8xa100",
    "l40s": "8xl40s",
    "mi300x": "8xmi300x",
    "mi325x": "8xmi325x",
    "mi355x": "8xmi355x",
    "rtx4090": "8xrtx4090",
}
#: One-GPU machines, for GPUs whose servers' internal layout no source gives (Mooncake's A10 rows).
SINGLE_GPU_TOPOLOGY = {"a10": "1xa10"}
#: Multi-node topologies by (GPU, nodes).
CLUSTER_TOPOLOGY = {
    ("h100-sxm", 2): "2x8xh100-ib",
    ("h100", 2): "2x8xh100-ib",
    ("h100-sxm", 4): "4x8xh100-ib",
    ("h100", 4): "4x8xh100-ib",
}

_DTYPES = {
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8": "fp8",
    "int4": "int4",
    "mxfp4": "mxfp4",
    "nvfp4": "nvfp4",
    "fp4": "nvfp4",
    "w4a16": "int4",
    "awq": "int4",
}


def _topology(gpu: str, gpus: int) -> Optional[str]:
    if gpus == 1 and gpu in SINGLE_GPU_TOPOLOGY:
        return SINGLE_GPU_TOPOLOGY[gpu]
    if gpus <= 8:
        return NODE_TOPOLOGY.get(gpu)
    return CLUSTER_TOPOLOGY.get((gpu, -(-gpus // 8)))


def _layout(row: CorpusRow) -> tuple[int, int, int, int, int] | str:
    """(attention TP, DP, EP, PP, replicas). SGLang's `--tp 8 --dp 8 --enable-dp-attention` runs on 8 GPUs with
    attention TP 8 / 8 = 1 per DP rank: the planner's stage has tp 1, dp 8 (len(gpu_ids) = tp x dp)."""
    tp, dp, ep, pp = row.tp or 1, row.dp or 1, row.ep or 1, row.pp or 1
    gpus = row.gpus or tp * dp * pp
    if dp > 1 and tp * dp * pp > gpus and tp * pp == gpus and tp % dp == 0:
        tp //= dp
    per_replica = tp * dp * pp
    if gpus % per_replica:
        return f"{gpus} GPUs are not a whole number of TP{tp} x DP{dp} x PP{pp} replicas"
    return tp, dp, ep, pp, gpus // per_replica


def _measured(row: CorpusRow) -> Measured:
    tpot = row.tpot_ms if row.tpot_ms is not None else row.itl_ms
    return Measured(
        tpot_ms=tpot,
        ttft_ms=row.ttft_ms,
        tokens_per_s=row.output_tokens_per_s,
        kv_cache_tokens=row.kv_cache_tokens,
        statistic=(row.statistic or "mean").lower(),
    )


_TOTALS = re.compile(r"total input tokens ([\d,]+), generated ([\d,]+), successful ([\d,]+)")
#: vLLM benchmark_serving's JSON keys, as dstack's notes copy them (the request count is the row's num_prompts).
_TOTALS_KEYS = re.compile(r"total_input_tokens=(\d+), total_output_tokens=(\d+)")
#: Mean lengths of a dataset that open-loop rows name without stating them (`length_dist`). ShareGPT
#: (ShareGPT_V3_unfiltered_cleaned_split sampled by vLLM's benchmark_serving, Llama-3.1 tokenizer): dstack's H100 runs
#: printed total_input_tokens=215196 for 1,000 prompts and 120,689 / 122,819 / 122,195 generated tokens
#: (tests/data/corpus/dstack.yaml, the open-loop rows of Llama-3.1-405B on 8 x H100): 215.2 in, 121.9 out.
DATASET_MEANS = {"sharegpt": (215.2, 121.9)}


def _lengths(row: CorpusRow) -> tuple[Optional[float], Optional[float], str]:
    """The row's mean prompt and output lengths: from the totals a benchmark printed where `notes` copy them (vLLM's
    `Total input tokens`, `Total generated tokens`, `Successful requests`), else as given. The totals win over the
    row's lengths, which are often the requested ones: without `--ignore-eos` outputs end early (GPUStack's 4,000 /
    200 runs of gpt-oss-20b generated 105 tokens a request), so the requested length overstates the work."""
    totals = "mean lengths from the benchmark's token totals"
    if found := _TOTALS.search(row.notes or ""):
        total_in, total_out, done = (float(g.replace(",", "")) for g in found.groups())
        return total_in / done, total_out / done, totals
    if (keys := _TOTALS_KEYS.search(row.notes or "")) and row.num_prompts:
        total_in, total_out = (float(g) for g in keys.groups())
        return total_in / row.num_prompts, total_out / row.num_prompts, totals
    given = row.isl is not None and row.osl is not None
    if not given and row.load == "open" and (row.length_dist or "") in DATASET_MEANS:
        isl, osl = DATASET_MEANS[row.length_dist or ""]
        return isl, osl, f"mean lengths of {row.length_dist} from another publisher's run (corpus.DATASET_MEANS)"
    return row.isl, row.osl, ""


def _why_not(row: CorpusRow) -> Optional[str]:
    """A reason the row cannot be priced at all, or None."""
    if row.engine not in ("vllm", "sglang", "trtllm"):
        return f"engine '{row.engine}' has no profile"
    if row.load not in ("closed", "open", "offline"):
        return f"load '{row.load}' is not closed, open or offline"
    isl, osl, _ = _lengths(row)
    if isl is None or osl is None:
        return "no prompt or output length"
    if row.load == "closed" and row.concurrency is None:
        return "a closed loop without its concurrency"
    if row.speculative:
        return f"speculative decoding ({row.speculative}) is not priced from corpus rows"
    pods = _PODS.search(row.notes or "")
    if pods and int(pods.group(1)) > 1:
        return (
            f"a tensor-parallel group over {pods.group(1)} Kubernetes pods: its collectives cross the pods' "
            "network, not the node's NVLink, and no shipped topology describes that network"
        )
    return None


#: Dennis Lee's rows ran one GPU per Ray pod ("2 GPU pods on the same node (Ray)"). Their TP2 decode is no faster
#: than one GPU's (10 prompts of 1,024 + 1,024: TPOT 12.99 ms on 2 pods, 13.46 ms on 1, tests/data/corpus/
#: dennislee22.yaml), where NVLink TP2 halves the weight reads that dominate it: the pods' GPUs do not share NVLink.
_PODS = re.compile(r"(\d+) GPU pods\b")


_SCHEDULER_STEPS = re.compile(r"--num-scheduler-steps?[ =](\d+)")
_MAX_NUM_SEQS = re.compile(r"--max-num-seqs[ =](\d+)")


def _engine_flags(row: CorpusRow) -> tuple[int, Optional[int]]:
    """(scheduler steps, batch limit): the row's fields, else what its notes state; vLLM before 0.8 (V0) defaulted
    max_num_seqs to 256 (vllm/engine/arg_utils.py EngineArgs.max_num_seqs = 256 at v0.6.0), a 'nightly' of 2024
    likewise."""
    notes = row.notes or ""
    steps = _SCHEDULER_STEPS.search(notes)
    seqs = _MAX_NUM_SEQS.search(notes)
    limit = int(seqs.group(1)) if seqs else None
    version = (row.engine_version or "").lower()
    old_vllm = re.match(r"0\.[0-7]\.", version) or (version == "" and "nightly wheel" in notes)
    if limit is None and row.engine == "vllm" and old_vllm:
        limit = 256
    limit = row.max_num_seqs if row.max_num_seqs is not None else limit
    return row.scheduler_steps or (int(steps.group(1)) if steps else 1), limit


def resolve(entry: Entry, *, older_kernels: bool = False) -> Case | Skip:
    """The Case a row asks for, or why it is skipped. A row run on an engine release older than the kernels its
    profile prices (planner.cost.engines.versions) is skipped unless `older_kernels` (benchmarks/version_rows.py
    prices those rows on their own)."""
    row = entry.row
    if reason := _why_not(row):
        return Skip(entry, reason)
    model = catalog_model(row.model)
    if model is None:
        return Skip(entry, f"model '{row.model}' is not in the catalog")
    older = _older_release_reason(row, model)
    if older and not older_kernels:
        return Skip(entry, older)
    layout = _layout(row)
    if isinstance(layout, str):
        return Skip(entry, layout)
    tp, dp, ep, pp, replicas = layout
    topology = _topology(row.gpu.lower(), tp * dp * pp * replicas)
    if topology is None:
        return Skip(entry, f"no shipped topology for {row.gpus or tp * dp * pp} x {row.gpu}")
    isl, osl, how = _lengths(row)
    weight = _DTYPES.get((row.weight_dtype or native_weight_dtype(model)).lower())
    kv = _DTYPES.get((row.kv_dtype or default_kv_dtype(row)).lower())
    if weight is None or kv not in ("bf16", "fp16", "fp8"):
        return Skip(entry, f"dtype weight={row.weight_dtype} kv={row.kv_dtype} is not priced")
    steps, batch_limit = _engine_flags(row)
    return Case(
        entry=entry,
        model=model,
        topology=topology,
        engine=row.engine,  # type: ignore[arg-type]
        load=row.load,  # type: ignore[arg-type]
        tp=tp,
        dp=dp,
        ep=ep,
        pp=pp,
        replicas=replicas,
        isl=max(1, round(isl or 1)),
        osl=max(1, round(osl or 1)),
        concurrency=None if row.concurrency is None else round(row.concurrency),
        request_rate=row.request_rate,
        weight_dtype=weight,
        kv_dtype=kv,
        moe=is_moe(model),
        measured=_measured(row),
        disaggregated=row.disagg is not None,
        notes=(how,) if how else (),
        scheduler_steps=steps,
        max_num_seqs=batch_limit,
        chunked_prefill=row.chunked_prefill is not False,
        max_num_batched_tokens=row.max_num_batched_tokens,
    )


#: Weight dtypes NVIDIA's ModelOpt checkpoints (hub ids nvidia/...-FP8, -FP4, -NVFP4) are published in
MODELOPT_WEIGHTS = ("fp8", "nvfp4", "fp4")


def default_kv_dtype(row: CorpusRow) -> str:
    """The KV cache dtype a row ran with where it does not say: bf16, except TensorRT-LLM serving one of NVIDIA's
    ModelOpt checkpoints, whose hf_quant_config.json declares kv_cache_quant_algo FP8 (nvidia/Llama-3.3-70B-Instruct-
    NVFP4@ec8feebb: quant_algo NVFP4, kv_cache_quant_algo FP8; vllm-project/vllm PR #29980: ModelOpt's
    hf_quant_config specifies FP8 KV) and whose loader takes that dtype when kv_cache_config.dtype is 'auto', the
    default (tensorrt_llm.llmapi.llm_utils.ModelLoader._update_from_hf_quant_config). NVIDIA's perf-overview tables
    run those checkpoints with the default KV settings (docs/source/performance/perf-overview.md: only GPT-OSS and
    DeepSeek-R1 set kv_cache_config.dtype)."""
    weight = (row.weight_dtype or "").lower()
    if row.engine == "trtllm" and str(row.model).startswith("nvidia/") and weight in MODELOPT_WEIGHTS:
        return "fp8"
    return "bf16"


@lru_cache(maxsize=None)
def is_moe(model: str) -> bool:
    """Whether a catalog model has routed experts (read from its shipped config, nothing traced)."""
    config = resolve_model(model).config
    text = config.get("text_config", config)
    keys = ("num_local_experts", "n_routed_experts", "num_experts")
    return any(int(text.get(k) or 0) > 1 for k in keys)


@lru_cache(maxsize=None)
def attention_of(model: str) -> str:
    """'mla' for a catalog model with latent attention (its config's kv_lora_rank), else 'gqa'; nothing traced."""
    config = resolve_model(model).config
    return "mla" if config.get("text_config", config).get("kv_lora_rank") else "gqa"


def _older_release_reason(row: CorpusRow, model: str) -> Optional[str]:
    """Why the row's engine release is older than the kernels its profile prices for `model`, or None."""
    return unmodelled_kernels(row.engine, row.engine_version, attention=attention_of(model))


def older_release(case: Case) -> bool:
    """Whether the row ran on an engine release older than the kernels its profile prices."""
    return _older_release_reason(case.entry.row, case.model) is not None


def cases(folder: str | Path | None = None, *, older_kernels: bool = False) -> tuple[list[Case], list[Skip]]:
    """Every row of the corpus resolved: the cases to price and the rows skipped, each with its reason (rows of
    engine releases older than their profile's kernels priced too with `older_kernels`)."""
    priced: list[Case] = []
    skipped: list[Skip] = []
    for entry in load_corpus(folder):
        out = resolve(entry, older_kernels=older_kernels)
        (priced if isinstance(out, Case) else skipped).append(out)  # type: ignore[arg-type]
    return priced, skipped


@lru_cache(maxsize=None)
def _machine(model: str, topology: str) -> tuple[ModelProfile, Topology]:
    return load_profile(model), load_topology(topology)


def case_machine(case: Case) -> tuple[ModelProfile, Topology, Partition]:
    """The row's model, machine and layout as the planner prices them (profiles and topologies loaded once). With DP
    attention and no EP given, the MoE layers still span every attention rank (memory as EP = tp x dp)."""
    profile, topo = _machine(case.model, case.topology)
    ep = case.ep
    if case.dp > 1 and ep == 1 and profile.moe is not None:
        ep = case.tp * case.dp
    part = make_partition(
        profile,
        topo,
        tp=case.tp,
        dp=case.dp,
        ep=ep,
        pp=case.pp,
        replicas=case.replicas,
        gpu_ids=list(range(case.gpus)),
    )
    return profile, topo, part
