"""free=maple: free blocks as maple ranges, against a sorted-list model and the rb-tree."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmapsim
from vmapsim import PAGE_SIZE as P
from vmapsim import ULONG_MAX, ComponentContext, Counters, FaultInjector, VmapArea
from vmapsim.framework.registry import get_registry
from vmapsim_mapletree.vmap_free import MapleFreeIndex
from vmapsim_rbtree.free import RbFreeIndex

BASE = 0x10_0000


def _free(store_null=False, faults=None):
    log: list[str] = []
    ctx = ComponentContext(
        role="free",
        node_id=None,
        counters=Counters(),
        warn=log.append,
        nr_vmap_nodes=1,
        params={"va_clip_store_null": store_null},
        faults=faults or FaultInjector(),
        shared={},
    )
    free = get_registry().component("free", "maple").factory(ctx)
    assert ctx.shared["free"] is free
    return free, ctx.counters, log


def _blocks(n, stride=4, length=2):
    return [VmapArea(BASE + k * stride * P, BASE + (k * stride + length) * P) for k in range(n)]


def _bounds(index):
    return [(v.va_start, v.va_end) for v in index]


def _lowest(model, size, align, vstart):
    """The lowest block that can hold the request at/above vstart (an oracle)."""
    for s, e in sorted(model.values()):
        nva = (max(s, vstart) + align - 1) & ~(align - 1)
        if nva >= vstart and nva + size <= e:
            return (s, e)
    return None


def test_free_maple_fills_the_free_index_protocol():
    free, _, _ = _free()
    assert isinstance(free, vmapsim.FreeIndex) and isinstance(free, MapleFreeIndex)
    assert free.first() is None and free.last() is None and len(free) == 0
    free.check()


def test_insert_refuses_an_overlap_with_the_kernel_warning():
    free, _, log = _free()
    a = VmapArea(BASE, BASE + 4 * P)
    assert free.insert(a)
    clash = VmapArea(BASE + 3 * P, BASE + 6 * P)
    assert not free.insert(clash, a)
    assert log == [
        f"vmalloc bug: {clash.va_start:#x}-{clash.va_end:#x} overlaps with "
        f"{a.va_start:#x}-{a.va_end:#x}"
    ]
    assert _bounds(free) == [(a.va_start, a.va_end)] and len(free) == 1
    free.check()


def test_navigation_leaves_the_list_fields_to_the_rb_tree():
    free, _, _ = _free()
    marker = VmapArea(0, 0)
    blocks = _blocks(300)
    for va in blocks:
        va.list_next = va.list_prev = marker
        assert free.insert(va)
    assert free.tree.height > 1
    assert free.first() is blocks[0] and free.last() is blocks[-1]
    for i, va in enumerate(blocks):
        assert free.next_block(va) is (blocks[i + 1] if i + 1 < len(blocks) else None)
        assert free.prev_block(va) is (blocks[i - 1] if i else None)
        assert free.find_enclosing(va.va_end - 1) is va
        assert free.find_enclosing(va.va_end) is None
    for va in blocks[::3]:
        free.unlink(va)
    assert all(va.list_next is marker and va.list_prev is marker for va in blocks)
    assert _bounds(free) == [(v.va_start, v.va_end) for i, v in enumerate(blocks) if i % 3]
    free.check()


# ---------------------------------------------------------------------------
# contents against a model

_ops = st.lists(
    st.tuples(
        st.sampled_from(["insert", "unlink", "le", "re", "ne", "grow_up", "grow_down", "find"]),
        st.integers(0, 120),
        st.integers(1, 6),
    ),
    max_size=80,
)


@pytest.mark.parametrize("store_null", [False, True])
@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_contents_match_a_sorted_model(store_null, ops):
    free, _, log = _free(store_null)
    model: dict[int, tuple[int, int]] = {}  # id(va) -> bounds
    areas: dict[int, VmapArea] = {}

    def overlaps(s, e, skip=None):
        return any(s < be and bs < e for k, (bs, be) in model.items() if k != skip)

    for kind, page, n in ops:
        vas = sorted(areas.values(), key=lambda v: v.va_start)
        if kind == "insert":
            va = VmapArea(BASE + page * P, BASE + (page + n) * P)
            ok = free.insert(va)
            assert ok == (not overlaps(va.va_start, va.va_end))
            if ok:
                model[id(va)] = (va.va_start, va.va_end)
                areas[id(va)] = va
            else:
                assert log[-1].startswith("vmalloc bug: ")
        elif kind == "find":
            align = [1, P, 4 * P][n % 3]
            got = free.find_vmap_lowest_match(n * P, align, BASE + page * P, False)
            want = _lowest(model, n * P, align, BASE + page * P)
            assert (None if got is None else (got.va_start, got.va_end)) == want
        elif vas:
            va = vas[page % len(vas)]
            size = va.va_end - va.va_start
            if kind == "unlink":
                free.unlink(va)
                del model[id(va)], areas[id(va)]
            elif kind in ("le", "re") and size > n * P:
                if kind == "le":
                    va.va_start += n * P
                else:
                    va.va_end -= n * P
                free.propagate(va)
                model[id(va)] = (va.va_start, va.va_end)
            elif kind == "ne" and size > (n + 2) * P:
                # va_clip NE: the block keeps the top, a new one the bottom
                lva = VmapArea(va.va_start, va.va_start + P)
                va.va_start += (n + 1) * P
                free.propagate(va)
                assert free.insert(lva, va)
                model[id(va)] = (va.va_start, va.va_end)
                model[id(lva)] = (lva.va_start, lva.va_end)
                areas[id(lva)] = lva
            elif kind == "grow_up" and not overlaps(va.va_end, va.va_end + n * P, id(va)):
                va.va_end += n * P
                free.propagate(va)
                model[id(va)] = (va.va_start, va.va_end)
            elif (
                kind == "grow_down"
                and va.va_start - n * P > BASE
                and not overlaps(va.va_start - n * P, va.va_start, id(va))
            ):
                va.va_start -= n * P
                free.propagate(va)
                model[id(va)] = (va.va_start, va.va_end)
        assert _bounds(free) == sorted(model.values())
        assert len(free) == len(model)
        free.check()


# ---------------------------------------------------------------------------
# the rb-tree's answer


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(1, 3000), min_size=2, max_size=120, unique=True),
    st.lists(
        st.tuples(st.integers(1, 40), st.sampled_from([1, 8, 512, P]), st.integers(0, 3200)),
        min_size=1,
        max_size=20,
    ),
)
def test_lowest_match_is_the_rb_tree_one_for_align_up_to_a_page(cuts, queries):
    cuts = sorted(cuts)
    free, _, _ = _free()
    rb = RbFreeIndex(Counters(), lambda m: None)
    for i in range(0, len(cuts) - 1, 2):
        s, e = BASE + cuts[i] * 8, BASE + cuts[i + 1] * 8
        assert free.insert(VmapArea(s, e)) and rb.insert(VmapArea(s, e))
    for n, align, a in queries:
        size, vstart = n * 8, BASE + a * 8 - (a % 5)
        got = free.find_vmap_lowest_match(size, align, vstart, False)
        want = rb.find_vmap_lowest_match(size, align, vstart, False)
        assert _span(got) == _span(want)


def _span(va):
    return None if va is None else (va.va_start, va.va_end)


def test_lowest_match_scans_and_counts_what_it_tests():
    free, c, _ = _free()
    for va in _blocks(200, stride=4, length=1):
        free.insert(va)
    big = VmapArea(BASE + 1000 * P, BASE + 1010 * P)
    free.insert(big)
    c.reset()
    assert free.find_vmap_lowest_match(5 * P, P, BASE, False) is big
    assert c.comparisons >= 201  # every one-page block below was tested
    c.reset()
    assert free.find_vmap_lowest_match(P, P, BASE + 40 * P, False).va_start == BASE + 40 * P
    assert c.walks == 1 and c.stores == 0  # the block holding vstart: one mas_find walk


# ---------------------------------------------------------------------------
# va_clip's cost: one store of NULL versus erase + restore


def _clip_costs(store_null, kind):
    free, c, _ = _free(store_null)
    blocks = _blocks(400, stride=8, length=6)
    for va in blocks:
        free.insert(va)
    assert free.tree.height > 1
    per = []
    for va in blocks[::9]:
        c.reset()
        if kind == "le":
            va.va_start += P
        elif kind == "re":
            va.va_end -= P
        else:  # a merge growing the block upwards
            va.va_end += P
        free.propagate(va)
        per.append((c.walks, c.stores, c.nodes_visited))
    free.check()
    assert _bounds(free) == [(v.va_start, v.va_end) for v in blocks]
    return per


@pytest.mark.parametrize("kind", ["le", "re", "grow"])
def test_clip_is_one_store_with_va_clip_store_null(kind):
    pairs = _clip_costs(False, kind)
    single = _clip_costs(True, kind)
    for (w2, s2, n2), (w1, s1, n1) in zip(pairs, single, strict=True):
        assert (s2, s1) == (2, 1)  # erase + restore versus one store
        assert w2 > w1 >= 1 and n2 > n1  # the restore walks again
    # a clip inside one leaf: the lookup's walk is all (a write that crosses a
    # leaf boundary walks again inside the tree, in both modes)
    typical = [(w2, w1) for (w2, _, _), (w1, _, _) in zip(pairs, single, strict=True)]
    assert typical.count((2, 1)) > len(typical) * 3 // 4


def test_propagate_finds_a_block_by_either_end():
    free, _, _ = _free(True)
    a, b = VmapArea(BASE, BASE + 2 * P), VmapArea(BASE + 4 * P, BASE + 6 * P)
    free.insert(a)
    free.insert(b)
    b.va_start = a.va_end  # grows downwards: only va_end - 1 is still stored
    free.propagate(b)
    a.va_end = BASE + P
    free.propagate(a)
    assert _bounds(free) == [(BASE, BASE + P), (BASE + 2 * P, BASE + 6 * P)]
    stray = VmapArea(BASE + 10 * P, BASE + 11 * P)
    with pytest.raises(vmapsim.InvariantError, match="not in the index"):
        free.propagate(stray)
    free.check()


# ---------------------------------------------------------------------------
# in the flow, with the generic coalescer


def _run(components, nr_cpus=2, seed=5, nr_ops=3000):
    """A vmalloc/vfree mix with align <= PAGE_SIZE (where the trace must be the kernel's)."""
    a = vmapsim.build(0, nr_cpus=nr_cpus, seed=seed, components=components)
    rng = random.Random(seed)
    live: list[int] = []
    trace = []
    for _ in range(nr_ops):
        if live and rng.random() < 0.45:
            a.vfree(live.pop(rng.randrange(len(live))), cpu=rng.randrange(nr_cpus))
        else:
            size = rng.choice([1, 1, 2, 3, 4, 8, 16, 64, 300]) * P
            trace.append(a.vmalloc(size, cpu=rng.randrange(nr_cpus)))
            live.append(trace[-1])
    a.purge_vmap_area_lazy()
    a.check_invariants()
    state = (
        [(v.va_start, v.va_end) for v in a.free_areas()],
        [(v.va_start, v.va_end) for v in a.busy_areas()],
        [(v.va_start, v.va_end) for v in a.pooled_areas()],
    )
    return trace, state, a.log, a.metrics


def test_free_maple_with_the_generic_coalescer_gives_the_kernel_results():
    rb = _run({})
    mt = _run({"free": "maple", "coalesce": "generic"})
    assert rb[:3] == mt[:3]
    assert rb[3]["purges"] > 0 and mt[3]["augment_updates"] == 0 < rb[3]["augment_updates"]
    assert mt[3]["node_allocs"] > 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 3000), min_size=2, max_size=120, unique=True),
    st.lists(
        st.tuples(
            st.integers(1, 40), st.sampled_from([2 * P, 8 * P, 64 * P]), st.integers(0, 3200)
        ),
        min_size=1,
        max_size=20,
    ),
)
def test_over_ask_places_as_the_occupied_tree_does(cuts, queries):
    from vmapsim_mapletree.vmap_occupied import MapleOccupiedIndex

    cuts = sorted(cuts)
    free, _, _ = _free()
    occ = MapleOccupiedIndex(Counters(), lambda m: None)
    pos = 1
    for i in range(0, len(cuts) - 1, 2):
        s, e = BASE + cuts[i] * P, BASE + cuts[i + 1] * P
        assert free.insert(VmapArea(s, e))
        assert occ.occupy(pos, s, True) == 0
        pos = e
    assert occ.occupy(pos, ULONG_MAX, True) == 0
    for n, align, a in queries:
        size, vstart = n * P, BASE + a * P
        va = free.find_vmap_lowest_match(size, align, vstart, True)
        nva = occ.find_lowest_fit(size, align, vstart, ULONG_MAX, True)
        if va is None:
            assert nva < 0
        else:
            assert nva == (max(va.va_start, vstart) + align - 1) & ~(align - 1)


