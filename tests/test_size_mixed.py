"""`planner size --mixed` / `--available` (issue 25 item 5): the cheapest fleet mixing GPU types, an exact cover."""

from __future__ import annotations

import json

import pytest

from planner.traffic.mixed import mixed_fleet
from planner.traffic.sizing import GpuSizing, Layout, Price, SizeOptions


def _row(gpu: str, *, cap_rps: float, usd: float, replicas: int) -> GpuSizing:
    price = Price(usd_per_gpu_hour=usd, date="2026-12-01", source="a hand calculation")
    return GpuSizing(
        gpu=gpu,
        topology=f"8x{gpu}",
        fits=True,
        tp=1,
        replicas=replicas,
        gpus=replicas,
        usd_per_hour=replicas * usd,
        price=price,
        layouts=[Layout(tp=1, max_rate_rps=cap_rps, sustainable_rate_rps=cap_rps * 1.2)],
    )


# 7 requests/s; an "h100" replica (one GPU, $2.95/h) carries 3 of them within the SLOs, an "l40s" (one GPU, $1.00/h)
# carries 1. One type alone: 3 x h100 = $8.85, 7 x l40s = $7.00. Mixed: 2 h100 + 1 l40s = 6 + 1 = 7 requests/s for
# $6.90, cheaper than 1 h100 + 4 l40s ($6.95) and 7 l40s ($7.00): the cover is exact at a share of 7 / 7 = 100%.
ROWS = [_row("h100", cap_rps=3.0, usd=2.95, replicas=3), _row("l40s", cap_rps=1.0, usd=1.00, replicas=7)]


def test_the_cheapest_mix_by_hand():
    m = mixed_fleet(ROWS, rate_rps=7.0, osl=100)
    assert m.fits
    assert {(p.gpu, p.replicas) for p in m.parts} == {("h100", 2), ("l40s", 1)}
    assert m.usd_per_hour == pytest.approx(6.90)
    assert m.best_single_usd_per_hour == pytest.approx(7.00)
    assert m.load_share == pytest.approx(1.0)
    # $6.90 an hour for 7 x 100 x 3600 output tokens: $2.738 per million
    assert m.usd_per_million_output_tokens == pytest.approx(6.90 / (7 * 100 * 3600) * 1e6)
    # every replica gets rate x cap / sum(caps): at most its own cap
    assert all(p.rate_per_replica_rps <= p.cap_rps + 1e-9 for p in m.parts)


def test_gpus_on_hand_limit_the_mix():
    # one h100 on hand: 1 x 3 + 4 x 1 = 7 requests/s for 2.95 + 4.00 = $6.95
    m = mixed_fleet(ROWS, rate_rps=7.0, osl=100, available={"h100": 1})
    assert {(p.gpu, p.replicas) for p in m.parts} == {("h100", 1), ("l40s", 4)}
    assert m.usd_per_hour == pytest.approx(6.95)
    # with 2 l40s and no h100 there is no cover of 7 requests/s
    short = mixed_fleet(ROWS, rate_rps=7.0, osl=100, available={"h100": 0, "l40s": 2})
    assert not short.fits and "--available" in (short.reason or "")


def test_available_is_checked():
    assert SizeOptions(gpu="h100,l40s", available="h100=16, l40s=8").limits == {"h100": 16, "l40s": 8}
    with pytest.raises(ValueError, match="not among --gpu"):
        SizeOptions(gpu="h100", available="l40s=8")
    with pytest.raises(ValueError, match="TYPE=COUNT"):
        SizeOptions(gpu="h100", available="h100=lots")


def test_size_mixed_cli(cli):
    code, out, err = cli(
        *("size", "--model", "llama-8b", "--gpu", "h100,l40s", "--request-rate", "5"),
        *("--ttft-slo", "1000", "--tpot-slo", "50", "--mixed", "--json"),
    )
    assert code == 0, err
    report = json.loads(out)
    mixed = report["mixed"]
    singles = [r["usd_per_hour"] for r in report["rows"] if r["fits"]]
    # the exact cover is never dearer than the cheapest one-type fleet, which is one of its candidates
    assert mixed["fits"] and mixed["usd_per_hour"] <= min(singles) + 1e-9
    assert sum(p["replicas"] * p["cap_rps"] for p in mixed["parts"]) >= 5.0
