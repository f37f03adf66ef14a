"""Write an allocator's state as ``/proc/vmallocinfo``.

The order and format are ``vmalloc_info_show()``'s (v6.9 to v6.19): for
each vmap node its busy areas in address order - a ``vm_struct`` area as
``0x%pK-0x%pK %7ld`` with its caller, ``pages=``, the flags and
``vpages``/``N<node>=``; a ``VMAP_RAM`` area without one as
``vm_map_ram``; any other area without one (the overlay's chunks from
stage 10) not at all; areas still being set up (``VM_UNINITIALIZED``) are
skipped - then for each node its lazily freed areas as ``unpurged
vm_area``.  ``%pK`` is printed as with ``kptr_restrict`` = 0.

``phys=``, ``vpages`` and ``N<node>=`` are not modelled: they come from
``annotations`` (what a replayed file said, keyed by start address) or
are left out.  The caller is the model's (a function name) or the replayed
line's ``%pS`` text.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.area import VM_UNINITIALIZED, VMAP_RAM, VmapArea
from vmapsim.tools.replay.builder import Annotation
from vmapsim.tools.replay.vmallocinfo import FLAG_WORDS

__all__ = ["format_vmallocinfo", "vmallocinfo_lines"]


def vmallocinfo_lines(
    alloc: VmapAllocator, annotations: Mapping[int, Annotation] | None = None
) -> Iterator[str]:
    """The lines (without newlines) ``/proc/vmallocinfo`` would show for ``alloc``."""
    notes = annotations or {}
    for vn in alloc.vmap_nodes:
        for va in vn.busy:
            line = _busy_line(va, notes)
            if line is not None:
                yield line
    # areas parked by a failed publish (stage 5 on, under fault injection) are
    # busy and seen by lookups, though in no node's tree
    for va in sorted(alloc.vmap_retry_queue, key=lambda v: v.va_start):
        line = _busy_line(va, notes)
        if line is not None:
            yield line
    for vn in alloc.vmap_nodes:
        for va in vn.lazy:
            yield f"{_range(va.va_start, va.va_end)} unpurged vm_area"


def format_vmallocinfo(
    alloc: VmapAllocator, annotations: Mapping[int, Annotation] | None = None
) -> str:
    """:func:`vmallocinfo_lines` as one text, each line ending in a newline."""
    return "".join(line + "\n" for line in vmallocinfo_lines(alloc, annotations))


def _range(start: int, end: int) -> str:
    return f"0x{start:016x}-0x{end:016x} {end - start:7d}"


def _busy_line(va: VmapArea, notes: Mapping[int, Annotation]) -> str | None:
    vm = va.vm
    if vm is None:
        if va.flags & VMAP_RAM:
            return f"{_range(va.va_start, va.va_end)} vm_map_ram"
        return None
    if vm.flags & VM_UNINITIALIZED:
        return None
    parts = [_range(vm.addr, vm.addr + vm.size)]
    if vm.caller:
        parts.append(vm.caller)
    if vm.nr_pages:
        parts.append(f"pages={vm.nr_pages}")
    note = notes.get(vm.addr)
    if note is not None and note.phys:
        parts.append(f"phys=0x{note.phys:016x}")
    parts.extend(word for word, bit in FLAG_WORDS if vm.flags & bit)
    if note is not None:
        if note.vpages:
            parts.append("vpages")
        parts.extend(f"N{node}={count}" for node, count in note.numa)
    return " ".join(parts)
