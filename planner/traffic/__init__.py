"""Traffic as it arrives (issue 25): open-loop arrivals, length distributions, queueing, percentiles, sizing.

- `lengths`: `--isl` / `--osl` as distributions (fixed, uniform, lognormal, histogram files; shipped in data/).
- `queueing`: the prefill slot (M/G/1), admission (Erlang C) and the percentiles of TTFT and TPOT.
- `steady`: a plan at a request rate: the steady state as a fixed point of Little's law with the serving model.
- `sizing`: the fewest GPUs of each type whose replicas hold the SLOs at a rate, and what they cost.

This package imports nothing from planner.plan at module level except in `steady` and `sizing` (planner.plan
imports `lengths` and `model`). See docs/traffic.md.
"""
