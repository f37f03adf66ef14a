"""pcpu_get_vm_areas() / pcpu_free_vm_areas() and the percpu allocator model:
the kernel's rules (mm/vmalloc.c pcpu_get_vm_areas, pvm_find_va_enclose_addr,
pvm_determine_end_from_reverse; mm/percpu.c pcpu_alloc), the oracle, bad input."""

from __future__ import annotations

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import InvariantError, VmapArgumentError, VmapTypeError
from vmapsim.checking.oracle import ReferenceAllocator
from vmapsim.kernel.area import VM_ALLOC, VM_NO_GUARD
from vmapsim.kernel.percpu import PCPU_ATOM_SIZE, PCPU_UNIT_SIZE

XS = vmapsim.VMALLOC_START
XE = vmapsim.VMALLOC_END
A = 16 * P


def top(align):
    return XE & ~(align - 1)


def test_one_area_at_the_top_no_guard_vm_alloc():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    (vm,) = a.pcpu_get_vm_areas([0], [4 * A], A)
    assert vm.addr == top(A) - 4 * A
    assert vm.size == 4 * A and vm.flags == VM_ALLOC and not vm.flags & VM_NO_GUARD
    va = a.find_vmap_area(vm.addr)
    assert (va.va_start, va.va_end, va.vm) == (vm.addr, vm.addr + 4 * A, vm)
    assert va in list(a.vmap_nodes[a.addr_to_node_id(vm.addr)].busy)


def test_areas_are_congruent_and_carved_top_down():
    a = vmapsim.build(0, debug=True)
    offsets, sizes = [0, 3 * A, 8 * A], [2 * A, A, 2 * A]
    vms = a.pcpu_get_vm_areas(offsets, sizes, A)
    base = top(A) - 10 * A
    assert [vm.addr for vm in vms] == [base + o for o in offsets]
    assert [vm.size for vm in vms] == sizes
    # the holes between the areas stay free
    free = {(v.va_start, v.va_end) for v in a.free_areas()}
    assert (base + 2 * A, base + 3 * A) in free and (base + 4 * A, base + 8 * A) in free
    # the next area takes the highest place that fits: the top of the upper hole
    (vm,) = a.pcpu_get_vm_areas([0], [A], A)
    assert vm.addr == base + 7 * A
    # one too big for any hole goes below the whole set
    (vm,) = a.pcpu_get_vm_areas([0], [5 * A], A)
    assert vm.addr == base - 5 * A


def test_areas_may_sit_in_different_free_blocks():
    a = vmapsim.build(0, debug=True)
    _x1, x2, x3 = (a.pcpu_get_vm_areas([0], [A], A)[0] for _ in range(3))
    a.pcpu_free_vm_areas([x2])
    a.purge_vmap_area_lazy()
    hole = x2.addr
    # one area: the highest place is the hole
    (one,) = a.pcpu_get_vm_areas([0], [A], A)
    assert one.addr == hole
    a.pcpu_free_vm_areas([one])
    a.purge_vmap_area_lazy()
    # two areas 2A apart: area 1 in the hole, area 0 below x3
    vms = a.pcpu_get_vm_areas([0, 2 * A], [A, A], A)
    assert [vm.addr for vm in vms] == [x3.addr - A, hole]


def test_failure_purges_once_and_retries():
    a = vmapsim.build(0, debug=True)
    align = PCPU_ATOM_SIZE
    whole = top(align) - ((XS + align - 1) & -align)
    v = a.vmalloc(P)
    a.vfree(v)  # lazy: the window is not all free until a purge
    purges = a.metrics.purges
    (vm,) = a.pcpu_get_vm_areas([0], [whole], align)
    assert a.metrics.purges == purges + 1 and a.vmap_lazy_nr == 0
    assert vm.addr == (XS + align - 1) & -align
    a.pcpu_free_vm_areas([vm])
    a.purge_vmap_area_lazy()
    keep = a.vmalloc(P)  # busy: no purge can help
    before = sorted((v.va_start, v.va_end) for v in a.free_areas())
    assert a.pcpu_get_vm_areas([0], [whole], align) is None
    assert sorted((v.va_start, v.va_end) for v in a.free_areas()) == before
    a.vfree(keep)


def test_too_big_for_the_vmalloc_space_warns_without_purging():
    a = vmapsim.build(0, debug=True)
    purges = a.metrics.purges
    assert a.pcpu_get_vm_areas([0], [64 << 40], PCPU_ATOM_SIZE) is None
    assert "pcpu_get_vm_areas" in a.log[-1]
    assert a.metrics.purges == purges


