"""vLLM (V1 engine, 0.10-0.11): seeds and sources. Fitted values: fitted.yaml."""

from planner.cost.engines.base import COMMON_CONSTANTS, COMMON_SOURCES, EngineProfile, KernelFloor

PROFILE = EngineProfile(
    name="vllm",
    version="0.10-0.11 (V1 engine)",
    launch_flags="--gpu-memory-utilization 0.9 --max-num-batched-tokens 8192 --max-num-seqs 1024",
    kernel_floors=(
        KernelFloor(
            attention="mla",
            since="0.8.0",
            why="0.8.0 made the V1 engine the default and shipped its DeepSeek MLA and expert-parallel work "
            "(vLLM v0.8.0 release notes, 2025-03-18: 'V1 engine by default (#13726)', 'DeepSeek Improvements: "
            "MLA Enhancements'); 0.7.x ran DeepSeek on the V0 engine",
        ),
    ),
    constants={
        **COMMON_CONSTANTS,
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 1024,
        "memory_accounting": "gpu_memory_utilization",
        "runtime_reserve_bytes": int(0.66e9),
        "moe_tile_tokens": 16,
        "prefill_moe_host_s_per_layer": 0.0,
    },
    sources={
        **COMMON_SOURCES,
        "max_num_batched_tokens": "vllm/engine/arg_utils.py: V1 default for the OpenAI server on a >= 70 GiB GPU",
        "max_num_seqs": "vllm/engine/arg_utils.py: V1 default max_num_seqs on a >= 70 GiB GPU",
        "memory_accounting": "vllm/worker/gpu_worker.py: KV = gpu_memory_utilization x total - weights - peak "
        "activations (profiled) - non-torch memory",
        "runtime_reserve_bytes": "peak activations of the profiling run at 8,192 tokens and non-torch memory: "
        "Qwen2-7B on one A100-80GB logs 'GPU KV cache size' 93,872 tokens at "
        "gpu_memory_utilization 0.25 and 464,848 at 0.5 (dennislee22/vLLM-benchmarking@"
        "b474d1e:README.md): 0.25 x 85.09 GB - 15.23 GB weights - 93,872 x 57,344 B = "
        "0.66 GB; the TP2 logs of the same page are held out (tests/test_fidelity.py)",
        "moe_tile_tokens": "vllm/model_executor/layers/fused_moe/configs/*.json: BLOCK_SIZE_M 16 for small batches",
        "prefill_moe_host_s_per_layer": "seed 0: vLLM V1 compiles the model (torch.compile) and replays piecewise "
        "CUDA graphs for steps up to its capture size; eager and graph TTFT at one user measured the same "
        "(vllm-project/vllm issue #45709: 22.16 against 22.24 ms); not fitted",
    },
)
