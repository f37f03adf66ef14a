"""The reference model of the per-CPU bump overlay (patches 10-12), for the oracle.

:class:`ReferenceOverlay` is written from the three patch mails' rules
(``../shared/seed/patches/10.patch`` .. ``12.patch``, as docs/stages.md rows
10-12 state them), not from the plugin that implements them
(``vmapsim_pcpu_overlay``): it imports nothing from the flow or any plugin.
Plain data: a chunk is a record with a bump address and a dict of its live
areas; every lookup scans.

The rules:

* **Chunk**: 64 MiB (``VMAP_BUMP_CHUNK_SIZE``), reserved by the oracle's
  lowest fit of 64 MiB, page aligned, in ``[VMALLOC_START, VMALLOC_END)``,
  with no purge on failure (``vmap_bump_refill()`` calls
  ``__alloc_vmap_area()`` directly).  The oracle holds the range as a busy
  area without ``vm_struct``: the model's documented stand-in for the
  occupied-tree range (docs/stages.md, row 10), so both sides compare alike.
* **Eligible**: default window, ``0 < size <= 32 MiB``, ``align <= 32 MiB``;
  patch 12 adds ``size % PAGE_SIZE == 0`` and ``align > 0``.
* **Bump**: ``ALIGN(bump, align)``; a miss if there is no current chunk or
  ``aligned + size > limit``.  On a miss the caller refills (patch 10: an
  eligible request only; patch 11: *any* request, the miss and the
  ineligible answer being the same NULL; patch 12: an eligible one) and
  bumps once more; a refill makes the new chunk the CPU's current one (at 12
  also its ``owner_cpu``); at 11-12 it also goes to the head of the chunk
  list and widens the ``[lo, hi)`` bound.
* **Lookup / unlink** (11-12): inside ``[lo, hi)``; this CPU's current chunk
  if it holds the address, else the first listed chunk that does; then the
  area holding the page.  Unlink takes the area starting at the address out;
  its chunk's ``alloced`` drops by its pages; when that reaches 0 and the
  chunk is not this CPU's current chunk (patch 11) / not its owner's current
  chunk (patch 12) the chunk is retired: off the list, its range freed at
  once, its descriptor freed when the grace period ends (``kvfree_rcu``).
  A retired chunk is not retired twice.
* **Use after free**: reading a chunk's descriptor (the bump, the current
  chunk test in a lookup, an unlink) after its grace period has ended is
  reported once, as KASAN's first report (:func:`kasan_first_line`), then
  counted; the stale values are used as they were.
* **Patch 10**: no list, no lookup: a bump area is found through its
  chunk's busy area; freeing one leaves its range in the chunk (the model's
  documented departure: the kernel returns it at the next purge); a chunk
  replaced by a refill is forgotten and never given back.
* **Flush**: ``vm_unmap_aliases()`` flushes the span of the bump areas
  freed since its last call (:meth:`ReferenceOverlay.take_dirty_span`).
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import define, field

from vmapsim.checking.oracle_constants import PAGE_SIZE

__all__ = [
    "CHUNK_BYTES",
    "OVERLAY_MODES",
    "ReferenceChunk",
    "ReferenceOverlay",
    "kasan_first_line",
]

#: the overlay's stage features: off (stages 0-9), or the patch whose rules apply
OVERLAY_MODES = ("off", "patch10", "patch11", "patch12")
#: VMAP_BUMP_CHUNK_SIZE
CHUNK_BYTES = 64 << 20
_HALF = CHUNK_BYTES // 2

Range = tuple[int, int]


def kasan_first_line(function: str) -> str:
    """KASAN's first line for a read of a freed page allocation in ``function``."""
    return f"BUG: KASAN: use-after-free in {function}"


