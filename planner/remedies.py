"""`planner remedies`: what each way past the memory wall buys on one machine, re-solved, side by side.

Each remedy is a modelled change (docs/remedies.md): fewer bytes per token (quantised weights or KV,
sparsity), bytes read for more tokens (speculative decoding, multi-token prediction), a larger place
to keep them (a host-memory tier the solver streams layers from), or faster hardware (a what-if).
For every remedy and load the partition is solved again (the best split changes when bytes change)
and compared with the baseline's at the same load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from pydantic import BaseModel, Field

from planner.cost.advice import suggestions
from planner.cost.constants import DEFAULT, Constants
from planner.errors import InfeasibleError
from planner.hardware.topology import Topology
from planner.hardware.whatif import apply_what_if
from planner.model.checks import mtp_layers
from planner.model.layergraph import ModelProfile
from planner.plan import Plan, Workload
from planner.solve import solve
from planner.solve.options import Objective, SolveOptions


@dataclass(frozen=True)
class Remedy:
    """One modelled change: Workload fields, hardware factors, or streaming from host memory."""

    name: str
    params: str
    assumption: str
    workload: dict = field(default_factory=dict)
    what_if: dict = field(default_factory=dict)
    offload: bool = False
    caveat: str = ""


class RemedyRow(BaseModel):
    remedy: str
    params: str
    concurrency: int
    fits: bool
    shape: Optional[str] = None
    tpot_ms: Optional[float] = None
    ttft_ms: Optional[float] = None
    tokens_per_s: Optional[float] = None
    max_concurrency: Optional[int] = None
    tpot_change: Optional[float] = Field(None, description="TPOT / baseline TPOT - 1 at the same load")
    tokens_per_s_change: Optional[float] = Field(None, description="tokens/s / baseline tokens/s - 1")
    streamed_layers: list[int] = Field(default_factory=list, description="decoder layers streamed from host memory")
    breakdown_ms: dict[str, float] = Field(default_factory=dict)
    assumption: str
    caveat: str = ""
    error: Optional[str] = None


class RemediesResult(BaseModel):
    model: str
    topology: str
    gpus: int
    workload: Workload
    concurrencies: list[int]
    rows: list[RemedyRow]


SPEC_MTP = Remedy(
    "MTP k=1 a=0.85",
    "spec_tokens=1, spec_acceptance=0.85",
    "85% of draft tokens accepted: DeepSeek-V3's MTP accepts 85-90% (V3 technical report, 5.4.3)",
    {"spec_tokens": 1, "spec_acceptance": 0.85, "spec_draft": "mtp"},
)
SPEC_EAGLE = Remedy(
    "draft k=3 a=0.7",
    "spec_tokens=3, spec_acceptance=0.7",
    "each of 3 drafts accepted with probability 0.7 (2.5 tokens a pass, EAGLE's typical range)",
    {"spec_tokens": 3, "spec_acceptance": 0.7, "spec_draft": "mtp"},
    caveat="needs a trained draft head (EAGLE) for this model; acceptance is measured, not modelled",
)


def _dtype_remedies(profile: ModelProfile, w: Workload) -> list[Remedy]:
    quality = "quality: check the quantised checkpoint's accuracy; not modelled"
    out = []
    if w.weight_dtype in ("bf16", "fp16"):
        out.append(
            Remedy(
                "fp8 weights",
                "weight_dtype=fp8",
                "fp8 GEMMs read 1 byte a weight",
                {"weight_dtype": "fp8"},
                caveat=quality,
            )
        )
    if w.weight_dtype in ("bf16", "fp16", "fp8"):
        out.append(
            Remedy(
                "int4 weights",
                "weight_dtype=int4",
                "AWQ/GPTQ int4: 0.5 byte a weight + a 16-bit scale per 128",
                {"weight_dtype": "int4"},
                caveat=quality,
            )
        )
    if profile.moe is not None and w.weight_dtype != "mxfp4":
        out.append(
            Remedy(
                "mxfp4 experts",
                "weight_dtype=mxfp4",
                "routed experts in MXFP4 (4.25 bits a weight), the rest 16-bit",
                {"weight_dtype": "mxfp4"},
                caveat=quality,
            )
        )
    if w.kv_dtype in ("bf16", "fp16"):
        out.append(
            Remedy(
                "fp8 KV",
                "kv_dtype=fp8",
                "the KV cache in fp8: half the bytes per token",
                {"kv_dtype": "fp8"},
                caveat=quality,
            )
        )
    return out


def _sparsity_remedies(profile: ModelProfile) -> list[Remedy]:
    quality = "quality: the sparsity a model tolerates is measured per model; not modelled"
    out = []
    if profile.moe is None:
        out.append(
            Remedy(
                "MLP sparse 50%",
                "mlp_sparsity=0.5",
                "a token needs half of each MLP's rows (Deja Vu, CATS report "
                "~50% at small quality loss); a batch of n reads 1 - 0.5^n",
                {"mlp_sparsity": 0.5},
                caveat=quality,
            )
        )
    out.append(
        Remedy(
            "act. sparse 40%",
            "activation_sparsity=0.4",
            "40% of every matrix's input channels skipped (TEAL, model-wide, near-lossless at 40%)",
            {"activation_sparsity": 0.4},
            caveat=quality,
        )
    )
    out.append(
        Remedy(
            "attn. sparse 75%",
            "attention_sparsity=0.75",
            "a decode token reads a quarter of its KV cache (top-k / block-sparse attention)",
            {"attention_sparsity": 0.75},
            caveat=quality,
        )
    )
    return out


def _hardware_remedies(topo: Topology) -> list[Remedy]:
    kinds = {d.get("kind") for _, _, d in topo.graph.edges(data=True)}
    out = [
        Remedy(
            "HBM 2x",
            "what-if hbm=2x",
            "twice the memory bandwidth (stacked DRAM, HBM4), same capacity",
            what_if={"hbm": 2.0},
        )
    ]
    if kinds & {"nvlink", "nvswitch"}:
        out.append(Remedy("NVLink 2x", "what-if nvlink=2x", "twice the NVLink bandwidth", what_if={"nvlink": 2.0}))
    if "pcie" in kinds:
        out.append(
            Remedy(
                "PCIe 2x", "what-if pcie=2x", "twice every PCIe link (the next PCIe generation)", what_if={"pcie": 2.0}
            )
        )
    return out


def remedy_list(profile: ModelProfile, topo: Topology, workload: Workload) -> list[Remedy]:
    """The baseline and every remedy that applies to this model, workload and machine."""
    out = [Remedy("baseline", "", "the workload as given")]
    out += _dtype_remedies(profile, workload)
    if workload.spec_tokens == 0:  # MTP only where the checkpoint ships MTP layers; a draft head works on any model
        out += ([SPEC_MTP] if mtp_layers(profile) else []) + [SPEC_EAGLE]
    out += _sparsity_remedies(profile)
    if topo.has_host_memory():
        tier = "layers streamed from host memory over PCIe each step, prefetched one layer ahead"
        out.append(Remedy("host tier", "offload", tier, offload=True))
        if workload.weight_dtype in ("bf16", "fp16", "fp8"):
            out.append(
                Remedy(
                    "int4 + host tier",
                    "weight_dtype=int4, offload",
                    "int4 weights, the rest of them streamed from host memory",
                    {"weight_dtype": "int4"},
                    offload=True,
                    caveat="quality: check the quantised checkpoint's accuracy; not modelled",
                )
            )
    out += _hardware_remedies(topo)
    return out


#: remedies' own default: a solver time limit per remedy and load, and no runners-up.
REMEDIES_OPTIONS = SolveOptions(time_limit_s=5.0, top=0)


@dataclass(frozen=True, kw_only=True)
class RemedyRequest:
    """What `remedies` is asked: the baseline (model, machine, workload), the loads and the search options."""

    profile: ModelProfile
    topo: Topology
    workload: Workload
    concurrencies: list[int]
    options: SolveOptions = REMEDIES_OPTIONS
    constants: Constants = DEFAULT


def _solve(req: RemedyRequest, remedy: Remedy, concurrency: int) -> Plan:
    topo = apply_what_if(req.topo, remedy.what_if) if remedy.what_if else req.topo
    w = req.workload.model_copy(update={**remedy.workload, "concurrency": concurrency})
    w = Workload.model_validate(w.model_dump())
    options = req.options.model_copy(update={"top": 0, "offload": remedy.offload})
    return solve(req.profile, topo, w, options=options, constants=req.constants)


def _row(remedy: Remedy, concurrency: int, plan: Plan | None, error: str | None) -> RemedyRow:
    base = dict(
        remedy=remedy.name,
        params=remedy.params,
        concurrency=concurrency,
        assumption=remedy.assumption,
        caveat=remedy.caveat,
    )
    if plan is None:
        return RemedyRow(**base, fits=False, error=error)
    p = plan.prediction
    return RemedyRow(
        **base,
        fits=True,
        shape=plan.partition.shape,
        tpot_ms=p.tpot_ms,
        ttft_ms=p.ttft_ms,
        tokens_per_s=p.tokens_per_s,
        max_concurrency=p.max_concurrency,
        streamed_layers=[i for st in plan.partition.stages for i in st.offload_layers],
        breakdown_ms=dict(p.time_breakdown_ms),
    )


def _against(rows: list[RemedyRow]) -> None:
    """Fill in each row's change against the baseline at its load."""
    base = {r.concurrency: r for r in rows if r.remedy == "baseline" and r.fits}
    for r in rows:
        b = base.get(r.concurrency)
        if r.fits and b is not None:
            r.tpot_change = r.tpot_ms / b.tpot_ms - 1
            r.tokens_per_s_change = r.tokens_per_s / b.tokens_per_s - 1


