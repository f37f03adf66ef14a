"""``pcpu_get_vm_areas()`` / ``pcpu_free_vm_areas()``: congruent areas for the
per-CPU allocator.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.

``pcpu_get_vm_areas(offsets, sizes, align)`` finds the highest ``base``
(aligned to ``align``) such that every ``[base + offsets[i], + sizes[i])``
lies inside one free block and inside ``[ALIGN(VMALLOC_START, align),
VMALLOC_END & ~(align - 1))``, searching top-down from ``VMALLOC_END`` as
the kernel does (``pvm_find_va_enclose_addr()``,
``pvm_determine_end_from_reverse()``); carves each area with ``va_clip()``
and puts it in its node's busy tree with a ``VM_ALLOC`` vm_struct.  No
guard pages, no preload.  On failure: one ``reclaim_and_purge_vmap_areas()``
and a retry; areas already carved are merged back.

The free-space queries go through small methods
(:meth:`PcpuMixin._pvm_find_va_enclose_addr`, :meth:`PcpuMixin._pvm_prev_va`,
:meth:`PcpuMixin._pvm_clip`, :meth:`PcpuMixin._pvm_unclip`) with two
implementations: the :class:`~vmapsim.FreeIndex` protocol's free blocks
(stages 0-1), and the gaps of the occupied index (``gap_enclosing``,
``prev_gap``, ``occupy``; stages 2 on, where the gaps equal the free blocks
while a free index is kept beside them).
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vmapsim.checking.validate import check_cpu, check_ulong
from vmapsim.errors import VmapArgumentError, VmapTypeError
from vmapsim.kernel.alloc import fit_needs_spare
from vmapsim.kernel.area import VM_ALLOC, VmapArea, VmStruct
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["PcpuMixin"]

_M = ULONG_MAX  # unsigned long arithmetic wraps modulo 2**64
#: a free block: ``(start, end, the FreeIndex block or None for an occupied-index gap)``
_Block = tuple[int, int, "VmapArea | None"]


class PcpuMixin:
    """``pcpu_get_vm_areas()``, ``pcpu_free_vm_areas()`` and their free-space queries."""

    # -- free-space queries ------------------------------------------------------------
    # A free block is ``(start, end, va)``: ``va`` is the FreeIndex block, or None
    # when the stage finds free space as the gaps of its occupied index (the gaps
    # equal the free blocks wherever a stage keeps both).
    def _pvm_find_va_enclose_addr(self: VmapAllocator, addr: int) -> _Block | None:
        """``pvm_find_va_enclose_addr()``: the free block with the highest
        ``start <= addr`` (the one holding ``addr``, else the one below it)."""
        occ = self.occupied
        if occ is not None:
            gap = occ.gap_enclosing(addr)
            if gap is None and addr:
                gap = occ.gap_enclosing(addr - 1)  # an area ending where a gap ends
            if gap is None:
                gap = occ.prev_gap(addr)
            return None if gap is None else (gap[0], gap[1], None)
        free = self.free
        va = free.find_enclosing(addr)
        if va is None and addr:
            va = free.find_enclosing(addr - 1)
        if va is None:
            va = free.last()
            while va is not None and va.va_start > addr:
                va = free.prev_block(va)
        return None if va is None else (va.va_start, va.va_end, va)

    def _pvm_prev_va(self: VmapAllocator, block: _Block) -> _Block | None:
        """The free block below ``block`` (``rb_prev`` / ``mas_empty_area_rev``), or None."""
        if block[2] is None:
            gap = self.occupied.prev_gap(block[0])
            return None if gap is None else (gap[0], gap[1], None)
        va = self.free.prev_block(block[2])
        return None if va is None else (va.va_start, va.va_end, va)

    def _pvm_clip(self: VmapAllocator, start: int, size: int, cpu: int) -> int:
        """Take ``[start, start + size)`` out of the free space: ``va_clip()`` of
        the free block holding it, and (stages 2-6) the range marked in use in
        the occupied index; at stage 7 the busy publish does that.  0 or -errno."""
        free = self.free
        occ = self.occupied
        if occ is None:
            va = free.find_enclosing(start)
            return -errno.EINVAL if va is None else self._va_clip(va, start, size, cpu)
        if free is not None:
            va = free.find_enclosing(start)
            if va is None:
                return -errno.EINVAL
            if fit_needs_spare(va, start, size) and not self._have_spare(cpu):
                return -errno.ENOMEM
        if not self._busy_occupies:
            ret = occ.occupy(start, start + size, True)
            if ret:
                return ret
        return 0 if free is None else self._va_clip(va, start, size, cpu)

    def _pvm_unclip(self: VmapAllocator, areas: list[VmapArea]) -> None:
        """Give carved areas back (the recovery path's merge into the free tree)."""
        if self.occupied is None:
            merge = self.coalesce.merge_or_add
            for va in areas:
                merge(va)
            self._drain_coalesced()
        elif not self._busy_occupies:
            self._reclaim_list_global(areas)

    def _pvm_determine_end_from_reverse(
        self: VmapAllocator, block: _Block | None, align: int
    ) -> tuple[_Block | None, int]:
        """``pvm_determine_end_from_reverse()``: walking down from ``block``, the
        first free block whose aligned end (capped at ``VMALLOC_END`` aligned
        down) lies above its start; returns that block and that end (None, 0
        when the walk runs off the bottom)."""
        vmalloc_end = self.vmalloc_end & ~(align - 1)
        while block is not None:
            addr = min(block[1] & ~(align - 1), vmalloc_end)
            if block[0] < addr:
                return block, addr
            block = self._pvm_prev_va(block)
        return None, 0

    # -- public API ----------------------------------------------------------------------
    def pcpu_get_vm_areas(
        self: VmapAllocator,
        offsets: Sequence[int],
        sizes: Sequence[int],
        align: int,
        *,
        cpu: int = 0,
    ) -> list[VmStruct] | None:
        """``pcpu_get_vm_areas()``: ``len(offsets)`` congruent ``VM_ALLOC`` areas.

        Area *i* is ``[base + offsets[i], base + offsets[i] + sizes[i])`` for
        the highest workable ``base``.  The kernel's BUG_ONs (``align`` not a
        page-multiple power of two, an offset or size not aligned to it,
        overlapping areas) raise :class:`~vmapsim.VmapArgumentError`; areas
        that cannot fit in the vmalloc space at all get its ``WARN_ON`` and
        None; no space after one purge-and-retry returns None.
        """
        offs, szs = self._pcpu_check_args(offsets, sizes, align)
        check_cpu(cpu, self.nr_cpus)
        self._rcu_tick()
        try:
            return self._pcpu_get_vm_areas(offs, szs, align, cpu)
        finally:
            self._debug_check()

    def pcpu_free_vm_areas(self: VmapAllocator, vms: Sequence[VmStruct]) -> None:
        """``pcpu_free_vm_areas()``: ``free_vm_area()`` each area (lazily freed).

        Every ``vm_struct`` must be busy (``BUG_ON(ret != area)`` in
        ``free_vm_area()``); otherwise :class:`~vmapsim.VmapArgumentError` is
        raised and nothing is freed."""
        vms = list(vms)
        busy = {va.va_start: va for va in self.busy_areas()}
        seen: set[int] = set()
        for i, vm in enumerate(vms):
            if not isinstance(vm, VmStruct):
                raise VmapTypeError(f"vms[{i}]", "a VmStruct from pcpu_get_vm_areas()", vm)
            va = busy.get(vm.addr)
            if va is None or va.vm is not vm or vm.addr in seen:
                raise VmapArgumentError(
                    f"vms[{i}]", "is not a busy area (BUG_ON in free_vm_area())", vm.addr
                )
            seen.add(vm.addr)
        self._rcu_tick()
        for vm in vms:
            self.metrics.free_calls += 1
            self.remove_vm_area(vm.addr)
        self._debug_check()

    # -- the kernel's algorithm ---------------------------------------------------------
    def _pcpu_check_args(
        self: VmapAllocator, offsets: Sequence[int], sizes: Sequence[int], align: int
    ) -> tuple[list[int], list[int]]:
        """The argument checks (the kernel's BUG_ONs), in the kernel's order."""
        align = check_ulong("align", align)
        if not align or align & (align - 1):
            raise VmapArgumentError("align", "must be a power of two (BUG_ON)", align)
        if align % PAGE_SIZE:
            raise VmapArgumentError(
                "align", f"must be a multiple of PAGE_SIZE ({PAGE_SIZE})", align
            )
        offs = [check_ulong(f"offsets[{i}]", o) for i, o in enumerate(offsets)]
        szs = [check_ulong(f"sizes[{i}]", s) for i, s in enumerate(sizes)]
        if not offs or len(offs) != len(szs):
            raise VmapArgumentError(
                "offsets", "offsets and sizes must be non-empty and of one length", len(offs)
            )
        for i, (o, s) in enumerate(zip(offs, szs, strict=True)):
            if o % align:
                raise VmapArgumentError(f"offsets[{i}]", f"must be aligned to align ({align})", o)
            if s % align:
                raise VmapArgumentError(f"sizes[{i}]", f"must be aligned to align ({align})", s)
            if s == 0:
                raise VmapArgumentError(f"sizes[{i}]", "must be > 0", s)
            if o + s > ULONG_MAX:
                raise VmapArgumentError(f"offsets[{i}]", "offset + size overflows", o)
        for i in range(len(offs)):
            for j in range(i + 1, len(offs)):
                if offs[j] < offs[i] + szs[i] and offs[i] < offs[j] + szs[j]:
                    raise VmapArgumentError(
                        f"offsets[{j}]", f"area {j} overlaps area {i} (BUG_ON)", offs[j]
                    )
        return offs, szs

    def _pcpu_get_vm_areas(
        self: VmapAllocator, offsets: list[int], sizes: list[int], align: int, cpu: int
    ) -> list[VmStruct] | None:
        nr_vms = len(offsets)
        vmalloc_start = (self.vmalloc_start + align - 1) & ~(align - 1)
        vmalloc_end = self.vmalloc_end & ~(align - 1)
        last_area = 0
        for area in range(nr_vms):
            if offsets[area] > offsets[last_area]:
                last_area = area
        last_end = offsets[last_area] + sizes[last_area]
        if vmalloc_end - vmalloc_start < last_end:
            self._printk(
                f"WARNING: CPU: {cpu} at mm/vmalloc.c pcpu_get_vm_areas: areas span "
                f"{last_end:#x} bytes, more than the vmalloc space"
            )
            return None

        vas: list[VmapArea | None] = []
        for _ in range(nr_vms):
            va = self._kmem_cache_alloc_va(True)
            if va is None:
                for v in vas:
                    self._kmem_cache_free_va(v)  # type: ignore[arg-type]
                return None
            vas.append(va)

        c = self.metrics
        purged = False
        c.alloc_calls += 1
        while True:
            self.spin_lock("free_vmap_area_lock")
            base = self._pcpu_find_base(offsets, sizes, align, last_area, last_end, vmalloc_start)
            carved = base is not None and self._pcpu_carve(base, offsets, sizes, vas, cpu)
            self.spin_unlock("free_vmap_area_lock")
            if carved:
                break
            if purged:
                for v in vas:
                    if v is not None:
                        self._kmem_cache_free_va(v)
                c.alloc_failures += 1
                return None
            self.reclaim_and_purge_vmap_areas()
            purged = True
            c.alloc_retries += 1
            for area in range(nr_vms):
                if vas[area] is None:
                    va = self._kmem_cache_alloc_va(True)
                    if va is None:
                        for v in vas:
                            if v is not None:
                                self._kmem_cache_free_va(v)
                        return None
                    vas[area] = va

        vms: list[VmStruct] = []
        for area in range(nr_vms):
            va = vas[area]
            assert va is not None
            bn = self.addr_to_node_id(va.va_start)
            vn = self.vmap_nodes[bn]
            self.spin_lock("vmap_node.busy.lock", bn)
            va.flags = 0
            vm = VmStruct(va.va_start, va.va_end - va.va_start, VM_ALLOC, 0, "pcpu_get_vm_areas")
            va.vm = vm  # setup_vmalloc_vm()
            ret = vn.busy.publish(va, True)
            self.spin_unlock("vmap_node.busy.lock", bn)
            if ret:  # pragma: no cover - GFP_KERNEL publishes do not fail
                raise AssertionError(f"busy publish refused ({ret}) for pcpu area {va!r}")
            vms.append(vm)
        return vms

    def _pcpu_find_base(
        self: VmapAllocator,
        offsets: list[int],
        sizes: list[int],
        align: int,
        last_area: int,
        last_end: int,
        vmalloc_start: int,
    ) -> int | None:
        """The top-down search of ``pcpu_get_vm_areas()``; the base, or None (overflow)."""
        nr_vms = len(offsets)
        vmalloc_end = self.vmalloc_end & ~(align - 1)
        area = term_area = last_area
        start = offsets[area]
        end = start + sizes[area]
        va = self._pvm_find_va_enclose_addr(vmalloc_end)
        va, top = self._pvm_determine_end_from_reverse(va, align)
        base = (top - end) & _M
        while True:
            # the lowest possible base is vmalloc_start (unsigned compare, wraps)
            if (base + last_end) & _M < vmalloc_start + last_end:
                return None
            if va is None:
                return None
            if (base + end) & _M > va[1]:  # the area's end is above this block
                va, top = self._pvm_determine_end_from_reverse(va, align)
                base = (top - end) & _M
                term_area = area
                continue
            if (base + start) & _M < va[0]:  # its start is below: the block below
                va, top = self._pvm_determine_end_from_reverse(self._pvm_prev_va(va), align)
                base = (top - end) & _M
                term_area = area
                continue
            area = (area + nr_vms - 1) % nr_vms
            if area == term_area:
                return base
            start = offsets[area]
            end = start + sizes[area]
            va = self._pvm_find_va_enclose_addr((base + end) & _M)

    def _pcpu_carve(
        self: VmapAllocator,
        base: int,
        offsets: list[int],
        sizes: list[int],
        vas: list[VmapArea | None],
        cpu: int,
    ) -> bool:
        """Carve every area at ``base``; on a failure (the kernel's WARN_ON_ONCEs)
        merge the carved ones back and return False."""
        for area in range(len(offsets)):
            start = base + offsets[area]
            size = sizes[area]
            ret = self._pvm_clip(start, size, cpu)
            if ret:
                self._warn_once(
                    "pcpu_get_vm_areas",
                    f"WARNING: CPU: {cpu} at mm/vmalloc.c pcpu_get_vm_areas: "
                    f"cannot carve {start:#x}+{size:#x} ({ret})",
                )
                carved = [vas[back] for back in range(area - 1, -1, -1)]  # while (area--)
                if not self._busy_occupies:  # stage 7: nothing was taken yet
                    self._pvm_unclip(carved)  # type: ignore[arg-type]
                    for back in range(area):
                        vas[back] = None
                return False
            nva = vas[area]
            assert nva is not None
            nva.va_start = start
            nva.va_end = start + size
        return True
