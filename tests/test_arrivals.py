"""`--arrivals FILE` (issue 25): a trace read into rate, lengths, burstiness and prefix reuse, and the queues' waits
scaled by the arrivals' burstiness (Kingman)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planner.plan import Workload
from planner.traffic.arrivals import trace
from planner.traffic.lengths import DistError
from planner.traffic.steady import prefill_queue

DATA = Path(__file__).parent / "data" / "traces"
MOONCAKE = DATA / "mooncake-conversation-head60.jsonl"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_trace_by_hand(tmp_path):
    # arrivals at 0, 1 and 3 s: gaps 1 and 2 s, mean 1.5, variance 0.25, cv^2 = 0.25 / 2.25 = 1/9;
    # rate = 2 gaps over 3 s = 2/3 requests/s; prompts 100, 300, 300 (mean 233.3), outputs 10, 20, 30
    rows = [
        {"timestamp_s": 3.0, "prompt_tokens": 300, "output_tokens": 30},  # out of order: sorted by time
        {"timestamp_s": 0.0, "prompt_tokens": 100, "output_tokens": 10},
        {"timestamp_s": 1.0, "prompt_tokens": 300, "output_tokens": 20},
    ]
    t = trace(_write(tmp_path / "t.jsonl", rows))
    assert t.requests == 3 and t.span_s == 3.0
    assert t.rate_per_s == pytest.approx(2 / 3)
    assert t.gap_cv2 == pytest.approx(1 / 9)
    assert t.isl.lengths == [100.0, 300.0] and t.isl.weights == pytest.approx([1 / 3, 2 / 3])
    assert t.osl.mean == pytest.approx(20.0)
    assert t.prefix_tokens == 0 and t.prefix_hit == 0.0  # no hash_ids: nothing known shared


def test_mooncake_trace_head():
    # tests/data/traces/README.md: 60 published requests, timestamps in ms from 0 to 15,000; every prompt's first
    # 512-token block is id 0 and no other block repeats, so the 59 after the first each reuse 512 tokens
    t = trace(MOONCAKE)
    assert t.requests == 60 and t.span_s == pytest.approx(15.0)
    assert t.rate_per_s == pytest.approx(59 / 15.0)
    assert t.prefix_tokens == 512 and t.prefix_hit == pytest.approx(59 / 60)
    # the trace's timestamps come in 3-second groups: most gaps are 0, far burstier than Poisson's cv^2 of 1
    assert t.gap_cv2 > 5
    first = json.loads(MOONCAKE.read_text().splitlines()[0])
    assert first["input_length"] in t.isl.lengths


def test_a_workload_from_a_trace_and_the_clashes(tmp_path):
    w = Workload(arrivals=str(MOONCAKE))
    assert w.request_rate == pytest.approx(59 / 15.0)
    assert w.isl_dist is not None and w.isl == round(w.isl_dist.mean)
    assert w.prefix_tokens == 512 and w.arrival_cv2 > 5
    assert w.arrival_trace is not None and "60 requests" in w.arrival_trace
    assert Workload.model_validate(w.model_dump()) == w  # a plan's workload loads again without the file
    with pytest.raises(ValueError, match="--arrivals sets --request-rate"):
        Workload(arrivals=str(MOONCAKE), request_rate=3.0)
    assert Workload(arrivals=str(MOONCAKE), isl=1024).isl == w.isl  # the default, as commands pass it


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        ('{"timestamp_s": 1, "prompt_tokens": 0, "output_tokens": 5}', "prompt_tokens must be"),
        ('{"timestamp_s": -1, "prompt_tokens": 10, "output_tokens": 5}', "timestamp_s must be"),
        ('{"timestamp": 1, "prompt_tokens": 10, "output_tokens": 5}', "give timestamp_s"),
        ('{"timestamp_s": 1, "prompt_tokens": 10}', "give output_tokens or output_length"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_a_bad_line_is_named(tmp_path, line, says):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"timestamp_s": 0, "prompt_tokens": 10, "output_tokens": 5}\n' + line + "\n")
    with pytest.raises(DistError, match=says) as exc:
        trace(path)
    assert f"{path}:2" in str(exc.value)


def test_one_request_or_one_instant_has_no_rate(tmp_path):
    one = _write(tmp_path / "one.jsonl", [{"timestamp_s": 0, "prompt_tokens": 10, "output_tokens": 5}])
    with pytest.raises(DistError, match="at least two"):
        trace(one)
    same = _write(tmp_path / "same.jsonl", [{"timestamp_s": 2, "prompt_tokens": 10, "output_tokens": 5}] * 2)
    with pytest.raises(DistError, match="same timestamp"):
        trace(same)


def test_kingman_scales_the_prefill_wait():
    # fixed 1000-token prompts at rho 0.5 (test_traffic's Pollaczek-Khinchine case): W = 1.22 ms for Poisson
    # arrivals (ca^2 = 1); evenly spaced ones (ca^2 = 0) of fixed prompts never queue: (0 + 0) / (1 + 0) = 0;
    # bursts of ca^2 = 4 wait (4 + 0) / (1 + 0) = 4 times as long
    poisson = prefill_queue(Workload(isl=1000), prefill_per_step=4096, room=8192, period_s=0.02)[1]
    assert poisson == pytest.approx(500 / 8192 * 0.02)
    even = prefill_queue(Workload(isl=1000, arrival_cv2=0.0), prefill_per_step=4096, room=8192, period_s=0.02)[1]
    bursty = prefill_queue(Workload(isl=1000, arrival_cv2=4.0), prefill_per_step=4096, room=8192, period_s=0.02)[1]
    assert even == 0.0 and bursty == pytest.approx(4 * poisson)


def test_estimate_from_a_trace_cli(cli, tmp_path):
    code, out, err = cli(
        "estimate", "--model", "llama-8b", "--topology", "1xh100", "--tp", "1", "--arrivals", str(MOONCAKE), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["traffic"]["request_rate_rps"] == pytest.approx(59 / 15.0)
    assert "mooncake-conversation-head60.jsonl: 60 requests" in report["traffic"]["trace"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    code, _, err = cli("estimate", "--model", "llama-8b", "--topology", "1xh100", "--tp", "1", "--arrivals", str(bad))
    assert code == 1 and f"{bad}:1" in err and "Traceback" not in err
    code, _, err = cli(
        "estimate",
        *("--model", "llama-8b", "--topology", "1xh100", "--tp", "1"),
        *("--arrivals", str(MOONCAKE), "--request-rate", "2"),
    )
    assert code == 1 and "--arrivals sets --request-rate" in err


def test_solve_names_the_trace_it_would_ignore(cli):
    code, _, err = cli("solve", "--model", "llama-8b", "--topology", "8xh100", "--arrivals", str(MOONCAKE))
    assert code == 1 and err.startswith("error: --arrivals:") and "planner estimate --arrivals" in err


@pytest.mark.parametrize("command", ["frontier", "compare"])
def test_commands_over_loads_refuse_a_rate(cli, command):
    # they sweep or list loads; a rate they would ignore is one line naming it, exit 1
    code, _, err = cli(command, "--model", "llama-8b", "--topology", "8xh100", "--request-rate", "3")
    assert code == 1 and err.startswith("error: --request-rate:") and "planner estimate --request-rate" in err
