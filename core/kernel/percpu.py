"""A model of the per-CPU allocator (mm/percpu.c) over ``pcpu_get_vm_areas()``.

What is modelled
    * Chunks come from ``pcpu_create_chunk()`` (percpu-vm.c):
      ``pcpu_get_vm_areas(pcpu_group_offsets, pcpu_group_sizes, nr_groups,
      pcpu_atom_size)`` with one group of ``nr_units`` units of
      :data:`PCPU_UNIT_SIZE` bytes (x86_64's usual ``u262144``), ``nr_units``
      being ``nr_cpus`` rounded up to whole :data:`PCPU_ATOM_SIZE` (2 MiB,
      ``PMD_SIZE``) atoms, aligned to the atom.  A destroyed chunk goes back
      with ``pcpu_free_vm_areas()``.
    * ``__alloc_percpu(size, align)``: the kernel's argument rule (``size``
      0 or above ``PCPU_MIN_UNIT_SIZE``, ``align`` above ``PAGE_SIZE`` or not
      a power of two: the "illegal size … or align … for percpu allocation"
      warning and NULL); size rounded up to, and align raised to,
      ``PCPU_MIN_ALLOC_SIZE`` (4 bytes).  Chunks are tried in creation order
      and the first that fits is used; a new chunk is created when none fits;
      if that fails: "percpu: allocation failed, …" and NULL.
    * Inside a chunk, one area map per chunk, the same offsets in every unit:
      **first fit** over the free gaps in offset order, with a free-bytes
      count and an upper bound of the largest gap (``contig_hint``) to skip
      chunks that cannot fit, and per page-sized block the largest gap
      (``block_contig``, after ``pcpu_block_md``'s ``contig_hint``) to skip
      blocks that cannot.  The returned pointer is unit 0's address
      ``chunk base + offset`` (the kernel's ``__percpu`` cookie encodes the
      same thing).
    * ``free_percpu(ptr)``: NULL is a no-op; a chunk that becomes empty while
      another empty chunk exists is destroyed at once (``pcpu_balance_free()``
      keeps one empty chunk; its work runs at once here).

What is not modelled
    The first chunk (static, reserved and the first dynamic area live in the
    linear map, not in vmalloc space), NUMA groups (one group only), page
    population and ``pcpu_balance_populated()``'s spare empty pages, the
    slot lists by free size and the 4-byte-granular bitmaps with the rest of
    the block hints (``first_free``, ``scan_hint``, ``left_free``/``right_free``; the placement inside a chunk is first fit, as the kernel's scan is, but
    not bit-for-bit the kernel's), atomic allocations, memcg accounting.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from attrs import define, field

from vmapsim.checking.validate import check_cpu, check_int, check_ulong
from vmapsim.errors import InvariantError, VmapArgumentError
from vmapsim.kernel.area import VmapArea, VmStruct
from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.kernel.gfp import GFP_KERNEL

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "PCPU_ATOM_SIZE",
    "PCPU_MIN_ALLOC_SIZE",
    "PCPU_MIN_UNIT_SIZE",
    "PCPU_UNIT_SIZE",
    "PcpuChunk",
    "PercpuAllocator",
    "PercpuMixin",
]

#: ``PCPU_MIN_ALLOC_SIZE``: the allocation granule (bytes)
PCPU_MIN_ALLOC_SIZE = 4
#: ``PCPU_MIN_UNIT_SIZE``: the largest allocation (32 KiB)
PCPU_MIN_UNIT_SIZE = 32 << 10
#: the model's unit size (x86_64's usual 256 KiB units)
PCPU_UNIT_SIZE = 256 << 10
#: ``pcpu_atom_size``: PMD_SIZE on x86_64 (the chunk's alignment)
PCPU_ATOM_SIZE = 2 << 20
#: ``pcpu_chunk_struct_size``: ``sizeof(struct pcpu_chunk)`` plus the populated
#: bitmap of a 64-page unit (64-bit, an estimate from the struct's fields)
SIZEOF_PCPU_CHUNK = 200
#: ``sizeof(struct pcpu_block_md)``: one per page of the unit (``md_blocks[]``)
SIZEOF_PCPU_BLOCK_MD = 40
_GFP_KERNEL = int(GFP_KERNEL)


_NR_ALIGNS = 11  # 4 .. 4096 (PCPU_MIN_ALLOC_SIZE .. PAGE_SIZE)
_NO_FAIL = 1 << 62
#: ``PCPU_BITMAP_BLOCK_SIZE``: the span of one ``pcpu_block_md`` (one page)
PCPU_BITMAP_BLOCK_SIZE = PAGE_SIZE
_BLOCK_SHIFT = PCPU_BITMAP_BLOCK_SIZE.bit_length() - 1


@define(slots=True, eq=False, weakref_slot=False)
class PcpuChunk:
    """``struct pcpu_chunk``: its vm_structs, base address and area map.

    ``starts`` is the sorted list of allocated offsets, ``sizes`` maps each
    to its (rounded) size.  ``block_contig`` is the per-block hint of the
    kernel's ``pcpu_block_md``, simplified: for each :data:`PCPU_BITMAP_BLOCK_SIZE`
    block, the largest free gap that follows an allocation starting in the
    block (block 0 also holds the gap from offset 0 to the first allocation).
    It is exact, so the first-fit scan skips every block no gap of which is
    large enough, and the blocks in order hold the gaps in offset order.
    """

    vms: list[VmStruct]
    base_addr: int
    unit_size: int
    starts: list[int] = field(factory=list)
    sizes: dict[int, int] = field(factory=dict)
    free_bytes: int = 0
    #: an upper bound of the largest free gap
    contig_hint: int = 0
    #: per alignment 4 << i: the smallest size a scan failed for since the last free
    fail_min: list[int] = field(factory=lambda: [_NO_FAIL] * _NR_ALIGNS)
    block_contig: list[int] = field(init=False)
    #: per alignment 4 << i, per block: the smallest size a scan of the block
    #: failed for since a gap keyed to the block last grew or appeared
    block_fail: list[list[int]] = field(init=False)

    def __attrs_post_init__(self) -> None:
        nr_blocks = -(-self.unit_size >> _BLOCK_SHIFT)
        self.block_contig = [0] * nr_blocks
        self.block_fail = [[_NO_FAIL] * nr_blocks for _ in range(_NR_ALIGNS)]
        self._block_update(0)

    def _block_gaps_max(self, block: int) -> int:
        """The largest gap keyed to ``block`` (see the class docstring), from the map."""
        starts, sizes = self.starts, self.sizes
        lo = block << _BLOCK_SHIFT
        i = bisect.bisect_left(starts, lo)
        j = bisect.bisect_left(starts, lo + PCPU_BITMAP_BLOCK_SIZE, i)
        n = len(starts)
        largest = 0
        if not block:
            largest = starts[0] if n else self.unit_size
        for k in range(i, j):
            prev = starts[k] + sizes[starts[k]]
            gap = (starts[k + 1] if k + 1 < n else self.unit_size) - prev
            if gap > largest:
                largest = gap
        return largest

    def _block_update(self, block: int) -> None:
        self.block_contig[block] = self._block_gaps_max(block)

    def _block_grew(self, block: int) -> None:
        """A gap keyed to ``block`` grew or appeared: its failed scans may fit now."""
        for fails in self.block_fail:
            fails[block] = _NO_FAIL

    def find_fit(self, size: int, align: int) -> int | None:
        """First fit: the lowest ``align``-aligned offset with ``size`` free bytes.

        Two exact shortcuts skip scans that must fail: ``contig_hint`` (no gap
        is larger) and ``fail_min`` (since the last free in this chunk, a scan
        for a size at most ``size`` with an alignment dividing ``align``
        failed: every ``align``-aligned place is also aligned to that).  The
        scan itself visits only the blocks whose ``block_contig`` is at least
        ``size`` (no gap of another block can hold the allocation) and, per
        block, ``block_fail`` skips it as ``fail_min`` does the chunk (since
        the block's gaps last grew, a scan of it failed for a size at most
        ``size`` with this alignment)."""
        if self.contig_hint < size or self.free_bytes < size:
            return None
        ai = align.bit_length() - 3  # align 4 -> 0 ... 4096 -> 10
        if self.fail_min[ai] <= size:
            return None
        starts, sizes = self.starts, self.sizes
        n = len(starts)
        end = self.unit_size
        fails = self.block_fail[ai]
        for block, contig in enumerate(self.block_contig):
            if contig < size or fails[block] <= size:
                continue
            lo = block << _BLOCK_SHIFT
            if not block and (starts[0] if n else end) >= size:
                return 0  # the gap from offset 0 to the first allocation; 0 is aligned
            i = bisect.bisect_left(starts, lo)
            j = bisect.bisect_left(starts, lo + PCPU_BITMAP_BLOCK_SIZE, i)
            for k in range(i, j):
                prev = starts[k] + sizes[starts[k]]
                off = starts[k + 1] if k + 1 < n else end
                if off - prev >= size:
                    cand = (prev + align - 1) & -align
                    if cand + size <= off:
                        return cand
            fails[block] = size
        self.contig_hint = max(self.block_contig)
        fail_min = self.fail_min
        for i in range(ai, len(fail_min)):
            if fail_min[i] > size:
                fail_min[i] = size
        return None

    def alloc(self, off: int, size: int) -> None:
        starts, sizes, contig = self.starts, self.sizes, self.block_contig
        i = bisect.bisect_left(starts, off)
        lo = starts[i - 1] + sizes[starts[i - 1]] if i else 0
        hi = starts[i] if i < len(starts) else self.unit_size
        starts.insert(i, off)
        sizes[off] = size
        self.free_bytes -= size
        # the gap [lo, hi) the area was carved from shrank (its block's hint
        # changes only if that gap was the block's largest); [off + size, hi)
        # is a new gap after the area
        block = starts[i - 1] >> _BLOCK_SHIFT if i else 0
        if hi - lo == contig[block]:
            self._block_update(block)
        new = off >> _BLOCK_SHIFT
        if hi - off - size > contig[new]:
            contig[new] = hi - off - size
        if new != block and hi > off + size:
            self._block_grew(new)

    def free(self, off: int) -> None:
        self.fail_min = [_NO_FAIL] * _NR_ALIGNS
        starts, sizes, contig = self.starts, self.sizes, self.block_contig
        i = bisect.bisect_left(starts, off)
        size = sizes.pop(off)
        del starts[i]
        self.free_bytes += size
        lo = starts[i - 1] + sizes[starts[i - 1]] if i else 0
        hi = starts[i] if i < len(starts) else self.unit_size
        self.contig_hint = max(self.contig_hint, hi - lo)
        # the gap [off + size, hi) after the area is gone (its block's hint
        # changes only if that gap was the block's largest); the gap before
        # the area grew to [lo, hi)
        block = off >> _BLOCK_SHIFT
        if hi - off - size == contig[block]:
            self._block_update(block)
        block = starts[i - 1] >> _BLOCK_SHIFT if i else 0
        if hi - lo > contig[block]:
            contig[block] = hi - lo
        self._block_grew(block)

    @property
    def empty(self) -> bool:
        return not self.starts


class PercpuAllocator:
    """The per-CPU allocator of one :class:`~vmapsim.VmapAllocator`."""

    def __init__(self, vmap: VmapAllocator) -> None:
        self.vmap = vmap
        upa = PCPU_ATOM_SIZE // PCPU_UNIT_SIZE
        #: ``pcpu_nr_units``: possible CPUs rounded up to whole atoms
        self.nr_units = -(-vmap.nr_cpus // upa) * upa
        self.unit_size = PCPU_UNIT_SIZE
        self.group_offsets = [0]
        self.group_sizes = [self.nr_units * PCPU_UNIT_SIZE]
        self.atom_size = PCPU_ATOM_SIZE
        #: chunks in creation order
        self.chunks: list[PcpuChunk] = []
        #: live pointer -> its chunk
        self._owner: dict[int, PcpuChunk] = {}

    # -- chunks --------------------------------------------------------------------------
    def pcpu_create_chunk(self, cpu: int) -> PcpuChunk | None:
        """``pcpu_create_chunk()``: ``pcpu_alloc_chunk(GFP_KERNEL)``'s slab
        objects (the ``struct pcpu_chunk`` and its ``md_blocks[]``: fault-injectable;
        its ``alloc_map``/``bound_map``, above ``PAGE_SIZE``, are ``__vmalloc``'d
        by ``pcpu_mem_zalloc()`` in the kernel and not modelled), then the
        chunk's areas from ``pcpu_get_vm_areas()``."""
        vmap = self.vmap
        if vmap._lockdep is not None:
            vmap.might_alloc(True, "pcpu_create_chunk(GFP_KERNEL)")
        if vmap.faults.enabled and (
            vmap._kmalloc_fails(SIZEOF_PCPU_CHUNK, _GFP_KERNEL)
            or vmap._kmalloc_fails(self.unit_size // PAGE_SIZE * SIZEOF_PCPU_BLOCK_MD, _GFP_KERNEL)
        ):
            return None
        vms = self.vmap._pcpu_get_vm_areas(
            self.group_offsets, self.group_sizes, self.atom_size, cpu
        )
        if vms is None:
            return None
        chunk = PcpuChunk(
            vms,
            vms[0].addr - self.group_offsets[0],
            self.unit_size,
            free_bytes=self.unit_size,
            contig_hint=self.unit_size,
        )
        self.chunks.append(chunk)
        return chunk

    def pcpu_destroy_chunk(self, chunk: PcpuChunk) -> None:
        """``pcpu_destroy_chunk()``: ``pcpu_free_vm_areas()`` of its areas."""
        self.chunks.remove(chunk)
        for vm in chunk.vms:
            self.vmap.metrics.free_calls += 1
            self.vmap.remove_vm_area(vm.addr)

    # -- alloc / free ----------------------------------------------------------------------
    def alloc(self, size: int, align: int, cpu: int) -> int | None:
        """``pcpu_alloc()``."""
        vmap = self.vmap
        if (
            not size
            or size > PCPU_MIN_UNIT_SIZE
            or not align
            or align > PAGE_SIZE
            or align & (align - 1)
        ):
            vmap._printk(f"WARNING: illegal size ({size}) or align ({align}) for percpu allocation")
            return None
        if align < PCPU_MIN_ALLOC_SIZE:
            align = PCPU_MIN_ALLOC_SIZE
        size = (size + PCPU_MIN_ALLOC_SIZE - 1) & -PCPU_MIN_ALLOC_SIZE
        vmap.mutex_lock("pcpu_alloc_mutex")
        for chunk in self.chunks:
            if chunk.contig_hint < size:
                continue
            off = chunk.find_fit(size, align)
            if off is not None:
                break
        else:
            chunk = self.pcpu_create_chunk(cpu)
            if chunk is None:
                vmap._printk(
                    f"percpu: allocation failed, size={size} align={align} atomic=0, "
                    f"failed to allocate new chunk"
                )
                vmap.mutex_unlock("pcpu_alloc_mutex")
                return None
            off = chunk.find_fit(size, align)
            assert off is not None
        chunk.alloc(off, size)
        ptr = chunk.base_addr + off
        self._owner[ptr] = chunk
        vmap.mutex_unlock("pcpu_alloc_mutex")
        return ptr

    def check_ptr(self, ptr: int) -> None:
        """Raise :class:`~vmapsim.VmapArgumentError` unless ``ptr`` lies in a chunk."""
        if ptr not in self._owner and not any(
            c.base_addr <= ptr < c.base_addr + c.unit_size for c in self.chunks
        ):
            raise VmapArgumentError("ptr", "is not a pointer __alloc_percpu() returned", ptr)

    def free(self, ptr: int) -> None:
        """``free_percpu()`` of a pointer inside a chunk (see :meth:`check_ptr`)."""
        vmap = self.vmap
        chunk = self._owner.pop(ptr, None)
        if chunk is None:
            vmap._printk(
                f"WARNING: free_percpu({ptr:#x}): no allocation starts there (double free?)"
            )
            return
        vmap.spin_lock("pcpu_lock")
        chunk.free(ptr - chunk.base_addr)
        vmap.spin_unlock("pcpu_lock")
        if chunk.empty and any(c.empty for c in self.chunks if c is not chunk):
            self.pcpu_destroy_chunk(chunk)  # pcpu_balance_free(): keep one empty chunk

    def check(self, busy: dict[int, VmapArea]) -> None:
        """Invariants: each chunk's map is sorted, non-overlapping, inside the
        unit; free bytes add up; the owner index matches; the areas are busy
        (``busy`` maps ``va_start`` to every busy area)."""
        owners = 0
        for chunk in self.chunks:
            prev = 0
            used = 0
            for off in chunk.starts:
                size = chunk.sizes[off]
                if off < prev or off + size > chunk.unit_size or off % PCPU_MIN_ALLOC_SIZE:
                    raise InvariantError(f"percpu chunk {chunk.base_addr:#x}: bad area at {off}")
                if self._owner.get(chunk.base_addr + off) is not chunk:
                    raise InvariantError(f"percpu area {chunk.base_addr + off:#x} is not indexed")
                prev = off + size
                used += size
            owners += len(chunk.starts)
            if len(chunk.sizes) != len(chunk.starts):
                raise InvariantError(f"percpu chunk {chunk.base_addr:#x}: map and sizes differ")
            if chunk.free_bytes != chunk.unit_size - used:
                raise InvariantError(f"percpu chunk {chunk.base_addr:#x}: free_bytes is wrong")
            for block, contig in enumerate(chunk.block_contig):
                if contig != chunk._block_gaps_max(block):
                    raise InvariantError(
                        f"percpu chunk {chunk.base_addr:#x}: block {block}'s contig hint is wrong"
                    )
            for vm in chunk.vms:
                va = busy.get(vm.addr)
                if va is None or va.vm is not vm:
                    raise InvariantError(f"percpu chunk area {vm.addr:#x} is not busy")
        if owners != len(self._owner):
            raise InvariantError("percpu owner index holds pointers of no chunk")
        if sum(c.empty for c in self.chunks) > 1:
            raise InvariantError("more than one empty percpu chunk")


class PercpuMixin:
    """``__alloc_percpu()`` and ``free_percpu()`` on the allocator."""

    def _percpu_init(self: VmapAllocator) -> None:
        self.percpu = PercpuAllocator(self)

    def alloc_percpu(self: VmapAllocator, size: int, align: int, *, cpu: int = 0) -> int | None:
        """``__alloc_percpu()``: ``size`` bytes per CPU; unit 0's address, or None."""
        check_ulong("size", size)
        check_ulong("align", align)
        check_cpu(cpu, self.nr_cpus)
        self._rcu_tick()
        try:
            return self.percpu.alloc(size, align, cpu)
        finally:
            self._debug_check()

    def free_percpu(self: VmapAllocator, ptr: int | None) -> None:
        """``free_percpu()``: NULL does nothing."""
        if ptr is None:
            return
        check_int("ptr", ptr)
        if not ptr:
            return
        self.percpu.check_ptr(ptr)
        self._rcu_tick()
        try:
            self.percpu.free(ptr)
        finally:
            self._debug_check()
