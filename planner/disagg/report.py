"""The table of a disaggregated prediction (the same model as `--json`), 80 columns wide."""

from __future__ import annotations

from rich.table import Table

from planner.disagg.cost import DisaggPrediction
from planner.disagg.plan import Pools


def disagg_table(pools: Pools, p: DisaggPrediction, title: str) -> Table:
    table = Table(title=title, width=80)
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("prefill pool", f"{pools.prefill.label} on {pools.prefill.n_gpus} GPUs"),
        ("decode pool", f"{pools.decode.label} on {pools.decode.n_gpus} GPUs"),
        (f"load ({p.mode})", f"{p.concurrency:,}"),
        ("TTFT ms", f"{p.ttft_ms:,.1f}"),
        *((f"  {k} ms", f"{v:,.2f}") for k, v in p.ttft_breakdown_ms.items()),
        ("TPOT ms", f"{p.tpot_ms:,.2f}"),
        ("output tokens/s", f"{p.tokens_per_s:,.0f}"),
        ("tokens/s per GPU", f"{p.tokens_per_s_per_gpu:,.0f}"),
        ("sequences decoding", f"{p.decode_concurrency:,.1f} of {p.decode_max_concurrency:,}"),
        ("prefill / decode utilisation", f"{p.prefill_utilisation:.0%} / {p.decode_utilisation:.0%}"),
        ("limited by", p.limited_by),
        ("KV per request MB", f"{p.kv_bytes_per_request / 1e6:,.1f} in {p.kv_transfer_ms:,.2f} ms"),
        ("fits", "yes" if p.fits else "no"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if p.problem:
        table.caption = p.problem
    return table
