"""The per-CPU bump overlay: :class:`PcpuBumpOverlay` (``overlay=pcpu-bump``).

What the series' patches 10-12 add in front of the allocator, as we read the
cover letter ("per-CPU bump-allocator overlay layered on top of the migrated
indices for short-lived, page-aligned, common-case allocations"):

* **Chunks.**  Each CPU holds at most one current chunk: a busy
  ``vmap_area`` of :func:`derive_chunk_pages` pages, reserved through the
  flow's own ``alloc_vmap_area()`` (so it is in the occupied/busy maple tree
  like any busy area, with no ``vm_struct``), aligned to its size, from the
  top sixteenth of ``[VMALLOC_START, VMALLOC_END)`` (the chunk window).  The
  normal path searches lowest-first and reaches that window only when the
  space below it is full, so the overlay takes nothing from the space the
  other requests use.
* **Eligibility** (:meth:`PcpuBumpOverlay.eligible`): a vmalloc-family
  request (one with a ``vm_struct``, no ``VMAP_RAM``/``VMAP_BLOCK`` flags),
  in the default window ``[VMALLOC_START, VMALLOC_END)``, ``align <=
  PAGE_SIZE``, at most :data:`OVERLAY_MAX_PAGES` pages guard page included,
  and a blocking gfp (``__GFP_DIRECT_RECLAIM``: a chunk reservation may have
  to purge; atomic callers keep the normal path).
* **Bump allocation**: the next ``size`` bytes of the CPU's chunk; no tree
  walk.  A request that does not fit the rest of the chunk retires it
  (exhausted: it never hands out space again) and reserves a fresh one.  A
  freed sub-area's range is not reused: the bump pointer only moves up, so a
  freed range keeps its stale TLB entries until the whole chunk goes back
  through the lazy path (``free_vmap_area_noflush()``), when it is exhausted
  and its last area is freed, and the purge flushes it.
* **Lookup.**  Stage 10: a chunk-resident address is found through the busy
  tree (it lands on the chunk's area) and then inside the chunk
  (:meth:`resolve`: a binary search of the chunk's areas, which are in
  address order by construction).  Stage 11 (``pcpu_backptr``): each chunk
  keeps a back-pointer array, page index -> area (a
  :class:`~.ubsan.BoundsCheckedArray`), and :meth:`lookup` resolves an
  address with one mask, one hash probe and one array read; an address
  outside every reserved chunk is rejected in O(1) (outside the chunk window,
  or no chunk at its aligned base) and the flow falls back to the busy tree.
* **The modelled defect** (stage 11): the loop that fills the back-pointer
  array for a new area runs one index too far (``<=`` for ``<``).  The extra
  write lands on the next page's slot, which the next bump allocation
  overwrites, so it is harmless, except when the area ends exactly at the
  chunk's end: then it indexes one past the array, which UBSAN reports.
  Stage 12 (``pcpu_bounds_hardened``) bounds the loop and checks every index
  on the alloc and free paths before using it.

Memory pressure: :meth:`reclaim` gives back every chunk with no live area
(the failure path's reclaim and the shrinker call it); :meth:`dirty_span` is
the range of freed, not yet flushed sub-areas, which ``vm_unmap_aliases()``
flushes.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator
from typing import Any

from attrs import define, field

from vmapsim import (
    PAGE_SHIFT,
    PAGE_SIZE,
    ComponentContext,
    Counters,
    InvariantError,
    VmapArea,
)

from .ubsan import BoundsCheckedArray

__all__ = ["OVERLAY_MAX_PAGES", "PcpuBumpOverlay", "PcpuChunk", "derive_chunk_pages"]

#: the eligible size limit, guard page included: 16 pages (64 KiB with 4 KiB pages)
OVERLAY_MAX_PAGES = 16
#: a chunk holds at least this many maximal eligible requests (amortisation bound)
MIN_REQUESTS_PER_CHUNK = 32
#: and at most this many pages: its back-pointer array stays within 4 pages (16 KiB)
MAX_CHUNK_PAGES = 2048
#: the chunk window is the top 1/WINDOW_FRACTION of the vmalloc space
WINDOW_FRACTION = 16
#: bytes of one chunk's header (base, bump, live, freed, cpu, flags, array pointer)
CHUNK_HEADER_BYTES = 64


def derive_chunk_pages(
    nr_cpus: int, lazy_max_pages: int, max_pages: int = OVERLAY_MAX_PAGES
) -> int:
    """The chunk size in pages (derivation in docs/stages.md).

    A chunk returns to the lazy queue whole.  If every CPU returned one chunk
    at the same moment, that alone should use at most a quarter of the drain
    threshold: ``nr_cpus * chunk <= lazy_max_pages / 4``; the largest power of
    two below that bound (power of two: the O(1) lookup masks the address).
    It must also hold at least :data:`MIN_REQUESTS_PER_CHUNK` maximal eligible
    requests, so one reservation (a tree descent and a store) is spread over
    that many tree-free allocations; that lower bound wins above 16 CPUs.
    Capped at :data:`MAX_CHUNK_PAGES` (the back-pointer array's size).
    """
    bound = lazy_max_pages // (4 * max(nr_cpus, 1))
    pow2 = 1 << (bound.bit_length() - 1) if bound > 0 else 1
    return max(MIN_REQUESTS_PER_CHUNK * max_pages, min(pow2, MAX_CHUNK_PAGES))


@define(slots=True, eq=False, weakref_slot=False, repr=False)
class PcpuChunk:
    """One reserved chunk: the per-CPU cache of a free range.

    ``va`` is the chunk's busy area (``[base, end)``); ``bump`` the next free
    address; ``live`` the areas handed out and not freed; ``freed_pages``
    the pages of freed areas (not reusable until the chunk goes back).
    Stage 10 keeps the areas in address order (``starts``/``areas``, a freed
    one becomes None); stage 11 on keeps ``back``, page index -> area.
    """

    va: VmapArea
    cpu: int
    base: int
    end: int
    bump: int
    live: int = 0
    freed_pages: int = 0
    exhausted: bool = False
    starts: list[int] = field(factory=list)
    areas: list[VmapArea | None] = field(factory=list)
    back: BoundsCheckedArray | None = None

    def __repr__(self) -> str:
        return (
            f"PcpuChunk(cpu {self.cpu}, {self.base:#x}-{self.end:#x}, bump {self.bump:#x}, "
            f"live {self.live}{', exhausted' if self.exhausted else ''})"
        )


class PcpuBumpOverlay:
    """The ``overlay`` role (:class:`vmapsim.Overlay`): per-CPU bump chunks.

    Feature switches from the stage: ``pcpu_backptr`` (stage 11: the
    back-pointer array and the O(1) lookup, with the fill loop's defect),
    ``pcpu_bounds_hardened`` (stage 12: bounded loop, every index checked).
    """

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        params: Any,
    ) -> None:
        self.counters = counters
        self.warn = warn
        arch = params.get("arch")
        self.vmalloc_start = arch.vmalloc_start
        self.vmalloc_end = arch.vmalloc_end
        self.backptr = bool(params.get("pcpu_backptr", False))
        self.hardened = bool(params.get("pcpu_bounds_hardened", False))
        self.max_size = OVERLAY_MAX_PAGES * PAGE_SIZE
        self.debug = False
        self._reserve: Callable[..., VmapArea | None] | None = None
        self._release: Callable[[VmapArea], None] | None = None
        self.current: list[PcpuChunk | None] = []
        #: chunk base -> chunk (every reserved chunk, current or exhausted)
        self.table: dict[int, PcpuChunk] = {}
        self.chunk_pages = 0
        self.chunk_size = 0
        self._base_mask = 0
        self.window = (0, 0)
        self._dirty: tuple[int, int] | None = None

    # -- binding -----------------------------------------------------------
    def attach(
        self,
        reserve: Callable[[int, int, int, int, int, bool], VmapArea | None],
        release: Callable[[VmapArea], None],
        *,
        nr_cpus: int,
        lazy_max_pages: int,
        debug: bool = False,
    ) -> None:
        """Bind the flow's chunk reservation (``alloc_vmap_area(size, align,
        vstart, vend)`` on a CPU, or None) and release (unlink the chunk's busy
        area and free it lazily); size the chunks and place their window."""
        self._reserve = reserve
        self._release = release
        self.debug = debug
        self.current = [None] * nr_cpus
        self.chunk_pages = derive_chunk_pages(nr_cpus, lazy_max_pages)
        cb = self.chunk_size = self.chunk_pages << PAGE_SHIFT
        self._base_mask = ~(cb - 1)
        span = self.vmalloc_end - self.vmalloc_start
        lo = (self.vmalloc_end - span // WINDOW_FRACTION + cb - 1) & -cb
        self.window = (lo, self.vmalloc_end)

    # -- allocation ----------------------------------------------------------
    def eligible(self, size: int, align: int, vstart: int, vend: int, can_block: bool) -> bool:
        """The eligibility rule (module docstring): small, page-aligned at most,
        default window, blocking."""
        return (
            size <= self.max_size
            and align <= PAGE_SIZE
            and can_block
            and vstart == self.vmalloc_start
            and vend == self.vmalloc_end
        )

    def try_alloc(self, va: VmapArea, size: int, cpu: int, can_block: bool) -> bool:
        """Bump-allocate ``size`` bytes on ``cpu`` into ``va`` (its range set);
        False (nothing changed but a retired chunk) if no chunk can be had."""
        c = self.counters
        chunk = self.current[cpu]
        if chunk is None or chunk.bump + size > chunk.end:
            if chunk is not None:
                self._retire(chunk)
            chunk = self._new_chunk(cpu, can_block)
            if chunk is None:
                c.overlay_fallbacks += 1
                return False
        addr = chunk.bump
        chunk.bump = addr + size
        chunk.live += 1
        va.va_start = addr
        va.va_end = addr + size
        c.cache_lines += 1  # the per-CPU chunk header
        if self.backptr:
            self._fill_backptr(chunk, va)
        else:
            chunk.starts.append(addr)
            chunk.areas.append(va)
        c.overlay_allocs += 1
        return True

    def _fill_backptr(self, chunk: PcpuChunk, va: VmapArea) -> None:
        """The indexed write loop: ``back[i] = va`` for each page of ``va``.

        Stage 11 runs ``i`` from the first page to the last page *inclusive of
        one more* (the modelled ``<=`` for ``<``); stage 12 runs to the last
        page and checks each index against the array's length first."""
        back = chunk.back
        first = (va.va_start - chunk.base) >> PAGE_SHIFT
        nr = (va.va_end - va.va_start) >> PAGE_SHIFT
        if self.hardened:
            n = back.length
            for i in range(first, first + nr):
                if 0 <= i < n:
                    back[i] = va
        else:
            for i in range(first, first + nr + 1):  # modelled defect: one too far
                back[i] = va
        self.counters.cache_lines += ((first + nr) * 8 >> 6) - (first * 8 >> 6) + 1

    def _new_chunk(self, cpu: int, can_block: bool) -> PcpuChunk | None:
        """Reserve a chunk for ``cpu`` through the flow (``alloc_vmap_area``)."""
        lo, hi = self.window
        cb = self.chunk_size
        cva = self._reserve(cb, cb, lo, hi, cpu, can_block)
        if cva is None:
            return None
        base = cva.va_start
        chunk = PcpuChunk(cva, cpu, base, base + cb, base)
        if self.backptr:
            chunk.back = BoundsCheckedArray(
                self.chunk_pages, self.counters, self.warn, debug=self.debug
            )
        self.table[base] = chunk
        self.current[cpu] = chunk
        self.counters.overlay_chunk_reserves += 1
        return chunk

    def _retire(self, chunk: PcpuChunk) -> None:
        """The CPU's chunk cannot hold the next request: exhausted for good;
        given back at once if nothing in it is live."""
        chunk.exhausted = True
        if self.current[chunk.cpu] is chunk:
            self.current[chunk.cpu] = None
        if chunk.live == 0:
            self._give_back(chunk)

    def _give_back(self, chunk: PcpuChunk) -> None:
        """Forget the chunk, then hand its area to the flow's lazy path."""
        del self.table[chunk.base]
        if self.current[chunk.cpu] is chunk:
            self.current[chunk.cpu] = None
        self.counters.overlay_chunk_releases += 1
        self._release(chunk.va)

    # -- lookup ---------------------------------------------------------------
    def lookup(self, addr: int) -> VmapArea | None:
        """Stage 11 on: the live area holding ``addr`` in O(1), no tree walk;
        None if ``addr`` is in no live chunk area (the flow then walks the
        busy tree).  Stage 10 has no index: always None."""
        if not self.backptr:
            return None
        c = self.counters
        lo, hi = self.window
        if not lo <= addr < hi:
            c.overlay_fast_rejects += 1
            return None
        chunk = self.table.get(addr & self._base_mask)
        if chunk is None:
            c.overlay_fast_rejects += 1
            return None
        i = (addr - chunk.base) >> PAGE_SHIFT
        back = chunk.back
        if self.hardened and not 0 <= i < back.length:
            return None
        va = back[i]
        c.cache_lines += 2  # the chunk header, the array slot
        if va is None or not va.va_start <= addr < va.va_end:
            return None
        c.overlay_lookups += 1
        return va

    def owns(self, va: VmapArea) -> bool:
        """Is ``va`` the busy area of a reserved chunk?"""
        chunk = self.table.get(va.va_start)
        return chunk is not None and chunk.va is va

    def resolve(self, chunk_va: VmapArea, addr: int) -> VmapArea | None:
        """``chunk_va`` was found through the busy tree: the live area of that
        chunk holding ``addr``, or None (also when ``chunk_va`` is no chunk)."""
        chunk = self.table.get(chunk_va.va_start)
        if chunk is None or chunk.va is not chunk_va:
            return None
        if self.backptr:
            i = (addr - chunk.base) >> PAGE_SHIFT
            if not 0 <= i < chunk.back.length:
                return None
            va = chunk.back[i]
        else:
            k = bisect_right(chunk.starts, addr) - 1
            self.counters.comparisons += max(len(chunk.starts), 1).bit_length()
            va = chunk.areas[k] if k >= 0 else None
        if va is None or not va.va_start <= addr < va.va_end:
            return None
        return va

    # -- freeing ----------------------------------------------------------------
    def free(self, va: VmapArea) -> None:
        """Take back a live area (its range stays unusable until the chunk goes
        back); the chunk goes back when it is exhausted and this was its last."""
        chunk = self.table[va.va_start & self._base_mask]
        nr = (va.va_end - va.va_start) >> PAGE_SHIFT
        if self.backptr:
            back = chunk.back
            first = (va.va_start - chunk.base) >> PAGE_SHIFT
            if self.hardened:
                n = back.length
                for i in range(first, first + nr):
                    if 0 <= i < n:
                        back[i] = None
            else:
                for i in range(first, first + nr):
                    back[i] = None
        else:
            k = bisect_right(chunk.starts, va.va_start) - 1
            chunk.areas[k] = None
        chunk.live -= 1
        chunk.freed_pages += nr
        d = self._dirty
        self._dirty = (
            (va.va_start, va.va_end)
            if d is None
            else (min(d[0], va.va_start), max(d[1], va.va_end))
        )
        self.counters.overlay_frees += 1
        if chunk.live == 0 and chunk.exhausted:
            self._give_back(chunk)

    # -- memory pressure and flushing -------------------------------------------------
    def reclaimable(self) -> int:
        """Chunks with no live area (all of them current ones: an exhausted
        chunk goes back with its last area)."""
        return sum(1 for ch in self.current if ch is not None and ch.live == 0)

    def reclaim(self) -> int:
        """Give back every chunk with no live area; the number given back."""
        n = 0
        for ch in list(self.current):
            if ch is not None and ch.live == 0:
                self._give_back(ch)
                n += 1
        return n

    def dirty_span(self) -> tuple[int, int] | None:
        """The range covering the areas freed since the last call (stale TLB
        entries for ``vm_unmap_aliases()`` to flush), or None; resets it."""
        d = self._dirty
        self._dirty = None
        return d

    # -- iteration and checking ---------------------------------------------------
    def __iter__(self) -> Iterator[VmapArea]:
        """The busy areas of the reserved chunks, in address order."""
        for base in sorted(self.table):
            yield self.table[base].va

    def chunks(self) -> list[PcpuChunk]:
        """The reserved chunks, in address order."""
        return [self.table[b] for b in sorted(self.table)]

    def live_areas(self, chunk: PcpuChunk) -> list[VmapArea]:
        """The live areas of ``chunk``, in address order."""
        if not self.backptr:
            return [va for va in chunk.areas if va is not None]
        out: list[VmapArea] = []
        last = None
        end = (chunk.bump - chunk.base) >> PAGE_SHIFT
        for va in chunk.back.slots[:end]:
            if va is not None and va is not last:
                out.append(va)
                last = va
        return out

    def areas(self) -> Iterator[VmapArea]:
        """Every live overlay area, in address order."""
        for chunk in self.chunks():
            yield from self.live_areas(chunk)

    def check(self) -> None:
        """Every chunk is consistent and every sub-area is accounted for: the
        live areas and the freed pages tile ``[base, bump)`` exactly."""
        cb = self.chunk_size
        for cpu, ch in enumerate(self.current):
            if ch is not None and (
                ch.cpu != cpu or ch.exhausted or self.table.get(ch.base) is not ch
            ):
                raise InvariantError(f"overlay: CPU {cpu}'s current chunk {ch!r} is inconsistent")
        lo, hi = self.window
        for base, ch in self.table.items():
            where = f"overlay chunk {ch!r}"
            if (
                base != ch.base
                or base & (cb - 1)
                or (ch.va.va_start, ch.va.va_end)
                != (
                    base,
                    base + cb,
                )
            ):
                raise InvariantError(f"{where}: its area {ch.va!r} is not its aligned range")
            if not lo <= base < hi or ch.va.vm is not None:
                raise InvariantError(f"{where}: outside the chunk window or owns a vm_struct")
            if not ch.exhausted and self.current[ch.cpu] is not ch:
                raise InvariantError(f"{where}: neither current nor exhausted (leaked)")
            if ch.exhausted and ch.live == 0:
                raise InvariantError(f"{where}: exhausted and empty but not given back")
            if not base <= ch.bump <= ch.end:
                raise InvariantError(f"{where}: bump pointer outside the chunk")
            live = self.live_areas(ch)
            if len(live) != ch.live:
                raise InvariantError(f"{where}: {len(live)} live areas but a count of {ch.live}")
            cursor = base
            pages = 0
            for va in live:
                if va.va_start < cursor or va.va_end > ch.bump or va.vm is None:
                    raise InvariantError(f"{where}: area {va!r} overlaps or lies past the bump")
                cursor = va.va_end
                pages += (va.va_end - va.va_start) >> PAGE_SHIFT
                if ch.back is not None:
                    first = (va.va_start - base) >> PAGE_SHIFT
                    for i in range(first, first + ((va.va_end - va.va_start) >> PAGE_SHIFT)):
                        if ch.back.slots[i] is not va:
                            raise InvariantError(
                                f"{where}: back-pointer {i} does not point at {va!r}"
                            )
            if pages + ch.freed_pages != (ch.bump - base) >> PAGE_SHIFT:
                raise InvariantError(
                    f"{where}: {pages} live + {ch.freed_pages} freed pages != "
                    f"{(ch.bump - base) >> PAGE_SHIFT} handed out (a sub-area is lost)"
                )

    def memory_bytes(self) -> int:
        """Bytes the overlay itself holds: chunk headers and back-pointer arrays."""
        per = CHUNK_HEADER_BYTES + (self.chunk_pages * 8 if self.backptr else 0)
        return per * len(self.table)

    def __repr__(self) -> str:
        return f"PcpuBumpOverlay({len(self.table)} chunks of {self.chunk_pages} pages)"


def make_overlay(ctx: ComponentContext) -> PcpuBumpOverlay:
    """Factory for ``overlay=pcpu-bump``: one per allocator."""
    return PcpuBumpOverlay(ctx.counters, ctx.warn, ctx.params)
