"""Write-path costs of the rbtree plugin, recomputed by an independent oracle.

For every insert, erase, in-place propagate and merge on the augmented free
tree, and every insert, erase and detach on the plain busy and lazy trees,
the counters the plugin adds to its :class:`vmapsim.Counters` must equal the
costs :mod:`rb_cost_oracle` computes from the rules in docs/rbtree.md
("Counters") and docs/metrics.md (the memory model): rotations, augment
updates (rotate callbacks and propagate steps, the stopping step included),
nodes visited, comparisons, cache lines (from the slab positions and the
72-byte ``struct vmap_area``), walks and list operations.  The tree shapes
(colours, parents, stored ``subtree_max_size``) must agree too, so a count
cannot be right by accident on a different tree.

A few small cases are worked out by hand below, so the oracle itself is
pinned to the documented rules and not only to the plugin.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rb_cost_oracle import (
    AUGMENT,
    FIELD_SPANS,
    LOOKUP,
    SUCCESSOR,
    VMAP_AREA_SIZE,
    Ref,
    RefTree,
    lines,
)

from vmapsim import Counters, VmapArea
from vmapsim.kernel.layout import VMAP_AREA_RB
from vmapsim_rbtree import ListNeighbourCoalescer, RbBusyIndex, RbFreeIndex, RbLazyQueue

#: the distinct-line counters: checked by their own tests below, not by the
#: per-access oracle (which restates ``line_accesses``)
_DISTINCT = ("cache_lines", "lines_read", "lines_written")


def _delta(before: dict[str, int], counters: Counters) -> Counter[str]:
    after = counters.snapshot()  # ends the operation: distinct lines counted
    d = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    lines = d.pop("cache_lines", 0)
    assert lines == d.pop("lines_read", 0) + d.pop("lines_written", 0)
    assert lines > 0 or not d.get("line_accesses", 0)
    return +Counter(d)


def _shape(root: VmapArea | None, augmented: bool) -> list[tuple]:
    out: list[tuple] = []
    stack: list[VmapArea] = []
    n = root
    while stack or n is not None:
        while n is not None:
            stack.append(n)
            n = n.rb_left
        n = stack.pop()
        out.append(
            (
                n.va_start,
                n.va_end,
                n.rb_red,
                None if n.rb_parent is None else n.rb_parent.va_start,
                n.subtree_max_size if augmented else None,
            )
        )
        n = n.rb_right
    return out


class Pair:
    """The plugin structure and the oracle, driven in step."""

    def __init__(self, index: RbFreeIndex | RbBusyIndex | RbLazyQueue, augmented: bool) -> None:
        self.index = index
        self.counters: Counters = index.counters
        self.ref = RefTree(augmented)
        self.augmented = augmented
        self.refs: dict[int, Ref] = {}  # id(VmapArea) -> Ref
        self.live: dict[int, VmapArea] = {}  # va_start -> VmapArea

    def _run(self, what: str, call, expect_fn) -> None:
        before = self.counters.snapshot()
        call()
        got = _delta(before, self.counters)
        want = expect_fn()
        assert got == want, f"{what}: plugin counted {dict(got)}, rules give {dict(want)}"
        self.compare(what)

    def compare(self, what: str) -> None:
        assert _shape(self.index.rb_node, self.augmented) == self.ref.shape(), what
        self.ref.check_values()

    def insert(self, start: int, end: int, pos: int, near: VmapArea | None = None) -> VmapArea:
        va = VmapArea(start, end, slab_pos=pos)
        ref = Ref(start, end, pos)
        near_ref = self.refs[id(near)] if near is not None else None
        index = self.index
        if isinstance(index, RbFreeIndex):
            call = lambda: ok.append(index.insert(va, near))  # noqa: E731
        elif isinstance(index, RbLazyQueue):
            call = lambda: ok.append(index.add(va))  # noqa: E731
        else:
            call = lambda: ok.append(index.insert(va))  # noqa: E731
        ok: list[bool] = []
        self._run(f"insert {start:#x}-{end:#x}", call, lambda: self.ref.insert(ref, near_ref))
        assert ok == [True]
        self.refs[id(va)] = ref
        self.live[start] = va
        return va

    def erase(self, va: VmapArea) -> None:
        ref = self.refs.pop(id(va))
        del self.live[va.va_start]
        self._run(
            f"erase {va.va_start:#x}", lambda: self.index.unlink(va), lambda: self.ref.erase(ref)
        )

    def resize(self, va: VmapArea, start: int, end: int) -> None:
        """Edit a free block's bounds in place (a va_clip fit), then propagate."""
        ref = self.refs[id(va)]
        del self.live[va.va_start]
        va.va_start, va.va_end = start, end
        ref.start, ref.end = start, end
        self.live[start] = va
        self._run(
            f"propagate {start:#x}",
            lambda: self.index.propagate(va),
            lambda: self.ref.propagate(ref),
        )


