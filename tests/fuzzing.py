"""Hostile inputs for every entry point, shared by tests/test_fuzz.py (a bounded, seeded run in CI) and
benchmarks/fuzz.py (10,000 cases and more).

A case is one command line run in-process the way the console script runs it (`planner.cli.run`) on files the
case wrote: mutated topology YAML, model configs, plan JSON and calibration profiles, or hostile option values.
`run_case` returns what happened: the exit code, whether anything escaped as a traceback, how long it took,
whether `--json` output parsed, and whether a process was left behind.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import re
import signal
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import yaml
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
TIME_LIMIT_S = 60.0

JUNK_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**12),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "-5GB/s",
            "0GB/s",
            "1e400GB/s",
            "1e-30GB/s",
            "450",
            "2us",
            "1e6s",
            "80GiB",
            "xx",
            "GPU0",
            "NV12",
            "\u00e9",
            "nan",
            "inf",
            "-1",
            "0",
            "1e999",
            "true",
            "null",
            "[]",
            "{}",
        ]
    ),
)
JUNK = st.one_of(
    JUNK_SCALARS,
    st.lists(st.integers(-3, 20), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
OPTION_VALUES = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "nan",
            "inf",
            "-inf",
            "1e999",
            "9223372036854775807",
            "1e-30",
            "",
            " ",
            "x",
            "1,1",
            "0,0,1",
            "-1,2",
            "1,,2",
            "\u00e9",
            "8xh100",
            "llama-8b",
            "1" * 400,
            "/dev/zero",
            "/nonexistent/x",
            "a/b",
            "0.5",
            "3.7",
            "65",
            "1024",
            "200000",
        ]
    ),
    st.integers(-10, 10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.text(max_size=30),
)


@dataclass
class Outcome:
    family: str
    argv: list[str]
    code: int | None
    traceback: str | None
    seconds: float
    json_ok: bool | None
    leftover: list[int]
    mutation: str = ""
    must_reject: bool = False  # the mutation made the input invalid: anything but exit 1 is a defect

    @property
    def wrongly_accepted(self) -> bool:
        return self.must_reject and self.code is not None and self.code != 1

    @property
    def timed_out(self) -> bool:
        return self.seconds > TIME_LIMIT_S


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout()


def run_case(
    family: str, argv: list[str], mutation: str = "", limit_s: float = TIME_LIMIT_S, must_reject: bool = False
) -> Outcome:
    """Run `planner <argv>` in-process (as the console script does) under a wall-clock alarm."""
    from planner.cli import run

    out, err = io.StringIO(), io.StringIO()
    tb = None
    code = None
    start = time.perf_counter()
    use_alarm = hasattr(signal, "SIGALRM") and os.getpid() == _MAIN_PID
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s + 5)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = run(argv)
    except _Timeout:
        code = None
    except BaseException as exc:  # anything that escapes is a traceback the user would see
        import traceback

        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    seconds = time.perf_counter() - start
    if tb is None and "Traceback (most recent call last)" in err.getvalue():
        tb = err.getvalue()[-3000:]
    json_ok = None
    if "--json" in argv and code == 0:
        try:
            json.loads(out.getvalue())
            json_ok = True
        except ValueError:
            json_ok = False
    return Outcome(
        family, argv, code, tb, seconds if code is not None else math.inf, json_ok, _leftovers(), mutation, must_reject
    )


_MAIN_PID = os.getpid()


def _leftovers() -> list[int]:
    """Processes this process started that are still running (validate's ranks, servers). Python's
    multiprocessing resource tracker is not one: it serves the parent for its lifetime and ends with it."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import alive, children_of

    out = []
    for pid in alive(children_of({os.getpid()})):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline:
            out.append(pid)
    return out


# --- mutations of structured documents -----------------------------------------------------------------------


def mutate(data: st.DataObject, doc: object) -> tuple[object, str]:
    """1-3 random edits anywhere in a document (delete, replace with junk, add an unknown key); and the last kind."""
    kind = "none"
    for _ in range(data.draw(st.integers(1, 3))):
        node, path = doc, []
        while isinstance(node, (dict, list)) and node and data.draw(st.booleans()):
            keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
            k = data.draw(st.sampled_from(keys))
            path.append((node, k))
            node = node[k]
        if not path:
            if isinstance(doc, dict):
                key = data.draw(st.text(max_size=6))
                kind = f"replace {key}" if key in doc else UNKNOWN_TOP_LEVEL_KEY
                doc[key] = data.draw(JUNK)
            continue
        parent, k = path[-1]
        action = data.draw(st.sampled_from(["delete", "replace", "replace", "unknown"]))
        field = str(k)
        if action == "delete":
            parent.pop(k)
            kind = f"delete {field}"
        elif action == "replace":
            parent[k] = data.draw(JUNK)
            kind = f"replace {field}"
        elif isinstance(parent[k], dict):
            parent[k][data.draw(st.text(min_size=1, max_size=6))] = data.draw(JUNK)
            kind = f"unknown key in {field}"
    return doc, kind


def render_text(data: st.DataObject, doc: object, as_json: bool) -> tuple[str, str]:
    """The document as text; sometimes cut short, sometimes with bytes that are not UTF-8; and how."""
    text = json.dumps(doc, allow_nan=True, default=str) if as_json else yaml.safe_dump(doc)
    how = data.draw(st.sampled_from(["whole", "whole", "whole", "cut", "bytes", "deep"]))
    if how == "cut":
        text = text[: data.draw(st.integers(0, max(0, len(text))))]
    elif how == "bytes":
        return text + "\udcff", how  # written with surrogateescape: an invalid UTF-8 byte
    elif how == "deep":
        text = "[" * 2000 + "]" * 2000
    return text, how


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def seeds(kind: str) -> list[object]:
    if kind == "topology":
        names = ("8xh100", "8xh100-pcie-nvlink-pairs", "2x8xh100-ib", "8xmi300x", "8xrtx4090", "1xh100", "8xl40s")
        return [yaml.safe_load((REPO / "topologies" / f"{n}.yaml").read_text()) for n in names]
    if kind == "model":
        names = ("Llama-3.1-8B", "Mixtral-8x7B-v0.1", "DeepSeek-V3", "Qwen3-30B-A3B", "gpt-oss-120b")
        return [json.loads((REPO / "models" / f"{n}.json").read_text()) for n in names]
    raise ValueError(kind)


def seed_plan() -> dict:
    """A small valid plan (llama-8b, TP2 on 8xh100), made once."""
    if not hasattr(seed_plan, "_doc"):
        from planner.hardware import load_topology
        from planner.model.catalog import load_profile
        from planner.plan import Workload
        from planner.solve import solve
        from planner.solve.options import SolveOptions

        plan = solve(
            load_profile("llama-8b"),
            load_topology("8xh100"),
            Workload(concurrency=2),
            options=SolveOptions(gpus=2, top=0),
        )
        seed_plan._doc = json.loads(plan.model_dump_json())
    return copy.deepcopy(seed_plan._doc)


COMMAND_OPTIONS = {
    "solve": [
        "--concurrency",
        "--isl",
        "--osl",
        "--tpot-slo",
        "--ttft-slo",
        "--time-limit",
        "--max-pp",
        "--max-tp",
        "--max-replicas",
        "--gpus",
        "--gpu-ids",
        "--weight-dtype",
        "--kv-dtype",
        "--gpu-memory-fraction",
        "--objective",
        "--mode",
        "--top",
        "--spec-tokens",
        "--spec-acceptance",
        "--mlp-sparsity",
        "--what-if",
    ],
    "estimate": [
        "--tp",
        "--pp",
        "--dp",
        "--ep",
        "--layers",
        "--gpu-ids",
        "--replicas",
        "--concurrency",
        "--isl",
        "--osl",
        "--weight-dtype",
        "--kv-dtype",
        "--mode",
        "--gpu-memory-fraction",
        "--offload-layers",
        "--spec-tokens",
        "--spec-acceptance",
        "--spec-draft",
        "--activation-sparsity",
        "--attention-sparsity",
        "--what-if",
    ],
    "remedies": ["--concurrency", "--gpus", "--isl", "--osl", "--plot", "--time-limit", "--weight-dtype"],
    "frontier": ["--gpus", "--gpu-ids", "--isl", "--osl", "--max-pp", "--plot", "--mode", "--time-limit"],
    "compare": ["--concurrency", "--objective", "--isl", "--osl", "--plot", "--breakdown-at", "--time-limit"],
    "topology collective": ["--sizes", "--op", "--gpu-ids", "--context"],
}
BASE_ARGS = {
    "solve": ["solve", "--model", "llama-8b", "--topology", "8xh100", "--time-limit", "2"],
    "estimate": ["estimate", "--model", "llama-8b", "--topology", "8xh100", "--tp", "2"],
    "frontier": ["frontier", "--model", "llama-8b", "--topology", "4xl40s", "--time-limit", "2"],
    "compare": ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "4xl40s", "-c", "1", "--time-limit", "2"],
    "topology collective": ["topology", "collective", "8xh100"],
    "remedies": ["remedies", "--model", "llama-8b", "--topology", "4xl40s", "-c", "1", "--time-limit", "1"],
}


