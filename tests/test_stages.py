"""Stages 1-7 of the maple series: what each patch changes, pinned against the stage before.

Each test names the ledger row it shows (docs/stages.md).  Counters are read
per operation on the same seeded workload, so a change is the patch's, not
the workload's.
"""

from __future__ import annotations

import errno

import pytest

import vmapsim
from stage_trace import run_trace
from vmapsim import PAGE_SIZE, FailslabConfig, InvariantError, VmapError
from vmapsim.framework.registry import get_registry

P = PAGE_SIZE
MAPLE_STAGES = range(0, 8)


def _counts(stage: int, live: int, *, pairs: int = 200, nr_cpus: int = 1) -> dict[str, float]:
    """Counters per one-page vmalloc+vfree pair with ``live`` one-page areas busy.

    The pairs run after the fill, with counters reset; split into the alloc
    and the free side so either can be compared."""
    a = vmapsim.build(stage, nr_cpus=nr_cpus)
    for _ in range(live):
        assert a.vmalloc(P) is not None
    a.purge_vmap_area_lazy()
    a.metrics.reset()
    alloc = dict.fromkeys(("nodes_visited", "cache_lines", "stores", "walks"), 0)
    free = dict(alloc)
    for _ in range(pairs):
        before = a.metrics.snapshot()
        addr = a.vmalloc(P)
        mid = a.metrics.snapshot()
        a.vfree(addr)
        after = a.metrics.snapshot()
        for k in alloc:
            alloc[k] += mid.get(k, 0) - before.get(k, 0)
            free[k] += after.get(k, 0) - mid.get(k, 0)
    out = {f"alloc.{k}": v / pairs for k, v in alloc.items()}
    out.update({f"free.{k}": v / pairs for k, v in free.items()})
    out.update({k: v / pairs for k, v in a.metrics.snapshot().items()})
    return out


# -- the series as data ---------------------------------------------------------


def test_stages_0_to_7_registered_with_patch_titles() -> None:
    reg = get_registry()
    titles = {reg.stage(n).number: reg.stage(n).title for n in MAPLE_STAGES}
    assert titles[1] == "mm/vmalloc: introduce maple_tree-based indexing for vmap_area"
    assert titles[7] == "mm/vmalloc: consolidate occupied tree as authoritative index on hot path"
    assert sorted(titles) == list(MAPLE_STAGES)


@pytest.mark.vmapsim_stages("0..7")
def test_struct_vmap_area_size_from_layout(stage: vmapsim.Stage) -> None:
    """Row 4: 72 bytes with the rb_node (through stage 3), 48 without it."""
    a = vmapsim.build(stage.number)
    assert a.struct_vmap_area_size == (72 if stage.number < 4 else 48)
    names = [m.name for _off, m in a.stage.layout.offsets()]
    assert ("rb_node" in names) == (stage.number < 4)


# -- stage 1: shadows and deferred bring-up ------------------------------------------


@pytest.mark.vmapsim_stages("0..7")
def test_allocation_before_init(stage: vmapsim.Stage) -> None:
    """Row 1: before vmalloc_init() stage 0 refuses (-EBUSY, as the kernel);
    from stage 1 the deferred bring-up runs on first use and the early
    vmlist areas are indexed then."""
    a = vmapsim.build(stage.number, init=False, debug=True)
    early = a.vm_area_register_early(3 * P, 2 * P)
    assert early.addr == a.vmalloc_start
    if stage.number == 0:
        with pytest.raises(VmapError) as exc:
            a.alloc_vmap_area(P, P, a.vmalloc_start, a.vmalloc_end)
        assert exc.value.errno == errno.EBUSY
        a.vmalloc_init()
    va = a.alloc_vmap_area(P, P, a.vmalloc_start, a.vmalloc_end)
    assert a.vmap_initialized
    assert va.va_start == a.vmalloc_start + 3 * P  # just above the early area
    found = a.find_vmap_area(early.addr + P)
    assert found is not None and found.vm is early
    a.check_invariants()


