"""Every maple write path's counters, recomputed from the documented rules.

docs/mapletree.md ("Cost model", write paths) states what a write charges:
its walk, the classification (``mas_wr_store_type``) and the reservation it
implies (``mas_prealloc_calc``), the lines of an in-place store and of its
gap rescan, four lines per node a split, push or rebuild fills, one line
for linking the new nodes into a kept parent, one line per parent gap slot
rewritten, a whole node read per neighbour a rebuild pulls in, and the
nodes allocated and freed.  ``maple_cost_oracle.expect_write`` restates
those rules; this test drives every write entry point (``store_range``,
``insert_range``, ``erase``, ``MapleState.store`` / ``store_gfp`` /
``insert`` / ``erase``, ``preallocate`` + ``store_prealloc``,
``alloc_range`` / ``alloc_rrange``) over trees one to four levels deep, at
the bottom and the top of the index space, and compares the counters of
each call with the oracle's.  The oracle looks at the tree's shape before
and after a write to know which case happened (which nodes are new or
gone, where the new nodes hang); the expected counts are its own.  The
contents are checked against the test's own interval map.
"""

from __future__ import annotations

import errno
import random
from collections import Counter
from typing import Any

import pytest
from maple_cost_oracle import (
    ULONG_MAX,
    Expect,
    Snapshot,
    counted,
    expect_classify,
    expect_insert_exists,
    expect_write,
    oracle_forward,
    oracle_reverse,
    walk_cost,
)
from maple_oracle import IntervalMap

from vmapsim import Counters
from vmapsim_mapletree import MapleError, MapleState, MapleTree

ALL_TYPES = {
    "wr_store_root",
    "wr_exact_fit",
    "wr_append",
    "wr_slot_store",
    "wr_node_store",
    "wr_split_store",
    "wr_rebalance",
    "wr_spanning_store",
}


def _plus(a: Expect, b: Expect) -> Expect:
    return Expect(**{k: getattr(a, k) + getattr(b, k) for k in a.__dataclass_fields__})


