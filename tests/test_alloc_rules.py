"""Stage 0 follows the kernel's allocation rules (mm/vmalloc.c, v6.9+ per-node design)."""

from __future__ import annotations

import errno

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import ULONG_MAX, FailslabConfig, VmapError
from vmapsim.kernel.gfp import GFP_KERNEL, GFP_NOWAIT, Gfp

XS = vmapsim.ARCHES["x86_64"].vmalloc_start
XE = vmapsim.ARCHES["x86_64"].vmalloc_end


def ranges(it):
    return [(v.va_start, v.va_end) for v in it]


# -- the global free index ---------------------------------------------------


def test_free_space_starts_as_whole_kva_space(a0):
    assert ranges(a0.free_areas()) == [(1, ULONG_MAX)]
    assert list(a0.busy_areas()) == []


def test_constants_per_arch():
    assert vmapsim.VMALLOC_START == 0xFFFFC90000000000
    assert vmapsim.VMALLOC_END == 0xFFFFE8FFFFFFFFFF
    arm = vmapsim.build(0, arch="arm64")
    # MODULES_END, and VMEMMAP_START - SZ_8M with vmemmap 1 GiB below the top
    assert (arm.vmalloc_start, arm.vmalloc_end) == (0xFFFF800080000000, 0xFFFFFDFFBF800000)
    assert arm.vmalloc(1) == 0xFFFF800080000000


def test_first_vmalloc_lands_at_vmalloc_start_with_guard_page(a0):
    addr = a0.vmalloc(1)
    assert addr == XS
    va = a0.find_vmap_area(addr)
    assert (va.va_start, va.va_end) == (XS, XS + 2 * P)  # one page + guard
    assert va.vm.size == 2 * P and va.vm.get_vm_area_size() == P
    assert va.vm.requested_size == 1
    assert ranges(a0.free_areas()) == [(1, XS), (XS + 2 * P, ULONG_MAX)]


@pytest.mark.parametrize(("nbytes", "pages"), [(1, 2), (P, 2), (P + 1, 3), (5 * P, 6)])
def test_vmalloc_size_rounding(a0, nbytes, pages):
    addr = a0.vmalloc(nbytes)
    assert a0.find_vmap_area(addr).size == pages * P


def test_other_windows_are_carved_from_the_same_tree(a0):
    mod_start = XS - (1 << 31)
    va = a0.alloc_vmap_area(4 * P, P, mod_start, XS)
    assert va.va_start == mod_start
    assert (1, mod_start) in ranges(a0.free_areas())
    assert a0.vmalloc(1) == XS


def test_lowest_fit_reuses_lowest_hole_after_purge(a0):
    addrs = [a0.vmalloc(P * k) for k in (1, 3, 1, 3, 1)]
    a0.vfree(addrs[1])  # 4 pages hole
    a0.vfree(addrs[3])  # 4 pages hole, higher
    # lazy areas are not reusable before a purge
    assert a0.vmalloc(3 * P) not in (addrs[1], addrs[3])
    a0.purge_vmap_area_lazy()
    assert a0.vmalloc(2 * P) == addrs[1]  # 3 pages into the lowest 4-page hole
    assert a0.vmalloc(3 * P) == addrs[3]  # the 1 page left over is too small


def test_vend_is_checked_after_the_search_erange(a0):
    # lowest block that fits lies above vend -> -ERANGE -> purge, retry, fail
    a0.alloc_vmap_area(2 * P, P, XS, XS + 2 * P)
    with pytest.raises(VmapError) as ei:
        a0.alloc_vmap_area(P, P, XS, XS + 3 * P - 1)
    assert ei.value.errno == errno.EBUSY
    assert a0.metrics["purges"] == 1
    assert a0.log[-1] == (
        f"vmalloc_node_range for size {P} failed: "
        f"Address range restricted to {XS:#x} - {XS + 3 * P - 1:#x}"
    )


def test_last_page_below_inclusive_vmalloc_end_is_not_allocatable():
    a = vmapsim.build(0)
    top = (XE & ~(P - 1)) - P  # the last full page below VMALLOC_END
    va = a.alloc_vmap_area(P, P, top, XE)
    assert va.va_start == top
    with pytest.raises(VmapError):
        a.alloc_vmap_area(P, P, top, XE)


# -- fit types and va_clip ------------------------------------------------------