def test_pcpu_free_vm_areas_frees_lazily():
    a = vmapsim.build(0, debug=True)
    vms = a.pcpu_get_vm_areas([0, 2 * A], [A, A], A)
    a.pcpu_free_vm_areas(vms)
    assert sorted((v.va_start, v.va_end) for v in a.lazy_areas()) == [
        (vm.addr, vm.addr + vm.size) for vm in vms
    ]
    assert a.vmap_lazy_nr == 2 * A // P


def test_lockstep_with_the_oracle():
    a = vmapsim.build(0, nr_cpus=4, debug=True)
    o = ReferenceAllocator(nr_cpus=4)
    live = []
    for layout in ([0], [A]), ([0, 2 * A], [A, A]), ([0], [3 * A]), ([4 * A, 0], [A, 2 * A]):
        vms = a.pcpu_get_vm_areas(*layout, A)
        assert [vm.addr for vm in vms] == o.pcpu_get_vm_areas(*layout, A)
        live.append(vms)
    a.pcpu_free_vm_areas(live[1])
    o.pcpu_free_vm_areas([vm.addr for vm in live[1]])
    a.purge_vmap_area_lazy()
    o.purge_vmap_area_lazy()
    vms = a.pcpu_get_vm_areas([0, 2 * A], [A, A], A)
    assert [vm.addr for vm in vms] == o.pcpu_get_vm_areas([0, 2 * A], [A, A], A)
    assert sorted((v.va_start, v.va_end) for v in a.free_areas()) == o.free_areas()


