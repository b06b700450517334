"""planner: a multi-GPU partitioning planner for LLM inference."""

__version__ = "0.1.0"
