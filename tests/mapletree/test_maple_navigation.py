"""``ma_state`` navigation: what ``mas_next``, ``mas_prev``, ``mas_find``,
``mas_find_rev``, ``mas_walk`` and ``mas_erase`` / ``mas_store`` leave in the
state, for each status they start from.

Each expectation follows the per-status setup functions of
``lib/maple_tree.c`` (``mas_next_setup``, ``mas_prev_setup``,
``mas_find_setup``, ``mas_find_rev_setup``) or an assertion of the kernel's
``check_state_handling`` / ``check_rev_find`` tests; the comments say which.
The randomized test at the end compares the model with an oracle written
from those functions (``maple_nav_oracle``).
"""

from __future__ import annotations

import random
from typing import Any

from maple_nav_oracle import NavOracle, Undefined

from vmapsim_mapletree import ZERO_ENTRY, MapleState, MapleTree, MaStatus
from vmapsim_mapletree.node import ULONG_MAX

U = ULONG_MAX
ACTIVE = MaStatus.ma_active
START = MaStatus.ma_start
ROOT = MaStatus.ma_root
NONE = MaStatus.ma_none
OVERFLOW = MaStatus.ma_overflow
UNDERFLOW = MaStatus.ma_underflow


def _three() -> MapleTree:
    """The node tree of check_state_handling: ptr, ptr2, ptr3."""
    tree = MapleTree()
    tree.store_range(0x1000, 0x1500, "ptr")
    tree.store_range(0x2000, 0x2500, "ptr2")
    tree.store_range(0x3000, 0x3500, "ptr3")
    return tree


def _root_tree() -> MapleTree:
    """A tree holding only a root entry at index 0 (no root node)."""
    tree = MapleTree()
    tree.store_range(0, 0, "ptr")
    assert tree.root is None
    return tree


def _at(mas: MapleState) -> tuple[int, int, MaStatus]:
    return mas.index, mas.last, mas.status


# ---------------------------------------------------------------------------
# mas_find after an overflow that left the state where it was


def test_find_after_overflow_in_place_returns_entry_at_index() -> None:
    # mas_next_setup: last >= max reports ma_overflow without moving; then
    # mas_find_setup(ma_overflow) walks to index and returns what is there.
    mas = MapleState(_three(), 0x1000)
    assert mas.walk() == "ptr"
    assert mas.next(0x1200) is None
    assert _at(mas) == (0x1000, 0x1500, OVERFLOW)
    assert mas.find(U) == "ptr"
    assert _at(mas) == (0x1000, 0x1500, ACTIVE)


def test_find_after_overflow_before_any_walk_walks_at_index() -> None:
    # The same ma_overflow case when the overflow came straight from mas_set().
    mas = MapleState(_three(), 0x1200)
    assert mas.next(0x1200) is None
    assert _at(mas) == (0x1200, 0x1200, OVERFLOW)
    assert mas.find(U) == "ptr"
    assert _at(mas) == (0x1000, 0x1500, ACTIVE)


# ---------------------------------------------------------------------------
# mas_find_rev after an overflow that left the state where it was


def test_find_rev_after_overflow_in_place_steps_back() -> None:
    # mas_find_rev_setup(ma_overflow): index > min makes the state active and
    # goes on to mas_prev_slot, so the entry before the current one is next.
    mas = MapleState(_three(), 0x2000)
    assert mas.walk() == "ptr2"
    assert mas.next(0x2200) is None
    assert mas.status is OVERFLOW
    assert mas.find_rev(0) == "ptr"
    assert _at(mas) == (0x1000, 0x1500, ACTIVE)


def test_find_rev_after_overflow_at_min_underflows_in_place() -> None:
    # mas_find_rev_setup(ma_overflow): index <= min sets ma_underflow and
    # returns without walking.
    mas = MapleState(_three(), 62)
    assert mas.next(0) is None
    assert mas.status is OVERFLOW
    assert mas.find_rev(62) is None
    assert _at(mas) == (62, 62, UNDERFLOW)


