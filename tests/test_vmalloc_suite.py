"""The test_vmalloc workload: each subtest does what lib/test_vmalloc.c's does
(sizes, alignments, fill patterns, failures), the driver follows
do_concurrent_test(), and the parameters follow the module and test_vmalloc.sh."""

from __future__ import annotations

import itertools
import random
import re

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, ULONG_MAX
from vmapsim.cost.counters import COUNTER_NAMES
from vmapsim.framework.registry import get_registry
from vmapsim.kernel.gfp import __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT
from vmapsim.tools.cli import main
from vmapsim_test_vmalloc import (
    DEFAULTS,
    TESTS,
    ScriptArgumentError,
    VmallocTestContext,
    resolve_params,
    run_test_vmalloc,
    shuffle_array,
    subtest_names,
)
from vmapsim_test_vmalloc.cycles import modeled_cycles

P = PAGE_SIZE
NAMES = subtest_names()


class Recorder:
    """Delegates to an allocator and records every call a subtest makes."""

    def __init__(self, a: vmapsim.VmapAllocator) -> None:
        self._a = a
        self.calls: list[tuple] = []
        self.live: dict[int, int] = {}
        self.max_live = 0

    def __getattr__(self, name):
        return getattr(self._a, name)

    def _track(self, addr, size):
        if addr is not None:
            self.live[addr] = size
            self.max_live = max(self.max_live, len(self.live))

    def vmalloc(self, size, *, cpu=0):
        addr = self._a.vmalloc(size, cpu=cpu)
        self.calls.append(("vmalloc", size, addr))
        self._track(addr, size)
        return addr

    def vmalloc_node(self, size, align, *, gfp=int(GFP_KERNEL), cpu=0):
        addr = self._a.vmalloc_node(size, align, gfp=gfp, cpu=cpu)
        self.calls.append(("vmalloc_node", size, align, gfp, addr))
        self._track(addr, size)
        return addr

    def vfree(self, addr, *, cpu=0):
        self.calls.append(("vfree", addr))
        self.live.pop(addr, None)
        return self._a.vfree(addr, cpu=cpu)


def _params(**kw):
    return resolve_params("manual", kw, num_cpus=1)[1]


