"""Node allocation failures: ENOMEM leaves the tree untouched, preallocation
is all-or-nothing, and a store after a successful preallocation cannot fail."""

from __future__ import annotations

import errno
import random

import pytest
from maple_oracle import IntervalMap

from vmapsim import FailslabConfig, FaultInjector
from vmapsim_mapletree import MapleError, MapleTree
from vmapsim_mapletree.node import MAPLE_LEAF64


def _tree(alloc: bool, faults: FaultInjector | None, count: int = 400) -> MapleTree:
    t = MapleTree(alloc, faults=faults)
    for i in range(count):
        t.store_range(4 * i, 4 * i + 1, f"e{i}")  # blocking: never fails
    return t


def _snapshot(t: MapleTree) -> tuple[list, int, int]:
    return list(t.ranges(include_null=True)), t.height, t.allocator.live


def _split_target(t: MapleTree) -> int:
    """First index of a 2-index entry in a full leaf: storing there splits it."""
    stack = [(t.root, 0)]
    while stack:
        node, mn = stack.pop()
        if node.type == MAPLE_LEAF64:
            if len(node.slots) == 16:
                start = mn
                for p, s in zip(node.pivots, node.slots, strict=True):
                    if s is not None and p > start:
                        return start
                    start = p + 1
            continue
        starts = [mn, *(p + 1 for p in node.pivots[:-1])]
        stack.extend(zip(node.slots, starts, strict=True))
    raise AssertionError("no full leaf")


@pytest.mark.parametrize("alloc", [False, True])
@pytest.mark.parametrize(
    ("first", "last", "entry"),
    [
        (None, None, "split"),  # one more slot in a full leaf: split
        (1, 900, "span"),  # spanning store
        (0, 1000, None),  # spanning NULL store
        (5, 5, None),  # erase in a sparse leaf: rebalance
    ],
)
def test_nonblocking_store_enomem_leaves_tree_identical(alloc, first, last, entry) -> None:
    faults = FaultInjector(FailslabConfig(probability=100))
    t = _tree(alloc, faults)
    if first is None:
        first = last = _split_target(t)
    elif first == 5:
        # Erase (blocking) until erasing the next entry would leave its leaf
        # below mt_min_slots; preallocate() reports the store type.
        for i in range(1, 400):
            probe = t.state(4 * i, 4 * i + 1)
            probe.preallocate(None)
            kind = probe.store_type
            probe.destroy()
            if kind == "wr_rebalance":
                first, last = 4 * i, 4 * i + 1
                break
            t.erase(4 * i)
    before = _snapshot(t)
    allocs = t.counters.node_allocs
    mas = t.state(first, last)
    with pytest.raises(MapleError) as e:
        mas.store(entry)
    assert e.value.errno == errno.ENOMEM
    assert mas.store_type in {"wr_split_store", "wr_spanning_store", "wr_rebalance"}
    assert _snapshot(t) == before
    assert t.counters.node_allocs == allocs
    assert t.allocator.reserved == 0
    t.check()
    with pytest.raises(MapleError):
        t.store_range(first, last, entry, can_block=False)
    assert _snapshot(t) == before
    t.store_range(first, last, entry)  # may block: failslab ignores it
    t.check()


def test_store_that_needs_no_node_succeeds_under_failslab() -> None:
    faults = FaultInjector(FailslabConfig(probability=100))
    t = _tree(True, faults)
    mas = t.state(4, 5)
    assert mas.store("exact") == "e1"  # exact fit: no allocation
    assert t.load(4) == "exact"
    t.check()


@pytest.mark.parametrize("alloc", [False, True])
def test_preallocate_fails_cleanly_and_store_prealloc_never_fails(alloc) -> None:
    faults = FaultInjector(FailslabConfig(probability=100))
    t = _tree(alloc, faults)
    before = _snapshot(t)
    mas = t.state(1, 900)
    with pytest.raises(MapleError) as e:
        mas.preallocate("span", can_block=False)
    assert e.value.errno == errno.ENOMEM
    assert _snapshot(t) == before and mas.reserved == 0 and t.allocator.reserved == 0
    mas.preallocate("span", can_block=True)
    assert mas.reserved == 3 * t.height + 1  # spanning store worst case
    mas.store_prealloc("span")  # no allocation happens here
    assert mas.reserved == 0 and t.allocator.reserved == 0
    assert t.load(500) == "span"
    c = t.counters
    assert c.node_allocs - c.node_frees == t.allocator.live
    t.check()


