"""The allocation side of the flow: ``alloc_vmap_area()`` and what it calls.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`; it reads the state set
up there (``free``, ``coalesce``, ``vmap_nodes``, ``metrics`` …).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from vmapsim.errors import VmapError
from vmapsim.kernel.area import VmapArea, VmStruct
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX
from vmapsim.kernel.gfp import GFP_KERNEL, GFP_NOWAIT, GFP_RECLAIM_MASK, Gfp
from vmapsim.kernel.vmap_node import encode_vn_id

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "FL_FIT_TYPE",
    "LE_FIT_TYPE",
    "NE_FIT_TYPE",
    "NOTHING_FIT",
    "RE_FIT_TYPE",
    "AllocMixin",
    "is_within_this_va",
]

# enum fit_type
NOTHING_FIT = 0
FL_FIT_TYPE = 1
LE_FIT_TYPE = 2
RE_FIT_TYPE = 3
NE_FIT_TYPE = 4

#: ``VA_FROM_BUMP_CHUNK`` (patch 11): ``va->flags`` bit of an area bumped from a chunk
VA_FROM_BUMP_CHUNK = 0x4

_DIRECT_RECLAIM = int(Gfp.DIRECT_RECLAIM)
_NOWARN = int(Gfp.NOWARN)
_RECLAIM_MASK = int(GFP_RECLAIM_MASK)
_GFP_KERNEL = int(GFP_KERNEL)
_GFP_NOWAIT = int(GFP_NOWAIT)
#: ``sizeof(struct vmap_bump_chunk)`` (patch 11-12) when the overlay does not say
_BUMP_CHUNK_BYTES = 131_136


def is_within_this_va(va: VmapArea, size: int, align: int, vstart: int) -> bool:
    """``is_within_this_va()``: can ``va`` hold ``size`` bytes aligned to
    ``align`` at or above ``vstart``?

    64-bit unsigned arithmetic: ``ALIGN`` wraps modulo 2**64 (a wrapped
    result is below ``vstart`` and fails) and a sum ``nva + size >= 2**64``
    is an overflow and fails.  ``vend`` is not checked here.  Free-block
    indexes (the rb-tree's, the maple free tree) decide fits with it.
    """
    nva = va.va_start if va.va_start > vstart else vstart
    nva = (nva + align - 1) & ULONG_MAX & ~(align - 1)
    end = nva + size
    if end > ULONG_MAX or nva < vstart:
        return False
    return end <= va.va_end


def fit_needs_spare(va: VmapArea, nva_start_addr: int, size: int) -> bool:
    """Whether cutting ``[nva, nva+size)`` out of ``va`` is an NE fit (needs a second node)."""
    return classify_va_fit_type(va, nva_start_addr, size) == NE_FIT_TYPE


def classify_va_fit_type(va: VmapArea, nva_start_addr: int, size: int) -> int:
    """``classify_va_fit_type()``: how ``[nva, nva+size)`` sits inside free block ``va``."""
    start = va.va_start
    end = va.va_end
    if nva_start_addr < start or nva_start_addr + size > end:
        return NOTHING_FIT
    if start == nva_start_addr:
        return FL_FIT_TYPE if end == nva_start_addr + size else LE_FIT_TYPE
    if end == nva_start_addr + size:
        return RE_FIT_TYPE
    return NE_FIT_TYPE


class AllocMixin:
    """``alloc_vmap_area()``, ``__alloc_vmap_area()``, ``va_alloc()``, ``va_clip()``,
    ``node_alloc()`` and the per-CPU NE-fit preload."""

    # -- vmap_area_cachep --------------------------------------------------
    def _kmem_cache_alloc_va(self: VmapAllocator, can_block: bool) -> VmapArea | None:
        """``kmem_cache_alloc(vmap_area_cachep, gfp)``: a fresh object, or None on failure."""
        if self._lockdep is not None:
            self.might_alloc(can_block, "kmem_cache_alloc(vmap_area_cachep)")
        if self.faults.enabled and self.faults.should_fail(can_block, "vmap_area"):
            return None
        va = VmapArea(0, 0)
        va.slab_pos, va.slab_blk = self.va_cache.alloc()
        self.metrics.va_allocs += 1
        return va

    def _kmem_cache_free_va(self: VmapAllocator, va: VmapArea) -> None:
        """``kmem_cache_free(vmap_area_cachep, va)``."""
        self.va_cache.free(va.slab_pos, va.slab_blk)
        self.metrics.va_frees += 1

    def _preload_this_cpu_lock(self: VmapAllocator, cpu: int, can_block: bool) -> None:
        """``preload_this_cpu_lock()``: make sure this CPU holds a spare node for an
        NE fit, allocated before ``free_vmap_area_lock`` is taken; then take it."""
        preload = self.ne_fit_preload_node
        if preload[cpu] is None:
            va = self._kmem_cache_alloc_va(can_block)
            if va is not None:
                preload[cpu] = va
        self.spin_lock("free_vmap_area_lock")

    # -- the free-space search ---------------------------------------------
    def _va_clip(
        self: VmapAllocator, va: VmapArea, nva_start_addr: int, size: int, cpu: int
    ) -> int:
        """``va_clip()``: cut ``[nva, nva+size)`` out of free block ``va``; 0 or -errno."""
        fit = classify_va_fit_type(va, nva_start_addr, size)
        free = self.free
        if fit == FL_FIT_TYPE:
            free.unlink(va)
            self._kmem_cache_free_va(va)
            return 0
        if fit == LE_FIT_TYPE:
            va.va_start += size
            free.propagate(va)
            return 0
        if fit == RE_FIT_TYPE:
            va.va_end = nva_start_addr
            free.propagate(va)
            return 0
        if fit == NE_FIT_TYPE:
            lva = self.ne_fit_preload_node[cpu]
            self.ne_fit_preload_node[cpu] = None
            if lva is None:
                lva = self._kmem_cache_alloc_va(False)  # GFP_NOWAIT under the spinlock
                if lva is None:
                    return -errno.ENOMEM
            lva.va_start = va.va_start
            lva.va_end = nva_start_addr
            va.va_start = nva_start_addr + size
            free.propagate(va)
            free.insert(lva, va)
            return 0
        return -errno.EINVAL

    def _va_alloc(
        self: VmapAllocator, va: VmapArea, size: int, align: int, vstart: int, vend: int, cpu: int
    ) -> int:
        """``va_alloc()``: place the request in ``va``; the address or -errno."""
        base = va.va_start if va.va_start > vstart else vstart
        nva_start_addr = ((base + align - 1) & -align) & ULONG_MAX  # ALIGN() may wrap
        if (nva_start_addr + size) & ULONG_MAX > vend:
            return -errno.ERANGE
        ret = self._va_clip(va, nva_start_addr, size, cpu)
        if ret:
            self._warn_va_clip(cpu, ret)
            return ret
        return nva_start_addr

    def _warn_va_clip(self: VmapAllocator, cpu: int, ret: int) -> None:
        """``va_alloc()``'s ``WARN_ON_ONCE`` when ``va_clip()`` fails."""
        self._warn_once(
            "va_alloc", f"WARNING: CPU: {cpu} at mm/vmalloc.c va_alloc: va_clip() returned {ret}"
        )

    def __alloc_vmap_area(
        self: VmapAllocator,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        cpu: int,
        can_block: bool = True,
    ) -> int:
        """``__alloc_vmap_area()``: the lowest fit, from the free index's blocks
        or, when the stage has an occupied index, from its gaps (``mas_empty_area``).

        With both (stages 2-6), the gap search answers; the range is marked in
        use, then cut out of the free block holding it (``va_clip``).  When the
        busy index publishes into the occupied index itself (stage 7 on), the
        search is all: the publish is the one store."""
        adjust_search_size = not (align <= PAGE_SIZE or vend - vstart == size)
        occupied = self.occupied
        if occupied is None:
            va = self.free.find_vmap_lowest_match(size, align, vstart, adjust_search_size)
            if va is None:
                return -errno.ENOENT
            return self._va_alloc(va, size, align, vstart, vend, cpu)
        nva = occupied.find_lowest_fit(size, align, vstart, vend, adjust_search_size)
        if nva < 0:
            return nva
        free = self.free
        if free is not None:
            va = free.find_enclosing(nva)
            if va is None:  # pragma: no cover - the two indexes disagree: a model bug
                raise AssertionError(f"gap at {nva:#x} is in no free block")
            if fit_needs_spare(va, nva, size) and not self._have_spare(cpu):
                # the clip would fail: va_alloc()'s WARN_ON_ONCE, as at stages 0-1
                self._warn_va_clip(cpu, -errno.ENOMEM)
                return -errno.ENOMEM
        if not self._busy_occupies:
            ret = occupied.occupy(nva, nva + size, can_block)
            if ret:
                return ret
        if free is not None:
            ret = self._va_clip(va, nva, size, cpu)
            if ret:  # pragma: no cover - checked above
                raise AssertionError(f"va_clip() returned {ret} after the spare check")
        return nva

    def _have_spare(self: VmapAllocator, cpu: int) -> bool:
        """An NE fit's second node: the preload, else a ``GFP_NOWAIT`` allocation
        now (kept as the preload), so the clip that follows cannot fail."""
        if self.ne_fit_preload_node[cpu] is not None:
            return True
        lva = self._kmem_cache_alloc_va(False)
        if lva is None:
            return False
        self.ne_fit_preload_node[cpu] = lva
        return True

    # -- per-node pools ------------------------------------------------------
    def _node_pool_del_va(
        self: VmapAllocator, vn_id: int, size: int, align: int, vstart: int, vend: int
    ) -> VmapArea | None:
        """``node_pool_del_va()``: take the head of the pool for ``size`` if aligned."""
        vn = self.vmap_nodes[vn_id]
        idx = (size - 1) // PAGE_SIZE
        pool = vn.pools.get(idx)
        if not pool:
            return None
        c = self.metrics
        self.spin_lock("vmap_node.pool_lock", vn_id)
        va = pool[0]
        if va.va_start & (align - 1) == 0:
            if va.size != size or va.va_start < vstart or va.va_end > vend:
                self._warn_once(
                    "node_pool_del_va",
                    f"WARNING: at mm/vmalloc.c node_pool_del_va: pooled area "
                    f"{va.va_start:#x}-{va.va_end:#x} does not fit request size {size}",
                )
                self.spin_unlock("vmap_node.pool_lock", vn_id)
                return None
            pool.popleft()
            va.list_next = va.list_prev = None
            c.list_ops += 1
            self.spin_unlock("vmap_node.pool_lock", vn_id)
            return va
        pool.rotate(-1)  # list_move_tail
        c.list_ops += 1
        self.spin_unlock("vmap_node.pool_lock", vn_id)
        return None

    def _node_alloc(
        self: VmapAllocator, size: int, align: int, vstart: int, vend: int, cpu: int
    ) -> tuple[VmapArea | None, int]:
        """``node_alloc()``: try this CPU's node pool; returns (area or None, encoded vn_id)."""
        nr = self.nr_vmap_nodes
        if vstart != self.vmalloc_start or vend != self.vmalloc_end or nr == 1:
            return None, 0
        node_id = cpu % nr
        va = self._node_pool_del_va(node_id, size, align, vstart, vend)
        if va is None:
            self.metrics.pool_misses += 1
        else:
            self.metrics.pool_hits += 1
        return va, encode_vn_id(node_id, nr)

    # -- alloc_vmap_area -------------------------------------------------------
    def _alloc_vmap_area(
        self: VmapAllocator,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        gfp: int,
        cpu: int,
        va_flags: int = 0,
        vm: VmStruct | None = None,
    ) -> VmapArea:
        """``alloc_vmap_area()`` after argument validation; raises VmapError."""
        if not self.vmap_initialized:
            if not self._lazy_bringup:
                raise VmapError(errno.EBUSY, "alloc_vmap_area: vmalloc is not initialised yet")
            self.vmalloc_init()  # deferred bring-up (stage 1 on): on first use
        c = self.metrics
        c.alloc_calls += 1
        c.cpu = cpu
        gfp &= _RECLAIM_MASK
        allow_block = bool(gfp & _DIRECT_RECLAIM)
        if self.vmap_retry_queue:
            self._publish_retry_queue(allow_block)

        # -- overlay, patches 11-12: vmap_bump_alloc() before anything else
        overlay = self.overlay
        bump10 = False
        if overlay is not None and not va_flags:
            if overlay.mode != 10:
                va = self._overlay_alloc(overlay, size, align, vstart, vend, cpu, allow_block)
                if va is not None:
                    return self._overlay_bind(va, size, vm)
            else:
                bump10 = True
        # -- end overlay

        if self.nr_vmap_nodes > 1:
            va, vn_id = self._node_alloc(size, align, vstart, vend, cpu)
        else:
            va, vn_id = None, 0
        if va is not None:
            addr = va.va_start
        else:
            va = self._kmem_cache_alloc_va(allow_block)
            if va is None:
                c.alloc_failures += 1
                raise VmapError(errno.ENOMEM, "alloc_vmap_area: vmap_area_cachep allocation failed")
            addr = -errno.EINVAL

        purged = False
        while addr < 0:
            if bump10:  # -- overlay, patch 10: the bump at "retry:", then the normal path
                addr = self._overlay_bump10(
                    overlay, va, size, align, vstart, vend, cpu, allow_block
                )
                if addr >= 0:
                    va.flags = va_flags | vn_id
                    # the busy.mt insert of the patch (see docs/stages.md, row 10)
                    bn = self.addr_to_node_id(addr)
                    self.spin_lock("vmap_node.busy.lock", bn)
                    self.spin_unlock("vmap_node.busy.lock", bn)
                    return self._overlay_bind(va, size, vm)
            if self.ne_fit_preload_node[cpu] is None and self.free is not None:
                self._preload_this_cpu_lock(cpu, allow_block)
            else:  # preloaded already, or no free blocks to split: just lock
                self.spin_lock("free_vmap_area_lock")
            addr = self.__alloc_vmap_area(size, align, vstart, vend, cpu, allow_block)
            self.spin_unlock("free_vmap_area_lock")
            if addr >= 0:
                break
            if not allow_block:
                self._kmem_cache_free_va(va)
                c.alloc_failures += 1
                raise VmapError(
                    errno.EBUSY, f"alloc_vmap_area: no space for size {size} (no reclaim)"
                )
            if not purged:
                self.reclaim_and_purge_vmap_areas()
                purged = True
                c.alloc_retries += 1
                continue
            freed = self._vmap_notify()
            if freed > 0:
                purged = False
                c.alloc_retries += 1
                continue
            if not gfp & _NOWARN:
                self._printk(
                    f"vmalloc_node_range for size {size} failed: "
                    f"Address range restricted to {vstart:#x} - {vend:#x}"
                )
            self._kmem_cache_free_va(va)
            c.alloc_failures += 1
            raise VmapError(errno.EBUSY, f"alloc_vmap_area: no space for size {size}")

        va.va_start = addr
        va.va_end = addr + size
        va.vm = None
        va.flags = va_flags | vn_id
        if vm is not None:
            vm.addr = addr
            vm.size = size
            va.vm = vm

        bn = (addr // self.vmap_zone_size) % self.nr_vmap_nodes
        vn = self.vmap_nodes[bn]
        self.spin_lock("vmap_node.busy.lock", bn)
        ret = vn.busy.publish(va, allow_block)
        self.spin_unlock("vmap_node.busy.lock", bn)
        if ret:
            if ret != -errno.ENOMEM:  # pragma: no cover - a model bug, not a user error
                raise AssertionError(f"busy publish refused ({ret}) for fresh area {va!r}")
            if self._busy_occupies:
                # stage 7 on the publish is the store that takes the gap: nothing
                # was taken, so the call fails as a node shortage (nothing lost)
                self._kmem_cache_free_va(va)
                c.alloc_failures += 1
                raise VmapError(errno.ENOMEM, "alloc_vmap_area: no maple nodes to publish")
            if self._publish_retry:
                # stage 5 on: park it where lookups see it; a later call publishes it
                self.vmap_retry_queue.append(va)
                c.publish_deferred += 1
            else:
                # stages 1-4 (modelled defect): the area is in no index at all;
                # the caller holds an address that vfree() cannot find
                c.publish_lost += 1
        return va

    # -- the overlay's side of the flow (stage 10 on) -----------------------------
    def _overlay_bump10(
        self: VmapAllocator,
        overlay,
        va: VmapArea,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        cpu: int,
        can_block: bool,
    ) -> int:
        """Patch 10's ``retry:`` hunk: ``vmap_bump_alloc()``; on ``-ENOENT``
        ``vmap_bump_refill()`` and once more.  The address, or -errno (the
        normal path runs)."""
        if not overlay.eligible(size, align, vstart, vend):
            return -errno.EINVAL
        if overlay.bump(va, size, align, cpu, 0):
            return va.va_start
        chunk = overlay.new_chunk(cpu, can_block)
        if chunk is not None:
            overlay.install(chunk, cpu)  # the old chunk is forgotten
            if overlay.bump(va, size, align, cpu, 0):
                return va.va_start
        self.metrics.overlay_fallbacks += 1
        return -errno.ENOENT

    def _overlay_alloc(
        self: VmapAllocator,
        overlay,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        cpu: int,
        can_block: bool,
    ) -> VmapArea | None:
        """Patches 11-12's hunk at the top of ``alloc_vmap_area()``:
        ``vmap_bump_alloc()``, and on NULL ``vmap_bump_refill()`` and once more
        (patch 11 refills on any NULL, an ineligible request's too; patch 12
        only for an eligible one).  None: the normal path runs."""
        eligible = overlay.eligible(size, align, vstart, vend)
        if overlay.mode == 12 and not eligible:
            return None
        va = self._vmap_bump_alloc(overlay, eligible, size, align, cpu, can_block)
        if va is None and self._vmap_bump_refill(overlay, cpu, can_block):
            va = self._vmap_bump_alloc(overlay, eligible, size, align, cpu, can_block)
        if va is None and eligible:
            self.metrics.overlay_fallbacks += 1
        return va

    def _vmap_bump_alloc(
        self: VmapAllocator,
        overlay,
        eligible: bool,
        size: int,
        align: int,
        cpu: int,
        can_block: bool,
    ) -> VmapArea | None:
        """``vmap_bump_alloc()`` (11-12): the ``vmap_area`` from
        ``vmap_area_cachep`` with the caller's gfp, then the bump under
        ``preempt_disable()``; the area is in no busy tree
        (``VA_FROM_BUMP_CHUNK``)."""
        if not eligible:
            return None
        va = self._kmem_cache_alloc_va(can_block)
        if va is None:
            return None
        if not overlay.bump(va, size, align, cpu, self.rcu_clock):
            self._kmem_cache_free_va(va)
            return None
        node = self.addr_to_node_id(va.va_start)
        va.flags = encode_vn_id(node, self.nr_vmap_nodes) | VA_FROM_BUMP_CHUNK
        return va

    def _vmap_bump_refill(self: VmapAllocator, overlay, cpu: int, can_block: bool) -> bool:
        """``vmap_bump_refill()`` (11-12): ``kvzalloc(sizeof(*new_chunk),
        gfp_mask)`` of the descriptor (131,136 bytes: kvmalloc's kmalloc
        attempt is an order-6 page allocation, fail_page_alloc can fail it;
        then the vmalloc fallback runs nested through this flow, core/kernel/
        kvmalloc.py), then 64 MiB from ``__alloc_vmap_area()`` under the free
        lock (on failure ``kvfree(new_chunk)``), then the install."""
        gfp = _GFP_KERNEL if can_block else _GFP_NOWAIT
        if self._lockdep is not None:
            self.might_alloc(can_block, "kvzalloc(vmap_bump_chunk)")
        desc = self.kvzalloc(getattr(overlay, "desc_bytes", _BUMP_CHUNK_BYTES), gfp, cpu=cpu)
        if desc is None:
            return False
        chunk = overlay.new_chunk(cpu, can_block)
        if chunk is None:
            self.kvfree(desc, cpu=cpu)  # kvfree(new_chunk)
            return False
        chunk.desc = desc
        if getattr(overlay, "free_desc", False) is None:
            overlay.free_desc = self._vmap_bump_free_desc
        overlay.install(chunk, cpu)
        return True

    def _vmap_bump_free_desc(self: VmapAllocator, chunk) -> None:
        """``kvfree_rcu(chunk, rcu)`` of a retired chunk's descriptor: a
        vmalloc'ed one is ``vfree()``'d after a grace period (the model's RCU
        clock), a kmalloc'ed one is ``kfree()``'d (the overlay tracks its
        lifetime for KASAN)."""
        desc = chunk.desc
        if desc and self.is_vmalloc_addr(desc):
            self.kvfree_rcu(desc)
        elif desc in self.kmalloc_objects:
            self.kfree(desc)

    def _overlay_bind(
        self: VmapAllocator, va: VmapArea, size: int, vm: VmStruct | None
    ) -> VmapArea:
        """A bump area handed out: bound to its ``vm_struct``."""
        va.vm = None
        if vm is not None:
            vm.addr = va.va_start
            vm.size = size
            va.vm = vm
        return va

    def _overlay_reserve(
        self: VmapAllocator, size: int, cpu: int, can_block: bool
    ) -> VmapArea | None:
        """The range of a chunk: ``preload_this_cpu_lock()`` +
        ``__alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END)``
        under the free lock, no purge, silent on failure.  The kernel marks it
        in the occupied tree only; the model publishes a busy area without a
        ``vm_struct`` over it (its stand-in for that range)."""
        self._preload_this_cpu_lock(cpu, can_block)
        vs, ve = self.vmalloc_start, self.vmalloc_end
        addr = self.__alloc_vmap_area(size, PAGE_SIZE, vs, ve, cpu, can_block)
        self.spin_unlock("free_vmap_area_lock")
        if addr < 0:
            return None
        cva = VmapArea(addr, addr + size)
        ret = self.vmap_nodes[self.addr_to_node_id(addr)].busy.publish(cva, can_block)
        if ret:
            if not self._busy_occupies and self.occupied is not None:
                self.occupied.release(addr, addr + size)
            return None
        return cva

    def _publish_retry_queue(self: VmapAllocator, can_block: bool) -> None:
        """Publish the areas parked by a failed publish (stage 5 on), oldest first,
        with this call's gfp; what still cannot get its nodes stays parked."""
        queue = self.vmap_retry_queue
        c = self.metrics
        kept: list[VmapArea] = []
        for va in queue:
            bn = self.addr_to_node_id(va.va_start)
            vn = self.vmap_nodes[bn]
            self.spin_lock("vmap_node.busy.lock", bn)
            ret = vn.busy.publish(va, can_block)
            self.spin_unlock("vmap_node.busy.lock", bn)
            if ret:
                kept.append(va)
            else:
                c.publish_retried += 1
        queue[:] = kept

    def _vmap_notify(self: VmapAllocator) -> int:
        """``blocking_notifier_call_chain(&vmap_notify_list)``: pages the notifiers freed."""
        freed = 0
        for notifier in list(self.vmap_notify_list):
            freed += int(notifier(self) or 0)
        return freed
