"""SGLang (0.4.x-0.5.x): seeds and sources. Fitted values: fitted.yaml."""

from planner.cost.engines.base import COMMON_CONSTANTS, COMMON_SOURCES, EngineProfile, KernelFloor

PROFILE = EngineProfile(
    name="sglang",
    version="0.4.9-0.5.x",
    launch_flags="--mem-fraction-static 0.88 --chunked-prefill-size 8192",
    kernel_floors=(
        KernelFloor(
            attention="mla",
            since="0.4.4",
            why="through 0.4.3 SGLang decoded MLA with its Triton kernel by default, FlashInfer's MLA opt-in "
            "(--enable-flashinfer-mla, sgl-project/sglang PR #3550, 2025-02-13), and had no FlashMLA "
            "(sgl-project/sglang issue #4006, 2025-03-03)",
        ),
    ),
    constants={
        **COMMON_CONSTANTS,
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 1024,
        "memory_accounting": "mem_fraction_static",
        "runtime_reserve_bytes": int(1.0e9),
        "moe_tile_tokens": 64,
        "prefill_moe_host_s_per_layer": 1.35e-3,
    },
    sources={
        **COMMON_SOURCES,
        "max_num_batched_tokens": "sglang/srt/server_args.py: chunked_prefill_size 8192 on GPUs with >= 80 GB",
        "max_num_seqs": "sglang/srt/server_args.py: max_running_requests (bounded by the KV pool; cuda_graph_max_bs "
        "below it)",
        "memory_accounting": "sglang/srt/model_executor/model_runner.py: the KV pool is mem_fraction_static x total "
        "- weights; activations and CUDA graphs live in the rest",
        "runtime_reserve_bytes": "CUDA context and NCCL outside mem_fraction_static's share; seed",
        "moe_tile_tokens": "sglang fused_moe_triton configs: BLOCK_SIZE_M 16-64; DeepGEMM grouped GEMM M tile 64",
        "prefill_moe_host_s_per_layer": "seed: SGLang runs extend (prefill) batches eagerly and replays CUDA graphs "
        "for decode only (sgl-project/sglang PR #10062: 'native prefilling can incur kernel launch overhead'); "
        "DeepSeek-V3's eager prefill of one new token takes 82.64 ms of forward time against 23.10 ms as a CUDA "
        "graph (sgl-project/sglang PR #12160): 82.64 / 61 layers = 1.35 ms a layer (not fitted)",
    },
)
