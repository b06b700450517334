"""Issue 26 item 3: SLOs echoed with their margins, requests/s printed, and for SLOs no plan meets the best
achievable figures and the first remedy that meets them."""

from __future__ import annotations

import json
import re


def test_slos_are_echoed_with_margins_and_requests_per_s(cli):
    code, out, err = cli(
        "solve",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--objective",
        "throughput",
        "--tpot-slo",
        "30",
        "--ttft-slo",
        "500",
        "--top",
        "0",
    )
    assert code == 0, err
    code, js, _ = cli(
        "solve",
        "--model",
        "llama-70b",
        "--topology",
        "8xh100",
        "--objective",
        "throughput",
        "--tpot-slo",
        "30",
        "--ttft-slo",
        "500",
        "--top",
        "0",
        "--json",
    )
    p = json.loads(js)["prediction"]
    assert f"TPOT <= 30 ms: {p['tpot_ms']:,.2f} ms ({30 - p['tpot_ms']:,.2f} ms to spare) ✓" in out
    assert f"TTFT <= 500 ms: {p['ttft_ms']:,.2f} ms ({500 - p['ttft_ms']:,.2f} ms to spare) ✓" in out
    # requests/s = load / (TTFT + osl x TPOT), the Prediction's own definition
    assert p["requests_per_s"] > 0 and re.search(rf"requests/s\s*│\s*{p['requests_per_s']:,.2f} completed", out)


def test_infeasible_slos_give_the_best_figures_and_a_remedy(cli):
    code, js, _ = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "--json")
    best = json.loads(js)["prediction"]
    code, _, err = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "--tpot-slo", "10")
    assert code == 2, err
    assert f"best achievable at 1 sequence: TPOT {best['tpot_ms']:,.2f} ms" in err
    assert best["tpot_ms"] > 10 and "meets them with fp8 weights" in err  # fp8 halves the weight bytes read
    fp8 = float(re.search(r"meets them with fp8 weights \(weight_dtype=fp8\): TPOT ([\d.]+) ms", err).group(1))
    assert fp8 <= 10
    code, _, err = cli("solve", "--model", "llama-70b", "--topology", "8xh100", "--tpot-slo", "2")
    assert code == 2 and "best achievable at 1 sequence" in err and "no single remedy meets them" in err, err