def _only_free_block_containing(a, addr):
    return [r for r in ranges(a.free_areas()) if r[0] <= addr < r[1]]


def test_le_fit_shrinks_block_from_the_left(a0):
    a0.alloc_vmap_area(P, P, XS, XE)
    assert _only_free_block_containing(a0, XS + P) == [(XS + P, ULONG_MAX)]


def test_re_fit_shrinks_block_from_the_right(a0):
    # a window ending inside a block with vstart = block_end - size is an RE fit
    a0.alloc_vmap_area(4 * P, P, XS, XE)
    a0.purge_vmap_area_lazy()
    hole = a0.alloc_vmap_area(8 * P, P, XS, XE)  # [XS+4P, XS+12P)
    a0.free_vmap_area_noflush(hole)
    a0.purge_vmap_area_lazy()
    va = a0.alloc_vmap_area(2 * P, P, XS + 10 * P, XS + 12 * P)
    assert (va.va_start, va.va_end) == (XS + 10 * P, XS + 12 * P)
    assert (XS + 4 * P, XS + 10 * P) in ranges(a0.free_areas())


def test_fl_fit_frees_the_block_object(a0):
    a0.vmalloc(P)
    b = a0.vmalloc(P)  # [XS+2P, XS+4P): its neighbours stay busy
    a0.vmalloc(P)
    a0.vfree(b)
    a0.purge_vmap_area_lazy()
    assert (b, b + 2 * P) in ranges(a0.free_areas())
    frees = a0.metrics["va_frees"]
    assert a0.vmalloc(P) == b  # exact fit of the 2-page hole
    assert a0.metrics["va_frees"] == frees + 1  # the free block's object went back
    assert (b, b + 2 * P) not in ranges(a0.free_areas())


def test_ne_fit_uses_the_per_cpu_preload_node(a0):
    assert a0.ne_fit_preload_node[0] is None
    a0.vmalloc(P)  # NE fit of [1, ULONG_MAX): needs a second object, no preload yet
    assert a0.ne_fit_preload_node[0] is None
    a0.vmalloc(P)  # LE fit, but this CPU was preloaded before taking the lock
    spare = a0.ne_fit_preload_node[0]
    assert spare is not None
    va = a0.alloc_vmap_area(P, P, XS + 16 * P, XE)  # strictly inside the big block
    assert va.va_start == XS + 16 * P
    # the preload node became the left remainder [XS+4P, XS+16P)
    assert a0.ne_fit_preload_node[0] is None
    assert (spare.va_start, spare.va_end) == (XS + 4 * P, XS + 16 * P)
    assert spare in list(a0.free_areas())


def test_nonblocking_request_fails_when_its_vmap_area_cannot_be_allocated():
    """failslab is armed after boot (as writing its debugfs knobs does):
    vmalloc_init()'s own vmap_area allocations are GFP_NOWAIT
    (mm/vmalloc.c vmap_init_free_space), so armed at boot it would fail them
    (tests/test_kvmalloc_faults.py pins what the kernel does then)."""
    a = vmapsim.build(0, debug=True)
    a.faults.configure(FailslabConfig(probability=100, cache_filter={"vmap_area"}))
    a.vmalloc(P)  # GFP_KERNEL may block: failslab (ignore_gfp_wait) leaves it alone
    before = snapshot(a)
    with pytest.raises(VmapError) as ei:
        a.alloc_vmap_area(P, P, XS + 16 * P, XE, gfp=GFP_NOWAIT)
    assert ei.value.errno == errno.ENOMEM
    assert snapshot(a) == before


def test_ne_fit_enomem_is_warned_once_and_fails_nonblocking(a0, monkeypatch):
    a0.vmalloc(P)
    a0.vmalloc(P)
    a0.ne_fit_preload_node[0] = None  # as if this CPU's spare had been used
    real = a0._kmem_cache_alloc_va
    calls = []

    def only_first(can_block):  # the area object succeeds; preload and fallback fail
        calls.append(can_block)
        return real(can_block) if len(calls) == 1 else None

    monkeypatch.setattr(a0, "_kmem_cache_alloc_va", only_first)
    before = snapshot(a0)
    with pytest.raises(VmapError) as ei:
        a0.alloc_vmap_area(P, P, XS + 16 * P, XE, gfp=GFP_NOWAIT)
    assert ei.value.errno == errno.EBUSY  # non-blocking: no purge, no retry
    assert calls == [False, False, False]  # object, preload, va_clip's GFP_NOWAIT fallback
    assert a0.metrics["purges"] == 0
    assert [m for m in a0.log if "va_clip() returned -12" in m]
    assert snapshot(a0) == before
    with pytest.raises(VmapError):
        a0.alloc_vmap_area(P, P, XS + 16 * P, XE, gfp=GFP_NOWAIT)
    assert len([m for m in a0.log if "va_clip()" in m]) == 1  # WARN_ON_ONCE


