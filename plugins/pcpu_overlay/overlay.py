"""The per-CPU bump overlay of patches 10-12: :class:`PcpuBumpOverlay` (``overlay=pcpu-bump``).

Written from the patch mails (``mm/vmalloc.c`` after "[PATCH RFC 10/12]
per-CPU caching of free ranges", "11/12 O(1) lookup of cached vmap_areas"
and "12/12 harden bump-allocator alloc/free"); docs/stages.md rows 10-12 cite
the hunks.  What the model keeps of each:

* **Chunks** (all three): ``VMAP_BUMP_CHUNK_SIZE`` = 64 MiB
  (:data:`VMAP_BUMP_CHUNK_SIZE`, 16384 pages), reserved by
  ``vmap_bump_refill()`` with ``__alloc_vmap_area(64 MiB, PAGE_SIZE,
  VMALLOC_START, VMALLOC_END)`` under ``free_vmap_area_lock``: the lowest
  fit, page aligned, no purge on failure.  The kernel marks the range in the
  occupied tree only; the model holds it as one busy area without a
  ``vm_struct`` (the flow's ``_overlay_reserve``), its stand-in for the
  ``XA_ZERO_ENTRY`` range.
* **Eligibility**: ``vstart == VMALLOC_START && vend == VMALLOC_END``,
  ``0 < size <= 32 MiB``, ``align <= 32 MiB`` (patches 10-11, inside
  ``vmap_bump_alloc()``); patch 12's ``vmap_bump_eligible()`` adds
  ``PAGE_ALIGNED(size)`` and ``align > 0``.  No gfp, ``vm`` or node test.
* **Patch 10** (``mode == 10``): the chunk is ``{base, limit, bump}`` per
  CPU under the per-CPU spinlock ``vmap_bump_lock``; a miss (no chunk, or
  the aligned request does not fit) refills: the old chunk is forgotten
  (its unused tail leaks, its areas stay where they are).  A bump area is
  an ordinary busy area in the kernel (``busy.mt`` insert); see the flow.
* **Patch 11** (``mode == 11``): a ``kvzalloc``'d descriptor
  (:class:`VmapBumpChunk`: ``base``, ``limit``, ``bump``, ``alloced`` in
  pages, an RCU list link, ``page_va[16384]``), per-CPU
  ``vmap_bump_cur``, the global ``vmap_bump_chunks`` list (newest first,
  ``list_add_rcu``) under ``vmap_bump_chunks_lock``, the monotonic
  ``[vmap_chunks_lo, vmap_chunks_hi)`` fast-reject bound.  The bump runs
  under ``preempt_disable()``; the area is not inserted into any busy tree
  (``VA_FROM_BUMP_CHUNK``); ``page_va[]`` maps each of its pages to it.
  Lookup (``vmap_chunk_lookup()``): bound, this CPU's current chunk, then
  an RCU walk of the list.  ``vmap_bump_unlink()`` clears the slots and,
  when ``alloced`` drops to 0 and the chunk is not *this* CPU's current
  one, retires it: ``list_del_rcu``, the whole range given back to the
  allocator under the free lock, ``kvfree_rcu`` of the descriptor.
* **Patch 12** (``mode == 12``): eligibility before refill, the overflow /
  ``aligned >= base`` / ``idx`` / ``n_pages`` checks, the pointer-walk
  fill, ``owner_cpu``: retire only if the chunk is not its *owner's*
  current chunk.

The defects the patches have, reproduced here (tests name the patch):

* patch 11: a free on CPU B of the last area of CPU A's *current* chunk
  retires it.  A still holds it in ``vmap_bump_cur``: its next bump hands
  out space the allocator got back (double booking, counted in
  :attr:`PcpuBumpOverlay.double_booked`), and once the descriptor's grace
  period has ended every touch is a use after free, which the model reports
  as KASAN does (:meth:`PcpuBumpOverlay._kasan`, once, then counted) and then
  goes on reading the stale values, deterministically;
* patches 11-12: a chunk that drains to 0 while it is current is never
  retired once replaced (:meth:`PcpuBumpOverlay.leaked_chunks`); a retired
  chunk's range goes back to the allocator before the freed areas in it are
  flushed (:attr:`PcpuBumpOverlay.retired_unflushed`);
* patch 11: an ineligible request (wrong window, too big) still refills,
  since ``vmap_bump_alloc()`` answers NULL for both; each such call
  reserves a fresh chunk and strands the one before if it was empty.
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
    CountingLocks,
    InvariantError,
    VmapArea,
)

from .ubsan import BoundsCheckedArray

__all__ = [
    "VA_FROM_BUMP_CHUNK",
    "VMAP_BUMP_CHUNK_PAGES",
    "VMAP_BUMP_CHUNK_SIZE",
    "PcpuBumpOverlay",
    "VmapBumpChunk",
    "kasan_report",
]

#: ``VMAP_BUMP_CHUNK_SIZE`` (patch 10): 64 MiB
VMAP_BUMP_CHUNK_SIZE = 64 << 20
#: ``VMAP_BUMP_CHUNK_PAGES`` (patch 11): the length of ``page_va[]``
VMAP_BUMP_CHUNK_PAGES = VMAP_BUMP_CHUNK_SIZE >> PAGE_SHIFT
#: ``VA_FROM_BUMP_CHUNK`` (patch 11): the ``va->flags`` bit of a bump area
VA_FROM_BUMP_CHUNK = 0x4
#: ``sizeof(struct vmap_bump_chunk)`` on 64-bit (patch 12's layout: base, limit,
#: bump, alloced + owner_cpu, list_head, rcu_head, page_va[16384])
VMAP_BUMP_CHUNK_BYTES = 3 * 8 + 4 + 4 + 16 + 16 + 8 * VMAP_BUMP_CHUNK_PAGES
#: where descriptors live when the flow did not kvzalloc() them (a direct-map-like
#: base; the flow's kmalloc'ed descriptors start there too: core/kernel/kvmalloc.py)
_DESC_BASE = 0xFFFF888100000000
#: the descriptor is an order-6 page allocation (kmalloc of 131,136 bytes)
_DESC_STRIDE = 1 << (PAGE_SHIFT + 6)


def kasan_report(kind: str, function: str, addr: int, size: int, cpu: int) -> list[str]:
    """The first lines of a KASAN report for one bad access (``kind``:
    ``use-after-free`` for a freed page allocation, as a kmalloc-large
    object is)."""
    return [
        f"BUG: KASAN: {kind} in {function}",
        f"Read of size {size} at addr {addr:x} on CPU {cpu} (the task is not modelled)",
    ]


@define(slots=True, eq=False, weakref_slot=False, repr=False)
class VmapBumpChunk:
    """``struct vmap_bump_chunk``.

    Patch 10's per-CPU chunk has only ``base``/``limit``/``bump``; patch 11
    adds the rest.  ``va`` is the model's busy area over ``[base, limit)``;
    ``desc`` the descriptor's modelled address; ``freed_at`` the RCU clock
    tick at which ``kvfree_rcu`` frees it (None while it lives);
    ``retired`` whether it left the list and gave its range back.
    """

    va: VmapArea
    base: int
    limit: int
    bump: int
    cpu: int
    alloced: int = 0
    owner_cpu: int = -1
    desc: int = 0
    #: the cost model's line of the chunk's header (``base``, ``limit``,
    #: ``bump``, ``alloced``, ``link``); ``page_va[i]`` is at byte
    #: ``64 + 8 * i`` of the descriptor (patch 11-12); patch 10: the per-CPU
    #: ``vmap_bump`` variable's line
    line: int = 0
    page_va: BoundsCheckedArray | list | None = None
    retired: bool = False
    freed_at: int | None = None
    #: pages of freed areas in it (not reusable: the bump only moves up)
    freed_pages: int = 0
    #: patch 10: the chunk's areas in address order (a freed one becomes None)
    #: and their starts (the model's resolve bisects them)
    areas: list = field(factory=list)
    starts: list = field(factory=list)

    def __repr__(self) -> str:
        state = " retired" if self.retired else ""
        return (
            f"VmapBumpChunk(cpu {self.cpu}, {self.base:#x}-{self.limit:#x}, bump "
            f"{self.bump:#x}, alloced {self.alloced}{state})"
        )


class PcpuBumpOverlay:
    """The ``overlay`` role: patch 10, 11 or 12's bump path (module docstring).

    ``mode`` comes from the stage's ``pcpu_bump`` feature (10, 11 or 12).
    The flow calls :meth:`eligible`, :meth:`bump` and :meth:`install`
    (refill), :meth:`lookup` / :meth:`unlink` (find / find-and-unlink),
    and reads :attr:`kasan_reports`, :attr:`double_booked` and friends.
    """

    def __init__(
        self,
        counters: Counters,
        warn: Callable[[str], None],
        params: Any,
        locking: Any = None,
    ) -> None:
        self.counters = counters
        self._pcpu_line = -1
        #: the allocator's lock calls (``ComponentContext.locking``)
        self.locking = locking if locking is not None else CountingLocks(counters)
        self.warn = warn
        arch = params.get("arch")
        self.vmalloc_start = arch.vmalloc_start
        self.vmalloc_end = arch.vmalloc_end
        self.mode = int(params.get("pcpu_bump", 10))
        if self.mode not in (10, 11, 12):
            raise ValueError(f"pcpu_bump must be 10, 11 or 12, not {self.mode!r}")
        self.debug = False
        self._reserve: Callable[..., VmapArea | None] | None = None
        self._release: Callable[[VmapArea], None] | None = None
        #: per-CPU ``vmap_bump`` (10) / ``vmap_bump_cur`` (11-12)
        self.current: list[VmapBumpChunk | None] = []
        #: ``vmap_bump_chunks`` (11-12), newest first; at 10 every chunk ever reserved
        self.chunk_list: list[VmapBumpChunk] = []
        self.lo = (1 << 64) - 1
        self.hi = 0
        #: the model's own index: chunk base -> chunk, every reserved chunk
        self.by_base: dict[int, VmapBumpChunk] = {}
        self._next_desc = _DESC_BASE
        self._dirty: tuple[int, int] | None = None
        self.kasan_reports = 0
        self._kasan_reported = False
        #: bump areas handed out of a chunk whose range was given back
        self.double_booked = 0
        #: chunks retired while freed areas in them were not yet flushed
        self.retired_unflushed = 0
        #: descriptors allocated / freed (kvzalloc / kvfree_rcu)
        self.descs_allocated = 0
        self.descs_freed = 0
        #: ``sizeof(struct vmap_bump_chunk)``: what the flow ``kvzalloc()``s
        self.desc_bytes = VMAP_BUMP_CHUNK_BYTES
        #: the flow's ``kvfree_rcu(chunk, rcu)`` of a retired chunk's descriptor
        #: (set by the allocator; None: the descriptor is only counted)
        self.free_desc: Callable[[VmapBumpChunk], None] | None = None

    # -- binding -----------------------------------------------------------
    def attach(
        self,
        reserve: Callable[..., VmapArea | None],
        release: Callable[[VmapArea], None],
        *,
        nr_cpus: int,
        lazy_max_pages: int = 0,
        debug: bool = False,
    ) -> None:
        """Bind the flow's chunk reservation (``__alloc_vmap_area()`` of 64 MiB
        under the free lock: a busy area or None) and its release (the
        range back to the allocator at once)."""
        self._reserve = reserve
        self._release = release
        self.debug = debug
        self.current = [None] * nr_cpus

    @property
    def chunk_size(self) -> int:
        return VMAP_BUMP_CHUNK_SIZE

    @property
    def chunk_pages(self) -> int:
        return VMAP_BUMP_CHUNK_PAGES

    # -- eligibility -----------------------------------------------------------
    def eligible(self, size: int, align: int, vstart: int, vend: int) -> bool:
        """``vmap_bump_alloc()``'s test (10-11) / ``vmap_bump_eligible()`` (12)."""
        half = VMAP_BUMP_CHUNK_SIZE // 2
        ok = (
            vstart == self.vmalloc_start
            and vend == self.vmalloc_end
            and 0 < size <= half
            and align <= half
        )
        if self.mode == 12:
            ok = ok and not size & (PAGE_SIZE - 1) and align > 0
        return ok

    # -- KASAN --------------------------------------------------------------------
    def _touch(self, chunk: VmapBumpChunk, function: str, cpu: int, now: int) -> None:
        """A read of ``chunk``'s descriptor: a use after free once its
        ``kvfree_rcu`` grace period has ended."""
        if chunk.freed_at is not None and now >= chunk.freed_at:
            self._kasan("use-after-free", function, chunk.desc, cpu)

    def _kasan(self, kind: str, function: str, addr: int, cpu: int) -> None:
        """Report as KASAN does: the first report is printed (no
        ``kasan_multi_shot``), every one counted; the run goes on (no
        ``panic_on_warn``, even with ``debug``: the report is the finding)."""
        self.kasan_reports += 1
        if self._kasan_reported:
            return
        self._kasan_reported = True
        for line in kasan_report(kind, function, addr, 8, cpu):
            self.warn(line)

    # -- allocation ----------------------------------------------------------
    def bump(self, va: VmapArea, size: int, align: int, cpu: int, now: int) -> bool:
        """The bump itself (``vmap_bump_alloc()`` after its eligibility test
        and, at 11-12, after the ``vmap_area`` was allocated): set ``va``'s
        range and True; False on a miss (no chunk, or no room).  Patch 10
        holds this CPU's ``vmap_bump_lock``, 11-12 disable preemption."""
        lk = self.locking
        if self.mode == 10:
            lk.spin_lock("vmap_bump_lock", cpu)
            ok = self._bump(va, size, align, cpu, now)
            lk.spin_unlock("vmap_bump_lock", cpu)
        else:
            lk.preempt_disable(cpu)
            ok = self._bump(va, size, align, cpu, now)
            lk.preempt_enable(cpu)
        return ok

    def _bump(self, va: VmapArea, size: int, align: int, cpu: int, now: int) -> bool:
        """:meth:`bump` inside its lock / preempt-disabled section."""
        c = self.counters
        chunk = self.current[cpu]
        if chunk is None:
            return False
        if self.mode != 10:
            self._touch(chunk, "vmap_bump_alloc", cpu, now)
        aligned = (chunk.bump + align - 1) & -align if align > 1 else chunk.bump
        new_bump = aligned + size
        if self.mode == 12:
            idx = (aligned - chunk.base) >> PAGE_SHIFT
            n_pages = size >> PAGE_SHIFT
            if (
                aligned < chunk.base
                or new_bump > (1 << 64) - 1
                or new_bump > chunk.limit
                or idx >= VMAP_BUMP_CHUNK_PAGES
                or n_pages > VMAP_BUMP_CHUNK_PAGES - idx
            ):
                return False
        elif new_bump > chunk.limit:
            return False
        chunk.bump = new_bump
        va.va_start = aligned
        va.va_end = new_bump
        c.line_accesses += 1  # the per-CPU chunk
        c.touch(chunk.line, True)
        if chunk.retired:
            self.double_booked += 1
        if self.mode == 10:
            chunk.areas.append(va)
            chunk.starts.append(aligned)
        else:
            idx = (aligned - chunk.base) >> PAGE_SHIFT
            n_pages = size >> PAGE_SHIFT
            if self.mode == 11:  # the indexed loop, as UBSAN instruments it
                chunk.page_va.fill(idx, n_pages, va)
            else:  # patch 12's pointer walk: not instrumented
                chunk.page_va[idx : idx + n_pages] = [va] * n_pages
            chunk.alloced += n_pages
            c.line_accesses += ((idx + n_pages) * 8 >> 6) - (idx * 8 >> 6) + 1
            c.touch_range(((chunk.line + 1) << 6) + idx * 8, n_pages * 8, True)
        c.overlay_allocs += 1
        return True

    def new_chunk(self, cpu: int, can_block: bool) -> VmapBumpChunk | None:
        """Patch 10's refill, or the range part of patch 11-12's: reserve 64 MiB
        through the flow (``__alloc_vmap_area`` under the free lock)."""
        cva = self._reserve(VMAP_BUMP_CHUNK_SIZE, cpu, can_block)
        if cva is None:
            return None
        base = cva.va_start
        return VmapBumpChunk(cva, base, base + VMAP_BUMP_CHUNK_SIZE, base, cpu)

    def install(self, chunk: VmapBumpChunk, cpu: int) -> None:
        """Make ``chunk`` ``cpu``'s current one: patch 10 under ``vmap_bump_lock``
        (the old one is forgotten); 11-12 ``list_add_rcu`` under
        ``vmap_bump_chunks_lock``, the bound widened, then ``vmap_bump_cur``
        (and ``owner_cpu`` at 12) with preemption off."""
        c = self.counters
        c.overlay_chunk_reserves += 1
        self.by_base[chunk.base] = chunk
        mem = c.mem
        if self.mode == 10:  # DEFINE_PER_CPU(struct vmap_bump_chunk, vmap_bump)
            if self._pcpu_line < 0:
                self._pcpu_line = mem.percpu(64, 64)
            chunk.line = mem.this_cpu(self._pcpu_line, cpu) >> 6
        else:  # kvzalloc'd descriptor: header, then page_va[]
            chunk.line = mem.pages(64 + 8 * VMAP_BUMP_CHUNK_PAGES) >> 6
        lk = self.locking
        if self.mode == 10:
            lk.spin_lock("vmap_bump_lock", cpu)
            self.chunk_list.append(chunk)
            self.current[cpu] = chunk
            lk.spin_unlock("vmap_bump_lock", cpu)
            return
        if not chunk.desc:  # the flow did not kvzalloc() it: a modelled address
            chunk.desc = self._next_desc
            self._next_desc += _DESC_STRIDE
        self.descs_allocated += 1
        if self.mode == 11:
            chunk.page_va = BoundsCheckedArray(
                VMAP_BUMP_CHUNK_PAGES, c, self.warn, debug=self.debug
            )
        else:
            chunk.page_va = [None] * VMAP_BUMP_CHUNK_PAGES
        lk.spin_lock("vmap_bump_chunks_lock")
        self.chunk_list.insert(0, chunk)
        self.lo = min(self.lo, chunk.base)
        self.hi = max(self.hi, chunk.limit)
        lk.spin_unlock("vmap_bump_chunks_lock")
        lk.preempt_disable(cpu)
        if self.mode == 12:
            chunk.owner_cpu = cpu
        self.current[cpu] = chunk
        lk.preempt_enable(cpu)

    # -- lookup ---------------------------------------------------------------
    def chunk_lookup(self, addr: int, cpu: int | None, now: int) -> VmapBumpChunk | None:
        """``vmap_chunk_lookup()`` (11-12): the bound, this CPU's current chunk
        (``cpu`` None: skipped), then an RCU walk of ``vmap_bump_chunks``."""
        c = self.counters
        if not self.lo <= addr < self.hi:
            c.overlay_fast_rejects += 1
            return None
        if cpu is not None:
            cur = self.current[cpu]
            if cur is not None:
                self._touch(cur, "vmap_chunk_lookup", cpu, now)
                if cur.base <= addr < cur.limit:
                    return cur
        lk = self.locking
        lk.rcu_read_lock()
        for chunk in self.chunk_list:
            c.comparisons += 1
            c.touch(chunk.line)
            if chunk.base <= addr < chunk.limit:
                lk.rcu_read_unlock()
                return chunk
        lk.rcu_read_unlock()
        return None

    def lookup(self, addr: int, cpu: int | None = None, now: int = 0) -> VmapArea | None:
        """``find_vmap_area()``'s bump fast path (11-12): ``page_va[idx]`` of the
        chunk holding ``addr``, or None (the flow then walks the busy trees).
        Patch 10 has none: always None."""
        if self.mode == 10:
            return None
        chunk = self.chunk_lookup(addr, cpu, now)
        if chunk is None:
            return None
        idx = (addr - chunk.base) >> PAGE_SHIFT
        if idx >= VMAP_BUMP_CHUNK_PAGES:
            return None
        va = chunk.page_va[idx]
        c = self.counters
        c.line_accesses += 2  # the descriptor, the slot
        c.touch(chunk.line)
        c.touch((chunk.line + 1 + (idx >> 3)), False)
        if va is not None:
            self.counters.overlay_lookups += 1
        return va

    def resolve(self, chunk_va: VmapArea, addr: int) -> VmapArea | None:
        """Patch 10 in the model: the busy walk landed on a chunk's area (the
        model's stand-in for the range); the bump area of that chunk holding
        ``addr``, or None.  (In the kernel a patch-10 bump area is itself in
        ``busy.mt``.)"""
        chunk = self.by_base.get(chunk_va.va_start)
        if chunk is None or chunk.va is not chunk_va or self.mode != 10:
            return None
        k = bisect_right(chunk.starts, addr) - 1
        self.counters.comparisons += max(len(chunk.starts), 1).bit_length()
        va = chunk.areas[k] if k >= 0 else None
        if va is None or not va.va_start <= addr < va.va_end:
            return None
        return va

    def owns(self, va: VmapArea) -> bool:
        """Is ``va`` the busy area standing for a reserved chunk's range?"""
        chunk = self.by_base.get(va.va_start)
        return chunk is not None and chunk.va is va

    # -- freeing ----------------------------------------------------------------
    def free10(self, chunk_va: VmapArea, va: VmapArea) -> None:
        """Patch 10: bump area ``va`` leaves the chunk of ``chunk_va`` (the flow
        found both through the busy walk and :meth:`resolve`)."""
        chunk = self.by_base[chunk_va.va_start]
        k = bisect_right(chunk.starts, va.va_start) - 1
        chunk.areas[k] = None
        chunk.freed_pages += (va.va_end - va.va_start) >> PAGE_SHIFT
        self._mark_dirty(va)
        self.counters.overlay_frees += 1

    def unlink(
        self,
        addr: int,
        cpu: int,
        now: int,
        gp_end: int,
        accept: Callable[[VmapArea], bool] | None = None,
    ) -> VmapArea | None:
        """``vmap_bump_unlink()`` (11-12) on ``cpu``: the bump area starting at
        ``addr`` out of its chunk, and the chunk retired when the rule says so
        (its descriptor freed at tick ``gp_end``); None if ``addr`` starts no
        bump area, or (the model's callers) ``accept`` refuses it."""
        chunk = self.chunk_lookup(addr, cpu, now)
        if chunk is None:
            return None
        idx = (addr - chunk.base) >> PAGE_SHIFT
        if idx >= VMAP_BUMP_CHUNK_PAGES:
            return None
        self._touch(chunk, "vmap_bump_unlink", cpu, now)
        va = chunk.page_va[idx]
        if va is None or va.va_start != addr or (accept is not None and not accept(va)):
            return None
        n_pages = (va.va_end - va.va_start) >> PAGE_SHIFT
        if self.mode == 12 and not 0 < n_pages <= VMAP_BUMP_CHUNK_PAGES - idx:
            return None
        slots = chunk.page_va if self.mode == 12 else chunk.page_va.slots
        slots[idx : idx + n_pages] = [None] * n_pages  # memset: not instrumented
        c0 = self.counters
        c0.touch_range(((chunk.line + 1) << 6) + idx * 8, n_pages * 8, True)
        c0.touch(chunk.line, True)  # atomic_sub_return(&chunk->alloced)
        chunk.freed_pages += n_pages
        self._mark_dirty(va)
        c = self.counters
        c.overlay_frees += 1
        if self.mode == 12:
            if not 0 <= chunk.owner_cpu < len(self.current):
                return va
            keeper = self.current[chunk.owner_cpu]
        else:
            keeper = self.current[cpu]
        chunk.alloced -= n_pages
        if chunk.alloced == 0 and chunk is not keeper:
            self._retire(chunk, gp_end)
        return va

    def _retire(self, chunk: VmapBumpChunk, gp_end: int) -> None:
        """The chunk leaves ``vmap_bump_chunks`` (RCU), its range goes back to
        the allocator under the free lock, its descriptor to ``kvfree_rcu``."""
        c = self.counters
        if chunk.retired:
            # a second retirement of the same descriptor (after a cross-CPU
            # retire at 11): the kernel would list_del_rcu a deleted entry and
            # erase a range that is no longer the chunk's; the model stops here
            return
        self.locking.spin_lock("vmap_bump_chunks_lock")
        if chunk in self.chunk_list:
            self.chunk_list.remove(chunk)
        self.locking.spin_unlock("vmap_bump_chunks_lock")
        d = self._dirty
        if d is not None and d[0] < chunk.limit and chunk.base < d[1]:
            self.retired_unflushed += 1
        chunk.retired = True
        chunk.freed_at = gp_end
        del self.by_base[chunk.base]
        self.descs_freed += 1
        c.overlay_chunk_releases += 1
        self._release(chunk.va)
        if self.free_desc is not None:
            self.free_desc(chunk)

    def _mark_dirty(self, va: VmapArea) -> None:
        d = self._dirty
        self._dirty = (
            (va.va_start, va.va_end)
            if d is None
            else (min(d[0], va.va_start), max(d[1], va.va_end))
        )

    # -- memory pressure and flushing -------------------------------------------------
    def reclaimable(self) -> int:
        """The patches give the shrinker nothing of the overlay: 0."""
        return 0

    def reclaim(self) -> int:
        """Nothing: no patch reclaims chunks under memory pressure."""
        return 0

    def dirty_span(self) -> tuple[int, int] | None:
        """The range covering the bump areas freed since the last call (their
        TLB entries go with ``vm_unmap_aliases()``'s flush), or None; resets it."""
        d = self._dirty
        self._dirty = None
        return d

    # -- views and checking ---------------------------------------------------
    def leaked_chunks(self) -> list[VmapBumpChunk]:
        """Chunks nothing will ever give back (11-12): on the list, not any
        CPU's current one, no area left (drained while current, then replaced).
        At 10 every forgotten chunk is leaked (only its tail in the kernel)."""
        cur = {id(ch) for ch in self.current if ch is not None}
        if self.mode == 10:
            return [ch for ch in self.chunk_list if id(ch) not in cur]
        return [ch for ch in self.chunk_list if id(ch) not in cur and ch.alloced == 0]

    def __iter__(self) -> Iterator[VmapArea]:
        """The busy areas standing for the chunks' ranges (retired ones are
        given back), in address order."""
        for chunk in self.chunks():
            yield chunk.va

    def chunks(self) -> list[VmapBumpChunk]:
        """The chunks whose range is still reserved, in address order."""
        seen = {id(ch): ch for ch in self.chunk_list if not ch.retired}
        for ch in self.current:
            if ch is not None and not ch.retired:
                seen[id(ch)] = ch
        return sorted(seen.values(), key=_base)

    def live_areas(self, chunk: VmapBumpChunk) -> list[VmapArea]:
        """The live bump areas of ``chunk``, in address order."""
        if self.mode == 10:
            return [va for va in chunk.areas if va is not None]
        out: list[VmapArea] = []
        last = None
        slots = chunk.page_va if self.mode == 12 else chunk.page_va.slots
        end = (chunk.bump - chunk.base) >> PAGE_SHIFT
        for va in slots[:end]:
            if va is not None and va is not last:
                out.append(va)
                last = va
        return out

    def areas(self) -> Iterator[VmapArea]:
        """Every live bump area of a chunk whose range is reserved, in address order."""
        for chunk in self.chunks():
            yield from self.live_areas(chunk)

    def check(self) -> None:
        """Each reserved chunk is its 64 MiB busy area; its live areas lie in
        ``[base, bump)`` without overlap; at 11-12 ``alloced`` counts their
        pages and every page of each points at it."""
        for ch in self.chunks():
            where = f"overlay chunk {ch!r}"
            if (ch.va.va_start, ch.va.va_end) != (ch.base, ch.limit) or ch.va.vm is not None:
                raise InvariantError(f"{where}: its area {ch.va!r} is not its range")
            if ch.limit - ch.base != VMAP_BUMP_CHUNK_SIZE or ch.base & (PAGE_SIZE - 1):
                raise InvariantError(f"{where}: not a page-aligned 64 MiB range")
            if not ch.base <= ch.bump <= ch.limit:
                raise InvariantError(f"{where}: bump pointer outside the chunk")
            cursor = ch.base
            pages = 0
            for va in self.live_areas(ch):
                if va.va_start < cursor or va.va_end > ch.bump:
                    raise InvariantError(f"{where}: area {va!r} overlaps or lies past the bump")
                cursor = va.va_end
                pages += (va.va_end - va.va_start) >> PAGE_SHIFT
            if self.mode != 10 and pages != ch.alloced:
                raise InvariantError(f"{where}: {pages} live pages but alloced {ch.alloced}")

    def memory_bytes(self) -> int:
        """Bytes the overlay holds: the descriptors (11-12: 131,136 B each,
        kvzalloc'd), per-CPU ``{base, limit, bump}`` at 10."""
        if self.mode == 10:
            return 24 * len(self.current)
        return VMAP_BUMP_CHUNK_BYTES * (self.descs_allocated - self.descs_freed)

    def __repr__(self) -> str:
        return f"PcpuBumpOverlay(patch {self.mode}, {len(self.chunks())} chunks)"


def _base(chunk: VmapBumpChunk) -> int:
    return chunk.base


def make_overlay(ctx: ComponentContext) -> PcpuBumpOverlay:
    """Factory for ``overlay=pcpu-bump``: one per allocator."""
    return PcpuBumpOverlay(ctx.counters, ctx.warn, ctx.params, ctx.locking)