@pytest.mark.parametrize(
    ("offsets", "sizes", "align", "argument"),
    [
        ([0], [A], 3 * P, "align"),
        ([0], [A], P // 2, "align"),
        ([P], [A], A, "offsets[0]"),
        ([0], [A + P], A, "sizes[0]"),
        ([0], [0], A, "sizes[0]"),
        ([0, A], [2 * A, A], A, "offsets[1]"),  # overlap: BUG_ON
        ([], [], A, "offsets"),
        ([0, A], [A], A, "offsets"),
        ([-A], [A], A, "offsets[0]"),
    ],
)
def test_bad_arguments_raise_and_change_nothing(offsets, sizes, align, argument):
    a = vmapsim.build(0, debug=True)
    a.vmalloc(P)
    before = snapshot(a)
    with pytest.raises(VmapArgumentError) as exc:
        a.pcpu_get_vm_areas(offsets, sizes, align)
    assert exc.value.argument == argument
    assert snapshot(a) == before


def test_freeing_what_is_not_busy_raises():
    a = vmapsim.build(0, debug=True)
    vms = a.pcpu_get_vm_areas([0], [A], A)
    a.pcpu_free_vm_areas(vms)
    before = snapshot(a)
    with pytest.raises(VmapArgumentError):
        a.pcpu_free_vm_areas(vms)
    with pytest.raises(VmapTypeError):
        a.pcpu_free_vm_areas([object()])  # type: ignore[list-item]
    assert snapshot(a) == before


# -- the percpu allocator ----------------------------------------------------------


def test_percpu_chunk_comes_from_pcpu_get_vm_areas():
    a = vmapsim.build(0, nr_cpus=4, debug=True)
    ptr = a.alloc_percpu(100, 8)
    (chunk,) = a.percpu.chunks
    (vm,) = chunk.vms
    # one group of nr_cpus units rounded up to a whole 2 MiB atom, atom-aligned
    assert vm.size == PCPU_ATOM_SIZE and vm.addr % PCPU_ATOM_SIZE == 0
    assert vm.addr == top(PCPU_ATOM_SIZE) - PCPU_ATOM_SIZE
    assert ptr == chunk.base_addr == vm.addr
    big = vmapsim.build(0, nr_cpus=9)
    big.alloc_percpu(4, 4)
    assert big.percpu.chunks[0].vms[0].size == 16 * PCPU_UNIT_SIZE


def test_percpu_first_fit_alignment_and_rounding():
    a = vmapsim.build(0, debug=True)
    p0 = a.alloc_percpu(1, 1)  # rounded to 4 bytes, align raised to 4
    p1 = a.alloc_percpu(6, 2)
    p2 = a.alloc_percpu(8, 64)
    base = a.percpu.chunks[0].base_addr
    assert [p - base for p in (p0, p1, p2)] == [0, 4, 64]
    a.free_percpu(p1)
    assert a.alloc_percpu(8, 4) == base + 4  # the first gap that fits
    assert a.alloc_percpu(40, 8) == base + 16


def test_percpu_new_chunk_when_full_and_one_empty_chunk_kept():
    a = vmapsim.build(0, debug=True)
    first = [a.alloc_percpu(32 << 10, 4) for _ in range(PCPU_UNIT_SIZE // (32 << 10))]
    assert len(a.percpu.chunks) == 1
    extra = a.alloc_percpu(4, 4)
    assert len(a.percpu.chunks) == 2
    assert a.percpu.chunks[1].base_addr == a.percpu.chunks[0].base_addr - PCPU_ATOM_SIZE
    for p in first:
        a.free_percpu(p)
    assert len(a.percpu.chunks) == 2  # the empty one is kept: it is the only empty chunk
    a.free_percpu(extra)
    assert len(a.percpu.chunks) == 1  # a second empty chunk is destroyed
    assert a.vmap_lazy_nr == PCPU_ATOM_SIZE // P


@pytest.mark.parametrize(("size", "align"), [(0, 4), ((32 << 10) + 1, 4), (8, 3), (8, 2 * P)])
def test_percpu_illegal_size_or_align_warns(size, align):
    a = vmapsim.build(0, debug=True)
    assert a.alloc_percpu(size, align) is None
    assert "illegal size" in a.log[-1]
    assert a.percpu.chunks == []


def test_free_percpu_bad_pointers():
    a = vmapsim.build(0, debug=True)
    p = a.alloc_percpu(16, 16)
    a.free_percpu(None)
    a.free_percpu(0)
    with pytest.raises(VmapArgumentError):
        a.free_percpu(XS)
    a.alloc_percpu(16, 16)
    a.free_percpu(p)
    log = len(a.log)
    a.free_percpu(p)
    assert "double free" in a.log[log]


def test_percpu_lockstep_with_the_oracle():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    o = ReferenceAllocator(nr_cpus=2)
    live = []
    for i in range(400):
        size, align = 1 + (i * 37) % 2000, 1 << (1 + i % 11)
        got = a.alloc_percpu(size, align)
        assert o.alloc_percpu(size, align) == got
        live.append(got)
        if i % 3 == 0:
            victim = live.pop((i * 7) % len(live))
            a.free_percpu(victim)
            o.free_percpu(victim)
    chunks = [(c.base_addr, [(off, c.sizes[off]) for off in c.starts]) for c in a.percpu.chunks]
    assert chunks == o.percpu_chunks()
    assert sorted((v.va_start, v.va_end) for v in a.busy_areas()) == o.busy_areas()


def test_percpu_invariants_catch_corruption():
    a = vmapsim.build(0, debug=True)
    a.alloc_percpu(16, 16)
    a.percpu.chunks[0].free_bytes -= 4
    with pytest.raises(InvariantError, match="free_bytes"):
        a.check_invariants()


def test_carved_areas_are_merged_back_when_a_later_carve_fails():
    """va_clip() of a strictly-inside (NE) fit needs a second vmap_area: the
    preload node if this CPU has one, else GFP_NOWAIT, which failslab fails
    here.  Area 0 takes the preload; area 1 fails; area 0 is merged back,
    one purge and retry (no preload left: area 0 fails), NULL, WARN_ON_ONCE."""
    fs = vmapsim.FailslabConfig(probability=100, cache_filter={"vmap_area"})
    a = vmapsim.build(0, debug=True)
    # armed after boot: vmalloc_init()'s vmap_area allocations are GFP_NOWAIT
    # (mm/vmalloc.c vmap_init_free_space) and would fail armed at boot
    a.faults.configure(fs)
    a.vmalloc(P)  # the first vmalloc is an NE fit in [1, ULONG_MAX): it uses its preload
    a.vmalloc(P)  # an LE fit: the preload node stays
    assert a.ne_fit_preload_node[0] is not None
    free_before = sorted((v.va_start, v.va_end) for v in a.free_areas())
    busy_before = sorted((v.va_start, v.va_end) for v in a.busy_areas())
    purges, log = a.metrics.purges, len(a.log)
    assert a.pcpu_get_vm_areas([0, 2 * A], [A, A], A) is None
    assert sorted((v.va_start, v.va_end) for v in a.free_areas()) == free_before
    assert sorted((v.va_start, v.va_end) for v in a.busy_areas()) == busy_before
    assert a.metrics.purges == purges + 1
    assert len(a.log) == log + 1 and "pcpu_get_vm_areas" in a.log[log]
