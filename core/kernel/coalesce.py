"""A coalescer any :class:`~vmapsim.FreeIndex` can use.

The baseline's ``list-neighbour`` coalescer (rbtree plugin) finds a released
range's neighbours with the same descent that links it, which needs the
rb-tree's internals.  :class:`NeighbourLookupCoalescer` needs only the
:class:`~vmapsim.FreeIndex` protocol: it finds the block touching
``va_start`` from below and the one touching ``va_end`` from above with two
``find_enclosing`` lookups, merges as ``__merge_or_add_vmap_area()`` does
(next first, then prev), and links the area when nothing touches.  Results
are the kernel's; the work counted is the index's two lookups instead of one
link search.  A third-party free index pairs with it as ``coalesce=generic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.framework.roles import OVERLAP_WARNING
from vmapsim.kernel.area import VmapArea

if TYPE_CHECKING:
    from vmapsim.framework.descriptors import ComponentContext
    from vmapsim.framework.roles import FreeIndex

__all__ = ["OVERLAP_WARNING", "NeighbourLookupCoalescer", "make_generic_coalescer"]


class NeighbourLookupCoalescer:
    """``merge_or_add_vmap_area_augment()`` over any free index.

    Areas merged away are appended to :attr:`dropped` for the flow to free.
    """

    __slots__ = ("dropped", "free", "warn")

    def __init__(self, free: FreeIndex, warn: object) -> None:
        self.free = free
        self.warn = warn
        self.dropped: list[VmapArea] = []

    def merge_or_add(self, va: VmapArea) -> VmapArea | None:
        """Merge ``va`` with the free blocks that touch it, or link it."""
        free = self.free
        start, end = va.va_start, va.va_end
        prev = free.find_enclosing(start - 1) if start else None
        nxt = free.find_enclosing(end)
        # find_va_links() meets any block intersecting [start, end): the ones
        # holding start - 1 and end, and whatever lies between them, which is
        # the block after prev (or before nxt).  With neither, insert() checks.
        if prev is not None:
            inner = free.next_block(prev)
        elif nxt is not None:
            inner = free.prev_block(nxt)
        else:
            inner = None
        for blk in (prev, inner, nxt):
            if blk is not None and blk.va_start < end and blk.va_end > start:
                self.warn(OVERLAP_WARNING % (start, end, blk.va_start, blk.va_end))  # type: ignore[operator]
                return None
        merged = False
        if nxt is not None and nxt.va_start == end:
            nxt.va_start = start
            self.dropped.append(va)
            va = nxt
            merged = True
        if prev is not None and prev.va_end == start:
            if merged:
                free.unlink(va)
            prev.va_end = va.va_end
            self.dropped.append(va)
            va = prev
            merged = True
        if merged:
            free.propagate(va)
        elif not free.insert(va):
            return None
        return va


def make_generic_coalescer(ctx: ComponentContext) -> NeighbourLookupCoalescer:
    """Factory: the coalescer over the free index built for the same allocator."""
    return NeighbourLookupCoalescer(ctx.shared["free"], ctx.warn)
