"""lockdep in the model (core/checking/lockdep.py): hand-made lock sequences
through LockingMixin on a bare allocator, each report in the shape
kernel/locking/lockdep.c prints it (torvalds/linux baf9c8c1:
print_circular_bug(), print_deadlock_bug(), print_unlock_imbalance_bug(),
lockdep_assert_held()'s WARN_ON), and a clean sequence that stays silent."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim.checking.debug_kernel import DebugKernel, debug_kernel_counts, kernel_reports
from vmapsim.checking.lockdep import Lockdep, kernel_class_name

FREE = "free_vmap_area_lock"
BUSY = "vmap_node.busy.lock"
LAZY = "vmap_node.lazy.lock"
PURGE = "vmap_purge_lock"


@pytest.fixture
def alloc():
    return vmapsim.build(0, nr_cpus=2, debug_kernel=True)


def purge_vmap_node(a):
    """lazy → free, as __purge_vmap_area_lazy's reclaim nests them."""
    a.spin_lock(LAZY)
    a.spin_lock(FREE)
    a.spin_unlock(FREE)
    a.spin_unlock(LAZY)


def alloc_vmap_area(a):
    """free → busy."""
    a.spin_lock(FREE)
    a.spin_lock(BUSY)
    a.spin_unlock(BUSY)
    a.spin_unlock(FREE)


def find_unlink(a):
    """busy → lazy: closes lazy → free → busy → lazy."""
    a.spin_lock(BUSY)
    a.spin_lock(LAZY)
    a.spin_unlock(LAZY)
    a.spin_unlock(BUSY)


def reverse_order(a):
    """free → lazy, the reverse of purge_vmap_node's order."""
    a.spin_lock(FREE)
    a.spin_lock(LAZY)
    a.spin_unlock(LAZY)
    a.spin_unlock(FREE)


def test_a_clean_sequence_is_silent(alloc):
    """Consistent nesting, nested RCU and preempt sections, a held assertion,
    a mutex with no spinlock held and a blocking allocation under a mutex only
    are all fine for a debug kernel: no report, nothing counted."""
    for _ in range(3):
        alloc.mutex_lock(PURGE)
        purge_vmap_node(alloc)
        alloc_vmap_area(alloc)
        alloc.might_alloc(True)  # a mutex held: may sleep
        alloc.mutex_unlock(PURGE)
        alloc.rcu_read_lock()
        alloc.rcu_read_lock()
        alloc.rcu_read_unlock()
        alloc.rcu_read_unlock()
        alloc.preempt_disable()
        alloc.preempt_disable()
        alloc.preempt_enable()
        alloc.preempt_enable()
        alloc.spin_lock(BUSY, 1)
        alloc.lockdep_assert_held(BUSY, 1)
        alloc.might_alloc(False)  # GFP_NOWAIT under a spinlock: fine
        alloc.spin_unlock(BUSY, 1)
    assert alloc.log == []
    assert set(alloc._lockdep.counts.values()) == {0}
    assert alloc.held_locks == []
    # the mutex is a lock too: purge_vmap_node and alloc_vmap_area ran under it
    assert alloc._lockdep.graph == {
        PURGE: {LAZY: "purge_vmap_node", FREE: "alloc_vmap_area"},
        LAZY: {FREE: "purge_vmap_node"},
        FREE: {BUSY: "alloc_vmap_area"},
    }


def test_ab_ba_is_reported_once_in_the_kernels_shape(alloc):
    purge_vmap_node(alloc)
    assert alloc.log == []
    reverse_order(alloc)
    log = alloc.log
    assert log[0] == "=" * 54
    assert log[1] == "WARNING: possible circular locking dependency detected"
    assert log[3] == "-" * 54
    text = "\n".join(log)
    # trying to take lazy while holding free; lazy already leads to free
    assert "is trying to acquire lock:\ninst0 (&vn->lazy.lock){+.+.}-{2:2}, at: reverse_order" in (
        text
    )
    assert "but task is already holding lock:\ninst0 (free_vmap_area_lock)" in text
    assert "which lock already depends on the new lock." in text
    # the chain, in reverse order, with the functions that made each dependency
    chain = text.split("the existing dependency chain (in reverse order) is:\n\n", 1)[1]
    assert chain.startswith(
        "-> #1 (free_vmap_area_lock){+.+.}-{2:2}:\n       purge_vmap_node\n\n"
        "-> #0 (&vn->lazy.lock){+.+.}-{2:2}:\n       reverse_order\n"
    )
    assert (
        "  lock(free_vmap_area_lock);\n"
        "                               lock(&vn->lazy.lock);\n"
        "                               lock(free_vmap_area_lock);\n"
        "  lock(&vn->lazy.lock);\n\n *** DEADLOCK ***"
    ) in text
    assert "1 lock held by vmapsim/1:\n #0: inst0 (free_vmap_area_lock)" in text
    assert kernel_reports(log) == ["WARNING: possible circular locking dependency detected"]
    # the same pair again: counted, not printed again
    n = len(log)
    reverse_order(alloc)
    assert len(alloc.log) == n
    assert alloc._lockdep.counts["circular"] == 2
    assert alloc._lockdep.reports == 1
    # the refused dependency was not recorded; the held stacks are balanced
    assert LAZY not in alloc._lockdep.graph.get(FREE, {})
    assert alloc.held_locks == [] and alloc._lockdep.stack() == []


