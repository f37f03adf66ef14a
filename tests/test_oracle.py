"""Unit tests of the reference allocator against hand-computed kernel expectations.

Every expected value below is worked out from mm/vmalloc.c's semantics
(reference/kernel-vmalloc.md §2-§4), not captured from a run.
"""

from __future__ import annotations

import errno
import itertools

import pytest

import vmapsim.kernel.constants
import vmapsim.kernel.gfp
from vmapsim.checking import oracle_constants as oc
from vmapsim.checking.oracle import OracleMismatch, ReferenceAllocator
from vmapsim.checking.oracle_constants import (
    __GFP_NOFAIL,
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOWAIT,
    PAGE_SIZE,
)
from vmapsim.errors import VmapError

P = PAGE_SIZE
VMALLOC_START, VMALLOC_END = oc.VMALLOC_WINDOWS["x86_64"]
VS = VMALLOC_START
ULONG_MAX = (1 << 64) - 1
#: A well-aligned spot far above anything vmalloc() touches in these tests.
X = VS + (1 << 30)


def touching(blocks: list[tuple[int, int]]) -> bool:
    return any(a[1] >= b[0] for a, b in itertools.pairwise(blocks))


def test_initial_state() -> None:
    o = ReferenceAllocator()
    assert o.free_areas() == [(1, ULONG_MAX)]
    assert o.busy_areas() == o.lazy_areas() == o.pooled_areas() == []
    assert o.vmap_lazy_nr == 0