class Run:
    """One tree, the test's record of what it holds, and what was covered."""

    def __init__(self, alloc: bool, seed: int) -> None:
        self.t = MapleTree(alloc, counters=Counters())
        self.m = IntervalMap()
        self.rng = random.Random(seed)
        self.types: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.heights: set[int] = set()
        self.calls: Counter[str] = Counter()
        self.serial = 0

    def _value(self) -> tuple[str, int]:
        self.serial += 1
        return ("v", self.serial)

    def _note(self, before: Snapshot, plan: Any, shape: Any) -> None:
        self.types[plan.type] += 1
        self.heights.add(before.height)
        if shape is None:
            return
        h0, h1 = before.height, self.t.height
        if h1 > h0:
            self.events["height grew"] += 1
        if h1 < h0:
            self.events["height shrank"] += 1
        if shape.pulled:
            self.events["neighbour pulled"] += 1
        if shape.top_parent is not None and len(shape.new) > 1:
            self.events["linked below a kept parent"] += 1
        if shape.gap_chain:
            self.events["gap propagated"] += 1

    def _check(self, what: str, want: Expect) -> None:
        got = counted(self.t)
        assert got == want, f"{what}: counters {got} != oracle {want}"
        # distinct lines: never more than the accesses plus one parent-pointer
        # line per node a new node adopts (mas_adopt_children), and a write
        # that accessed a line touched one (a root-pointer store touches none)
        c = self.t.counters
        c.op_end()
        assert c.cache_lines <= got.line_accesses + len(Snapshot(self.t).by_id), what
        assert c.cache_lines >= min(got.line_accesses, 1), what
        self.calls[what] += 1

    # -- the write entry points ------------------------------------------

    def store(self, first: int, last: int, entry: Any, how: str = "store_range") -> None:
        t = self.t
        before = Snapshot(t)
        t.counters.reset()
        if how == "store_range":
            t.store_range(first, last, entry)
        else:
            mas = MapleState(t, first, last)
            if how == "mas_store":
                mas.store(entry)
            else:
                mas.store_gfp(entry)
        self.m.store(first, last, entry)
        want, plan, shape = expect_write(before, t, first, last, entry)
        self._check(how, want)
        self._note(before, plan, shape)

    def insert(self, first: int, last: int, entry: Any, how: str = "insert_range") -> None:
        t = self.t
        before = Snapshot(t)
        t.counters.reset()
        free = self.m.is_free(first, last)
        try:
            if how == "insert_range":
                t.insert_range(first, last, entry)
            else:
                MapleState(t, first, last).insert(entry)
        except MapleError as e:
            assert e.errno == errno.EEXIST and not free
            self._check(how + " (EEXIST)", expect_insert_exists(before, first, last, entry))
            return
        assert free
        self.m.store(first, last, entry)
        want, plan, shape = expect_write(before, t, first, last, entry)
        self._check(how, want)
        self._note(before, plan, shape)

    def erase(self, index: int, how: str = "erase") -> None:
        """``mtree_erase`` / ``mas_erase``: a walk to ``index``; if an entry
        is there, the NULL store of its slot from the positioned state."""
        t = self.t
        before = Snapshot(t)
        t.counters.reset()
        old = self.m.load(index)
        if how == "erase":
            assert t.erase(index) == old
        else:
            assert MapleState(t, index).erase() == old
        want = Expect(walks=1)  # without a root node mas_start finds nothing to walk
        if before.root is not None:
            want = Expect()
            want.add(walk_cost(before, index))
        if old is not None:
            first, last, _ = self.m.range_at(index)
            self.m.store(first, last, None)
            if before.root is None and index:  # nothing above the root entry
                self._check(how, want)
                return
            w, plan, shape = expect_write(before, t, first, last, None, positioned=True)
            want = _plus(want, w)
            self._note(before, plan, shape)
        self._check(how, want)

    def exact_fit_positioned(self, index: int) -> None:
        """``mas_walk`` then ``mas_store`` over the slot walked to."""
        t = self.t
        if t.root is None:
            return
        mas = MapleState(t, index)
        mas.walk()
        first, last = mas.index, mas.last
        entry = self._value()
        before = Snapshot(t)
        t.counters.reset()
        mas.store(entry)
        self.m.store(first, last, entry)
        want, plan, shape = expect_write(before, t, first, last, entry, positioned=True)
        assert plan.type == "wr_exact_fit" or (first, last) == (0, ULONG_MAX)
        self._check("walk + store", want)
        self._note(before, plan, shape)

    def prealloc(self, first: int, last: int, entry: Any) -> None:
        """``mas_preallocate`` then ``mas_store_prealloc`` (which classifies
        again: a state that had not walked walks again)."""
        t = self.t
        before = Snapshot(t)
        mas = MapleState(t, first, last)
        t.counters.reset()
        mas.preallocate(entry)
        want, plan = expect_classify(before, first, last, entry)
        want.node_allocs = plan.need
        self._check("preallocate", want)
        assert mas.reserved == plan.need
        t.counters.reset()
        mas.store_prealloc(entry)
        self.m.store(first, last, entry)
        want, plan, shape = expect_write(before, t, first, last, entry, reserved=plan.need)
        self._check("store_prealloc", want)
        assert mas.reserved == 0
        self._note(before, plan, shape)

    def alloc(self, lo: int, hi: int, size: int, rev: bool) -> None:
        """``mtree_alloc_range`` / ``mtree_alloc_rrange``: the gap search,
        then an insert of the range found."""
        t = self.t
        if t.root is None:
            return
        before = Snapshot(t)
        at, search = (oracle_reverse if rev else oracle_forward)(t, lo, hi, size)
        t.counters.reset()
        if at < 0:
            with pytest.raises(MapleError):
                (t.alloc_rrange if rev else t.alloc_range)("a", size, lo, hi)
            return
        entry = self._value()
        got = (t.alloc_rrange if rev else t.alloc_range)(entry, size, lo, hi)
        first = at - size + 1 if rev else at
        assert got == first
        self.m.store(first, first + size - 1, entry)
        # mas_empty_area leaves the state on the leaf it found (the insert
        # does not walk again); the reverse search leaves it at the start
        want, plan, shape = expect_write(
            before, t, first, first + size - 1, entry, positioned=not rev
        )
        want.add(search)
        self._check("alloc_rrange" if rev else "alloc_range", want)
        self._note(before, plan, shape)

    def verify(self) -> None:
        self.t.check()
        assert list(self.t.ranges()) == self.m.items