# -- adjust_search_size ------------------------------------------------------


def test_exact_fit_window_does_not_over_ask_for_alignment(a0):
    big = 64 * P
    first = a0.alloc_vmap_area(4 * P, P, XS, XE)  # [XS, XS+4P)
    a0.alloc_vmap_area(4 * P, P, XS + big, XE)  # NE: hole [XS+4P, XS+64P)
    # the window is exactly a 4-page, 16-page-aligned slot inside the hole
    slot = XS + 16 * P
    va = a0.alloc_vmap_area(4 * P, 16 * P, slot, slot + 4 * P)
    assert va.va_start == slot
    assert first


def test_large_alignment_returns_aligned_address_in_window(a0):
    a0.vmalloc(P)
    for shift in (13, 16, 21, 22):
        addr = a0.vmalloc_node(P, 1 << shift)
        assert addr % (1 << shift) == 0
        assert XS <= addr < XE


# -- vmap nodes, zones, pools ---------------------------------------------------


@pytest.mark.parametrize(("cpus", "nodes"), [(1, 1), (2, 2), (64, 64), (128, 128), (200, 128)])
def test_nr_vmap_nodes_is_clamped_cpu_count(cpus, nodes):
    a = vmapsim.build(0, nr_cpus=cpus)
    assert a.nr_vmap_nodes == nodes
    assert a.vmap_zone_size == (16 * P if nodes > 1 else 1)