# -- the cache-line model the oracle uses ------------------------------------------


def test_oracle_struct_is_the_stage0_layout() -> None:
    """The oracle's field offsets are those of the kernel's struct (72 bytes)."""
    assert VMAP_AREA_RB.size == VMAP_AREA_SIZE
    spans = {m.name: (off, off + m.size) for off, m in VMAP_AREA_RB.offsets()}
    assert spans == {
        "va_start": FIELD_SPANS["va_start"],
        "va_end": FIELD_SPANS["va_end"],
        "rb_node": FIELD_SPANS["rb_node"],
        "list": FIELD_SPANS["list"],
        "subtree_max_size / vm": FIELD_SPANS["subtree_max_size"],
        "flags": FIELD_SPANS["flags"],
    }


@pytest.mark.parametrize(
    ("pos", "lookup", "augment", "successor"),
    [
        (0, 1, 1, 1),  # bytes 0..71: va_start..rb_node and the union all in line 0
        (1, 1, 2, 1),  # 72..143: fields 72..111 in line 1, the union at 128 in line 2
        (4, 2, 2, 2),  # 288..359: rb_node 304..327 straddles the boundary at 320
        (7, 2, 2, 1),  # 504..575: va_start in line 7, rb_node 520..543 in line 8 only
        (8, 1, 1, 1),  # 576..647: 576..639 is exactly line 9
    ],
)
def test_line_counts_by_hand(pos: int, lookup: int, augment: int, successor: int) -> None:
    assert lines(pos, LOOKUP) == lookup
    assert lines(pos, AUGMENT) == augment
    assert lines(pos, SUCCESSOR) == successor


# -- worked by hand ------------------------------------------------------------------


