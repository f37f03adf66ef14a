"""``vm_map_ram()`` / ``vm_unmap_ram()`` and the per-CPU vmap blocks.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.

Small mappings (``count <= VMAP_MAX_ALLOC`` pages) come from 4 MiB vmap
blocks (``vb_alloc()``): each CPU's ``vmap_block_queue`` keeps a free list
of blocks with space left and an xarray (here a dict) of the blocks whose
address hashes to it.  Inside a block, allocation only bumps forward by
``2**order`` pages; freed space is "dirty" and is never reused.  A block
whose pages are all dirty goes down the lazy-free path whole
(``free_vmap_block()``); a block whose free + dirty pages cover it is
"fragmented" and is purged early by ``purge_fragmented_blocks()`` (forced,
on allocation failure) or by ``_vm_unmap_aliases()`` (when fewer than
``VMAP_PURGE_THRESHOLD`` pages are free).

Bigger mappings are plain ``alloc_vmap_area()`` areas with ``VMAP_RAM`` and
no guard page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import define, field

from vmapsim.checking.validate import check_cpu, check_int, check_ulong
from vmapsim.errors import InvariantError, VmapArgumentError, VmapError
from vmapsim.kernel.area import VMAP_BLOCK, VMAP_FLAGS_MASK, VMAP_RAM, VmapArea
from vmapsim.kernel.constants import BITS_PER_LONG, PAGE_SHIFT, PAGE_SIZE
from vmapsim.kernel.gfp import GFP_KERNEL, GFP_RECLAIM_MASK, gfpflags_allow_blocking

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "CONFIG_NR_CPUS",
    "VMALLOC_SPACE",
    "VMAP_BBMAP_BITS",
    "VMAP_BLOCK_SIZE",
    "VMAP_MAX_ALLOC",
    "VMAP_PURGE_THRESHOLD",
    "VmapBlock",
    "VmapBlockMixin",
    "VmapBlockQueue",
    "vmap_bbmap_bits",
]

#: ``CONFIG_NR_CPUS`` of an x86_64 defconfig: only the block size depends on it
CONFIG_NR_CPUS = 64
#: ``VMALLOC_SPACE``: vmalloc.c's guess of the vmalloc space on 64-bit (128 GiB)
VMALLOC_SPACE = 128 << 30
#: ``VMAP_MAX_ALLOC``: the largest vm_map_ram() served by a block, in pages
VMAP_MAX_ALLOC = BITS_PER_LONG


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


def vmap_bbmap_bits(nr_cpus: int = CONFIG_NR_CPUS, page_size: int = PAGE_SIZE) -> int:
    """``VMAP_BBMAP_BITS``: pages per vmap block,
    ``min(1024, max(2 * VMAP_MAX_ALLOC, VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS) / 16))``."""
    vmalloc_pages = VMALLOC_SPACE // page_size
    return min(1024, max(2 * VMAP_MAX_ALLOC, vmalloc_pages // _roundup_pow_of_two(nr_cpus) // 16))


#: pages per vmap block (1024 with CONFIG_NR_CPUS <= 2048)
VMAP_BBMAP_BITS = vmap_bbmap_bits()
#: ``sizeof(struct vmap_block)`` on 64-bit: lock (padded), va, free, dirty,
#: ``used_map[]``, dirty_min, dirty_max, free_list, rcu_head, purge, cpu (padded)
SIZEOF_VMAP_BLOCK = 104 + (VMAP_BBMAP_BITS + BITS_PER_LONG - 1) // BITS_PER_LONG * 8
#: ``VMAP_BLOCK_SIZE``: 4 MiB
VMAP_BLOCK_SIZE = VMAP_BBMAP_BITS * PAGE_SIZE
#: ``VMAP_PURGE_THRESHOLD``: a fragmented block with fewer free pages is purged
VMAP_PURGE_THRESHOLD = VMAP_BBMAP_BITS // 4

_FULL_MAP = (1 << VMAP_BBMAP_BITS) - 1
_GFP_KERNEL = int(GFP_KERNEL)
_RECLAIM_MASK = int(GFP_RECLAIM_MASK)


def get_order(nr_pages: int) -> int:
    """``get_order(nr_pages << PAGE_SHIFT)``: the smallest order with ``2**order >= nr_pages``."""
    return (nr_pages - 1).bit_length()


@define(slots=True, eq=False, weakref_slot=False)
class VmapBlock:
    """``struct vmap_block``: one 4 MiB area carved into pages by bump allocation.

    ``used_map`` is the ``used_map`` bitmap as an int (bit *i* = page *i*).
    """

    va: VmapArea
    cpu: int
    free: int = VMAP_BBMAP_BITS
    dirty: int = 0
    used_map: int = 0
    dirty_min: int = VMAP_BBMAP_BITS
    dirty_max: int = 0
    #: on its CPU's ``vbq->free`` list
    on_free_list: bool = False


@define(slots=True, eq=False, weakref_slot=False)
class VmapBlockQueue:
    """``struct vmap_block_queue``: a CPU's free list and xarray of blocks."""

    free: list[VmapBlock] = field(factory=list)
    #: ``vmap_blocks`` xarray: ``addr_to_vb_idx(va_start)`` -> block
    vmap_blocks: dict[int, VmapBlock] = field(factory=dict)