@define(eq=False)
class ReferenceChunk:
    """One chunk: its busy area (any object with ``va_start``/``va_end``), the
    CPU it was reserved for (its owner), the bump address, its live areas."""

    area: object
    cpu: int
    start: int
    end: int
    bump: int
    #: live areas, start -> end
    live: dict[int, int] = field(factory=dict)
    retired: bool = False
    freed_at: int | None = None

    def alloced(self) -> int:
        return sum(e - s for s, e in self.live.items()) // PAGE_SIZE


class ReferenceOverlay:
    """The overlay as the oracle models it (module docstring), one per allocator.

    ``reserve(size, cpu)`` is the oracle's chunk reservation (a busy area or
    None); ``release(area)`` gives a retired chunk's range back at once;
    ``log`` is the oracle's log (KASAN's lines go there).
    """

    def __init__(
        self,
        mode: str,
        *,
        nr_cpus: int,
        vmalloc_start: int,
        vmalloc_end: int,
        reserve: Callable[[int, int], object | None],
        release: Callable[[object], None],
        log: list[str],
    ) -> None:
        if mode not in OVERLAY_MODES or mode == "off":
            raise ValueError(f"overlay mode {mode!r}: must be one of {OVERLAY_MODES[1:]}")
        self.patch = int(mode[len("patch") :])
        self.vmalloc_start = vmalloc_start
        self.vmalloc_end = vmalloc_end
        self.reserve = reserve
        self.release = release
        self.log = log
        self.chunk_bytes = CHUNK_BYTES
        self.chunk_pages = CHUNK_BYTES // PAGE_SIZE
        #: each CPU's current chunk, or None
        self.current: list[ReferenceChunk | None] = [None] * nr_cpus
        #: the chunk list (11-12), newest first; at 10 every chunk, oldest first
        self.chunks: list[ReferenceChunk] = []
        self.lo: int | None = None
        self.hi: int | None = None
        self.dirty: Range | None = None
        self.kasan_reports = 0

    # -- allocation -------------------------------------------------------------

    def eligible(self, size: int, align: int, vstart: int, vend: int) -> bool:
        """The eligibility rule of the patch."""
        ok = (
            vstart == self.vmalloc_start
            and vend == self.vmalloc_end
            and 0 < size <= _HALF
            and align <= _HALF
        )
        if self.patch == 12:
            ok = ok and size % PAGE_SIZE == 0 and align > 0
        return ok

    def _read(self, chunk: ReferenceChunk, function: str, now: int) -> None:
        if chunk.freed_at is not None and now >= chunk.freed_at:
            self.kasan_reports += 1
            if self.kasan_reports == 1:
                self.log.append(kasan_first_line(function))
                self.log.append("Read of size 8 at addr")

    def bump(self, size: int, align: int, cpu: int, now: int) -> int | None:
        """The bump from ``cpu``'s current chunk: the address, or None (miss)."""
        chunk = self.current[cpu]
        if chunk is None:
            return None
        if self.patch != 10:
            self._read(chunk, "vmap_bump_alloc", now)
        aligned = -(-chunk.bump // align) * align if align > 1 else chunk.bump
        if aligned + size > chunk.end:
            return None
        chunk.bump = aligned + size
        chunk.live[aligned] = aligned + size
        return aligned

    def refill(self, cpu: int) -> bool:
        """A fresh chunk for ``cpu`` (True), or False if no range could be had."""
        area = self.reserve(CHUNK_BYTES, cpu)
        if area is None:
            return False
        start = area.va_start  # type: ignore[attr-defined]
        chunk = ReferenceChunk(area, cpu, start, start + CHUNK_BYTES, start)
        if self.patch == 10:
            self.chunks.append(chunk)
        else:
            self.chunks.insert(0, chunk)
            self.lo = start if self.lo is None else min(self.lo, start)
            self.hi = chunk.end if self.hi is None else max(self.hi, chunk.end)
        self.current[cpu] = chunk
        return True

    # -- lookup and free -----------------------------------------------------------

    def chunk_of_area(self, area: object) -> ReferenceChunk | None:
        """The unretired chunk whose busy area is ``area``, or None."""
        for chunk in self.chunks:
            if chunk.area is area and not chunk.retired:
                return chunk
        return None

    def _find_chunk(self, addr: int, cpu: int | None, now: int) -> ReferenceChunk | None:
        """``vmap_chunk_lookup()`` (11-12)."""
        if self.lo is None or not self.lo <= addr < self.hi:  # type: ignore[operator]
            return None
        if cpu is not None:
            cur = self.current[cpu]
            if cur is not None:
                self._read(cur, "vmap_chunk_lookup", now)
                if cur.start <= addr < cur.end:
                    return cur
        for chunk in self.chunks:
            if chunk.start <= addr < chunk.end:
                return chunk
        return None

    def lookup(self, addr: int, cpu: int | None, now: int) -> Range | None:
        """The bump area holding ``addr`` found without the busy trees (11-12)."""
        if self.patch == 10:
            return None
        chunk = self._find_chunk(addr, cpu, now)
        if chunk is None:
            return None
        for start, end in chunk.live.items():
            if start <= addr < end:
                return start, end
        return None

    def live_in(self, chunk: ReferenceChunk, addr: int) -> Range | None:
        """Patch 10: the live area of ``chunk`` holding ``addr``."""
        for start, end in chunk.live.items():
            if start <= addr < end:
                return start, end
        return None

    def free10(self, chunk: ReferenceChunk, addr: int) -> None:
        """Patch 10: the bump area at ``addr`` of ``chunk`` is freed."""
        self._dirty(addr, chunk.live.pop(addr))

    def unlink(
        self,
        addr: int,
        cpu: int,
        now: int,
        gp_end: int,
        accept: Callable[[Range], bool],
    ) -> Range | None:
        """``vmap_bump_unlink()`` (11-12) on ``cpu``; ``accept`` may refuse the area."""
        chunk = self._find_chunk(addr, cpu, now)
        if chunk is None:
            return None
        self._read(chunk, "vmap_bump_unlink", now)
        end = chunk.live.get(addr)
        if end is None or not accept((addr, end)):
            return None
        del chunk.live[addr]
        self._dirty(addr, end)
        keeper = self.current[chunk.cpu] if self.patch == 12 else self.current[cpu]
        if not chunk.live and chunk is not keeper and not chunk.retired:
            self.chunks.remove(chunk)
            chunk.retired = True
            chunk.freed_at = gp_end
            self.release(chunk.area)
        return addr, end

    def _dirty(self, start: int, end: int) -> None:
        d = self.dirty
        self.dirty = (start, end) if d is None else (min(d[0], start), max(d[1], end))

    def take_dirty_span(self) -> Range | None:
        """The span of the areas freed since the last call (then forgotten)."""
        span, self.dirty = self.dirty, None
        return span

    # -- views ------------------------------------------------------------------------

    def _reserved(self) -> list[ReferenceChunk]:
        seen = {id(c): c for c in self.chunks if not c.retired}
        for c in self.current:
            if c is not None and not c.retired:
                seen[id(c)] = c
        return sorted(seen.values(), key=lambda c: c.start)

    def live_areas(self) -> list[Range]:
        """Every live bump area of a chunk whose range is reserved, sorted."""
        return sorted(item for chunk in self._reserved() for item in chunk.live.items())

    def chunk_ranges(self) -> list[Range]:
        """The reserved chunks' ranges, sorted."""
        return [(c.start, c.end) for c in self._reserved()]

    def chunk_states(self) -> list[tuple[int, int, int, int, int]]:
        """Every reserved chunk as ``(start, end, cpu, bump, live count)``, sorted."""
        return [(c.start, c.end, c.cpu, c.bump, len(c.live)) for c in self._reserved()]

    def leaked(self) -> list[Range]:
        """Chunks nothing will give back: not current, and (11-12) empty."""
        cur = {id(c) for c in self.current if c is not None}
        return [
            (c.start, c.end)
            for c in self._reserved()
            if id(c) not in cur and (self.patch == 10 or not c.live)
        ]
