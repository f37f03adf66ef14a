"""``struct maple_tree`` and its normal API (``mtree_*``)."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

from vmapsim import Counters, FaultInjector

from .alloc import NodeAllocator
from .check import check_tree
from .errors import ZERO_ENTRY, MapleError
from .node import MAPLE_ARANGE64, MAPLE_LEAF64, MAPLE_RANGE64, ULONG_MAX, MapleNode
from .state import MapleState, MaStatus, check_index
from .walk import descend, load
from .write import WR_EXACT_FIT, exact_fit

__all__ = ["MapleTree"]

_START = MaStatus.ma_start
_ACTIVE = MaStatus.ma_active


class MapleTree:
    """``struct maple_tree``: an index from ``[0, ULONG_MAX]`` to entries.

    ``alloc_range=True`` is ``MT_FLAGS_ALLOC_RANGE``: internal nodes are
    arange_64 with per-child gaps and the ``alloc_range`` / ``alloc_rrange``
    calls are allowed.  ``counters`` receives the cost model (a fresh
    :class:`vmapsim.Counters` if None); ``faults`` may fail node allocations.
    """

    __slots__ = (
        "_mas",
        "allocator",
        "counters",
        "height",
        "is_alloc",
        "itype",
        "root",
        "root_entry",
        "seq",
        "walk_memo",
    )

    def __init__(
        self,
        alloc_range: bool = False,
        *,
        counters: Counters | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        """``mt_init_flags(mt, alloc_range ? MT_FLAGS_ALLOC_RANGE : 0)``."""
        self.counters = counters if counters is not None else Counters()
        self.allocator = NodeAllocator(self.counters, faults)
        #: ``mt_is_alloc()``: MT_FLAGS_ALLOC_RANGE (gap tracking), immutable.
        self.is_alloc = bool(alloc_range)
        self.itype = MAPLE_ARANGE64 if alloc_range else MAPLE_RANGE64
        #: Root node, or None (then ``root_entry`` is the entry at index 0).
        self.root: MapleNode | None = None
        self.root_entry: Any = None
        #: ``mt_height()``: 0 without a root node, 1 for a root leaf.
        self.height = 0
        #: Bumped by every write; states positioned earlier re-walk.
        self.seq = 0
        #: The internal part of the last descent (``walk._path``), or None.
        self.walk_memo: tuple[Any, ...] | None = None
        self._mas = MapleState(self)

    @property
    def faults(self) -> FaultInjector | None:
        """The fault injector node allocations consult."""
        return self.allocator.faults

    def state(self, index: int = 0, last: int | None = None) -> MapleState:
        """``MA_STATE(mas, tree, index, last)``."""
        return MapleState(self, index, last)

    def _state(self, first: int, last: int) -> MapleState:
        mas = self._mas
        mas.index = first
        mas.last = last
        mas.status = _START  # mas_reset()
        mas.node = None
        return mas

    @staticmethod
    def _range_args(first: int, last: int) -> None:
        check_index("first", first)
        check_index("last", last)
        if first > last:
            raise MapleError(errno.EINVAL, f"first: must be <= last (got {first:#x} > {last:#x})")

    # ------------------------------------------------------------------
    # normal API

    def store_range(self, first: int, last: int, entry: Any, *, can_block: bool = True) -> None:
        """``mtree_store_range()``: overwrite ``[first, last]`` with ``entry``
        (None erases); partially covered neighbours keep the rest."""
        if type(first) is not int or type(last) is not int or not 0 <= first <= last <= ULONG_MAX:
            self._range_args(first, last)
        mas = self._mas  # self._state(first, last), inlined
        mas.index = first
        mas.last = last
        mas.status = _START
        mas.node = None
        mas._write(first, last, entry, can_block, True, False)

    def store_range_walked(
        self, first: int, last: int, entry: Any, pos: tuple[MapleNode, int, int, int]
    ) -> None:
        """:meth:`store_range` (GFP_KERNEL) for a caller that has just done,
        and counted, the store's own walk: ``pos`` is ``descend(self, first)``
        with nothing written since.  Arguments are the caller's, unchecked."""
        mas = self._mas
        mas.index = first
        mas.last = last
        mas.status = _START
        mas.node = None
        mas._write(first, last, entry, True, True, False, pos)

    def store(self, index: int, entry: Any, *, can_block: bool = True) -> None:
        """``mtree_store()``: ``store_range(index, index, entry)``."""
        self.store_range(index, index, entry, can_block=can_block)

    def insert_range(self, first: int, last: int, entry: Any, *, can_block: bool = True) -> None:
        """``mtree_insert_range()``: store only if all of ``[first, last]`` is
        NULL, else EEXIST."""
        if type(first) is not int or type(last) is not int or not 0 <= first <= last <= ULONG_MAX:
            self._range_args(first, last)
        mas = self._mas
        if self.root is None or entry is None or mas.reserved:
            self._state(first, last)._write(first, last, entry, can_block, True, True)
            return
        leaf, o1, mn, poff = pos = descend(self, first)
        piv = leaf.pivots
        if leaf.slots[o1] is None and last == piv[o1] and first == (piv[o1 - 1] + 1 if o1 else mn):
            # Fast path: inserting into exactly one NULL slot (wr_exact_fit).
            self.counters.stores += 1
            self.seq += 1
            exact_fit(self, leaf, o1, mn, entry, poff)
            mas.wr_type = WR_EXACT_FIT
            return
        # Anything else, an occupied range included (mas_insert preallocates
        # for the store before it reports EEXIST), is the general write.
        self._state(first, last)._write(first, last, entry, can_block, True, True, pos)

    def insert(self, index: int, entry: Any, *, can_block: bool = True) -> None:
        """``mtree_insert()``."""
        self.insert_range(index, index, entry, can_block=can_block)

    def load(self, index: int) -> Any:
        """``mtree_load()``: the entry at ``index``; ZERO_ENTRY reads as None."""
        if type(index) is not int or index < 0 or index > ULONG_MAX:
            check_index("index", index)
        return load(self, index)

    def erase(self, index: int) -> Any:
        """``mtree_erase()``: NULL over the whole range holding ``index``;
        returns the old entry (None if none)."""
        if type(index) is not int or index < 0 or index > ULONG_MAX:
            check_index("index", index)
        mas = self._mas
        if self.root is None or mas.reserved:
            return self._state(index, index).erase()
        # mas_erase(), with the walk done here: the slot holding index ...
        leaf, off, mn, poff = descend(self, index)
        slots = leaf.slots
        entry = slots[off]
        if entry is None:
            return None
        if (
            off < len(slots) - 1
            and slots[off + 1] is not None
            and (not off or slots[off - 1] is not None)
        ):
            # ... fast path: NULL over one slot between two entries, not at the
            # leaf's end (wr_exact_fit; the write reuses the walk, counting the
            # comparisons of mas_wr_store_setup's re-scan of the leaf).
            c = self.counters
            c.comparisons += off + 1
            c.stores += 1
            self.seq += 1
            exact_fit(self, leaf, off, mn, None, poff)
            mas.wr_type = WR_EXACT_FIT
            return entry
        # ... else the general write, from a state positioned on that slot.
        piv = leaf.pivots
        first = piv[off - 1] + 1 if off else mn
        last = piv[off]
        mas.node = leaf
        mas.offset = off
        mas.min = mn
        mas.index = first
        mas.last = last
        mas.seq = self.seq
        mas.status = _ACTIVE
        mas._write(first, last, None, True, True)
        return entry

    def _alloc_args(self, entry: Any, size: int, min: int, max: int) -> MapleState:
        if not self.is_alloc:
            raise MapleError(
                errno.EINVAL, "alloc_range: tree was not created with alloc_range=True"
            )
        if entry is ZERO_ENTRY:
            raise MapleError(errno.EINVAL, "entry: reserved values cannot be allocated")
        return self._state(min if type(min) is int and min >= 0 else 0, 0)

    def alloc_range(self, entry: Any, size: int, min: int, max: int) -> int:
        """``mtree_alloc_range()``: insert ``entry`` at the lowest free
        ``size``-index range inside ``[min, max]``; returns its start.

        EINVAL (no ALLOC_RANGE, reserved entry, bad bounds), EBUSY (no fit).
        """
        mas = self._alloc_args(entry, size, min, max)
        mas.empty_area(min, max, size)
        mas.insert(entry)
        return mas.index

    def alloc_rrange(self, entry: Any, size: int, min: int, max: int) -> int:
        """``mtree_alloc_rrange()``: as ``alloc_range`` but the highest fit."""
        mas = self._alloc_args(entry, size, min, max)
        mas.empty_area_rev(min, max, size)
        mas.insert(entry)
        return mas.index

    def find(self, index: int, max: int) -> tuple[int, int, Any] | None:
        """``mt_find()``: first entry at or after ``index`` starting <= max,
        skipping ZERO_ENTRY; ``(first, last, entry)`` or None."""
        check_index("index", index)
        mas = self._state(index, index)
        entry = mas.find(max)
        while entry is ZERO_ENTRY:
            entry = mas.find(max)
        if entry is None:
            return None
        return mas.index, mas.last, entry

    # ------------------------------------------------------------------
    # iteration and whole-tree operations

    def _leaves(self) -> Iterator[tuple[MapleNode, int]]:
        root = self.root
        if root is None:
            return
        stack: list[tuple[MapleNode, int]] = [(root, 0)]
        visited = 0
        while stack:
            node, mn = stack.pop()
            visited += 1
            if node.type == MAPLE_LEAF64:
                yield node, mn
                continue
            piv = node.pivots
            starts = [mn, *(p + 1 for p in piv[:-1])]
            stack.extend(reversed(list(zip(node.slots, starts, strict=True))))
        self.counters.nodes_visited += visited

    def ranges(self, *, include_null: bool = False) -> Iterator[tuple[int, int, Any]]:
        """Every slot in key order as ``(first, last, entry)``.

        Like ``mas_for_each`` (ZERO_ENTRY returned as-is); with
        ``include_null`` NULL ranges too (``mas_find_range``).
        """
        if self.root is None:
            cur = self.root_entry
            if cur is not None:
                yield 0, 0, cur
                if include_null:
                    yield 1, ULONG_MAX, None
            elif include_null:
                yield 0, ULONG_MAX, None
            return
        for leaf, mn in self._leaves():
            start = mn
            for p, s in zip(leaf.pivots, leaf.slots, strict=True):
                if s is not None or include_null:
                    yield start, p, s
                start = p + 1

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        """``mt_for_each``: non-NULL entries as ``(first, last, entry)``.

        ZERO_ENTRY is skipped, as ``mt_for_each`` (via ``mt_find``) does; use
        :meth:`ranges` or a :class:`MapleState` to see it.
        """
        for first, last, entry in self.ranges():
            if entry is not ZERO_ENTRY:
                yield first, last, entry

    def __len__(self) -> int:
        """Number of entries ``mt_for_each`` visits."""
        return sum(1 for _ in self)

    def destroy(self) -> None:
        """``mtree_destroy()``: free every node; flags are kept."""
        root = self.root
        if root is not None:
            stack = [root]
            alloc = self.allocator
            while stack:
                node = stack.pop()
                if node.type != MAPLE_LEAF64:
                    stack.extend(node.slots)
                alloc.free(node)
        self.root = None
        self.root_entry = None
        self.height = 0
        self.seq += 1

    def check(self) -> None:
        """``mt_validate()``: raise :class:`vmapsim.InvariantError` on any
        broken rule (pivots, limits, gaps, NULLs, fill, depth, parents,
        height, node accounting)."""
        check_tree(self)

    def __repr__(self) -> str:
        kind = "alloc" if self.is_alloc else "range"
        return f"MapleTree({kind}, height={self.height})"