@pytest.mark.parametrize("store_null", [False, True])
def test_free_maple_flow_in_debug_mode(store_null):
    rng = random.Random(2)
    a = vmapsim.build(0, nr_cpus=1, debug=True, components={"free": "maple", "coalesce": "generic"})
    a.free.clip_store_null = store_null
    live = []
    for _ in range(400):
        if live and rng.random() < 0.45:
            a.vfree(live.pop(rng.randrange(len(live))))
        else:
            live.append(a.vmalloc(rng.choice([1, 2, 5, 17]) * P))
    a.purge_vmap_area_lazy()
    assert isinstance(a.free, MapleFreeIndex)
    assert list(a.free)[-1].va_end == ULONG_MAX


def test_free_index_writes_are_blocking_and_survive_failslab():
    faults = vmapsim.FaultInjector(vmapsim.FailslabConfig(probability=100))
    free, _, _ = _free(True, faults)
    blocks = _blocks(300, stride=4, length=3)
    for va in blocks:
        assert free.insert(va)
    for va in blocks[::2]:
        va.va_start += P
        free.propagate(va)
    for va in blocks[1::4]:
        free.unlink(va)
    assert faults.failures > 0  # the GFP_NOWAIT first tries failed; the retries did not
    kept = [v for i, v in enumerate(blocks) if i % 4 != 1]
    assert _bounds(free) == [(v.va_start, v.va_end) for v in kept]
    free.check()
