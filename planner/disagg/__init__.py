"""Prefill/decode disaggregation: two pools of instances, the KV hand-off between them, and what it costs.

`plan` holds the plan space (`Pools`: a prefill pool and a decode pool, each instances x one layout, on
chosen GPUs); `cost` prices it (TTFT, TPOT, throughput with rate matching, memory per pool) by calling
the aggregated cost model on each pool alone; `report` renders the table.
"""
