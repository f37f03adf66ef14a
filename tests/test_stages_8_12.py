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
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

import vmapsim
from stage_trace import run_trace
from vmapsim import PAGE_SIZE, FailslabConfig, InvariantError, VmapError
from vmapsim.framework.registry import get_registry
from vmapsim.kernel.gfp import GFP_ATOMIC, GFP_KERNEL
from vmapsim_pcpu_overlay import OVERLAY_MAX_PAGES, UbsanError, derive_chunk_pages

P = PAGE_SIZE
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
    addrs = [a.vmalloc(40 * P) for _ in range(300)]  # not overlay-eligible
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


# -- stage 10: the per-CPU bump overlay ------------------------------------------------


def test_chunk_size_derivation() -> None:
    """docs/stages.md: a power of two <= lazy_max_pages / (4 nr_cpus), at least 32
    maximal eligible requests, at most 2048 pages."""
    for nr_cpus in (1, 2, 3, 4, 8, 16, 32, 64, 128):
        lazy_max = nr_cpus.bit_length() * 8192
        pages = derive_chunk_pages(nr_cpus, lazy_max)
        assert pages & (pages - 1) == 0
        assert 32 * OVERLAY_MAX_PAGES <= pages <= 2048
        if nr_cpus <= 16:
            assert nr_cpus * pages <= lazy_max // 4
            assert 2 * nr_cpus * pages > lazy_max // 4 or pages == 2048
        a = vmapsim.build(10, nr_cpus=nr_cpus)
        assert a.overlay.chunk_pages == pages


@pytest.mark.parametrize(("stage", "walks"), [(9, True), (10, False), (12, False)])
def test_stage10_eligible_alloc_does_no_tree_walk(stage: int, walks: bool) -> None:
    a = vmapsim.build(stage)
    a.vmalloc(P)  # the first one reserves the chunk
    for _ in range(50):
        addr, d = _delta(a, a.vmalloc, 3 * P)
        assert addr is not None
        assert (d.get("walks", 0) > 0) == walks
        assert (d.get("stores", 0) > 0) == walks


def test_stage10_eligibility_rule() -> None:
    a = vmapsim.build(10, nr_cpus=2)
    lo, hi = a.overlay.window
    in_chunk = lambda addr: lo <= addr < hi  # noqa: E731
    assert in_chunk(a.vmalloc(P))
    assert in_chunk(a.vmalloc(15 * P))  # 16 pages with the guard: the limit
    assert not in_chunk(a.vmalloc(15 * P + 1))  # 17 pages
    assert in_chunk(a.vmalloc_node(2 * P, P))
    assert not in_chunk(a.vmalloc_node(2 * P, 2 * P))  # align above PAGE_SIZE
    assert not in_chunk(a.vmalloc_node(2 * P, P, gfp=int(GFP_ATOMIC)))  # cannot block
    va = a.alloc_vmap_area(2 * P, P, a.vmalloc_start, a.vmalloc_end)  # no vm_struct
    assert not in_chunk(va.va_start)
    a.check_invariants()


def _ops(seed: int, n: int = 500) -> list[tuple]:
    """A seeded mix of eligible and ineligible requests, frees by index and
    explicit maintenance; sized so that no threshold drain happens."""
    rng = random.Random(seed)
    ops: list[tuple] = []
    for _ in range(n):
        r = rng.random()
        cpu = rng.randrange(4)
        if r < 0.3:
            ops.append(("free", rng.random(), cpu))
        elif r < 0.6:
            ops.append(("vmalloc", rng.randint(1, 15) * P - rng.choice([0, 100]), cpu))  # eligible
        elif r < 0.8:
            ops.append(("vmalloc", rng.randint(17, 120) * P, cpu))
        elif r < 0.95:
            ops.append(("node", rng.randint(1, 30) * P, P << rng.randint(1, 5), cpu))
        else:
            ops.append(("maint", rng.randrange(3), cpu))
    return ops


def _eligible(op: tuple) -> bool:
    return op[0] == "vmalloc" and op[1] <= 15 * P