def test_free_tree_three_inserts_and_an_erase_by_hand() -> None:
    """A=[0,16) pos 0, B=[32,40) pos 1, C=[64,65) pos 2, then erase B (the root).

    Each line below is docs/rbtree.md's rules applied by hand; the oracle and
    the plugin must both give them.
    """
    counters = Counters()
    free = RbFreeIndex(counters, print)
    ref = RefTree(augmented=True)
    want = [
        # A into an empty tree: no link walk; propagate A (0 -> 16, root): 1 step, 1 line
        {"walks": 1, "nodes_visited": 1, "line_accesses": 1, "augment_updates": 1, "list_ops": 1},
        # B: link walk A (right: 2 comparisons, 1 line); propagate B (0 -> 8, 2 lines
        # at pos 1), A (16 == 16, stop; 1 line)
        {
            "walks": 2,
            "nodes_visited": 3,
            "comparisons": 2,
            "line_accesses": 4,
            "augment_updates": 2,
            "list_ops": 1,
        },
        # C: link walk A, B (right, right: 4 comparisons, 1 + 1 lines); red parent B,
        # no uncle: one left rotation at A (rotate callback: 1 update); propagate C
        # (0 -> 1, 2 lines at pos 2), B (16 == 16, stop; 2 lines)
        {
            "walks": 2,
            "nodes_visited": 4,
            "comparisons": 4,
            "line_accesses": 6,
            "augment_updates": 3,
            "rotations": 1,
            "list_ops": 1,
        },
    ]
    vas = []
    for (s, e, pos), w in zip(((0, 16, 0), (32, 40, 1), (64, 65, 2)), want, strict=True):
        va = VmapArea(s, e, slab_pos=pos)
        r = Ref(s, e, pos)
        before = counters.snapshot()
        assert free.insert(va)
        assert _delta(before, counters) == Counter(w)
        assert ref.insert(r) == Counter(w)
        vas.append((va, r))
    assert free.rb_node is vas[1][0] and free.rb_node.rb_left is vas[0][0]
    # erase B (two children): the successor is its right child C (one rb_left read,
    # 1 line); C takes B's value (a copy, no update); propagate C (16 == 16, stop:
    # 1 step, 2 lines); C was red, so no fix-up; one list_del
    w = Counter({"nodes_visited": 2, "line_accesses": 3, "augment_updates": 1, "list_ops": 1})
    before = counters.snapshot()
    free.unlink(vas[1][0])
    assert _delta(before, counters) == w
    assert ref.erase(vas[1][1]) == w
    assert _shape(free.rb_node, True) == ref.shape()


def test_plain_tree_erase_fixup_by_hand() -> None:
    """Busy tree: insert 10, 20, 30, 40 (pos 0..3), erase 10.

    Inserts: 20's parent 10 is black; 30 makes a right-right chain (one
    rotation, 20 becomes the black root over red 10 and 30); 40 has a red
    parent and red uncle: recolour only (10 and 30 black).  Erasing the black
    leaf 10 leaves a deficit under 20: sibling 30 is black with a red far
    child 40: case 4, one left rotation at 20.  Plain tree: no augment updates.
    """
    counters = Counters()
    busy = RbBusyIndex(counters, print)
    ref = RefTree(augmented=False)
    vas = {}
    for i, k in enumerate((10, 20, 30, 40)):
        va = VmapArea(k, k + 5, slab_pos=i)
        before = counters.snapshot()
        assert busy.insert(va)
        got = _delta(before, counters)
        want = ref.insert(Ref(k, k + 5, i))
        assert got == want
        vas[k] = va
    assert counters.rotations == 1
    refs = {n.start: n for n in ref.in_order()}
    before = counters.snapshot()
    busy.unlink(vas[10])
    got = _delta(before, counters)
    assert got == Counter({"rotations": 1, "list_ops": 1})
    assert ref.erase(refs[10]) == got
    assert [(s, red) for s, _, red, _, _ in _shape(busy.rb_node, False)] == [
        (20, False),
        (30, False),
        (40, False),
    ]


def test_overlapping_insert_costs_its_walk_only() -> None:
    """find_va_links meets an overlap: the nodes read so far (2 comparisons at
    the overlapping one), one walk, nothing linked (no list_ops, no rotation)."""
    counters = Counters()
    warnings: list[str] = []
    busy = RbBusyIndex(counters, warnings.append)
    ref = RefTree(augmented=False)
    for i, (s, e) in enumerate(((0x10000, 0x12000), (0x20000, 0x21000))):
        assert busy.insert(VmapArea(s, e, slab_pos=i))
        ref.insert(Ref(s, e, i))
    before = counters.snapshot()
    assert not busy.insert(VmapArea(0x20800, 0x22000, slab_pos=9))
    got = _delta(before, counters)
    # root [0x10000, 0x12000) at pos 0: right (2); [0x20000, 0x21000) at pos 1: overlap (2)
    assert got == Counter({"walks": 1, "nodes_visited": 2, "comparisons": 4, "line_accesses": 2})
    assert ref.insert(Ref(0x20800, 0x22000, 9)) == got
    assert len(warnings) == 1 and _shape(busy.rb_node, False) == ref.shape()


