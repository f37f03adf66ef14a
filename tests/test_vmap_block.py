"""vm_map_ram() / vm_unmap_ram() and per-CPU vmap blocks: the kernel's rules
(mm/vmalloc.c vb_alloc, vb_free, new_vmap_block, free_vmap_block,
purge_fragmented_block(s), _vm_unmap_aliases), invariants and bad input."""

from __future__ import annotations

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import InvariantError, VmapArgumentError, VmapTypeError
from vmapsim.checking.oracle import ReferenceAllocator
from vmapsim.kernel.area import VMAP_BLOCK, VMAP_RAM
from vmapsim.kernel.vmap_block import (
    VMAP_BBMAP_BITS,
    VMAP_BLOCK_SIZE,
    VMAP_MAX_ALLOC,
    VMAP_PURGE_THRESHOLD,
    vmap_bbmap_bits,
)

XS = vmapsim.VMALLOC_START
BITS = 1024


def block_of(a, addr):
    return next(vb for vb in a.vmap_blocks() if vb.va.va_start <= addr < vb.va.va_end)


def test_sizes_follow_the_kernel_formula():
    # min(1024, max(128, 2**25 / roundup_pow_of_two(NR_CPUS) / 16))
    assert VMAP_MAX_ALLOC == 64
    assert VMAP_BBMAP_BITS == BITS == vmap_bbmap_bits(64) == vmap_bbmap_bits(2048)
    assert vmap_bbmap_bits(4096) == 512
    assert vmap_bbmap_bits(8192) == 256
    assert vmap_bbmap_bits(1 << 20) == 128
    assert VMAP_BLOCK_SIZE == 4 << 20
    assert VMAP_PURGE_THRESHOLD == 256


def test_first_mapping_creates_an_aligned_block_without_guard():
    a = vmapsim.build(0, debug=True)
    addr = a.vm_map_ram(1)
    (vb,) = a.vmap_blocks()
    va = vb.va
    assert addr == va.va_start
    assert va.va_start % VMAP_BLOCK_SIZE == 0
    assert va.va_end - va.va_start == VMAP_BLOCK_SIZE  # no guard page
    assert va.flags & 0x3 == VMAP_RAM | VMAP_BLOCK and va.vm is None
    assert a.find_vmap_area(addr) is va
    assert (vb.free, vb.dirty, vb.used_map) == (BITS - 1, 0, 0b1)
    # the xarray: hashed by (addr / block size) % nr_cpu_ids, keyed from VMALLOC_START
    idx = (va.va_start - (XS & ~(VMAP_BLOCK_SIZE - 1))) // VMAP_BLOCK_SIZE
    assert a.vmap_block_queue[0].vmap_blocks == {idx: vb}


def test_bump_allocation_by_order():
    a = vmapsim.build(0, debug=True)
    base = a.vm_map_ram(1)
    # 2 pages: order 1; 3 pages: order 2 (4 slots); then 1 page after those
    assert a.vm_map_ram(2) == base + 1 * P
    assert a.vm_map_ram(3) == base + 3 * P
    assert a.vm_map_ram(1) == base + 7 * P
    vb = block_of(a, base)
    assert vb.free == BITS - 8
    assert vb.used_map == 0b11111111


def test_freed_space_is_never_reused():
    a = vmapsim.build(0, debug=True)
    base = a.vm_map_ram(4)
    a.vm_unmap_ram(base, 4)
    assert a.vm_map_ram(4) == base + 4 * P
    vb = block_of(a, base)
    assert (vb.free, vb.dirty, vb.dirty_min, vb.dirty_max) == (BITS - 8, 4, 0, 4)
    assert vb.used_map == 0b11110000


def test_blocks_are_per_cpu():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    x = a.vm_map_ram(1, cpu=0)
    y = a.vm_map_ram(1, cpu=1)
    assert x // VMAP_BLOCK_SIZE != y // VMAP_BLOCK_SIZE
    assert block_of(a, x).cpu == 0 and block_of(a, y).cpu == 1
    assert a.vm_map_ram(1, cpu=0) == x + P
    assert a.vm_map_ram(1, cpu=1) == y + P


