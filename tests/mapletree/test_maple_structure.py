"""Structural behaviour of the maple tree: node types, fill thresholds,
splits, pushes, rebalances, height, the root-pointer case, ZERO_ENTRY and
argument errors — each asserted from the kernel's rules, not from output."""

from __future__ import annotations

import errno

import pytest

from vmapsim import Counters
from vmapsim_mapletree import ZERO_ENTRY, MapleError, MapleNode, MapleState, MapleTree, MaStatus
from vmapsim_mapletree.node import MAPLE_ARANGE64, MAPLE_LEAF64, MAPLE_RANGE64, ULONG_MAX


def _nodes(tree: MapleTree) -> list[tuple[MapleNode, int]]:
    out = []
    stack = [(tree.root, 1)] if tree.root is not None else []
    while stack:
        node, depth = stack.pop()
        out.append((node, depth))
        if node.type != MAPLE_LEAF64:
            stack.extend((c, depth + 1) for c in node.slots)
    return out


def _fill_alternate(tree: MapleTree, count: int, start: int = 0) -> None:
    """Entries at start, start+2, ...: each entry is followed by a NULL slot."""
    for i in range(count):
        tree.store_range(start + 2 * i, start + 2 * i, f"e{i}")


# ---------------------------------------------------------------------------
# root pointer and first leaf


def test_empty_tree_has_height_0_and_reads_null() -> None:
    t = MapleTree()
    assert t.height == 0 and t.root is None
    assert t.load(0) is None and t.load(ULONG_MAX) is None
    mas = t.state(5)
    assert mas.walk() is None and (mas.index, mas.last) == (0, ULONG_MAX)
    t.check()


def test_single_entry_at_zero_lives_in_the_root_pointer() -> None:
    t = MapleTree()
    t.store_range(0, 0, "x")
    assert t.height == 0 and t.root is None and t.load(0) == "x"
    assert t.counters.node_allocs == 0
    mas = t.state(7)
    assert mas.walk() is None and (mas.index, mas.last) == (1, ULONG_MAX)
    t.store_range(5, 9, "y")  # root expansion into a leaf
    assert t.height == 1 and t.root.type == MAPLE_LEAF64
    assert list(t) == [(0, 0, "x"), (5, 9, "y")]
    t.check()


def test_zero_entry_is_never_kept_in_the_root_pointer() -> None:
    t = MapleTree()
    t.store_range(0, 0, ZERO_ENTRY)
    assert t.height == 1 and t.root is not None
    t.check()


def test_erasing_the_last_entry_empties_the_tree() -> None:
    t = MapleTree()
    t.store_range(10, 20, "x")
    assert t.height == 1
    assert t.erase(15) == "x"
    assert t.height == 0 and t.root is None
    assert t.counters.node_frees == t.counters.node_allocs
    t.check()


# ---------------------------------------------------------------------------
# split, push, rebalance, height


@pytest.mark.parametrize("alloc", [False, True])
def test_sixteen_slots_fit_one_leaf_and_the_seventeenth_splits(alloc: bool) -> None:
    t = MapleTree(alloc)
    _fill_alternate(t, 8)  # e,NULL x 8 = 16 slots, the last NULL runs to ULONG_MAX
    assert t.height == 1 and len(t.root.slots) == 16
    assert t.counters.splits == 0
    t.store_range(16, 16, "e8")  # [15] NULL, [16] e8, [17, MAX] NULL: 18 slots
    assert t._mas.store_type == "wr_split_store"
    assert t.height == 2
    assert t.counters.splits == 1
    root = t.root
    assert root.type == (MAPLE_ARANGE64 if alloc else MAPLE_RANGE64)
    assert len(root.slots) == 2
    left, right = root.slots
    # mab_calc_split since 6.14 (b_end 17): the equal split at 17 // 2 = 8;
    # slot 8 holds e4, so mab_no_null_split leaves it.  (6.12 moved the split
    # right while the left part spanned fewer than 15 indices, to 10.)
    assert len(left.slots) == 9 and left.pivots[-1] == 8 and left.slots[-1] == "e4"
    assert len(right.slots) == 9 and right.pivots[-1] == ULONG_MAX
    t.check()


def test_reverse_singletons_split_the_root_leaf_in_half() -> None:
    # check_rev_seq(mt, 20) of lib/test_maple_tree.c, inserting 20, 19, ... 1.
    # The root leaf is full (NULL, 7..20, NULL) when 6 arrives: 17 entries,
    # b_end 16, equal split at 8 (entry 13, not NULL) -> 9 | 8 entries; the
    # five later inserts each split the left leaf's leading NULL: 14 | 8.
    t = MapleTree()
    for i in range(20, 0, -1):
        t.insert(i, i)
    assert t.height == 2
    assert [len(leaf.slots) for leaf in t.root.slots] == [14, 8]
    t.check()


