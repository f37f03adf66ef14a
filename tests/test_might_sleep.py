"""might_sleep in the model (core/checking/might_sleep.py): a blocking
allocation or a mutex in atomic context (a spinlock held, preemption
disabled) or in an RCU read section is reported as kernel/sched/core.c's
__might_resched() prints it (torvalds/linux baf9c8c1), with the held locks;
a non-blocking allocation (GFP_NOWAIT: no __GFP_DIRECT_RECLAIM) is not."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import GFP_NOWAIT, PAGE_SIZE
from vmapsim.checking.debug_kernel import kernel_reports

#: a caller's own spinlock, held around vmalloc calls (not one the flow
#: takes: holding free_vmap_area_lock around vmalloc would be lockdep's
#: recursive-locking report, now that the flow takes that lock itself)
FREE = "caller_lock"
BUSY = "vmap_node.busy.lock"
BUG = "BUG: sleeping function called from invalid context at "


def _calls(log: list[str]) -> set[str]:
    """The sleeping calls the reports name (the first Call Trace line)."""
    return {log[i + 1].strip() for i, line in enumerate(log) if line == "Call Trace:"}


def test_gfp_kernel_vmalloc_under_a_spinlock_is_reported():
    a = vmapsim.build(0, debug_kernel=True)
    a.spin_lock(BUSY, 0)
    assert a.vmalloc(2 * PAGE_SIZE) is not None
    a.spin_unlock(BUSY, 0)
    log = list(a.log)
    first = log.index(BUG + "mm/slub.c")
    assert (
        log[first + 1] == "in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: vmapsim"
    )
    assert log[first + 2] == "preempt_count: 1, expected: 0"
    assert log[first + 3] == "RCU nest depth: 0, expected: 0"
    assert log[first + 4] == "1 lock held by vmapsim/1:"
    assert log[first + 5].startswith(" #0: inst0 (&vn->busy.lock){+.+.}-{2:2}, at: ")
    assert "Preemption disabled at:" in log
    # the vm_struct and the vmap_area are both GFP_KERNEL slab allocations
    assert _calls(log) == {"kzalloc_node(vm_struct)", "kmem_cache_alloc(vmap_area_cachep)"}
    assert "__vmalloc_node_range" in [ln.strip() for ln in log]
    # each (site, call, function) is printed once, every detection counted
    a.spin_lock(BUSY, 0)
    a.vmalloc(PAGE_SIZE)
    a.spin_unlock(BUSY, 0)
    # holding a node's busy.lock around vmalloc, which takes it again, is
    # also lockdep's recursive-locking report (a deadlock in the kernel)
    bugs = [r for r in kernel_reports(a.log) if r.startswith("BUG")]
    assert len(bugs) == len([r for r in kernel_reports(log) if r.startswith("BUG")]) == 2
    assert "WARNING: possible recursive locking detected" in kernel_reports(a.log)
    assert a._lockdep.counts["might_sleep"] >= 4


@pytest.mark.parametrize("stage", [0, 7, 12])
def test_gfp_nowait_under_a_spinlock_is_silent(stage):
    """GFP_NOWAIT never sleeps: no report from the slab or the maple tree."""
    a = vmapsim.build(stage, debug_kernel=True)
    a.spin_lock(FREE)
    for i in range(20):
        a.vmalloc_gfp((1 + i % 3) * PAGE_SIZE, gfp=int(GFP_NOWAIT))
    a.spin_unlock(FREE)
    assert kernel_reports(a.log) == []
    assert a._lockdep.counts["might_sleep"] == 0


def test_maple_node_allocation_that_may_sleep_under_a_spinlock():
    """Stage 7's busy/occupied maple tree preallocates its nodes with the
    caller's blocking gfp (mas_preallocate → mas_alloc_nodes): under a
    spinlock that is the report the cover letter's claim hides."""
    a = vmapsim.build(7, debug_kernel=True)
    a.spin_lock(FREE)
    for i in range(30):
        a.vmalloc((1 + i % 5) * PAGE_SIZE)
    a.spin_unlock(FREE)
    assert "mas_alloc_nodes" in _calls(a.log)


def test_the_maple_node_allocator_calls_the_hook_only_when_blocking():
    from vmapsim_mapletree.alloc import NodeAllocator

    seen: list[tuple[bool, str]] = []
    na = NodeAllocator(vmapsim.Counters(), might_alloc=lambda b, what: seen.append((b, what)))
    assert na.reserve(2, False)
    assert seen == []
    assert na.reserve(2, True)
    assert seen == [(True, "mas_alloc_nodes")]


def test_rcu_read_section_and_preempt_disable():
    a = vmapsim.build(0, debug_kernel=True)
    a.rcu_read_lock()
    a.might_alloc(True)
    a.rcu_read_unlock()
    log = list(a.log)
    assert log[0] == BUG + "mm/slub.c"
    assert log[1].startswith("in_atomic(): 0,")  # PREEMPT_RCU: no preempt count
    assert log[3] == "RCU nest depth: 1, expected: 0"
    assert log[4] == "1 lock held by vmapsim/1:"
    assert log[5].startswith(" #0: inst0 (rcu_read_lock){....}-{1:2}")
    assert "Preemption disabled at:" not in log
    a.log.clear()
    a.preempt_disable()
    a.might_alloc(True, "kmalloc")
    a.preempt_enable()
    assert a.log[1].startswith("in_atomic(): 1,")
    assert a.log[2] == "preempt_count: 1, expected: 0"
    assert "Preemption disabled at:" in a.log
    assert _calls(a.log) == {"kmalloc"}


def test_mutex_lock_in_atomic_context():
    a = vmapsim.build(0, debug_kernel=True)
    a.spin_lock(FREE)
    a.mutex_lock("vmap_purge_lock")
    a.mutex_unlock("vmap_purge_lock")
    a.spin_unlock(FREE)
    assert a.log[0] == BUG + "kernel/locking/mutex.c"
    assert _calls(a.log) == {"mutex_lock(vmap_purge_lock)"}
    assert a.held_locks == []


def test_a_mutex_held_is_not_atomic():
    a = vmapsim.build(0, debug_kernel=True)
    a.mutex_lock("vmap_purge_lock")
    a.mutex_lock("pcpu_alloc_mutex")
    a.vmalloc(PAGE_SIZE)
    a.mutex_unlock("pcpu_alloc_mutex")
    a.mutex_unlock("vmap_purge_lock")
    assert a.log == []
