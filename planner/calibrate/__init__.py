"""Fitting the cost model's constants to measurements: published tables (benchmarks/) and live runs (planner bench)."""
