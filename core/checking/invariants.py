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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.errors import InvariantError
from vmapsim.kernel.area import VMAP_BLOCK, VmapArea
from vmapsim.kernel.constants import MAX_VA_SIZE_PAGES, PAGE_SHIFT, ULONG_MAX
from vmapsim.kernel.vmap_node import decode_vn_id

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["InvariantsMixin"]


class InvariantsMixin:
    """``check_invariants()`` and its parts."""

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
