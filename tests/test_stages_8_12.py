"""Stages 8-12 of the maple series: each ledger claim pinned against the stage before.

Rows 8-12 of docs/stages.md.  Counters are read around single operations on
seeded workloads, so a change is the patch's, not the workload's.
"""

from __future__ import annotations

import errno
import random
import re
import subprocess
import sys

import pytest

import vmapsim
from stage_trace import run_trace
from vmapsim import PAGE_SIZE, FailslabConfig, InvariantError, VmapError
from vmapsim.checking.faults import FailPageAllocConfig
from vmapsim.framework.registry import get_registry
from vmapsim.kernel.gfp import GFP_ATOMIC, GFP_KERNEL
from vmapsim_pcpu_overlay import VA_FROM_BUMP_CHUNK, VMAP_BUMP_CHUNK_PAGES, VMAP_BUMP_CHUNK_SIZE

P = PAGE_SIZE
MiB = 1 << 20
NEW_STAGES = range(8, 13)
OVERLAY_STAGES = (10, 11, 12)
UBSAN_HEADER = re.compile(r"^UBSAN: array-index-out-of-bounds in mm/vmalloc\.c:\d+:\d+$")
UBSAN_INDEX = re.compile(r"^index (\d+) is out of range for type 'struct vmap_area \*\[(\d+)\]'$")


def _delta(a: vmapsim.VmapAllocator, fn, *args, **kw):  # type: ignore[no-untyped-def]
    before = a.metrics.snapshot()
    out = fn(*args, **kw)
    after = a.metrics.snapshot()
    return out, {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


class _Spy:
    """Stands in for a (slotted) component, calling ``hook(result, *args)``
    around one method; everything else goes to the component."""

    def __init__(self, obj, method: str, wrap) -> None:  # type: ignore[no-untyped-def]
        self._obj = obj
        setattr(self, method, lambda *args: wrap(getattr(obj, method), *args))

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._obj, name)

    def __len__(self) -> int:
        return len(self._obj)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._obj)


def _state(a: vmapsim.VmapAllocator) -> tuple:
    """Everything a bad call must leave untouched."""
    ov = a.overlay
    return (
        [(v.va_start, v.va_end) for v in a.free_areas()],
        [(v.va_start, v.va_end, v.vm) for v in a.busy_areas()],
        [(v.va_start, v.va_end) for v in a.lazy_areas()],
        [(v.va_start, v.va_end) for v in a.pooled_areas()],
        a.vmap_lazy_nr,
        [] if ov is None else [(v.va_start, v.va_end, v.vm) for v in ov.areas()],
    )


# -- the series as data ----------------------------------------------------------


def test_stages_8_to_12_registered_and_listed() -> None:
    reg = get_registry()
    titles = {n: reg.stage(n).title for n in NEW_STAGES}
    assert titles[8] == "mm/vmalloc: track lazy-purge queue as a list_head"
    assert titles[12] == "mm/vmalloc: harden bump-allocator alloc/free against UBSAN array bounds"
    for n in NEW_STAGES:
        st_ = reg.stage(n)
        assert st_.layout.size == 48
        assert st_.components["lazy"] == "listhead"
        assert ("overlay" in st_.components) == (n >= 10)
    out = subprocess.run(
        [sys.executable, "-m", "vmapsim", "stages"], capture_output=True, text=True, check=True
    ).stdout
    for n in range(13):
        assert f"maple:{n} " in out


# -- stage 8: the lazy queue is a list_head ---------------------------------------


@pytest.mark.parametrize(("stage", "tree_work"), [(7, True), (8, False), (12, False)])
def test_stage8_lazy_free_does_no_tree_work(stage: int, tree_work: bool) -> None:
    """Row 8: queueing a lazily freed area is a list append, no tree operation."""
    a = vmapsim.build(stage)
    addrs = [a.vmalloc(32 * MiB + P) for _ in range(300)]  # not overlay-eligible (> 32 MiB)
    work = []

    def spy(orig, va):  # type: ignore[no-untyped-def]
        ok, d = _delta(a, orig, va)
        work.append(d.get("walks", 0) + d.get("stores", 0) + d.get("nodes_visited", 0))
        return ok

    for vn in a.vmap_nodes:
        vn.lazy = _Spy(vn.lazy, "add", spy)
    for addr in addrs[:100]:
        a.vfree(addr)
    assert len(work) == 100
    assert (sum(work) > 0) == tree_work