@pytest.mark.parametrize(
    ("nr_cpus", "nodes", "zone", "lazy_max"),
    [
        (1, 1, 1, 8192),
        (2, 2, 16 * P, 16384),
        (3, 3, 16 * P, 16384),
        (4, 4, 16 * P, 24576),
        (8, 8, 16 * P, 32768),
        (200, 128, 16 * P, 65536),
    ],
)
def test_nodes_zones_and_lazy_max(nr_cpus: int, nodes: int, zone: int, lazy_max: int) -> None:
    o = ReferenceAllocator(nr_cpus=nr_cpus)
    assert o.nr_vmap_nodes == nodes
    assert o.vmap_zone_size == zone
    assert o.lazy_max_pages() == lazy_max
    assert o.addr_to_node(VS + 17 * P) == (0 if nodes == 1 else (VS // (16 * P) + 1) % nodes)


def test_vn_id_encoding() -> None:
    o = ReferenceAllocator(nr_cpus=4)
    assert [o.encode_vn_id(i) for i in range(4)] == [0x100, 0x200, 0x300, 0x400]
    assert [o.decode_vn_id(o.encode_vn_id(i)) for i in range(4)] == [0, 1, 2, 3]
    assert o.decode_vn_id(0) == 4  # "no node" decodes to nr_vmap_nodes (invalid)
    assert o.decode_vn_id(0x500) == 4


def test_first_vmalloc_lands_at_vmalloc_start() -> None:
    o = ReferenceAllocator()
    assert o.vmalloc(1) == VS
    assert o.busy_areas() == [(VS, VS + 2 * P)]
    assert o.free_areas() == [(1, VS), (VS + 2 * P, ULONG_MAX)]


def test_arm64_vmalloc_start() -> None:
    o = ReferenceAllocator(arch="arm64")
    assert o.vmalloc(P) == 0xFFFF800080000000  # MODULES_END: PAGE_END + SZ_2G


# -- the oracle's constants and the model's ----------------------------------------


def test_oracle_constants_are_the_kernel_values() -> None:
    # spot values from the headers, worked out by hand
    assert oc.GFP_KERNEL == 0xCC0 and oc.GFP_ATOMIC == 0x820 and oc.GFP_NOWAIT == 0x2800
    assert oc.VMALLOC_WINDOWS == {
        "x86_64": (0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF),
        "arm64": (0xFFFF800080000000, 0xFFFFFDFFBF800000),
    }


def test_model_constants_equal_the_oracles() -> None:
    """The model's vmapsim.kernel.gfp and vmapsim.kernel.constants agree with oracle_constants,
    which were written from the kernel headers separately."""
    model_bits = {flag.name: int(flag) for flag in vmapsim.kernel.gfp.Gfp}
    assert model_bits == oc.GFP_BITS
    for name in (
        "GFP_ATOMIC",
        "GFP_KERNEL",
        "GFP_KERNEL_ACCOUNT",
        "GFP_NOFS",
        "GFP_NOIO",
        "GFP_NOWAIT",
        "GFP_RECLAIM_MASK",
    ):
        assert int(getattr(vmapsim.kernel.gfp, name)) == getattr(oc, name), name
    assert int(vmapsim.kernel.gfp.__GFP_NOWARN) == oc.__GFP_NOWARN
    assert int(vmapsim.kernel.gfp.__GFP_NOFAIL) == oc.__GFP_NOFAIL
    windows = {
        name: (arch.vmalloc_start, arch.vmalloc_end)
        for name, arch in vmapsim.kernel.constants.ARCHES.items()
    }
    assert windows == oc.VMALLOC_WINDOWS
    assert {a.page_size for a in vmapsim.kernel.constants.ARCHES.values()} == {oc.PAGE_SIZE}
    assert vmapsim.kernel.constants.PAGE_SHIFT == oc.PAGE_SHIFT
    assert vmapsim.kernel.constants.MAX_VA_SIZE_PAGES == oc.MAX_VA_SIZE_PAGES


@pytest.mark.parametrize(
    ("nbytes", "pages"), [(1, 2), (P - 1, 2), (P, 2), (P + 1, 3), (5 * P, 6), (100 * P + 7, 102)]
)
def test_vmalloc_size_has_guard_page(nbytes: int, pages: int) -> None:
    o = ReferenceAllocator()
    a = o.vmalloc(nbytes)
    assert o.busy_areas() == [(a, a + pages * P)]
    assert o.vmalloc(P) == a + pages * P


def test_lazy_areas_not_reused_before_purge() -> None:
    o = ReferenceAllocator()
    a = o.vmalloc(P)
    o.vfree(a)
    assert o.lazy_areas() == [(VS, VS + 2 * P)]
    assert o.vmap_lazy_nr == 2
    assert o.busy_areas() == []
    b = o.vmalloc(P)
    assert b == VS + 2 * P  # the lazy range is neither busy nor free
    o.purge_vmap_area_lazy()
    assert o.lazy_areas() == []
    assert o.vmap_lazy_nr == 0
    assert o.vmalloc(P) == VS


def test_coalescing_on_purge() -> None:
    o = ReferenceAllocator()
    a, b, c = (o.vmalloc(P) for _ in range(3))
    assert (a, b, c) == (VS, VS + 2 * P, VS + 4 * P)
    o.vfree(a)
    o.vfree(c)
    o.purge_vmap_area_lazy()
    # a merges with [1, VS); c merges with the space above it; b splits them
    assert o.free_areas() == [(1, VS + 2 * P), (VS + 4 * P, ULONG_MAX)]
    o.vfree(b)
    o.purge_vmap_area_lazy()
    assert o.free_areas() == [(1, ULONG_MAX)]
    assert not touching(o.free_areas())


def test_coalescing_merges_both_sides_in_any_order() -> None:
    o = ReferenceAllocator()
    addrs = [o.vmalloc(3 * P) for _ in range(6)]
    for i in (4, 0, 2, 5, 1, 3):
        o.vfree(addrs[i])
        o.purge_vmap_area_lazy()
        assert not touching(o.free_areas())
    assert o.free_areas() == [(1, ULONG_MAX)]


def test_threshold_drain_at_lazy_max_pages() -> None:
    o = ReferenceAllocator(nr_cpus=1)  # lazy_max_pages() == 8192
    big = [o.vmalloc(4095 * P) for _ in range(2)]  # 4096 pages each, guard included
    small = o.vmalloc(P)  # 2 pages
    o.vfree(big[0])
    o.vfree(big[1])
    assert o.vmap_lazy_nr == 8192  # not above the threshold: no drain
    assert len(o.lazy_areas()) == 2
    o.vfree(small)  # 8194 > 8192: drain_vmap_area_work runs
    assert o.vmap_lazy_nr == 0
    assert o.lazy_areas() == []
    assert o.free_areas() == [(1, ULONG_MAX)]  # one node, no pools: all back to free


def test_drain_populates_pools_and_purge_decays_them() -> None:
    o = ReferenceAllocator(nr_cpus=2)  # 2 nodes, lazy_max_pages() == 16384
    a = [o.vmalloc(P, cpu=0) for _ in range(4)]  # 2 pages each, pool[1] size
    assert a == [VS + 2 * i * P for i in range(4)]
    big = o.vmalloc(16382 * P, cpu=0)  # 16383 pages: too big for a pool
    assert big == VS + 8 * P
    for addr in a:
        o.vfree(addr)
    o.vfree(big)  # 8 + 16383 > 16384: non-full drain
    assert o.vmap_lazy_nr == 0
    # lazy areas are pushed at the head of node 0's pool[1] in address order
    assert o.pools() == {(0, 1): [(x, x + 2 * P) for x in reversed(a)]}
    assert o.free_areas() == [(1, VS), (VS + 8 * P, ULONG_MAX)]

    big2 = o.vmalloc(16382 * P, cpu=0)
    c = o.vmalloc(P, cpu=1)  # node 1's pool is empty: placement
    assert (big2, c) == (VS + 8 * P, VS + (8 + 16383) * P)
    o.vfree(big2)
    assert o.vmap_lazy_nr == 16383
    o.vfree(c)  # 16385 > 16384: drain; decays 4 >> 2 == 1 head entry of pool[1]
    assert o.pools() == {
        (0, 1): [(x, x + 2 * P) for x in reversed(a[:3])],
        (1, 1): [(c, c + 2 * P)],  # c was allocated on cpu 1: node 1's pool
    }
    # a[3] went back and merged with big2's range, which is above it
    assert o.free_areas() == [(1, VS), (VS + 6 * P, c), (c + 2 * P, ULONG_MAX)]

    o.purge_vmap_area_lazy()  # full decay: every pool empties
    assert o.pooled_areas() == []
    assert o.free_areas() == [(1, ULONG_MAX)]


def _pool_two_areas(o: ReferenceAllocator) -> tuple[int, int]:
    """Pool [a2, a1] on node 0, pool[1]: a1 at VS (aligned), a2 at VS + 5P (not 2P-aligned)."""
    a1 = o.vmalloc(P, cpu=0)
    o.vmalloc(2 * P, cpu=0)  # 3 pages, stays busy and shifts the alignment
    a2 = o.vmalloc(P, cpu=0)
    big = o.vmalloc(16382 * P, cpu=0)
    assert (a1, a2, big) == (VS, VS + 5 * P, VS + 7 * P)
    o.vfree(a1)
    o.vfree(a2)
    o.vfree(big)  # drain
    assert o.pools() == {(0, 1): [(a2, a2 + 2 * P), (a1, a1 + 2 * P)]}
    return a1, a2


def test_pool_hit_takes_the_head() -> None:
    o = ReferenceAllocator(nr_cpus=2)
    a1, a2 = _pool_two_areas(o)
    assert o.vmalloc(P, cpu=1) == VS + 7 * P  # node 1: no pool entries
    assert o.vmalloc(P, cpu=2) == a2  # cpu 2 % 2 == node 0: head hit
    assert o.vmalloc(P, cpu=0) == a1
    assert o.pooled_areas() == []
    area = o.find_vmap_area(a1)
    assert area is not None
    assert area.flags == o.encode_vn_id(0)


def test_pool_misaligned_head_rotates_to_tail() -> None:
    o = ReferenceAllocator(nr_cpus=2)
    a1, a2 = _pool_two_areas(o)
    # head a2 is not aligned to 2 pages: move it to the tail, miss, place globally
    addr = o.vmalloc_node(P, 2 * P, cpu=0)
    assert addr == VS + 8 * P  # ALIGN(VS + 7P, 2P): the lowest fit
    assert o.pools() == {(0, 1): [(a1, a1 + 2 * P), (a2, a2 + 2 * P)]}
    miss = o.find_vmap_area(addr)
    assert miss is not None
    assert miss.flags == o.encode_vn_id(0)  # vn_id is kept even on a miss
    assert o.vmalloc_node(P, 2 * P, cpu=0) == a1  # the new head is aligned: hit
    assert o.pools() == {(0, 1): [(a2, a2 + 2 * P)]}


def test_pools_only_for_the_vmalloc_window_and_several_nodes() -> None:
    o = ReferenceAllocator(nr_cpus=2)
    _pool_two_areas(o)
    area = o.alloc_vmap_area(2 * P, 1, VS, VMALLOC_END - P, cpu=0)
    assert area.va_start == VS + 7 * P  # other window: no pool, no vn_id
    assert area.flags == 0
    one = ReferenceAllocator(nr_cpus=1)
    assert one.alloc_vmap_area(2 * P, 1, VS, VMALLOC_END).flags == 0


def test_lazy_queue_node_follows_vn_id_else_address() -> None:
    o = ReferenceAllocator(nr_cpus=2)
    a = o.vmalloc(P, cpu=1)
    assert o.addr_to_node(a) == 0
    assert o.busy_node(a) == 0  # busy: node of va_start
    o.vfree(a)
    assert o.lazy_node(a) == 1  # lazy: node of vn_id (allocating cpu)
    b = o.alloc_vmap_area(P, 1, X + 16 * P, ULONG_MAX, cpu=0)
    o.free_vmap_area_noflush(b)
    assert o.lazy_node(b.va_start) == o.addr_to_node(X + 16 * P) == 1


def _hole(o: ReferenceAllocator) -> None:
    """Busy [X, X + 8P) and [X + 12P, X + 16P); a free hole [X + 8P, X + 12P)."""
    a = o.alloc_vmap_area(8 * P, P, X, VMALLOC_END)
    b = o.alloc_vmap_area(4 * P, P, X, VMALLOC_END)
    c = o.alloc_vmap_area(4 * P, P, X, VMALLOC_END)
    assert (a.va_start, b.va_start, c.va_start) == (X, X + 8 * P, X + 12 * P)
    o.free_vmap_area_noflush(b)
    o.purge_vmap_area_lazy()
    assert (X + 8 * P, X + 12 * P) in o.free_areas()


def test_exact_fit_window_is_exact() -> None:
    o = ReferenceAllocator()
    _hole(o)
    # exact-fit window: adjust_search_size is off, the chooser is never asked
    area = o.alloc_vmap_area(
        4 * P, 8 * P, X + 8 * P, X + 12 * P, choose=lambda b, v: pytest.fail("asked")
    )
    assert area.va_start == X + 8 * P


def test_adjusted_search_bounds() -> None:
    o = ReferenceAllocator()
    _hole(o)
    hole = (X + 8 * P, X + 12 * P)
    above = (X + 16 * P, ULONG_MAX)
    bounds = o.placement_bounds(4 * P, 8 * P, X + 8 * P)
    assert bounds.lowest_fit == hole  # fits once aligned ...
    assert bounds.limit == above  # ... but is smaller than size + align - 1
    assert bounds.allows_block(hole)
    assert bounds.allows_block(above)
    # one page wider than exact: the search may skip the hole, and then fail
    assert bounds.may_fail(X + 13 * P)
    assert not bounds.may_fail(X + 20 * P)  # the limit block fits below vend
    # the oracle follows the model's choice, within the bounds
    area = o.alloc_vmap_area(4 * P, 8 * P, X + 8 * P, X + 20 * P, choose=lambda b, v: X + 16 * P)
    assert area.va_start == X + 16 * P
    with pytest.raises(OracleMismatch):
        o.alloc_vmap_area(4 * P, 8 * P, X + 8 * P, X + 40 * P, choose=lambda b, v: None)
    with pytest.raises(OracleMismatch):  # not the aligned start of a block
        o.alloc_vmap_area(4 * P, 8 * P, X, VMALLOC_END, choose=lambda b, v: X + 9 * P)


def test_adjusted_search_never_passes_the_limit() -> None:
    o = ReferenceAllocator()
    _hole(o)
    o.alloc_vmap_area(P, P, X + 16 * P, VMALLOC_END)  # [X+16P, X+17P) busy
    o.alloc_vmap_area(P, P, X + 20 * P, VMALLOC_END)  # [X+20P, X+21P) busy
    bounds = o.placement_bounds(2 * P, 4 * P, X + 8 * P)
    assert bounds.limit == (X + 21 * P, ULONG_MAX)  # the hole (4 pages) is < 5 pages
    assert bounds.lowest_fit == (X + 8 * P, X + 12 * P)
    assert bounds.allows_block(bounds.lowest_fit)
    assert bounds.allows_block(bounds.limit)
    # 3 pages, but ALIGN(X + 17P, 4P) + 2P crosses its end: no fit
    assert not bounds.allows_block((X + 17 * P, X + 20 * P))
    assert not bounds.allows_block((X + 40 * P, X + 50 * P))  # above the limit


def test_erange_when_lowest_fit_is_above_vend() -> None:
    o = ReferenceAllocator()
    _hole(o)
    before = o.free_areas()
    # lowest fit at/above vstart is the hole, whose aligned range crosses vend
    assert o.try_alloc_range(4 * P, P, X + 8 * P, X + 11 * P) == -errno.ERANGE
    # the lowest fit lies wholly above vend
    assert o.try_alloc_range(P, P, X, X + 8 * P) == -errno.ERANGE
    # nothing fits at all: no block above vstart can hold it
    assert o.try_alloc_range(2 * P, P, ULONG_MAX - P, ULONG_MAX) == -errno.ENOENT
    assert o.free_areas() == before


def test_failure_purges_once_then_warns() -> None:
    o = ReferenceAllocator()
    _hole(o)
    lazy = o.vmalloc(P)
    o.vfree(lazy)
    with pytest.raises(VmapError) as exc:
        o.alloc_vmap_area(P, P, X, X + 8 * P)
    assert exc.value.errno == errno.EBUSY
    assert o.lazy_areas() == []  # reclaim_and_purge_vmap_areas() ran
    assert o.log == [
        "vmalloc_node_range for size 4096 failed: Address range restricted to "
        f"{X:#x} - {X + 8 * P:#x}"
    ]


def test_failure_retry_succeeds_after_purge() -> None:
    o = ReferenceAllocator()
    _hole(o)
    o.alloc_vmap_area(4 * P, P, X + 8 * P, X + 12 * P)
    b = o.find_vmap_area(X + 8 * P)
    assert b is not None
    o.free_vmap_area_noflush(b)  # lazy: the only room in the window
    area = o.alloc_vmap_area(4 * P, P, X + 8 * P, X + 12 * P)
    assert area.va_start == X + 8 * P
    assert o.lazy_areas() == []
    assert o.log == []


def test_nonblocking_failure_does_not_purge() -> None:
    o = ReferenceAllocator()
    _hole(o)
    a = o.vmalloc(P)
    o.vfree(a)
    for gfp in (GFP_NOWAIT, GFP_ATOMIC):
        with pytest.raises(VmapError) as exc:
            o.alloc_vmap_area(P, P, X, X + 8 * P, gfp=gfp)
        assert exc.value.errno == errno.EBUSY
    assert o.lazy_areas() == [(a, a + 2 * P)]
    assert o.log == []
    with pytest.raises(VmapError):
        o.alloc_vmap_area(P, P, X, X + 8 * P, gfp=GFP_KERNEL | __GFP_NOWARN)
    assert o.lazy_areas() == []  # blocking: purged
    assert o.log == []  # but __GFP_NOWARN


def test_warning_prints_zero_as_c_does() -> None:
    o = ReferenceAllocator()
    o.alloc_vmap_area(P, P, 1, ULONG_MAX)  # takes [1, P + 1)
    with pytest.raises(VmapError):
        o.alloc_vmap_area(P, P, 0, P)
    assert o.log == [
        "vmalloc_node_range for size 4096 failed: Address range restricted to 0 - 0x1000"
    ]


def test_alloc_vmap_area_argument_errors() -> None:
    o = ReferenceAllocator()
    for size, align in ((0, 1), (P + 1, 1), (P, 3), (P, 0)):
        with pytest.raises(VmapError) as exc:
            o.alloc_vmap_area(size, align, VS, VMALLOC_END)
        assert exc.value.errno == errno.EINVAL
    assert o.busy_areas() == []


def test_vmalloc_node_failure_lines() -> None:
    """warn_alloc(): silent under __GFP_NOWARN (GFP_NOWAIT has it), '. Retrying.'
    under __GFP_NOFAIL; a bad align fails the same way (alloc_vmap_area's -EINVAL)."""
    o = ReferenceAllocator()
    too_big = VMALLOC_END - VS + P
    assert o.vmalloc_node(too_big, 1, gfp=GFP_NOWAIT) is None
    assert o.log == []
    assert o.vmalloc_node(too_big, 1, gfp=GFP_ATOMIC) is None
    assert o.log == [f"vmalloc error: size {too_big}, vm_struct allocation failed"]
    o.log.clear()
    assert o.vmalloc_node(P, 3 * P, gfp=GFP_KERNEL | __GFP_NOFAIL) is None
    assert o.log == [f"vmalloc error: size {P}, vm_struct allocation failed. Retrying."]
    o.log.clear()
    assert o.vmalloc_node(P, 0, gfp=GFP_KERNEL | __GFP_NOWARN) is None
    assert o.log == [] and o.busy_areas() == []


def test_find_vmap_area() -> None:
    o = ReferenceAllocator(nr_cpus=4)
    a = o.vmalloc(40 * P)  # 41 pages: spans several 16-page zones
    b = o.vmalloc(P)
    for addr in (a, a + 1, a + 20 * P, a + 41 * P - 1):
        found = o.find_vmap_area(addr)
        assert found is not None
        assert found.as_tuple() == (a, a + 41 * P)
    assert o.find_vmap_area(a - 1) is None
    assert o.find_vmap_area(b + 2 * P) is None
    o.vfree(b)
    assert o.find_vmap_area(b) is None  # lazy areas are not busy


def test_vfree_junk_warns_and_changes_nothing() -> None:
    o = ReferenceAllocator()
    a = o.vmalloc(4 * P)
    gone = o.vmalloc(P)
    o.vfree(gone)
    state = (o.free_areas(), o.busy_areas(), o.lazy_areas(), o.vmap_lazy_nr)
    o.vfree(None)
    o.vfree(0)
    assert o.log == []
    o.vfree(a + 5)
    assert o.log == [
        f"Trying to vfree() bad address ({a + 5:#x})",
        f"Trying to vfree() nonexistent vm area ({a + 5:#x})",
    ]
    o.log.clear()
    o.vfree(gone)  # second vfree
    o.vfree(X)  # never allocated
    assert o.log == [
        f"Trying to vfree() nonexistent vm area ({gone:#x})",
        f"Trying to vfree() nonexistent vm area ({X:#x})",
    ]
    o.log.clear()
    o.vfree(a + 2 * P)  # inside a busy area, not its start
    assert len(o.log) == 1
    assert (o.free_areas(), o.busy_areas(), o.lazy_areas(), o.vmap_lazy_nr) == state


def test_vmalloc_zero_warns() -> None:
    o = ReferenceAllocator()
    assert o.vmalloc(0) is None
    assert len(o.log) == 1
    assert o.vmalloc(0) is None
    assert len(o.log) == 1  # WARN_ON_ONCE
    assert o.busy_areas() == []


def test_vmalloc_node_alignment() -> None:
    o = ReferenceAllocator()
    o.vmalloc(P)  # [VS, VS + 2P)
    addr = o.vmalloc_node(P, 64 * P)
    assert addr == VS + 64 * P
    assert o.busy_areas() == [(VS, VS + 2 * P), (VS + 64 * P, VS + 66 * P)]


def test_shrink_constants_are_the_kernels() -> None:
    import vmapsim
    from vmapsim.checking.oracle import SHRINK_EMPTY, ULONG_MAX

    assert SHRINK_EMPTY == ULONG_MAX - 1  # the oracle's, from the header
    assert vmapsim.SHRINK_STOP == ULONG_MAX
    assert vmapsim.SHRINK_EMPTY == SHRINK_EMPTY