UNKNOWN_TOP_LEVEL_KEY = "unknown top-level key"


def mutated_file(data: st.DataObject, docs: list, path: Path, *, strict: bool = True) -> tuple[Path, str, bool]:
    """A mutated copy of one of `docs` written to `path` (JSON for .json, else YAML); the last mutation's kind; and
    whether the file must be rejected (exit 1): bytes that are not UTF-8, nesting 2,000 deep, or, for a `strict`
    format (every key known: topologies, plans, calibrations; not Hugging Face configs), a key nobody declared,
    added last to the whole document."""
    doc, kind = mutate(data, copy.deepcopy(data.draw(st.sampled_from(docs))))
    text, how = render_text(data, doc, as_json=path.suffix == ".json")
    reject = how in ("bytes", "deep") or (strict and how == "whole" and kind == UNKNOWN_TOP_LEVEL_KEY)
    return write(path, text), f"{kind}; {how}", reject


#: Option values no option of the fuzzed commands accepts: not a finite number in range, nor a name or a list.
BAD_VALUES = {"nan", "inf", "-inf", "1e999", "", " ", "x", "\u00e9", "-1"}
#: Options that take a path (any text may name a file to write).
PATH_OPTIONS = {"--plot"}


def must_reject_options(added: list[str]) -> bool:
    """Whether the options added (flag, value pairs) include one whose last value is a BAD_VALUE."""
    last = dict(zip(added[::2], added[1::2]))
    return any(v in BAD_VALUES and flag not in PATH_OPTIONS for flag, v in last.items())