def _purge_record(stage: int, seed: int) -> list[object]:
    """Every purge's TLB range, then the pools in order, the free gaps and the
    lazy count, on a 4-CPU workload that frees in random (not address) order."""
    rng = random.Random(seed)
    a = vmapsim.build(stage, nr_cpus=4, debug=False)
    live: list[int] = []
    rec: list[object] = []
    for i in range(900):
        cpu = rng.randrange(4)
        if live and rng.random() < 0.45:
            a.vfree(live.pop(rng.randrange(len(live))), cpu=cpu)
        else:
            addr = a.vmalloc(rng.choice([20, 33, 64, 100, 250]) * P, cpu=cpu)
            live.append(addr)
        if i % 150 == 149:
            a.vm_unmap_aliases()
            rec.append(("flush", a.last_tlb_flush, a.metrics.tlb_flushes))
            rec.append(("pools", [(v.va_start, v.va_end) for v in a.pooled_areas()]))
            rec.append(
                (
                    "pool order",
                    [[v.va_start for v in p] for vn in a.vmap_nodes for p in vn.pools.values()],
                )
            )
    rec.append(("free", [(v.va_start, v.va_end) for v in a.free_areas()]))
    rec.append(("lazy_nr", a.vmap_lazy_nr, a.metrics.purges))
    a.check_invariants()
    return rec


@pytest.mark.parametrize("seed", [1, 2])
def test_stage8_purge_order_and_result_unchanged(seed: int) -> None:
    """Row 8: the list keeps free order, yet every purge flushes the same range,
    fills the pools in the same order and leaves the same free space as stage 7."""
    assert _purge_record(8, seed) == _purge_record(7, seed)


def test_stage8_queue_keeps_free_order_not_address_order() -> None:
    """The list is not sorted (so the purge's own sort is what keeps the order)."""
    a = vmapsim.build(8)
    addrs = [a.vmalloc(40 * P) for _ in range(5)]
    for addr in reversed(addrs):
        a.vfree(addr)
    lazy = a.vmap_nodes[0].lazy
    assert [v.va_start for v in lazy._walk()] == list(reversed(addrs))
    assert [v.va_start for v in lazy] == addrs  # iteration is address order
    assert lazy.span == (addrs[0], addrs[-1] + 41 * P)
    a.vm_unmap_aliases()
    assert a.last_tlb_flush == (addrs[0], addrs[-1] + 41 * P)
    a.check_invariants()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_traces_8_9_equal_stage0_for_align_up_to_page(seed: int) -> None:
    """Ledger: stages 8 and 9 hand out stage 0's addresses in stage 0's order."""
    ref, a0 = run_trace(0, seed=seed)
    for stage in (8, 9):
        got, a = run_trace(stage, seed=seed)
        assert got == ref
        assert a.log == a0.log
        a.check_invariants()


# -- stage 9: one erase walk per vfree ------------------------------------------


def _walks_per_vfree(stage: int, pages: int = 30) -> float:
    a = vmapsim.build(stage)
    addrs = [a.vmalloc(pages * P) for _ in range(400)]
    a.metrics.reset()
    for addr in addrs[::2]:
        a.vfree(addr)
    assert a.metrics.purges == 0
    return a.metrics.walks / 200


def test_stage9_one_fewer_walk_per_vfree() -> None:
    """Row 9: find then erase (2 walks) becomes one mas_erase walk (1)."""
    w8, w9 = _walks_per_vfree(8), _walks_per_vfree(9)
    assert w8 == w9 + 1
    assert w9 == 1


# -- stages 10-12: the per-CPU bump overlay, as patches 10-12 posted it ----------------------

