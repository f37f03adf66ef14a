"""Write an allocator's state as ``/proc/vmallocinfo``.

The order and format are ``vmalloc_info_show()``'s (v6.9 to v6.19): for
each vmap node its busy areas in address order - a ``vm_struct`` area as
``0x%pK-0x%pK %7ld`` with its caller, ``pages=``, the flags and
``vpages``/``N<node>=``; a ``VMAP_RAM`` area without one as
``vm_map_ram``; any other area without one (the overlay's chunks from
stage 10) not at all; areas still being set up (``VM_UNINITIALIZED``) are
skipped - then for each node its lazily freed areas as ``unpurged
vm_area``.  ``%pK`` is printed as with ``kptr_restrict`` = 0; a replayed
KASLR file's areas are moved back to its addresses.

``phys=``, ``vpages`` and ``N<node>=`` are not modelled: they come from
``annotations`` (what a replayed file said, keyed by start address) or
are left out.  The caller is the model's (a function name) or the replayed
line's ``%pS`` text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.area import VM_UNINITIALIZED, VMAP_RAM, VmapArea
from vmapsim.tools.replay.builder import Annotation
from vmapsim.tools.replay.vmallocinfo import FLAG_WORDS

__all__ = ["format_vmallocinfo", "vmallocinfo_lines"]


def vmallocinfo_lines(
    alloc: VmapAllocator,
    annotations: Mapping[int, Annotation] | None = None,
    *,
    rebase: int = 0,
) -> Iterator[str]:
    """The lines (without newlines) ``/proc/vmallocinfo`` would show for ``alloc``.

    ``rebase`` (a replayed KASLR file's shift) is taken off the addresses
    inside the vmalloc window, so they read as on the machine."""
    notes = annotations or {}
    lo, hi = alloc.vmalloc_start, alloc.vmalloc_end

    def rng(start: int, end: int) -> str:
        shift = rebase if lo <= start < hi else 0
        return f"0x{start - shift:016x}-0x{end - shift:016x} {end - start:7d}"

    for vn in alloc.vmap_nodes:
        for va in vn.busy:
            line = _busy_line(va, notes, rng)
            if line is not None:
                yield line
    # areas parked by a failed publish (stage 5 on, under fault injection) are
    # busy and seen by lookups, though in no node's tree
    for va in sorted(alloc.vmap_retry_queue, key=lambda v: v.va_start):
        line = _busy_line(va, notes, rng)
        if line is not None:
            yield line
    for vn in alloc.vmap_nodes:
        for va in vn.lazy:
            yield f"{rng(va.va_start, va.va_end)} unpurged vm_area"


def format_vmallocinfo(
    alloc: VmapAllocator,
    annotations: Mapping[int, Annotation] | None = None,
    *,
    rebase: int = 0,
) -> str:
    """:func:`vmallocinfo_lines` as one text, each line ending in a newline."""
    return "".join(line + "\n" for line in vmallocinfo_lines(alloc, annotations, rebase=rebase))


def _busy_line(
    va: VmapArea, notes: Mapping[int, Annotation], rng: Callable[[int, int], str]
) -> str | None:
    vm = va.vm
    if vm is None:
        if va.flags & VMAP_RAM:
            return f"{rng(va.va_start, va.va_end)} vm_map_ram"
        return None
    if vm.flags & VM_UNINITIALIZED:
        return None
    parts = [rng(vm.addr, vm.addr + vm.size)]
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
