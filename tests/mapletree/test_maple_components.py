"""The maple-tree busy/lazy components give the stage-0 flow the same results as rb."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim.framework.workloads import mixed

P = vmapsim.PAGE_SIZE


def _trace(components, nr_cpus, seed):
    a = vmapsim.build(0, nr_cpus=nr_cpus, seed=seed, components=components)
    addrs = []
    real = a.vmalloc

    def rec(size, *, cpu=0):
        addr = real(size, cpu=cpu)
        addrs.append(addr)
        return addr

    a.vmalloc = rec
    report = mixed(a, seed=seed, nr_ops=3000, max_live=400)
    a.check_invariants()
    state = (
        [(v.va_start, v.va_end) for v in a.free_areas()],
        [(v.va_start, v.va_end) for v in a.busy_areas()],
        [(v.va_start, v.va_end) for v in a.lazy_areas()],
    )
    return addrs, report.ops, state, a.log, a.metrics


@pytest.mark.parametrize("nr_cpus", [1, 4])
def test_maple_busy_and_lazy_match_rb(nr_cpus):
    rb = _trace({}, nr_cpus, 11)
    mt = _trace({"busy": "maple", "lazy": "maple"}, nr_cpus, 11)
    assert rb[:4] == mt[:4]
    assert rb[4]["rotations"] > mt[4]["rotations"]  # only the free tree rotates now
    assert mt[4]["node_allocs"] > 0 and rb[4]["node_allocs"] == 0


def test_maple_busy_index_in_debug_mode_and_overlap_warning():
    a = vmapsim.build(0, components={"busy": "maple", "lazy": "maple"}, debug=True)
    addrs = [a.vmalloc(k * P) for k in (1, 5, 2, 9)]
    assert a.find_vmap_area(addrs[1] + 3 * P).va_start == addrs[1]
    for addr in addrs[::2]:
        a.vfree(addr)
    a.vfree(addrs[0])  # double free: warning, nothing changes
    assert "nonexistent vm area" in a.log[-1]
    busy = a.vmap_nodes[0].busy
    area = a.find_vmap_area(addrs[1])
    clash = vmapsim.VmapArea(area.va_start + P, area.va_end + P)
    assert busy.insert(clash) is False
    assert a.log[-1].startswith(f"vmalloc bug: {clash.va_start:#x}-{clash.va_end:#x} overlaps")
    a.purge_vmap_area_lazy()
    a.check_invariants()
    assert len(list(a.busy_areas())) == 2