def test_stage1_shadow_is_checked_against_rb() -> None:
    """Row 1: the maple shadow holds the rb-tree's contents; debug checks say so."""
    a = vmapsim.build(1, debug=True)
    addrs = [a.vmalloc(n * P) for n in (1, 3, 7)]
    busy = a.vmap_nodes[0].busy
    assert [v.va_start for v in busy.primary] == [v.va_start for v in busy.mirror]
    busy.mirror.unlink(busy.mirror.find(addrs[1]))  # break the shadow
    with pytest.raises(InvariantError, match="shadow differs"):
        a.check_invariants()


def test_stage1_writes_both_structures() -> None:
    """Row 1: more work per op than stage 0 (maple stores and nodes on top of rb's)."""
    c0, c1 = _counts(0, 300), _counts(1, 300)
    assert c0["stores"] == 0 and c1["stores"] > 0
    assert c1["nodes_visited"] > c0["nodes_visited"]
    assert c1["augment_updates"] == c0["augment_updates"]  # rb still does all its work


# -- stage 2: the occupied tree answers the search -------------------------------------


def _fragmented(stage: int, holes: int, pairs: int = 100) -> dict[str, float]:
    """full_fit's pattern: ``holes`` one-page holes (page + guard) between busy
    areas, then one-page vmalloc+vfree pairs that land in them; counters per
    pair, alloc side only."""
    a = vmapsim.build(stage)
    junk = []
    for _ in range(holes):
        a.vmalloc(P)
        junk.append(a.vmalloc(P))
    for addr in junk:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    total = dict.fromkeys(("nodes_visited", "cache_lines", "walks", "stores"), 0)
    for _ in range(pairs):
        before = a.metrics.snapshot()
        addr = a.vmalloc(P)
        after = a.metrics.snapshot()
        a.vfree(addr)
        for k in total:
            total[k] += after.get(k, 0) - before.get(k, 0)
    return {k: v / pairs for k, v in total.items()}


def test_stage2_alloc_visits_fewer_nodes_than_stage1() -> None:
    """Row 2: with >= 1000 free blocks to search, the alloc side visits fewer
    nodes than stage 1 (one gap descent instead of the rb lowest-match walk).
    Cache lines do not drop under the memory model (docs/stages.md, row 2)."""
    c1, c2 = _fragmented(1, 3000), _fragmented(2, 3000)
    assert c2["nodes_visited"] < c1["nodes_visited"]


class _Spy:
    """Stands in for a component and records the query methods called on it."""

    QUERIES = frozenset(
        {
            "find",
            "find_unlink",
            "find_enclosing",
            "find_vmap_lowest_match",
            "next_block",
            "prev_block",
        }
    )

    def __init__(self, inner: object, calls: list[str]) -> None:
        self._inner = inner
        self._calls = calls

    def __getattr__(self, name: str) -> object:
        if name in self.QUERIES:
            self._calls.append(name)
        return getattr(self._inner, name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]


def _spy_rb(a: vmapsim.VmapAllocator) -> list[str]:
    """Put a spy in place of every rb-tree member of a shadowed pair."""
    calls: list[str] = []
    pairs = [a.free] + [vn.busy for vn in a.vmap_nodes] + [vn.lazy for vn in a.vmap_nodes]
    for pair in pairs:
        for member in ("primary", "mirror"):
            if type(getattr(pair, member)).__module__.startswith("vmapsim_rbtree"):
                setattr(pair, member, _Spy(getattr(pair, member), calls))
    return calls


def test_stage2_search_is_the_occupied_tree() -> None:
    """Row 2: the lowest fit comes from mas_empty_area; stage 1 asks the rb-tree."""
    a1, a2 = vmapsim.build(1), vmapsim.build(2)
    calls1, calls2 = _spy_rb(a1), _spy_rb(a2)
    assert a1.vmalloc(5 * P) == a2.vmalloc(5 * P)
    assert "find_vmap_lowest_match" in calls1
    assert calls2 == []


# -- stage 3: lookups on maple, rb only mirrored ----------------------------------------


@pytest.mark.parametrize(("stage", "rb_queried"), [(2, True), (3, False)])
def test_stage3_vfree_and_purge_do_not_query_rb(stage: int, rb_queried: bool) -> None:
    """Row 3: vfree and purge look nothing up in an rb-tree (rb is written as a mirror)."""
    a = vmapsim.build(stage, debug=True)
    addrs = [a.vmalloc(n * P) for n in range(1, 40)]
    calls = _spy_rb(a)
    for addr in addrs:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    assert bool(calls) == rb_queried


