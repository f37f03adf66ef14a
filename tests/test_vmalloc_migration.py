"""test_vmalloc's workers as the kernel schedules them: unbound kthreads.

lib/test_vmalloc.c (torvalds/linux master, 2025: ``do_concurrent_test()``
starts each worker with ``kthread_run(test_func, t, "vmalloc_test/%d", i)``
and never binds it) lets the scheduler move its workers, so an area is freed
from another CPU than the one that allocated it.  The model migrates each
unpinned worker after a seeded number of steps; ``pin_workers`` keeps the
old placement.  ``--nr-cpus`` and ``nr_threads`` as in the cover letter's
runs (smp 4/8/16, nt 1-16) work at every stage."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim.tools.cli import main
from vmapsim_test_vmalloc import run_test_vmalloc

#: every subtest but full_fit and long_busy (their fill phases do
#: 3 x lazy_max_pages and 2 x 15,000 steps whatever test_loop_count is)
MASK = 0x1FFF & ~0x6


class CpuSpy:
    """Records, per area, the CPU that allocated it and the CPU that freed it."""

    def __init__(self, a: vmapsim.VmapAllocator) -> None:
        self.alloc_cpu: dict[int, int] = {}
        self.cross = 0
        self.frees = 0
        self.trace: list[tuple[str, int]] = []
        real_vmalloc, real_vfree = a.vmalloc, a.vfree

        def vmalloc(size, *, cpu=0):
            addr = real_vmalloc(size, cpu=cpu)
            self.trace.append(("vmalloc", cpu))
            if addr is not None:
                self.alloc_cpu[addr] = cpu
            return addr

        def vfree(addr, *, cpu=0):
            self.trace.append(("vfree", cpu))
            if addr in self.alloc_cpu:
                self.frees += 1
                self.cross += self.alloc_cpu.pop(addr) != cpu
            return real_vfree(addr, cpu=cpu)

        real_alloc_percpu = a.alloc_percpu
        self.pcpu_cpus: set[int] = set()

        def alloc_percpu(size, align, *, cpu=0):
            self.trace.append(("alloc_percpu", cpu))
            self.pcpu_cpus.add(cpu)
            return real_alloc_percpu(size, align, cpu=cpu)

        a.vmalloc, a.vfree, a.alloc_percpu = vmalloc, vfree, alloc_percpu


def _run(seed: int, **kw):
    a = vmapsim.build(0, nr_cpus=4)
    spy = CpuSpy(a)
    rep = run_test_vmalloc(
        a, seed=seed, tests="pcpu_alloc", nr_pcpu_objects=200, nr_threads=2, **kw
    )
    return spy, rep


def test_unpinned_workers_free_areas_from_another_cpu():
    spy, rep = _run(1, migrate_interval=16)
    # pcpu_alloc_test's pointer array is vmalloc'ed before 200 + 200 steps and
    # vfree'd after them: with a migration every ~16 steps the worker is
    # almost surely elsewhere by then
    assert spy.frees == 2
    assert spy.cross >= 1
    assert all(w.migrations > 0 for w in rep.workers)
    assert {cpu for _, cpu in spy.trace} - {0, 1}  # CPUs no pinned worker uses
    assert spy.pcpu_cpus - {0, 1}
    for w in rep.workers:
        assert w.last_cpu is not None and 0 <= w.last_cpu < 4


def test_pinned_workers_never_move():
    spy, rep = _run(1, pin_workers=True, migrate_interval=16)
    assert spy.cross == 0 and spy.frees == 2
    assert [w.migrations for w in rep.workers] == [0, 0]
    assert {cpu for _, cpu in spy.trace} == {0, 1}


def test_migration_is_deterministic_for_a_seed():
    a1, r1 = _run(7, migrate_interval=8)
    a2, r2 = _run(7, migrate_interval=8)
    a3, _ = _run(8, migrate_interval=8)
    assert a1.trace == a2.trace
    assert [w.migrations for w in r1.workers] == [w.migrations for w in r2.workers]
    assert a1.trace != a3.trace


def test_one_cpu_means_no_migration():
    a = vmapsim.build(0, nr_cpus=1)
    rep = run_test_vmalloc(a, run_test_mask=1, nr_threads=2, test_loop_count=50, migrate_interval=1)
    assert [w.migrations for w in rep.workers] == [0, 0]


def test_pinning_does_not_change_the_scheduler_draws():
    """Migration draws come from their own generators: a pinned run and an
    unpinned one interleave the workers identically (same order of calls)."""
    pinned, _ = _run(3, pin_workers=True)
    moving, _ = _run(3, migrate_interval=4)
    assert [op for op, _ in pinned.trace] == [op for op, _ in moving.trace]
    assert pinned.trace != moving.trace


@pytest.mark.parametrize("bad", [0, -3, 1.5, "8"])
def test_bad_migrate_interval_is_refused(bad):
    with pytest.raises((TypeError, ValueError), match="migrate_interval"):
        run_test_vmalloc(vmapsim.build(0, nr_cpus=2), run_test_mask=1, migrate_interval=bad)


@pytest.mark.parametrize("smp,nt", [(4, 1), (8, 16), (16, 4)])
@pytest.mark.parametrize("stage", range(13))
def test_cover_letter_cpu_and_thread_counts_run_at_every_stage(stage, smp, nt):
    a = vmapsim.build(stage, nr_cpus=smp)
    rep = run_test_vmalloc(
        a,
        seed=stage,
        run_test_mask=MASK,
        nr_threads=nt,
        test_loop_count=3,
        nr_pcpu_objects=16,
        migrate_interval=8,
    )
    assert len(rep.workers) == nt
    for w in rep.workers:
        assert [t["runs"] for t in w.tests] == [1] * bin(MASK).count("1")
        for t in w.tests:
            assert t["passed"] + t["failed"] + t["xfailed"] == 1
    assert sum(w.migrations for w in rep.workers) > 0
    # the kernel's Summary lines, one per worker and subtest plus the cycles line
    assert len(rep.summary_lines()) == nt * (bin(MASK).count("1") + 1)


def test_cli_pin_workers(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--stage", "0", "--nr-cpus", "4", "--mask", "1", "--test-loop-count", "20"]
    argv += ["--nr-threads", "2", "--json"]
    assert main([*argv, "--pin-workers"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    workers = out["workers"] if "workers" in out else out["workload"]["workers"]
    assert [w["migrations"] for w in workers] == [0, 0]