CHUNK = 64 * MiB  # VMAP_BUMP_CHUNK_SIZE
KASAN_UAF = re.compile(
    r"^BUG: KASAN: use-after-free in (vmap_bump_alloc|vmap_chunk_lookup|vmap_bump_unlink)$"
)


def test_patch10_11_12_constants() -> None:
    """Patch 10: VMAP_BUMP_CHUNK_SIZE 64 MiB; patch 11: 16384 page_va slots, VA_FROM_BUMP_CHUNK 0x4."""
    assert VMAP_BUMP_CHUNK_SIZE == CHUNK
    assert VMAP_BUMP_CHUNK_PAGES == CHUNK // P == 16384
    assert VA_FROM_BUMP_CHUNK == 0x4
    for stage in OVERLAY_STAGES:
        assert vmapsim.build(stage).overlay.mode == stage


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_eligibility_is_the_patch_rule(stage: int) -> None:
    """Patches 10-11: default window, 0 < size <= 32 MiB, align <= 32 MiB (no gfp, vm
    or flag test); patch 12's vmap_bump_eligible() adds PAGE_ALIGNED(size), align > 0."""
    a = vmapsim.build(stage)
    ov = a.overlay
    vs, ve = a.vmalloc_start, a.vmalloc_end
    assert ov.eligible(32 * MiB, 32 * MiB, vs, ve)
    assert not ov.eligible(32 * MiB + P, P, vs, ve)
    assert not ov.eligible(P, 64 * MiB, vs, ve)
    assert not ov.eligible(0, P, vs, ve)
    assert not ov.eligible(P, P, vs + P, ve) and not ov.eligible(P, P, vs, ve - P)
    assert ov.eligible(P + 1, 1, vs, ve) == (stage != 12)
    assert ov.eligible(P, 0, vs, ve) == (stage != 12)
    # any caller: an atomic vmalloc and a bare alloc_vmap_area() are bumped too
    addr = a.vmalloc_node(3 * P, P, gfp=int(GFP_ATOMIC))
    va = a.alloc_vmap_area(2 * P, P, vs, ve)
    assert addr == vs and va.va_start == vs + 4 * P
    assert [(v.va_start, v.va_end) for v in a.overlay.areas()] == [
        (vs, vs + 4 * P),
        (vs + 4 * P, vs + 6 * P),
    ]


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_chunk_is_the_lowest_fit_page_aligned(stage: int) -> None:
    """vmap_bump_refill(): __alloc_vmap_area(64 MiB, PAGE_SIZE, VMALLOC_START, VMALLOC_END)."""
    a = vmapsim.build(stage, nr_cpus=2, debug=True)
    vs = a.vmalloc_start
    x = a.alloc_vmap_area(3 * P, P, vs, vs + (1 << 30))  # not eligible: normal path
    first = a.vmalloc(P, cpu=0)
    second = a.vmalloc(P, cpu=1)
    ranges = [(c.base, c.limit, c.cpu) for c in a.overlay.chunks()]
    if stage == 11:  # the ineligible call refilled CPU 0 already (patch 11's NULL)
        assert ranges[0] == (vs, vs + CHUNK, 0) and x.va_start == vs + CHUNK
    else:
        assert x.va_start == vs
        assert ranges[0] == (vs + 3 * P, vs + 3 * P + CHUNK, 0)
    assert first == ranges[0][0]
    assert second == ranges[1][0] == max(ranges[0][1], x.va_end)
    a.check_invariants()


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_locks_taken_by_the_bump_path(stage: int) -> None:
    """Patch 10: vmap_bump_lock around the bump, busy.lock for the busy insert;
    11-12: preempt_disable only.  Refill: the free lock (+ vmap_bump_chunks_lock at 11-12)."""
    a = vmapsim.build(stage)
    a.vmalloc(P)
    _, d = _delta(a, a.vmalloc, P)
    locks = {k: v for k, v in a.metrics.locks.items()}
    before = dict(locks)
    a.vmalloc(P)
    step = {k: a.metrics.locks[k] - before.get(k, 0) for k in a.metrics.locks}
    step = {k: v for k, v in step.items() if v}
    if stage == 10:
        assert step == {"vmap_bump_lock": 1, "vmap_node.busy.lock": 1}
    else:
        assert step == {"preempt_disable": 1}
    assert d["walks"] == 0 and d["stores"] == 0
    fresh = vmapsim.build(stage)
    fresh.vmalloc(P)  # the first one refills
    want = {"free_vmap_area_lock": 1}
    want.update(
        {"vmap_bump_lock": 3, "vmap_node.busy.lock": 1}
        if stage == 10
        else {"preempt_disable": 3, "vmap_bump_chunks_lock": 1}
    )
    assert dict(fresh.metrics.locks) == want


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_vfree_of_a_bump_area(stage: int) -> None:
    """Patch 10: found through the busy walk; 11-12: vmap_bump_unlink(), no busy.lock."""
    a = vmapsim.build(stage, debug=True)
    addr = a.vmalloc(P)
    a.vmalloc(P)
    before = dict(a.metrics.locks)
    a.vfree(addr)
    step = {k: a.metrics.locks[k] - before.get(k, 0) for k in a.metrics.locks}
    step = {k: v for k, v in step.items() if v}
    if stage == 10:
        assert "vmap_node.busy.lock" in step
    else:
        assert "vmap_node.busy.lock" not in step and step.get("vmap_node.lazy.lock", 0) == 0
    assert a.find_vmap_area(addr) is None
    a.vfree(addr)
    assert "nonexistent vm area" in a.log[-1]