def test_busy_area_lives_in_the_node_of_its_address():
    a = vmapsim.build(0, nr_cpus=4, debug=True)
    addrs = [a.vmalloc(7 * P, cpu=3) for _ in range(6)]
    for addr in addrs:
        node = (addr // (16 * P)) % 4
        assert a.vmap_nodes[node].busy.find(addr) is not None
        # find_vmap_area walks every node backwards from the address's node
        assert a.find_vmap_area(addr + 3 * P).va_start == addr


def test_lazy_area_goes_to_the_allocating_cpus_node_then_its_pool():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addr = a.vmalloc(P, cpu=1)
    va = a.find_vmap_area(addr)
    assert va.flags >> 8 == 2  # encode_vn_id(1)
    a.vfree(addr, cpu=0)
    assert [v.va_start for v in a.vmap_nodes[1].lazy] == [addr]
    a.drain_vmap_area_work()  # the threshold drain: pools populate
    assert [v.va_start for v in a.vmap_nodes[1].pools[1]] == [addr]
    assert a.vmalloc(P, cpu=0) != addr  # other node's pool: miss, global tree
    assert a.vmalloc(P, cpu=1) == addr  # pool hit
    assert a.metrics["pool_hits"] == 1


def test_single_node_never_pools():
    a = vmapsim.build(0, debug=True)
    addr = a.vmalloc(P)
    assert a.find_vmap_area(addr).flags == 0
    a.vfree(addr)
    a.drain_vmap_area_work()
    assert list(a.pooled_areas()) == []
    assert ranges(a.free_areas()) == [(1, ULONG_MAX)]


def test_pools_only_serve_the_vmalloc_window():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    va = a.alloc_vmap_area(2 * P, P, XS - (1 << 30), XS, cpu=1)
    assert va.flags == 0  # not the vmalloc window: no vn_id


def test_misaligned_pool_head_rotates_to_tail():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addrs = [a.vmalloc(P, cpu=0) for _ in range(4)]  # 2-page areas at XS, XS+2P, ...
    for addr in addrs:
        a.vfree(addr)
    a.drain_vmap_area_work()
    pool = a.vmap_nodes[0].pools[1]
    head = pool[0].va_start
    assert head == addrs[-1]  # node_pool_add_va adds at the head: last purged first
    want_align = 4 * P
    misaligned = head % want_align != 0
    got = a.vmalloc_node(P, want_align, cpu=0)
    if misaligned:
        assert pool[-1].va_start == head  # moved to the tail, miss
        assert got not in addrs
    else:
        assert got == head


def test_normal_purge_decays_a_quarter_full_purge_decays_all():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addrs = [a.vmalloc(P, cpu=0) for _ in range(8)]
    for addr in addrs:
        a.vfree(addr)
    a.drain_vmap_area_work()
    assert len(a.vmap_nodes[0].pools[1]) == 8
    a.drain_vmap_area_work()  # 8 >> 2 = 2 go back to the global tree
    assert len(a.vmap_nodes[0].pools[1]) == 6
    a.purge_vmap_area_lazy()  # full decay
    assert list(a.pooled_areas()) == []
    assert ranges(a.free_areas()) == [(1, ULONG_MAX)]


def test_pool_decay_takes_pool_lock_to_detach_and_again_to_attach_back():
    # decay_va_pool_node(): each non-empty pool is detached under pool_lock;
    # what is left after the decay is attached back under it again.
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    for addr in [a.vmalloc(P, cpu=0) for _ in range(8)]:
        a.vfree(addr)
    a.drain_vmap_area_work()  # 8 areas into node 0's pool[1]
    before = a.metrics["lock.vmap_node.pool_lock"]
    a.vm_unmap_aliases()  # nothing lazy: only the decay, 8 >> 2 = 2 leave
    assert len(a.vmap_nodes[0].pools[1]) == 6
    assert a.metrics["lock.vmap_node.pool_lock"] - before == 2
    before = a.metrics["lock.vmap_node.pool_lock"]
    a.purge_vmap_area_lazy()  # full decay: detached, nothing to attach back
    assert a.metrics["lock.vmap_node.pool_lock"] - before == 1


def test_nr_purged_counts_the_last_purge_of_the_node():
    # purge_vmap_node() restarts vn->nr_purged for every purge
    a = vmapsim.build(0, nr_cpus=4, seed=1)
    for _ in range(2):
        a.vfree(a.vmalloc(P, cpu=2))
        a.vm_unmap_aliases()
        assert a.vmap_nodes[2].nr_purged == 1


def test_vm_unmap_aliases_purges_lazy_but_decays_pools_by_a_quarter():
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addrs = [a.vmalloc(P, cpu=0) for _ in range(9)]
    for addr in addrs[:8]:
        a.vfree(addr)
    a.drain_vmap_area_work()  # 8 areas into node 0's pool[1]
    a.vfree(addrs[8])
    a.vm_unmap_aliases()
    assert list(a.lazy_areas()) == []
    # 8 >> 2 = 2 decayed first, then the lazily freed one joins the pool
    assert len(a.vmap_nodes[0].pools[1]) == 7
    assert a.metrics["lock.vmap_purge_lock"] == 2


def test_vmap_node_shrinker_empties_pools_and_leaves_lazy_areas_queued():
    # vmap_node_shrink_count() sums the pools (SHRINK_EMPTY when none);
    # vmap_node_shrink_scan() decays every node's pools fully under
    # vmap_purge_lock, without purging the lazy queues or flushing the TLB.
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    assert a.vmap_node_shrink_count() == vmapsim.SHRINK_EMPTY
    addrs = [a.vmalloc(P, cpu=0) for _ in range(6)] + [a.vmalloc(3 * P, cpu=1) for _ in range(2)]
    for addr in addrs:
        a.vfree(addr)
    a.drain_vmap_area_work()  # all eight into pools: 6 in node 0, 2 in node 1
    lazy = a.vmalloc(5 * P, cpu=0)  # a size no pool holds: carved from the free tree
    a.vfree(lazy)
    assert a.vmap_node_shrink_count() == 8
    flushes = a.metrics["tlb_flushes"]
    purge_locks = a.metrics["lock.vmap_purge_lock"]
    pool_locks = a.metrics["lock.vmap_node.pool_lock"]
    assert a.vmap_node_shrink_scan() == vmapsim.SHRINK_STOP
    assert list(a.pooled_areas()) == []
    assert a.vmap_node_shrink_count() == vmapsim.SHRINK_EMPTY
    assert [v.va_start for v in a.lazy_areas()] == [lazy]
    assert a.metrics["tlb_flushes"] == flushes
    assert a.metrics["lock.vmap_purge_lock"] - purge_locks == 1
    assert a.metrics["lock.vmap_node.pool_lock"] - pool_locks == 2  # one per non-empty pool
    # only the lazy area (and its guard page) is still missing from the free space
    assert ranges(a.free_areas()) == [(1, lazy), (lazy + 6 * P, ULONG_MAX)]


# -- lazy freeing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "pages"), [(1, 8192), (2, 16384), (3, 16384), (4, 24576), (8, 32768), (128, 65536)]
)
def test_lazy_max_pages(cpus, pages):
    assert vmapsim.build(0, nr_cpus=cpus).lazy_max_pages() == pages


