"""The series' occupied-range maple tree: free space as the gaps of in-use ranges.

:class:`MapleOccupiedIndex` (``occupied=maple``, ``occupied=maple-occupied``)
is one allocation-range maple tree (``MT_FLAGS_ALLOC_RANGE``) per allocator
holding every range of the address space that is not free: busy, lazy and
pooled areas and vmap blocks.  Entries are :data:`vmapsim.RESERVED`, or
the busy :class:`~vmapsim.VmapArea` itself when the tree also serves as the
busy index (stage 7 on).  Free space is the NULL gaps; the tree's gap
bookkeeping lets ``mas_empty_area()`` find the lowest fit in one descent.

Index 0 and ``ULONG_MAX`` are never free (``vmap_init_free_space()`` hands
out ``[1, ULONG_MAX)``): the tree stores :data:`RESERVED` at ``[0, 0]`` and
``[ULONG_MAX, ULONG_MAX]`` when it is built (two stores, counted, never
failed by fault injection), so every gap lies inside ``[1, ULONG_MAX)`` and
no search needs clipping.  These two
sentinels are left out of :meth:`MapleOccupiedIndex.__iter__`; :meth:`gaps`
never sees them because they are not NULL.

:class:`OccupiedBusyView` (``busy=maple-occupied``) is one vmap node's busy
index over that shared tree: a busy area is the tree's entry over its range;
unlinking it leaves :data:`RESERVED` behind (the range stays in use, lazily
freed, until the purge releases it).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator
from typing import Any

from vmapsim import (
    OVERLAP_WARNING,
    PAGE_SIZE,
    RESERVED,
    ULONG_MAX,
    ComponentContext,
    ComponentError,
    Counters,
    FaultInjector,
    InvariantError,
    VmapArea,
    VmapArgumentError,
    VmapTypeError,
)

from .errors import MapleError
from .tree import MapleTree
from .walk import descend

__all__ = ["MapleOccupiedIndex", "OccupiedBusyView", "make_occupied", "make_occupied_or_busy"]


#: the allocator's ``vmap_zone_size`` with several vmap nodes (16 pages)
_DEFAULT_ZONE = 16 * PAGE_SIZE


def _ulong(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise VmapTypeError(name, "an int", value)
    if value < 0 or value > ULONG_MAX:
        raise VmapArgumentError(name, "must be in [0, 2**64 - 1]", value)
    return value


def _range(start: object, end: object) -> tuple[int, int]:
    """``[start, end)`` must be a non-empty range inside ``[1, ULONG_MAX)``."""
    if type(start) is int and type(end) is int and 1 <= start < end <= ULONG_MAX:
        return start, end  # the flow's calls: no need to say which rule failed
    s = _ulong("start", start)
    e = _ulong("end", end)
    if s < 1:
        raise VmapArgumentError("start", "must be >= 1 (index 0 is never free)", s)
    if e > ULONG_MAX:  # pragma: no cover - _ulong bounds it
        raise VmapArgumentError("end", "must be <= ULONG_MAX", e)
    if s >= e:
        raise VmapArgumentError("start", f"must be below end ({e:#x})", s)
    return s, e


class MapleOccupiedIndex:
    """The allocation-range maple tree of in-use ranges (``vmapsim.OccupiedIndex``).

    ``MapleOccupiedIndex(counters, warn, faults=None, name="occupied")``.
    Every operation counts its tree work (walks, stores, nodes, lines) in
    ``counters`` through the maple tree's cost model.
    """

    __slots__ = ("_fit", "_search_mas", "counters", "name", "tree", "warn")

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        faults: FaultInjector | None = None,
        name: str = "occupied",
    ) -> None:
        """``mt_init_flags(&tree, MT_FLAGS_ALLOC_RANGE)`` and the two sentinels."""
        self.tree = MapleTree(alloc_range=True, counters=counters)
        self.counters = counters
        self.warn = warn
        self.name = name
        #: the state the last successful search left on its gap (see fit_state)
        self._fit: Any = None
        #: the state searches reuse (a fresh one while the last fit is unclaimed)
        self._search_mas = self.tree.state()
        # the sentinels are the model's way of keeping 0 and ULONG_MAX out of
        # every gap (an index that clipped its searches would store nothing):
        # their stores are left out of fault injection, so that building the
        # index does not use up a failslab budget (``times``) meant for the
        # operations that follow
        self.tree.store_range(0, 0, RESERVED, can_block=True)
        self.tree.store_range(ULONG_MAX, ULONG_MAX, RESERVED, can_block=True)
        self.tree.allocator.faults = faults

    # ------------------------------------------------------------------
    # the search

    def find_lowest_fit(
        self, size: int, align: int, vstart: int, vend: int, adjust_search_size: bool
    ) -> int:
        """``__alloc_vmap_area()`` over the gaps, with ``mas_empty_area()``.

        Asks ``mas_empty_area(lo, vend - 1, length)`` with ``length = size +
        align - 1`` when ``adjust_search_size`` (the kernel's over-ask) else
        ``size``, starting at ``lo = vstart``.  The fit starts at ``g`` (the
        gap's start, or ``lo`` inside it); ``nva = ALIGN(g, align)``.  With
        the over-ask, or when ``g`` is already aligned, ``[nva, nva + size)``
        lies inside the ``length`` free indices found, so ``nva`` is the
        answer.  Otherwise one ``mas_walk(g)`` reads the gap's end; if the
        aligned range does not fit, the search continues from the next gap
        (``lo`` = the gap's end + 1: the entry there is skipped), as
        ``unmapped_area()`` retries its ``mas_empty_area``.  When the over-ask
        finds nothing (a window narrower than ``size + align - 1``, or no gap
        that long), the exact search for ``size`` runs, so a request fails
        only when no aligned fit exists at all.  ``-ENOENT`` when no gap holds
        it.  Never changes the tree.

        For ``align <= PAGE_SIZE`` (no over-ask) the result is the rb-tree's
        placement: the lowest aligned ``nva >= vstart`` with ``[nva, nva +
        size)`` free and ``nva + size <= vend``.
        """
        hi = vend - 1 if vend <= ULONG_MAX else ULONG_MAX - 1
        if adjust_search_size:
            nva = self._search(size, align, vstart, hi, size + align - 1, True)
            if nva != -errno.ENOENT:
                return nva
            # nothing holds the over-ask (a window narrower than size + align -
            # 1, or fragmented space): the exact, gap-by-gap search decides
        return self._search(size, align, vstart, hi, size, False)

    def _search(self, size: int, align: int, lo: int, hi: int, length: int, overask: bool) -> int:
        """One ``mas_empty_area`` search loop for ``length`` indices in ``[lo, hi]``."""
        am1 = align - 1
        if self._fit is self._search_mas:  # the last fit is still held: keep it
            mas = self.tree.state()
        else:
            mas = self._search_mas = self._search_mas.reuse(0)
        while True:
            if lo > hi or hi - lo + 1 < length:
                return -errno.ENOENT
            try:
                mas.empty_area(lo, hi, length)
            except MapleError as exc:
                if exc.errno != errno.EBUSY:  # pragma: no cover - bounds checked above
                    raise
                return -errno.ENOENT
            g = mas.index
            nva = (g + am1) & ~am1
            if nva + size - 1 > hi:
                return -errno.ENOENT  # higher gaps only align higher
            if nva == g or overask:
                self._fit = mas
                return nva
            # the aligned start moved: does the range still fit this gap?
            mas.set(g)
            mas.walk()
            if nva + size - 1 <= mas.last:
                self._fit = mas
                return nva
            lo = mas.last + 1

    def fit_state(self, start: int, end: int) -> Any:
        """The search's state, if it still sits on the NULL slot holding
        ``[start, end)`` (nothing written since): the kernel's allocation path
        stores through the ``ma_state`` its ``mas_empty_area()`` left on the
        leaf, without a second walk.  The state is handed out once; None
        otherwise (the caller walks)."""
        mas = self._fit
        if mas is None:
            return None
        self._fit = None
        node = mas.node
        if node is None or mas.seq != self.tree.seq or node.slots[mas.offset] is not None:
            return None
        off = mas.offset
        piv = node.pivots
        lo = piv[off - 1] + 1 if off else mas.min
        if start < lo or end - 1 > piv[off]:
            return None
        mas.index = start
        mas.last = end - 1
        return mas

    # ------------------------------------------------------------------
    # changing what is occupied

    def occupy(self, start: int, end: int, can_block: bool) -> int:
        """Mark the free range ``[start, end)`` in use: ``mtree_insert_range(start,
        end - 1, RESERVED, gfp)``.

        0; ``-EEXIST`` (the kernel's overlap warning logged, nothing changed)
        if any index of it is in use; ``-ENOMEM`` if the nodes could not be
        allocated (``can_block`` False under failslab; nothing changed).
        """
        s, e = _range(start, end)
        try:
            mas = self.fit_state(s, e)
            if mas is not None:  # right after the search: no second walk
                mas.insert(RESERVED, bool(can_block))
            else:
                self.tree.insert_range(s, e - 1, RESERVED, can_block=bool(can_block))
        except MapleError as exc:
            if exc.errno == errno.ENOMEM:
                return -errno.ENOMEM
            if exc.errno != errno.EEXIST:  # pragma: no cover - arguments checked
                raise
            self._warn_overlap(s, e)
            return -errno.EEXIST
        return 0

    def _warn_overlap(self, s: int, e: int) -> None:
        """Log the kernel's overlap warning for ``[s, e)`` and the first range inside."""
        other = self.tree.find(s, e - 1)
        o_start, o_end = (other[0], other[1] + 1) if other else (0, 0)
        self.warn(OVERLAP_WARNING % (s, e, o_start, o_end))

    def release(self, start: int, end: int) -> None:
        """Give ``[start, end)`` back: ``mtree_store_range(start, end - 1, NULL)``.

        The NULL store merges with the gaps around it (that is all the
        coalescing there is).  Its nodes are obtained as ``mtree_erase()``
        does (``mas_nomem`` with GFP_KERNEL), so it cannot fail.
        """
        s, e = _range(start, end)
        self.tree.store_range(s, e - 1, None, can_block=True)

    # ------------------------------------------------------------------
    # reading the gaps

    def gap_enclosing(self, addr: int) -> tuple[int, int] | None:
        """The whole gap ``[start, end)`` holding ``addr`` (one ``mas_walk``), or
        None if ``addr`` is in use.  A NULL slot is a maximal gap (the tree
        never leaves two NULL slots side by side)."""
        a = _ulong("addr", addr)
        mas = self.tree.state(a)
        if mas.walk() is not None:
            return None
        return mas.index, mas.last + 1

    def prev_gap(self, below: int) -> tuple[int, int] | None:
        """The highest gap ``[start, end)`` with ``start < below``, its end clipped to
        ``below``: ``mas_empty_area_rev(1, below - 1, 1)`` then one ``mas_walk``
        for the gap's start (``pcpu_get_vm_areas()`` walks down this way)."""
        b = _ulong("below", below)
        if b <= 1:
            return None
        mas = self.tree.state()
        try:
            mas.empty_area_rev(1, b - 1, 1)
        except MapleError as exc:
            if exc.errno != errno.EBUSY:  # pragma: no cover - bounds checked above
                raise
            return None
        top = mas.last
        mas.set(top)
        mas.walk()
        return mas.index, top + 1

    def gaps(self) -> Iterator[tuple[int, int]]:
        """Every gap ``[start, end)``, in address order (all inside ``[1, ULONG_MAX)``)."""
        for first, last, entry in self.tree.ranges(include_null=True):
            if entry is None:
                yield first, last + 1

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        """Every in-use range as ``(start, end, entry)`` in address order, the
        sentinels at 0 and ``ULONG_MAX`` left out."""
        for first, last, entry in self.tree.ranges():
            if first == 0 or last == ULONG_MAX:
                continue
            yield first, last + 1, entry

    def check(self) -> None:
        """The tree's own rules, both sentinels in place, and every entry
        :data:`RESERVED` or a :class:`VmapArea` spanning exactly its range."""
        tree = self.tree
        tree.check()
        if tree.load(0) is not RESERVED or tree.load(ULONG_MAX) is not RESERVED:
            raise InvariantError(f"{self.name}: the sentinels at 0 and ULONG_MAX are gone")
        for first, last, entry in tree.ranges():
            if entry is RESERVED:
                continue
            if not isinstance(entry, VmapArea):
                raise InvariantError(f"{self.name}: range {first:#x}-{last:#x} holds {entry!r}")
            if (first, last + 1) != (entry.va_start, entry.va_end):
                raise InvariantError(
                    f"{self.name}: range {first:#x}-{last:#x} holds {entry!r}, not its own area"
                )

    def __repr__(self) -> str:
        return f"MapleOccupiedIndex({self.name}, {self.tree!r})"


class OccupiedBusyView:
    """One vmap node's busy index over the shared occupied tree (``vmapsim.BusyIndex``).

    A busy area of this node is the tree's entry over ``[va_start, va_end -
    1]``; the node of an area is ``(va_start // vmap_zone_size) %
    nr_vmap_nodes`` (``addr_to_node_id()``).  Feature switches (from the
    stage's ``params``): ``maple_publish == "prealloc"`` publishes with
    ``mas_preallocate()`` + ``mas_store_prealloc()`` (else ``mas_store_gfp()``
    with the request's gfp); ``busy_single_erase`` makes
    :meth:`find_unlink` one walk instead of two.
    """

    __slots__ = (
        "_mas",
        "_n",
        "name",
        "node_id",
        "nr",
        "occupied",
        "prealloc",
        "single_erase",
        "tree",
        "zone",
    )

    #: the flow's cue (``_busy_occupies``): publishing here also marks the range
    #: in use, so the flow does not ``occupy()`` it first
    occupies = True

    def __init__(
        self,
        occupied: MapleOccupiedIndex,
        node_id: int,
        nr_vmap_nodes: int,
        vmap_zone_size: int,
        params: Any = None,
    ) -> None:
        params = params or {}
        self.occupied = occupied
        self.tree = occupied.tree
        self.node_id = node_id
        self.nr = nr_vmap_nodes
        self.zone = vmap_zone_size
        self.prealloc = params.get("maple_publish") == "prealloc"
        self.single_erase = bool(params.get("busy_single_erase", False))
        self.name = f"busy[{node_id}]"
        self._n = 0
        #: the state publish/unlink reuse (one operation at a time)
        self._mas = self.tree.state()

    def _mine(self, entry: Any) -> bool:
        """Is ``entry`` a busy area of this view's node?"""
        return (
            isinstance(entry, VmapArea) and (entry.va_start // self.zone) % self.nr == self.node_id
        )

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Make ``va`` busy: one store of ``va`` over its range.

        The range must be one gap's part, or exactly one :data:`RESERVED`
        range (a pooled area becoming busy again).  The store's own
        ``mas_walk`` checks that; the store then writes through the same
        state (no second walk): ``mas_store_gfp(va, gfp)``, or with
        ``maple_publish="prealloc"`` ``mas_preallocate(va, gfp)`` +
        ``mas_store_prealloc(va)``.  0; ``-EEXIST`` (overlap warning logged);
        ``-ENOMEM`` when the nodes could not be had (``can_block`` False under
        failslab).  Nothing changes on failure.
        """
        s = va.va_start
        last = va.va_end - 1
        mas = self.occupied.fit_state(s, last + 1)
        if mas is None:  # not straight after the search (a pooled area, a retry)
            mas = self._mas = self._mas.reuse(s)
            cur = mas.walk()
            if not (
                (cur is None and mas.last >= last)
                or (cur is RESERVED and mas.index == s and mas.last == last)
            ):
                self.occupied._warn_overlap(s, last + 1)
                return -errno.EEXIST
            mas.index = s  # keep the walk's position: the store does not walk again
            mas.last = last
        try:
            if self.prealloc:
                mas.preallocate(va, bool(can_block))
                mas.store_prealloc(va)
            else:
                mas.store_gfp(va, bool(can_block))
        except MapleError as exc:
            if exc.errno != errno.ENOMEM:  # pragma: no cover - the range was checked
                raise
            return -errno.ENOMEM
        self._n += 1
        return 0

    def insert(self, va: VmapArea) -> bool:
        """``insert_vmap_area()``: :meth:`publish` with GFP_KERNEL; False on overlap."""
        return self.publish(va, True) == 0

    def find(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area()``: ``mtree_load(addr)``, if it is this node's busy area."""
        entry = self.tree.load(addr)
        return entry if self._mine(entry) else None

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va()``: ``va``'s range stays in use as :data:`RESERVED` (one walk,
        then an exact-fit store through the same state, which allocates nothing)."""
        mas = self._mas = self._mas.reuse(va.va_start)
        if mas.walk() is not va:
            return
        mas.store(RESERVED)
        self._n -= 1

    def find_unlink(self, addr: int) -> VmapArea | None:
        """``find_unlink_vmap_area()`` for this node: the busy area holding ``addr``
        becomes :data:`RESERVED`.

        ``busy_single_erase`` False: a find walk (``mtree_load``), then a store
        that walks again (``mtree_store_range``): 2 walks.  True: one
        ``mas_walk`` reads the entry and the exact-fit store goes through the
        same state: 1 walk.  Neither store allocates a node.
        """
        if not self.single_erase:
            tree = self.tree
            if tree.root is None or type(addr) is not int or not 0 <= addr <= ULONG_MAX:
                va = self.find(addr)
                if va is None:
                    return None
                tree.store_range(va.va_start, va.va_end - 1, RESERVED)
            else:
                # The find's walk (mtree_load, counted as such) ...
                c = tree.counters
                w, n, k, ln = c.walks, c.nodes_visited, c.comparisons, c.line_accesses
                pos = descend(tree, addr)
                entry = pos[0].slots[pos[1]]
                if not self._mine(entry):
                    return None
                va = entry
                if va.va_start != addr:
                    tree.store_range(va.va_start, va.va_end - 1, RESERVED)
                else:
                    # ... and the store's, to the same index of the same tree: the
                    # same nodes and costs, counted again, the position reused.
                    c.walks += c.walks - w
                    c.nodes_visited += c.nodes_visited - n
                    c.comparisons += c.comparisons - k
                    c.line_accesses += c.line_accesses - ln  # raw; distinct lines: once
                    tree.store_range_walked(addr, va.va_end - 1, RESERVED, pos)
            self._n -= 1
            return va
        mas = self._mas = self._mas.reuse(addr)
        entry = mas.walk()
        if not self._mine(entry):
            return None
        mas.store(RESERVED)
        self._n -= 1
        return entry

    def __iter__(self) -> Iterator[VmapArea]:
        """This node's busy areas, in address order."""
        mine = self._mine
        for _first, _last, entry in self.tree:
            if mine(entry):
                yield entry

    def __len__(self) -> int:
        return self._n

    def check(self) -> None:
        """Every busy area of this node spans exactly its range; the count matches."""
        n = 0
        for first, last, entry in self.tree:
            if not self._mine(entry):
                continue
            n += 1
            if (first, last + 1) != (entry.va_start, entry.va_end):
                raise InvariantError(
                    f"{self.name}: range {first:#x}-{last:#x} holds {entry!r}, not its own area"
                )
        if n != self._n:
            raise InvariantError(f"{self.name}: {n} busy areas but a count of {self._n}")

    def __repr__(self) -> str:
        return f"OccupiedBusyView({self.name}, {self._n} busy)"


def make_occupied(ctx: ComponentContext) -> MapleOccupiedIndex:
    """Factory for ``occupied=maple``: one tree per allocator, published as
    ``ctx.shared["occupied"]``."""
    occ = MapleOccupiedIndex(ctx.counters, ctx.warn, ctx.faults, "occupied")
    occ.tree.allocator.might_alloc = ctx.might_alloc
    ctx.shared["occupied"] = occ
    return occ


def make_occupied_or_busy(ctx: ComponentContext) -> Any:
    """Factory for ``maple-occupied``: the occupied tree for role ``occupied``,
    one node's :class:`OccupiedBusyView` of it for role ``busy``."""
    if ctx.role != "busy":
        return make_occupied(ctx)
    occ = ctx.shared.get("occupied")
    if not isinstance(occ, MapleOccupiedIndex):
        raise ComponentError(
            "busy=maple-occupied needs occupied=maple (or maple-occupied) built first for "
            f"the same allocator (ctx.shared['occupied'] is {type(occ).__name__})"
        )
    zone = ctx.params.get("vmap_zone_size")
    if zone is None:
        # the allocator's vmap_init_nodes(): 16-page zones with several nodes
        zone = _DEFAULT_ZONE if ctx.nr_vmap_nodes > 1 else 1
    return OccupiedBusyView(occ, ctx.node_id or 0, ctx.nr_vmap_nodes, zone, ctx.params)
