"""The index-agnostic coalescer gives the kernel's results (same as list-neighbour)."""

from __future__ import annotations

import vmapsim
from vmapsim.framework.workloads import mixed


def _state(a):
    return (
        [(v.va_start, v.va_end) for v in a.free_areas()],
        [(v.va_start, v.va_end) for v in a.busy_areas()],
        [(v.va_start, v.va_end) for v in a.pooled_areas()],
    )


def test_generic_coalescer_matches_list_neighbour_on_a_workload():
    results = []
    for coalesce in ("list-neighbour", "generic"):
        a = vmapsim.build(0, nr_cpus=2, seed=5, components={"coalesce": coalesce})
        report = mixed(a, seed=5, nr_ops=4000, max_live=300)
        a.check_invariants()
        results.append((report.ops, _state(a), a.metrics["purges"], a.log))
    assert results[0] == results[1]
    assert results[0][2] > 0  # purges happened, so coalescing was exercised


def test_generic_coalescer_merges_both_sides_and_refuses_overlap():
    a = vmapsim.build(0, components={"coalesce": "generic"}, debug=True)
    anchor = a.vmalloc(1)
    x, y, z = (a.vmalloc(1) for _ in range(3))
    for addr in (x, z, y):
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    assert [(v.va_start, v.va_end) for v in a.free_areas()] == [
        (1, anchor),
        (x, vmapsim.ULONG_MAX),
    ]
    # releasing a range that overlaps a free block is refused with the kernel's words
    bogus = vmapsim.VmapArea(x, x + 4096)
    assert a.coalesce.merge_or_add(bogus) is None
    assert a.log[-1].startswith(f"vmalloc bug: {x:#x}-{x + 4096:#x} overlaps with")
    a.check_invariants()


def test_generic_coalescer_refuses_a_range_holding_a_whole_free_block():
    # find_va_links() meets a free block lying wholly inside the released
    # range on its way down, warns and refuses; neither side's neighbour
    # lookup sees it, so the coalescer must look between them.
    for coalesce in ("list-neighbour", "generic"):
        a = vmapsim.build(0, nr_cpus=1, components={"coalesce": coalesce})
        xs = [a.vmalloc(vmapsim.PAGE_SIZE) for _ in range(4)]
        a.vfree(xs[1])
        a.purge_vmap_area_lazy()  # a free hole [xs1, xs1 + 2 pages) between busy areas
        before = [(v.va_start, v.va_end) for v in a.free_areas()]
        end = xs[2] + 2 * vmapsim.PAGE_SIZE
        assert a.coalesce.merge_or_add(vmapsim.VmapArea(xs[0], end)) is None, coalesce
        assert a.log[-1].startswith(f"vmalloc bug: {xs[0]:#x}-{end:#x} overlaps with"), coalesce
        assert [(v.va_start, v.va_end) for v in a.free_areas()] == before
        a.check_invariants()
