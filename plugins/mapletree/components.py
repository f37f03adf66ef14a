"""vmap_area indexes built on the maple tree, for the flow's ``busy`` and ``lazy`` roles.

:class:`MapleBusyIndex` keeps one vmap node's busy areas as maple ranges
``[va_start, va_end - 1] -> va`` (the series' busy maple index);
:class:`MapleLazyQueue` keeps a node's lazily freed areas the same way.
They fill the same roles as the rbtree plugin's rb_list trees and give the
same results (a test runs the stage-0 flow on them against the rb-tree), so
``vmapsim run --with busy=maple --with lazy=maple`` compares the two
structures under one flow.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator

from vmapsim import ComponentContext, Counters, FaultInjector, InvariantError, VmapArea

from .errors import MapleError
from .tree import MapleTree

__all__ = ["MapleBusyIndex", "MapleLazyQueue"]

#: ``find_va_links()``'s warning, reused when a range is already occupied
OVERLAP_WARNING = "vmalloc bug: 0x%x-0x%x overlaps with 0x%x-0x%x"


class _MapleAreaIndex:
    """Areas as maple ranges; the shared part of the busy and lazy indexes."""

    __slots__ = ("_n", "name", "tree", "warn")

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        faults: FaultInjector | None = None,
        name: str = "maple",
    ) -> None:
        self.tree = MapleTree(alloc_range=False, counters=counters, faults=faults)
        self.warn = warn
        self.name = name
        self._n = 0

    def _insert(self, va: VmapArea) -> bool:
        """``mtree_insert_range(va_start, va_end - 1, va)``; False on overlap."""
        try:
            self.tree.insert_range(va.va_start, va.va_end - 1, va)
        except MapleError as exc:
            if exc.errno != errno.EEXIST:
                raise
            other = self.tree.find(va.va_start, va.va_end - 1)
            o_start, o_end = (other[2].va_start, other[2].va_end) if other else (0, 0)
            self.warn(OVERLAP_WARNING % (va.va_start, va.va_end, o_start, o_end))
            return False
        self._n += 1
        return True

    def __iter__(self) -> Iterator[VmapArea]:
        for _first, _last, va in self.tree:
            yield va

    def __len__(self) -> int:
        return self._n

    def check(self) -> None:
        """The tree's own rules, and every entry spanning exactly its area."""
        self.tree.check()
        n = 0
        for first, last, va in self.tree:
            n += 1
            if not isinstance(va, VmapArea) or (first, last + 1) != (va.va_start, va.va_end):
                raise InvariantError(
                    f"{self.name}: range {first:#x}-{last:#x} holds {va!r}, not its own area"
                )
        if n != self._n:
            raise InvariantError(f"{self.name}: {n} ranges but a count of {self._n}")


class MapleBusyIndex(_MapleAreaIndex):
    """One vmap node's busy areas in a maple tree (``vn->busy`` as a maple tree)."""

    __slots__ = ()

    def insert(self, va: VmapArea) -> bool:
        """Publish a busy area (``insert_vmap_area`` in maple form)."""
        return self._insert(va)

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Publish a busy area: ``mtree_insert_range()`` with the request's gfp;
        0, -EEXIST (warned) or -ENOMEM (nothing changed)."""
        try:
            self.tree.insert_range(va.va_start, va.va_end - 1, va, can_block=can_block)
        except MapleError as exc:
            if exc.errno == errno.ENOMEM:
                return -errno.ENOMEM
            if exc.errno != errno.EEXIST:
                raise
            return 0 if self._insert(va) else -errno.EEXIST
        self._n += 1
        return 0

    def find(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area()`` as ``mtree_load(addr)``."""
        return self.tree.load(addr)

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va()`` as ``mtree_erase(va_start)``."""
        if self.tree.erase(va.va_start) is va:
            self._n -= 1

    def find_unlink(self, addr: int) -> VmapArea | None:
        """Find and erase in one state: ``mas_walk()`` then ``mas_erase()``."""
        mas = self.tree.state(addr)
        va = mas.walk()
        if va is None:
            return None
        mas.erase()
        self._n -= 1
        return va


class MapleLazyQueue(_MapleAreaIndex):
    """One vmap node's lazily freed areas in a maple tree."""

    __slots__ = ()

    def add(self, va: VmapArea) -> bool:
        """Queue an area (``insert_vmap_area`` into the lazy tree, maple form)."""
        return self._insert(va)

    def detach_all(self) -> list[VmapArea]:
        """Take every area in address order and empty the tree (``mtree_destroy``)."""
        areas = [va for _first, _last, va in self.tree]
        self.tree.destroy()
        self._n = 0
        self.tree.counters.list_ops += 1
        return areas


def make_busy(ctx: ComponentContext) -> MapleBusyIndex:
    """Factory for ``busy=maple``: one per vmap node."""
    return MapleBusyIndex(ctx.counters, ctx.warn, ctx.faults, f"busy[{ctx.node_id}]")


def make_lazy(ctx: ComponentContext) -> MapleLazyQueue:
    """Factory for ``lazy=maple``: one per vmap node."""
    return MapleLazyQueue(ctx.counters, ctx.warn, ctx.faults, f"lazy[{ctx.node_id}]")
