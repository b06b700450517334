"""Named, bounded memo tables of values derived from a topology, keyed on values.

A module that computes something from a topology (a ring order, a collective's time, the slot classes of a
machine) declares its own table, typed by key and value:

    RINGS: Memo[tuple[int, ...], Ring] = Memo("best rings", maxsize=4096)
    ring = RINGS.get(topo, ids)            # None: not computed yet
    return RINGS.put(topo, ids, computed)

The tables hang off each Topology weakly (a topology that is dropped takes its entries with it) and never
write into the topology: a what-if is a new Topology, so it starts with empty tables of its own. Each table
keeps at most `maxsize` entries per topology, dropping the oldest.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Generic, Hashable, TypeVar

if TYPE_CHECKING:
    from planner.hardware.topology import Topology

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """One named table per topology: `get` a value computed before (None if not), `put` one computed now."""

    def __init__(self, name: str, *, maxsize: int) -> None:
        self.name, self.maxsize = name, maxsize
        self._tables: weakref.WeakKeyDictionary[Topology, dict[K, V]] = weakref.WeakKeyDictionary()

    def get(self, topo: Topology, key: K) -> V | None:
        table = self._tables.get(topo)
        return None if table is None else table.get(key)

    def put(self, topo: Topology, key: K, value: V) -> V:
        table = self._tables.setdefault(topo, {})
        if key not in table and len(table) >= self.maxsize:
            table.pop(next(iter(table)))
        table[key] = value
        return value

    def size(self, topo: Topology) -> int:
        """Entries kept for `topo`."""
        return len(self._tables.get(topo, {}))

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, maxsize={self.maxsize})"
