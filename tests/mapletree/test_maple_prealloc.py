"""How many nodes a write reserves, and how far a rebuild climbs (v7.0 rules).

Since 6.16 ``mas_wr_walk`` records two heights on the write's path (the
root is height 1): ``vacant_height``, the deepest internal node with room
for another child (fewer than ``mt_slots`` used), and
``sufficient_height``, the deepest that can give one up (the root with at
least 4 children, other nodes with more than ``mt_min_slots + 2``); a
spanning write counts only the nodes above the one where the walk finds it
spanning.  ``mas_prealloc_calc`` then asks for ``2(h - vacant) + 1`` nodes
for a split, ``2(h - min) + 1`` for a rebalance and ``3(h - min) + 1`` for a
spanning store (``min`` of the two heights), and ``mas_spanning_rebalance``
stops where both sides meet in one sufficient parent.  Each case states the
tree shape it relies on and derives the count from those rules.
"""

from __future__ import annotations

from typing import Any

from vmapsim_mapletree import MapleState, MapleTree
from vmapsim_mapletree.node import MAPLE_LEAF64


def _seq(n: int, alloc: bool = False) -> MapleTree:
    """Entries [10i, 10i+5] with NULL gaps between (leaves alternate)."""
    t = MapleTree(alloc)
    for i in range(n):
        t.store_range(10 * i, 10 * i + 5, ("v", i))
    return t


def _leaves(t: MapleTree) -> list[tuple[Any, int]]:
    """Every leaf with its minimum, in key order."""
    out: list[tuple[Any, int]] = []

    def walk(node: Any, mn: int) -> None:
        if node.type == MAPLE_LEAF64:
            out.append((node, mn))
            return
        start = mn
        for p, child in zip(node.pivots, node.slots, strict=True):
            walk(child, start)
            start = p + 1

    walk(t.root, 0)
    return out


def _reserve(t: MapleTree, first: int, last: int, entry: Any) -> tuple[str, int]:
    mas = MapleState(t, first, last)
    mas.preallocate(entry)
    got = (mas.store_type, mas.reserved)
    mas.destroy()
    return got


def _split_point(leaf: Any, mn: int) -> int:
    """An index strictly inside an entry of ``leaf`` (storing it adds two slots)."""
    start = mn
    for p, s in zip(leaf.pivots, leaf.slots, strict=True):
        if s is not None and p - start >= 2:
            return start + 1
        start = p + 1
    raise AssertionError("no entry wide enough")


def _full_leaf(t: MapleTree, parent_filter: Any = None) -> tuple[Any, int]:
    for leaf, mn in _leaves(t):
        if len(leaf.slots) >= 15 and (parent_filter is None or parent_filter(leaf.parent)):
            return leaf, mn
    raise AssertionError("no leaf with 15+ slots")


# ---------------------------------------------------------------------------
# split: 2 (h - vacant) + 1


def test_root_leaf_split_reserves_three() -> None:
    t = _seq(8)  # 8 entries + 8 NULLs: one full root leaf
    assert t.height == 1 and len(t.root.slots) == 16
    at = _split_point(t.root, 0)
    assert _reserve(t, at, at, "x") == ("wr_split_store", 3)


def test_split_under_a_root_with_room_reserves_three() -> None:
    t = _seq(60)
    assert t.height == 2 and len(t.root.slots) < 16  # vacant height 1
    leaf, mn = _full_leaf(t)
    at = _split_point(leaf, mn)
    assert _reserve(t, at, at, "x") == ("wr_split_store", 3)  # 2 (2 - 1) + 1; 6.15: 5


def test_split_under_a_full_root_reserves_five() -> None:
    t = _seq(120)
    assert t.height == 2 and len(t.root.slots) == 16  # no vacant node
    leaf, mn = _full_leaf(t)
    at = _split_point(leaf, mn)
    assert _reserve(t, at, at, "x") == ("wr_split_store", 5)  # 2 (2 - 0) + 1


def test_split_at_height_three_under_a_parent_with_room_reserves_three() -> None:
    t = _seq(400)
    assert t.height == 3
    leaf, mn = _full_leaf(t, lambda p: len(p.slots) < 16)  # vacant height 2
    at = _split_point(leaf, mn)
    assert _reserve(t, at, at, "x") == ("wr_split_store", 3)  # 2 (3 - 2) + 1; 6.15: 7


