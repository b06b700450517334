"""Loading a topology: a YAML path or a shipped name becomes a checked `Topology`."""

from __future__ import annotations

import functools
from pathlib import Path

import networkx as nx
from pydantic import ValidationError

from planner.errors import ConfigError, InputError, config_error
from planner.files import parse_yaml, read_text
from planner.hardware.schema import TopologyDef
from planner.hardware.topology import Topology
from planner.resources import topologies_dir


def parse_topology(text: str, source: str) -> Topology:
    """A Topology from YAML text; every problem is one ConfigError naming `source` and the field."""
    data = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a topology must be a YAML mapping with 'name' and 'nodes'")
    try:
        definition = TopologyDef.model_validate(data)
    except ValidationError as exc:
        raise config_error(source, exc) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ConfigError(f"{source}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        return Topology(definition, source=source, text=text)
    except (KeyError, nx.NetworkXException, ValueError) as exc:
        raise ConfigError(f"{source}: inconsistent links: {exc}") from None


def shipped_topologies() -> list[str]:
    return sorted(p.stem for p in topologies_dir().glob("*.yaml"))


def resolve_topology_path(arg: str) -> Path:
    """A path to an existing file, or the shipped topology of that name (with or without .yaml)."""
    if not isinstance(arg, str) or not arg.strip():
        raise InputError("a topology is needed: a YAML path or a shipped name")
    try:
        path = Path(arg).expanduser()
        if path.is_file():
            return path
    except (OSError, ValueError):
        pass  # a path the OS cannot even stat (too long, NUL byte): try the shipped names, then fail below
    name = arg[:-5] if arg.endswith(".yaml") else arg[:-4] if arg.endswith(".yml") else arg
    shipped = topologies_dir() / f"{Path(name).name}.yaml"
    if "/" not in name and len(name) < 100 and shipped.is_file():
        return shipped
    shown = arg if len(arg) <= 80 else arg[:77] + "..."
    raise InputError(
        f"unknown topology '{shown}': not a file and not a shipped topology ({', '.join(shipped_topologies())})"
    )


#: Topologies parsed, per (file, modification time, size): a changed file is parsed again.
LOADED_TOPOLOGIES_MAX = 32


@functools.lru_cache(maxsize=LOADED_TOPOLOGIES_MAX)
def _parsed(path: Path, source: str, mtime_ns: int, size: int) -> Topology:
    return parse_topology(read_text(path, "the topology"), source)


def load_topology(arg: str) -> Topology:
    """A topology from a YAML path or a shipped name; reloaded when the file changes. Topologies are never
    changed once built, so one loaded copy is shared (the last few files are kept)."""
    path = resolve_topology_path(arg)
    stat = path.stat()
    source = str(path) if path.parent != topologies_dir() else path.name
    return _parsed(path.resolve(), source, stat.st_mtime_ns, stat.st_size)
