"""kvfree_rcu() on the modeled RCU clock: an area is not reusable before its
grace period ends; synchronize_rcu() / rcu_barrier(); determinism; bad input."""

from __future__ import annotations

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import RCU_GP_TICKS, InvariantError, VmapArgumentError
from vmapsim.checking.oracle import ReferenceAllocator


def test_the_area_stays_busy_until_its_grace_period_ends():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    a.kvfree_rcu(p)
    queued = a.rcu_clock
    assert a.rcu_pending_areas() == [p]
    # every vmalloc-layer call is one tick; the area is busy for RCU_GP_TICKS ticks
    others = []
    while a.rcu_clock < queued + RCU_GP_TICKS - 1:
        others.append(a.vmalloc(P))
        assert a.find_vmap_area(p) is not None
        assert p not in others  # not reusable while the grace period lasts
    assert a.vmap_lazy_nr == 0
    a.vfree(others.pop())  # the tick that ends the grace period
    assert a.rcu_clock == queued + RCU_GP_TICKS
    assert a.rcu_pending_areas() == []
    assert a.find_vmap_area(p) is None
    assert (p, p + 2 * P) in [(v.va_start, v.va_end) for v in a.lazy_areas()]


def test_synchronize_rcu_waits_one_grace_period():
    a = vmapsim.build(0, debug=True)
    ps = [a.vmalloc(P) for _ in range(3)]
    for p in ps:
        a.kvfree_rcu(p)
    clock = a.rcu_clock
    a.synchronize_rcu()
    assert a.rcu_clock == clock + RCU_GP_TICKS
    assert a.rcu_pending_areas() == []
    assert a.vmap_lazy_nr == 3 * 2


def test_rcu_barrier_runs_every_callback():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    a.kvfree_rcu(p)
    a.rcu_barrier()
    assert a.rcu_pending_areas() == [] and a.find_vmap_area(p) is None
    clock = a.rcu_clock
    a.rcu_barrier()  # nothing pending: the clock does not move
    assert a.rcu_clock == clock


def test_low_level_calls_do_not_tick():
    a = vmapsim.build(0, debug=True)
    va = a.alloc_vmap_area(P, P, a.vmalloc_start, a.vmalloc_end)
    a.free_vmap_area_noflush(va)
    a.purge_vmap_area_lazy()
    a.vm_unmap_aliases()
    a.vfree(None)
    assert a.rcu_clock == 0
    a.vfree(a.vmalloc(P))
    assert a.rcu_clock == 2


def test_deterministic():
    def run():
        a = vmapsim.build(0, nr_cpus=2, debug=True)
        out = []
        for i in range(300):
            p = a.vmalloc((i % 5 + 1) * P, cpu=i % 2)
            out.append(p)
            if i % 2:
                a.kvfree_rcu(p)
            else:
                a.vfree(p)
        return out, a.log, [(v.va_start, v.va_end) for v in a.lazy_areas()]

    assert run() == run()


def test_lockstep_with_the_oracle():
    a = vmapsim.build(0, debug=True)
    o = ReferenceAllocator()
    for i in range(500):
        p = a.vmalloc(P)
        assert o.vmalloc(P) == p
        a.kvfree_rcu(p)
        o.kvfree_rcu(p)
        if i % 97 == 0:
            a.synchronize_rcu()
            o.synchronize_rcu()
        assert a.rcu_pending_areas() == o.rcu_pending_areas()
    assert sorted((v.va_start, v.va_end) for v in a.busy_areas()) == o.busy_areas()
    assert sorted((v.va_start, v.va_end) for v in a.lazy_areas()) == o.lazy_areas()


def test_vfree_of_a_queued_area_is_refused():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    a.kvfree_rcu(p)
    before, log = snapshot(a), len(a.log)
    a.vfree(p)
    a.kvfree_rcu(p)
    assert a.vrealloc(p, 2 * P) is None
    assert len(a.log) == log + 3 and all("double free" in line for line in a.log[log:])
    assert snapshot(a) == before and a.rcu_pending_areas() == [p]


def test_bad_addresses_warn_and_change_nothing():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    before, log = snapshot(a), len(a.log)
    a.kvfree_rcu(None)
    a.kvfree_rcu(p + 1)
    a.kvfree_rcu(p + P)  # inside the area (its guard page), not its start
    a.kvfree_rcu(a.vmalloc_start - P)
    assert len(a.log) == log + 3
    assert snapshot(a) == before and a.rcu_pending_areas() == []
    with pytest.raises(VmapArgumentError):
        a.kvfree_rcu(-1)
    with pytest.raises(VmapArgumentError):
        a.kvfree_rcu(p, cpu=3)


def test_invariants_catch_a_pending_area_that_is_gone():
    a = vmapsim.build(0, debug=True)
    p = a.vmalloc(P)
    a.kvfree_rcu(p)
    va = a.find_unlink_vmap_area(p)  # behind the flow's back
    with pytest.raises(InvariantError):
        a.check_invariants()
    a._busy_reinsert(va)
    a.check_invariants()