def _play(stage: int, ops: list[tuple]) -> tuple[list[object], vmapsim.VmapAllocator]:
    a = vmapsim.build(stage, nr_cpus=4)
    live: list[tuple[int, bool]] = []
    out: list[object] = []
    for op in ops:
        if op[0] == "free":
            if live:
                addr, _elig = live.pop(int(op[1] * len(live)))
                a.vfree(addr, cpu=op[2])
            out.append(("free", len(a.log)))
        elif op[0] == "vmalloc":
            addr = a.vmalloc(op[1], cpu=op[2])
            live.append((addr, _eligible(op)))
            out.append(("vmalloc", addr))
        elif op[0] == "node":
            addr = a.vmalloc_node(op[1], op[2], cpu=op[3])
            live.append((addr, False))
            out.append(("node", addr))
        else:
            (a.vm_unmap_aliases, a.vmap_node_shrink_scan, a.purge_vmap_area_lazy)[op[1]]()
            out.append(("maint", op[1]))
    return out, a


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overlay_changes_only_eligible_requests(stage: int, seed: int) -> None:
    """Rows 10-12: the overlay takes its chunks from a window the normal path
    does not reach, so every ineligible request gets exactly the address
    stage 9 gives it when the eligible requests are never made; each
    eligible request is placed inside a chunk.  (Stage 9 on the same ops
    differs on ineligible requests too: there the eligible ones took space.)"""
    ops = _ops(seed)
    got, a = _play(stage, ops)
    lo, hi = a.overlay.window
    # replay on stage 9 with the eligible requests removed, frees following the same areas
    b = vmapsim.build(9, nr_cpus=4)
    live_a: list[tuple[int, bool]] = []
    for op, res in zip(ops, got, strict=True):
        if op[0] == "free":
            if live_a:
                addr, elig = live_a.pop(int(op[1] * len(live_a)))
                if not elig:
                    b.vfree(addr, cpu=op[2])
        elif op[0] in ("vmalloc", "node"):
            elig = _eligible(op)
            live_a.append((res[1], elig))
            if elig:
                assert res[1] is not None and lo <= res[1] < hi
            else:
                addr = (
                    b.vmalloc(op[1], cpu=op[2])
                    if op[0] == "vmalloc"
                    else b.vmalloc_node(op[1], op[2], cpu=op[3])
                )
                assert addr == res[1]
        else:
            (b.vm_unmap_aliases, b.vmap_node_shrink_scan, b.purge_vmap_area_lazy)[op[1]]()
    # no threshold drain in either run: purges are the explicit ones only
    explicit = sum(1 for op in ops if op[0] == "maint" and op[1] != 1)
    assert a.metrics.purges == b.metrics.purges == explicit
    assert a.metrics.overlay_allocs > 50
    a.check_invariants()
    b.check_invariants()
    assert [x for x in a.log if "UBSAN" not in x] == b.log


def test_stage10_vfree_goes_through_the_busy_tree() -> None:
    """Row 10: a chunk-resident vfree looks the address up in the busy tree
    (it lands on the chunk's area) and the chunk stays busy."""
    a = vmapsim.build(10, debug=True)
    addrs = [a.vmalloc(2 * P) for _ in range(10)]
    chunk = next(iter(a.overlay))
    seen: list[object] = []
    vn = a.vmap_nodes[0]
    vn.busy = _Spy(vn.busy, "find_unlink", lambda f, addr: seen.append(r := f(addr)) or r)
    _none, d = _delta(a, a.vfree, addrs[3])
    assert seen == [chunk]
    assert d["walks"] > 0 and d["overlay_frees"] == 1
    assert a.find_vmap_area(addrs[4]).va_start == addrs[4]
    assert a.find_vmap_area(addrs[3]) is chunk  # freed: only the chunk holds it now
    assert a.metrics.lazy_frees == 0  # nothing went to the lazy queue


# -- stage 11: O(1) lookup, bounded fast-reject ----------------------------------------------


@pytest.mark.parametrize(("stage", "walks"), [(10, True), (11, False), (12, False)])
def test_stage11_chunk_resident_vfree_does_no_walk(stage: int, walks: bool) -> None:
    a = vmapsim.build(stage)
    addrs = [a.vmalloc(4 * P) for _ in range(100)]
    for addr in addrs[10:60]:
        _none, d = _delta(a, a.vfree, addr)
        assert (d.get("walks", 0) > 0) == walks
        assert d["overlay_frees"] == 1
    for addr in addrs[60:70]:
        va, d = _delta(a, a.find_vmap_area, addr + P)
        assert va.va_start == addr and (d.get("walks", 0) > 0) == walks
    a.check_invariants()