def test_an_inversion_through_nesting_names_the_chain(alloc):
    """lazy → free (purge) and free → busy (alloc) recorded; busy → lazy
    closes a three-class cycle: "Chain exists of" and three chain entries."""
    purge_vmap_node(alloc)
    alloc_vmap_area(alloc)
    find_unlink(alloc)
    text = "\n".join(alloc.log)
    assert "WARNING: possible circular locking dependency detected" in text
    assert " Chain exists of:\n   &vn->lazy.lock --> free_vmap_area_lock --> &vn->busy.lock" in (
        text
    )
    chain = text.split("(in reverse order) is:\n\n", 1)[1].split("other info", 1)[0]
    assert [ln for ln in chain.splitlines() if ln.startswith("->")] == [
        "-> #2 (&vn->busy.lock){+.+.}-{2:2}:",
        "-> #1 (free_vmap_area_lock){+.+.}-{2:2}:",
        "-> #0 (&vn->lazy.lock){+.+.}-{2:2}:",
    ]
    assert [ln.strip() for ln in chain.splitlines() if ln.startswith("       ")] == [
        "alloc_vmap_area",
        "purge_vmap_node",
        "find_unlink",
    ]


def test_the_graph_spans_cpus(alloc):
    """One dependency recorded on CPU 0, its reverse on CPU 1: still a cycle
    (the graph is global; the held stacks are per CPU)."""
    dk = alloc._lockdep
    dk.cpu = 0
    purge_vmap_node(alloc)
    dk.cpu = 1
    reverse_order(alloc)
    assert "vmapsim/2 is trying to acquire lock:" in alloc.log
    assert dk.counts["circular"] == 1


def test_held_stacks_are_per_cpu(alloc):
    dk = alloc._lockdep
    alloc.spin_lock(FREE)
    dk.cpu = 1
    alloc.lockdep_assert_held(FREE)  # held by CPU 0's task, not this one
    dk.cpu = 0
    alloc.lockdep_assert_held(FREE)
    alloc.spin_unlock(FREE)
    assert dk.counts["assert_held"] == 1


def test_recursive_locking_of_one_class(alloc):
    """Two nodes' busy locks nested: one class, so lockdep's recursive report
    (the kernel's check_deadlock() compares classes, not instances)."""
    alloc.spin_lock(BUSY, 0)
    alloc.spin_lock(BUSY, 1)
    text = "\n".join(alloc.log)
    assert alloc.log[:2] == ["=" * 44, "WARNING: possible recursive locking detected"]
    assert "is trying to acquire lock:\ninst1 (&vn->busy.lock)" in text
    assert "but task is already holding lock:\ninst0 (&vn->busy.lock)" in text
    assert "       CPU0\n       ----\n  lock(&vn->busy.lock);\n  lock(&vn->busy.lock);" in text
    assert " May be due to missing lock nesting notation" in text
    # no self-dependency is recorded, and the locks are held
    assert BUSY not in alloc._lockdep.graph
    assert alloc.held_locks == [(BUSY, 0), (BUSY, 1)]
    alloc.spin_unlock(BUSY, 1)
    alloc.spin_unlock(BUSY, 0)
    assert alloc._lockdep.counts["recursive"] == 1


def test_nested_rcu_and_preempt_sections_are_not_recursion(alloc):
    alloc.rcu_read_lock()
    alloc.rcu_read_lock()
    alloc.preempt_disable()
    alloc.preempt_disable()
    for _ in range(2):
        alloc.preempt_enable()
        alloc.rcu_read_unlock()
    assert alloc.log == []


def test_bad_unlock_balance(alloc):
    alloc.spin_lock(FREE)
    alloc.spin_unlock(BUSY, 1)
    text = "\n".join(alloc.log)
    assert alloc.log[:2] == ["=" * 37, "WARNING: bad unlock balance detected!"]
    assert "vmapsim/1 is trying to release lock (&vn->busy.lock) at:\ninst1 " in text
    assert "but there are no more locks to release!" in text
    assert "1 lock held by vmapsim/1:\n #0: inst0 (free_vmap_area_lock)" in text
    # the release is refused: what is held stays held
    assert alloc.held_locks == [(FREE, 0)]
    alloc.spin_unlock(FREE)
    assert alloc.held_locks == []
    assert alloc._lockdep.counts["bad_unlock"] == 1


