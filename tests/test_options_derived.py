"""Issue 22, item 1: bench, validate, topology collective and topology detect take their options from one pydantic
model each (planner.cli.options derives them): the command's options are the model's fields, with the model's
flags, help and defaults, and nothing hand-declared beside them but the command's own inputs."""

from __future__ import annotations

import json
import typing

import pytest
import typer

from planner.bench.options import BenchOptions
from planner.cli import app
from planner.cli.options import Fields, _help, extra, flag
from planner.cost.collectives import CONTEXTS, OPS
from planner.hardware.options import CollectiveOptions, DetectOptions
from planner.validate.options import ValidateOptions

#: Per command, the model its options come from and the parameters it declares itself (the plan or topology it
#: reads, the server, the shared --calibration and --json).
COMMANDS = [
    (("bench",), BenchOptions, {"plan_file", "url", "calibration", "json_out"}),
    (("validate",), ValidateOptions, {"plan_file", "json_out"}),
    (("topology", "collective"), CollectiveOptions, {"topology", "json_out"}),
    (("topology", "detect"), DetectOptions, {"json_out"}),
]


def _command(path: tuple[str, ...]):
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]  (a group's subcommands)
    return cmd


@pytest.mark.parametrize("path,model,own", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_a_commands_options_are_its_models_fields(path, model, own):
    params = {p.name: p for p in _command(path).params if p.name != "help"}
    fields = Fields(model).names()
    assert fields == list(model.model_fields)  # every field is an option (none is library-only)
    assert set(params) - own == set(fields), "an option beside the model's, or a field that is not an option"
    for name in fields:
        info, p = model.model_fields[name], params[name]
        assert flag(model, name) in p.opts and (extra(info).get("short") in (None, *p.opts))
        assert p.help == _help(info, None) and info.description and p.help.startswith(info.description[:1].upper())
        default = info.get_default(call_default_factory=True)
        assert p.default == default, name


@pytest.mark.parametrize("path,model,own", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_help_shows_each_field(cli, path, model, own):
    code, out, err = cli(*path, "--help")
    assert code == 0, err
    flat = " ".join(out.replace("│", " ").split())
    for name in model.model_fields:
        assert flag(model, name) in flat
        assert " ".join(_help(model.model_fields[name], None).split()[:4]) in flat, name


def test_collective_choices_are_the_cost_models():
    assert typing.get_args(CollectiveOptions.model_fields["op"].annotation) == OPS
    assert typing.get_args(CollectiveOptions.model_fields["context"].annotation) == CONTEXTS


@pytest.mark.parametrize(
    "args,needle",
    [
        (["validate", "plan.json", "--backend", "mpi"], "--backend: Input should be 'gloo' or 'nccl'"),
        (["validate", "plan.json", "--scale", "big"], "--scale: Input should be 'mini' or 'full'"),
        (["validate", "plan.json", "--tokens", "0"], "--tokens: Input should be greater than or equal to 1"),
        (["validate", "plan.json", "--timeout", "0"], "--timeout: Input should be greater than 0"),
        (["topology", "collective", "8xh100", "--op", "broadcast"], "--op: Input should be 'all-reduce', 'all-gather'"),
        (["topology", "detect", "--p2p-level", "far"], "--p2p-level: Input should be 'pix', 'pxb', 'phb' or 'sys'"),
        (
            ["bench", "plan.json", "--url", "http://127.0.0.1:1", "--requests", "0"],
            "--requests: Input should be greater",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(cli, args, needle):
    """Checked by the model before the plan is read (plan.json need not exist)."""
    code, _, err = cli(*args)
    assert code == 1 and needle in err and len(err.strip().splitlines()) == 1, err


def test_an_optional_strict_int_field_is_an_int_option(cli):
    """Workload.num_prompts is Optional[StrictInt]: the command line parses it as an int (it arrived as text, and
    every value was refused as 'not a valid integer'), and a value out of range is one line naming the flag."""
    args = ["estimate", "-m", "llama-8b", "-t", "8xh100", "--tp", "1", "-c", "8", "--mode", "closed", "--json"]
    code, out, err = cli(*args, "--num-prompts", "80")
    assert code == 0, err
    assert json.loads(out)["plan"]["inputs"]["workload"]["num_prompts"] == 80
    code, _, err = cli(*args, "--num-prompts", "0")
    assert code == 1 and "--num-prompts: Input should be greater than or equal to 1" in err