def test_patch11_bump_areas_skip_the_busy_tree() -> None:
    """Patch 11: no busy.mt insert (VA_FROM_BUMP_CHUNK); 10 still inserts."""
    for stage, in_busy in ((10, True), (11, False), (12, False)):
        a = vmapsim.build(stage)
        a.vmalloc(P)
        before = dict(a.metrics.locks)
        a.vmalloc(P)
        took = a.metrics.locks["vmap_node.busy.lock"] - before.get("vmap_node.busy.lock", 0)
        assert (took == 1) == in_busy, stage
    a = vmapsim.build(11)
    va = a.alloc_vmap_area(P, P, a.vmalloc_start, a.vmalloc_end)
    assert va.flags & VA_FROM_BUMP_CHUNK


def _cross_cpu(stage: int) -> vmapsim.VmapAllocator:
    """CPU 0 allocates one area; CPU 1 frees it (the chunk is CPU 0's current)."""
    a = vmapsim.build(stage, nr_cpus=2)
    x = a.vmalloc(P, cpu=0)
    a.vfree(x, cpu=1)
    return a


def test_patch11_cross_cpu_retire_is_a_use_after_free() -> None:
    """Patch 11: vmap_bump_unlink() compares with *this* CPU's current chunk, so
    CPU 1's free retires CPU 0's current one: its range goes back, CPU 0 keeps
    bumping into it (double booking), and after the kvfree_rcu grace period
    the descriptor is read after it was freed: KASAN's report, once."""
    a = _cross_cpu(11)
    ov = a.overlay
    assert ov.chunks() == [] and ov.descs_freed == 1
    vs = a.vmalloc_start
    y = a.vmalloc(P, cpu=0)  # still CPU 0's vmap_bump_cur
    assert y == vs + 2 * P and ov.double_booked == 1 and ov.kasan_reports == 0
    a.synchronize_rcu()  # the descriptor is freed now
    a.vmalloc(P, cpu=0)
    assert KASAN_UAF.match(a.log[-2]) and a.log[-2].endswith("vmap_bump_alloc")
    assert a.log[-1].startswith("Read of size 8 at addr ffff888100000000")
    assert ov.kasan_reports == 1
    n = len(a.log)
    a.vmalloc(P, cpu=0)
    assert len(a.log) == n and ov.kasan_reports == 2  # first report only, then counted
    b = _cross_cpu_debug(11)  # with debug too: reported, and the run goes on
    b.synchronize_rcu()
    b.vmalloc(P, cpu=0)
    assert b.overlay.kasan_reports == 1 and KASAN_UAF.match(b.log[-2])


