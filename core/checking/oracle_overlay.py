"""The reference model of the per-CPU bump overlay (stages 10-12), for the oracle.

:class:`ReferenceOverlay` is written from the overlay's documented rule
(docs/stages.md, "Stage 10: the per-CPU bump overlay", "The chunk size,
derived", stages 11 and 12), not from the plugin that implements it
(``vmapsim_pcpu_overlay``): it imports nothing from the flow or any plugin.
Plain data: a chunk is a record with a bump address and a dict of its live
areas; lookups scan; nothing is indexed.

The rule, as this module models it:

* **Eligible**: a vmalloc-family request (``has_vm``), in the default window
  ``[VMALLOC_START, VMALLOC_END)``, ``align <= PAGE_SIZE``, at most
  :data:`OVERLAY_MAX_PAGES` pages guard page included, blocking gfp.
* **Chunk size** (:func:`chunk_pages_for`): the largest power of two with
  ``nr_cpus * chunk <= lazy_max_pages / 4``, at most 2048 pages (the
  back-pointer array within four pages), at least 32 maximal eligible
  requests (512 pages).
* **Chunk window** (:func:`chunk_window`): the top sixteenth of the vmalloc
  space, its low end rounded up to the chunk size; chunks are reserved there
  through the allocator's own ``alloc_vmap_area(chunk, chunk, lo, hi)``
  (blocking, ``__GFP_NOWARN``) as busy areas without a ``vm_struct``.
* **Bump**: each CPU has at most one current chunk; a request goes at its
  bump address.  A request that does not fit the rest retires the chunk
  (exhausted for good; given back at once if nothing in it is live) and a
  fresh chunk is reserved; if none can be had the request takes the normal
  path.
* **Free**: a freed area's range is never handed out again by its chunk; an
  exhausted chunk whose last live area is freed goes back through the lazy
  path (``free_vmap_area_noflush()``).  The failure path's reclaim and the
  shrinker give back every current chunk with nothing live, CPU by CPU.
* **Flush**: ``vm_unmap_aliases()`` flushes the span of the areas freed
  since its last call (:meth:`ReferenceOverlay.take_dirty_span`).
* **Back-pointer array** (stage 11, mode ``"backptr"``): one slot per chunk
  page.  Its fill loop runs one slot past the area, which lands outside the
  array exactly when the area ends at its chunk's end: UBSAN then reports
  index ``chunk_pages`` of ``struct vmap_area *[chunk_pages]`` (two log lines,
  :func:`ubsan_lines`).  Stage 12 (mode ``"bounded"``) never reports.  Stage 10
  (mode ``"lookup"``) has no array.  Lookups give the same answers in every
  mode: the live area holding the address, else the chunk's own area.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field

from vmapsim.checking.oracle_constants import PAGE_SIZE, UBSAN_OVERLAY_SITE

__all__ = [
    "OVERLAY_MAX_PAGES",
    "OVERLAY_MODES",
    "ReferenceChunk",
    "ReferenceOverlay",
    "chunk_pages_for",
    "chunk_window",
    "ubsan_lines",
]

#: the overlay's stage features: off (stages 0-9), the busy-tree lookup (10),
#: the back-pointer array with its one-past-the-end fill (11), bounded (12)
OVERLAY_MODES = ("off", "lookup", "backptr", "bounded")
#: eligible requests are at most this many pages, guard page included
OVERLAY_MAX_PAGES = 16

#: a chunk is at most this many pages (its back-pointer array fits 4 pages)
_CHUNK_CAP_PAGES = 2048
#: and holds at least this many maximal eligible requests
_MIN_REQUESTS = 32

Range = tuple[int, int]
#: reserve(size, align, vstart, vend, cpu) -> (start, end) of a busy area, or None
Reserve = Callable[[int, int, int, int, int], "object | None"]


def chunk_pages_for(nr_cpus: int, lazy_max_pages: int) -> int:
    """The chunk size in pages, from the rule in docs/stages.md.

    Start from one page and double while ``nr_cpus`` chunks of the doubled
    size still fit in a quarter of ``lazy_max_pages``; then cap at 2048 pages
    and raise to 32 maximal eligible requests (512 pages).
    """
    pages = 1
    while nr_cpus * (pages * 2) * 4 <= lazy_max_pages:
        pages *= 2
    pages = min(pages, _CHUNK_CAP_PAGES)
    return max(pages, _MIN_REQUESTS * OVERLAY_MAX_PAGES)


def chunk_window(vmalloc_start: int, vmalloc_end: int, chunk_bytes: int) -> Range:
    """``[lo, VMALLOC_END)``: the top sixteenth of the vmalloc space, ``lo``
    rounded up to a multiple of the chunk size."""
    lo = vmalloc_end - (vmalloc_end - vmalloc_start) // 16
    if lo % chunk_bytes:
        lo += chunk_bytes - lo % chunk_bytes
    return lo, vmalloc_end


def ubsan_lines(index: int, length: int) -> list[str]:
    """What CONFIG_UBSAN_BOUNDS prints for ``index`` into ``struct vmap_area *[length]``."""
    return [
        f"UBSAN: array-index-out-of-bounds in {UBSAN_OVERLAY_SITE}",
        f"index {index} is out of range for type 'struct vmap_area *[{length}]'",
    ]


@define(eq=False)
class ReferenceChunk:
    """One chunk: its busy area (any object with ``va_start``/``va_end``), the
    CPU it was reserved for, the bump address, its live areas and freed pages."""

    area: object
    cpu: int
    start: int
    end: int
    bump: int
    #: live areas handed out, start -> end
    live: dict[int, int] = field(factory=dict)
    freed_pages: int = 0
    exhausted: bool = False

    def live_at(self, addr: int) -> Range | None:
        """The live area holding ``addr`` (a scan), or None."""
        for start, end in self.live.items():
            if start <= addr < end:
                return start, end
        return None


class ReferenceOverlay:
    """The overlay as the oracle models it (module docstring), one per allocator.

    ``reserve(size, align, vstart, vend, cpu)`` is the oracle's own
    ``alloc_vmap_area()`` (blocking, silent) returning the chunk's busy area
    or None; ``release(area)`` frees such an area through the oracle's lazy
    path; ``log`` is the oracle's log (UBSAN's lines go there).
    """

    def __init__(
        self,
        mode: str,
        *,
        nr_cpus: int,
        lazy_max_pages: int,
        vmalloc_start: int,
        vmalloc_end: int,
        reserve: Reserve,
        release: Callable[[object], None],
        log: list[str],
    ) -> None:
        if mode not in OVERLAY_MODES or mode == "off":
            raise ValueError(f"overlay mode {mode!r}: must be one of {OVERLAY_MODES[1:]}")
        self.mode = mode
        self.vmalloc_start = vmalloc_start
        self.vmalloc_end = vmalloc_end
        self.chunk_pages = chunk_pages_for(nr_cpus, lazy_max_pages)
        self.chunk_bytes = self.chunk_pages * PAGE_SIZE
        self.window = chunk_window(vmalloc_start, vmalloc_end, self.chunk_bytes)
        self.reserve = reserve
        self.release = release
        self.log = log
        #: each CPU's current chunk, or None
        self.current: list[ReferenceChunk | None] = [None] * nr_cpus
        #: every chunk not yet given back (current or exhausted), in reservation order
        self.chunks: list[ReferenceChunk] = []
        self.dirty: Range | None = None
        self.ubsan_reports = 0

    # -- allocation -------------------------------------------------------------

    def eligible(self, size: int, align: int, vstart: int, vend: int, can_block: bool) -> bool:
        """The eligibility rule for a vmalloc-family request of ``size`` bytes
        (guard page included)."""
        return (
            size <= OVERLAY_MAX_PAGES * PAGE_SIZE
            and align <= PAGE_SIZE
            and vstart == self.vmalloc_start
            and vend == self.vmalloc_end
            and can_block
        )

    def alloc(self, size: int, cpu: int) -> int | None:
        """Bump ``size`` bytes from ``cpu``'s chunk: the address, or None (no
        chunk could be reserved: the caller takes the normal path)."""
        chunk = self.current[cpu]
        if chunk is not None and chunk.bump + size > chunk.end:
            self._retire(chunk)
            chunk = None
        if chunk is None:
            chunk = self._reserve_chunk(cpu)
            if chunk is None:
                return None
        addr = chunk.bump
        chunk.bump += size
        chunk.live[addr] = addr + size
        if self.mode == "backptr" and addr + size == chunk.end:
            # the fill loop's extra slot is the one past the array
            self.ubsan_reports += 1
            self.log.extend(ubsan_lines(self.chunk_pages, self.chunk_pages))
        return addr

    def _reserve_chunk(self, cpu: int) -> ReferenceChunk | None:
        lo, hi = self.window
        area = self.reserve(self.chunk_bytes, self.chunk_bytes, lo, hi, cpu)
        if area is None:
            return None
        start = area.va_start  # type: ignore[attr-defined]
        chunk = ReferenceChunk(area, cpu, start, start + self.chunk_bytes, start)
        self.chunks.append(chunk)
        self.current[cpu] = chunk
        return chunk

    def _retire(self, chunk: ReferenceChunk) -> None:
        """The next request does not fit: exhausted; back at once if empty."""
        chunk.exhausted = True
        self.current[chunk.cpu] = None
        if not chunk.live:
            self._give_back(chunk)

    def _give_back(self, chunk: ReferenceChunk) -> None:
        self.chunks.remove(chunk)
        if self.current[chunk.cpu] is chunk:
            self.current[chunk.cpu] = None
        self.release(chunk.area)

    # -- lookup and free -----------------------------------------------------------

    def chunk_of_area(self, area: object) -> ReferenceChunk | None:
        """The chunk whose busy area is ``area``, or None."""
        for chunk in self.chunks:
            if chunk.area is area:
                return chunk
        return None

    def live_area(self, addr: int) -> Range | None:
        """The live overlay area holding ``addr``, in any chunk, or None."""
        for chunk in self.chunks:
            if chunk.start <= addr < chunk.end:
                return chunk.live_at(addr)
        return None

    def free(self, addr: int) -> None:
        """Free the live area starting at ``addr`` (its range stays unusable
        until its chunk goes back; the chunk goes back if exhausted and empty)."""
        for chunk in self.chunks:
            if addr in chunk.live:
                break
        else:
            raise KeyError(f"{addr:#x} is no live overlay area")
        end = chunk.live.pop(addr)
        chunk.freed_pages += (end - addr) // PAGE_SIZE
        if self.dirty is None:
            self.dirty = (addr, end)
        else:
            self.dirty = (min(self.dirty[0], addr), max(self.dirty[1], end))
        if chunk.exhausted and not chunk.live:
            self._give_back(chunk)

    # -- memory pressure and flushing ----------------------------------------------------

    def reclaimable(self) -> int:
        """Current chunks with nothing live (what reclaim would give back)."""
        return sum(1 for c in self.current if c is not None and not c.live)

    def reclaim(self) -> None:
        """Give back every current chunk with nothing live, CPU by CPU."""
        for chunk in list(self.current):
            if chunk is not None and not chunk.live:
                self._give_back(chunk)

    def take_dirty_span(self) -> Range | None:
        """The span of the areas freed since the last call (then forgotten)."""
        span, self.dirty = self.dirty, None
        return span

    # -- views ------------------------------------------------------------------------

    def live_areas(self) -> list[Range]:
        """Every live overlay area, sorted."""
        return sorted(item for chunk in self.chunks for item in chunk.live.items())

    def chunk_states(self) -> list[tuple[int, int, int, int, bool, int]]:
        """Every chunk as ``(start, end, cpu, bump, exhausted, live count)``, sorted."""
        return sorted(
            (c.start, c.end, c.cpu, c.bump, c.exhausted, len(c.live)) for c in self.chunks
        )