# ---------------------------------------------------------------------------
# mas_find_rev below min keeps the status


def test_find_rev_below_min_from_active_keeps_active() -> None:
    # mas_find_rev_setup, label active: index < min returns NULL and changes
    # nothing, so the following mas_next steps from the same entry.
    mas = MapleState(_three(), 0x1200)
    assert mas.walk() == "ptr"
    assert mas.find_rev(0x1100) is None
    assert _at(mas) == (0x1000, 0x1500, ACTIVE)
    assert mas.next(U) == "ptr2"
    assert _at(mas) == (0x2000, 0x2500, ACTIVE)


def test_find_rev_start_walk_onto_null_below_min_stays_active() -> None:
    # ma_start: the walk lands on the NULL range, which starts below min.
    mas = MapleState(_three(), 0x1800)
    assert mas.find_rev(0x1700) is None
    assert _at(mas) == (0x1501, 0x1FFF, ACTIVE)


def test_find_rev_start_below_min_stays_start() -> None:
    # ma_start with index < min returns before walking.
    mas = MapleState(_three(), 5)
    assert mas.find_rev(10) is None
    assert _at(mas) == (5, 5, START)


def test_check_rev_find_null_below_min_is_active() -> None:
    # check_rev_find: mas_set(999); mas_find_rev(997) is NULL (the range 996-999
    # is empty and starts below 997); the state stays active on that range.
    tree = MapleTree()
    for i in range(201):
        tree.store_range(i * 10, i * 10 + 5, i)
    mas = MapleState(tree, 999)
    assert mas.find_rev(997) is None
    assert _at(mas) == (996, 999, ACTIVE)


# ---------------------------------------------------------------------------
# mas_find from ma_underflow at or past max


def test_find_from_underflow_at_max_overflows() -> None:
    # mas_find_setup(ma_underflow): index >= max sets ma_overflow, no walk.
    mas = MapleState(_three(), 0x1200)
    assert mas.walk() == "ptr"
    assert mas.prev(0x1000) is None
    assert _at(mas) == (0x1000, 0x1500, UNDERFLOW)
    assert mas.find(0x1000) is None
    assert _at(mas) == (0x1000, 0x1500, OVERFLOW)


def test_find_from_underflow_past_max_overflows_without_walking() -> None:
    mas = MapleState(_three(), 0x1200)
    assert mas.walk() == "ptr"
    assert mas.prev(0x1000) is None
    assert mas.find(0x800) is None
    assert _at(mas) == (0x1000, 0x1500, OVERFLOW)
    # an underflow from mas_set() alone: index and last stay as they were
    mas = MapleState(_three(), 0)
    assert mas.prev(0) is None
    assert mas.find(0) is None
    assert _at(mas) == (0, 0, OVERFLOW)


# ---------------------------------------------------------------------------
# a tree holding only a root entry (check_state_handling, "MAS_ROOT First")


def test_state_handling_root_entry_statuses() -> None:
    mas = MapleState(_root_tree(), 0)
    # prev: Start -> underflow
    assert mas.prev(0) is None
    assert mas.status is UNDERFLOW
    # prev: Start -> root
    mas.set(10)
    assert mas.prev(0) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    # prev: pause -> root
    mas.set(10)
    mas.pause()
    assert mas.prev(0) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    # next: start -> none (from 0 and from 10)
    for index in (0, 10):
        mas.set(index)
        assert mas.next(U) is None
        assert _at(mas) == (1, U, NONE)
    # find: start -> root, root -> none, none -> none
    mas.set(0)
    assert mas.find(U) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    assert mas.find(U) is None
    assert _at(mas) == (1, U, NONE)
    assert mas.find(U) is None
    assert _at(mas) == (1, U, NONE)
    # find: start -> none
    mas.set(10)
    assert mas.find(U) is None
    assert _at(mas) == (1, U, NONE)
    # find_rev: none -> root
    assert mas.find_rev(0) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    # find_rev: start -> root, root -> none, none -> none
    mas.set(0)
    assert mas.find_rev(0) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    assert mas.find_rev(0) is None
    assert _at(mas) == (0, 0, NONE)
    assert mas.find_rev(0) is None
    assert _at(mas) == (0, 0, NONE)
    # find_rev: start -> root from an index above the entry
    mas.set(10)
    assert mas.find_rev(0) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    # walk: start -> none, pause -> none, none -> none
    mas.set(10)
    assert mas.walk() is None
    assert _at(mas) == (1, U, NONE)
    mas.set(10)
    mas.pause()
    assert mas.walk() is None
    assert _at(mas) == (1, U, NONE)
    assert mas.walk() is None
    assert _at(mas) == (1, U, NONE)
    # walk: start -> root, pause -> root, root -> root
    mas.set(0)
    assert mas.walk() == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    mas.set(0)
    mas.pause()
    assert mas.walk() == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    assert mas.walk() == "ptr"
    assert _at(mas) == (0, 0, ROOT)