def remedies(req: RemedyRequest, *, progress: Callable[[int, int], None] | None = None) -> RemediesResult:
    """Solve the baseline and every remedy at every load; rows ranked by TPOT within each load."""
    todo = [(r, c) for c in req.concurrencies for r in remedy_list(req.profile, req.topo, req.workload)]
    rows = []
    for k, (remedy, c) in enumerate(todo):
        try:
            rows.append(_row(remedy, c, _solve(req, remedy, c), None))
        except InfeasibleError as exc:
            rows.append(_row(remedy, c, None, exc.message))
        if progress is not None:
            progress(k + 1, len(todo))
    if not any(r.fits for r in rows):
        ids = [g.id for g in req.topo.gpus][: req.options.gpus or None]
        raise InfeasibleError(
            f"{req.profile.name} fits on {req.topo.name} neither as it is nor with any remedy",
            details=([rows[0].error or ""] if rows else [])
            + suggestions(req.profile, req.topo, ids, req.workload, req.constants),
        )
    _against(rows)
    rows.sort(
        key=lambda r: (req.concurrencies.index(r.concurrency), r.remedy != "baseline", not r.fits, r.tpot_ms or 0.0)
    )
    return RemediesResult(
        model=req.profile.name,
        topology=req.topo.name,
        gpus=req.options.gpus or req.topo.n_gpus,
        workload=req.workload,
        concurrencies=req.concurrencies,
        rows=rows,
    )