def _drive(gen) -> int:
    """Run a subtest generator to its end; its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _ctx(a, seed=0, **kw):
    return VmallocTestContext(a, 0, random.Random(seed), _params(**kw))


def _test(name):
    return TESTS[NAMES.index(name)]


def _needs(a, name):
    missing = [n for n in _test(name).needs if not callable(getattr(a, n, None))]
    if missing:
        pytest.skip(f"allocator has no {', '.join(missing)}() yet")


def _busy(a):
    return [(v.va_start, v.va_end) for v in a.busy_areas()]


# -- the subtests ------------------------------------------------------------------


def test_array_order_and_bits_are_the_kernels():
    assert NAMES[:12] == [
        "fix_size_alloc_test",
        "full_fit_alloc_test",
        "long_busy_list_alloc_test",
        "random_size_alloc_test",
        "fix_align_alloc_test",
        "random_size_align_alloc_test",
        "align_shift_alloc_test",
        "pcpu_alloc_test",
        "kvfree_rcu_1_arg_vmalloc_test",
        "kvfree_rcu_2_arg_vmalloc_test",
        "vm_map_ram_test",
        "no_block_alloc_test",
    ]
    assert NAMES[12] == "vrealloc_test"  # bit 4096
    assert [t.name for t in TESTS if t.xfail] == ["align_shift_alloc_test", "no_block_alloc_test"]


@pytest.mark.parametrize(("nr_pages", "pages"), [(0, 1), (-3, 1), (1, 1), (3, 3)])
def test_fix_size_allocates_max_nr_pages_1_and_frees_it(nr_pages, pages):
    r = Recorder(vmapsim.build(0))
    rv = _drive(_test("fix_size_alloc_test").func(_ctx(r, test_loop_count=25, nr_pages=nr_pages)))
    assert rv == 0
    allocs = [c for c in r.calls if c[0] == "vmalloc"]
    frees = [c for c in r.calls if c[0] == "vfree"]
    assert len(allocs) == len(frees) == 25
    assert {c[1] for c in allocs} == {pages * P}
    assert [c[2] for c in allocs] == [f[1] for f in frees]  # each freed right after
    assert not r.live


def test_full_fit_makes_lazy_max_pages_holes_and_fits_them_exactly():
    a = vmapsim.build(0)
    junk = (1).bit_length() * (32 << 20) // P  # fls(num_online_cpus()) * 32 MiB / PAGE_SIZE
    assert a.lazy_max_pages() == junk == 8192
    r = Recorder(a)
    rv = _drive(_test("full_fit_alloc_test").func(_ctx(r, test_loop_count=40)))
    assert rv == 0
    allocs = [c for c in r.calls if c[0] == "vmalloc"]
    # two pointer arrays of junk entries, then junk pairs of one-page areas
    assert [c[1] for c in allocs[:2]] == [8 * junk, 8 * junk]
    pairs = allocs[2 : 2 + 2 * junk]
    assert all(c[1] == P for c in pairs)
    kept, holes = [c[2] for c in pairs[0::2]], [c[2] for c in pairs[1::2]]
    # each junk area is freed, leaving a 2-page hole (page + guard) between kept ones
    assert all(h == k + 2 * P for k, h in zip(kept, holes, strict=True))
    frees = [c[1] for c in r.calls if c[0] == "vfree"]
    assert frees[:junk] == holes
    # every loop allocation is one page and lands exactly in a hole
    loop = allocs[2 + 2 * junk :]
    assert len(loop) == 40 and all(c[1] == P for c in loop)
    assert {c[2] for c in loop} <= set(holes)
    assert not r.live


def test_long_busy_list_keeps_15000_pages_busy_around_its_loop():
    r = Recorder(vmapsim.build(0))
    rv = _drive(_test("long_busy_list_alloc_test").func(_ctx(r, test_loop_count=30)))
    assert rv == 0
    allocs = [c for c in r.calls if c[0] == "vmalloc"]
    assert allocs[0][1] == 8 * 15000
    assert [c[1] for c in allocs[1:15001]] == [P] * 15000
    assert [c[1] for c in allocs[15001:]] == [100 * P, P] * 30
    assert r.max_live == 15000 + 1 + 2  # the array, the busy pages, the loop's pair
    assert not r.live


def test_random_size_draws_1_to_100_pages():
    r = Recorder(vmapsim.build(0))
    assert _drive(_test("random_size_alloc_test").func(_ctx(r, test_loop_count=2000))) == 0
    pages = [c[1] // P for c in r.calls if c[0] == "vmalloc"]
    assert len(pages) == 2000 and min(pages) == 1 and max(pages) == 100
    assert 45 < sum(pages) / len(pages) < 56  # uniform on [1, 100]: mean 50.5
    assert not r.live


@pytest.mark.parametrize(("arch", "align"), [("x86_64", 32 << 10), ("arm64", 64 << 10)])
def test_fix_align_is_five_pages_at_twice_thread_align(arch, align):
    r = Recorder(vmapsim.build(0, arch=arch))
    assert _drive(_test("fix_align_alloc_test").func(_ctx(r, test_loop_count=30))) == 0
    calls = [c for c in r.calls if c[0] == "vmalloc_node"]
    assert len(calls) == 30
    for _, size, al, gfp, addr in calls:
        assert (size, al, gfp) == (5 * P, align, int(GFP_KERNEL | __GFP_ZERO))
        assert addr % align == 0
    assert not r.live


def test_random_size_align_derives_size_and_align_from_one_u8():
    r = Recorder(vmapsim.build(0))
    rv = _drive(_test("random_size_align_alloc_test").func(_ctx(r, test_loop_count=500)))
    assert rv == 0
    calls = [c for c in r.calls if c[0] == "vmalloc_node"]
    for _, size, align, _gfp, addr in calls:
        assert any(size == (u % 10 + 1) * P and align == 1 << (u % 23) for u in range(256)), (
            size,
            align,
        )
        assert addr % max(align, P) == 0
    aligns = {c[2] for c in calls}
    assert min(aligns) == 1 and max(aligns) <= 4 << 20 and len(aligns) > 15
    assert not r.live


def _first_failing_shift(a) -> int:
    """The first i for which no [ALIGN(vstart, 1 << i), + page + guard) fits the window."""
    for i in range(64):
        al = 1 << i
        start = (a.vmalloc_start + al - 1) // al * al  # no wrap in Python ints
        if start + 2 * P > a.vmalloc_end:
            return i
    raise AssertionError("every shift fits")


@pytest.mark.parametrize(("arch", "shift"), [("x86_64", 46), ("arm64", 47)])
def test_align_shift_fails_at_the_kernels_shift(arch, shift):
    a = vmapsim.build(0, arch=arch)
    assert _first_failing_shift(a) == shift
    r = Recorder(a)
    rv = _drive(_test("align_shift_alloc_test").func(_ctx(r)))
    assert rv == -1
    calls = [c for c in r.calls if c[0] == "vmalloc_node"]
    assert [c[2] for c in calls] == [1 << i for i in range(shift + 1)]
    assert all(c[4] is not None for c in calls[:-1]) and calls[-1][4] is None
    # the failure path: purge and retry, then the kernel's two warnings
    assert a.metrics["alloc_retries"] >= 1 and a.metrics["purges"] >= 1
    assert any("vm_struct allocation failed" in m for m in a.log)
    assert any(m.startswith("vmalloc_node_range for size 8192 failed") for m in a.log)
    assert not r.live


def test_align_shift_is_xfailed_not_failed_by_the_driver():
    a = vmapsim.build(0)
    rep = run_test_vmalloc(a, tests="align_shift", test_repeat_count=3)
    (t,) = rep.workers[0].tests
    assert (t["passed"], t["failed"], t["xfailed"]) == (0, 0, 3)


def test_no_block_uses_atomic_and_nowait():
    a = vmapsim.build(0)
    seen = []
    real_gfp = a.vmalloc_gfp

    def spy_gfp(size, *, gfp, cpu=0):
        seen.append((size, 1, gfp))
        return real_gfp(size, gfp=gfp, cpu=cpu)

    a.vmalloc_gfp = spy_gfp
    rv = _drive(_test("no_block_alloc_test").func(_ctx(a, test_loop_count=200, nr_pages=2)))
    assert rv == 0
    assert {s for s, _, _ in seen} == {2 * P}
    gfps = [g for _, _, g in seen]
    assert set(gfps) == {int(GFP_ATOMIC), int(GFP_NOWAIT)}
    assert 60 < gfps.count(int(GFP_ATOMIC)) < 140  # get_random_u8() % 2


def _window_free_only_behind_a_purge() -> vmapsim.VmapAllocator:
    """A stage-0 allocator whose vmalloc window is full of busy and lazily
    freed areas: a request finds space only after a purge."""
    a = vmapsim.build(0)
    window = a.vmalloc_end - a.vmalloc_start
    big = a.vmalloc((window // P - 64) * P)
    assert big is not None
    small = []
    while (p := a.vmalloc(P)) is not None:  # fill what is left
        small.append(p)
    assert small
    for p in small:  # lazily freed: below lazy_max_pages, nothing is purged
        a.vfree(p)
    assert a.vmap_lazy_nr > 0
    return a


def test_no_block_fails_without_purging_where_gfp_kernel_would_purge():
    a = _window_free_only_behind_a_purge()
    purges, retries = a.metrics["purges"], a.metrics["alloc_retries"]
    rv = _drive(_test("no_block_alloc_test").func(_ctx(a, test_loop_count=5)))
    assert rv == -1
    assert (a.metrics["purges"], a.metrics["alloc_retries"]) == (purges, retries)
    # the space was there, behind a purge: a blocking request gets it
    assert a.vmalloc(P) is not None
    assert a.metrics["purges"] == purges + 1


def test_pcpu_alloc_draws_the_kernels_sizes_and_aligns():
    a = vmapsim.build(0)
    _needs(a, "pcpu_alloc_test")
    got = []
    real_alloc, real_free = a.alloc_percpu, a.free_percpu
    freed = []

    def alloc(size, align, *, cpu=0):
        got.append((size, align))
        return real_alloc(size, align, cpu=cpu)

    def free(ptr):
        freed.append(ptr)
        return real_free(ptr)

    a.alloc_percpu, a.free_percpu = alloc, free
    before = _busy(a)
    rv = _drive(_test("pcpu_alloc_test").func(_ctx(a, nr_pcpu_objects=400)))
    assert rv == 0
    assert len(got) == 400 and len(freed) == 400
    assert all(1 <= s <= P // 4 for s, _ in got)
    assert {al for _, al in got} <= {1 << i for i in range(1, 12)}
    assert len({al for _, al in got}) > 5
    # what stays is one empty chunk (pcpu_balance_free() keeps one) ...
    extra = sorted(set(_busy(a)) - set(before))
    assert len(a.percpu.chunks) == 1 and a.percpu.chunks[0].empty
    assert len(extra) == 1
    # ... and a second run reuses it: nothing more is left behind
    after_first = _busy(a)
    assert _drive(_test("pcpu_alloc_test").func(_ctx(a, seed=1, nr_pcpu_objects=400))) == 0
    assert _busy(a) == after_first


@pytest.mark.parametrize("name", ["kvfree_rcu_1_arg_vmalloc_test", "kvfree_rcu_2_arg_vmalloc_test"])
def test_kvfree_rcu_tests_free_one_page_areas_after_a_grace_period(name):
    a = vmapsim.build(0)
    _needs(a, name)
    before = _busy(a)
    assert _drive(_test(name).func(_ctx(a, test_loop_count=50))) == 0
    a.rcu_barrier()
    assert _busy(a) == before


def test_vm_map_ram_maps_and_unmaps_nr_pages():
    a = vmapsim.build(0)
    _needs(a, "vm_map_ram_test")
    calls = []
    real_map, real_unmap = a.vm_map_ram, a.vm_unmap_ram

    def vmap(count, *, cpu=0):
        addr = real_map(count, cpu=cpu)
        calls.append(("map", count, addr))
        return addr

    def unmap(addr, count, *, cpu=0):
        calls.append(("unmap", count, addr))
        return real_unmap(addr, count, cpu=cpu)

    a.vm_map_ram, a.vm_unmap_ram = vmap, unmap
    assert _drive(_test("vm_map_ram_test").func(_ctx(a, test_loop_count=20, nr_pages=4))) == 0
    assert [c[0] for c in calls] == ["map", "unmap"] * 20
    assert {c[1] for c in calls} == {4}
    assert all(calls[i][2] == calls[i + 1][2] for i in range(0, 40, 2))


def test_vrealloc_grows_and_shrinks_as_the_kernel_test_does():
    a = vmapsim.build(0)
    _needs(a, "vrealloc_test")
    sizes = []
    real = a.vrealloc

    def spy(addr, size, *, gfp=int(GFP_KERNEL), cpu=0):
        sizes.append(size)
        return real(addr, size, gfp=gfp, cpu=cpu)

    a.vrealloc = spy
    before = _busy(a)
    assert _drive(_test("vrealloc_test").func(_ctx(a, test_loop_count=10))) == 0
    assert sizes == [4 * P, P, P // 2, P] * 10
    assert _busy(a) == before


@pytest.mark.parametrize("name", NAMES)
def test_each_subtest_leaves_the_allocator_as_it_found_it(name):
    a = vmapsim.build(0, debug=False)
    _needs(a, name)
    keep = a.vmalloc(3 * P)  # something of the caller's, which must stay
    before = _busy(a)
    rep = run_test_vmalloc(a, tests=name, test_loop_count=20, nr_pcpu_objects=300)
    (t,) = rep.workers[0].tests
    assert t["passed"] + t["xfailed"] == 1, (t, a.log[-3:])
    if callable(getattr(a, "rcu_barrier", None)):
        a.rcu_barrier()
    # what the kernel keeps cached on purpose: the one empty percpu chunk
    # (pcpu_balance_free()) and a CPU's partly used vmap block (vbq->free)
    cached = _cached_areas(a)
    assert len(cached) <= 1 if name != "vm_map_ram_test" else len(cached) == 1
    assert [r for r in _busy(a) if r not in cached] == before
    a.vfree(keep)
    a.purge_vmap_area_lazy()
    a.check_invariants()
    if not cached:
        assert [(v.va_start, v.va_end) for v in a.free_areas()] == [(1, ULONG_MAX)]


def _cached_areas(a):
    """Busy areas that are percpu chunks or vmap blocks."""
    out = set()
    for vb in getattr(a, "vmap_blocks", list)():
        out.add((vb.va.va_start, vb.va.va_end))
    percpu = getattr(a, "percpu", None)
    for chunk in getattr(percpu, "chunks", ()):
        for vm in chunk.vms:
            out.add((vm.addr, vm.addr + vm.size))
    return out


# -- the driver --------------------------------------------------------------------


def test_shuffle_is_sattolos_no_test_stays_in_place():
    for seed in range(50):
        arr = list(range(13))
        shuffle_array(arr, random.Random(seed))
        assert sorted(arr) == list(range(13))
        assert all(v != i for i, v in enumerate(arr))


_SUMMARY = re.compile(
    r"^Summary: (\w+) passed: (\d+) failed: (\d+) xfailed: (\d+) repeat: (\d+) "
    r"loops: (\d+) avg: (\d+) usec \(simulator\) modelled: (\d+) usec \((x86_64|arm64)\)$"
)


def test_summary_lines_per_worker_in_array_order():
    a = vmapsim.build(0, nr_cpus=2)
    rep = run_test_vmalloc(
        a, seed=3, run_test_mask=0b1001001, nr_threads=2, test_loop_count=30, test_repeat_count=2
    )
    lines = rep.summary_lines()
    assert len(lines) == 2 * (3 + 1)
    for w in range(2):
        block = lines[4 * w : 4 * w + 4]
        names = []
        for line in block[:3]:
            m = _SUMMARY.match(line)
            assert m, line
            names.append(m[1])
            p, f, x, r, loops = map(int, m.groups()[1:6])
            assert p + f + x == r == 2 and loops == 30
            # the kernel's line, with the cost table's time labelled beside the
            # simulator's wall clock (docs/modelled-time.md): 30 loops of any
            # subtest take at least a vmalloc() + vfree() each
            assert int(m[8]) > 0 and m[9] == "x86_64"
        assert names == [NAMES[0], NAMES[3], NAMES[6]]
        assert re.match(rf"^All test took worker{w}=\d+ cycles$", block[3])
    # workers shuffle their own orders unless sequential
    orders = [w.order for w in rep.workers]
    assert orders[0] != orders[1]
    assert all(o != tuple(NAMES) for o in orders)
    seq = run_test_vmalloc(
        vmapsim.build(0), sequential_test_order=1, run_test_mask=1, test_loop_count=5
    )
    assert seq.workers[0].order == tuple(NAMES)


def test_pinned_workers_interleave_on_their_cpus():
    """With ``pin_workers`` each worker stays on CPU ``i % nr_cpus`` (the
    pre-5.13 module's set_cpus_allowed_ptr() pinning); unpinned workers
    migrate (tests/test_vmalloc_migration.py)."""
    a = vmapsim.build(0, nr_cpus=3)
    cpus = []
    real = a.vmalloc

    def spy(size, *, cpu=0):
        cpus.append(cpu)
        return real(size, cpu=cpu)

    a.vmalloc = spy
    run_test_vmalloc(
        a, seed=1, run_test_mask=1, nr_threads=3, test_loop_count=200, pin_workers=True
    )
    assert sorted(set(cpus)) == [0, 1, 2]
    assert cpus.count(0) == cpus.count(1) == cpus.count(2) == 200
    switches = sum(1 for x, y in itertools.pairwise(cpus) if x != y)
    assert switches > 200  # stepped per loop iteration, not one worker after another


def test_counters_charged_to_subtests_add_up_and_cycles_are_deterministic():
    def go():
        a = vmapsim.build(0, nr_cpus=2)
        before = a.metrics.snapshot()
        rep = run_test_vmalloc(a, seed=5, run_test_mask=0x39, nr_threads=2, test_loop_count=40)
        return a, before, rep

    a, before, rep = go()
    after = a.metrics.snapshot()
    total: dict[str, int] = {}
    for w in rep.workers:
        for t in w.tests:
            for k, v in t["counters"].items():
                total[k] = total.get(k, 0) + v
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert total == {k: v for k, v in delta.items() if v}
    for w in rep.workers:
        assert w.cycles == sum(modeled_cycles(t["counters"]) for t in w.tests) > 0
    _, _, again = go()
    assert [w.cycles for w in again.workers] == [w.cycles for w in rep.workers]
    assert [[t["counters"] for t in w.tests] for w in again.workers] == [
        [t["counters"] for t in w.tests] for w in rep.workers
    ]
    assert set(total) <= set(COUNTER_NAMES) | {k for k in total if k.startswith("lock.")}


def test_missing_allocator_feature_fails_the_subtest_with_a_message():
    a = vmapsim.build(0)

    class Without:
        def __init__(self, a):
            self._a = a

        def __getattr__(self, name):
            if name == "vrealloc":
                raise AttributeError(name)
            return getattr(self._a, name)

    rep = run_test_vmalloc(Without(a), tests="vrealloc", test_loop_count=3)
    (t,) = rep.workers[0].tests
    assert t["failed"] == 1
    assert any("vrealloc_test: not run" in m for m in a.log)


def test_the_workload_is_registered_through_the_hook():
    w = get_registry().workload("test_vmalloc")
    assert w.run is run_test_vmalloc


# -- parameters ----------------------------------------------------------------------


def test_module_defaults_and_clamps():
    assert DEFAULTS["test_loop_count"] == 1_000_000
    assert DEFAULTS["run_test_mask"] == 7
    assert DEFAULTS["nr_pcpu_objects"] == 35_000
    p = _params()
    assert (p.nr_threads, p.test_repeat_count, p.test_loop_count, p.run_test_mask) == (
        1,
        1,
        1_000_000,
        7,
    )
    p = _params(nr_threads=70000, test_loop_count=-4, test_repeat_count=0, nr_pages=-2)
    assert (p.nr_threads, p.test_loop_count, p.test_repeat_count, p.pages) == (65535, 1, 1, 1)
    assert _params(nr_threads=-1).nr_threads == 1


def test_modes_are_test_vmalloc_sh_templates():
    _, smoke = resolve_params("smoke", {}, num_cpus=4)
    assert (smoke.test_loop_count, smoke.test_repeat_count, smoke.nr_threads) == (10000, 10, 1)
    _, perf = resolve_params("performance", {}, num_cpus=4)
    assert perf.sequential_test_order and perf.test_repeat_count == 3
    assert perf.test_loop_count == 1_000_000
    _, stress = resolve_params("stress", {}, num_cpus=4)
    assert (stress.nr_threads, stress.test_repeat_count) == (4, 20)
    assert resolve_params(None, {}, num_cpus=1)[0] == "smoke"
    mode, p = resolve_params(None, {"run_test_mask": 1}, num_cpus=1)
    assert mode == "manual" and p.test_loop_count == 1_000_000
    with pytest.raises(ValueError, match="mode"):
        resolve_params("fast", {}, num_cpus=1)


def test_use_huge_is_refused_clearly():
    with pytest.raises(ValueError, match="use_huge: vmalloc_huge"):
        resolve_params(None, {"use_huge": 1}, num_cpus=1)


def test_bad_keyword_parameters_are_named():
    with pytest.raises(ValueError, match="nr_thread: not a test_vmalloc module parameter"):
        resolve_params(None, {"nr_thread": 1}, num_cpus=1)
    with pytest.raises(ValueError, match="run_test_mask: must fit in a C int"):
        resolve_params(None, {"run_test_mask": 1 << 40}, num_cpus=1)
    with pytest.raises(TypeError, match="test_loop_count: must be an int"):
        resolve_params(None, {"test_loop_count": "10"}, num_cpus=1)


@pytest.mark.parametrize("arg", ["bogus=1", "nr_threads=0", "test_loop_count=-5", "nr_pages=x"])
def test_script_args_follow_the_scripts_rule(arg):
    key = arg.partition("=")[0]
    with pytest.raises(ScriptArgumentError, match=f"^Error: key or value is not correct: {key} "):
        run_test_vmalloc(vmapsim.build(0), args=[arg])


def test_tests_by_name_give_the_mask():
    a = vmapsim.build(0)
    rep = run_test_vmalloc(a, tests="fix_size,random_size_alloc_test", test_loop_count=3)
    assert rep.module_params["run_test_mask"] == 0b1001
    with pytest.raises(ValueError, match="unknown subtest 'nope'"):
        run_test_vmalloc(a, tests="nope")


# -- the command line ------------------------------------------------------------------


def test_cli_run_prints_the_kernels_summary(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["run", "--mask", "0x41", "test_loop_count=20", "test_repeat_count=2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""  # no progress bar when stderr is not a terminal
    summ = [line for line in out.splitlines() if line.startswith("Summary:")]
    assert [_SUMMARY.match(s)[1] for s in summ] == [NAMES[0], NAMES[6]]
    assert "xfailed: 2" in summ[1] and "failed: 0 xfailed" in summ[1]
    assert re.search(r"^All test took worker0=\d+ cycles$", out, re.M)


def test_cli_run_json_has_summary_counters_and_log(capsys, tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    rc = main(["run", "--json", "--tests", "align_shift", "--test-loop-count", "5"])
    out, _ = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    assert doc["workload"] == "test_vmalloc"
    (s,) = doc["summary"]
    assert s["name"] == "align_shift_alloc_test" and s["xfailed"] == 1
    assert doc["metrics"]["alloc_calls"] > 0 and doc["log"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus=1"], "Error: key or value is not correct: bogus 1"),
        (["test_repeat_count=0"], "Error: key or value is not correct: test_repeat_count 0"),
        (["--use-huge"], "use_huge"),
        (["--workload", "mixed", "--mask", "1"], "--mask: workload 'mixed' takes no such"),
    ],
)
def test_cli_run_bad_parameters_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    rc = main(["run", *argv])
    _, err = capsys.readouterr()
    assert rc == 2 and message in err


# -- the cover letter's functional sweep -----------------------------------------------


def _sweep(stage: int) -> dict[str, tuple[int, int, int]]:
    """test_vmalloc.run_test_mask=0xFFF (the series' 12 subtests), one repeat,
    on a fresh allocator of ``stage``: name -> (passed, failed, xfailed)."""
    a = vmapsim.build(stage, nr_cpus=2)
    rep = run_test_vmalloc(
        a, run_test_mask=0xFFF, test_loop_count=20, test_repeat_count=1, nr_pcpu_objects=300
    )
    out = {}
    for line in rep.summary_lines()[:-1]:
        m = _SUMMARY.match(line)
        assert m, line
        out[m[1]] = (int(m[2]), int(m[3]), int(m[4]))
    return out


def _assert_cover_letter_sweep(got: dict[str, tuple[int, int, int]]) -> None:
    # "11 of 12 test_vmalloc subtests PASS ... mask=64 (align_shift_alloc_test)
    # reports xfailed=1 by design; the same xfail is observed on the unpatched
    # RB baseline."  no_block_alloc_test is marked xfail in the kernel's table but
    # passes when its non-blocking requests find space; under the kernel's rule
    # since Oct 2025 a passing xfail test counts as passed.
    assert list(got) == NAMES[:12]
    assert got.pop("align_shift_alloc_test") == (0, 0, 1)
    assert set(got.values()) == {(1, 0, 0)}, got


@pytest.mark.vmapsim_stages("0,12")
def test_the_series_functional_sweep_11_pass_and_align_shift_xfailed(stage):  # type: ignore[no-untyped-def]
    _assert_cover_letter_sweep(_sweep(stage.number))


@pytest.mark.soak
@pytest.mark.vmapsim_stages("all")
def test_the_series_functional_sweep_on_every_stage(stage):  # type: ignore[no-untyped-def]
    _assert_cover_letter_sweep(_sweep(stage.number))


def test_a_failing_no_block_run_is_reported_xfailed_not_failed():
    a = _window_free_only_behind_a_purge()
    rep = run_test_vmalloc(a, tests="no_block", test_loop_count=5, test_repeat_count=3)
    (line,) = rep.summary_lines()[:-1]
    m = _SUMMARY.match(line)
    assert m and m[1] == "no_block_alloc_test"
    assert (int(m[2]), int(m[3]), int(m[4])) == (0, 0, 3)
