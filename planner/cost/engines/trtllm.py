"""TensorRT-LLM (trtllm-serve, PyTorch backend 0.20-1.x; NIM's TRT engines): seeds and sources. Fitted: fitted.yaml."""

from planner.cost.engines.base import COMMON_CONSTANTS, COMMON_SOURCES, EngineProfile

PROFILE = EngineProfile(
    name="trtllm",
    version="0.20-1.0 (NIM 1.x TensorRT engines for the NIM rows)",
    launch_flags="--kv_cache_free_gpu_memory_fraction 0.9 --max_num_tokens 8192 --max_batch_size 2048",
    constants={
        **COMMON_CONSTANTS,
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 2048,
        "memory_accounting": "free_gpu_memory_fraction",
        "runtime_reserve_bytes": int(2.5e9),
        "moe_tile_tokens": 64,
        "prefill_moe_host_s_per_layer": 0.0,
        "one_shot_max_bytes": 0,
    },
    sources={
        **COMMON_SOURCES,
        "max_num_batched_tokens": "tensorrt_llm/llmapi/llm_args.py: max_num_tokens default 8192",
        "max_num_seqs": "tensorrt_llm/llmapi/llm_args.py: max_batch_size default 2048",
        "memory_accounting": "tensorrt_llm KvCacheConfig.free_gpu_memory_fraction: share of the memory free after "
        "weights and runtime buffers",
        "runtime_reserve_bytes": "runtime buffers and CUDA graphs; the round-two NIM fit's reserve",
        "moe_tile_tokens": "CUTLASS grouped GEMM MoE kernels: M tile 64 (tensorrt_llm/_torch/modules/fused_moe)",
        "prefill_moe_host_s_per_layer": "0: no published eager-against-graph prefill measurement found "
        "(TensorRT-LLM documents piecewise prefill graphs); not fitted",
        "one_shot_max_bytes": "0: TensorRT-LLM's default all-reduce strategy runs NCCL's kernels inside the CUDA "
        "graph; its one-shot and two-shot kernels (NVIDIA's 'MultiShot' blog, November 2024) are opt-in "
        "(allreduce_strategy), and a trace of the default shows nccl_allreduce_ring (NVIDIA/TensorRT-LLM issue #2521)",
    },
)
