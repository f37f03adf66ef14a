"""Coalescing on release: ``merge_or_add_vmap_area_augment()``."""

from __future__ import annotations

from vmapsim import VmapArea

from .free import RbFreeIndex

__all__ = ["ListNeighbourCoalescer"]


class ListNeighbourCoalescer:
    """``__merge_or_add_vmap_area()`` (augmented) over an :class:`RbFreeIndex`.

    ``ListNeighbourCoalescer(free)``.  The neighbours come from the sorted
    free list; merged blocks are edited in place, never re-inserted.

    Dropped areas: when ``va`` (or the next block it first merged into) is
    absorbed by a neighbour, that :class:`VmapArea` is no longer in any
    structure and the kernel would ``kmem_cache_free`` it.  This component
    only appends it to :attr:`dropped`; the flow owns the objects, frees
    them (counting ``va_frees``) and clears the list.  ``merge_or_add``
    itself returns the resulting free block (None on overlap).

    Counts: two ``list_ops`` per call when the tree is not empty (reading
    the next and the previous sibling), plus the tree's and list's own work.
    """

    __slots__ = ("dropped", "free")

    def __init__(self, free: RbFreeIndex) -> None:
        self.free = free
        #: areas absorbed by a merge, for the flow to free and clear
        self.dropped: list[VmapArea] = []

    def merge_or_add(self, va: VmapArea) -> VmapArea | None:
        """``merge_or_add_vmap_area_augment()``: merge ``va`` with the free
        block that ends at ``va.va_start`` and/or the one that starts at
        ``va.va_end``, or link it; then propagate from the result.

        On overlap the kernel's warning is logged, nothing changes and None
        is returned.
        """
        free = self.free
        links = free.find_va_links(va)
        if links is None:
            return None
        parent, left = links
        if parent is None:
            # empty tree: get_va_next_sibling() gives NULL, straight to insert
            free.link_va(va, None, True)
            free.augment_tree_propagate_from(va)
            return va
        head = free.head
        # get_va_next_sibling(): parent itself for a left link, else its list next
        nxt = parent if left else parent.list_next
        merged = False
        if nxt is not head and nxt.va_start == va.va_end:
            nxt.va_start = va.va_start
            self.dropped.append(va)
            va = nxt
            merged = True
        prv = nxt.list_prev
        if prv is not head and prv.va_end == va.va_start:
            if merged:
                # take the grown next block out before growing prev, so the
                # erase sees consistent augmented values
                free.unlink_va(va)
            prv.va_end = va.va_end
            self.dropped.append(va)
            va = prv
            merged = True
        free.counters.list_ops += 2
        if not merged:
            free.link_va(va, parent, left)
        free.augment_tree_propagate_from(va)
        return va