def test_next_from_none_at_zero_stays_on_root_entry() -> None:
    # mas_next_setup: from ma_none the walk at index 0 finds the root entry;
    # was_none with index 0 returns NULL over [0, 0] and keeps ma_root.
    mas = MapleState(_root_tree(), 0)
    assert mas.find_rev(0) == "ptr"
    assert mas.find_rev(0) is None
    assert mas.status is NONE
    assert mas.next(U) is None
    assert _at(mas) == (0, 0, ROOT)


# ---------------------------------------------------------------------------
# the root entry is returned below min (mas_prev_setup / mas_find_rev_setup
# return mas_root() after walking past it, without comparing it with min)


def test_prev_and_find_rev_return_root_entry_whatever_min() -> None:
    mas = MapleState(_root_tree(), 10)
    assert mas.prev(5) == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    mas = MapleState(_root_tree(), 10)
    assert mas.find_rev(5) == "ptr"
    assert _at(mas) == (0, 0, ROOT)


# ---------------------------------------------------------------------------
# an empty tree


def test_prev_on_empty_tree_is_none() -> None:
    # mas_prev_setup: the walk gives ma_none with index 0, returned as is.
    mas = MapleState(MapleTree(), 10)
    assert mas.prev(0) is None
    assert _at(mas) == (0, U, NONE)


def test_find_rev_on_empty_tree_reports_root() -> None:
    # mas_find_rev_setup: after a walk to ma_none, index = last = 0 and the
    # status becomes ma_root; mas_root() of an empty tree is NULL.
    mas = MapleState(MapleTree(), 10)
    assert mas.find_rev(0) is None
    assert _at(mas) == (0, 0, ROOT)


# ---------------------------------------------------------------------------
# writes and erases on a tree without a root node


def test_store_root_entry_leaves_start_then_null_store_leaves_root() -> None:
    tree = MapleTree()
    mas = MapleState(tree, 0)
    # mas_store_root: an entry stored at [0, 0] becomes the root, ma_start
    assert mas.store("x") is None
    assert _at(mas) == (0, 0, START)
    assert tree.root is None
    # the NULL store: mas_start in mas_wr_prealloc_setup finds the root entry
    # (ma_root, returned as the old content); mas_store_root(NULL) keeps it
    assert mas.store(None) == "x"
    assert _at(mas) == (0, 0, ROOT)
    assert tree.root is None and tree.root_entry is None


def test_null_store_on_empty_tree_is_none() -> None:
    mas = MapleState(MapleTree(), 3, 5)
    assert mas.store(None) is None
    assert _at(mas) == (3, 5, NONE)


def test_null_store_over_everything_restarts() -> None:
    # mas_new_root(NULL) empties a tree with nodes and sets ma_start; the
    # returned content is the slot holding index 0 (NULL here).
    mas = MapleState(_three(), 0, U)
    assert mas.store(None) is None
    assert _at(mas) == (0, U, START)
    assert (mas.tree.root, mas.tree.root_entry) == (None, None)