def hostile_options(data: st.DataObject) -> tuple[str, list[str], str, bool]:
    """A command with 1-3 options set to hostile values (and --json half the time): the command, its argv, the
    options added, and whether they must be rejected (must_reject_options)."""
    command = data.draw(st.sampled_from(sorted(COMMAND_OPTIONS)))
    argv = list(BASE_ARGS[command])
    added: list[str] = []
    for _ in range(data.draw(st.integers(1, 3))):
        added += [data.draw(st.sampled_from(COMMAND_OPTIONS[command])), data.draw(OPTION_VALUES)]
    argv += added
    if data.draw(st.booleans()):
        argv.append("--json")
    return command, argv, " ".join(added), must_reject_options(added)


# --- value extremes (issue 27) ---------------------------------------------------------------------------------
#
# One numeric field of a document (a number, or a quantity with a unit such as `450GB/s`) is set to an extreme value.
# Where the field is one planner reads and checks, the mutation must be refused: exit 1, never 0 or 2.

HUGE_INT = "9" * 5000  # past Python's 4,300-digit conversion limit; written into the text, never through str(int)
_HUGE_MARK = "__planner_fuzz_huge_int__"
#: (value, label, always refused where a checked number belongs)
EXTREMES = [
    (1e-300, "1e-300", False),
    (5e-324, "subnormal", False),
    (1e300, "1e300", True),
    (-1e300, "-1e300", True),
    (float("nan"), "nan", True),
    (True, "true", True),
    (False, "false", True),
    (_HUGE_MARK, "5000 digits", True),
    ("1\x002", "NUL byte", True),
    ({}, "empty map", False),
    ([], "empty list", False),
]
UNIT_EXTREMES = [
    ("1e-300GB/s", True),
    ("1e300GB/s", True),
    ("1e300s", True),
    ("-1e300us", True),
    ("1e-300s", False),
    ("nanGB/s", True),
    ("1\x00GB/s", True),
]
#: Fields whose value 1e-300 or a subnormal must be refused too (efficiencies, fractions, counts and sizes that
#: must be at least 1); elsewhere (times, latencies) a tiny value is a physical zero.
_TINY_REFUSED = (
    "ll",
    "simple",
    "count",
    "links",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
    "intermediate_size",
    "num_key_value_heads",
    "head_dim",
    "moe_intermediate_size",
    "v_head_dim",
    "qk_rope_head_dim",
    "kv_lora_rank",
    "q_lora_rank",
    "num_experts_per_tok",
    "max_num_batched_tokens",
    "moe_imbalance",
    "rope_theta",
    "tp",
    "dp",
    "ep",
    "replicas",
    "plan_version",
    "concurrency",
    "max_concurrency",
    "one_shot_peer_bytes_per_s",
)


