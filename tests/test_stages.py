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
from vmapsim.plugins import get_registry

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


@pytest.mark.parametrize("stage", MAPLE_STAGES)
def test_struct_vmap_area_size_from_layout(stage: int) -> None:
    """Row 4: 72 bytes with the rb_node (through stage 3), 48 without it."""
    a = vmapsim.build(stage)
    assert a.struct_vmap_area_size == (72 if stage < 4 else 48)
    names = [m.name for _off, m in a.stage.layout.offsets()]
    assert ("rb_node" in names) == (stage < 4)


# -- stage 1: shadows and deferred bring-up ------------------------------------------


@pytest.mark.parametrize("stage", [0, 1, 4, 7])
def test_allocation_before_init(stage: int) -> None:
    """Row 1: before vmalloc_init() stage 0 refuses (-EBUSY, as the kernel);
    from stage 1 the deferred bring-up runs on first use and the early
    vmlist areas are indexed then."""
    a = vmapsim.build(stage, init=False, debug=True)
    early = a.vm_area_register_early(3 * P, 2 * P)
    assert early.addr == a.vmalloc_start
    if stage == 0:
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


def test_stage2_alloc_reads_less_than_stage1() -> None:
    """Row 2: at >= 1000 live areas the alloc side visits fewer nodes and
    touches fewer cache lines than stage 1."""
    c1, c2 = _counts(1, 1500), _counts(2, 1500)
    assert c2["alloc.nodes_visited"] < c1["alloc.nodes_visited"]
    assert c2["alloc.cache_lines"] < c1["alloc.cache_lines"]


def test_stage2_search_is_the_occupied_tree() -> None:
    a = vmapsim.build(2, debug=True)
    calls = []
    rb = a.free.mirror  # stage 2: maple answers the free-block lookups, rb follows
    orig = rb.find_vmap_lowest_match
    rb.find_vmap_lowest_match = lambda *args: calls.append(args) or orig(*args)  # type: ignore[method-assign]
    assert a.vmalloc(5 * P) is not None
    assert calls == []
    b = vmapsim.build(1)
    rb1 = b.free.primary
    orig1 = rb1.find_vmap_lowest_match
    rb1.find_vmap_lowest_match = lambda *args: calls.append(args) or orig1(*args)  # type: ignore[method-assign]
    assert b.vmalloc(5 * P) is not None
    assert len(calls) == 1


# -- stage 3: lookups on maple, rb only mirrored ----------------------------------------


@pytest.mark.parametrize(("stage", "rb_queried"), [(2, True), (3, False)])
def test_stage3_vfree_and_purge_do_not_query_rb(stage: int, rb_queried: bool) -> None:
    """Row 3: vfree and purge look nothing up in an rb-tree (rb is written as a mirror)."""
    a = vmapsim.build(stage, debug=True)
    addrs = [a.vmalloc(n * P) for n in range(1, 40)]
    queried: list[str] = []
    rbs = [vn.busy for vn in a.vmap_nodes] + [vn.lazy for vn in a.vmap_nodes] + [a.free]
    for pair in rbs:
        rb = (
            pair.primary
            if type(pair.primary).__module__.startswith("vmapsim_rbtree")
            else pair.mirror
        )
        for name in ("find", "find_unlink", "lookup", "find_enclosing", "find_vmap_lowest_match"):
            if hasattr(rb, name):
                orig = getattr(rb, name)

                def spy(*args, _orig=orig, _name=name):  # type: ignore[no-untyped-def]
                    queried.append(_name)
                    return _orig(*args)

                setattr(rb, name, spy)
    for addr in addrs:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    assert bool(queried) == rb_queried


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
        addr = a.vmalloc_node(n * P, P, gfp=int(vmapsim.gfp.GFP_ATOMIC))
        if addr is not None:
            got.append(addr)
    for addr in got:
        a.vfree(addr)
    return a


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_stages_1_to_4_lose_areas_under_node_failure(stage: int) -> None:
    """Row 5 (modelled defect): a publish that cannot get maple nodes loses the area."""
    a = _pressure(stage)
    assert a.metrics.publish_lost > 0
    assert any("Trying to vfree() nonexistent vm area" in m for m in a.log)
    with pytest.raises(InvariantError, match="lost"):
        a.check_invariants()


@pytest.mark.parametrize("stage", [0, 5, 6, 7])
def test_stage5_on_loses_nothing_under_node_failure(stage: int) -> None:
    """Row 5: the retry queue keeps a failed publish; lookups see it; nothing leaks."""
    a = _pressure(stage)
    assert a.metrics.publish_lost == 0
    assert not any("nonexistent" in m for m in a.log)
    a.check_invariants()
    assert not a.vmap_retry_queue


def test_stage5_retry_queue_is_published_by_a_later_call() -> None:
    fs = FailslabConfig(probability=100, times=1, cache_filter={"maple_node"}, seed=1)
    a = vmapsim.build(5, failslab=fs, debug=True)
    addr = a.vmalloc_node(2 * P, P, gfp=int(vmapsim.gfp.GFP_ATOMIC))
    assert addr is not None and len(a.vmap_retry_queue) == 1
    assert a.find_vmap_area(addr) is a.vmap_retry_queue[0]
    assert a.vmalloc(P) is not None  # a later call publishes it
    assert not a.vmap_retry_queue and a.metrics.publish_retried == 1
    a.vfree(addr)
    a.check_invariants()


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
