"""vLLM (V1 engine, 0.10-0.11): seeds and sources. Fitted values: fitted.yaml."""

from planner.cost.engines.base import EngineProfile

PROFILE = EngineProfile(
    name="vllm",
    version="0.10-0.11 (V1 engine)",
    launch_flags="--gpu-memory-utilization 0.9 --max-num-batched-tokens 8192 --max-num-seqs 1024",
    constants={
        "max_num_batched_tokens": 8192,
        "max_num_seqs": 1024,
        "memory_accounting": "gpu_memory_utilization",
        "runtime_reserve_bytes": int(4.0e9),
        "moe_tile_tokens": 16,
        "step_overhead_s": 1.0e-3,
        "sequence_overhead_s": 25e-6,
        "request_overhead_s": 15e-3,
    },
    sources={
        "max_num_batched_tokens": "vllm/engine/arg_utils.py: V1 default for the OpenAI server on a >= 70 GiB GPU",
        "max_num_seqs": "vllm/engine/arg_utils.py: V1 default max_num_seqs on a >= 70 GiB GPU",
        "memory_accounting": "vllm/worker/gpu_worker.py: KV = gpu_memory_utilization x total - weights - peak "
                             "activations (profiled) - non-torch memory",
        "runtime_reserve_bytes": "peak activations of the profiling run at 8,192 tokens plus CUDA graphs "
                                 "(~1-2 GB logged as 'Graph capturing finished ... took N GiB') and NCCL buffers; "
                                 "seed, refined by the KV-log rows where the corpus has them",
        "moe_tile_tokens": "vllm/model_executor/layers/fused_moe/configs/*.json: BLOCK_SIZE_M 16 for small batches",
        "step_overhead_s": "seed (fitted: fitted.yaml)",
        "sequence_overhead_s": "seed (fitted: fitted.yaml)",
        "request_overhead_s": "seed (fitted: fitted.yaml)",
    },
)