_QUANTITY = re.compile(r"[0-9.]+(?:[eE][-+]?[0-9]+)?\s*(?:[kKMGTP]i?)?(?:B/s|b/s|B|s|ms|us|ns|FLOPS)")


def _numeric_leaves(doc: object, checked) -> list[tuple[list, bool]]:
    """Paths to every number (and quantity with a unit) in `doc`, each with whether planner checks it there."""
    out, stack = [], [(doc, [])]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for k, v in items:
            here = path + [k]
            if isinstance(v, (dict, list)):
                stack.append((v, here))
            elif (isinstance(v, (int, float)) and not isinstance(v, bool)) or (
                isinstance(v, str) and _QUANTITY.fullmatch(v)
            ):
                out.append((here, checked(here)))
    return sorted(out, key=lambda pv: [str(p) for p in pv[0]])


def checked_field(kind: str):
    """Whether planner reads and range-checks the field at a path of a document of `kind`."""
    from planner.model.config_check import ModelConfigCheck

    model_fields = set(ModelConfigCheck.model_fields) | {
        "rope_theta",
        "rms_norm_eps",
        "routed_scaling_factor",
        "num_local_experts",
        "n_routed_experts",
        "num_experts",
    }

    def check(path: list) -> bool:
        if kind in ("topology", "calibration"):
            return True  # every field of these schemas is read and ranged
        if kind == "model":
            return len(path) == 1 and path[0] in model_fields
        if kind == "plan":
            return path[0] in ("stages", "replicas", "plan_version", "prediction")
        return False

    return check


def extreme_mutation(data: st.DataObject, doc: object, kind: str) -> tuple[object, str, bool]:
    """One numeric field set to an extreme value; the mutation, and whether it must be refused (exit 1)."""
    leaves = _numeric_leaves(doc, checked_field(kind))
    if not leaves:
        return doc, "no numeric field", False
    path, checked = data.draw(st.sampled_from(leaves))
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    old = parent[path[-1]]
    name = str(path[-1]) if not isinstance(path[-1], int) else str(path[-2]) if len(path) > 1 else ""
    if isinstance(old, str):
        value, refused = data.draw(st.sampled_from(UNIT_EXTREMES))
        label = value
    else:
        value, label, refused = data.draw(st.sampled_from(EXTREMES))
        if label in ("1e-300", "subnormal"):
            refused = name in _TINY_REFUSED or name.endswith("_efficiency")
    if kind == "plan" and path[0] == "prediction" and label in ("true", "false"):
        refused = False  # the Plan schema's prediction floats are lax (plan.py); not demanded here yet
    parent[path[-1]] = value
    where = ".".join(str(p) for p in path)
    return doc, f"extreme {where}={label}", checked and refused