def _cross_cpu_debug(stage: int) -> vmapsim.VmapAllocator:
    a = vmapsim.build(stage, nr_cpus=2, debug=True)
    a.vfree(a.vmalloc(P, cpu=0), cpu=1)
    return a


def test_patch11_retired_range_is_handed_out_twice() -> None:
    """After the cross-CPU retire, the allocator's lowest fit is the retired
    range: the next chunk (here refilled by an ineligible request, patch 11's
    NULL) covers the area CPU 0 bumped from the retired chunk."""
    a = _cross_cpu(11)
    vs = a.vmalloc_start
    y = a.vmalloc(P, cpu=0)
    z = a.alloc_vmap_area(4 * P, P, vs, vs + (1 << 30))
    assert z.va_start == vs + CHUNK
    (chunk,) = a.overlay.chunks()
    assert chunk.base <= y < chunk.limit  # y lies in a chunk it was not handed out of


def test_patch12_owner_cpu_fixes_the_cross_cpu_retire() -> None:
    a = _cross_cpu(12)
    assert len(a.overlay.chunks()) == 1 and a.overlay.descs_freed == 0
    a.synchronize_rcu()
    assert a.vmalloc(P, cpu=0) == a.vmalloc_start + 2 * P
    assert a.overlay.kasan_reports == 0 and a.overlay.double_booked == 0
    a.check_invariants()


@pytest.mark.parametrize("stage", [11, 12])
def test_drained_current_chunk_is_leaked(stage: int) -> None:
    """Patches 11-12: a chunk drained while current is skipped by the retire
    test; once a refill replaces it nothing ever looks at it again."""
    a = vmapsim.build(stage, debug=True)
    x = a.vmalloc(31 * MiB)
    y = a.vmalloc(31 * MiB)
    a.vfree(x)
    a.vfree(y)
    assert a.overlay.leaked_chunks() == []
    a.vmalloc(31 * MiB)  # does not fit the rest: refill
    (leak,) = a.overlay.leaked_chunks()
    assert leak.base == a.vmalloc_start and leak.alloced == 0
    a.purge_vmap_area_lazy()
    a.vmap_node_shrink_scan()
    assert a.overlay.leaked_chunks() == [leak]  # no path gives it back
    assert any(v.va_start == leak.base for v in a.busy_areas())  # its 64 MiB stay reserved


@pytest.mark.parametrize("stage", [11, 12])
def test_retire_gives_the_range_back_before_the_flush(stage: int) -> None:
    """Patches 11-12: the last vfree of a non-current chunk erases its whole
    range from the allocator at once; the freed areas in it are not flushed."""
    a = vmapsim.build(stage, debug=True)
    vs = a.vmalloc_start
    x = a.vmalloc(31 * MiB)
    y = a.vmalloc(31 * MiB)
    a.vmalloc(31 * MiB)  # second chunk: the first is no longer current
    flushes = a.metrics.tlb_flushes
    a.vfree(x)
    a.vfree(y)
    assert a.overlay.retired_unflushed == 1 and a.metrics.tlb_flushes == flushes
    assert any(f.va_start <= vs and vs + CHUNK <= f.va_end for f in a.free_areas())
    z = a.alloc_vmap_area(P, P, vs, vs + (1 << 30))  # 12: normal path; 11: refill first
    assert vs <= z.va_start < vs + CHUNK or a.overlay.chunks()[0].base == vs


