"""The cost model's counts, recomputed from the documented rules.

docs/metrics.md and docs/mapletree.md ("Cost model") state the node layout
(which 64-byte line holds which pivot, slot, gap and the metadata) and what a
step reads; the search docstrings state how a gap search charges a node it
scans.  This test restates those rules on its own terms — a byte-level line
count and a recursive depth-first search — and checks that the tree's
counters after a lookup and after a forward or reverse gap search are
exactly what the rules give, and that the searches find what a brute-force
scan of the free ranges finds, and that a leaf-to-leaf move charges the
nodes it climbs and descends.  The hot paths use precomputed, packed cost
tables; this is what keeps those tables and their packing honest.  The
restated rules live in ``maple_cost_oracle`` (shared with the write-path
test, ``test_maple_cost_writes``).
"""

from __future__ import annotations

import random

import pytest
from maple_cost_oracle import Cost, oracle_forward, oracle_load_cost, oracle_reverse
from maple_oracle import IntervalMap

from vmapsim import Counters
from vmapsim_mapletree import MapleTree
from vmapsim_mapletree.gap import search_forward, search_reverse
from vmapsim_mapletree.node import MAPLE_LEAF64, MapleNode
from vmapsim_mapletree.walk import next_leaf, prev_leaf


def counted(t: MapleTree) -> Cost:
    c = t.counters
    c.op_end()  # the operation ends: its distinct lines are counted
    return Cost(c.walks, c.nodes_visited, c.comparisons, c.line_accesses, c.cache_lines)


def build(
    rng: random.Random, n: int, spread: int, *, base: int = 0
) -> tuple[MapleTree, IntervalMap]:
    """An allocation tree of ``n`` ranges with free holes of varied sizes."""
    t = MapleTree(alloc_range=True, counters=Counters())
    m = IntervalMap()
    pos = base
    for i in range(n):
        pos += rng.randrange(1, spread)  # the hole before this range
        last = pos + rng.randrange(0, spread)
        t.store_range(pos, last, ("r", i))
        m.store(pos, last, ("r", i))
        pos = last + 1
    for _ in range(n // 3):  # erases make holes of other sizes
        a = rng.randrange(base, pos)
        if m.load(a) is not None:
            f, la, _ = m.range_at(a)
            t.erase(a)
            m.store(f, la, None)
    t.check()
    return t, m


@pytest.mark.parametrize(
    ("n", "spread", "base"),
    [(12, 20, 0), (150, 40, 0), (1500, 64, 0), (1500, 64, (1 << 64) - 200_000), (6000, 8, 10)],
)
def test_lookup_and_gap_search_counts_follow_the_documented_rules(
    n: int, spread: int, base: int
) -> None:
    rng = random.Random(n * 31 + spread)
    t, m = build(rng, n, spread, base=base)
    top = max(base + n * 2 * spread, base + 10)
    for _ in range(300):
        index = rng.randrange(base, top)
        t.counters.reset()
        t.load(index)
        assert counted(t) == oracle_load_cost(t, index)

        lo = rng.randrange(0, top) if rng.random() < 0.2 else rng.randrange(base, top)
        hi = rng.choice([(1 << 64) - 1, lo + rng.randrange(0, 6 * spread)])
        size = rng.choice([1, 2, spread // 2 or 1, spread, 3 * spread])
        if hi >= 1 << 64 or hi - lo + 1 < size:
            continue
        want = m.empty_area(lo, hi, size)
        t.counters.reset()
        got = search_forward(t, lo, hi, size)
        assert got == (-1 if want is None else want)
        expect_at, expect_cost = oracle_forward(t, lo, hi, size)
        assert (got, counted(t)) == (expect_at, expect_cost)

        want = m.empty_area_rev(lo, hi, size)
        t.counters.reset()
        got = search_reverse(t, lo, hi, size)
        assert got == (-1 if want is None else want + size - 1)
        expect_last, expect_cost = oracle_reverse(t, lo, hi, size)
        assert (got, counted(t)) == (expect_last, expect_cost)


def leaf_paths(t: MapleTree) -> list[list[MapleNode]]:
    """Root-to-leaf node paths of every leaf, in key order."""
    out: list[list[MapleNode]] = []

    def walk(node: MapleNode, path: list[MapleNode]) -> None:
        path = [*path, node]
        if node.type == MAPLE_LEAF64:
            out.append(path)
        else:
            for child in node.slots:
                walk(child, path)

    walk(t.root, [])
    return out


@pytest.mark.parametrize("alloc", [False, True])
def test_leaf_to_leaf_moves_charge_the_nodes_climbed_and_descended(alloc: bool) -> None:
    # mas_next_node / mas_prev_node climb to the lowest common ancestor and
    # descend to the neighbour: both legs are charged, 2 line reads per node
    # (the pivot compared, the slot followed); at the last (first) leaf the
    # whole climb to the root is charged.  Distinct lines: 1 or 2 per node
    # (pivot and slot may share no line: a range_64 pivot is in line 0-1,
    # its slot in line 2-3), so at least one and at most two per node.
    rng = random.Random(7)
    t, _ = build(rng, 900, 30)
    if not alloc:  # the same ranges in a normal tree
        r = MapleTree(counters=Counters())
        for first, last, entry in t:
            if entry is not None:
                r.store_range(first, last, entry)
        t = r
    assert t.height >= 3
    paths = leaf_paths(t)
    for k, path in enumerate(paths):
        leaf = path[-1]
        shared = 0 if k + 1 == len(paths) else _common(path, paths[k + 1])
        expect = (len(path) - 1 - shared) + (0 if k + 1 == len(paths) else len(path) - 1 - shared)
        t.counters.reset()
        got = next_leaf(t, leaf)
        assert (got[0] if got else None) is (paths[k + 1][-1] if k + 1 < len(paths) else None)
        assert (t.counters.nodes_visited, t.counters.line_accesses) == (expect, 2 * expect)
        t.counters.op_end()
        assert min(expect, 1) <= t.counters.cache_lines <= 2 * expect

        # from the first leaf: the whole climb to the root, no descent
        shared = 0 if k == 0 else _common(path, paths[k - 1])
        expect = (len(path) - 1 - shared) + (0 if k == 0 else len(path) - 1 - shared)
        t.counters.reset()
        got = prev_leaf(t, leaf)
        assert (got[0] if got else None) is (paths[k - 1][-1] if k else None)
        assert (t.counters.nodes_visited, t.counters.line_accesses) == (expect, 2 * expect)
        t.counters.op_end()
        assert min(expect, 1) <= t.counters.cache_lines <= 2 * expect


def _common(a: list[MapleNode], b: list[MapleNode]) -> int:
    """Index of the deepest node the two root-to-leaf paths share."""
    k = 0
    while k + 1 < len(a) and a[k + 1] is b[k + 1]:
        k += 1
    return k