def render_extreme(doc: object, as_json: bool) -> str:
    """The document as text with the 5,000-digit literal written in place."""
    text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc)
    return text.replace(f'"{_HUGE_MARK}"', HUGE_INT).replace(f"'{_HUGE_MARK}'", HUGE_INT).replace(_HUGE_MARK, HUGE_INT)


def extreme_file(data: st.DataObject, docs: list, path: Path, kind: str) -> tuple[Path, str, bool]:
    """A copy of one of `docs` with one extreme value (and, a tenth of the time, a list made 100,000 long)."""
    doc = copy.deepcopy(data.draw(st.sampled_from(docs)))
    doc, mutation, must = extreme_mutation(data, doc, kind)
    if data.draw(st.integers(0, 9)) == 0:
        lists = [p for p, _ in _list_paths(doc)]
        if lists:
            where = data.draw(st.sampled_from(lists))
            node = doc
            for k in where:
                node = node[k]
            node.extend([node[0] if node else 0] * 100_000)
            mutation += f" + 100,000-long {'.'.join(map(str, where)) or 'list'}"
    return write(path, render_extreme(doc, as_json=path.suffix == ".json")), mutation, must


def _list_paths(doc: object) -> list[tuple[list, list]]:
    out, stack = [], [(doc, [])]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for k, v in items:
            if isinstance(v, list):
                out.append((path + [k], v))
            if isinstance(v, (dict, list)):
                stack.append((v, path + [k]))
    return sorted(out, key=lambda pv: [str(p) for p in pv[0]])


UNWRITABLE = [
    "/sys/x.{ext}",
    "/proc/x.{ext}",
    "/nonexistent-dir/x.{ext}",
    "/",
    "/etc",
    "x" * 2000 + ".{ext}",
    "a/" * 300 + "x.{ext}",
]
OUTPUT_CASES = {
    "solve -o": (["solve", "--model", "llama-8b", "--topology", "8xh100", "--time-limit", "2", "-o"], "json"),
    "frontier --plot": (
        ["frontier", "--model", "llama-8b", "--topology", "4xl40s", "--time-limit", "2", "--plot"],
        "svg",
    ),
    "remedies --plot": (
        ["remedies", "--model", "llama-8b", "--topology", "4xl40s", "-c", "1", "--time-limit", "1", "--plot"],
        "png",
    ),
    "compare --plot": (
        ["compare", "--model", "llama-8b", "-t", "8xh100", "-t", "4xl40s", "-c", "1", "--time-limit", "2", "--plot"],
        "pdf",
    ),
    "topology detect -o": (
        [
            "topology",
            "detect",
            "--from",
            str(REPO / "tests/fixtures/topo/4xl40s.txt"),
            "--gpus-csv",
            str(REPO / "tests/fixtures/topo/4xl40s-gpus.csv"),
            "-o",
        ],
        "yaml",
    ),
}


def unwritable_output(data: st.DataObject) -> tuple[str, list[str], str]:
    """A command whose -o/--plot names a path that cannot be written: it must exit 1 with one line."""
    name = data.draw(st.sampled_from(sorted(OUTPUT_CASES)))
    argv, ext = OUTPUT_CASES[name]
    target = data.draw(st.sampled_from(UNWRITABLE)).format(ext=ext)
    return name, [*argv, target], f"{name} {target[:40]}"


def seed_calibration() -> dict:
    from planner.cost.constants import DEFAULT

    return json.loads(DEFAULT.model_dump_json())