def _drive(run: Run, base: int, space: int, steps: int, fill: float) -> None:
    """Random writes over ``[base, base + space)``; ``fill`` steers how full
    the range is kept (so the tree keeps its height band)."""
    rng = run.rng
    top = base + space - 1
    grow = True
    for step in range(steps):
        a = rng.randrange(base, base + space)
        r = rng.random()
        if step % 16 == 0:
            grow = sum(la - f + 1 for f, la, _ in run.m.items) < fill * space
        if r < 0.22:
            last = min(top, a + rng.randrange(0, 6))
            run.store(a, last, run._value(), rng.choice(["store_range", "mas_store", "gfp"]))
        elif r < 0.30:
            run.store(a, min(top, a + rng.randrange(0, 4)), None)
        elif r < 0.36:  # wide NULL stores: spanning stores and rebalances
            run.store(a, min(top, a + rng.randrange(20, 400 if grow else 1500)), None)
        elif r < 0.40:  # wide entry stores: spanning stores over many slots
            run.store(a, min(top, a + rng.randrange(10, 300)), run._value())
        elif r < (0.55 if grow else 0.62):
            run.erase(a, rng.choice(["erase", "mas_erase"]))
        elif r < 0.75:
            last = min(top, a + rng.randrange(0, 4))
            run.insert(a, last, run._value(), rng.choice(["insert_range", "mas_insert"]))
        elif r < 0.82:
            run.exact_fit_positioned(a)
        elif r < 0.89:
            entry = run._value() if rng.random() < 0.8 else None
            run.prealloc(a, min(top, a + rng.randrange(0, 5)), entry)
        elif r < 0.95 and run.t.is_alloc:
            lo = rng.randrange(base, base + space)
            run.alloc(lo, top, rng.choice([1, 2, 3]), rng.random() < 0.5)
        else:  # the top and the bottom of the range, and its edges
            edge = rng.choice([base, top])
            run.store(edge, edge, run._value() if rng.random() < 0.6 else None)
        if step % 200 == 199:
            run.verify()
    run.verify()


# The parameter sets: (entries to start with, spread of ranges and holes).
# Heights reached: 1 (a few entries), 2, 3 and 4 levels.
SHAPES = {1: (6, 6), 2: (60, 6), 3: (300, 4), 4: (2500, 3)}


@pytest.mark.parametrize("alloc", [False, True], ids=["range", "alloc"])
@pytest.mark.parametrize("where", ["low", "top"])
@pytest.mark.parametrize("levels", [1, 2, 3, 4])
def test_write_counters_follow_the_documented_rules(alloc: bool, where: str, levels: int) -> None:
    n, spread = SHAPES[levels]
    if alloc and levels == 4:
        n = 900
    space = n * 2 * spread + 40
    base = 0 if where == "low" else ULONG_MAX - space + 1
    run = Run(alloc, seed=levels * 10 + alloc + (where == "top") * 100)
    pos = base
    for _ in range(n):
        pos += run.rng.randrange(1, spread)
        last = pos + run.rng.randrange(0, spread)
        entry = run._value()
        run.t.store_range(pos, last, entry)
        run.m.items.append((pos, last, entry))  # increasing, disjoint
        pos = last + 1
    run.verify()
    assert run.t.height == levels or levels == 1, run.t.height
    steps = {1: 300, 2: 400, 3: 300, 4: 200}[levels]
    _drive(run, base, space, steps, fill=0.6)
    assert run.calls, "nothing was compared"
    # every path a tree of this depth can take was taken
    seen = set(run.types)
    want = ALL_TYPES - {"wr_store_root"} - ({"wr_rebalance"} if levels == 4 else set())
    assert want <= seen, sorted(want - seen)
    assert "linked below a kept parent" in run.events or levels < 3
    assert levels in run.heights