def test_successor_search_reads_rb_left_only() -> None:
    """Erase of a node with two children whose successor is deep: the search
    reads the right child and every left child down to the successor.

    The successor sits at slab position 7, where va_start..rb_node spans two
    lines but rb_node alone one: the search is charged 1 line there."""
    counters = Counters()
    busy = RbBusyIndex(counters, print)
    ref = RefTree(augmented=False)
    vas = {}
    keys = (50, 20, 80, 60, 90, 55)
    for i, k in enumerate(keys):
        pos = 7 if k == 55 else i
        va = VmapArea(k, k + 1, slab_pos=pos)
        assert busy.insert(va)
        ref.insert(Ref(k, k + 1, pos))
        vas[k] = va
    refs = {n.start: n for n in ref.in_order()}
    root = busy.rb_node
    assert root is vas[50] and root.rb_right is vas[80] and vas[80].rb_left is vas[60]
    assert vas[60].rb_left is vas[55]
    before = counters.snapshot()
    busy.unlink(vas[50])
    got = _delta(before, counters)
    # 80, 60, 55 read: 3 nodes, one line each for rb_node (pos 2, 3 and 7)
    assert got["nodes_visited"] == 3 and got["line_accesses"] == 3
    assert ref.erase(refs[50]) == got
    assert _shape(busy.rb_node, False) == ref.shape()


# -- random sequences against the oracle -----------------------------------------------

#: (kind, slot, length, slab position); kind 0 insert, 1 erase, 2 resize in place
OPS = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 95), st.integers(1, 15), st.integers(0, 55)),
    min_size=1,
    max_size=150,
)


def _drive(pair: Pair, seq: list[tuple[int, int, int, int]], *, resize: bool) -> None:
    for kind, slot, length, pos in seq:
        start = slot * 16
        va = pair.live.get(start)
        if kind == 0 and va is None:
            pair.insert(start, start + length, pos)
        elif kind == 1 and va is not None:
            pair.erase(va)
        elif kind == 2 and va is not None and resize:
            # grow or shrink inside the slot, keeping the start (LE/RE-like edits)
            pair.resize(va, start, start + length)


@settings(max_examples=250, deadline=None)
@given(OPS)
def test_free_tree_costs_match_oracle(seq: list[tuple[int, int, int, int]]) -> None:
    pair = Pair(RbFreeIndex(Counters(), print), augmented=True)
    _drive(pair, seq, resize=True)
    pair.index.check()


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_busy_tree_costs_match_oracle(seq: list[tuple[int, int, int, int]]) -> None:
    pair = Pair(RbBusyIndex(Counters(), print), augmented=False)
    _drive(pair, seq, resize=False)
    pair.index.check()


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_lazy_tree_costs_match_oracle(seq: list[tuple[int, int, int, int]]) -> None:
    """Lazy queue: ``add`` costs as an insert; ``detach_all`` is one list splice."""
    pair = Pair(RbLazyQueue(Counters(), print), augmented=False)
    _drive(pair, [op for op in seq if op[0] == 0], resize=False)
    before = pair.counters.snapshot()
    out = pair.index.detach_all()
    assert _delta(before, pair.counters) == Counter({"list_ops": 1})
    assert [va.va_start for va in out] == sorted(pair.live)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(0, 55)), min_size=1, max_size=80))
