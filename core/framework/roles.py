"""The roles a stage fills with components, as :class:`typing.Protocol` classes.

The allocator flow (:mod:`vmapsim.kernel.allocator`) talks to its data structures
only through these methods.  A component may fill more than one role.
Components count their own work in the shared :class:`~vmapsim.Counters`
they receive at build time; the flow counts locks.

All ranges are the kernel's: ``va_start`` inclusive, ``va_end`` exclusive.
Components return the :class:`VmapArea` objects they were given (the flow
edits them in place).  Where a method refuses an overlapping range it calls
``ctx.warn`` with ``find_va_links()``'s text, ``"vmalloc bug: 0x%x-0x%x
overlaps with 0x%x-0x%x" % (new_start, new_end, held_start, held_end)``, and
changes nothing.  ``check()`` raises :class:`~vmapsim.InvariantError`.  The
author's guide, with the counters to bump and the conformance kit
(:mod:`vmapsim.testing`), is docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

from vmapsim.kernel.area import VmapArea

#: role name -> the hook that registers components for it
ROLES: dict[str, str] = {
    "free": "vmapsim_index_components",
    "occupied": "vmapsim_index_components",
    "busy": "vmapsim_index_components",
    "lazy": "vmapsim_lazy_purge_components",
    "coalesce": "vmapsim_coalescing_components",
    "overlay": "vmapsim_overlay_components",
}

#: ``find_va_links()``'s WARN text, which every index logs when it refuses an
#: overlapping range: ``OVERLAP_WARNING % (new_start, new_end, held_start,
#: held_end)`` (printf ``%lx`` is Python's ``%x``)
OVERLAP_WARNING = "vmalloc bug: 0x%x-0x%x overlaps with 0x%x-0x%x"

#: roles the flow instantiates once per vmap node (the rest are global)
PER_NODE_ROLES = frozenset({"busy", "lazy"})

#: the free-space roles: a stage fills at least one of them.  ``free`` holds
#: free blocks (``va_clip`` cuts them); ``occupied`` holds every range that is
#: not free, so that free space is its gaps.  With both, ``occupied`` answers
#: the search and ``free`` is kept in step (stages 2-6 of the maple series).
FREE_SPACE_ROLES = frozenset({"free", "occupied"})


#: what :meth:`OccupiedIndex.occupy` stores for a range that is in use but is
#: no busy area (lazy, pooled, or any range of a tree that is not also the
#: busy index): the model's ``XA_ZERO_ENTRY``-style reserved marker.
class _Reserved:
    __slots__ = ()

    def __repr__(self) -> str:
        return "RESERVED"


RESERVED = _Reserved()


@runtime_checkable
class FreeIndex(Protocol):
    """The free-space index: ``free_vmap_area_root`` + ``free_vmap_area_list``.

    Holds free :class:`VmapArea` blocks, address-ordered and non-overlapping.
    The trace rule: where the kernel's answer is fixed (``align <= PAGE_SIZE``
    or an exact-fit window) a free index gives the same allocation trace as
    the stage's own; above that, only the bounds of
    :meth:`find_vmap_lowest_match` apply.  Any free index can be coalesced by
    ``coalesce=generic``.
    """

    def find_vmap_lowest_match(
        self, size: int, align: int, vstart: int, adjust_search_size: bool
    ) -> VmapArea | None:
        """``find_vmap_lowest_match()``: a held block ``is_within_this_va()``
        accepts (``nva = ALIGN(max(va_start, vstart), align)`` mod 2**64 with
        ``nva >= vstart`` and ``nva + size <= va_end``, below 2**64).  Without
        ``adjust_search_size``: exactly the lowest such block.  With it: any
        accepted block at or below the lowest accepted block of at least
        ``size + align - 1`` bytes, None only if there is none.  Counts
        its work (one ``walks`` per search); changes nothing."""
        ...

    def insert(self, va: VmapArea, near: VmapArea | None = None) -> bool:
        """``insert_vmap_area_augment()``: link a free block (no merging).

        ``near`` is a block adjacent to ``va`` from which the link search may
        start (the kernel's ``from``).  Returns False, logging the kernel's
        overlap warning and changing nothing, if ``va`` overlaps a block."""
        ...

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va_augment()``: remove a block from the tree and the list."""
        ...

    def propagate(self, va: VmapArea) -> None:
        """``augment_tree_propagate_from()``: ``va``'s bounds changed in place."""
        ...

    def next_block(self, va: VmapArea) -> VmapArea | None:
        """The next block in address order (``list_next_entry``), or None."""
        ...

    def prev_block(self, va: VmapArea) -> VmapArea | None:
        """The previous block in address order (``list_prev_entry``), or None."""
        ...

    def first(self) -> VmapArea | None:
        """The lowest block, or None when empty."""
        ...

    def last(self) -> VmapArea | None:
        """The highest block, or None when empty."""
        ...

    def find_enclosing(self, addr: int) -> VmapArea | None:
        """The block with ``va_start <= addr < va_end`` (``find_vmap_area_exfree``)."""
        ...

    def __iter__(self) -> Iterator[VmapArea]: ...

    def __len__(self) -> int: ...

    def check(self) -> None:
        """Raise :class:`~vmapsim.InvariantError` if the structure is inconsistent."""
        ...


@runtime_checkable
class Coalescer(Protocol):
    """Releasing a range into the free index with coalescing."""

    def merge_or_add(self, va: VmapArea) -> VmapArea | None:
        """``merge_or_add_vmap_area_augment()``: merge ``va`` with its free
        neighbours or link it; return the resulting free block, or None (with
        the kernel's overlap warning logged and nothing changed) on overlap.
        Each area merged away is appended to the coalescer's ``dropped`` list
        (the flow frees those objects)."""
        ...


@runtime_checkable
class OccupiedIndex(Protocol):
    """The in-use range index whose gaps are the free space (the series' allocation
    maple tree, ``MT_FLAGS_ALLOC_RANGE``).

    Holds every range of ``[1, ULONG_MAX)`` that is not free: busy, lazy,
    pooled areas and vmap blocks.  A stage that fills ``occupied`` finds free
    space with :meth:`find_lowest_fit` (``mas_empty_area``); releasing a range
    (:meth:`release`) is all the coalescing there is.  Entries are
    :data:`RESERVED`, or the busy :class:`VmapArea` itself when the same
    component also fills the ``busy`` role (stage 7 on).
    """

    def find_lowest_fit(
        self, size: int, align: int, vstart: int, vend: int, adjust_search_size: bool
    ) -> int:
        """``__alloc_vmap_area()`` over the gaps: the lowest ``nva`` aligned to
        ``align`` with ``vstart <= nva`` and ``[nva, nva + size)`` inside one gap
        and ``nva + size <= vend``; ``-ENOENT`` if there is none.  With
        ``adjust_search_size`` the search asks for ``size + align - 1`` (the
        kernel's over-ask) and aligns inside the gap it finds, falling back to
        the exact search when nothing holds the over-ask; otherwise it asks
        for ``size`` and moves on to the next gap when the aligned range does
        not fit.  Does not change the index."""
        ...

    def occupy(self, start: int, end: int, can_block: bool) -> int:
        """Mark the free range ``[start, end)`` in use (store :data:`RESERVED`).
        0; ``-EEXIST`` (overlap warning logged, nothing changed); ``-ENOMEM``
        (its nodes could not be allocated, nothing changed)."""
        ...

    def release(self, start: int, end: int) -> None:
        """Give the in-use range ``[start, end)`` back: it becomes (part of) a gap."""
        ...

    def gap_enclosing(self, addr: int) -> tuple[int, int] | None:
        """The whole free gap ``[start, end)`` holding ``addr``, or None if in use."""
        ...

    def prev_gap(self, below: int) -> tuple[int, int] | None:
        """The highest free gap ``[start, end)`` with ``start < below``, clipped to
        end at or below ``below`` (``mas_empty_area_rev`` order), or None."""
        ...

    def gaps(self) -> Iterator[tuple[int, int]]:
        """Every free gap ``[start, end)`` inside ``[1, ULONG_MAX)``, in address order."""
        ...

    def __iter__(self) -> Iterator[tuple[int, int, object]]:
        """Every in-use range as ``(start, end, entry)``, in address order."""
        ...

    def check(self) -> None: ...


@runtime_checkable
class BusyIndex(Protocol):
    """One vmap node's busy tree: ``vn->busy`` (root + sorted list)."""

    def insert(self, va: VmapArea) -> bool:
        """``insert_vmap_area()``; False (warning logged, no change) on overlap."""
        ...

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Publish a fresh (or pooled) busy area on the allocation path: 0;
        ``-EEXIST`` on overlap (warning logged, no change); ``-ENOMEM`` when the
        index could not allocate its nodes under this request (nothing
        changed).  An index that allocates nothing returns what
        :meth:`insert` says."""
        ...

    def find(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area()``: the area with ``va_start <= addr < va_end``."""
        ...

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va()``; afterwards ``va.list_next is None``."""
        ...

    def find_unlink(self, addr: int) -> VmapArea | None:
        """Find the area containing ``addr`` and unlink it (one locked pass)."""
        ...

    def __iter__(self) -> Iterator[VmapArea]: ...

    def __len__(self) -> int: ...

    def check(self) -> None: ...


@runtime_checkable
class LazyQueue(Protocol):
    """One vmap node's lazily freed areas: ``vn->lazy``."""

    def add(self, va: VmapArea) -> bool:
        """Queue an area (``insert_vmap_area`` into the lazy tree); False on overlap
        (a queue without an index cannot tell one and returns True)."""
        ...

    def detach_all(self) -> list[VmapArea]:
        """Take every queued area, leaving the queue empty (``list_replace_init``
        of the lazy list, root reset); each returned area is on no list
        (``list_next is None``).

        In the queue's own order: address order for an indexed queue (rb,
        maple), the order queued for a bare ``list_head`` (stage 8 on).  The
        purge sorts each node's list by address itself, so no order is
        required here; ``__iter__`` still yields address order."""
        ...

    def __iter__(self) -> Iterator[VmapArea]: ...

    def __len__(self) -> int: ...

    def check(self) -> None: ...


@runtime_checkable
class Overlay(Protocol):
    """The per-CPU bump path of patches 10-12 in front of the allocator.

    ``mode`` is the patch (10, 11 or 12).  The flow binds it once
    (:meth:`attach`); ``alloc_vmap_area()`` asks :meth:`eligible`, then
    :meth:`bump`, and on a miss reserves a chunk (:meth:`new_chunk`, through
    the flow's ``__alloc_vmap_area()``) and :meth:`install` it.
    ``find_vmap_area()`` asks :meth:`lookup`; ``find_unlink_vmap_area()``
    :meth:`unlink` (patches 11-12, which may give a chunk's range back through
    the flow's release); at patch 10 the busy walk lands on a chunk's stand-in
    busy area (:meth:`owns`) and :meth:`resolve` / :meth:`free10` finish.
    Chunks whose range is reserved are busy areas (:meth:`__iter__`);
    :meth:`check` accounts for the areas inside them.
    """

    mode: int

    def attach(
        self,
        reserve: Callable[[int, int, bool], VmapArea | None],
        release: Callable[[VmapArea], None],
        *,
        nr_cpus: int,
        lazy_max_pages: int,
        debug: bool = False,
    ) -> None:
        """Bind ``reserve(size, cpu, can_block)`` (a chunk's range as a busy
        area without ``vm_struct``, or None) and ``release(chunk_area)`` (the
        range back to the allocator at once)."""
        ...

    def eligible(self, size: int, align: int, vstart: int, vend: int) -> bool:
        """Whether the bump path takes a request of this shape."""
        ...

    def bump(self, va: VmapArea, size: int, align: int, cpu: int, now: int) -> bool:
        """Bump-allocate into ``va`` from ``cpu``'s chunk: True, or False on a miss."""
        ...

    def new_chunk(self, cpu: int, can_block: bool) -> Any:
        """A fresh chunk for ``cpu`` (its range reserved), or None."""
        ...

    def install(self, chunk: Any, cpu: int) -> None:
        """Make ``chunk`` ``cpu``'s current chunk."""
        ...

    def lookup(self, addr: int, cpu: int | None = None, now: int = 0) -> VmapArea | None:
        """The bump area holding ``addr`` without a tree walk, or None."""
        ...

    def unlink(self, addr: int, cpu: int, now: int, gp_end: int) -> VmapArea | None:
        """Take the bump area starting at ``addr`` out (may retire its chunk)."""
        ...

    def owns(self, va: VmapArea) -> bool:
        """Whether the busy area ``va`` stands for a chunk's range."""
        ...

    def resolve(self, chunk_va: VmapArea, addr: int) -> VmapArea | None:
        """Patch 10: the bump area in the chunk of ``chunk_va`` holding ``addr``."""
        ...

    def free10(self, chunk_va: VmapArea, va: VmapArea) -> None:
        """Patch 10: bump area ``va`` of that chunk is freed."""
        ...

    def reclaimable(self) -> int:
        """Chunks :meth:`reclaim` would give back now."""
        ...

    def reclaim(self) -> int:
        """Give back what memory pressure may take; how many."""
        ...

    def dirty_span(self) -> tuple[int, int] | None:
        """The range over areas freed since the last call (not yet flushed), or None."""
        ...

    def areas(self) -> Iterator[VmapArea]:
        """The live bump areas, in address order."""
        ...

    def __iter__(self) -> Iterator[VmapArea]:
        """The chunks' busy areas, in address order."""
        ...

    def check(self) -> None: ...


ROLE_PROTOCOLS: dict[str, type] = {
    "free": FreeIndex,
    "occupied": OccupiedIndex,
    "busy": BusyIndex,
    "lazy": LazyQueue,
    "coalesce": Coalescer,
    "overlay": Overlay,
}
