"""``vn->lazy`` as a bare ``list_head``: :class:`ListHeadLazyQueue`.

The areas are linked through their embedded list fields into a circular
list with a sentinel head (the kernel's ``LIST_HEAD``): an area on the list
always has a non-None ``list_next`` (the flow's "still on a list" check
relies on it), the last one points back at the head.

Order: the list keeps the order areas were queued, not address order.  The
:class:`vmapsim.LazyQueue` contract allows that: ``detach_all()`` returns
the queue's own order and ``__purge_vmap_area_lazy()`` puts each node's
purge list in address order itself (docs/plugins.md).  The lowest start and
highest end are tracked on append, so the purge range is known without an
index (:attr:`ListHeadLazyQueue.span`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from vmapsim import Counters, InvariantError, VmapArea

__all__ = ["ListHeadLazyQueue"]


class ListHeadLazyQueue:
    """One vmap node's lazy queue (``vmapsim.LazyQueue``) as a ``list_head``.

    ``add`` is ``list_add_tail()`` (one list operation, no tree work);
    ``detach_all`` is ``list_replace_init()`` (one splice).
    """

    __slots__ = ("_head", "_hi", "_lo", "_n", "counters", "name", "warn")

    #: the queue keeps no address order (see the module docstring)
    ordered = False

    def __init__(self, counters: Counters, warn: Callable[[str], None], name: str = "lazy") -> None:
        """``INIT_LIST_HEAD(&vn->lazy.head)``."""
        self.counters = counters
        self.warn = warn
        self.name = name
        head = VmapArea(0, 0)
        head.list_next = head.list_prev = head
        self._head = head
        self._n = 0
        self._lo = 0
        self._hi = 0

    def add(self, va: VmapArea) -> bool:
        """``list_add_tail(&va->list, &vn->lazy.head)``: O(1).  A list cannot tell
        an overlap, so it never refuses (the busy index already did)."""
        head = self._head
        tail = head.list_prev
        va.list_prev = tail
        va.list_next = head
        tail.list_next = va
        head.list_prev = va
        if self._n == 0:
            self._lo, self._hi = va.va_start, va.va_end
        else:
            if va.va_start < self._lo:
                self._lo = va.va_start
            if va.va_end > self._hi:
                self._hi = va.va_end
        self._n += 1
        self.counters.list_ops += 1
        return True

    @property
    def span(self) -> tuple[int, int] | None:
        """``(lowest va_start, highest va_end)`` of the queued areas, or None when
        empty: tracked on append, so the purge range needs no index."""
        return (self._lo, self._hi) if self._n else None

    def detach_all(self) -> list[VmapArea]:
        """``list_replace_init()``: take the whole list, in the order queued, and
        leave the head empty (one splice, one ``list_ops``).  The model hands the
        purge a Python list, so each area's links are cleared as it is taken
        (``LazyQueue.detach_all``: every returned area is on no list)."""
        head = self._head
        out: list[VmapArea] = []
        append = out.append
        va = head.list_next
        while va is not head:
            append(va)
            nxt = va.list_next
            va.list_next = va.list_prev = None
            va = nxt
        head.list_next = head.list_prev = head
        self._n = 0
        self.counters.list_ops += 1
        return out

    def _walk(self) -> Iterator[VmapArea]:
        head = self._head
        va = head.list_next
        while va is not head:
            yield va
            va = va.list_next

    def __iter__(self) -> Iterator[VmapArea]:
        """The queued areas in address order (for checks and reports: a copy is
        sorted; the purge path never calls this)."""
        return iter(sorted(self._walk(), key=_va_start))

    def __len__(self) -> int:
        return self._n

    def check(self) -> None:
        """The list is circular and consistent both ways, the count and the
        tracked span match, and no two queued areas overlap."""
        head = self._head
        n = 0
        prev = head
        va = head.list_next
        lo = hi = None
        while va is not head:
            if va is None or va.list_prev is not prev:
                raise InvariantError(f"{self.name}: list link broken after {prev!r}")
            n += 1
            if n > self._n:
                raise InvariantError(f"{self.name}: more areas on the list than its count")
            lo = va.va_start if lo is None else min(lo, va.va_start)
            hi = va.va_end if hi is None else max(hi, va.va_end)
            prev = va
            va = va.list_next
        if head.list_prev is not prev:
            raise InvariantError(f"{self.name}: head's prev is not the last area")
        if n != self._n:
            raise InvariantError(f"{self.name}: {n} areas on the list but a count of {self._n}")
        if n and (lo, hi) != (self._lo, self._hi):
            raise InvariantError(f"{self.name}: tracked span {self.span} but areas span {lo, hi}")
        end = 0
        for area in self:
            if area.va_start < end:
                raise InvariantError(f"{self.name}: {area!r} overlaps another queued area")
            end = area.va_end

    def __repr__(self) -> str:
        return f"ListHeadLazyQueue({self.name}, {self._n} queued)"


def _va_start(va: VmapArea) -> int:
    return va.va_start
