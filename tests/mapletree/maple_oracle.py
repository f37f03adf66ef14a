"""An obviously-correct interval map used as the maple tree oracle.

Keeps the non-NULL ranges as a sorted list of ``(first, last, entry)``;
everything not covered is NULL (one coalesced gap between two entries).
Semantics follow the kernel's maple tree (reference §2): stores overwrite
and split neighbours, erase clears the whole range holding an index, gap
searches look for ``size`` NULL indices inside ``[min, max]``.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

ULONG_MAX = (1 << 64) - 1


class IntervalMap:
    """Sorted, non-overlapping ``(first, last, entry)`` ranges."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int, Any]] = []

    def _find(self, index: int) -> int:
        """Position of the item holding ``index``, or -1."""
        i = bisect_right(self.items, index, key=lambda it: it[0]) - 1
        if i >= 0 and self.items[i][1] >= index:
            return i
        return -1

    def load(self, index: int) -> Any:
        i = self._find(index)
        return self.items[i][2] if i >= 0 else None

    def store(self, first: int, last: int, entry: Any) -> None:
        out = []
        for f, la, e in self.items:
            if la < first or f > last:
                out.append((f, la, e))
                continue
            if f < first:
                out.append((f, first - 1, e))
            if la > last:
                out.append((last + 1, la, e))
        if entry is not None:
            out.append((first, last, entry))
        out.sort(key=lambda it: it[0])
        self.items = out

    def is_free(self, first: int, last: int) -> bool:
        return all(la < first or f > last for f, la, _ in self.items)

    def range_at(self, index: int) -> tuple[int, int, Any]:
        """The slot holding ``index``: an entry's range or the whole gap."""
        i = self._find(index)
        if i >= 0:
            return self.items[i]
        lo = 0
        hi = ULONG_MAX
        for f, la, _ in self.items:
            if la < index:
                lo = la + 1
            elif f > index:
                hi = f - 1
                break
        return lo, hi, None

    def gaps(self) -> list[tuple[int, int]]:
        out = []
        nxt = 0
        for f, la, _ in self.items:
            if f > nxt:
                out.append((nxt, f - 1))
            nxt = la + 1
        if self.items == [] or self.items[-1][1] < ULONG_MAX:
            out.append((nxt, ULONG_MAX))
        return out

    def empty_area(self, lo: int, hi: int, size: int) -> int | None:
        for g0, g1 in self.gaps():
            s = max(g0, lo)
            e = min(g1, hi)
            if e >= s and e - s + 1 >= size:
                return s
        return None

    def empty_area_rev(self, lo: int, hi: int, size: int) -> int | None:
        for g0, g1 in reversed(self.gaps()):
            s = max(g0, lo)
            e = min(g1, hi)
            if e >= s and e - s + 1 >= size:
                return e - size + 1
        return None

    def next_entry(self, after: int, limit: int) -> tuple[int, int, Any] | None:
        """First entry starting after ``after`` whose start <= limit."""
        for it in self.items:
            if it[0] > after:
                return it if it[0] <= limit else None
        return None

    def prev_entry(self, before: int, limit: int) -> tuple[int, int, Any] | None:
        """Last entry ending before ``before`` whose end >= limit."""
        for it in reversed(self.items):
            if it[1] < before:
                return it if it[1] >= limit else None
        return None
