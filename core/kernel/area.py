"""``struct vmap_area`` and ``struct vm_struct``.

:class:`VmapArea` carries the fields of the kernel's ``struct vmap_area`` at
stage 0: the range, the embedded ``rb_node`` (``rb_parent``, ``rb_left``,
``rb_right``, ``rb_red``), the ``list`` links (``list_prev``,
``list_next``), the ``subtree_max_size`` / ``vm`` union and ``flags``.
Index components that link areas into their own structures use these
fields, exactly as the kernel's trees and lists use the embedded ones; a
component that needs none of them leaves them ``None``.

Contract for list users: an area on no list has ``list_next is None`` (the
kernel's ``list_empty()`` after ``list_del_init``).  The flow relies on it to
catch a double lazy free.

The byte size of the struct at a stage is not this class's size: it is
computed from the stage's field layout (:mod:`vmapsim.kernel.layout`).
"""

from __future__ import annotations

from attrs import define

#: ``va->flags`` bits 0-1
VMAP_RAM = 0x1
VMAP_BLOCK = 0x2
VMAP_FLAGS_MASK = 0x3

# vm_struct flags (include/linux/vmalloc.h)
VM_IOREMAP = 0x1
VM_ALLOC = 0x2
VM_MAP = 0x4
VM_USERMAP = 0x8
VM_DMA_COHERENT = 0x10
VM_UNINITIALIZED = 0x20
VM_NO_GUARD = 0x40
VM_KASAN = 0x80
VM_FLUSH_RESET_PERMS = 0x100
VM_MAP_PUT_PAGES = 0x200
VM_ALLOW_HUGE_VMAP = 0x400
VM_DEFER_KMEMLEAK = 0x800
VM_SPARSE = 0x1000


@define(slots=True, eq=False, weakref_slot=False)
class VmStruct:
    """``struct vm_struct``: what a vmalloc caller owns.

    ``size`` includes the guard page unless ``VM_NO_GUARD`` is set
    (``get_vm_area_size()`` subtracts it).  ``nr_pages`` is how many pages
    are mapped (vmalloc maps the page-rounded size; ``vrealloc()``'s shrink
    lowers it; areas vmalloc does not populate keep 0).
    """

    addr: int
    size: int
    flags: int = VM_ALLOC
    requested_size: int = 0
    caller: str | None = None
    nr_pages: int = 0

    def get_vm_area_size(self) -> int:
        """``get_vm_area_size()``: the usable size, guard page excluded."""
        from vmapsim.kernel.constants import PAGE_SIZE

        return self.size if self.flags & VM_NO_GUARD else self.size - PAGE_SIZE


@define(slots=True, eq=False, weakref_slot=False, repr=False)
class VmapArea:
    """``struct vmap_area``: one range ``[va_start, va_end)`` of kernel VA."""

    va_start: int
    va_end: int
    flags: int = 0
    vm: VmStruct | None = None
    subtree_max_size: int = 0
    rb_parent: VmapArea | None = None
    rb_left: VmapArea | None = None
    rb_right: VmapArea | None = None
    rb_red: bool = False
    list_prev: VmapArea | None = None
    list_next: VmapArea | None = None
    #: position of the object in its slab page (the cache-line model's input)
    slab_pos: int = 0
    #: the first 256-byte block of its slab page (modelled address >> 8)
    slab_blk: int = 0

    @property
    def size(self) -> int:
        """``va_size()``: ``va_end - va_start``."""
        return self.va_end - self.va_start

    def __repr__(self) -> str:
        return f"VmapArea({self.va_start:#x}-{self.va_end:#x}, flags={self.flags:#x})"
