"""`planner bench` against a fake streaming server with known timings, and its failure modes."""

from __future__ import annotations

import json

import pytest

from .conftest import free_port
from .fake_server import Behaviour, FakeServer, served


@pytest.fixture()
def plan_file(tmp_path, cli):
    path = tmp_path / "plan.json"
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "1xh100", "--isl", "64", "--osl", "16",
                       "-o", str(path))
    assert code == 0, err
    return path


#: What the client may add to a time the server measured, on a loaded 2-core machine: the request's trip to the
#: server and the token's trip back, each through HTTP parsing and an event loop. The gaps below are longer, so
#: a client that measured from the wrong point (a second token, the stream's end) is off by more than this.
CLIENT_OVERHEAD_S = 0.05


@pytest.mark.parametrize("ttft_s,gap_s", [(0.2, 0.075), (0.3, 0.1)])
def test_bench_measures_what_the_server_did(plan_file, cli, ttft_s, gap_s, tmp_path):
    """The client's TTFT, TPOT and tokens/s against the fake server's own record of when each request arrived and
    each token left (not against the wall clock's hopes: a busy machine delays the server's schedule too)."""
    log = tmp_path / "served.jsonl"
    with FakeServer(Behaviour(ttft_s=ttft_s, gap_s=gap_s), log=log) as url:
        code, out, err = cli("bench", str(plan_file), "--url", url, "--concurrency", "1,4", "--requests", "8", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [p["concurrency"] for p in report["points"]] == [1, 4]
    record = served(log)
    assert len(record) == 16 and all(len(r["sent"]) == 16 for r in record)
    for p, done in zip(report["points"], (record[:8], record[8:])):
        m = p["measured"]
        ttft = sum(r["sent"][0] - r["received"] for r in done) / len(done)
        gap = sum((r["sent"][-1] - r["sent"][0]) / 15 for r in done) / len(done)
        assert ttft >= ttft_s  # the server never sends the first token ahead of its schedule
        # the client sees a token no sooner than the server sent it, and no later than its overhead allows
        assert ttft * 1e3 - 1.0 <= m["ttft_ms"] <= (ttft + CLIENT_OVERHEAD_S) * 1e3
        assert m["tpot_ms"] == pytest.approx(gap * 1e3, abs=CLIENT_OVERHEAD_S / 15 * 1e3)
        span = max(r["sent"][-1] for r in done) - min(r["received"] for r in done)
        assert 8 * 16 / (span + 2 * CLIENT_OVERHEAD_S) <= m["tokens_per_s"] <= 8 * 16 / span * 1.001
        assert set(p["predicted"]) == {"ttft_ms", "tpot_ms", "tokens_per_s"}
        assert p["error"]["tpot_ms"] == pytest.approx(p["predicted"]["tpot_ms"] / m["tpot_ms"] - 1, rel=1e-9)


def test_bench_fit_writes_a_calibration_that_estimate_accepts(plan_file, cli, tmp_path):
    cal = tmp_path / "cal.yaml"
    with FakeServer(Behaviour(ttft_s=0.1, gap_s=0.015)) as url:
        code, out, err = cli("bench", str(plan_file), "--url", url, "-c", "1,4", "--requests", "8", "--fit", str(cal),
                             "--json")
    assert code == 0, err
    fitted = json.loads(out)["fitted"]
    assert set(fitted) >= {"step_overhead_s", "hbm_efficiency", "flops_efficiency"}
    code, out, err = cli("estimate", "--model", "llama-8b", "--topology", "1xh100", "--tp", "1", "--isl", "64",
                         "--osl", "16", "--calibration", str(cal), "--json")
    assert code == 0, err
    # a 15 ms gap is slower than an H100's 8B decode: the fit moves the prediction towards it
    assert json.loads(out)["tpot_ms"] > 9.0


def test_bench_errors_are_one_line(plan_file, cli):
    code, _, err = cli("bench", str(plan_file), "--url", "localhost:8000")
    assert code == 1 and "--url" in err and "Traceback" not in err
    code, _, err = cli("bench", str(plan_file), "--url", "http://127.0.0.1:99999")
    assert code == 1 and "port" in err
    code, _, err = cli("bench", str(plan_file), "--url", f"http://127.0.0.1:{free_port()}", "--requests", "1")
    assert code == 1 and "cannot reach" in err and "server up" in err
    with FakeServer(Behaviour(ttft_s=0.01, gap_s=0.001, fail_after=3)) as url:
        code, _, err = cli("bench", str(plan_file), "--url", url, "-c", "1", "--requests", "1")
    assert code == 1 and "mid-stream" in err and "engine died" in err
    with FakeServer(Behaviour(status=503)) as url:
        code, _, err = cli("bench", str(plan_file), "--url", url, "-c", "1", "--requests", "1")
    assert code == 1 and "HTTP 503" in err
    code, _, err = cli("bench", str(plan_file), "--url", "http://127.0.0.1:1", "-c", "1", "--fit", "x.yaml")
    assert code == 1 and "two or more loads" in err  # checked before any request is sent



@pytest.mark.parametrize("behaviour,needle", [
    (dict(stop_after=1), "the answer ended after 1 tokens of the 16 asked for"),  # a stream cut off after one token
    (dict(usage='"16"'), "usage.completion_tokens is '16', not a whole number"),  # not blamed on --url
    (dict(usage="-5"), "the answer reported -5 tokens of the 16 asked for"),
    (dict(usage="1000000000"), "the answer reported 1,000,000,000 tokens of the 16 asked for"),
    (dict(usage="true"), "not a whole number"),
])
def test_bench_reads_what_the_server_reports_like_input(plan_file, cli, behaviour, needle):
    """Issue 27: the server's token counts and cut-off streams are checked, not turned into tokens/s."""
    with FakeServer(Behaviour(ttft_s=0.01, gap_s=0.001, **behaviour)) as url:
        code, _, err = cli("bench", str(plan_file), "--url", url, "-c", "1", "--requests", "1")
    assert code == 1 and needle in err and "Traceback" not in err and "--url" not in err, err


@pytest.mark.parametrize("args,needle", [
    (["--isl", "0"], "got --isl 0 --osl 16"), (["--osl", "0"], "got --isl 64 --osl 0"),
    (["--requests", "10001"], "--requests must be from 1 to 10,000"), (["-c", "10001"], "--concurrency: loads from 1"),
    (["-c", "10000", "--requests", "10", "--isl", "65000", "--osl", "16"], "prompt tokens in flight; at most 16,777,216"),
])
def test_bench_option_bounds(plan_file, cli, args, needle):
    code, _, err = cli("bench", str(plan_file), "--url", "http://127.0.0.1:1", *args)
    assert code == 1 and needle in err and "Traceback" not in err, err