class VmapBlockMixin:
    """``vm_map_ram()``, ``vm_unmap_ram()``, ``vb_alloc()``, ``vb_free()``,
    ``new_vmap_block()``, ``free_vmap_block()``, ``purge_fragmented_block(s)()``
    and the block half of ``_vm_unmap_aliases()``."""

    def _vmap_block_init(self: VmapAllocator) -> None:
        #: ``vmap_block_queue``, one per possible CPU
        self.vmap_block_queue = [VmapBlockQueue() for _ in range(self.nr_cpus)]

    # -- addressing --------------------------------------------------------------
    def addr_to_vb_xa(self: VmapAllocator, addr: int) -> VmapBlockQueue:
        """``addr_to_vb_xa()``: the queue whose xarray holds the block at ``addr``
        (``(addr / VMAP_BLOCK_SIZE) % nr_cpu_ids``)."""
        return self.vmap_block_queue[(addr // VMAP_BLOCK_SIZE) % self.nr_cpus]

    def addr_to_vb_idx(self: VmapAllocator, addr: int) -> int:
        """``addr_to_vb_idx()``: the block index of ``addr``, counted from
        ``VMALLOC_START`` rounded down to the block size."""
        return (addr - (self.vmalloc_start & ~(VMAP_BLOCK_SIZE - 1))) // VMAP_BLOCK_SIZE

    def vmap_blocks(self: VmapAllocator) -> list[VmapBlock]:
        """Every live vmap block, in address order."""
        return sorted(
            (vb for vbq in self.vmap_block_queue for vb in vbq.vmap_blocks.values()),
            key=lambda vb: vb.va.va_start,
        )

    # -- public API ----------------------------------------------------------------
    def vm_map_ram(self: VmapAllocator, count: int, *, cpu: int = 0) -> int | None:
        """``vm_map_ram()``: map ``count`` pages; the address, or None.

        ``count <= VMAP_MAX_ALLOC`` (64) pages come from this CPU's vmap
        blocks (``vb_alloc()``); more get their own ``alloc_vmap_area(size,
        PAGE_SIZE, VMALLOC_START, VMALLOC_END, GFP_KERNEL, VMAP_RAM)``, with
        no guard page.  ``count == 0`` gets ``vb_alloc()``'s warning and NULL.
        """
        check_int("count", count)
        if not 0 <= count < 1 << 32:
            raise VmapArgumentError("count", "must be an unsigned int in [0, 2**32 - 1]", count)
        check_cpu(cpu, self.nr_cpus)
        self.metrics.cpu = cpu
        self._rcu_tick()
        size = count << PAGE_SHIFT
        try:
            if count <= VMAP_MAX_ALLOC:
                return self._vb_alloc(size, _GFP_KERNEL, cpu)
            try:
                va = self._alloc_vmap_area(
                    size,
                    PAGE_SIZE,
                    self.vmalloc_start,
                    self.vmalloc_end,
                    _GFP_KERNEL,
                    cpu,
                    VMAP_RAM,
                )
            except VmapError:
                return None
            return va.va_start
        finally:
            self._debug_check()

    def vm_unmap_ram(self: VmapAllocator, addr: int, count: int, *, cpu: int = 0) -> None:
        """``vm_unmap_ram()``: unmap what :meth:`vm_map_ram` mapped.

        The kernel's BUG_ONs (NULL, outside ``[VMALLOC_START, VMALLOC_END]``,
        not page-aligned) and the oops of ``vb_free()`` on an address with no
        vmap block raise :class:`~vmapsim.VmapArgumentError`, changing nothing.
        Pages that are not mapped (a second unmap) log a warning and nothing
        changes.  Above ``VMAP_MAX_ALLOC`` pages, an address that is no
        vm_map_ram area gets ``WARN_ON_ONCE`` and nothing changes.
        """
        check_ulong("addr", addr)
        check_int("count", count)
        if not 0 <= count < 1 << 32:
            raise VmapArgumentError("count", "must be an unsigned int in [0, 2**32 - 1]", count)
        check_cpu(cpu, self.nr_cpus)
        self.metrics.cpu = cpu
        if not addr:
            raise VmapArgumentError("addr", "must not be NULL (BUG_ON(!addr))", addr)
        if addr < self.vmalloc_start or addr > self.vmalloc_end:
            raise VmapArgumentError(
                "addr",
                f"must be in [VMALLOC_START, VMALLOC_END] = "
                f"[{self.vmalloc_start:#x}, {self.vmalloc_end:#x}]",
                addr,
            )
        if addr & (PAGE_SIZE - 1):
            raise VmapArgumentError("addr", "must be page-aligned (BUG_ON(!PAGE_ALIGNED))", addr)
        size = count << PAGE_SHIFT
        if count <= VMAP_MAX_ALLOC:
            if count == 0:
                raise VmapArgumentError("count", "must be > 0 for a vmap-block mapping", count)
            vbq = self.addr_to_vb_xa(addr)
            vb = vbq.vmap_blocks.get(self.addr_to_vb_idx(addr))
            if vb is None:
                raise VmapArgumentError(
                    "addr", "is not in a vmap block (vb_free() would oops)", addr
                )
        self._rcu_tick()
        try:
            if count <= VMAP_MAX_ALLOC:
                self._vb_free(vb, addr, size, cpu)
                return
            self.metrics.free_calls += 1
            va = self.find_unlink_vmap_area(addr)
            if va is None:
                self._warn_once(
                    "vm_unmap_ram",
                    f"WARNING: CPU: {cpu} at mm/vmalloc.c vm_unmap_ram: no vmap area at {addr:#x}",
                )
                return
            if (
                va.va_start != addr
                or va.vm is not None
                or va.flags & VMAP_FLAGS_MASK != VMAP_RAM
                or va.va_end - va.va_start != size
            ):
                self._busy_reinsert(va)
                self._printk(
                    f"WARNING: vm_unmap_ram({addr:#x}, {count}): {va.va_start:#x}-"
                    f"{va.va_end:#x} is not a vm_map_ram() area of {count} pages"
                )
                return
            self._free_vmap_area_noflush(va)  # free_unmap_vmap_area()
        finally:
            self._debug_check()

    # -- vb_alloc ---------------------------------------------------------------------
    def _vb_alloc(self: VmapAllocator, size: int, gfp: int, cpu: int) -> int | None:
        """``vb_alloc()``: bump-allocate ``2**order`` pages from this CPU's blocks."""
        if size == 0:
            self._warn_once(
                "vb_alloc", f"WARNING: CPU: {cpu} at mm/vmalloc.c vb_alloc: zero-size request"
            )
            return None
        order = get_order(size >> PAGE_SHIFT)
        n = 1 << order
        vbq = self.vmap_block_queue[cpu]
        for vb in vbq.free:
            if vb.free < n:
                continue
            vbi = vb.va.va_start // VMAP_BLOCK_SIZE
            self.spin_lock("vmap_block.lock", vbi)
            pages_off = VMAP_BBMAP_BITS - vb.free
            vb.free -= n
            vb.used_map |= ((1 << n) - 1) << pages_off
            if vb.free == 0:
                self.spin_lock("vmap_block_queue.lock", cpu)
                vbq.free.remove(vb)
                vb.on_free_list = False
                self.spin_unlock("vmap_block_queue.lock", cpu)
            self.spin_unlock("vmap_block.lock", vbi)
            return vb.va.va_start + (pages_off << PAGE_SHIFT)
        return self._new_vmap_block(order, gfp, cpu)

    def _new_vmap_block(self: VmapAllocator, order: int, gfp: int, cpu: int) -> int | None:
        """``new_vmap_block()``: ``kmalloc_node(sizeof(struct vmap_block))``
        (a ``kmalloc-256`` object: fault-injectable), then a fresh 4 MiB block,
        its first ``2**order`` pages used."""
        if self._lockdep is not None:
            self.might_alloc(gfpflags_allow_blocking(gfp), "kmalloc_node(vmap_block)")
        if self._kmalloc_fails(SIZEOF_VMAP_BLOCK, gfp & _RECLAIM_MASK):
            return None  # ERR_PTR(-ENOMEM)
        try:
            va = self._alloc_vmap_area(
                VMAP_BLOCK_SIZE,
                VMAP_BLOCK_SIZE,
                self.vmalloc_start,
                self.vmalloc_end,
                gfp,
                cpu,
                VMAP_RAM | VMAP_BLOCK,
            )
        except VmapError:
            return None
        n = 1 << order
        vb = VmapBlock(va, cpu, free=VMAP_BBMAP_BITS - n, used_map=(1 << n) - 1)
        self.addr_to_vb_xa(va.va_start).vmap_blocks[self.addr_to_vb_idx(va.va_start)] = vb
        self.spin_lock("vmap_block_queue.lock", cpu)
        self.vmap_block_queue[cpu].free.append(vb)  # list_add_tail_rcu
        vb.on_free_list = True
        self.spin_unlock("vmap_block_queue.lock", cpu)
        return va.va_start

    # -- vb_free ------------------------------------------------------------------------
    def _vb_free(self: VmapAllocator, vb: VmapBlock, addr: int, size: int, cpu: int) -> None:
        """``vb_free()``: clear the pages' bits, widen the dirty range; a block
        whose pages are all dirty is freed (``free_vmap_block()``)."""
        order = get_order(size >> PAGE_SHIFT)
        n = 1 << order
        offset = (addr & (VMAP_BLOCK_SIZE - 1)) >> PAGE_SHIFT
        bits = ((1 << n) - 1) << offset
        if offset + n > VMAP_BBMAP_BITS or vb.used_map & bits != bits:
            self._printk(
                f"WARNING: vm_unmap_ram({addr:#x}, {size >> PAGE_SHIFT}): pages "
                f"{offset}..{offset + n - 1} of vmap block {vb.va.va_start:#x} are not "
                f"all mapped (double unmap?)"
            )
            return
        self.metrics.free_calls += 1
        vbi = vb.va.va_start // VMAP_BLOCK_SIZE
        self.spin_lock("vmap_block.lock", vbi)  # bitmap_clear
        vb.used_map &= ~bits
        self.spin_unlock("vmap_block.lock", vbi)
        self.spin_lock("vmap_block.lock", vbi)  # the dirty accounting
        vb.dirty_min = min(vb.dirty_min, offset)
        vb.dirty_max = max(vb.dirty_max, offset + n)
        vb.dirty += n
        self.spin_unlock("vmap_block.lock", vbi)
        if vb.dirty == VMAP_BBMAP_BITS:
            if vb.free:  # pragma: no cover - BUG_ON(vb->free): a model bug
                raise AssertionError(f"vmap block {vb.va!r} is all dirty but has free pages")
            self._free_vmap_block(vb)

    def _free_vmap_block(self: VmapAllocator, vb: VmapBlock) -> None:
        """``free_vmap_block()``: erase from the xarray, unlink from busy, free lazily."""
        va = vb.va
        vbq = self.addr_to_vb_xa(va.va_start)
        if vbq.vmap_blocks.pop(self.addr_to_vb_idx(va.va_start), None) is not vb:
            raise AssertionError(f"vmap block {va!r} is not in its xarray")  # BUG_ON
        bn = self.addr_to_node_id(va.va_start)
        vn = self.vmap_nodes[bn]
        self.spin_lock("vmap_node.busy.lock", bn)
        vn.busy.unlink(va)
        self.spin_unlock("vmap_node.busy.lock", bn)
        self._free_vmap_area_noflush(va)

    # -- fragmented blocks ------------------------------------------------------------
    def _purge_fragmented_block(
        self: VmapAllocator, vb: VmapBlock, purge_list: list[VmapBlock], force_purge: bool
    ) -> bool:
        """``purge_fragmented_block()``: take a block whose free + dirty pages
        cover it (and not all dirty) off its free list, if forced or fewer than
        ``VMAP_PURGE_THRESHOLD`` pages are free."""
        if vb.free + vb.dirty != VMAP_BBMAP_BITS or vb.dirty == VMAP_BBMAP_BITS:
            return False
        if not (force_purge or vb.free < VMAP_PURGE_THRESHOLD):
            return False
        vb.free = 0
        vb.dirty = VMAP_BBMAP_BITS
        vb.dirty_min = 0
        vb.dirty_max = VMAP_BBMAP_BITS
        self.spin_lock("vmap_block_queue.lock", vb.cpu)
        if vb.on_free_list:
            self.vmap_block_queue[vb.cpu].free.remove(vb)
            vb.on_free_list = False
        self.spin_unlock("vmap_block_queue.lock", vb.cpu)
        purge_list.append(vb)
        return True

    def _free_purged_blocks(self: VmapAllocator, purge_list: list[VmapBlock]) -> None:
        """``free_purged_blocks()``."""
        for vb in purge_list:
            self._free_vmap_block(vb)
        purge_list.clear()

    def purge_fragmented_blocks(self: VmapAllocator, cpu: int) -> None:
        """``purge_fragmented_blocks()``: force-purge this CPU's fragmented blocks."""
        purge: list[VmapBlock] = []
        for vb in list(self.vmap_block_queue[cpu].free):
            if vb.free + vb.dirty != VMAP_BBMAP_BITS or vb.dirty == VMAP_BBMAP_BITS:
                continue
            vbi = vb.va.va_start // VMAP_BLOCK_SIZE
            self.spin_lock("vmap_block.lock", vbi)
            self._purge_fragmented_block(vb, purge, True)
            self.spin_unlock("vmap_block.lock", vbi)
        self._free_purged_blocks(purge)

    def purge_fragmented_blocks_allcpus(self: VmapAllocator) -> None:
        """``purge_fragmented_blocks_allcpus()``: every possible CPU's."""
        for cpu in range(self.nr_cpus):
            if self.vmap_block_queue[cpu].free:
                self.purge_fragmented_blocks(cpu)

    def _vb_unmap_aliases(self: VmapAllocator, start: int, end: int) -> tuple[int, int, bool]:
        """The block walk of ``_vm_unmap_aliases()``: for every CPU's xarray in
        index order, purge a fragmented block (not forced) or add its dirty
        range to ``[start, end)`` and reset it; then free the purged blocks.
        Returns the widened range and whether a flush is needed."""
        flush = False
        purge: list[VmapBlock] = []
        for vbq in self.vmap_block_queue:
            xa = vbq.vmap_blocks
            for idx in sorted(xa):
                vb = xa[idx]
                vbi = vb.va.va_start // VMAP_BLOCK_SIZE
                self.spin_lock("vmap_block.lock", vbi)
                if (
                    not self._purge_fragmented_block(vb, purge, False)
                    and vb.dirty_max
                    and vb.dirty != VMAP_BBMAP_BITS
                ):
                    va_start = vb.va.va_start
                    start = min(start, va_start + (vb.dirty_min << PAGE_SHIFT))
                    end = max(end, va_start + (vb.dirty_max << PAGE_SHIFT))
                    vb.dirty_min = VMAP_BBMAP_BITS
                    vb.dirty_max = 0
                    flush = True
                self.spin_unlock("vmap_block.lock", vbi)
        self._free_purged_blocks(purge)
        return start, end, flush

    # -- invariants ---------------------------------------------------------------------
    def _check_vmap_blocks(
        self: VmapAllocator, busy: dict[int, VmapArea], nr_block_areas: int
    ) -> None:
        """Every block: counts consistent with its bitmap, in its xarray and (iff
        it has free pages) on its CPU's free list; its area busy, 4 MiB, block
        aligned, flags ``VMAP_RAM|VMAP_BLOCK``.  Every busy area with
        ``VMAP_BLOCK`` (``nr_block_areas`` of them) is a block's.

        ``busy`` maps ``va_start`` to every busy area."""
        seen = 0
        for q, vbq in enumerate(self.vmap_block_queue):
            for idx, vb in vbq.vmap_blocks.items():
                va = vb.va
                seen += 1
                where = f"vmap block {va.va_start:#x}"
                if (
                    self.addr_to_vb_xa(va.va_start) is not vbq
                    or self.addr_to_vb_idx(va.va_start) != idx
                ):
                    raise InvariantError(f"{where} is in xarray {q}[{idx}], not its own")
                if busy.get(va.va_start) is not va or va.flags & VMAP_FLAGS_MASK != (
                    VMAP_RAM | VMAP_BLOCK
                ):
                    raise InvariantError(f"{where} is not busy with VMAP_RAM|VMAP_BLOCK")
                if va.va_end - va.va_start != VMAP_BLOCK_SIZE or va.va_start % VMAP_BLOCK_SIZE:
                    raise InvariantError(f"{where} is not one aligned VMAP_BLOCK_SIZE")
                if not (0 <= vb.free <= VMAP_BBMAP_BITS and 0 <= vb.dirty < VMAP_BBMAP_BITS):
                    raise InvariantError(f"{where} has free={vb.free} dirty={vb.dirty}")
                used = vb.used_map.bit_count()
                if used != VMAP_BBMAP_BITS - vb.free - vb.dirty:
                    raise InvariantError(
                        f"{where}: {used} pages mapped but free={vb.free} dirty={vb.dirty}"
                    )
                if vb.used_map >> (VMAP_BBMAP_BITS - vb.free):
                    raise InvariantError(f"{where} maps pages above its bump offset")
                if vb.used_map & ~_FULL_MAP:
                    raise InvariantError(f"{where} maps pages beyond the block")
                if vb.dirty_max and not (
                    0 <= vb.dirty_min < vb.dirty_max <= VMAP_BBMAP_BITS - vb.free
                ):
                    raise InvariantError(f"{where} has dirty range {vb.dirty_min}..{vb.dirty_max}")
                if not vb.dirty_max and vb.dirty_min != VMAP_BBMAP_BITS:
                    raise InvariantError(f"{where} has an empty dirty range not reset")
                on_list = vb in self.vmap_block_queue[vb.cpu].free
                if on_list != vb.on_free_list or on_list != (vb.free > 0):
                    raise InvariantError(f"{where}: free={vb.free} but on_free_list={on_list}")
        if seen != nr_block_areas:
            raise InvariantError(f"{nr_block_areas} busy VMAP_BLOCK areas but {seen} vmap blocks")
        for cpu, vbq in enumerate(self.vmap_block_queue):
            for vb in vbq.free:
                if (
                    vb.cpu != cpu
                    or self.addr_to_vb_xa(vb.va.va_start).vmap_blocks.get(
                        self.addr_to_vb_idx(vb.va.va_start)
                    )
                    is not vb
                ):
                    raise InvariantError(f"free list {cpu} holds a stale vmap block")