def test_writes_without_root_node_and_over_the_whole_key_space() -> None:
    # Empty trees, a root entry at index 0 (no node), root leaves, and
    # stores over [0, ULONG_MAX] (wr_new_root from a root leaf; a spanning
    # store that ends in mas_new_root from a deeper tree), NULL included.
    for alloc in (False, True):
        run = Run(alloc, seed=3 + alloc)
        rng = run.rng
        for step in range(200):
            r = rng.random()
            entry = run._value() if rng.random() < 0.7 else None
            if r < 0.1:
                run.store(0, ULONG_MAX, entry)
            elif r < 0.25:
                run.store(0, 0, entry)
            elif r < 0.35:
                run.erase(rng.choice([0, 0, 1, 7, ULONG_MAX]))
            elif r < 0.45:
                run.insert(0, rng.choice([0, 0, 3]), run._value(), "mas_insert")
            elif r < 0.55:
                run.prealloc(0, rng.choice([0, 5, ULONG_MAX]), entry)
            elif r < 0.6:
                run.store(ULONG_MAX - rng.randrange(3), ULONG_MAX, entry)
            else:  # grow a few levels between the whole-space stores
                for _ in range(rng.randrange(1, 60)):
                    a = rng.randrange(0, 3000)
                    run.store(a, a + rng.randrange(0, 9), run._value())
            if step % 50 == 0:
                run.verify()
        run.verify()
        assert {"wr_store_root", "wr_new_root", "wr_spanning_store"} <= set(run.types)
        assert {1, 2, 3} <= run.heights


@pytest.mark.parametrize("alloc", [False, True], ids=["range", "alloc"])
def test_spanning_store_that_overflows_the_root(alloc: bool) -> None:
    # A full root over full, gap-free leaves; an entry written from inside
    # one leaf's last range to inside the next leaf's first range leaves
    # 33 entries for two leaves: three nodes, so the root gets one child
    # more than it can hold and a new root is built above the split root.
    run = Run(alloc, seed=11)
    t = run.t
    width = 100
    i = 0
    while t.height < 2 or len(t.root.slots) < (10 if alloc else 16):
        run.store(width * i, width * i + width - 1, run._value())
        i += 1
    leaves = list(t.root.slots)
    for leaf in leaves[:-1]:  # the last leaf ends with the NULL up to ULONG_MAX
        while len(leaf.slots) < 16:
            # cut the widest range of the leaf in two (one slot more, no split)
            start, best, best_len = 0, 0, -1
            lo = t.root.pivots[leaves.index(leaf) - 1] + 1 if leaves.index(leaf) else 0
            start = lo
            for k, p in enumerate(leaf.pivots):
                if p - start > best_len:
                    best, best_len = k, p - start
                start = p + 1
            cut = leaf.pivots[best]
            run.store(cut, cut, run._value())
    assert t.height == 2 and all(len(x.slots) == 16 for x in leaves[:-1])
    k = len(leaves) // 2
    left, right = leaves[k - 1], leaves[k]
    first = left.pivots[-1] - 1
    last = left.pivots[-1] + 2
    assert right.pivots[0] > last
    before = Snapshot(t)
    t.counters.reset()
    t.store_range(first, last, "span")
    run.m.store(first, last, "span")
    want, plan, _ = expect_write(before, t, first, last, "span")
    assert plan.type == "wr_spanning_store" and t.height == 3
    assert counted(t) == want
    run.verify()


@pytest.mark.parametrize("alloc", [False, True], ids=["range", "alloc"])
def test_rebalance_four_levels_deep(alloc: bool) -> None:
    # Erasing the entries of one leaf of a four-level tree until it falls
    # below its minimum fill: rebalances, and rebuilds that stop where both
    # sides meet (or climb further), all against the oracle.
    run = Run(alloc, seed=21)
    n = 900 if alloc else 2500
    pos = 0
    for i in range(n):
        pos += 1 + i % 2
        entry = run._value()
        run.t.store_range(pos, pos + i % 3, entry)
        run.m.items.append((pos, pos + i % 3, entry))
        pos += i % 3 + 1
    assert run.t.height == 4
    for target in (pos // 3, pos // 2, 2 * pos // 3, 5, pos - 10):
        for how in ("erase", "mas_erase"):
            before = run.types["wr_rebalance"]
            while run.types["wr_rebalance"] == before:
                # an entry inside the leaf holding target (not at its ends)
                path, _ = Snapshot(run.t).walk(target)
                leaf = path[-1]
                inner = [k for k in range(1, leaf.end) if leaf.slots[k] is not None]
                k = inner[len(inner) // 2]
                run.erase(leaf.pivots[k], how)
        run.verify()
    assert run.types["wr_rebalance"] == 10 and 4 in run.heights
