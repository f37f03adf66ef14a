"""Lazy freeing and purging: ``free_vmap_area_noflush()``, ``__purge_vmap_area_lazy()``,
``purge_vmap_node()``, ``decay_va_pool_node()``, ``reclaim_list_global()``, and the
"vmap-node" shrinker (``vmap_node_shrink_count()`` / ``vmap_node_shrink_scan()``).

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.

Scheduled work runs at once: when a lazy free pushes ``vmap_lazy_nr`` over
``lazy_max_pages()``, the drain that the kernel would ``schedule_work()``
runs before the freeing call returns.  Purge helpers that the kernel runs
as work on other CPUs run inline, node by node in id order; the result is
the same because each node's pools are only touched by that node's purge.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from vmapsim.kernel.area import VmapArea
from vmapsim.kernel.constants import (
    MAX_VA_SIZE_PAGES,
    PAGE_SHIFT,
    SHRINK_EMPTY,
    SHRINK_STOP,
    ULONG_MAX,
)

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["PurgeMixin"]


class PurgeMixin:
    """The lazy-free and purge paths."""

    def lazy_max_pages(self: VmapAllocator) -> int:
        """``lazy_max_pages()``: ``fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)``."""
        return self.nr_cpus.bit_length() * ((32 << 20) >> PAGE_SHIFT)

    def _free_vmap_area_noflush(self: VmapAllocator, va: VmapArea) -> None:
        """``free_vmap_area_noflush()``: queue an unlinked area on its node's lazy queue."""
        if va.list_next is not None:
            self._warn_once(
                "free_vmap_area_noflush",
                f"WARNING: at mm/vmalloc.c free_vmap_area_noflush: area "
                f"{va.va_start:#x}-{va.va_end:#x} is still on a list",
            )
            return
        c = self.metrics
        c.lazy_frees += 1
        nr_lazy = self.vmap_lazy_nr = self.vmap_lazy_nr + ((va.va_end - va.va_start) >> PAGE_SHIFT)
        nr = self.nr_vmap_nodes
        vn_id = (va.flags >> 8) - 1  # decode_vn_id(), inline on the hot path
        if not 0 <= vn_id < nr:
            vn_id = (va.va_start // self.vmap_zone_size) % self.nr_vmap_nodes
        c.touch(self.line_vmap_lazy_nr, True)  # atomic_long_add_return_relaxed()
        self.spin_lock("vmap_node.lazy.lock", vn_id)
        if not self.vmap_nodes[vn_id].lazy.add(va):  # pragma: no cover - model bug
            raise AssertionError(f"lazy insert refused for {va!r}")
        self.spin_unlock("vmap_node.lazy.lock", vn_id)
        if nr_lazy > self._lazy_max:
            self.drain_vmap_area_work()

    def drain_vmap_area_work(self: VmapAllocator) -> None:
        """``drain_vmap_area_work()``: the threshold drain (pools decay by ~25%).

        The kernel runs it from a work item (``schedule_work``), so it is a
        kernel operation of its own for the cost model: the caller's
        operation ends before it (``Counters.op_end``), and it ends after."""
        self.metrics.op_end()
        self.mutex_lock("vmap_purge_lock")
        self.__purge_vmap_area_lazy(ULONG_MAX, 0, False)
        self.mutex_unlock("vmap_purge_lock")
        self.metrics.op_end()

    def reclaim_and_purge_vmap_areas(self: VmapAllocator) -> None:
        """``reclaim_and_purge_vmap_areas()``: purge fragmented vmap blocks, then
        everything lazy, decaying pools fully."""
        self.mutex_lock("vmap_purge_lock")
        self.purge_fragmented_blocks_allcpus()  # core/kernel/vmap_block.py
        self.__purge_vmap_area_lazy(ULONG_MAX, 0, True)
        self.mutex_unlock("vmap_purge_lock")

    def vm_unmap_aliases(self: VmapAllocator) -> None:
        """``vm_unmap_aliases()`` -> ``_vm_unmap_aliases(ULONG_MAX, 0, 0)``: purge
        fragmented vmap blocks or collect their dirty ranges (and, stage 10 on,
        the overlay's freed areas), then purge every lazily freed area,
        decaying the pools by ~25% only; if nothing was purged but a range is
        dirty, flush that range."""
        self.mutex_lock("vmap_purge_lock")
        start, end, flush = self._vb_unmap_aliases(ULONG_MAX, 0)  # core/kernel/vmap_block.py
        dirty = self.overlay.dirty_span() if self.overlay is not None else None
        if dirty is not None:  # -- overlay
            start, end = min(start, dirty[0]), max(end, dirty[1])
            flush = True
        if not self.__purge_vmap_area_lazy(start, end, False) and flush:
            self._flush_tlb_kernel_range(start, end)
        self.mutex_unlock("vmap_purge_lock")
        self._debug_check()

    def _overlay_release(self: VmapAllocator, chunk: VmapArea) -> None:
        """A retired chunk's range goes back to the allocator at once (patches
        11-12, ``vmap_bump_unlink()``: ``occupied_mt_erase_range_locked(base,
        limit)`` under the free lock): no lazy queue, no TLB flush.  In the
        model: the stand-in busy area leaves its node's busy view, then the
        range leaves the occupied tree."""
        self.spin_lock("free_vmap_area_lock")
        self.vmap_nodes[self.addr_to_node_id(chunk.va_start)].busy.unlink(chunk)
        if self.occupied is not None:
            self.occupied.release(chunk.va_start, chunk.va_end)
        elif self.free is not None:  # pragma: no cover - no posted stage has an overlay without it
            self.coalesce.merge_or_add(chunk)
            self._drain_coalesced()
        self.spin_unlock("free_vmap_area_lock")

    def purge_vmap_area_lazy(self: VmapAllocator) -> None:
        """Purge every lazily freed area now, as the allocation-failure path does
        (``reclaim_and_purge_vmap_areas()``: full pool decay)."""
        self.reclaim_and_purge_vmap_areas()
        self._debug_check()

    def vmap_node_shrink_count(self: VmapAllocator) -> int:
        """``vmap_node_shrink_count()``: the areas held in every node's pools,
        or ``SHRINK_EMPTY`` when there are none (read without locks)."""
        count = sum(len(pool) for vn in self.vmap_nodes for pool in vn.pools.values())
        return count or SHRINK_EMPTY

    def vmap_node_shrink_scan(self: VmapAllocator) -> int:
        """``vmap_node_shrink_scan()``: memory pressure empties every node's
        pools into the global free tree (``decay_va_pool_node(vn, true)``
        under ``vmap_purge_lock``, as 7.0-stable and later take it); lazily
        freed areas stay queued and no TLB flush is made.  Returns
        ``SHRINK_STOP``, as the kernel's scan does."""
        self.mutex_lock("vmap_purge_lock")
        for vn in self.vmap_nodes:
            if vn.pools:
                self._decay_va_pool_node(vn, True)
        self.mutex_unlock("vmap_purge_lock")
        self._debug_check()
        return SHRINK_STOP

    def __purge_vmap_area_lazy(
        self: VmapAllocator, start: int, end: int, full_pool_decay: bool
    ) -> bool:
        """``__purge_vmap_area_lazy()``: decay pools, detach every node's lazy list,
        one TLB flush over the union, then purge node by node."""
        c = self.metrics
        c.purges += 1
        marked = []
        for vn in self.vmap_nodes:
            vn.purge_list = []
            vn.skip_populate = full_pool_decay
            if vn.pools:
                self._decay_va_pool_node(vn, full_pool_decay)
            if not len(vn.lazy):
                continue
            self.spin_lock("vmap_node.lazy.lock", vn.id)
            purge = vn.lazy.detach_all()
            self.spin_unlock("vmap_node.lazy.lock", vn.id)
            # a queue may hand back its own order (list_head, stage 8 on: the order
            # queued); purge_vmap_node() pools and merges in address order.
            # Timsort is one pass over an already sorted list (stages 0-7).
            purge.sort(key=_va_start)
            vn.purge_list = purge
            if purge[0].va_start < start:
                start = purge[0].va_start
            if purge[-1].va_end > end:
                end = purge[-1].va_end
            marked.append(vn)
        if not marked:
            return False
        self._flush_tlb_kernel_range(start, end)
        purged_areas = 0
        for vn in marked:
            purged_areas += self._purge_vmap_node(vn)
        return purged_areas > 0

    def _flush_tlb_kernel_range(self: VmapAllocator, start: int, end: int) -> None:
        """``flush_tlb_kernel_range()``: counted, and the range remembered."""
        self.metrics.tlb_flushes += 1
        self.last_tlb_flush = (start, end)

    def _purge_vmap_node(self: VmapAllocator, vn) -> int:
        """``purge_vmap_node()``: return purged areas to the node's pools or the global tree."""
        c = self.metrics
        nr = self.nr_vmap_nodes
        nr_purged_pages = 0
        local_list: list[VmapArea] = []
        pools = vn.pools
        skip = vn.skip_populate
        vn.nr_purged = 0  # this purge's count, as purge_vmap_node() restarts it
        for va in vn.purge_list:
            size = va.va_end - va.va_start
            nr_purged_pages += size >> PAGE_SHIFT
            vn.nr_purged += 1
            vn_id = (va.flags >> 8) - 1  # decode_vn_id()
            if 0 <= vn_id < nr and not skip:
                idx = (size - 1) >> PAGE_SHIFT
                if idx < MAX_VA_SIZE_PAGES:  # node_pool_add_va()
                    self.spin_lock("vmap_node.pool_lock", vn.id)
                    pool = pools.get(idx)
                    if pool is None:
                        pool = pools[idx] = deque()
                    pool.appendleft(va)
                    va.list_next = va  # on a list (the pool)
                    c.list_ops += 1
                    self.spin_unlock("vmap_node.pool_lock", vn.id)
                    continue
            local_list.append(va)
        count = len(vn.purge_list)
        vn.purge_list = []
        local_list.reverse()  # list_add() onto local_list puts the last one first
        self._reclaim_list_global(local_list)
        self.vmap_lazy_nr -= nr_purged_pages
        return count

    def _reclaim_list_global(self: VmapAllocator, areas: list[VmapArea]) -> None:
        """``reclaim_list_global()``: give each area back to the global free space:
        its range leaves the occupied index (if the stage has one: the gap it
        joins is all the coalescing there is), and the area merges into the
        free index (if the stage keeps one) or is freed."""
        if not areas:
            return
        self.spin_lock("free_vmap_area_lock")
        occupied = self.occupied
        if occupied is not None:
            release = occupied.release
            for va in areas:
                release(va.va_start, va.va_end)
        if self.free is None:
            for va in areas:
                va.list_next = va.list_prev = None
                self._kmem_cache_free_va(va)
            self.spin_unlock("free_vmap_area_lock")
            return
        merge = self.coalesce.merge_or_add
        for va in areas:
            va.list_next = va.list_prev = None
            merge(va)
        self._drain_coalesced()
        self.spin_unlock("free_vmap_area_lock")

    def _decay_va_pool_node(self: VmapAllocator, vn, full_decay: bool) -> None:
        """``decay_va_pool_node()``: return ~25% (or all) of each pool to the global tree.

        Each non-empty pool is detached under ``pool_lock`` and, if anything
        is left after the decay, attached back under it again."""
        c = self.metrics
        decay: list[VmapArea] = []
        for idx in sorted(vn.pools):
            pool = vn.pools[idx]
            if not pool:
                continue
            # list_replace_init() of the pool under pool_lock, the decay outside it
            self.spin_lock("vmap_node.pool_lock", vn.id)
            self.spin_unlock("vmap_node.pool_lock", vn.id)
            n_decay = len(pool) if full_decay else len(pool) >> 2
            for _ in range(n_decay):
                decay.append(pool.popleft())
            c.list_ops += n_decay
            if pool:  # the rest is attached back under pool_lock
                self.spin_lock("vmap_node.pool_lock", vn.id)
                self.spin_unlock("vmap_node.pool_lock", vn.id)
            else:
                del vn.pools[idx]
        if decay:
            decay.sort(key=_va_start)  # the private decay tree keeps them sorted
            self._reclaim_list_global(decay)


def _va_start(va: VmapArea) -> int:
    return va.va_start