def test_full_block_leaves_the_free_list_and_a_new_block_follows():
    a = vmapsim.build(0, debug=True)
    maps = [a.vm_map_ram(64) for _ in range(BITS // 64)]
    vb = block_of(a, maps[0])
    assert vb.free == 0 and vb not in a.vmap_block_queue[0].free
    nxt = a.vm_map_ram(1)
    assert block_of(a, nxt) is not vb
    assert a.vmap_block_queue[0].free == [block_of(a, nxt)]


def test_a_fully_dirty_block_goes_down_the_lazy_path():
    a = vmapsim.build(0, debug=True)
    maps = [a.vm_map_ram(64) for _ in range(BITS // 64)]
    start = block_of(a, maps[0]).va.va_start
    for addr in maps[:-1]:
        a.vm_unmap_ram(addr, 64)
    assert a.vmap_lazy_nr == 0
    a.vm_unmap_ram(maps[-1], 64)
    assert a.vmap_blocks() == []
    assert [(v.va_start, v.va_end) for v in a.lazy_areas()] == [(start, start + VMAP_BLOCK_SIZE)]
    assert a.vmap_lazy_nr == BITS
    assert a.find_vmap_area(start) is None


def test_more_than_64_pages_get_their_own_area():
    a = vmapsim.build(0, debug=True)
    addr = a.vm_map_ram(65)
    va = a.find_vmap_area(addr)
    assert (va.va_start, va.va_end) == (addr, addr + 65 * P)  # no guard page
    assert va.flags & 0x3 == VMAP_RAM and va.vm is None
    assert a.vmap_blocks() == []
    a.vm_unmap_ram(addr, 65)
    assert [(v.va_start, v.va_end) for v in a.lazy_areas()] == [(addr, addr + 65 * P)]


def test_vm_unmap_aliases_flushes_the_dirty_range_and_resets_it():
    a = vmapsim.build(0, debug=True)
    base = a.vm_map_ram(1)
    mid = a.vm_map_ram(2)
    a.vm_map_ram(1)
    a.vm_unmap_ram(mid, 2)
    flushes = a.metrics.tlb_flushes
    a.vm_unmap_aliases()
    # nothing lazy to purge: the dirty block range alone is flushed
    assert a.metrics.tlb_flushes == flushes + 1
    assert a.last_tlb_flush == (base + P, base + 3 * P)
    vb = block_of(a, base)
    assert (vb.dirty, vb.dirty_min, vb.dirty_max) == (2, BITS, 0)
    a.vm_unmap_aliases()  # nothing dirty any more: no flush at all
    assert a.metrics.tlb_flushes == flushes + 1


def _fragmented_block(a, mapped_pages):
    """A block with ``mapped_pages`` pages handed out (in 64-page pieces) and all unmapped."""
    maps = [a.vm_map_ram(64) for _ in range(mapped_pages // 64)]
    start = block_of(a, maps[0]).va.va_start
    for addr in maps:
        a.vm_unmap_ram(addr, 64)
    return start


def test_vm_unmap_aliases_purges_fragmented_blocks_below_the_threshold():
    a = vmapsim.build(0, debug=True)
    start = _fragmented_block(a, BITS - 192)  # 192 < 256 pages free
    a.vm_unmap_aliases()
    assert a.vmap_blocks() == []
    # freed lazily, then purged by the same call: back in the free space
    assert a.find_vmap_area(start) is None and a.vmap_lazy_nr == 0
    assert any(v.va_start <= start < v.va_end for v in a.free_areas())


def test_vm_unmap_aliases_keeps_fragmented_blocks_with_enough_free_pages():
    a = vmapsim.build(0, debug=True)
    start = _fragmented_block(a, BITS - 256)  # exactly the threshold: not below it
    a.vm_unmap_aliases()
    (vb,) = a.vmap_blocks()
    assert vb.va.va_start == start and vb.free == 256 and vb.dirty == BITS - 256
    assert (vb.dirty_min, vb.dirty_max) == (BITS, 0)  # its dirty range was flushed instead


def test_reclaim_purges_fragmented_blocks_forced():
    a = vmapsim.build(0, debug=True)
    _fragmented_block(a, 128)  # most of the block still free
    keep = a.vm_map_ram(1, cpu=0)  # the same block, still in use: not fragmented
    assert len(a.vmap_blocks()) == 1
    a.vm_unmap_ram(keep, 1)
    a.purge_vmap_area_lazy()  # reclaim_and_purge_vmap_areas()
    assert a.vmap_blocks() == []
    assert a.vmap_lazy_nr == 0


def test_a_block_in_use_is_not_purged():
    a = vmapsim.build(0, debug=True)
    x = a.vm_map_ram(64)
    a.vm_map_ram(64)
    a.vm_unmap_ram(x, 64)
    a.purge_vmap_area_lazy()
    a.vm_unmap_aliases()
    assert len(a.vmap_blocks()) == 1


def test_lockstep_with_the_oracle():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    o = ReferenceAllocator(nr_cpus=2)
    maps = []
    for i, count in enumerate([1, 3, 64, 7, 200, 2, 64, 64, 5]):
        got = a.vm_map_ram(count, cpu=i % 2)
        assert (
            o.vm_map_ram(count, cpu=i % 2, choose=lambda b, e, g=got: g & -VMAP_BLOCK_SIZE) == got
        )
        maps.append((got, count))
    for addr, count in maps[::2]:
        a.vm_unmap_ram(addr, count)
        o.vm_unmap_ram(addr, count)
    a.vm_unmap_aliases()
    o.vm_unmap_aliases()
    got = [(vb.va.va_start, vb.free, vb.dirty, vb.used_map, vb.dirty_min, vb.dirty_max)
           for vb in a.vmap_blocks()]  # fmt: skip
    assert got == o.vmap_blocks()
    assert sorted((v.va_start, v.va_end) for v in a.busy_areas()) == o.busy_areas()
    assert sorted((v.va_start, v.va_end) for v in a.free_areas()) == o.free_areas()


# -- bad input ---------------------------------------------------------------------


@pytest.fixture
def mapped():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addrs = [a.vm_map_ram(n) for n in (1, 2, 100)]
    a.vm_unmap_ram(addrs[0], 1)
    return a, addrs


@pytest.mark.parametrize(
    ("addr", "count", "argument"),
    [
        (0, 1, "addr"),
        (XS - P, 1, "addr"),
        (vmapsim.VMALLOC_END + 1, 1, "addr"),
        (XS + 1, 1, "addr"),
        (XS + 64 * VMAP_BLOCK_SIZE, 1, "addr"),  # no block there: vb_free() would oops
        (XS, 0, "count"),
        (XS, -1, "count"),
        (XS, 1 << 32, "count"),
    ],
)
def test_vm_unmap_ram_bug_on_cases_raise(mapped, addr, count, argument):
    a, _ = mapped
    before = snapshot(a)
    with pytest.raises(VmapArgumentError) as exc:
        a.vm_unmap_ram(addr, count)
    assert exc.value.argument == argument
    assert snapshot(a) == before


def test_vm_unmap_ram_twice_warns_and_changes_nothing(mapped):
    a, addrs = mapped
    before, log = snapshot(a), len(a.log)
    blocks = [(vb.free, vb.dirty, vb.used_map) for vb in a.vmap_blocks()]
    a.vm_unmap_ram(addrs[0], 1)
    assert "not all mapped" in a.log[log]
    assert snapshot(a) == before
    assert [(vb.free, vb.dirty, vb.used_map) for vb in a.vmap_blocks()] == blocks


def test_vm_unmap_ram_of_a_wrong_big_area_warns(mapped):
    a, addrs = mapped
    before, log = snapshot(a), len(a.log)
    a.vm_unmap_ram(addrs[2], 99)  # wrong size
    a.vm_unmap_ram(addrs[2] + 200 * P, 100)  # nothing there: WARN_ON_ONCE
    assert len(a.log) == log + 2
    assert snapshot(a) == before


def test_vm_map_ram_zero_warns_and_returns_null():
    a = vmapsim.build(0, debug=True)
    assert a.vm_map_ram(0) is None
    assert "vb_alloc" in a.log[-1]
    assert a.vmap_blocks() == []


@pytest.mark.parametrize("count", [-1, 1 << 32])
def test_vm_map_ram_bad_count(count):
    a = vmapsim.build(0, debug=True)
    with pytest.raises(VmapArgumentError):
        a.vm_map_ram(count)


def test_vm_map_ram_types():
    a = vmapsim.build(0, debug=True)
    with pytest.raises(VmapTypeError):
        a.vm_map_ram(1.0)  # type: ignore[arg-type]
    with pytest.raises(VmapArgumentError):
        a.vm_map_ram(1, cpu=1)


def test_vfree_of_a_mapping_is_refused(mapped):
    a, addrs = mapped
    before = snapshot(a)
    a.vfree(addrs[1])
    assert "nonexistent vm area" in a.log[-1]
    assert snapshot(a) == before


def test_invariants_catch_a_corrupt_block(mapped):
    a, addrs = mapped
    vb = block_of(a, addrs[1])
    vb.dirty += 1
    with pytest.raises(InvariantError, match="mapped"):
        a.check_invariants()
    vb.dirty -= 1
    vb.used_map |= 1 << 900
    with pytest.raises(InvariantError):
        a.check_invariants()
    vb.used_map &= ~(1 << 900)
    a.check_invariants()
    vb.va.flags &= ~VMAP_BLOCK
    with pytest.raises(InvariantError, match="VMAP_BLOCK"):
        a.check_invariants()
