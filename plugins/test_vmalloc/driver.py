"""The test driver of lib/test_vmalloc.c: workers, their order, the scheduler, the report.

``do_concurrent_test()`` starts ``nr_threads`` kthreads that run every
selected subtest ``test_repeat_count`` times, each in its own order.  Here a
worker is a generator on a simulated CPU (worker *i* starts on CPU
``i % nr_cpus``) and one Python thread interleaves them:

* **migration**: the workers are unbound kthreads (``kthread_run(test_func,
  t, "vmalloc_test/%d", i)`` with no ``kthread_bind()`` or affinity call in
  lib/test_vmalloc.c since the ``nr_threads`` rework; the pre-5.13 module
  pinned each one with ``set_cpus_allowed_ptr()``), so the scheduler moves
  them and an area is often freed from another CPU than the one that
  allocated it.  A worker migrates after a seeded, geometrically distributed
  number of steps (mean ``migrate_interval``, default
  :data:`MIGRATE_INTERVAL`) to a CPU drawn uniformly from the others, from
  a generator of its own (``test_vmalloc:<seed>:migrate<i>``), so the
  scheduler's draws do not change with it; ``pin_workers=True`` keeps every
  worker on its first CPU (the old behaviour, and the pre-5.13 module's);

* **granularity**: a step is one iteration of one of a subtest's loops (one
  ``vmalloc`` + ``vfree`` pair, one fill or one free of a setup phase);
* **scheduler**: after every step, the next worker is drawn uniformly from
  those still running, by a generator seeded from the run's seed; with one
  worker no draw is made.

Each step's counter delta and wall time are charged to the worker's current
subtest (at a switch of worker, and at the end of each repetition), so a
subtest's counters are its own even when workers interleave.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from attrs import define, field, frozen

from vmapsim import COUNTER_NAMES, WorkloadReport, cost_table, modelled_ns

from .cycles import modeled_cycles
from .params import ModuleParams, mask_from_names, parse_script_args, resolve_params
from .subtests import LONG_BUSY, TESTS, VmallocTestContext, subtest_names

if TYPE_CHECKING:
    from vmapsim import VmapAllocator

__all__ = [
    "MIGRATE_INTERVAL",
    "TestVmallocReport",
    "WorkerResult",
    "run_test_vmalloc",
    "shuffle_array",
]

_BOUNDARY = object()
_SNAP = attrgetter(*COUNTER_NAMES)
#: maple nodes are 256 B (docs/metrics.md); index nodes embedded in
#: ``struct vmap_area`` (rb_node) cost nothing extra
MAPLE_NODE_BYTES = 256
PROGRESS_EVERY = 2048
#: mean number of steps between two migrations of an unpinned worker (a
#: modelling choice: a step is one loop iteration, ~1 us in the kernel, and
#: the load balancer acts every few ms; the mean is shortened so that runs of
#: a few thousand loops see cross-CPU frees; ``migrate_interval`` sets it)
MIGRATE_INTERVAL = 512


def shuffle_array(arr: list[int], rng: random.Random) -> None:
    """``shuffle_array()``: for i = n-1 … 1 swap ``arr[i]`` with ``arr[j]``,
    ``j = get_random_u32_below(i)`` (Sattolo's cycle: no element stays put)."""
    for i in range(len(arr) - 1, 0, -1):
        j = rng.randrange(i)
        arr[i], arr[j] = arr[j], arr[i]


@define(slots=True, eq=False, weakref_slot=False)
class _Stats:
    """``struct test_case_data`` plus the model's own accounting for one subtest."""

    passed: int = 0
    failed: int = 0
    xfailed: int = 0
    runs: int = 0
    time_s: float = 0.0
    counters: list[int] = field(factory=lambda: [0] * len(COUNTER_NAMES))
    locks: dict[str, int] = field(factory=dict)
    peak_va: int = 0
    peak_nodes: int = 0


@define(slots=True, eq=False, weakref_slot=False)
class _Worker:
    index: int
    cpu: int
    order: list[int]
    stats: dict[int, _Stats]
    gen: Iterator[object] | None = None
    current: int | None = None
    peak_va: int = 0
    peak_nodes: int = 0
    ctx: VmallocTestContext | None = None
    #: steps left before the next migration (0 = pinned: never)
    until_migrate: int = 0
    migrate_rng: random.Random | None = None
    migrations: int = 0
    first_cpu: int = 0


def _next_migration(w: _Worker, interval: int) -> None:
    """Draw the steps until ``w`` next migrates (geometric, mean ``interval``)."""
    rng = w.migrate_rng
    assert rng is not None
    w.until_migrate = 1 + int(rng.expovariate(1.0 / interval)) if interval > 1 else 1


def _migrate(w: _Worker, nr_cpus: int, interval: int) -> None:
    """The scheduler moves unbound worker ``w`` to another CPU (uniform)."""
    rng = w.migrate_rng
    assert rng is not None and w.ctx is not None
    cpu = rng.randrange(nr_cpus - 1)
    if cpu >= w.cpu:
        cpu += 1
    w.cpu = w.ctx.cpu = cpu
    w.migrations += 1
    _next_migration(w, interval)


@frozen
class WorkerResult:
    """One worker's results: per selected subtest (array order) its Summary data."""

    index: int
    cpu: int
    order: tuple[str, ...]
    tests: tuple[dict[str, Any], ...]
    cycles: int
    #: times the worker was moved to another CPU, and the CPU it ended on
    migrations: int = 0
    last_cpu: int | None = None


@frozen
class TestVmallocReport(WorkloadReport):
    """What a test_vmalloc run did: the kernel's Summary data per worker and
    subtest, plus each subtest's counters, memory peaks and time."""

    __test__ = False  # not a pytest class, despite the name
    mode: str = "manual"
    module_params: dict[str, int] = field(factory=dict)
    workers: tuple[WorkerResult, ...] = ()
    #: subtest name -> its lock sections (``LockSections.report``): per lock
    #: class acquisitions, work per section (mean, histogram), per instance;
    #: and the work outside locks
    lock_sections: dict[str, Any] = field(factory=dict)

    def summary_lines(self) -> list[str]:
        """The kernel's lines, as ``do_concurrent_test()`` prints them."""
        out: list[str] = []
        rep = self.module_params["test_repeat_count"]
        loops = self.module_params["test_loop_count"]
        for w in self.workers:
            for t in w.tests:
                out.append(
                    f"Summary: {t['name']} passed: {t['passed']} failed: {t['failed']} "
                    f"xfailed: {t['xfailed']} repeat: {rep} loops: {loops} "
                    f"avg: {t['avg_usec']} usec (simulator) "
                    f"modelled: {t['model_avg_usec']} usec ({t['model_table']})"
                )
            out.append(f"All test took worker{w.index}={w.cycles} cycles")
        return out

    def lines(self) -> list[str]:
        params = " ".join(f"{k}={v}" for k, v in self.module_params.items())
        out = [f"workload {self.name} (mode {self.mode}): {params}", ""]
        out += self.summary_lines()
        out.append("")
        out.append(f"  {'elapsed':<24} {self.elapsed_s:.3f} s (wall clock)")
        out.append("  cycles are modeled from the cost-model counters (docs/cost-model.md)")
        out.append(
            "  avg is the simulator's wall clock; modelled is the cost table's time "
            "(docs/modelled-time.md)"
        )
        return out

    def per_test(self) -> dict[str, dict[str, Any]]:
        """Every selected subtest summed over workers: runs, results, loops,
        time, counters, memory peaks (what ``vmapsim compare`` tabulates)."""
        out: dict[str, dict[str, Any]] = {}
        for w in self.workers:
            for t in w.tests:
                agg = out.setdefault(
                    t["name"],
                    {
                        "passed": 0,
                        "failed": 0,
                        "xfailed": 0,
                        "runs": 0,
                        "loops": 0,
                        "time_s": 0.0,
                        "counters": {},
                        "peak_vmap_area_objects": 0,
                        "peak_index_nodes": 0,
                        "cycles": 0,
                    },
                )
                for k in ("passed", "failed", "xfailed", "runs", "loops", "time_s", "cycles"):
                    agg[k] += t[k]
                for k, v in t["counters"].items():
                    agg["counters"][k] = agg["counters"].get(k, 0) + v
                agg["peak_vmap_area_objects"] = max(
                    agg["peak_vmap_area_objects"], t["peak_vmap_area_objects"]
                )
                agg["peak_index_nodes"] = max(agg["peak_index_nodes"], t["peak_index_nodes"])
        for name, agg in out.items():
            if name in self.lock_sections:
                agg["lock_sections"] = self.lock_sections[name]
        return out

    def json_extra(self) -> dict[str, Any]:
        """What ``vmapsim run --json`` adds for this workload."""
        return {
            "mode": self.mode,
            "module_params": self.module_params,
            "lock_sections": self.lock_sections,
            "summary": [
                {"worker": w.index, "cpu": w.cpu, **{k: v for k, v in t.items()}}
                for w in self.workers
                for t in w.tests
            ],
            "workers": [
                {
                    "worker": w.index,
                    "cpu": w.cpu,
                    "last_cpu": w.cpu if w.last_cpu is None else w.last_cpu,
                    "migrations": w.migrations,
                    "order": list(w.order),
                    "cycles": w.cycles,
                }
                for w in self.workers
            ],
            "summary_lines": self.summary_lines(),
        }


def _est_steps(idx: int, p: ModuleParams, a: VmapAllocator) -> int:
    name = TESTS[idx].name
    if name == "full_fit_alloc_test":
        return 3 * a.lazy_max_pages() + p.test_loop_count
    if name == "long_busy_list_alloc_test":
        return 2 * LONG_BUSY + p.test_loop_count
    if name == "pcpu_alloc_test":
        return 2 * max(p.nr_pcpu_objects, 0)
    return TESTS[idx].loops(p)


def _worker_body(w: _Worker, ctx: VmallocTestContext, p: ModuleParams) -> Iterator[object]:
    """``test_func()``: run each selected subtest ``test_repeat_count`` times."""
    a = ctx.a
    cache = a.va_cache
    m = a.metrics
    for idx in w.order:
        if not p.run_test_mask & (1 << idx):
            continue
        tc = TESTS[idx]
        st = w.stats[idx]
        missing = [n for n in tc.needs if not callable(getattr(a, n, None))]
        sections = m.sections
        for _ in range(p.test_repeat_count):
            w.current = idx
            if sections is not None:  # lock sections are charged to the subtest
                sections.label = tc.name
            w.peak_va = cache.live
            w.peak_nodes = m.node_allocs - m.node_frees
            if missing:
                a.log.append(
                    f"test_vmalloc: {tc.name}: not run: the allocator has no {', '.join(missing)}()"
                )
                rv = -1
            else:
                rv = yield from tc.func(ctx)
            st.runs += 1
            if rv == 0:
                st.passed += 1
            elif tc.xfail:
                st.xfailed += 1
            else:
                st.failed += 1
            yield _BOUNDARY


def _schedule(
    a: VmapAllocator,
    workers: list[_Worker],
    rng: random.Random,
    progress: Callable[[int], None] | None,
    migrate_interval: int = 0,
) -> None:
    """Interleave the workers' steps; charge time and counters to each worker's
    current subtest; move unpinned workers between CPUs (``migrate_interval``
    > 0)."""
    nr_cpus = a.nr_cpus
    m = a.metrics
    cache = a.va_cache
    locks = m.locks
    sections = m.sections
    runnable = list(workers)
    cur: _Worker | None = None
    t0 = time.perf_counter()
    c0 = _SNAP(m)
    l0 = dict(locks)

    def charge(w: _Worker) -> None:
        nonlocal t0, c0, l0
        now = time.perf_counter()
        c1 = _SNAP(m)
        l1 = dict(locks)
        if w.current is not None:
            st = w.stats[w.current]
            st.time_s += now - t0
            st.counters = [s + x - y for s, x, y in zip(st.counters, c1, c0, strict=True)]
            for k, v in l1.items():
                d = v - l0.get(k, 0)
                if d:
                    st.locks[k] = st.locks.get(k, 0) + d
            st.peak_va = max(st.peak_va, w.peak_va)
            st.peak_nodes = max(st.peak_nodes, w.peak_nodes)
        t0, c0, l0 = now, c1, l1

    steps = 0
    while runnable:
        n = len(runnable)
        w = runnable[0] if n == 1 else runnable[rng.randrange(n)]
        if w is not cur:
            if cur is not None:
                charge(cur)
            cur = w
            if sections is not None and w.current is not None:
                sections.label = TESTS[w.current].name
        gen = w.gen
        assert gen is not None
        # One step of the chosen worker; the last one left runs to its end
        # in one go (nothing else can be scheduled between its steps).
        stepped = False
        for tag in gen if n == 1 else islice(gen, 1):
            stepped = True
            live = cache.live
            if live > w.peak_va:
                w.peak_va = live
            nodes = m.node_allocs - m.node_frees
            if nodes > w.peak_nodes:
                w.peak_nodes = nodes
            if tag is _BOUNDARY:
                charge(w)
            if migrate_interval:
                w.until_migrate -= 1
                if not w.until_migrate:
                    _migrate(w, nr_cpus, migrate_interval)
            steps += 1
            if progress is not None and not steps % PROGRESS_EVERY:
                progress(steps)
        if n == 1 or not stepped:  # the worker's generator is done
            charge(w)
            runnable.remove(w)
            cur = None
    if progress is not None:
        progress(steps)


def _worker_result(w: _Worker, p: ModuleParams, a: VmapAllocator) -> WorkerResult:
    tests = []
    total_cycles = 0
    size = a.struct_vmap_area_size
    table = cost_table(a.arch.name, cache_model=a.metrics.cache is not None)
    for idx in range(len(TESTS)):
        if not p.run_test_mask & (1 << idx):
            continue
        st = w.stats[idx]
        counters = {k: v for k, v in zip(COUNTER_NAMES, st.counters, strict=True) if v}
        counters.update({f"lock.{k}": v for k, v in sorted(st.locks.items()) if v})
        cycles = modeled_cycles(counters)
        model_ns = modelled_ns(counters, table, nr_cpus=a.nr_cpus)["total"]
        total_cycles += cycles
        tests.append(
            {
                "name": TESTS[idx].name,
                "index": idx,
                "bit": 1 << idx,
                "passed": st.passed,
                "failed": st.failed,
                "xfailed": st.xfailed,
                "runs": st.runs,
                "repeat": p.test_repeat_count,
                "loops": TESTS[idx].loops(p) * st.runs,
                # ktime_us_delta over all repeats, do_div by the repeat count
                "avg_usec": int(st.time_s * 1e6) // p.test_repeat_count,
                "time_s": st.time_s,
                # the cost table's time, per repeat as avg (docs/modelled-time.md)
                "model_avg_usec": int(model_ns / 1000) // p.test_repeat_count,
                "model_table": table.platform,
                "cycles": cycles,
                "counters": counters,
                "peak_vmap_area_objects": st.peak_va,
                "peak_vmap_area_bytes": st.peak_va * size,
                "peak_index_nodes": st.peak_nodes,
                "peak_index_node_bytes": st.peak_nodes * MAPLE_NODE_BYTES,
            }
        )
    return WorkerResult(
        w.index,
        w.first_cpu,
        tuple(TESTS[i].name for i in w.order),
        tuple(tests),
        total_cycles,
        w.migrations,
        w.cpu,
    )


def _overrides(
    tests: str | Iterable[str] | None, args: Iterable[str], module_params: Mapping[str, Any]
) -> dict[str, Any]:
    overrides: dict[str, Any] = dict(parse_script_args(list(args)))
    overrides.update(module_params)
    if tests is not None:
        names = tests.split(",") if isinstance(tests, str) else list(tests)
        if "run_test_mask" in overrides:
            raise ValueError("tests: give either tests or run_test_mask, not both")
        overrides["run_test_mask"] = mask_from_names(names, subtest_names())
    return overrides


#: the driver's own keywords (not module parameters)
_SCHED_KEYS = ("pin_workers", "migrate_interval")


def split_params(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's parameters split into one run per selected subtest (for
    ``vmapsim compare``, which runs the parts in parallel): the same mode and
    parameters, ``run_test_mask`` = that subtest's bit."""
    rest = dict(params)
    mode = rest.pop("mode", None)
    tests = rest.pop("tests", None)
    args = list(rest.pop("args", ()))
    rest.pop("progress", None)
    sched = {k: rest.pop(k) for k in _SCHED_KEYS if k in rest}
    seedless = {k: v for k, v in rest.items() if k != "seed"}
    overrides = _overrides(tests, args, seedless)
    mode_used, p = resolve_params(mode, overrides, num_cpus=1)
    overrides.pop("run_test_mask", None)
    return [
        {**rest, **sched, **overrides, "mode": mode_used, "run_test_mask": 1 << i}
        for i in range(len(TESTS))
        if p.run_test_mask & (1 << i)
    ]


def join_params(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The report parameters of split runs put back together (the masks OR'ed)."""
    out = dict(parts[0])
    mask = 0
    for part in parts:
        mask |= int(part.get("run_test_mask", 0))
    out["run_test_mask"] = mask
    return out


def run_test_vmalloc(
    allocator: VmapAllocator,
    *,
    seed: int = 0,
    mode: str | None = None,
    tests: str | Iterable[str] | None = None,
    args: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
    pin_workers: bool = False,
    migrate_interval: int = MIGRATE_INTERVAL,
    **module_params: int,
) -> TestVmallocReport:
    """Run lib/test_vmalloc.c's suite on ``allocator``.

    ``mode`` is test_vmalloc.sh's ``smoke``, ``performance``, ``stress`` or
    ``manual``; ``None`` means ``smoke`` when no parameter is given, else
    ``manual``.  ``args`` are the script's ``key=value`` pairs (its rule:
    a module parameter, a value > 0); ``module_params`` are module
    parameters by keyword (the module's clamps apply); ``tests`` names
    subtests (``fix_size`` or ``fix_size_alloc_test``, comma-separated or a
    list) instead of ``run_test_mask``.  ``progress(done, total)`` is called
    every few thousand steps.

    Workers are unbound kthreads, as in the kernel: each starts on CPU
    ``i % nr_cpus`` and migrates (seeded) on average every
    ``migrate_interval`` steps; ``pin_workers=True`` keeps each on its first
    CPU.  With one CPU nothing migrates.
    """
    if not isinstance(pin_workers, bool | int):
        raise TypeError(f"pin_workers: must be a bool (got {pin_workers!r})")
    if isinstance(migrate_interval, bool) or not isinstance(migrate_interval, int):
        raise TypeError(f"migrate_interval: must be an int >= 1 (got {migrate_interval!r})")
    if migrate_interval < 1:
        raise ValueError(f"migrate_interval: must be >= 1 steps (got {migrate_interval})")
    overrides = _overrides(tests, args, module_params)
    mode_used, p = resolve_params(mode, overrides, num_cpus=allocator.nr_cpus)
    nr_cpus = allocator.nr_cpus
    nr_tests = len(TESTS)
    workers: list[_Worker] = []
    migrating = not pin_workers and nr_cpus > 1
    for i in range(p.nr_threads):
        order = list(range(nr_tests))
        rng = random.Random(f"test_vmalloc:{seed}:worker{i}")
        if not p.sequential_test_order:
            shuffle_array(order, rng)
        w = _Worker(i, i % nr_cpus, order, {j: _Stats() for j in range(nr_tests)})
        w.first_cpu = w.cpu
        ctx = VmallocTestContext(allocator, w.cpu, rng, p, i)
        w.ctx = ctx
        if migrating:
            w.migrate_rng = random.Random(f"test_vmalloc:{seed}:migrate{i}")
            _next_migration(w, migrate_interval)
        w.gen = _worker_body(w, ctx, p)
        workers.append(w)
    sched = random.Random(f"test_vmalloc:{seed}:scheduler")
    tick: Callable[[int], None] | None = None
    if progress is not None:
        total = sum(
            p.test_repeat_count * _est_steps(j, p, allocator)
            for j in range(nr_tests)
            if p.run_test_mask & (1 << j)
        ) * len(workers)
        cb = progress

        def tick(done: int) -> None:
            cb(min(done, total), total)

    t0 = time.perf_counter()
    _schedule(allocator, workers, sched, tick, migrate_interval if migrating else 0)
    elapsed = time.perf_counter() - t0
    results = tuple(_worker_result(w, p, allocator) for w in workers)
    sections = allocator.metrics.sections
    loops_by: dict[str, int] = {}
    if sections is not None:
        allocator.metrics.op_end()
        for wr in results:
            for t in wr.tests:
                loops_by[t["name"]] = loops_by.get(t["name"], 0) + t["loops"]
    lock_sections = {name: sections.report(name, per=loops) for name, loops in loops_by.items()}
    ops = {"passed": 0, "failed": 0, "xfailed": 0}
    for w in results:
        for t in w.tests:
            for k in ops:
                ops[k] += t[k]
    params: dict[str, Any] = {
        "seed": seed,
        "mode": mode_used,
        **p.as_dict(),
        "pin_workers": bool(pin_workers),
        "migrate_interval": migrate_interval,
    }
    return TestVmallocReport(
        "test_vmalloc",
        params,
        ops,
        elapsed,
        mode=mode_used,
        module_params=p.as_dict(),
        workers=results,
        lock_sections=lock_sections,
    )


#: how ``vmapsim compare`` splits a run into parallel parts (one per subtest)
run_test_vmalloc.split_params = split_params  # type: ignore[attr-defined]
run_test_vmalloc.join_params = join_params  # type: ignore[attr-defined]