def test_destroy_returns_unused_preallocation() -> None:
    t = _tree(True, None)
    mas = t.state(2, 2)
    mas.preallocate("x")
    reserved = mas.reserved
    frees = t.counters.node_frees
    mas.destroy()
    assert t.counters.node_frees - frees == reserved
    assert t.allocator.reserved == 0


@pytest.mark.parametrize("alloc", [False, True])
def test_random_failures_match_the_oracle(alloc) -> None:
    """Half the non-blocking stores fail; only successful ones are applied."""
    rng = random.Random(7)
    faults = FaultInjector(FailslabConfig(probability=50, seed=3))
    t = MapleTree(alloc, faults=faults)
    oracle = IntervalMap()
    failures = 0
    for _ in range(3000):
        first = rng.randrange(5000)
        last = first + rng.choice([0, 1, 5, 40, 400])
        entry = rng.choice([None, "a", "b", "c"])
        mas = t.state(first, last)
        try:
            mas.store(entry)
        except MapleError as err:
            assert err.errno == errno.ENOMEM
            failures += 1
        else:
            oracle.store(first, last, entry)
        assert list(t.ranges()) == oracle.items
    t.check()
    assert failures > 0


# ---------------------------------------------------------------------------
# mas_insert preallocates for the store before it checks the range (6.12+)


@pytest.mark.parametrize("alloc", [False, True])
def test_occupied_spanning_insert_obtains_and_returns_the_store_nodes(alloc) -> None:
    # mtree_insert_range -> mas_insert: mas_wr_preallocate classifies the write
    # as a store (here a spanning one found at the root, so no vacant or
    # sufficient node above it: 3h+1 nodes by mas_prealloc_calc) and
    # obtains the nodes; only then is the range found occupied (EEXIST), and
    # mas_destroy gives them all back.
    t = _tree(alloc, None)
    h = t.height
    assert h >= 2
    before = _snapshot(t)
    c = t.counters
    allocs, frees = c.node_allocs, c.node_frees
    with pytest.raises(MapleError) as e:
        t.insert_range(1, 900, "x")
    assert e.value.errno == errno.EEXIST
    assert c.node_allocs - allocs == 3 * h + 1
    assert c.node_frees - frees == 3 * h + 1
    assert _snapshot(t) == before
    t.check()


def test_occupied_insert_that_needs_no_node_allocates_nothing() -> None:
    # Over exactly one entry the store would be an exact fit: no nodes asked
    # for, so even a failing allocator gives EEXIST.
    t = _tree(False, None)
    t.allocator.faults = FaultInjector(FailslabConfig(probability=100, ignore_gfp_wait=False))
    c = t.counters
    allocs = c.node_allocs
    with pytest.raises(MapleError) as e:
        t.insert_range(8, 9, "x")  # e2 lives at [8, 9]
    assert e.value.errno == errno.EEXIST
    assert c.node_allocs == allocs


@pytest.mark.parametrize("alloc", [False, True])
def test_occupied_spanning_insert_is_enomem_when_no_node_can_be_had(alloc) -> None:
    # The preallocation fails first (non-blocking, then blocking through
    # mas_nomem), so the insert reports ENOMEM, not EEXIST.
    t = _tree(alloc, None)
    t.allocator.faults = FaultInjector(FailslabConfig(probability=100, ignore_gfp_wait=False))
    before = _snapshot(t)
    with pytest.raises(MapleError) as e:
        t.insert_range(1, 900, "x")
    assert e.value.errno == errno.ENOMEM
    assert _snapshot(t) == before
    mas = t.state(1, 900)
    with pytest.raises(MapleError) as e:
        mas.insert("x")
    assert e.value.errno == errno.ENOMEM
    assert mas.status.name == "ma_error"
    assert _snapshot(t) == before
    t.check()
