"""``free=maple``: free ``vmap_area`` blocks as ranges of a maple tree.

:class:`MapleFreeIndex` keeps each free block as the range ``[va_start,
va_end - 1] -> va`` of a normal (non-allocation) maple tree: the series'
maple form of ``free_vmap_area_root`` + ``free_vmap_area_list``.  Address
order comes from the tree itself (``mas_next`` / ``mas_prev``); the block's
``list_next`` / ``list_prev`` fields are left alone, because when this index
shadows (or is shadowed by) the rb-tree the same :class:`~vmapsim.VmapArea`
objects are linked into the rb-tree's list through them.

The tree has no per-subtree size, so :meth:`MapleFreeIndex.find_vmap_lowest_match`
is an honest scan: ``mas_find`` from ``vstart``, block after block, until one
can hold the request.  The stages that keep this index (2-6) search the
occupied tree's gaps instead and use this one for lookups and ``va_clip``.

:meth:`MapleFreeIndex.propagate` has two modes, from the stage's
``va_clip_store_null`` feature: False (stages 2-5) re-indexes a block whose
bounds changed by erasing its old range and storing the new one (two walks,
two stores); True (stage 6 on) trims a shrunken block with one
``mas_store(NULL)`` over the cut-off part, and grows a merged one with one
store of the block over its new range (one walk, one store).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

from vmapsim import (
    OVERLAP_WARNING,
    ULONG_MAX,
    ComponentContext,
    Counters,
    FaultInjector,
    InvariantError,
    VmapArea,
    is_within_this_va,
)

from .components import check_area_ranges
from .errors import MapleError
from .state import MapleState
from .tree import MapleTree

__all__ = ["MapleFreeIndex", "is_within_this_va", "make_free"]


class MapleFreeIndex:
    """Free blocks as maple ranges (``vmapsim.FreeIndex``).

    ``MapleFreeIndex(counters, warn, faults=None, clip_store_null=False)``.
    """

    __slots__ = ("_mas", "_n", "clip_store_null", "counters", "name", "tree", "warn")

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        faults: FaultInjector | None = None,
        clip_store_null: bool = False,
        name: str = "free_vmap_area_mt",
    ) -> None:
        self.tree = MapleTree(alloc_range=False, counters=counters, faults=faults)
        self.counters = counters
        self.warn = warn
        self.clip_store_null = bool(clip_store_null)
        self.name = name
        self._n = 0
        #: the state every operation reuses (one operation at a time)
        self._mas = self.tree.state()

    # ------------------------------------------------------------------
    # search

    def find_vmap_lowest_match(
        self, size: int, align: int, vstart: int, adjust_search_size: bool
    ) -> VmapArea | None:
        """``find_vmap_lowest_match()`` as a scan: ``mas_find`` from ``vstart``
        (the block holding ``vstart`` first), then each next block, until one
        can hold the request; None if none can.

        Without ``adjust_search_size`` a block can hold it when
        :func:`is_within_this_va` accepts it: the answer is the lowest such
        block, which is the rb-tree's (for ``align <= PAGE_SIZE`` the flow
        never over-asks).  With it, a block must also hold the over-ask,
        ``size + align - 1`` bytes from ``max(va_start, vstart)`` (so the
        aligned range always fits): the lowest gap ``mas_empty_area`` finds in
        the occupied tree, so that this index and ``occupied=maple`` place
        alike.  The rb-tree uses the over-ask only to prune subtrees and may
        return a lower block that happens to fit; its answer depends on the
        tree's shape, which a scan has not got.  When no block holds the
        over-ask, the lowest block that holds the request at all is the answer
        (as ``occupied=maple`` falls back to its exact search).

        Counts the tree's walk and moves, and one comparison per block tested.
        """
        mas = self._mas = self._mas.reuse(vstart if 0 <= vstart <= ULONG_MAX else 0)
        length = size + align - 1 if adjust_search_size else 0
        tested = 0
        found = None
        exact = None  # the lowest block that holds the request without the over-ask
        va = mas.find(ULONG_MAX)
        while va is not None:
            tested += 1
            if is_within_this_va(va, size, align, vstart):
                if va.va_end - (va.va_start if va.va_start > vstart else vstart) >= length:
                    found = va
                    break
                if exact is None:
                    exact = va
            va = mas.find(ULONG_MAX)
        self.counters.comparisons += tested
        return found if found is not None else exact

    # ------------------------------------------------------------------
    # linking

    def insert(self, va: VmapArea, near: VmapArea | None = None) -> bool:
        """``insert_vmap_area_augment()``: ``mtree_insert_range(va_start, va_end - 1,
        va)``.  False, with the kernel's overlap warning and nothing changed,
        if any of the range holds a block.

        ``near`` (the rb-tree's link hint) is not used: a maple insert walks
        from the root.  Nodes are allocated with ``mas_nomem``'s GFP_KERNEL
        retry (the flow links free blocks only where it may block, or with the
        NE-fit spare already in hand), so failslab does not fail it.
        """
        try:
            self.tree.insert_range(va.va_start, va.va_end - 1, va)
        except MapleError as exc:
            if exc.errno != errno.EEXIST:
                raise
            other = self.tree.find(va.va_start, va.va_end - 1)
            o_start, o_end = (other[0], other[1] + 1) if other else (0, 0)
            self.warn(OVERLAP_WARNING % (va.va_start, va.va_end, o_start, o_end))
            return False
        self._n += 1
        return True

    def _locate(self, va: VmapArea) -> MapleState:
        """A state on ``va``'s stored range, whose bounds ``va`` may no longer have.

        The flow changes ``va_start``/``va_end`` in place before telling the
        index; the stored range still shares one end with the new one (a clip
        moves one end, a merge moves one end), so ``va`` is found by a walk at
        ``va.va_start``, else at ``va.va_end - 1``.
        """
        mas = self._mas = self._mas.reuse(va.va_start)
        if mas.walk() is va:
            return mas
        mas.set(va.va_end - 1)
        if mas.walk() is va:
            return mas
        raise InvariantError(f"{self.name}: {va!r} is not in the index at either end")

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va_augment()``: erase ``va``'s range (``mas_erase`` from the walk
        that found it, so one walk)."""
        mas = self._locate(va)
        mas.store_gfp(None, True)
        self._n -= 1

    def propagate(self, va: VmapArea) -> None:
        """``augment_tree_propagate_from()``: ``va``'s bounds changed in place
        (``va_clip`` LE/RE/NE shrink, a merge grows it); re-index its range.

        ``va_clip_store_null`` False: erase the old range (through the walk
        that found it) and store the new one (a second walk): 2 walks, 2
        stores.  True: a shrink is one ``mas_store(NULL)`` over the cut-off
        part, a grow one store of ``va`` over the new range, both through the
        walk that found it: 1 walk, 1 store (a grow downwards into another
        leaf walks again, as the kernel's store would).
        """
        mas = self._locate(va)
        old_first, old_last = mas.index, mas.last
        first, last = va.va_start, va.va_end - 1
        if (old_first, old_last) == (first, last):
            return
        if not self.clip_store_null:
            mas.store_gfp(None, True)
            self.tree.store_range(first, last, va)
            return
        if first >= old_first and last <= old_last:
            # a shrink: one end moved inwards; NULL over what was cut off
            if first > old_first:
                mas.index, mas.last = old_first, first - 1
            else:
                mas.index, mas.last = last + 1, old_last
            mas.store_gfp(None, True)
            if first > old_first and last < old_last:  # pragma: no cover - never both ends
                self.tree.store_range(last + 1, old_last, None)
            return
        # a grow (merge): one store of va over the new range
        mas.index, mas.last = first, last
        mas.store_gfp(va, True)

    # ------------------------------------------------------------------
    # navigation

    def next_block(self, va: VmapArea) -> VmapArea | None:
        """The next block in address order: ``mas_walk(va_start)`` + ``mas_next``."""
        mas = self._mas = self._mas.reuse(va.va_start)
        mas.walk()
        return mas.next(ULONG_MAX)

    def prev_block(self, va: VmapArea) -> VmapArea | None:
        """The previous block in address order: ``mas_walk(va_start)`` + ``mas_prev``."""
        mas = self._mas = self._mas.reuse(va.va_start)
        mas.walk()
        return mas.prev(0)

    def first(self) -> VmapArea | None:
        """The lowest block: ``mas_find`` from 0."""
        mas = self._mas = self._mas.reuse(0)
        return mas.find(ULONG_MAX)

    def last(self) -> VmapArea | None:
        """The highest block: ``mas_find_rev`` from ``ULONG_MAX``."""
        mas = self._mas = self._mas.reuse(ULONG_MAX)
        return mas.find_rev(0)

    def find_enclosing(self, addr: int) -> VmapArea | None:
        """``find_vmap_area_exfree()``: ``mtree_load(addr)``."""
        return self.tree.load(addr)

    def __iter__(self) -> Iterator[VmapArea]:
        for _first, _last, va in self.tree:
            yield va

    def __len__(self) -> int:
        return self._n

    def check(self) -> None:
        """The tree's rules, every range holding the block with exactly those
        bounds, and the count."""
        check_area_ranges(self.tree, self.name, self._n, "block")

    def __repr__(self) -> str:
        return f"MapleFreeIndex({self._n} blocks, {self.tree!r})"


def make_free(ctx: ComponentContext) -> Any:
    """Factory for ``free=maple``: one per allocator, published as
    ``ctx.shared["free"]`` for the coalescer (``coalesce=generic``)."""
    free = MapleFreeIndex(
        ctx.counters,
        ctx.warn,
        ctx.faults,
        bool(ctx.params.get("va_clip_store_null", False)),
    )
    free.tree.allocator.might_alloc = ctx.might_alloc
    ctx.shared.setdefault("free", free)
    return free