@pytest.mark.parametrize("stage", [11, 12])
def test_stage11_fast_reject_falls_back_to_the_busy_tree(stage: int) -> None:
    a = vmapsim.build(stage, nr_cpus=2)
    big = a.vmalloc(40 * P)
    small = a.vmalloc(P)
    _lo, hi = a.overlay.window
    # outside the chunk window: rejected before any chunk is looked at
    va, d = _delta(a, a.find_vmap_area, big)
    assert va.va_start == big and d["overlay_fast_rejects"] == 1 and d["walks"] > 0
    # inside the window but in no chunk: rejected by the chunk table
    top = (hi & -P) - P
    _none, d = _delta(a, a.vfree, top)
    assert d["overlay_fast_rejects"] == 1
    assert a.log[-1] == f"WARNING: Trying to vfree() nonexistent vm area ({top:#x})"
    _none, d = _delta(a, a.vfree, big)
    assert d["overlay_fast_rejects"] == 1 and d["lazy_frees"] == 1
    _none, d = _delta(a, a.vfree, small)
    assert d.get("overlay_fast_rejects", 0) == 0 and d["overlay_lookups"] == 1
    a.check_invariants()


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_chunk_lifecycle(stage: int) -> None:
    """An exhausted chunk goes back (lazily, whole) once its last area is freed;
    the purge gives its range back to the occupied tree."""
    a = vmapsim.build(stage, debug=False)
    pages = a.overlay.chunk_pages
    addrs = [a.vmalloc(9 * P) for _ in range(pages // 10)]  # 10 pages each, not exact
    chunk = next(iter(a.overlay))
    nxt = a.vmalloc(9 * P)  # does not fit the rest: a second chunk
    assert a.metrics.overlay_chunk_reserves == 2 and not chunk.va_end > nxt >= chunk.va_start
    for addr in addrs[:-1]:
        a.vfree(addr)
    assert a.metrics.lazy_frees == 0 and a.overlay.table.get(chunk.va_start) is not None
    _none, d = _delta(a, a.vfree, addrs[-1])
    assert d["overlay_chunk_releases"] == 1 and d["lazy_frees"] == 1
    assert [(v.va_start, v.va_end) for v in a.lazy_areas()] == [(chunk.va_start, chunk.va_end)]
    assert a.vmap_lazy_nr == pages
    a.check_invariants()
    a.purge_vmap_area_lazy()
    assert a.occupied.gap_enclosing(chunk.va_start) is not None  # free again
    a.check_invariants()


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_memory_pressure_gives_back_empty_chunks(stage: int) -> None:
    a = vmapsim.build(stage, nr_cpus=2, debug=True)
    x = a.vmalloc(P, cpu=0)
    y = a.vmalloc(P, cpu=1)
    a.vfree(x, cpu=0)
    assert a.overlay.reclaimable() == 1
    assert a.vmap_node_shrink_count() == 1
    a.vmap_node_shrink_scan()
    assert a.metrics.overlay_chunk_releases == 1 and a.overlay.reclaimable() == 0
    assert len(list(a.overlay)) == 1
    a.vfree(y, cpu=1)
    a.purge_vmap_area_lazy()  # the failure path's reclaim takes the other one
    assert list(a.overlay) == []
    assert a.vmap_lazy_nr == 0


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_vm_unmap_aliases_flushes_freed_overlay_areas(stage: int) -> None:
    a = vmapsim.build(stage)
    x = a.vmalloc(3 * P)
    a.vmalloc(P)
    a.vfree(x)
    flushes = a.metrics.tlb_flushes
    a.vm_unmap_aliases()
    assert a.metrics.tlb_flushes == flushes + 1
    assert a.last_tlb_flush == (x, x + 4 * P)
    a.vm_unmap_aliases()  # nothing dirty, nothing lazy: no flush
    assert a.metrics.tlb_flushes == flushes + 1


@pytest.mark.parametrize("stage", OVERLAY_STAGES)
def test_full_chunk_window_falls_back_to_the_normal_path(stage: int) -> None:
    a = vmapsim.build(stage, debug=True)
    lo, hi = a.overlay.window
    # take the whole chunk window (as a normal path that ran out of space would)
    blocker = a.alloc_vmap_area(((hi - lo) & -P) - P, P, lo, hi)
    addr = a.vmalloc(2 * P)
    assert addr is not None and not lo <= addr < hi
    assert a.metrics.overlay_fallbacks == 1 and a.metrics.overlay_allocs == 0
    a.vfree(addr)
    a.free_vmap_area_noflush(blocker)
    a.check_invariants()


# -- the UBSAN defect (11) and its fix (12) ----------------------------------------------


def _module_load(stage: int, seed: int = 0, **kw) -> vmapsim.VmapAllocator:  # type: ignore[no-untyped-def]
    a = vmapsim.build(stage, seed=seed)
    get_registry().workload("module_load").run(a, seed=seed, **kw)
    return a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_module_load_ubsan_at_11_clean_at_12(seed: int) -> None:
    a11 = _module_load(11, seed)
    headers = [m for m in a11.log if UBSAN_HEADER.match(m)]
    idx = [UBSAN_INDEX.match(m) for m in a11.log if UBSAN_INDEX.match(m)]
    assert headers and len(headers) == len(idx) == a11.metrics.ubsan_reports
    for m in idx:  # one past the end, exactly
        assert int(m.group(1)) == int(m.group(2)) == a11.overlay.chunk_pages
    a11.check_invariants()
    for clean in (10, 12):
        a = _module_load(clean, seed)
        assert a.metrics.ubsan_reports == 0
        assert not any("UBSAN" in m for m in a.log)
        a.check_invariants()


def test_bisect_finds_12_as_first_clean_stage() -> None:
    """The report comes with patch 11 and goes with patch 12."""
    stages = list(range(13))
    bad = {s for s in stages if _module_load(s, nr_cycles=3000).metrics.ubsan_reports}
    assert bad == {11}
    assert min(s for s in range(11, 13) if s not in bad) == 12


def test_module_load_is_deterministic() -> None:
    a, b = _module_load(11, 5, nr_cycles=1500), _module_load(11, 5, nr_cycles=1500)
    assert a.log == b.log and a.metrics.snapshot() == b.metrics.snapshot()
    assert [(v.va_start, v.va_end) for v in a.free_areas()] == [
        (v.va_start, v.va_end) for v in b.free_areas()
    ]


def test_debug_makes_the_report_raise() -> None:
    a = vmapsim.build(11, debug=True)
    with pytest.raises(UbsanError, match=r"index 2048 is out of range"):
        for _ in range(a.overlay.chunk_pages // 16):
            a.vmalloc(15 * P)


def test_cli_run_stage11_module_load_shows_the_report() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vmapsim", "run", "--stage", "11", "--workload", "module_load"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "UBSAN: array-index-out-of-bounds in mm/vmalloc.c:" in out
    assert "is out of range for type 'struct vmap_area *[2048]'" in out
    assert re.search(r"ubsan_reports\s+[1-9]", out)


class OverlayMachine(RuleBasedStateMachine):
    """A plain state machine over vmalloc / vfree / maintenance, debug on."""

    STAGE = 11

    def __init__(self) -> None:
        super().__init__()
        self.a = vmapsim.build(self.STAGE, nr_cpus=32, debug=True)
        self.live: list[int] = []

    @rule(pages=st.integers(1, 15), count=st.integers(1, 40), cpu=st.integers(0, 1))
    def vmalloc_many(self, pages: int, count: int, cpu: int) -> None:
        for _ in range(count):
            addr = self.a.vmalloc(pages * P, cpu=cpu)
            assert addr is not None
            self.live.append(addr)

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 10**6), cpu=st.integers(0, 1))
    def vfree(self, i: int, cpu: int) -> None:
        self.a.vfree(self.live.pop(i % len(self.live)), cpu=cpu)

    @rule(which=st.integers(0, 2))
    def maintenance(self, which: int) -> None:
        a = self.a
        (a.vm_unmap_aliases, a.vmap_node_shrink_scan, a.purge_vmap_area_lazy)[which]()


_MACHINE_SETTINGS = settings(
    max_examples=60,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: a found failure is enough
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_state_machine_finds_the_defect_at_stage_11() -> None:
    class M11(OverlayMachine):
        STAGE = 11

    with pytest.raises(UbsanError):
        run_state_machine_as_test(M11, settings=_MACHINE_SETTINGS)


def test_state_machine_is_clean_at_stage_12() -> None:
    class M12(OverlayMachine):
        STAGE = 12

    run_state_machine_as_test(M12, settings=_MACHINE_SETTINGS)


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
        assert "is not busy" in a.log[-1]
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
        addr = a.vmalloc_node(rng.choice([1, 2, 5, 15, 40]) * P, P, gfp=gfp, cpu=rng.randrange(2))
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
    chunk.freed_pages -= 4  # a freed sub-area no longer accounted for
    with pytest.raises(InvariantError, match="sub-area is lost"):
        a.check_invariants()
    chunk.freed_pages += 4
    a.vmap_nodes[0].busy.unlink(chunk.va)  # the chunk is no longer busy
    with pytest.raises(InvariantError):
        a.check_invariants()
