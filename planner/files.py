"""Reading the user's files: one clear error for every way a file can be unreadable.

Every file planner reads (topology YAML, model config, plan, calibration) goes through `read_text`:
a size cap (so `/dev/zero` fails at once), UTF-8 with the offending byte named, and OS errors (a
missing file, a directory, a path too long) as one line. `load_yaml` and `load_json` bound the
nesting depth, so a deeply nested document is rejected instead of exhausting the stack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from planner.errors import ConfigError, InputError

#: Largest file planner reads: configs and topologies are kilobytes, plans a few megabytes.
MAX_FILE_BYTES = 16 * 2**20
#: Deepest nesting accepted in YAML or JSON (real files nest under 10 levels).
MAX_DEPTH = 64
MAX_PATH_CHARS = 1024


def read_text(path: str | Path, what: str, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The file's text, or an InputError naming the file and what is wrong with it."""
    shown = str(path)
    if len(shown) > MAX_PATH_CHARS:
        raise InputError(f"{shown[:60]}...: a path of {len(shown)} characters is too long for {what}")
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{shown}: cannot read {what} ({exc.strerror or exc})") from None
    except ValueError as exc:  # an embedded NUL in the path
        raise InputError(f"{shown[:60]!r}: not a usable path for {what} ({exc})") from None
    if len(data) > max_bytes:
        raise ConfigError(f"{shown}: {what} is larger than {max_bytes // 2**20} MiB; not a planner input")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{shown}: {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists and dicts, counted without recursion; stops counting past `limit`."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest


def _check_depth(value: Any, source: str) -> Any:
    if depth(value) > MAX_DEPTH:
        raise ConfigError(f"{source}: nested more than {MAX_DEPTH} levels deep; not a planner input")
    return value


#: libyaml's safe loader where PyYAML was built with it (about 10x faster on long files: a 100,000-entry list took
#: over a minute through the pure-Python loader on a loaded machine), else the pure-Python one; same rules either way.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, source: str) -> Any:
    """YAML from text (safe loader), with the line and column of a syntax error."""
    try:
        return _check_depth(yaml.load(text, Loader=SAFE_LOADER), source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if "nesting depth" in problem:  # libyaml's own depth limit (the pure-Python loader hits RecursionError)
            raise ConfigError(f"{source}: nested too deeply to read") from None
        raise ConfigError(f"{source}: YAML syntax error{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except ValueError as exc:  # a whole number past Python's 4,300-digit conversion limit
        raise ConfigError(f"{source}: {_number_problem(exc)}") from None


def _number_problem(exc: ValueError) -> str:
    if "digits" in str(exc):
        return "a number with thousands of digits; no planner input needs one"
    return f"a value that cannot be read ({str(exc)[:120]})"


def parse_json(text: str, source: str) -> Any:
    """JSON from text, with the line and column of a syntax error."""
    try:
        return _check_depth(json.loads(text), source)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read") from None
    except ValueError as exc:
        raise ConfigError(f"{source}: {_number_problem(exc)}") from None


def load_yaml(path: str | Path, what: str) -> Any:
    return parse_yaml(read_text(path, what), str(path))


def load_json(path: str | Path, what: str) -> Any:
    return parse_json(read_text(path, what), str(path))


def _output_path(path: str | Path, what: str) -> Path:
    shown = str(path)
    if len(shown) > MAX_PATH_CHARS:
        raise InputError(f"{shown[:60]}...: a path of {len(shown)} characters is too long for {what}")
    if "\0" in shown:
        raise InputError(f"{shown[:60]!r}: not a usable path for {what} (it holds a NUL byte)")
    return Path(shown).expanduser()


def check_writable(path: str | Path, what: str) -> Path:
    """Refuse up front (before a long solve) an output path that cannot be written: its folder is missing, not a
    folder, or read-only (a probe file is created there and removed: permissions alone mislead under root)."""
    import tempfile

    p = _output_path(path, what)
    if p.is_dir():
        raise InputError(f"{path}: cannot write {what} (it is a folder)")
    folder = p.parent
    if not folder.is_dir():
        raise InputError(f"{path}: cannot write {what} (the folder {folder} does not exist)")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".planner-probe-"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
    return p


def write_file(path: str | Path, text: str | bytes, what: str) -> None:
    """Write a text (or binary) file; one line naming the path when it cannot be written."""
    p = _output_path(path, what)
    try:
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot write {what} ({getattr(exc, 'strerror', None) or exc})") from None