# -- stage 4: maple only -------------------------------------------------------------


@pytest.mark.parametrize("stage", [3, 4])
def test_stage4_no_rb_work(stage: int) -> None:
    """Row 4: zero rb operations (augment updates, rotations) once rb is gone."""
    c = _counts(stage, 200)
    if stage == 3:
        assert c["rotations"] > 0 or c["augment_updates"] > 0
    else:
        assert c["rotations"] == 0 and c["augment_updates"] == 0


# -- stage 5: failure handling under memory pressure ----------------------------------------


def _pressure(stage: int) -> vmapsim.VmapAllocator:
    """Non-blocking allocations while every non-blocking maple node allocation fails."""
    fs = FailslabConfig(probability=100, cache_filter={"maple_node"}, seed=3)
    a = vmapsim.build(stage, failslab=fs)
    got = []
    for n in range(1, 6):
        addr = a.vmalloc_node(n * P, P, gfp=int(vmapsim.kernel.gfp.GFP_ATOMIC))
        if addr is not None:
            got.append(addr)
    for addr in got:
        a.vfree(addr)
    return a


@pytest.mark.vmapsim_stages("1..4")
def test_stages_1_to_4_lose_areas_under_node_failure(stage: vmapsim.Stage) -> None:
    """Row 5 (modelled defect): a publish that cannot get maple nodes loses the area."""
    a = _pressure(stage.number)
    assert a.metrics.publish_lost > 0
    assert any("Trying to vfree() nonexistent vm area" in m for m in a.log)
    with pytest.raises(InvariantError, match="lost"):
        a.check_invariants()


@pytest.mark.vmapsim_stages("0,5..7")
def test_stage5_on_loses_nothing_under_node_failure(stage: vmapsim.Stage) -> None:
    """Row 5: the retry queue keeps a failed publish; lookups see it; nothing leaks."""
    a = _pressure(stage.number)
    assert a.metrics.publish_lost == 0
    assert not any("nonexistent" in m for m in a.log)
    a.check_invariants()
    assert not a.vmap_retry_queue


def test_stage5_retry_queue_is_published_by_a_later_call() -> None:
    """Row 5: a publish that cannot get its nodes parks the area where lookups
    see it, and the next call publishes it once nodes can be had again."""
    a = vmapsim.build(5, debug=True)
    # armed after bring-up: every non-blocking maple node allocation fails
    a.faults.configure(FailslabConfig(probability=100, cache_filter={"maple_node"}))
    parked = None
    for n in range(1, 60):
        addr = a.vmalloc_node(n * P, P, gfp=int(vmapsim.kernel.gfp.GFP_ATOMIC))
        if a.vmap_retry_queue:
            parked = addr
            break
    assert parked is not None, "no publish needed a node in 60 tries"
    assert a.find_vmap_area(parked) is a.vmap_retry_queue[0]
    a.faults.configure(FailslabConfig())  # the pressure is gone
    assert a.vmalloc(P) is not None  # a later call publishes it
    assert not a.vmap_retry_queue and a.metrics.publish_retried == 1
    assert a.find_vmap_area(parked).va_start == parked
    a.vfree(parked)
    assert not any("nonexistent" in m for m in a.log)


# -- stage 6: one store trims a free-area entry -----------------------------------------


def test_stage6_clip_takes_fewer_stores_and_nodes() -> None:
    c5, c6 = _counts(5, 500), _counts(6, 500)
    assert c6["alloc.stores"] < c5["alloc.stores"]
    assert c6["alloc.nodes_visited"] < c5["alloc.nodes_visited"]


# -- stage 7: the occupied tree is authoritative on the hot path ----------------------------


def test_stage7_alloc_is_one_descent_and_one_store() -> None:
    a = vmapsim.build(7)
    for _ in range(500):
        a.vmalloc(P)
    a.metrics.reset()
    addr = a.vmalloc(3 * P)
    assert (a.metrics.walks, a.metrics.stores) == (1, 1)
    assert a.free is None
    a.vfree(addr)
    c6, c7 = _counts(6, 500), _counts(7, 500)
    assert c7["alloc.walks"] < c6["alloc.walks"]


