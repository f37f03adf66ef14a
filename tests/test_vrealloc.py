"""vrealloc() (mm/vmalloc.c vrealloc_node_align_noprof) and __vmalloc(gfp):
in place while the mapped pages allow, else move; non-blocking gfp never purges."""

from __future__ import annotations

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import VmapArgumentError
from vmapsim.checking.oracle import ReferenceAllocator
from vmapsim.kernel.gfp import __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, Gfp


def vm_of(a, addr):
    return a.find_vmap_area(addr).vm


def test_vrealloc_test_sequence():
    """lib/test_vmalloc.c vrealloc_test: 1 page -> 4 pages -> 1 -> 1/2 -> 1."""
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    q = a.vrealloc(p, 4 * P)
    assert q != p  # 4 pages do not fit in 1 mapped page: moved
    assert a.find_vmap_area(p) is None
    assert (p, p + 2 * P) in [(v.va_start, v.va_end) for v in a.lazy_areas()]
    assert vm_of(a, q).requested_size == 4 * P and vm_of(a, q).get_vm_area_size() == 4 * P
    assert vm_of(a, q).nr_pages == 4
    for size in (P, P // 2, P):
        assert a.vrealloc(q, size) == q  # shrink, shrink, grow within the mapped page
        assert vm_of(a, q).requested_size == size
    # the shrink to 1 page crossed page boundaries: tail pages unmapped and freed,
    # the virtual area keeps its size
    assert vm_of(a, q).nr_pages == 1
    assert vm_of(a, q).get_vm_area_size() == 4 * P
    a.vfree(q)
    assert a.busy_areas() is not None and list(a.busy_areas()) == []


def test_grow_after_a_shrink_moves_when_the_pages_are_gone():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(4 * P)
    assert a.vrealloc(p, P + 1) == p
    assert vm_of(a, p).nr_pages == 2
    assert a.vrealloc(p, 2 * P) == p  # still mapped
    q = a.vrealloc(p, 2 * P + 1)  # beyond the mapped pages, inside the area: moved
    assert q not in (p, None)
    assert vm_of(a, q).nr_pages == 3


def test_shrink_keeps_its_pages_without_io_and_fs():
    """gfp_has_io_fs(): a GFP_NOFS / GFP_NOIO shrink frees no pages."""
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(4 * P)
    gfp_nofs = int(GFP_KERNEL & ~Gfp.FS)
    assert a.vrealloc(p, P, gfp=gfp_nofs) == p
    assert vm_of(a, p).nr_pages == 4 and vm_of(a, p).requested_size == P
    assert a.vrealloc(p, 4 * P) == p  # grow back in place


def test_grow_within_the_page_stays_in_place():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(100)
    assert vm_of(a, p).requested_size == 100
    assert a.vrealloc(p, P) == p
    assert vm_of(a, p).requested_size == P
    assert a.vrealloc(p, P + 1) not in (p, None)


def test_null_is_vmalloc_and_zero_is_vfree():
    a = vmapsim.build(0, debug=True)
    p = a.vrealloc(None, 3 * P)
    assert vm_of(a, p).requested_size == 3 * P
    assert a.vrealloc(p, 0) is None
    assert a.find_vmap_area(p) is None and a.vmap_lazy_nr == 4
    assert a.vrealloc(None, 0) is None


def test_nonexistent_or_inner_address_warns_and_changes_nothing():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(2 * P)
    m = a.vm_map_ram(1)
    before, log = snapshot(a), len(a.log)
    assert a.vrealloc(p + P, P) is None
    assert a.vrealloc(m, P) is None  # no vm_struct
    assert a.vrealloc(a.vmalloc_start - 16 * P, P) is None
    assert len(a.log) == log + 3
    assert all("Trying to vrealloc() nonexistent vm area" in line for line in a.log[log:])
    assert snapshot(a) == before


def test_mismatched_requested_size_warns():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    vm_of(a, p).requested_size = 2 * P
    assert a.vrealloc(p, P) is None
    assert "mismatched" in a.log[-1]


def test_a_failed_move_keeps_the_old_area():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    assert a.vrealloc(p, 64 << 40, gfp=int(GFP_KERNEL | __GFP_NOWARN)) is None
    assert vm_of(a, p).requested_size == P


def test_vrealloc_lockstep_with_the_oracle():
    a = vmapsim.build(0, debug=True)
    o = ReferenceAllocator()
    p = None
    for size in (P, 3 * P, 100, 5 * P, 2 * P, 9 * P, 0, 7, 4 * P):
        got = a.vrealloc(p, size)
        assert o.vrealloc(p, size) == got
        if got is not None:
            assert vm_of(a, got).requested_size == o.requested_size(got)
            assert vm_of(a, got).nr_pages == o.nr_pages(got)
        p = got
        assert sorted((v.va_start, v.va_end) for v in a.busy_areas()) == o.busy_areas()
        assert sorted((v.va_start, v.va_end) for v in a.lazy_areas()) == o.lazy_areas()


def test_vrealloc_bad_arguments():
    a = vmapsim.build(0, debug=True)
    with pytest.raises(VmapArgumentError):
        a.vrealloc(None, -1)
    with pytest.raises(VmapArgumentError):
        a.vrealloc(-P, P)


# -- __vmalloc(size, gfp) ------------------------------------------------------------


@pytest.mark.parametrize("gfp", [GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT])
def test_vmalloc_gfp_allocates_with_a_guard_page(gfp):
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc_gfp(3 * P, gfp=int(gfp))
    va = a.find_vmap_area(p)
    assert va.va_end - va.va_start == 4 * P and va.vm.requested_size == 3 * P


@pytest.mark.parametrize("gfp", [GFP_ATOMIC, GFP_NOWAIT | __GFP_NOWARN])
def test_non_blocking_gfp_fails_without_purging(gfp):
    a = vmapsim.build(0, debug=True)
    a.vfree(a.vmalloc(P))  # something lazy a purge would take
    purges, log = a.metrics.purges, len(a.log)
    assert a.vmalloc_gfp(64 << 40, gfp=int(gfp)) is None
    assert a.metrics.purges == purges and a.vmap_lazy_nr == 2
    new = a.log[log:]
    assert not any("Address range restricted" in line for line in new)
    assert bool(new) == (not gfp & __GFP_NOWARN)  # warn_alloc unless __GFP_NOWARN


def test_blocking_gfp_purges_and_retries_before_failing():
    a = vmapsim.build(0, debug=True)
    a.vfree(a.vmalloc(P))
    purges = a.metrics.purges
    assert a.vmalloc_gfp(64 << 40, gfp=int(GFP_KERNEL)) is None
    assert a.metrics.purges == purges + 1 and a.vmap_lazy_nr == 0
    assert any("Address range restricted" in line for line in a.log)