def test_bad_unlock_without_the_debug_kernel_is_an_error():
    """The production kernel model keeps its assertion (the flow's own bug)."""
    a = vmapsim.build(0)
    assert a._lockdep is None
    with pytest.raises(AssertionError, match="of a lock not held"):
        a.spin_unlock(FREE)


def test_lockdep_assert_held(alloc):
    alloc.lockdep_assert_held(FREE)  # not held
    alloc.spin_lock(BUSY, 0)
    alloc.lockdep_assert_held(BUSY, 1)  # another node's lock is held, not this one
    alloc.lockdep_assert_held(BUSY, 0)  # held: silent
    alloc.spin_unlock(BUSY, 0)
    warnings = kernel_reports(alloc.log)
    assert len(warnings) == 2
    assert all(w.startswith("WARNING: CPU: 0 PID: 1 at mm/vmalloc.c ") for w in warnings)
    assert "lockdep_assert_held(free_vmap_area_lock) failed: instance 0 not held" in alloc.log
    assert "lockdep_assert_held(&vn->busy.lock) failed: instance 1 not held" in alloc.log
    assert alloc._lockdep.counts["assert_held"] == 2


def test_the_debug_kernel_off_checks_nothing():
    """Without the profile the primitives only count and hold: an inversion,
    a recursion and an assertion are not looked at."""
    a = vmapsim.build(0)
    purge_vmap_node(a)
    reverse_order(a)
    a.spin_lock(BUSY, 0)
    a.spin_lock(BUSY, 1)
    a.lockdep_assert_held(FREE)
    a.might_alloc(True)
    a.spin_unlock(BUSY, 1)
    a.spin_unlock(BUSY, 0)
    assert a.log == []
    assert a.metrics.locks[LAZY] == 2 and a.metrics.locks[BUSY] == 2


def test_counts_and_kernel_names(alloc):
    assert kernel_class_name(BUSY) == "&vn->busy.lock"
    assert kernel_class_name("vmap_node.pool_lock") == "&vn->pool_lock"
    assert kernel_class_name("some_new_lock") == "some_new_lock"
    purge_vmap_node(alloc)
    reverse_order(alloc)
    counts = debug_kernel_counts(alloc)
    assert counts["circular"] == 1 and counts["reports"] == 1
    assert counts["kasan"] == 0 and counts["ubsan"] == 0
    assert isinstance(alloc._lockdep, DebugKernel)


def test_a_standalone_lockdep_prints_through_its_printk():
    out: list[str] = []
    ld = Lockdep(out.append)
    ld.acquire("a", 0)
    ld.acquire("b", 0)
    assert ld.release("b", 0) and ld.release("a", 0)
    ld.acquire("b", 0)
    ld.acquire("a", 0)
    assert "WARNING: possible circular locking dependency detected" in out
    assert not ld.release("c", 0)
    assert "WARNING: bad unlock balance detected!" in out


def test_build_refuses_a_non_bool_debug_kernel():
    with pytest.raises(vmapsim.VmapTypeError, match="debug_kernel"):
        vmapsim.build(0, debug_kernel=1)


# -- the profile on the command line: run, compare, bisect ------------------------------


@pytest.fixture
def inverted_from_5(monkeypatch):
    """A stand-in for a stage whose flow inverts two locks: every stage's
    vfree() nests lazy → free; from stage 5 on it also nests free → lazy.
    (Today's flow takes no lock through LockingMixin; this exercises the
    profile's plumbing with a known first bad stage.)"""
    from vmapsim.kernel.allocator import VmapAllocator

    real = VmapAllocator.vfree

    def vfree(self, addr, **kw):
        purge_vmap_node(self)
        if self.stage.number >= 5:
            reverse_order(self)
        return real(self, addr, **kw)

    monkeypatch.setattr(VmapAllocator, "vfree", vfree)
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)


SMALL = ["--mask", "0x1", "--test-loop-count", "20", "--nr-threads", "1"]


def test_run_debug_kernel_counts_in_the_json(capsys, monkeypatch):
    import json

    from vmapsim.tools.cli import main

    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    rc = main(["run", "--stage", "0", "--debug-kernel", "--json", *SMALL])
    out, _err = capsys.readouterr()
    data = json.loads(out)
    assert rc == 0
    assert data["debug_kernel"] == {
        "circular": 0,
        "recursive": 0,
        "bad_unlock": 0,
        "assert_held": 0,
        "might_sleep": 0,
        "kasan": 0,
        "ubsan": 0,
        "reports": 0,
    }
    rc = main(["run", "--stage", "0", "--json", *SMALL])
    assert "debug_kernel" not in json.loads(capsys.readouterr()[0])