@pytest.mark.parametrize("alloc", [False, True])
def test_height_grows_then_shrinks_back(alloc: bool) -> None:
    t = MapleTree(alloc)
    heights = set()
    for i in range(3000):
        t.store_range(3 * i, 3 * i + 1, i)
        heights.add(t.height)
    t.check()
    assert max(heights) >= 3
    assert heights == set(range(1, max(heights) + 1))  # one level at a time
    c = t.counters
    assert c.splits > 0 and c.merges > 0  # ascending inserts push into the left sibling
    peak = t.height
    seen = []
    for i in range(3000):
        assert t.erase(3 * i) == i
        seen.append(t.height)
        if i % 97 == 0:
            t.check()
    assert c.rebalances > 0
    assert seen == sorted(seen, reverse=True) and seen[0] == peak
    assert t.height == 0 and t.root is None
    assert c.node_frees == c.node_allocs
    t.check()


def test_allocation_tree_internal_nodes_are_arange64_with_at_most_10_slots() -> None:
    t = MapleTree(True)
    _fill_alternate(t, 2000)
    nodes = _nodes(t)
    internal = [n for n, _ in nodes if n.type != MAPLE_LEAF64]
    assert internal and all(n.type == MAPLE_ARANGE64 for n in internal)
    assert all(len(n.slots) <= 10 and len(n.gaps) == len(n.slots) for n in internal)
    assert all(len(n.slots) <= 16 for n, _ in nodes)
    t.check()


def test_range_tree_internal_nodes_have_no_gaps() -> None:
    t = MapleTree(False)
    _fill_alternate(t, 2000)
    internal = [n for n, _ in _nodes(t) if n.type != MAPLE_LEAF64]
    assert all(n.type == MAPLE_RANGE64 and n.gaps is None for n in internal)
    assert max(len(n.slots) for n in internal) > 10


def test_gaps_track_the_largest_null_run_per_child() -> None:
    t = MapleTree(True)
    _fill_alternate(t, 500)
    t.store_range(301, 399, None)  # one 99-index hole, no wider gap except the tail
    t.check()  # recomputes every gap from the leaves
    mas = t.state()
    mas.empty_area(0, ULONG_MAX, 50)
    assert (mas.index, mas.last) == (301, 350)


def test_a_lookup_visits_height_nodes() -> None:
    c = Counters()
    t = MapleTree(counters=c)
    _fill_alternate(t, 1000)
    before = c.nodes_visited
    t.load(777)
    assert c.nodes_visited - before == t.height


def test_spanning_null_store_never_leaves_a_leaf_ending_in_null() -> None:
    t = MapleTree(True)
    _fill_alternate(t, 400)
    for leaf, _ in _nodes(t):
        if leaf.type == MAPLE_LEAF64 and leaf.pivots[-1] != ULONG_MAX:
            last_of_leaf = leaf.pivots[-1]
            t.erase(last_of_leaf)  # NULL written into the leaf's last slot
            break
    assert t._mas.store_type == "wr_spanning_store"
    t.check()


def test_store_over_everything_makes_a_new_root() -> None:
    t = MapleTree()
    _fill_alternate(t, 300)
    t.store_range(0, ULONG_MAX, "all")
    assert t.height == 1 and list(t) == [(0, ULONG_MAX, "all")]
    t.check()


# ---------------------------------------------------------------------------
# ZERO_ENTRY