def test_patch10_forgets_the_old_chunk() -> None:
    """Patch 10: a refill overwrites the per-CPU chunk; the old one's tail stays reserved."""
    a = vmapsim.build(10, debug=True)
    a.vmalloc(P)
    for _ in range(3):
        a.vmalloc(31 * MiB)
    (old,) = a.overlay.leaked_chunks()
    assert old.base == a.vmalloc_start and old.bump < old.limit


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_memory_pressure_takes_no_chunk(stage: int) -> None:
    """No patch wires the overlay into the shrinker or the purge."""
    a = vmapsim.build(stage)
    a.vfree(a.vmalloc(P))
    assert a.vmap_node_shrink_count() == vmapsim.SHRINK_EMPTY
    a.vmap_node_shrink_scan()
    a.purge_vmap_area_lazy()
    assert len(a.overlay.chunks()) == 1


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_vm_unmap_aliases_flushes_freed_bump_areas(stage: int) -> None:
    a = vmapsim.build(stage)
    x = a.vmalloc(P)
    a.vmalloc(P)
    a.vfree(x)
    a.vm_unmap_aliases()
    assert a.last_tlb_flush == (x, x + 2 * P)


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_full_vmalloc_space_falls_back(stage: int) -> None:
    """No 64 MiB gap: the refill fails silently, the request takes the normal path
    (at 11 the ineligible call that fills the space refilled CPU 0 first)."""
    a = vmapsim.build(stage, debug=True)
    vs, ve = a.vmalloc_start, a.vmalloc_end
    keep = 96 * MiB if stage == 11 else 32 * MiB
    a.alloc_vmap_area(((ve - vs) & -P) - keep, P, vs, ve)
    fallbacks = a.metrics.overlay_fallbacks
    addr = a.vmalloc(P)
    if stage == 11:
        assert addr == vs and len(a.overlay.chunks()) == 1
        a.vmalloc(32 * MiB - P)
        addr = a.vmalloc(32 * MiB - P)  # does not fit the rest of it; no room for another
    else:
        assert a.overlay.chunks() == []
    assert addr is not None and a.metrics.overlay_fallbacks == fallbacks + 1


def test_patch11_kvzalloc_failure_falls_back_to_a_nested_vmalloc() -> None:
    """Patch 11's ``kvzalloc(sizeof(*new_chunk), gfp_mask)``: its kmalloc
    attempt is an order-6 page allocation (131,136 bytes), which
    fail_page_alloc with min-order=6 fails once; kvmalloc then falls back to
    ``__vmalloc_node_range`` (mm/slub.c ``__kvmalloc_node_noprof``), which runs
    through this flow nested: that vmalloc goes through the bump path too,
    refills (its own descriptor kmalloc'ed now) and carves the descriptor's
    33 pages + guard out of the first chunk; the outer refill then installs a
    second chunk whose descriptor lives in the first."""
    fs = FailslabConfig(fail_page_alloc=FailPageAllocConfig(probability=100, min_order=6, times=1))
    a = vmapsim.build(11, failslab=fs, debug=True)
    addr = a.vmalloc(P)
    vs = a.vmalloc_start
    chunks = {c.base: c for c in a.overlay.chunks()}
    assert sorted(chunks) == [vs, vs + (64 << 20)]
    first, second = chunks[vs], chunks[vs + (64 << 20)]
    assert not a.is_vmalloc_addr(first.desc)  # kmalloc'ed: the fault was used up
    assert second.desc == vs and first.alloced == 34  # vmalloc'ed inside the first chunk
    assert addr == second.base and a.overlay.current[0] is second
    assert a.faults.page_failures == 1 and a.log == []


def test_patch11_has_no_ubsan_report() -> None:
    """Patch 11's fill loop is exact: module_load runs UBSAN-clean at every stage."""
    from vmapsim_pcpu_overlay.workload import module_load

    for stage in OVERLAY_STAGES:
        a = vmapsim.build(stage, nr_cpus=4)
        module_load(a, seed=1, nr_cycles=1500)
        assert a.metrics.ubsan_reports == 0
        assert not any("UBSAN" in line for line in a.log)


def test_module_load_is_deterministic() -> None:
    from vmapsim_pcpu_overlay.workload import module_load

    def run() -> tuple:
        a = vmapsim.build(11, nr_cpus=4)
        r = module_load(a, seed=3, nr_cycles=800)
        return tuple(sorted(r.ops.items())), tuple(a.log), a.metrics.snapshot()

    assert run() == run()


# -- bad input and fault injection, every stage 8-12 ------------------------------------------


