"""Engine releases older than the kernels a profile prices (planner.cost.engines.versions): flagged, not priced
as new, and kept out of the accuracy figures."""

from __future__ import annotations

from collections import Counter

import pytest

from planner.calibrate.corpus import Case, load_corpus, resolve
from planner.cost.engines.versions import parse_version, unmodelled_kernels
from planner.cost.estimate import estimate
from planner.hardware import load_topology
from planner.plan import Workload, make_partition


@pytest.mark.parametrize(
    ("text", "release"),
    [  # release strings as the corpus rows spell them (tests/data/corpus/*.yaml, engine_version)
        ("0.4.3.post2", (0, 4, 3)),
        ("0.7.3.dev138+g21f6ca217", (0, 7, 3)),
        ("v0.5.12-cu130", (0, 5, 12)),
        ("sglang-0.5.7-rocm700", (0, 5, 7)),
        ("0.10.0", (0, 10, 0)),
        ("1.0", (1, 0, 0)),
        ("unknown", None),
        ("nightly-6f91ed", None),
        ("1." + "9" * 50, None),  # no release number; a 4,301-digit part would make int() raise
        (None, None),
    ],
)
def test_release_strings_parse_to_their_number(text, release):
    assert parse_version(text) == release


@pytest.mark.parametrize(
    ("engine", "version", "attention", "flagged"),
    [
        ("sglang", "0.4.3.post2", "mla", True),  # Triton MLA decode by default (sgl-project/sglang PR #3550)
        ("sglang", "0.4.2.post4", "mla", True),
        ("sglang", "0.4.4", "mla", False),  # the floor itself is described
        ("sglang", "0.4.3.post2", "gqa", False),  # dense kernels are not floored
        ("vllm", "0.7.4.dev181+gf35f8e22", "mla", True),  # V0 engine (vLLM v0.8.0 release notes)
        ("vllm", "0.8.0", "mla", False),
        ("vllm", "0.6.3.post2", "gqa", False),
        ("vllm", "unknown", "mla", False),  # no release number: nothing to say
        ("trtllm", "0.17", "mla", False),  # no floor with a source
    ],
)
def test_a_release_is_flagged_only_below_its_profiles_floor(engine, version, attention, flagged):
    reason = unmodelled_kernels(engine, version, attention=attention)
    assert (reason is not None) == flagged
    if flagged:
        assert version in reason and "not modelled" in reason


def test_an_old_release_gets_its_figures_with_no_band_and_the_reason(profiles):
    """dstack's DeepSeek-R1 study point (tests/data/corpus/dstack.yaml): SGLang 0.4.3.post2, TP8 on 8x H200, 4
    clients of 3,200 / 800. The figures are the current profile's; the band is withheld and the reason given."""
    p = profiles("deepseek-r1")
    topo = load_topology("8xh200")
    part = make_partition(p, topo, tp=8)
    common = dict(concurrency=4, isl=3200, osl=800, weight_dtype="fp8", engine="sglang", mode="closed")
    old = estimate(p, topo, part, workload=Workload(**common, engine_version="0.4.3.post2"))
    new = estimate(p, topo, part, workload=Workload(**common, engine_version="0.5.6"))
    assert old.unmodelled is not None and "0.4.4" in old.unmodelled
    assert old.tpot_ms_band is None and old.ttft_ms_band is None and old.tokens_per_s_band is None
    assert new.unmodelled is None
    assert old.tpot_ms == new.tpot_ms  # said, not priced differently


def test_the_cli_says_what_it_does_not_model(cli):
    args = ["estimate", "--model", "deepseek-r1", "--topology", "8xh200", "--tp", "8", "--engine", "vllm", "-c", "4"]
    code, out, _ = cli(*args, "--engine-version", "0.7.3")
    assert code == 0 and "NOT MODELLED: vllm 0.7.3 predates the MLA kernels" in out
    code, out, _ = cli(*args, "--engine-version", "0.11.0")
    assert code == 0 and "NOT MODELLED" not in out


def test_a_version_string_past_its_bound_is_one_line_and_exit_1(cli):
    code, out, err = cli(
        "estimate", "--model", "deepseek-r1", "--topology", "8xh200", "--tp", "8", "--engine-version", "1." + "9" * 63
    )
    lines = (out + err).strip().splitlines()
    assert code == 1 and len(lines) == 1 and "--engine-version" in lines[0] and "64 characters" in lines[0]


def test_the_corpus_rows_of_older_releases_are_left_out_and_only_those():
    """dstack's early-2025 DeepSeek-R1 study (Deepseek-R1/raw_data in tests/data/corpus/dstack.yaml) is the corpus's
    only MLA study on releases below the floors: SGLang 0.4.2.post4 (MI300X) and 0.4.3.post2 (H200), vLLM
    0.7.3.dev138 (MI300X) and 0.7.4.dev181 (H200). Counted from the file: 45 closed-loop rows (the 4 x 6
    concurrencies, 3 x 3 shared-prefix runs, 12 longer outputs) and 51 offline ones."""
    skipped = Counter()
    for entry in load_corpus():
        out = resolve(entry)
        if isinstance(out, Case) or "predates" not in out.reason:
            continue
        row = entry.row
        skipped[(row.engine, row.engine_version.split("+")[0], row.load)] += 1
        assert entry.publisher == "dstack" and "DeepSeek-R1" in row.model
        assert isinstance(resolve(entry, older_kernels=True), Case)  # priced when asked (version_rows.py)
    assert sum(n for (_, _, load), n in skipped.items() if load == "closed") == 45
    assert sum(n for (_, _, load), n in skipped.items() if load == "offline") == 51
    assert {(e, v) for e, v, _ in skipped} == {
        ("sglang", "0.4.2.post4"),
        ("sglang", "0.4.3.post2"),
        ("vllm", "0.7.3.dev138"),
        ("vllm", "0.7.4.dev181"),
    }
