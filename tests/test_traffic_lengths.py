"""Issue 25, length distributions: --isl / --osl as a fixed value, uniform:A-B, lognormal:MEAN,SIGMA or a histogram;
Workload keeps the means as ints and the distribution beside them; the moments the serving model reads."""

from __future__ import annotations

import math

import pytest

from planner.plan import Workload
from planner.traffic.lengths import DistError, LengthDist, parse_length, shipped


def test_fixed_uniform_lognormal():
    assert parse_length("512", what="--isl").lengths == [512.0]
    u = parse_length("uniform:100-300", what="--isl")
    assert u.mean == pytest.approx(200.0)
    assert u.cv2 == pytest.approx((201**2 - 1) / 12 / 200**2, rel=0.02)  # discrete uniform variance (n^2-1)/12
    ln = parse_length("lognormal:1000,1", what="--osl")
    assert ln.mean == pytest.approx(1000.0)  # the mean asked for is kept
    # the median of a lognormal is exp(mu) = mean / exp(sigma^2 / 2) = 1000 / 1.6487 = 606.5
    assert ln.quantile(0.5) == pytest.approx(606.5, rel=0.05)


def test_workload_keeps_means_and_distributions():
    w = Workload(isl="lognormal:1000,1", osl="uniform:100-500")
    assert (w.isl, w.osl) == (1000, 300) and w.isl_dist is not None and w.osl_dist is not None
    # decode steps see sequences in proportion to their output: E[osl^2] / (2 E[osl]) beyond the prompt
    assert w.mean_context == pytest.approx(1000 + w.osl_dist.second_moment / 600)
    assert w.mean_context > Workload(isl=1000, osl=300).mean_context
    # prefill attention: E[isl^2] / (2 E[isl]) = mean (1 + cv^2) / 2 = 1000 x (1 + e^1 - 1) / 2 = 1359 for sigma 1
    # (128 bands at their conditional means keep 1289 of it: the spread inside the top band is lost)
    assert w.prefill_context == pytest.approx(1000 * math.e / 2, rel=0.06)
    assert Workload(isl=1000).prefill_context == 500
    assert Workload(isl="800").isl_dist is None and Workload(isl="800").isl == 800


def test_shipped_histograms_have_sources():
    assert {"chat-sharegpt", "history-sharegpt"} <= set(shipped())
    chat = parse_length("chat-sharegpt", what="--isl")
    assert "ShareGPT" in chat.source
    assert chat.mean == pytest.approx(215.2, rel=0.03)  # calibrated to dstack's 215.2-token mean prompt
    history = parse_length("history-sharegpt", what="--isl")
    assert history.mean > 3 * chat.mean  # whole conversations as prompts


def test_bad_lengths_name_what_is_wrong(tmp_path):
    with pytest.raises(DistError, match="uniform:5-2"):
        parse_length("uniform:5-2", what="--isl")
    bad = tmp_path / "h.yaml"
    bad.write_text("bins: [[10, 5, 1]]\n")
    with pytest.raises(DistError, match=r"h.yaml: bins\[0\]"):
        parse_length(str(bad), what="--isl")


def test_cli_length_options(cli):
    code, out, err = cli(
        "estimate",
        "--model",
        "llama-8b",
        "--topology",
        "8xh100",
        "--tp",
        "1",
        "--isl",
        "lognormal:1000,1",
        "--osl",
        "chat-sharegpt",
        "--json",
    )
    assert code == 0, err
    code, _, err = cli("estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "1", "--isl", "wide")
    assert code == 1 and "--isl 'wide'" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) <= 2


def test_sampling_draws_the_shapes_from_a_seeded_generator():
    """`LengthDist.sample` (planner bench --request-rate): uniform:A-B is random.Random.randint(A, B) itself,
    lognormal:MEAN,SIGMA a lognormal of that mean (not the 128 bands), a histogram its points by weight, a fixed
    length no draw; each clipped to [low, high]."""
    import random
    import statistics

    u = parse_length("uniform:10-300", what="--isl")
    rng, ref = random.Random(4), random.Random(4)
    assert [u.sample(rng) for _ in range(50)] == [ref.randint(10, 300) for _ in range(50)]
    ln = parse_length("lognormal:1000,1", what="--isl")
    xs = [ln.sample(random.Random(k)) for k in range(4000)]
    # mean 1000 (standard error 1000 sqrt(e - 1) / sqrt(4000) = 21 tokens); beyond the top band's point (~5,800)
    assert statistics.fmean(xs) == pytest.approx(1000, rel=0.08) and max(xs) > max(ln.lengths)
    hist = LengthDist(spec="h.yaml", kind="histogram", lengths=[10.0, 20.0, 30.0], weights=[0.5, 0.5, 0.0])
    draws = [hist.sample(random.Random(k)) for k in range(400)]
    assert set(draws) == {10, 20} and 150 < draws.count(10) < 250
    rng = random.Random(9)
    state = rng.getstate()
    assert parse_length("77", what="--osl").sample(rng) == 77 and rng.getstate() == state
    assert ln.sample(random.Random(1), low=2, high=5) in range(2, 6) and u.sample(random.Random(1), low=400) == 400
