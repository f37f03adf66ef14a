"""``vrealloc()``: resize a vmalloc allocation in place when its area allows.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.  Follows
``vrealloc_node_align_noprof()`` (mm/vmalloc.c, 2026): the area's
``vm_struct`` keeps the caller's ``requested_size`` and the number of
mapped pages ``nr_pages``.  A shrink only updates ``requested_size``, and
when it crosses a page boundary also unmaps and frees the tail pages
(``nr_pages`` drops; skipped for ``VM_FLUSH_RESET_PERMS`` / ``VM_USERMAP``
areas and for a gfp without both ``__GFP_IO`` and ``__GFP_FS``); the
virtual area keeps its size.  A grow that still fits in the mapped pages is
in place; a bigger one allocates a new area, "copies" and frees the old.
Contents are not modelled.  ``vrealloc(NULL, n)`` is ``vmalloc(n)``;
``vrealloc(p, 0)`` is ``vfree(p)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.checking.validate import check_cpu, check_gfp, check_ulong
from vmapsim.kernel.area import VM_FLUSH_RESET_PERMS, VM_USERMAP
from vmapsim.kernel.constants import PAGE_SHIFT, PAGE_SIZE
from vmapsim.kernel.gfp import GFP_KERNEL, Gfp

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["VreallocMixin"]

_IO_FS = int(Gfp.IO | Gfp.FS)


class VreallocMixin:
    """``vrealloc()``."""

    def vrealloc(
        self: VmapAllocator,
        addr: int | None,
        size: int,
        *,
        gfp: int = int(GFP_KERNEL),
        cpu: int = 0,
    ) -> int | None:
        """``vrealloc()``: the (possibly moved) address, or None.

        An address that is no vmalloc area (or not the start of one: the
        model is stricter than ``find_vm_area()``) logs the kernel's
        "Trying to vrealloc() nonexistent vm area" warning and returns None,
        changing nothing; so does an area whose ``requested_size`` exceeds
        its size ("mismatched area vs requested sizes").  On a failed move
        the old area is kept.
        """
        if addr is not None:
            check_ulong("addr", addr)
        check_ulong("size", size)
        gfp = check_gfp(gfp)
        check_cpu(cpu, self.nr_cpus)
        if not size:
            self.vfree(addr, cpu=cpu)
            return None
        self._rcu_tick()
        try:
            vm = None
            old_size = 0
            if addr:
                if self._rcu_owns(addr, "vrealloc"):
                    return None
                va = self.find_vmap_area(addr)
                vm = va.vm if va is not None and va.va_start == addr else None
                if vm is None:
                    self._printk(f"WARNING: Trying to vrealloc() nonexistent vm area ({addr:#x})")
                    return None
                alloced_size = vm.get_vm_area_size()
                old_size = vm.requested_size
                if alloced_size < old_size:
                    self._printk(
                        f"WARNING: vrealloc() has mismatched area vs requested sizes ({addr:#x})"
                    )
                    return None
            if vm is not None and size <= old_size:
                new_nr_pages = (size + PAGE_SIZE - 1) >> PAGE_SHIFT
                if (
                    new_nr_pages < vm.nr_pages
                    and not vm.flags & (VM_FLUSH_RESET_PERMS | VM_USERMAP)
                    and gfp & _IO_FS == _IO_FS  # gfp_has_io_fs()
                ):
                    bn = self.addr_to_node_id(addr)
                    self.spin_lock("vmap_node.busy.lock", bn)
                    vm.nr_pages = new_nr_pages  # vunmap_range() + vm_area_free_pages()
                    self.spin_unlock("vmap_node.busy.lock", bn)
                vm.requested_size = size
                return addr
            if vm is not None and size <= vm.nr_pages << PAGE_SHIFT:
                vm.requested_size = size  # the bytes are mapped already
                return addr
            new = self._vmalloc_range(size, 1, int(gfp), cpu, "vrealloc")
            if new is None:
                return None
            if addr:
                self.metrics.free_calls += 1
                self.remove_vm_area(addr)  # memcpy(n, p, old_size); vfree(p)
            return new
        finally:
            self._debug_check()