def test_erase_without_root_node_keeps_index_and_last() -> None:
    # mas_erase -> mas_state_walk -> mas_start: no range to walk for a root
    # entry or an empty tree, so index and last are left as they were.
    mas = MapleState(_root_tree(), 5)
    assert mas.erase() is None
    assert _at(mas) == (5, 5, ROOT)
    mas = MapleState(MapleTree(), 10)
    assert mas.erase() is None
    assert _at(mas) == (10, 10, NONE)
    tree = _root_tree()
    mas = MapleState(tree, 0)
    assert mas.erase() == "ptr"
    assert _at(mas) == (0, 0, ROOT)
    assert tree.root_entry is None


def test_find_from_root_at_limit_is_out_of_range() -> None:
    # mas_find_setup(ma_root) goes to ptr_out_of_range: [1, ULONG_MAX], ma_none.
    mas = MapleState(_root_tree(), 0)
    assert mas.find(0) == "ptr"
    assert mas.find(0) is None
    assert _at(mas) == (1, U, NONE)


# ---------------------------------------------------------------------------
# randomized comparison with the kernel-semantics oracle


_OPS = ("set", "pause", "walk", "next", "prev", "find", "find_rev", "next", "prev")


def _build(rnd: random.Random, n: int) -> tuple[MapleTree, list[tuple[int, int, Any]]]:
    """A tree and the test's own record of its slots: every range stored,
    in key order, with the NULL ranges between them (adjacent NULLs are one
    range, as the tree coalesces them; adjacent entries stay apart)."""
    tree = MapleTree(alloc_range=rnd.random() < 0.5)
    stored: list[tuple[int, int, Any]] = []
    pos = rnd.randint(0, 3)
    for i in range(n):
        length = rnd.randint(0, 5)
        first = pos if rnd.random() < 0.3 else pos + rnd.randint(1, 6)
        pos = first + length + 1
        entry = ZERO_ENTRY if rnd.random() < 0.05 else f"e{i}"
        tree.store_range(first, first + length, entry)
        stored.append((first, first + length, entry))
    if rnd.random() < 0.3:
        tree.store_range(pos + 3, U, "tail")
        stored.append((pos + 3, U, "tail"))
    slots: list[tuple[int, int, Any]] = []
    nxt = 0
    for first, last, entry in stored:  # increasing, non-overlapping
        if first > nxt:
            slots.append((nxt, first - 1, None))
        slots.append((first, last, entry))
        nxt = last + 1
    if nxt <= U and stored[-1][1] < U:
        slots.append((nxt, U, None))
    return tree, slots


def test_navigation_matches_kernel_oracle() -> None:
    compared = 0
    for seed in range(300):
        rnd = random.Random(seed)
        tree, slots = _build(rnd, rnd.choice([3, 10, 40, 200, 600]))
        assert tree.root is not None
        top = slots[-1][0] + 10
        mas = MapleState(tree, 0)
        ora = NavOracle(slots)
        for _ in range(80):
            op = rnd.choice(_OPS)
            if op == "set":
                i = rnd.randint(0, top)
                mas.set(i)
                ora.set(i)
                continue
            if op == "pause":
                mas.pause()
                ora.pause()
                continue
            r = rnd.random()
            if r < 0.15:
                limit = U
            elif r < 0.25:
                limit = 0
            elif r < 0.5:
                limit = min(U, max(0, mas.index + rnd.randint(-3, 3)))
            elif r < 0.75:
                limit = min(U, max(0, mas.last + rnd.randint(-3, 3)))
            else:
                limit = rnd.randint(0, top)
            want: Any
            if op == "walk":
                want = ora.walk()
                got = mas.walk()
            else:
                try:
                    want = getattr(ora, op)(limit)
                except Undefined:  # the kernel would follow a NULL node
                    i = rnd.randint(0, top)
                    mas.set(i)
                    ora.set(i)
                    continue
                got = getattr(mas, op)(limit)
            assert (got, mas.index, mas.last, mas.status.name) == (
                want,
                ora.index,
                ora.last,
                ora.status,
            ), f"seed {seed}: {op}({limit})"
            compared += 1
    assert compared > 5000