def test_zero_entry_occupies_but_reads_as_null() -> None:
    t = MapleTree(True)
    t.store_range(100, 199, ZERO_ENTRY)
    assert t.load(150) is None
    with pytest.raises(MapleError) as e:
        t.insert_range(150, 150, "x")
    assert e.value.errno == errno.EEXIST
    assert list(t) == []  # mt_for_each skips it
    assert list(t.ranges()) == [(100, 199, ZERO_ENTRY)]
    mas = t.state(150)
    assert mas.walk() is ZERO_ENTRY  # mas_walk returns it as-is
    mas.empty_area(100, 300, 50)
    assert mas.index == 200  # gap search skips it
    assert t.find(0, ULONG_MAX) is None


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda t: t.store_range(5, 4, "x"), errno.EINVAL),
        (lambda t: t.store_range(-1, 4, "x"), errno.EINVAL),
        (lambda t: t.store_range(0, ULONG_MAX + 1, "x"), errno.EINVAL),
        (lambda t: t.store_range("0", 4, "x"), errno.EINVAL),
        (lambda t: t.insert_range(9, 3, "x"), errno.EINVAL),
        (lambda t: t.load(-3), errno.EINVAL),
        (lambda t: t.alloc_range("x", 1, 0, 10), errno.EINVAL),
        (lambda t: t.alloc_rrange("x", 1, 0, 10), errno.EINVAL),
        (lambda t: t.state().empty_area(10, 5, 1), errno.EINVAL),
        (lambda t: t.state().empty_area(0, 10, 0), errno.EINVAL),
        (lambda t: t.state().empty_area(0, 10, 12), errno.EINVAL),
        (lambda t: t.state().empty_area_rev(0, 10, 12), errno.EINVAL),
        # size is an unsigned long: 2**64 never fits one, even over the whole space
        (lambda t: t.state().empty_area(0, ULONG_MAX, 1 << 64), errno.EINVAL),
        (lambda t: t.state().empty_area_rev(0, ULONG_MAX, 1 << 64), errno.EINVAL),
    ],
)
def test_bad_arguments_raise_einval_and_leave_the_tree(call, code: int) -> None:
    t = MapleTree()
    t.store_range(20, 30, "keep")
    with pytest.raises(MapleError) as e:
        call(t)
    assert e.value.errno == code
    assert list(t) == [(20, 30, "keep")]


def test_alloc_of_more_than_an_unsigned_long_is_einval() -> None:
    t = MapleTree(True)
    with pytest.raises(MapleError) as e:
        t.alloc_rrange("x", 1 << 64, 0, ULONG_MAX)
    assert e.value.errno == errno.EINVAL
    assert list(t) == []


def test_alloc_of_a_reserved_entry_is_einval() -> None:
    t = MapleTree(True)
    with pytest.raises(MapleError) as e:
        t.alloc_range(ZERO_ENTRY, 1, 0, 10)
    assert e.value.errno == errno.EINVAL


def test_no_fit_is_ebusy_and_root_entry_bumps_min() -> None:
    t = MapleTree(True)
    t.store_range(0, 0, "root")  # root pointer
    mas = t.state()
    mas.empty_area(0, 10, 3)
    assert (mas.index, mas.last) == (1, 3)
    with pytest.raises(MapleError) as e:
        mas.empty_area(0, 2, 3)
    assert e.value.errno == errno.EBUSY
    # mas_sparse_area's -EBUSY sets no error: the state stays on the root pointer
    assert mas.status is MaStatus.ma_root
    t.store_range(0, 1000, "busy")
    with pytest.raises(MapleError) as e:
        t.alloc_range("x", 10, 500, 1005)
    assert e.value.errno == errno.EBUSY


@pytest.mark.parametrize("rev", [False, True])
def test_a_failed_search_leaves_the_window_in_the_state(rev: bool) -> None:
    # mas_empty_area(_rev) set index/last to [min, max] before walking and
    # do not restore them when the walk finds nothing (-EBUSY, ma_error)
    t = MapleTree(True)
    for i in range(0, 3000, 10):
        t.store_range(i, i + 7, i)  # two-index holes only
    assert t.height > 1
    mas = MapleState(t, 123, 456)
    with pytest.raises(MapleError) as e:
        (mas.empty_area_rev if rev else mas.empty_area)(100, 200, 3)
    assert e.value.errno == errno.EBUSY
    assert (mas.index, mas.last) == (100, 200)
    assert mas.status is MaStatus.ma_error


def test_alloc_range_and_rrange_pick_lowest_and_highest_fit() -> None:
    t = MapleTree(True)
    t.store_range(1 << 49, ULONG_MAX, ZERO_ENTRY)  # cap the space as the kernel tests do
    a = t.alloc_range("a", 4096, 0, ULONG_MAX)
    b = t.alloc_range("b", 4096, 0, ULONG_MAX)
    r = t.alloc_rrange("r", 4096, 0, ULONG_MAX)
    assert (a, b) == (0, 4096)
    assert r == (1 << 49) - 4096
    assert t.load(r + 4095) == "r"
    t.check()


def test_next_and_prev_report_overflow_and_underflow() -> None:
    t = MapleTree()
    for i in range(1, 50):
        t.store_range(10 * i, 10 * i + 4, i)
    mas = t.state(0)
    assert mas.next(15) == 1 and (mas.index, mas.last) == (10, 14)
    assert mas.next(15) is None and mas.status.name == "ma_overflow"
    assert mas.next(1000) == 2  # a larger limit resumes
    mas.set(1000)  # walks to the gap [495, ULONG_MAX]
    assert mas.prev(495) is None and mas.status.name == "ma_underflow"
    mas.set(1000)
    assert mas.prev(494) == 49 and (mas.index, mas.last) == (490, 494)  # end >= min
    assert mas.prev(494) is None and mas.status.name == "ma_underflow"