__all__ = ["Remedy", "RemedyRow", "RemediesResult", "RemedyRequest", "remedies", "remedy_list"]


def within_reach(req: RemedyRequest) -> list[str]:
    """For SLOs (req.options) no plan meets: the best figures the machine reaches at the load (the least-TPOT plan, SLOs
    dropped) and the first remedy whose re-solve meets them, as lines for the error's details."""
    load = req.workload.concurrency
    free = RemedyRequest(
        profile=req.profile,
        topo=req.topo,
        workload=req.workload,
        concurrencies=[load],
        options=req.options.model_copy(
            update={"objective": Objective.LATENCY, "tpot_slo_ms": None, "ttft_slo_ms": None}
        ),
        constants=req.constants,
    )
    try:
        best = _solve(free, remedy_list(req.profile, req.topo, req.workload)[0], load).prediction
    except InfeasibleError:
        return []
    out = [
        f"best achievable at {load:,} sequence{'s' if load != 1 else ''}: TPOT {best.tpot_ms:,.2f} ms, "
        f"TTFT {best.ttft_ms:,.1f} ms (least-TPOT plan)"
    ]
    for remedy in remedy_list(req.profile, req.topo, req.workload)[1:]:
        try:
            pred = _solve(req, remedy, load).prediction
        except InfeasibleError:
            continue
        out.append(
            f"meets them with {remedy.name} ({remedy.params}): TPOT {pred.tpot_ms:,.2f} ms, TTFT "
            f"{pred.ttft_ms:,.1f} ms; {remedy.assumption}"
        )
        return out
    return out + ["no single remedy meets them: raise the SLOs, lower --concurrency, or add GPUs"]