def test_ne_fit_insert_from_node(splits: list[tuple[int, int]]) -> None:
    """va_clip's NE fit: shrink a block from the left, then insert the left
    remainder with the link search starting at that block (``near``)."""
    pair = Pair(RbFreeIndex(Counters(), print), augmented=True)
    for i in range(64):
        pair.insert(i * 1024, i * 1024 + 512, i % 56)
    for slot, pos in splits:
        va = pair.live.get(slot * 1024)
        if va is None or va.va_end - va.va_start < 4:
            continue
        start, end = va.va_start, va.va_end
        cut = start + (end - start) // 2
        pair.resize(va, cut + 1, end)  # the request takes [cut, cut + 1)
        pair.insert(start, cut, pos, near=va)
    pair.index.check()


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 47), min_size=1, max_size=48, unique=True),
    st.randoms(use_true_random=False),
)
def test_merge_or_add_costs_match_oracle(order: list[int], rnd: random.Random) -> None:
    """Release unit blocks in random order: adds, merges with next, prev and both."""
    counters = Counters()
    free = RbFreeIndex(counters, print)
    co = ListNeighbourCoalescer(free)
    ref = RefTree(augmented=True)
    ref_of: dict[int, Ref] = {}
    for slot in order:
        pos = rnd.randrange(56)
        va = VmapArea(slot * 8, slot * 8 + 8, slab_pos=pos)
        r = Ref(slot * 8, slot * 8 + 8, pos)
        before = counters.snapshot()
        res = co.merge_or_add(va)
        got = _delta(before, counters)
        ref_res, absorbed, want = ref.merge_or_add(r)
        assert got == want, f"release {slot}: plugin {dict(got)}, rules {dict(want)}"
        ref_of[id(va)] = r
        assert res is not None and (res.va_start, res.va_end) == (ref_res.start, ref_res.end)
        assert [(a.va_start, a.va_end) for a in co.dropped] == [(a.start, a.end) for a in absorbed]
        co.dropped.clear()
        assert _shape(free.rb_node, True) == ref.shape()
        ref.check_values()
    free.check()


def test_long_seeded_mixed_sequence() -> None:
    """4000 seeded operations on a free tree of up to ~1000 blocks (deep trees:
    every fix-up case and long propagations)."""
    rng = random.Random(14)
    pair = Pair(RbFreeIndex(Counters(), print), augmented=True)
    for _ in range(4000):
        slot = rng.randrange(2048)
        va = pair.live.get(slot * 64)
        if va is None:
            pair.insert(slot * 64, slot * 64 + rng.randrange(1, 64), rng.randrange(56))
        elif rng.random() < 0.3:
            pair.resize(va, va.va_start, va.va_start + rng.randrange(1, 64))
        else:
            pair.erase(va)
    pair.index.check()
    # every rebalancing case ran, so every rotation site was checked
    cases = ("insert 1", "insert 2", "insert 3", "erase 1", "erase 2", "erase 3", "erase 4")
    assert all(pair.ref.cases[k] > 0 for k in cases), pair.ref.cases


def test_distinct_lines_of_a_first_insert_by_hand() -> None:
    """Distinct lines of the first insert into an empty free tree, worked
    from the 72-byte layout (``va_start`` @0, ``va_end`` @8, ``rb_node``
    @16..39, ``list`` @40..55, ``subtree_max_size`` @56): the object at slab
    position 0 of a page lies in line 0 of the page.  ``__link_va`` writes
    its rb_node and list_head (line 0) and the list head of the tree (its
    own line); the propagate reads ``va_start``..``subtree_max_size`` (line
    0) and writes ``subtree_max_size`` (line 0).  Two lines, both written.
    At position 1 (bytes 72..143: lines 1 and 2) the rb_node (88..111) and
    list (112..127) are in line 1, ``subtree_max_size`` (128) in line 2, and
    the propagate reads both: three lines, all written."""
    for pos, want in ((0, 2), (1, 3)):
        counters = Counters()
        free = RbFreeIndex(counters, print, layout=VMAP_AREA_RB)
        va = VmapArea(0x1000, 0x2000, slab_pos=pos, slab_blk=1 << 20)
        counters.op_end()
        assert free.insert(va)
        counters.op_end()
        assert (counters.cache_lines, counters.lines_written) == (want, want)