# ---------------------------------------------------------------------------
# rebalance: 2 (h - min(vacant, sufficient)) + 1


def _shrink(leaf: Any, mn: int) -> tuple[int, int]:
    """A NULL store inside ``leaf`` that leaves it with 3 slots (a rebalance)."""
    return leaf.pivots[0] + 1, leaf.pivots[-3]


def test_rebalance_under_a_root_of_three_reserves_five() -> None:
    t = _seq(20)
    assert t.height == 2 and len(t.root.slots) == 3  # vacant 1, sufficient 0
    first, last = _shrink(*_leaves(t)[0])
    assert _reserve(t, first, last, None) == ("wr_rebalance", 5)  # 2 (2 - 0) + 1; 6.15: 3


def test_rebalance_under_a_root_of_four_reserves_three() -> None:
    t = _seq(30)
    assert t.height == 2 and len(t.root.slots) == 4  # vacant 1, sufficient 1
    first, last = _shrink(*_leaves(t)[0])
    assert _reserve(t, first, last, None) == ("wr_rebalance", 3)  # 2 (2 - 1) + 1


def test_rebalance_stops_at_the_sufficient_parent() -> None:
    # Height 4; the leaf's parent keeps enough children after the merge, so
    # the rebuild ends there: its parent and the root are the same objects.
    t = _seq(4000)
    assert t.height == 4
    leaf, mn = next(
        (lf, m) for lf, m in _leaves(t) if len(lf.parent.slots) >= 10 and lf.parent.slots[0] is lf
    )
    parent, grand, root = leaf.parent, leaf.parent.parent, t.root
    first, last = _shrink(leaf, mn)
    mas = MapleState(t, first, last)
    mas.preallocate(None)
    assert mas.store_type == "wr_rebalance"
    mas.store_prealloc(None)
    t.check()
    assert t.root is root and t.root.parent is None
    assert grand.parent is not None and grand.parent is root  # still linked, not replaced
    assert parent.parent is not grand  # the parent itself was rewritten (freed)
    assert t.load(first) is None and t.load(leaf.pivots[-1]) is not None


# ---------------------------------------------------------------------------
# spanning store: 3 (h - min(vacant, sufficient)) + 1


def test_spanning_store_at_height_two_reserves_seven() -> None:
    t = _seq(60)
    assert t.height == 2  # the span is found at the root: nothing recorded
    (left, _), (right, _) = _leaves(t)[:2]
    assert _reserve(t, left.pivots[-1] - 1, right.pivots[1], "x") == ("wr_spanning_store", 7)


def test_spanning_store_inside_one_parent_at_height_three_reserves_seven() -> None:
    t = _seq(400)
    assert t.height == 3 and len(t.root.slots) == 4  # root: vacant and sufficient
    leaves = _leaves(t)
    i = next(k for k in range(len(leaves) - 1) if leaves[k][0].parent is leaves[k + 1][0].parent)
    left, right = leaves[i][0], leaves[i + 1][0]
    got = _reserve(t, left.pivots[-1] - 1, right.pivots[1], "x")
    assert got == ("wr_spanning_store", 7)  # found at the parent: 3 (3 - 1) + 1; 6.15: 10


def test_spanning_store_across_parents_at_height_three_reserves_ten() -> None:
    t = _seq(400)
    assert t.height == 3
    leaves = _leaves(t)
    i = next(
        k for k in range(len(leaves) - 1) if leaves[k][0].parent is not leaves[k + 1][0].parent
    )
    left, right = leaves[i][0], leaves[i + 1][0]
    got = _reserve(t, left.pivots[-1] - 1, right.pivots[1], "x")
    assert got == ("wr_spanning_store", 10)  # found at the root: 3 (3 - 0) + 1


def test_allocation_tree_counts_with_its_own_slot_limits() -> None:
    # arange64 internal nodes: 10 slots (vacant below 10), sufficient above 6
    t = _seq(400, alloc=True)
    assert t.height >= 3
    leaf, mn = _full_leaf(t, lambda p: len(p.slots) < 10)
    at = _split_point(leaf, mn)
    assert _reserve(t, at, at, "x") == ("wr_split_store", 3)  # vacant at h - 1