@pytest.mark.parametrize("stage", NEW_STAGES)
def test_bad_input_changes_nothing(stage: int) -> None:
    a = vmapsim.build(stage, nr_cpus=2, debug=True)
    small = a.vmalloc(2 * P)
    big = a.vmalloc(50 * P)
    a.vfree(a.vmalloc(P))
    before = _state(a)
    nlog = len(a.log)
    a.vfree(small + 1)  # unaligned
    a.vfree(small + P)  # inside, not the start
    a.vfree(big + P)
    a.vfree(a.vmalloc_end - P)  # nothing there
    assert _state(a) == before
    freed = a.vmalloc(P)
    a.vfree(freed)
    before2 = _state(a)
    nlog2 = len(a.log)
    a.vfree(freed)  # double free
    assert _state(a) == before2 and len(a.log) == nlog2 + 1
    assert "nonexistent vm area" in a.log[-1]
    assert len(a.log) > nlog
    for bad in (
        lambda: a.vmalloc(-1),
        lambda: a.vmalloc(P, cpu=2),
        lambda: a.vfree("x"),  # type: ignore[arg-type]
        lambda: a.alloc_vmap_area(P, 3, a.vmalloc_start, a.vmalloc_end),
        lambda: a.alloc_vmap_area(P, P, a.vmalloc_end, a.vmalloc_start),
        lambda: a.free_vmap_area_noflush("x"),  # type: ignore[arg-type]
    ):
        with pytest.raises((VmapError, TypeError, ValueError)):
            bad()
    with pytest.raises(VmapError) as exc:
        a.alloc_vmap_area(0, P, a.vmalloc_start, a.vmalloc_end)
    assert exc.value.errno == errno.EINVAL
    if a.overlay is not None:  # a chunk's area is not the caller's to free
        chunk = next(iter(a.overlay))
        state = _state(a)
        a.free_vmap_area_noflush(chunk)
        assert "is not busy" in a.log[-1]  # a chunk's range is no caller's area
        assert _state(a) == state
    a.check_invariants()


@pytest.mark.parametrize("stage", NEW_STAGES)
@pytest.mark.parametrize("cache", ["vmap_area", "maple_node"])
def test_fault_injection_loses_nothing(stage: int, cache: str) -> None:
    """failslab on either cache, blocking allocations included: calls fail as
    the kernel's do, nothing is lost or double-booked, everything frees."""
    # maple nodes fail only for non-blocking requests (a blocking one retries, as
    # mas_nomem does; the model's release path relies on it); vmap_area objects
    # fail for blocking requests too, so a chunk reservation can fail
    fs = FailslabConfig(
        probability=50, cache_filter={cache}, ignore_gfp_wait=cache == "maple_node", seed=stage
    )
    a = vmapsim.build(stage, nr_cpus=2, failslab=fs, debug=True)
    rng = random.Random(stage)
    live: list[int] = []
    failed = 0
    for _ in range(400):
        if live and rng.random() < 0.4:
            a.vfree(live.pop(rng.randrange(len(live))))
            continue
        gfp = int(rng.choice([GFP_KERNEL, GFP_ATOMIC]))
        addr = a.vmalloc_node(
            rng.choice([1, 2, 5, 15, 40, 9000, 9000, 9000, 9000]) * P,
            P,
            gfp=gfp,
            cpu=rng.randrange(2),
        )
        if addr is None:
            failed += 1
        else:
            live.append(addr)
    assert a.faults.failures > 0  # faults were injected (some calls may absorb them)
    assert not any("nonexistent" in m for m in a.log)
    for addr in live:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    a.check_invariants()
    if a.overlay is not None:
        assert list(a.overlay.areas()) == []


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_check_invariants_accounts_for_every_sub_area(stage: int) -> None:
    a = vmapsim.build(stage)
    addrs = [a.vmalloc(3 * P) for _ in range(6)]
    a.vfree(addrs[2])
    a.check_invariants()
    chunk = a.overlay.chunks()[0]
    if stage != 10:
        chunk.alloced += 4  # pages no area accounts for
        with pytest.raises(InvariantError, match="live pages but alloced"):
            a.check_invariants()
        chunk.alloced -= 4
    a.vmap_nodes[0].busy.unlink(chunk.va)  # the chunk's range is no longer reserved
    with pytest.raises(InvariantError):
        a.check_invariants()
