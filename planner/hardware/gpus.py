"""GPU types: memory, HBM bandwidth and dense FLOP/s, from vendor datasheets.

Source: docs/reference/hardware.csv (NVIDIA H100/H200/A100/A10/L40S/RTX 4090 and AMD MI300X
datasheets). Memory is what the driver reports as total (`nvidia-smi --query-gpu=memory.total`,
`rocm-smi`), since that is what an engine can allocate from, not the marketing figure.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MiB = 2**20


class GpuSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    memory_bytes: int = Field(gt=0)
    hbm_bytes_per_s: float = Field(gt=0)
    flops_per_s: dict[str, float] = Field(description="dense FLOP/s by dtype (bf16, fp16, fp8, int4)")
    link: str = Field(
        "pcie5", description="the GPU-to-GPU fabric generation: nvlink3, nvlink4, nvlink5, pcie4, pcie5, xgmi"
    )
    pcie_bytes_per_s: float = Field(63e9, description="the GPU's PCIe x16 link per direction (Gen5 63e9, Gen4 31.5e9)")
    nvlink_bytes_per_s_per_link: float = Field(25e9, description="one NVLink, per direction (NVLink3 and 4: 25 GB/s)")
    vendor: str = "nvidia"
    aliases: list[str] = []
    kernel_peak_share: float = Field(
        1.0,
        gt=0,
        le=1.6,
        description="how much larger a share of its datasheet peak compute-bound kernels reach on this GPU than on "
        "the H100/H800 the engines' efficiencies are measured on (1: the same share). A compute-capped part runs its "
        "tensor cores at full clock on an HBM and power budget sized for more.",
    )

    @property
    def has_fp8(self) -> bool:
        """Whether the GPU has fp8 tensor cores (Hopper, Ada, Blackwell, CDNA3): without them an fp8 checkpoint runs
        as weight-only quantisation (fp8 weights dequantised to bf16 for the matmul)."""
        return "fp8" in self.flops_per_s

    def peak_flops(self, dtype: str) -> float:
        """Dense FLOP/s for a matmul dtype; int4 weights compute in the activation dtype (bf16)."""
        if dtype in self.flops_per_s:
            return self.flops_per_s[dtype]
        return self.flops_per_s["bf16"]


def _spec(
    name, memory_mib, hbm, bf16, fp8=None, *, link="pcie5", vendor="nvidia", aliases=(), pcie=63e9, fp4=None, share=1.0
):
    flops = {"bf16": bf16, "fp16": bf16}
    if fp8:
        flops["fp8"] = fp8
    if fp4:
        flops["nvfp4"] = flops["mxfp4"] = fp4
    return GpuSpec(
        name=name,
        memory_bytes=memory_mib * MiB,
        hbm_bytes_per_s=hbm,
        flops_per_s=flops,
        link=link,
        vendor=vendor,
        aliases=list(aliases),
        pcie_bytes_per_s=pcie,
        kernel_peak_share=share,
    )


GPU_SPECS: dict[str, GpuSpec] = {
    s.name: s
    for s in [
        # memory.total: 81559 MiB (nvidia-smi on H100 80GB HBM3)
        _spec(
            "H100-SXM5-80GB",
            81559,
            3.35e12,
            989e12,
            1979e12,
            link="nvlink4",
            aliases=["h100", "h100-sxm", "NVIDIA H100 80GB HBM3"],
        ),
        _spec(
            "H100-PCIe-80GB", 81559, 2.0e12, 756e12, 1513e12, link="pcie5", aliases=["h100-pcie", "NVIDIA H100 PCIe"]
        ),
        # H800 SXM5 80GB (the H100's export variant): the H100 SXM's compute, memory and bandwidth, NVLink cut to
        # 400 GB/s bidirectional, 200 GB/s per direction (NVIDIA H800 product brief); Mooncake's vLLM PD benchmark
        # reports it as "H800 (81GB)", the H100's memory.total
        _spec("H800-SXM5-80GB", 81559, 3.35e12, 989e12, 1979e12, link="nvlink4", aliases=["h800", "NVIDIA H800"]),
        # memory.total: 143771 MiB (nvidia-smi on H200)
        _spec("H200-SXM-141GB", 143771, 4.8e12, 989e12, 1979e12, link="nvlink4", aliases=["h200", "NVIDIA H200"]),
        # memory.total: 81920 MiB (nvidia-smi on A100 80GB). No fp8 figure: the A100 datasheet's Tensor Core rows are
        # TF32, BF16/FP16, INT8 and INT4 (fp8 tensor cores came with Hopper and Ada), so has_fp8 is False and fp8
        # weights run weight-only (planner.model.checks.fp8_warning)
        _spec(
            "A100-SXM4-80GB",
            81920,
            2.039e12,
            312e12,
            None,
            link="nvlink3",
            aliases=["a100", "a100-sxm", "NVIDIA A100-SXM4-80GB"],
            pcie=31.5e9,
        ),
        _spec(
            "A100-PCIe-80GB",
            81920,
            1.935e12,
            312e12,
            None,
            link="pcie4",
            aliases=["a100-pcie", "NVIDIA A100 80GB PCIe"],
            pcie=31.5e9,
        ),
        # memory.total: 46068 MiB (nvidia-smi on L40S)
        _spec("L40S-48GB", 46068, 0.864e12, 362e12, 733e12, link="pcie4", aliases=["l40s", "NVIDIA L40S"], pcie=31.5e9),
        # memory.total: 24564 MiB (nvidia-smi on RTX 4090)
        _spec(
            "RTX4090-24GB",
            24564,
            1.008e12,
            165e12,
            330e12,
            link="pcie4",
            aliases=["rtx4090", "4090", "NVIDIA GeForce RTX 4090"],
            pcie=31.5e9,
        ),
        # A10 (Ampere GA102): 24 GB GDDR6 at 600 GB/s, 125 TFLOP/s dense fp16/bf16 tensor (250 with sparsity), no
        # fp8 (NVIDIA A10 datasheet); memory.total 23028 MiB (nvidia-smi on A10); PCIe Gen4 x16, no NVLink
        _spec("A10-24GB", 23028, 0.6e12, 125e12, None, link="pcie4", aliases=["a10", "NVIDIA A10"], pcie=31.5e9),
        # H20 (Hopper): 96 GB HBM3 at 4.0 TB/s, 148 TFLOP/s bf16, 296 fp8 (datasheet); memory.total 97871 MiB.
        # Its kernels reach a larger share of that peak than an H100's or H800's (kernel_peak_share 1.28 = 0.86 /
        # 0.67): FlashMLA's compute-bound decode 120-130 of 148 TFLOP/s on H20 (deepseek-ai/FlashMLA issue #30,
        # b=128, s_q=3-7, 8,192 context: 0.81-0.88) against 660 of 989 on H800 (FlashMLA README: 0.67);
        # FlashAttention-3 forward, head dim 128, 2,048 tokens, non-causal, 126 of 148 on H20 (Dao-AILab/
        # flash-attention issue #1310: 0.85).
        _spec("H20-96GB", 97871, 4.0e12, 148e12, 296e12, link="nvlink4", aliases=["h20", "NVIDIA H20"], share=1.28),
        # HGX B200: 180 GB HBM3e at 8 TB/s, 2.25 PFLOP/s dense bf16, 4.5 fp8, 9 fp4 (datasheet, dense = half of the
        # sparse figures); memory.total 183359 MiB (nvidia-smi on B200). NVLink 5: 18 links x 50 GB/s per direction.
        _spec(
            "B200-180GB", 183359, 8.0e12, 2250e12, 4500e12, link="nvlink5", aliases=["b200", "NVIDIA B200"], fp4=9000e12
        ),
        # 192 GiB HBM3 (rocm-smi VRAM total 196592 MiB)
        _spec(
            "MI300X-192GB",
            196592,
            5.3e12,
            1307e12,
            2615e12,
            link="xgmi",
            vendor="amd",
            aliases=["mi300x", "AMD Instinct MI300X"],
        ),
        # MI325X: MI300X's compute with 256 GB HBM3E at 6 TB/s (datasheet); 262144 MiB
        _spec(
            "MI325X-256GB",
            262144,
            6.0e12,
            1307e12,
            2615e12,
            link="xgmi",
            vendor="amd",
            aliases=["mi325x", "AMD Instinct MI325X"],
        ),
        # MI355X: 288 GB HBM3E at 8 TB/s, 2.5 PFLOP/s dense fp16/bf16, 5.0 fp8, 10 mxfp4 (datasheet); 294912 MiB
        _spec(
            "MI355X-288GB",
            294912,
            8.0e12,
            2500e12,
            5000e12,
            link="xgmi",
            vendor="amd",
            aliases=["mi355x", "AMD Instinct MI355X"],
            fp4=10000e12,
        ),
    ]
}


def find_gpu_type(name: str, extra: dict[str, GpuSpec] | None = None) -> GpuSpec | None:
    table = {**GPU_SPECS, **(extra or {})}
    if name in table:
        return table[name]
    key = name.strip().lower()
    for spec in table.values():
        if key == spec.name.lower() or key in (a.lower() for a in spec.aliases):
            return spec
    return None
