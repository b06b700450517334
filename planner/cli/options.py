"""Command-line options derived from the pydantic models that declare them.

An option is declared once, as a field of a model (`Workload`, `SolveOptions`, ...): its name, type, range,
default and help (the field's description). As vLLM's `arg_utils` derives argparse from its config classes,
`derive` turns those fields into typer options and hands the command the validated model:

    @cli_errors
    @derive(work=Fields(Workload), options=Fields(SolveOptions))
    def solve_cmd(model: ModelOpt, topology: TopologyOpt, work: Workload, options: SolveOptions) -> None: ...

Per field, `json_schema_extra` may say `flag` (default `--` and the name in kebab case), `short` (`-c`),
`panel` (the help panel), `text` (the option is text the model parses, e.g. `--isl lognormal:1000,1`) and `cli: False`
(library only). Choices (Literal, StrEnum) and bounds (ge, gt, le, lt)
are stated in the help; the model validates, and an invalid value is one line naming the flag (exit 1).
A field added to a model is an option of every command that derives from it; a command leaves a field out
with `Fields(..., exclude=...)`, or gives it its own default or help with `defaults=` and `help=`.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any, Callable, Literal, Optional, TypeVar

import annotated_types
import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from planner.errors import InputError, validation_messages
from planner.units import parse_int_list

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Fields:
    """The fields of `model` a command offers as options: all but `exclude` (or only `only`), and per field a
    default or help text of the command's own (`defaults`, `help`); `panels_excluded` leaves out whole panels."""

    model: type[BaseModel]
    exclude: frozenset[str] = frozenset()
    only: frozenset[str] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    panels_excluded: frozenset[str] = frozenset()

    def names(self) -> list[str]:
        """The offered fields, in declaration order."""
        out = []
        for name, info in self.model.model_fields.items():
            meta = extra(info)
            if meta.get("cli", True) is False or name in self.exclude or meta.get("panel") in self.panels_excluded:
                continue
            if self.only is None or name in self.only:
                out.append(name)
        return out


def extra(info: FieldInfo) -> dict[str, Any]:
    """A field's command-line metadata (flag, short, panel, cli; `derived`: the field's default is worked out from the
    other inputs when the option is not given, so the option's own default is unset)."""
    return info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}


def flag(model: type[BaseModel], name: str) -> str:
    """The command-line flag of a model's field: `--max-pp` for max_pp, unless the field names another."""
    return str(extra(model.model_fields[name]).get("flag") or "--" + name.replace("_", "-"))


def _unoptional(annotation: Any) -> Any:
    """X for Optional[X] (or X | None), and for Annotated[X, ...] inside it (Optional[StrictInt] is an int); the
    annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            annotation = args[0]
    if typing.get_origin(annotation) is typing.Annotated:
        return typing.get_args(annotation)[0]
    return annotation


def _choices(annotation: Any) -> list[str] | None:
    base = _unoptional(annotation)
    if typing.get_origin(base) is Literal:
        return [str(v) for v in typing.get_args(base)]
    if isinstance(base, type) and issubclass(base, Enum):
        return [str(m.value) for m in base]
    return None


def _is_int_list(annotation: Any) -> bool:
    base = _unoptional(annotation)
    return typing.get_origin(base) is list and typing.get_args(base) == (int,)


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def _bounds(info: FieldInfo) -> str:
    words = (
        (annotated_types.Ge, "ge", "at least"),
        (annotated_types.Gt, "gt", "above"),
        (annotated_types.Le, "le", "at most"),
        (annotated_types.Lt, "lt", "below"),
    )
    parts = [
        f"{word} {_number(getattr(m, attr))}"
        for m in info.metadata
        for kind, attr, word in words
        if isinstance(m, kind)
    ]
    return f" Range: {', '.join(parts)}." if parts else ""


def _help(info: FieldInfo, text: str | None) -> str:
    out = (text or info.description or "").strip()
    out = out[:1].upper() + out[1:]
    if out and not out.endswith("."):
        out += "."
    if choices := _choices(info.annotation):
        out += f" One of: {', '.join(choices)}."
    return out + _bounds(info)


def _option_type(info: FieldInfo, default: Any) -> Any:
    """What the command line parses: bool, int, float or str (choices and int lists arrive as text, for the
    model to check in one line naming the flag)."""
    base = _unoptional(info.annotation)
    if extra(info).get("text"):  # the model reads text (a length or a distribution, planner.traffic.lengths)
        typ: Any = str
    elif base in (bool, int, float):
        typ = base
    else:
        typ = str
    return Optional[typ] if default is None else typ


def _parameter(spec: Fields, name: str) -> inspect.Parameter:
    info = spec.model.model_fields[name]
    meta = extra(info)
    default = spec.defaults.get(name, None if meta.get("derived") else info.get_default(call_default_factory=True))
    if isinstance(default, Enum):
        default = default.value
    decls = [flag(spec.model, name)] + ([meta["short"]] if meta.get("short") else [])
    option = typer.Option(*decls, help=_help(info, spec.help.get(name)), rich_help_panel=meta.get("panel"))
    if _is_int_list(info.annotation):
        option.metavar = "0,1,.."
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[_option_type(info, default), option]
    )


def build(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """A validated `model` from command-line values (None: the field's own default, so that the model's
    `model_fields_set` says which options were given); one line naming the flag when a value is out of range."""
    data = {}
    for name, value in values.items():
        if value is None:
            continue
        if _is_int_list(model.model_fields[name].annotation) and isinstance(value, str):
            value = parse_int_list(value, flag(model, name), low=0, high=1 << 20)
        data[name] = value
    try:
        return model(**data)
    except ValidationError as exc:
        msgs = validation_messages(exc)
        name, _, rest = msgs[0].partition(":")
        # a field's error names its flag; a model-wide one (loc "(top level)") says what it says, as it names its own
        where = flag(model, name) if name in model.model_fields else "" if name == "(top level)" else name
        raise InputError(f"{where}:{rest}" if where else rest.strip(), details=msgs[1:]) from None


def derive(**specs: Fields | type[BaseModel]) -> Callable[[F], F]:
    """Give a typer command the fields of the models `specs` names as options: each parameter of the command
    named in `specs` receives the validated model; the command's other parameters stay as they are."""
    fields = {key: spec if isinstance(spec, Fields) else Fields(spec) for key, spec in specs.items()}

    def decorate(fn: F) -> F:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name not in fields]
        derived = {key: spec.names() for key, spec in fields.items()}
        taken = [p.name for p in own] + [n for names in derived.values() for n in names]
        if len(set(taken)) != len(taken):
            raise TypeError(f"{fn.__name__}: options named twice: {sorted(n for n in taken if taken.count(n) > 1)}")
        params = own + [_parameter(fields[key], n) for key, names in derived.items() for n in names]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            for key, names in derived.items():
                kwargs[key] = build(fields[key].model, {n: kwargs.pop(n) for n in names})
            return fn(**kwargs)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command  # type: ignore[return-value]

    return decorate
