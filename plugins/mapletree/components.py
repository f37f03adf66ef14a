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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from vmapsim import (
    OVERLAP_WARNING,
    ComponentContext,
    ComponentError,
    Counters,
    FaultInjector,
    InvariantError,
    VmapArea,
)

from .errors import MapleError
from .tree import MapleTree

__all__ = ["MapleBusyIndex", "MapleLazyQueue"]


def check_area_ranges(tree: MapleTree, name: str, count: int, what: str) -> None:
    """A tree of ``[va_start, va_end - 1] -> va`` ranges: the tree's own rules,
    every range holding the :class:`VmapArea` with exactly those bounds, and
    ``count`` ranges in all (``what`` names the entries in the message)."""
    tree.check()
    n = 0
    for first, last, va in tree:
        n += 1
        if not isinstance(va, VmapArea) or (first, last + 1) != (va.va_start, va.va_end):
            raise InvariantError(
                f"{name}: range {first:#x}-{last:#x} holds {va!r}, not its own {what}"
            )
    if n != count:
        raise InvariantError(f"{name}: {n} ranges but a count of {count}")


class _MapleAreaIndex:
    """Areas as maple ranges; the shared part of the busy and lazy indexes."""

    __slots__ = ("_mas", "_n", "name", "tree", "warn")

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
        #: the state the advanced-API paths reuse (one operation at a time)
        self._mas = self.tree.state()

    def _insert(self, va: VmapArea) -> bool:
        """``mtree_insert_range(va_start, va_end - 1, va)``; False on overlap."""
        try:
            self.tree.insert_range(va.va_start, va.va_end - 1, va)
        except MapleError as exc:
            if exc.errno != errno.EEXIST:
                raise
            self._warn_overlap(va)
            return False
        self._n += 1
        return True

    def _warn_overlap(self, va: VmapArea) -> None:
        """The kernel's overlap warning for ``va`` and the first area inside its range."""
        other = self.tree.find(va.va_start, va.va_end - 1)
        o_start, o_end = (other[2].va_start, other[2].va_end) if other else (0, 0)
        self.warn(OVERLAP_WARNING % (va.va_start, va.va_end, o_start, o_end))

    def __iter__(self) -> Iterator[VmapArea]:
        for _first, _last, va in self.tree:
            yield va

    def __len__(self) -> int:
        return self._n

    def check(self) -> None:
        """The tree's own rules, and every entry spanning exactly its area."""
        check_area_ranges(self.tree, self.name, self._n, "area")


class MapleBusyIndex(_MapleAreaIndex):
    """One vmap node's busy areas in a maple tree (``vn->busy`` as a maple tree).

    Feature switches (the stage's ``params``): ``maple_publish`` selects how
    :meth:`publish` stores (``"insert"``, the default: ``mtree_insert_range``
    with the request's gfp; ``"prealloc"``: ``mas_preallocate`` then
    ``mas_store_prealloc``); ``busy_single_erase`` makes :meth:`find_unlink`
    one walk instead of two.
    """

    __slots__ = ("prealloc", "single_erase")

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        faults: FaultInjector | None = None,
        name: str = "maple",
        params: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(counters, warn, faults, name)
        params = params or {}
        publish = params.get("maple_publish", "insert")
        if publish not in ("insert", "prealloc"):
            raise ComponentError(f"maple_publish: must be 'insert' or 'prealloc' (got {publish!r})")
        self.prealloc = publish == "prealloc"
        self.single_erase = bool(params.get("busy_single_erase", False))

    def insert(self, va: VmapArea) -> bool:
        """Publish a busy area (``insert_vmap_area`` in maple form)."""
        return self._insert(va)

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Publish a fresh busy area on the allocation path: 0, ``-EEXIST``
        (overlap warning logged) or ``-ENOMEM``; nothing changes on failure.

        ``maple_publish="insert"``: ``mtree_insert_range(va_start, va_end - 1,
        va, gfp)`` (a ``GFP_NOWAIT`` try, then ``mas_nomem`` with the request's
        gfp).  ``"prealloc"``: one ``mas_walk`` checks the range is free, then
        ``mas_preallocate(va, gfp)`` and ``mas_store_prealloc(va)`` through the
        same state (the store does not walk again).  ``-ENOMEM`` only when
        ``can_block`` is False and failslab refuses the nodes.
        """
        s = va.va_start
        last = va.va_end - 1
        tree = self.tree
        try:
            if not self.prealloc:
                tree.insert_range(s, last, va, can_block=bool(can_block))
            else:
                mas = self._mas = self._mas.reuse(s)
                if mas.walk() is not None or mas.last < last:
                    self._warn_overlap(va)
                    return -errno.EEXIST
                mas.index = s  # keep the walk's position for the store
                mas.last = last
                mas.preallocate(va, bool(can_block))
                mas.store_prealloc(va)
        except MapleError as exc:
            if exc.errno == errno.ENOMEM:
                return -errno.ENOMEM
            if exc.errno != errno.EEXIST:  # pragma: no cover - arguments are the flow's
                raise
            self._warn_overlap(va)
            return -errno.EEXIST
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
        """``find_unlink_vmap_area()`` for this node.

        ``busy_single_erase`` False (stages before 9): a find walk
        (``mtree_load``), then ``mtree_erase`` walks again: 2 walks.  True:
        one ``mas_erase()``, whose own walk finds the area it returns: 1 walk.
        Both erase with ``mas_erase``'s GFP_KERNEL retry, so failslab never
        fails them.
        """
        tree = self.tree
        if self.single_erase:
            mas = self._mas = self._mas.reuse(addr)
            va = mas.erase()
        else:
            va = tree.load(addr)
            if va is not None:
                tree.erase(addr)
        if va is None:
            return None
        self._n -= 1
        return va


class MapleLazyQueue(_MapleAreaIndex):
    """One vmap node's lazily freed areas in a maple tree."""

    __slots__ = ()

    def add(self, va: VmapArea) -> bool:
        """Queue an area (``insert_vmap_area`` into the lazy tree, maple form):
        ``mtree_insert_range(va_start, va_end - 1, va, GFP_KERNEL)``.

        ``free_vmap_area_noflush()`` runs from ``vfree()``, which may sleep
        (from interrupt context it defers to a work item), and the maple tree
        drops its own lock to allocate blocking (``mas_nomem``), so the add
        allocates with GFP_KERNEL: failslab (``ignore_gfp_wait``) never fails
        it and no lazy area is lost.  Under an injector that also fails
        blocking requests the :class:`MapleError` (ENOMEM) propagates, tree
        unchanged: the kernel would leak the range there.
        """
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
    busy = MapleBusyIndex(ctx.counters, ctx.warn, ctx.faults, f"busy[{ctx.node_id}]", ctx.params)
    busy.tree.allocator.might_alloc = ctx.might_alloc
    return busy


def make_lazy(ctx: ComponentContext) -> MapleLazyQueue:
    """Factory for ``lazy=maple``: one per vmap node."""
    lazy = MapleLazyQueue(ctx.counters, ctx.warn, ctx.faults, f"lazy[{ctx.node_id}]")
    lazy.tree.allocator.might_alloc = ctx.might_alloc
    return lazy
