"""``check_invariants()``: the model's CONFIG_DEBUG_VM.

Checks every component's own structure, then the global facts no single
component can see: the address space ``[1, ULONG_MAX)`` is exactly
partitioned into free, busy, lazy, pooled and overlay ranges (nothing lost,
nothing double-booked); free space is coalesced; each area sits in the node
the kernel would put it in; pool entries match their pool; the lazy page
count matches the lazy areas; vmap blocks' bitmaps match their free/dirty
counts and their areas are busy ``VMAP_RAM|VMAP_BLOCK`` areas; areas
queued by ``kvfree_rcu()`` stay busy until their grace period ends; percpu
chunks' maps are consistent and their areas busy.

``--debug`` does not run all of that after every operation (on the maple
stages a full check costs as much as thousands of operations):
:meth:`~InvariantsMixin.check_touched` checks what the operation touched (the
area at each touched address: one owner, in its node; the free blocks or
gaps on either side: coalesced, in step with the occupied tree), and the full
:meth:`~InvariantsMixin.check_invariants` runs every ``debug_full_every``
operations (:data:`DEBUG_FULL_EVERY`), after an operation that retried,
deferred a publish or moved an overlay chunk, after every explicit purge and
every operation that names nothing it touched (the rare paths).  A purge
that a ``vfree()`` runs on its way is seen by the next full check.  Counters are
restored after each ``--debug`` check (incremental or full), so a debug run
counts what a run without it counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.errors import InvariantError
from vmapsim.kernel.area import VMAP_BLOCK, VmapArea
from vmapsim.kernel.constants import MAX_VA_SIZE_PAGES, PAGE_SHIFT, ULONG_MAX
from vmapsim.kernel.vmap_node import decode_vn_id

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["DEBUG_FULL_EVERY", "InvariantsMixin"]

#: ``vmapsim run --debug``: the full check every this many checked operations
#: (the rest are incremental); 1 checks everything after every operation, which
#: is what ``build(debug=True)`` does unless ``allocator.debug_full_every`` is set
DEBUG_FULL_EVERY = 1000

#: counters that move when an operation changed more than what it names (a
#: retried allocation, a deferred publish, an overlay chunk coming or going);
#: a purge inside an operation is not among them: it is checked by the next
#: full check, at most ``debug_full_every`` operations later
_WIDE = (
    "alloc_retries",
    "publish_deferred",
    "publish_retried",
    "overlay_chunk_reserves",
    "overlay_chunk_releases",
    "alloc_failures",
)


class InvariantsMixin:
    """``check_invariants()`` and its parts."""

    def debug_step(self: VmapAllocator, touched: tuple[int, ...]) -> None:
        """One operation's ``--debug`` check: incremental on ``touched``
        addresses, full every ``debug_full_every`` operations, after anything
        wide (a purge, ...) and when ``touched`` is empty."""
        # build(debug=True) alone keeps the full check after every operation;
        # the command line's --debug sets debug_full_every (default DEBUG_FULL_EVERY)
        every = getattr(self, "debug_full_every", 1)
        n = getattr(self, "_debug_ops", 0) + 1
        self._debug_ops = n
        m = self.metrics
        wide = tuple(getattr(m, k) for k in _WIDE)
        full = not touched or every <= 1 or n % every == 0
        full = full or wide != getattr(self, "_debug_wide", wide)
        self._debug_wide = wide
        saved = m.checkpoint()
        try:
            if full:
                self.check_invariants()
            else:
                self._check_touched(touched)
        finally:  # what the checks' own lookups counted is not the workload's
            m.restore(saved)

    def check_touched(self: VmapAllocator, addrs: tuple[int, ...]) -> None:
        """The invariants around ``addrs`` (what an operation touched).

        At each address: no two of the free space, the busy index and the
        overlay own it; a busy area sits in its address's node and is not
        empty; the free blocks (or gaps) enclosing it or touching the area's
        ends are non-empty, do not overlap a busy area there, are coalesced
        with their neighbours and agree with the occupied tree.  Lookups run
        with the counters saved and restored.
        """
        if not self.vmap_initialized:
            return
        m = self.metrics
        saved = m.checkpoint()
        try:
            self._check_touched(addrs)
        finally:
            m.restore(saved)

    def _check_touched(self: VmapAllocator, addrs: tuple[int, ...]) -> None:
        if not self.vmap_initialized:
            return
        for addr in addrs:
            if addr is not None and 0 < addr < ULONG_MAX:
                self._check_around(addr)

    def _free_at(self: VmapAllocator, addr: int) -> tuple[int, int] | None:
        """The free block (or gap) holding ``addr``, as a range."""
        if not 0 < addr < ULONG_MAX:
            return None
        if self.free is not None:
            blk = self.free.find_enclosing(addr)
            return None if blk is None else (blk.va_start, blk.va_end)
        return self.occupied.gap_enclosing(addr)

    def _check_around(self: VmapAllocator, addr: int) -> None:
        vn = self.vmap_nodes[self.addr_to_node_id(addr)]
        busy = vn.busy.find(addr)
        free = self._free_at(addr)
        if busy is not None:
            if busy.va_start >= busy.va_end:
                raise InvariantError(f"busy area {busy!r} is empty or inverted")
            if self.addr_to_node_id(busy.va_start) != vn.id:
                raise InvariantError(
                    f"busy area {busy!r} is in node {vn.id}, not its address's node"
                )
            if free is not None:
                raise InvariantError(
                    f"{addr:#x} is both busy ({busy!r}) and free ({free[0]:#x}-{free[1]:#x})"
                )
            end_free = self._free_at(busy.va_end - 1)
            if end_free is not None:
                raise InvariantError(
                    f"busy area {busy!r} overlaps free range {end_free[0]:#x}-{end_free[1]:#x}"
                )
        if self.overlay is not None and free is not None:
            sub = self.overlay.lookup(addr)
            if sub is not None:
                raise InvariantError(f"{addr:#x} is both an overlay area ({sub!r}) and free")
        # the free blocks around: at addr, just below the area, at its end
        lo, hi = (busy.va_start, busy.va_end) if busy is not None else (addr, addr + 1)
        seen = set()
        for point in (addr, lo - 1, hi):
            rng = self._free_at(point)
            if rng is None or rng in seen:
                continue
            seen.add(rng)
            self._check_free_block(rng)

    def _check_free_block(self: VmapAllocator, rng: tuple[int, int]) -> None:
        start, end = rng
        if start >= end:
            raise InvariantError(f"free range {start:#x}-{end:#x} is empty or inverted")
        if self.free is not None:
            blk = self.free.find_enclosing(start)
            nxt = self.free.next_block(blk) if blk is not None else None
            prv = self.free.prev_block(blk) if blk is not None else None
            if nxt is not None and nxt.va_start <= end:
                raise InvariantError(
                    f"free range {nxt.va_start:#x}-{nxt.va_end:#x} touches the previous one "
                    f"({start:#x}-{end:#x}): not coalesced"
                )
            if prv is not None and prv.va_end >= start:
                raise InvariantError(
                    f"free range {start:#x}-{end:#x} touches the previous one "
                    f"({prv.va_start:#x}-{prv.va_end:#x}): not coalesced"
                )
            if self.occupied is not None:
                gap = self.occupied.gap_enclosing(start)
                if gap != (start, end):
                    raise InvariantError(
                        f"occupied index's gaps differ from the free blocks at {start:#x}-{end:#x}"
                    )
        # whatever sits right after the block must not be free (else not coalesced)
        # and must not start inside it
        if end < ULONG_MAX:
            vn = self.vmap_nodes[self.addr_to_node_id(end - 1)]
            inside = vn.busy.find(end - 1)
            if inside is not None:
                raise InvariantError(
                    f"busy area {inside!r} overlaps free range {start:#x}-{end:#x}"
                )

    def check_invariants(self: VmapAllocator) -> None:
        """Raise :class:`~vmapsim.InvariantError` naming the first broken rule."""
        if not self.vmap_initialized:
            return  # early boot: only vmlist exists, nothing is indexed yet
        free = self.free
        occupied = self.occupied
        if free is not None:
            free.check()
        if occupied is not None:
            occupied.check()
        for vn in self.vmap_nodes:
            vn.busy.check()
            vn.lazy.check()
        if self.overlay is not None:
            self.overlay.check()

        ranges: list[tuple[int, int, str]] = []
        prev_end = None
        free_ranges = (
            [(va.va_start, va.va_end) for va in free] if free is not None else list(occupied.gaps())
        )
        if free is not None and occupied is not None:
            gaps = list(occupied.gaps())
            if gaps != free_ranges:
                diff = sorted(set(gaps) ^ set(free_ranges))[:3]
                raise InvariantError(
                    "occupied index's gaps differ from the free blocks at "
                    + ", ".join(f"{s:#x}-{e:#x}" for s, e in diff)
                )
        for start, end in free_ranges:
            if start >= end:
                raise InvariantError(f"free range {start:#x}-{end:#x} is empty or inverted")
            if prev_end is not None and start == prev_end:
                raise InvariantError(
                    f"free range {start:#x}-{end:#x} touches the previous one: not coalesced"
                )
            prev_end = end
            ranges.append((start, end, "free"))
        for va in self.vmap_retry_queue:
            ranges.append((va.va_start, va.va_end, "retry queue"))

        nr = self.nr_vmap_nodes
        lazy_pages = 0
        nr_block_areas = 0
        for vn in self.vmap_nodes:
            for va in vn.busy:
                if va.flags & VMAP_BLOCK:
                    nr_block_areas += 1
                if self.addr_to_node_id(va.va_start) != vn.id:
                    raise InvariantError(
                        f"busy area {va!r} is in node {vn.id}, not its address's node"
                    )
                ranges.append((va.va_start, va.va_end, f"busy[{vn.id}]"))
            for va in vn.lazy:
                vn_id = decode_vn_id(va.flags, nr)
                want = vn_id if vn_id < nr else self.addr_to_node_id(va.va_start)
                if want != vn.id:
                    raise InvariantError(f"lazy area {va!r} is in node {vn.id}, expected {want}")
                lazy_pages += (va.va_end - va.va_start) >> PAGE_SHIFT
                ranges.append((va.va_start, va.va_end, f"lazy[{vn.id}]"))
            for idx, pool in vn.pools.items():
                if not 0 <= idx < MAX_VA_SIZE_PAGES:
                    raise InvariantError(f"node {vn.id} has pool index {idx}")
                for va in pool:
                    if (va.va_end - va.va_start - 1) >> PAGE_SHIFT != idx:
                        raise InvariantError(f"pooled area {va!r} is in pool {idx} of node {vn.id}")
                    ranges.append((va.va_start, va.va_end, f"pool[{vn.id}][{idx}]"))
        if self.overlay is not None:
            # a chunk's space is occupied as a busy area of the busy index; the
            # overlay's check() accounts for every sub-area inside it
            busy_ids = {id(va) for vn in self.vmap_nodes for va in vn.busy}
            busy_ids.update(id(va) for va in self.vmap_retry_queue)
            for chunk in self.overlay:
                if id(chunk) not in busy_ids:
                    raise InvariantError(f"overlay chunk {chunk!r} is not a busy area")

        if lazy_pages != self.vmap_lazy_nr:
            raise InvariantError(
                f"vmap_lazy_nr is {self.vmap_lazy_nr} but lazy areas hold {lazy_pages} pages"
            )

        ranges.sort()
        cursor = 1
        for start, end, where in ranges:
            if start < cursor:
                raise InvariantError(
                    f"{where} range {start:#x}-{end:#x} overlaps what ends at {cursor:#x}"
                )
            if start > cursor:
                raise InvariantError(f"range {cursor:#x}-{start:#x} is lost (in no structure)")
            cursor = end
        if cursor != ULONG_MAX:
            raise InvariantError(f"range {cursor:#x}-{ULONG_MAX:#x} is lost (in no structure)")

        # vmap blocks, kvfree_rcu'd areas and percpu chunks (core/kernel/vmap_block.py,
        # core/kernel/rcu.py, core/kernel/percpu.py)
        busy: dict[int, VmapArea] = {}
        if nr_block_areas or self._rcu_cbs or self.percpu.chunks:
            busy = {va.va_start: va for vn in self.vmap_nodes for va in vn.busy}
            busy.update((va.va_start, va) for va in self.vmap_retry_queue)
            if self.overlay is not None:  # -- overlay: its areas are busy too
                busy.update((va.va_start, va) for va in self.overlay.areas())
        self._check_vmap_blocks(busy, nr_block_areas)
        self._check_rcu(busy)
        self.percpu.check(busy)