def test_run_fail_on_reports_sees_a_lockdep_report(capsys, inverted_from_5):
    from vmapsim.tools.cli import main

    assert main(["run", "--stage", "4", "--debug-kernel", "--fail-on-reports", *SMALL]) == 0
    capsys.readouterr()
    rc = main(["run", "--stage", "5", "--debug-kernel", "--fail-on-reports", "--log-all", *SMALL])
    out, err = capsys.readouterr()
    assert rc == 1
    # stage 5 (the cover-letter reading still on main) also preallocates
    # maple nodes with a blocking gfp under busy.lock: might_sleep's report
    assert "report(s) in the log" in out
    assert "WARNING: possible circular locking dependency detected" in out
    assert "kernel report(s) in the log (exit 1)" in err
    # without the profile the same flow is not looked at
    assert main(["run", "--stage", "5", "--fail-on-reports", *SMALL]) == 0


def test_compare_sees_the_reports(capsys, inverted_from_5):
    from vmapsim.tools.compare import compare

    res = compare(
        ["4", "5"],
        params={"run_test_mask": 0x1, "test_loop_count": 20, "nr_threads": 1},
        reps=1,
        jobs=1,
        debug_kernel=True,
    )
    got = {c["key"]: c["kernel_reports"] for c in res["stages"]}
    assert got["maple:4"] == []
    assert "WARNING: possible circular locking dependency detected" in got["maple:5"]
    assert res["debug_kernel"] is True


def test_bisect_on_a_report_text(capsys, inverted_from_5):
    """``bisect --log`` on lockdep's report finds the first stage that
    produces it; without --debug-kernel no stage does."""
    import json

    from vmapsim.tools.cli import main

    common = ["--log", "possible circular locking", "--param", "nr_ops=300", "--json"]
    rc = main(["bisect", *common, "--debug-kernel"])
    data = json.loads(capsys.readouterr()[0])
    assert rc == 0 and data["first_bad"] == 5, data
    rc = main(["bisect", *common])
    out, err = capsys.readouterr()
    assert rc != 0 or json.loads(out)["first_bad"] is None, (out, err)


def test_bisect_refuses_debug_kernel_with_a_command_check(capsys):
    from vmapsim.tools.cli import main

    rc = main(["bisect", "--run", "true", "--debug-kernel"])
    assert rc == 2
    assert "--debug-kernel: apply to --trace, --metric and --log only" in capsys.readouterr()[1]


# -- the stages today ------------------------------------------------------------------


@pytest.mark.parametrize("stage", range(13))
def test_todays_stages_under_the_debug_kernel(stage):
    """Pins what today's flow shows a debug kernel (docs/debug-kernel.md's
    table): no lockdep or might_sleep report at any stage, because the flow
    still counts its locks in ``metrics.locks`` without taking them through
    LockingMixin (the lock-site conversion, issues #19/#20, changes this;
    the merge redoes the table and this test).  Every operation leaves no
    lock held, on any CPU."""
    a = vmapsim.build(stage, nr_cpus=2, debug_kernel=True)
    from vmapsim.framework.registry import get_registry

    get_registry().workload("mixed").run(a, seed=stage, nr_ops=400)
    counts = debug_kernel_counts(a)
    lockdep_kinds = ("circular", "recursive", "bad_unlock", "assert_held")
    assert {k: counts[k] for k in lockdep_kinds} == dict.fromkeys(lockdep_kinds, 0)
    if a.stage.features.get("maple_publish") == "prealloc" and stage < 10:
        # the busy publish preallocates maple nodes with the caller's blocking
        # gfp while holding &vn->busy.lock (mas_preallocate -> mas_alloc_nodes):
        # a sleeping call in atomic context, which the kernel reports (at
        # 10-12 the bump path takes most requests; the report may or may not
        # come in 400 ops, and when it comes it is this one)
        assert counts["might_sleep"] > 0
    if counts["might_sleep"]:
        assert a.stage.features.get("maple_publish") == "prealloc"
        i = next(i for i, line in enumerate(a.log) if "sleeping function called" in line)
        report = "\n".join(a.log[i : i + 20])
        assert "&vn->busy.lock" in report and "mas_alloc_nodes" in report

    assert all(not st for st in a._lockdep.held.values())
    assert a.held_locks == []
    assert counts["ubsan"] == 0  # patch 11's fill loop is exact (docs/stages.md row 11)
