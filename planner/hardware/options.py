"""What `planner topology collective` and `planner topology detect` ask, declared once: each field is an option of
its command (planner.cli.options derives them; the description is the help, a choice out of range is one line naming
the flag). The values are checked where they are read as well (planner.cost.collective_report, planner.hardware.detect),
for library callers."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

#: The collectives and timing contexts planner.cost.collectives prices (its OPS and CONTEXTS; a test keeps them equal).
CollectiveOp = Literal["all-reduce", "all-gather", "reduce-scatter", "all-to-all"]
TimingContext = Literal["nccl", "torch", "engine"]


class CollectiveOptions(BaseModel):
    """`planner topology collective`: which collective, over which GPUs, at which message sizes, timed how."""

    model_config = ConfigDict(extra="forbid")
    sizes: str = Field("16KB,1MB,64MB", description="message sizes, comma separated: 16KB,1MiB,64MB or bytes")
    op: CollectiveOp = Field("all-reduce", description="the collective")
    gpu_ids: Optional[str] = Field(None, description="the group, e.g. 0,1,2,3; default all GPUs")
    context: TimingContext = Field(
        "nccl",
        description="how it is timed: nccl (as nccl-tests times it), torch (one "
        "torch.distributed call) or engine (inside a CUDA graph)",
    )


class DetectOptions(BaseModel):
    """`planner topology detect`: where the `nvidia-smi` output comes from, what to assume, where the YAML goes."""

    model_config = ConfigDict(extra="forbid")
    from_file: Optional[str] = Field(
        None,
        json_schema_extra={"flag": "--from"},
        description="saved `nvidia-smi topo -m` output; default: run nvidia-smi",
    )
    gpus_csv: Optional[str] = Field(
        None, description="saved `nvidia-smi --query-gpu=index,name,memory.total,pci.bus_id --format=csv` output"
    )
    p2p: Optional[str] = Field(
        None, description="saved `nvidia-smi topo -p2p r` output: GPU pairs without peer-to-peer"
    )
    gpu_type: Optional[str] = Field(None, description="GPU type for every GPU (overrides --gpus-csv)")
    p2p_level: Optional[Literal["pix", "pxb", "phb", "sys"]] = Field(
        None,
        description="how far NCCL uses PCIe peer-to-peer; default: NCCL's rule for this host's CPU (pxb on "
        "Intel, sys on AMD), sys with --from",
    )
    name: str = Field("detected", description="topology name")
    output: Optional[str] = Field(
        None, json_schema_extra={"short": "-o"}, description="write the YAML here; default stdout"
    )