# -- every stage: same trace as stage 0 -------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_traces_equal_stage0_for_align_up_to_page(seed: int) -> None:
    """Ledger: stages 0-7 hand out the same addresses in the same order
    (windows, vm_unmap_aliases, the shrinker and purges included)."""
    ref, a0 = run_trace(0, seed=seed)
    for stage in range(1, 8):
        got, a = run_trace(stage, seed=seed)
        assert got == ref, f"stage {stage} diverges at step {_first_diff(ref, got)}"
        a.check_invariants()
        assert a.log == a0.log


def _first_diff(a: list[object], b: list[object]) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


# -- align > PAGE_SIZE: the over-ask, by design ---------------------------------------


def test_big_align_traces_stage1_equals_0_and_2_to_7_agree() -> None:
    """Above PAGE_SIZE the occupied tree over-asks (mas_empty_area for size +
    align - 1), where the rb-tree's pruned walk may settle lower: stage 1
    (rb answers) keeps stage 0's trace, stages 2-7 share one trace of their
    own (docs/stages.md, "Alignment above PAGE_SIZE")."""
    for seed in (1, 3):
        ref0, _ = run_trace(0, seed=seed, big_align=True, nr_ops=300)
        got1, _ = run_trace(1, seed=seed, big_align=True, nr_ops=300)
        assert got1 == ref0
        ref2, _ = run_trace(2, seed=seed, big_align=True, nr_ops=300)
        assert ref2 != ref0  # the workload does reach a placement that differs
        for stage in range(3, 8):
            got, a = run_trace(stage, seed=seed, big_align=True, nr_ops=300)
            assert got == ref2, f"stage {stage}"
            a.check_invariants()


def _over_ask(free: list[tuple[int, int]], size: int, align: int, vstart: int, vend: int) -> int:
    """The documented rule: the lowest free range whose part in the window
    holds ``size + align - 1`` gives ``ALIGN(max(start, vstart))``; failing
    that, the lowest aligned fit in the window."""
    fits = []
    for s, e in free:
        lo, hi = max(s, vstart), min(e, vend)
        nva = (lo + align - 1) & -align
        if hi - lo >= size + align - 1:
            return nva
        if nva + size <= hi:
            fits.append(nva)
    return fits[0]


def test_narrow_window_above_page_size_falls_back_to_the_exact_fit() -> None:
    """A window narrower than size + align - 1 holds no over-ask, but an
    aligned fit: stage 0 finds it, so must the occupied tree (stage 2 on)."""
    for stage in (0, 2, 7):
        a = vmapsim.build(stage, debug=True)
        vstart = a.vmalloc_start + (1 << 30)
        va = a.alloc_vmap_area(P, 2 * P, vstart, vstart + 2 * P - 1)
        assert va.va_start == vstart, stage


@pytest.mark.parametrize("stage", [2, 4, 7])
def test_big_align_placement_is_the_lowest_over_asked_gap(stage: int) -> None:
    """The rule the occupied tree follows above PAGE_SIZE, checked from the
    free space seen before each call: the lowest free range that holds size +
    align - 1 bytes at or above vstart gives nva = ALIGN(max(start, vstart), align)."""
    import random

    rng = random.Random(stage)
    a = vmapsim.build(stage)
    live: list[int] = []
    checked = 0
    for _ in range(400):
        if live and rng.random() < 0.4:  # keep the free space fragmented
            a.vfree(live.pop(rng.randrange(len(live))))
            continue
        if rng.random() < 0.5:
            live.append(a.vmalloc(rng.randint(1, 12) * P))
            continue
        size = rng.randint(1, 30) * P
        align = P << rng.randint(1, 7)
        vstart, vend = a.vmalloc_start, a.vmalloc_end
        free = [(v.va_start, v.va_end) for v in a.free_areas()]
        purges = a.metrics.purges
        va = a.alloc_vmap_area(size, align, vstart, vend)
        if a.metrics.purges == purges:  # no purge-and-retry changed the free space
            assert va.va_start == _over_ask(free, size, align, vstart, vend)
            checked += 1
        a.free_vmap_area_noflush(va)
    assert checked > 50
    a.check_invariants()