def test_drain_runs_once_lazy_pages_exceed_the_threshold(a0):
    limit = a0.lazy_max_pages()
    # 255-page vmallocs are 256 pages each; limit/256 frees reach exactly the limit
    addrs = [a0.vmalloc(255 * P) for _ in range(limit // 256 + 1)]
    for addr in addrs[:-1]:
        a0.vfree(addr)
    assert a0.vmap_lazy_nr == limit  # not above: no drain yet
    assert a0.metrics["purges"] == 0
    a0.vfree(addrs[-1])
    assert a0.vmap_lazy_nr == 0
    assert a0.metrics["purges"] == 1 and a0.metrics["tlb_flushes"] == 1
    assert a0.last_tlb_flush == (XS, addrs[-1] + 256 * P)
    assert ranges(a0.free_areas()) == [(1, ULONG_MAX)]


def test_purge_coalesces_with_next_prev_and_both(a0):
    anchor = a0.vmalloc(P)  # keeps [1, XS) from joining in
    a, b, c, d = (a0.vmalloc(P) for _ in range(4))
    a0.vfree(b)
    a0.purge_vmap_area_lazy()
    assert (b, b + 2 * P) in ranges(a0.free_areas())  # no neighbour free
    a0.vfree(a)
    a0.purge_vmap_area_lazy()
    assert (a, a + 4 * P) in ranges(a0.free_areas())  # merged with next
    a0.vfree(c)
    a0.purge_vmap_area_lazy()
    assert (a, a + 6 * P) in ranges(a0.free_areas())  # merged with prev
    a0.vfree(d)
    a0.purge_vmap_area_lazy()
    assert ranges(a0.free_areas()) == [(1, anchor), (a, ULONG_MAX)]  # both sides


def test_failure_path_purges_once_then_succeeds(a0):
    w0, w1 = XS, XS + 4 * P
    va = a0.alloc_vmap_area(4 * P, P, w0, w1)
    a0.free_vmap_area_noflush(va)  # lazy: not reusable yet
    again = a0.alloc_vmap_area(4 * P, P, w0, w1)
    assert again.va_start == w0
    assert a0.metrics["purges"] == 1 and a0.metrics["alloc_retries"] == 1
    assert a0.log == []


def test_failure_path_notifier_can_free_and_retry(a0):
    a0.alloc_vmap_area(4 * P, P, XS, XS + 4 * P)
    calls = []

    def notifier(alloc):
        calls.append(1)
        return 0

    a0.register_vmap_purge_notifier(notifier)
    with pytest.raises(VmapError):
        a0.alloc_vmap_area(P, P, XS, XS + 4 * P)
    assert calls == [1]


def test_nonblocking_failure_does_not_purge_or_warn(a0):
    a0.alloc_vmap_area(4 * P, P, XS, XS + 4 * P)
    with pytest.raises(VmapError) as ei:
        a0.alloc_vmap_area(P, P, XS, XS + 4 * P, gfp=GFP_NOWAIT)
    assert ei.value.errno == errno.EBUSY
    assert a0.metrics["purges"] == 0 and a0.log == []


def test_nowarn_suppresses_the_warning(a0):
    a0.alloc_vmap_area(4 * P, P, XS, XS + 4 * P)
    with pytest.raises(VmapError):
        a0.alloc_vmap_area(P, P, XS, XS + 4 * P, gfp=GFP_KERNEL | Gfp.NOWARN)
    assert a0.metrics["purges"] == 1 and a0.log == []


def test_vmalloc_failure_returns_null_and_warns():
    a = vmapsim.build(0)
    huge = XE - XS + P
    assert a.vmalloc(huge) is None
    asked = (huge + P - 1) // P * P + P  # rounded up, plus the guard page
    assert a.log[0].startswith(f"vmalloc_node_range for size {asked} failed")
    assert "vm_struct allocation failed" in a.log[1]


@pytest.mark.parametrize("size", [ULONG_MAX, ULONG_MAX - P + 1])
def test_sizes_that_wrap_an_unsigned_long_fail_without_a_purge(size):
    # __get_vm_area_node(): ALIGN(size) (or the guard page on top of it) wraps
    # to 0, so it returns NULL before alloc_vmap_area() can purge anything.
    a = vmapsim.build(0, nr_cpus=1)
    a.vfree(a.vmalloc(P))  # one lazy area that a purge would take
    assert a.vmalloc(size) is None
    assert a.metrics["purges"] == 0
    assert len(list(a.lazy_areas())) == 1
    assert len(a.log) == 1 and "vm_struct allocation failed" in a.log[0]


def test_va_alloc_align_wrapping_to_zero_warns_like_the_kernel():
    # vstart 0 lets an ALIGN() that wrapped to 0 through is_within_this_va();
    # va_alloc() then gives va_clip() address 0, which fits nothing: the
    # WARN_ON_ONCE, then the failure path (EBUSY).
    a = vmapsim.build(0, nr_cpus=1)
    a.alloc_vmap_area(1 << 63, P, 0x1000, 0x1000 + (1 << 63))
    with pytest.raises(vmapsim.VmapError) as e:
        a.alloc_vmap_area(P, 1 << 63, 0, ULONG_MAX)
    assert e.value.errno == errno.EBUSY
    assert any("va_alloc: va_clip() returned -22" in line for line in a.log)


def test_vfree_null_is_a_noop_and_vmalloc_zero_warns(a0):
    before = snapshot(a0)
    a0.vfree(None)
    a0.vfree(0)
    assert a0.vmalloc(0) is None
    assert snapshot(a0) == before
    assert len(a0.log) == 1 and "zero-size" in a0.log[0]


def test_lock_acquisitions_are_counted_by_name(a0):
    addr = a0.vmalloc(P)
    a0.vfree(addr)
    m = a0.metrics
    assert m["lock.free_vmap_area_lock"] == 1
    assert m["lock.vmap_node.busy.lock"] == 2  # insert, find_unlink
    assert m["lock.vmap_node.lazy.lock"] == 1
    a0.purge_vmap_area_lazy()
    assert m["lock.vmap_purge_lock"] == 1


def test_struct_vmap_area_is_72_bytes_at_stage_0(a0):
    assert a0.struct_vmap_area_size == 72
    assert "rb_node" in a0.stage.layout.pahole()


def test_same_seed_same_trace_and_counters():
    from vmapsim.framework.workloads import mixed

    runs = []
    for _ in range(2):
        a = vmapsim.build(0, nr_cpus=4, seed=3)
        trace = []
        orig = a.vmalloc

        def rec(size, *, cpu=0, _orig=orig, _trace=trace):
            addr = _orig(size, cpu=cpu)
            _trace.append(addr)
            return addr

        a.vmalloc = rec
        mixed(a, seed=3, nr_ops=3000)
        runs.append((trace, a.metrics.snapshot()))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 1000


# -- the checker can fail -------------------------------------------------------------


def test_check_invariants_detects_a_lost_range(a0):
    addr = a0.vmalloc(P)
    a0.vmap_nodes[0].busy.find_unlink(addr)  # corrupt: drop a busy area
    with pytest.raises(vmapsim.InvariantError, match="lost"):
        a0.check_invariants()


def test_check_invariants_detects_lazy_count_drift(a0):
    a0.vfree(a0.vmalloc(P))
    a0.vmap_lazy_nr += 1
    with pytest.raises(vmapsim.InvariantError, match="vmap_lazy_nr"):
        a0.check_invariants()


def test_check_invariants_detects_uncoalesced_free_space(a0):
    first = next(iter(a0.free_areas()))
    first.va_end -= P  # split the single free block into two touching ones
    extra = vmapsim.VmapArea(first.va_end, first.va_end + P)
    a0.free.propagate(first)
    a0.free.insert(extra)
    with pytest.raises(vmapsim.InvariantError):
        a0.check_invariants()
