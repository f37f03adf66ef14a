"""The vmalloc layer: ``vmalloc()``, ``__vmalloc_node()``, ``vfree()``,
``remove_vm_area()``, ``find_vmap_area()`` and ``find_unlink_vmap_area()``.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.  Pages are not
modelled: an allocation is its virtual range and its ``vm_struct``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.checking.validate import (
    alloc_vmap_area_einval,
    check_cpu,
    check_gfp,
    check_int,
    check_ulong,
)
from vmapsim.errors import VmapError
from vmapsim.kernel.area import (
    VM_ALLOC,
    VM_IOREMAP,
    VM_NO_GUARD,
    VM_UNINITIALIZED,
    VmapArea,
    VmStruct,
)
from vmapsim.kernel.constants import IOREMAP_MAX_ORDER, PAGE_SHIFT, PAGE_SIZE, ULONG_MAX
from vmapsim.kernel.gfp import GFP_KERNEL, GFP_RECLAIM_MASK, Gfp, gfpflags_allow_blocking

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["VmallocMixin"]

_NOWARN = int(Gfp.NOWARN)
_NOFAIL = int(Gfp.NOFAIL)
_ZERO = int(Gfp.ZERO)
_HIGHMEM = int(Gfp.HIGHMEM)
_GFP_KERNEL = int(GFP_KERNEL)
_PAGE_MASK = PAGE_SIZE - 1


class VmallocMixin:
    """The callers' entry points."""

    # -- allocation ------------------------------------------------------------
    def vmalloc(self: VmapAllocator, size: int, *, cpu: int = 0) -> int | None:
        """``vmalloc()``: ``size`` bytes of virtually contiguous memory; the address or None."""
        if (
            type(size) is not int
            or not 0 <= size <= ULONG_MAX
            or type(cpu) is not int
            or not 0 <= cpu < self.nr_cpus
        ):
            check_cpu(cpu, self.nr_cpus)
            check_ulong("size", size)
        self._rcu_tick()  # the modeled RCU clock (core/kernel/rcu.py)
        return self.__vmalloc_node_range(
            size, 1, self.vmalloc_start, self.vmalloc_end, _GFP_KERNEL, 0, cpu, "vmalloc"
        )

    def vmalloc_node(
        self: VmapAllocator, size: int, align: int, *, gfp: int = _GFP_KERNEL, cpu: int = 0
    ) -> int | None:
        """``__vmalloc_node()``: ``size`` bytes aligned to ``align``; the address or None.

        An ``align`` that is no power of two fails as in the kernel
        (``alloc_vmap_area()``'s ``-EINVAL``): None, and the ``warn_alloc()``
        line unless ``__GFP_NOWARN``.
        """
        check_cpu(cpu, self.nr_cpus)
        check_ulong("size", size)
        check_ulong("align", align)
        gfp = check_gfp(gfp)
        self._rcu_tick()
        return self.__vmalloc_node_range(
            size, align, self.vmalloc_start, self.vmalloc_end, gfp, 0, cpu, "__vmalloc_node"
        )

    def vmalloc_gfp(self: VmapAllocator, size: int, *, gfp: int, cpu: int = 0) -> int | None:
        """``__vmalloc(size, gfp)``: ``size`` bytes with the caller's gfp.

        A non-blocking gfp (``GFP_ATOMIC``, ``GFP_NOWAIT``) never purges and
        retries: without free space the call fails (warning unless
        ``__GFP_NOWARN``)."""
        check_cpu(cpu, self.nr_cpus)
        check_ulong("size", size)
        gfp = check_gfp(gfp)
        self._rcu_tick()
        return self._vmalloc_range(size, 1, gfp, cpu, "__vmalloc")

    def get_vm_area_caller(
        self: VmapAllocator,
        size: int,
        flags: int,
        start: int,
        end: int,
        caller: str | None,
        *,
        gfp: int = _GFP_KERNEL,
        cpu: int = 0,
    ) -> VmStruct | None:
        """``__get_vm_area_caller()``: a ``vm_struct`` of ``size`` bytes (page-rounded,
        plus the guard page unless ``VM_NO_GUARD``) with ``flags`` and ``caller``,
        placed at the lowest fit in ``[start, end)``; its pages are not mapped.

        What ioremap, vmap and the module loader reserve; also how a tool
        rebuilds a recorded area at its address (a window exactly its size).
        ``VM_IOREMAP`` aligns as ``__get_vm_area_node()`` does.  None when the
        window has no fit (after the purge-and-retry, with a blocking ``gfp``).
        """
        check_cpu(cpu, self.nr_cpus)
        size = check_ulong("size", size)
        flags = check_int("flags", flags)
        start = check_ulong("start", start)
        end = check_ulong("end", end)
        gfp = check_gfp(gfp)
        self._rcu_tick()
        try:
            rounded = ((size + _PAGE_MASK) & ~_PAGE_MASK) & ULONG_MAX
            return self.__get_vm_area_node(
                size, rounded, 1, flags, start, end, gfp, cpu, caller or None
            )
        finally:
            self._debug_check()

    def _vmalloc_range(
        self: VmapAllocator, size: int, align: int, gfp: int, cpu: int, caller: str
    ) -> int | None:
        """``__vmalloc_node_range()`` over the vmalloc window, for other mixins
        (``vrealloc()``); charges no clock tick."""
        return self.__vmalloc_node_range(
            size, align, self.vmalloc_start, self.vmalloc_end, gfp, 0, cpu, caller
        )

    def __vmalloc_node_range(
        self: VmapAllocator,
        size: int,
        align: int,
        start: int,
        end: int,
        gfp: int,
        vm_flags: int,
        cpu: int,
        caller: str,
    ) -> int | None:
        """``__vmalloc_node_range()``: the common vmalloc path."""
        self.metrics.cpu = cpu
        if size == 0:
            self._warn_once(
                "__vmalloc_node_range",
                f"WARNING: CPU: {cpu} at mm/vmalloc.c __vmalloc_node_range: zero-size request",
            )
            return None
        real_size = size
        size = ((size + _PAGE_MASK) & ~_PAGE_MASK) & ULONG_MAX  # unsigned long: may wrap to 0
        area = self.__get_vm_area_node(
            real_size,
            size,
            align,
            VM_ALLOC | VM_UNINITIALIZED | vm_flags,
            start,
            end,
            gfp,
            cpu,
            caller,
        )
        if area is None:
            if not gfp & _NOWARN:
                retrying = ". Retrying." if gfp & _NOFAIL else ""
                self._printk(
                    f"{caller}: vmalloc error: size {real_size}, vm_struct allocation "
                    f"failed{retrying}, mode:{gfp:#x}"
                )
            # __GFP_NOFAIL: the kernel sleeps a tick and tries again, forever.  The
            # model has no other CPU to free space meanwhile: it stops after the
            # first attempt and returns NULL (docs/divergences.md).
            self._debug_check()
            return None
        if self.faults.enabled and not self._vmalloc_area_pages(area, size, gfp, cpu, caller):
            self._debug_check()
            return None
        area.nr_pages = size >> PAGE_SHIFT  # __vmalloc_area_node() mapped them
        self.metrics.pages_mapped += area.nr_pages
        if gfp & _ZERO:
            self.metrics.pages_zeroed += area.nr_pages
        area.flags &= ~VM_UNINITIALIZED  # clear_vm_uninitialized_flag()
        self._debug_check(area.addr)
        return area.addr

    def _vmalloc_area_pages(
        self: VmapAllocator, area: VmStruct, size: int, gfp: int, cpu: int, caller: str
    ) -> bool:
        """``__vmalloc_area_node()``'s allocations, where fault injection can
        fail them (nothing else about them is modelled): the page array
        (``kmalloc`` of ``nr_pages * 8`` bytes, ``GFP_RECLAIM_MASK`` bits |
        ``__GFP_ZERO``), then the pages (``vm_area_alloc_pages()``: order 0 with
        ``__GFP_HIGHMEM | __GFP_NOWARN``, bulk requests of at most 100 pages,
        one page at a time after the first short bulk, stopping at the first
        failure).  On failure: ``warn_alloc()``'s line unless ``__GFP_NOWARN``,
        the area freed (``free_vm_area()`` / ``vfree()``), False.

        A page array above ``PAGE_SIZE`` (more than 512 pages) is
        ``__vmalloc_node()``'d in the kernel (a bounded nesting); the model
        does not allocate it, so it cannot fail (docs/divergences.md)."""
        nr_pages = size >> PAGE_SHIFT
        array_size = nr_pages * 8
        nested_gfp = (gfp & int(GFP_RECLAIM_MASK)) | _ZERO
        page_gfp = gfp | _HIGHMEM
        warn = not gfp & _NOWARN
        faults = self.faults
        # above PAGE_SIZE the array is a nested __vmalloc_node(), not modelled
        failed = array_size <= PAGE_SIZE and self._kmalloc_fails(array_size, nested_gfp)
        if failed:
            if warn:
                self._printk(
                    f"{caller}: vmalloc error: size {nr_pages * PAGE_SIZE}, failed to "
                    f"allocated page array size {array_size}, mode:{page_gfp:#x}"
                )
            self.remove_vm_area(area.addr, cpu)  # free_vm_area()
            return False
        bulk_gfp = page_gfp | _NOWARN
        done = 0
        while done < nr_pages:  # alloc_pages_bulk_node(), up to 100 pages a call
            if faults.should_fail_alloc_page(bulk_gfp, 0):
                break
            done += min(100, nr_pages - done)
        while done < nr_pages:  # alloc_pages_node(), one page at a time
            if faults.should_fail_alloc_page(bulk_gfp, 0):
                break
            done += 1
        if done == nr_pages:
            return True
        if warn:
            self._printk(
                f"{caller}: vmalloc error: size {done * PAGE_SIZE}, failed to allocate "
                f"pages, mode:{page_gfp:#x}"
            )
        self.metrics.free_calls += 1
        self.remove_vm_area(area.addr, cpu)  # vfree(area->addr)
        return False

    def __get_vm_area_node(
        self: VmapAllocator,
        requested_size: int,
        size: int,
        align: int,
        flags: int,
        start: int,
        end: int,
        gfp: int,
        cpu: int,
        caller: str,
    ) -> VmStruct | None:
        """``__get_vm_area_node()``: a ``vm_struct`` plus its area, guard page included."""
        if flags & VM_IOREMAP:
            order = max(size - 1, 1).bit_length()
            align = 1 << min(max(order, PAGE_SHIFT), IOREMAP_MAX_ORDER)
        if not size:  # the page-aligned size wrapped to 0
            return None
        if self._lockdep is not None:
            self.might_alloc(gfpflags_allow_blocking(gfp), "kzalloc_node(vm_struct)")
        vm = VmStruct(0, 0, flags, requested_size, caller)
        if not flags & VM_NO_GUARD:
            size = (size + PAGE_SIZE) & ULONG_MAX
            if not size:  # so did the guard page: alloc_vmap_area() says -EINVAL
                return None
        if alloc_vmap_area_einval(size, align) is not None:  # ERR_PTR(-EINVAL)
            return None
        try:
            self._alloc_vmap_area(size, align, start, end, gfp & int(GFP_RECLAIM_MASK), cpu, 0, vm)
        except VmapError:
            return None
        return vm

    def _busy_reinsert(self: VmapAllocator, va: VmapArea) -> None:
        """Link an area that a find-and-unlink took by mistake back into the
        busy tree of its address's node, under that node's busy lock."""
        bn = self.addr_to_node_id(va.va_start)
        self.spin_lock("vmap_node.busy.lock", bn)
        self.vmap_nodes[bn].busy.publish(va, True)
        self.spin_unlock("vmap_node.busy.lock", bn)

    # -- lookup ------------------------------------------------------------------
    def find_vmap_area(self: VmapAllocator, addr: int) -> VmapArea | None:
        """``find_vmap_area()``: the busy area containing ``addr``, or None.

        With the overlay: patches 11-12 look in the bump chunks first
        (``vmap_chunk_lookup()`` + ``page_va[]``); at patch 10 a bump area is
        found through the busy walk (in the model: the chunk's stand-in area,
        then the area inside it).  A chunk's range itself is no busy area."""
        addr = check_ulong("addr", addr)
        overlay = self.overlay
        if overlay is None:
            return self._busy_walk(addr, False)
        # -- overlay
        va = overlay.lookup(addr, None, self.rcu_clock)
        if va is None:
            va = self._busy_walk(addr, False)
            if va is not None and va.vm is None and overlay.owns(va):
                va = overlay.resolve(va, addr)
        return va

    def find_unlink_vmap_area(self: VmapAllocator, addr: int) -> VmapArea | None:
        """``find_unlink_vmap_area()``: find the busy area containing ``addr`` and
        unlink it, in one locked pass per node."""
        return self._busy_walk(addr, True)

    def _busy_walk(self: VmapAllocator, addr: int, unlink: bool) -> VmapArea | None:
        """The node walk both lookups share: start at ``addr``'s node, then step
        backwards through every node (an area can span zones), taking each
        node's busy lock once."""
        nodes = self.vmap_nodes
        if not nodes:  # before vmalloc_init(): nothing is busy yet
            return None
        nr = self.nr_vmap_nodes
        i = j = (addr // self.vmap_zone_size) % nr
        while True:
            self.spin_lock("vmap_node.busy.lock", i)
            busy = nodes[i].busy
            va = busy.find_unlink(addr) if unlink else busy.find(addr)
            self.spin_unlock("vmap_node.busy.lock", i)
            if va is not None:
                return va
            i = (i + nr - 1) % nr
            if i == j:
                break
        if self.vmap_retry_queue:
            return self._retry_queue_lookup(addr, unlink)
        return None

    def _retry_queue_lookup(self: VmapAllocator, addr: int, unlink: bool) -> VmapArea | None:
        """Lookups also see the areas parked by a failed publish (stage 5 on):
        a linear scan of the retry queue, taken out of it by an unlink."""
        queue = self.vmap_retry_queue
        for k, va in enumerate(queue):
            if va.va_start <= addr < va.va_end:
                if unlink:
                    del queue[k]
                return va
        return None

    # -- freeing -------------------------------------------------------------
    def vfree(self: VmapAllocator, addr: int | None, *, cpu: int = 0) -> None:
        """``vfree()``: release a vmalloc'ed area (lazily).

        ``vfree(None)`` (and 0) does nothing.  An unaligned address, an
        address that is no vmalloc area, or a second free logs the kernel's
        warning and changes nothing.  A page-aligned address inside an area
        but not at its start is refused with a warning too: the kernel would
        free the whole area there; the model is stricter on purpose.
        """
        if not addr:
            if addr is not None:
                check_int("addr", addr)
            return
        if (
            type(addr) is not int
            or not 0 < addr <= ULONG_MAX
            or type(cpu) is not int
            or not 0 <= cpu < self.nr_cpus
        ):
            check_ulong("addr", addr)
            check_cpu(cpu, self.nr_cpus)
        self._rcu_tick()
        if self._rcu_pending and self._rcu_owns(addr, "vfree"):
            return
        self.metrics.free_calls += 1
        vm = self.remove_vm_area(addr, cpu)
        if vm is None:
            self._printk(f"WARNING: Trying to vfree() nonexistent vm area ({addr:#x})")
        else:
            self.metrics.pages_freed += vm.nr_pages  # vfree()'s __free_page() loop
        self._debug_check(addr)

    def remove_vm_area(self: VmapAllocator, addr: int, cpu: int = 0) -> VmStruct | None:
        """``remove_vm_area()``: unlink the area at ``addr`` and free it lazily;
        return its ``vm_struct`` (None, and nothing changed, if there is none).
        ``cpu``: the CPU it runs on (the overlay's lookup reads its chunk)."""
        self.metrics.cpu = cpu
        if addr & _PAGE_MASK:
            self._printk(f"WARNING: Trying to vfree() bad address ({addr:#x})")
            return None
        overlay = self.overlay
        if overlay is not None and overlay.mode != 10:  # -- overlay, patches 11-12
            sub = self._overlay_unlink(overlay, addr, cpu, None)
            if sub is not None:
                vm = sub.vm
                sub.vm = None
                return vm
        va = self.find_unlink_vmap_area(addr)
        if va is None:
            return None
        vm = va.vm
        if vm is None or va.va_start != addr:
            # Not something vfree() may release: put it back untouched.
            self._busy_reinsert(va)
            if overlay is not None and vm is None and overlay.owns(va):  # -- overlay
                if overlay.mode != 10:
                    return None  # the chunk's range: no busy area in the kernel
                sub = overlay.resolve(va, addr)  # patch 10: the bump area in it
                if sub is not None and sub.vm is not None:
                    if sub.va_start != addr:
                        self._printk(
                            f"WARNING: vfree({addr:#x}) is inside {sub.va_start:#x}-"
                            f"{sub.va_end:#x} but not its start (the kernel would free the "
                            f"whole area)"
                        )
                        return None
                    vm = sub.vm
                    sub.vm = None
                    overlay.free10(va, sub)
                    self._kmem_cache_free_va(sub)
                    return vm
                return None
            if vm is not None:
                self._printk(
                    f"WARNING: vfree({addr:#x}) is inside {va.va_start:#x}-{va.va_end:#x} "
                    f"but not its start (the kernel would free the whole area)"
                )
            return None
        va.vm = None
        self._free_vmap_area_noflush(va)  # free_unmap_vmap_area(): unmap, no TLB flush
        return vm

    def _overlay_unlink(
        self: VmapAllocator, overlay, addr: int, cpu: int, want: VmapArea | None
    ) -> VmapArea | None:
        """``find_unlink_vmap_area()``'s bump fast path (patches 11-12):
        ``vmap_bump_unlink()`` on ``cpu``.  The area is then freed at once (the
        kernel queues it lazily; docs/stages.md row 11).  ``want`` None: only a
        bump area with a ``vm_struct`` (the model's vfree() leaves others
        alone, as it does busy ones); else only that area."""
        accept = _has_vm if want is None else (lambda v: v is want)
        va = overlay.unlink(addr, cpu, self.rcu_clock, self.rcu_clock + self.rcu_gp_ticks, accept)
        if va is not None:
            self._kmem_cache_free_va(va)
        return va

    def free_vmap_area_noflush(self: VmapAllocator, area: VmapArea) -> None:
        """Free an area from :meth:`alloc_vmap_area` lazily.

        As the kernel's callers do before ``free_vmap_area_noflush()``, the
        area is first unlinked from its busy tree; an area that is not busy
        (freed already) gets the kernel's warning and nothing changes.
        """
        if not isinstance(area, VmapArea):
            from vmapsim.errors import VmapTypeError

            raise VmapTypeError("area", "a VmapArea from alloc_vmap_area()", area)
        self.metrics.free_calls += 1
        overlay = self.overlay
        if (  # -- overlay, patches 11-12: vmap_bump_unlink() first (on CPU 0)
            overlay is not None
            and overlay.mode != 10
            and area.va_end > area.va_start
            and self._overlay_unlink(overlay, area.va_start, 0, area) is area
        ):
            self._debug_check()
            return
        # one find-and-unlink, as the kernel's callers do (vm_unmap_ram)
        va = self.find_unlink_vmap_area(area.va_start) if area.va_end > area.va_start else None
        if va is not None and overlay is not None and overlay.owns(va):
            self._busy_reinsert(va)  # -- overlay: a chunk's range (patch 10: its area)
            sub = overlay.resolve(va, area.va_start) if overlay.mode == 10 else None
            chunk_va, va = va, None
            if sub is area:
                overlay.free10(chunk_va, sub)
                self._kmem_cache_free_va(sub)
                self._debug_check()
                return
        if va is not area:
            if va is not None:  # another busy area holds that address: put it back
                self._busy_reinsert(va)
            self._printk(
                f"WARNING: at mm/vmalloc.c free_vmap_area_noflush: area "
                f"{area.va_start:#x}-{area.va_end:#x} is not busy (double free?)"
            )
            self._debug_check()
            return
        self._free_vmap_area_noflush(va)
        self._debug_check()


def _has_vm(va: VmapArea) -> bool:
    return va.vm is not None
