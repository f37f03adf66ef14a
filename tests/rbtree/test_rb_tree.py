"""Red-black rules and augmented values after random insert/erase sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rb_oracle import brute_rb_check

from vmapsim import Counters, InvariantError, VmapArea
from vmapsim_rbtree import RbBusyIndex, RbFreeIndex

# (op, slot, length): insert [slot*16, slot*16 + length) or erase the area at slot
ops = st.lists(
    st.tuples(st.booleans(), st.integers(0, 63), st.integers(1, 16)), min_size=1, max_size=120
)


def _run(index, seq: list[tuple[bool, int, int]], augmented: bool) -> None:
    live: dict[int, VmapArea] = {}
    for is_insert, slot, length in seq:
        if is_insert and slot not in live:
            va = VmapArea(slot * 16, slot * 16 + length)
            assert index.insert(va)
            live[slot] = va
        elif not is_insert and slot in live:
            index.unlink(live.pop(slot))
        index.check()
        got = brute_rb_check(index.rb_node, augmented)
        expect = [live[k] for k in sorted(live)]
        assert got == expect
        assert list(index) == expect
        assert len(index) == len(expect)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_augmented_tree_random(seq: list[tuple[bool, int, int]]) -> None:
    _run(RbFreeIndex(Counters(), print), seq, augmented=True)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_plain_tree_random(seq: list[tuple[bool, int, int]]) -> None:
    _run(RbBusyIndex(Counters(), print), seq, augmented=False)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(-8, 8)), min_size=1, max_size=60))
def test_propagate_after_in_place_resize(edits: list[tuple[int, int]]) -> None:
    """augment_tree_propagate_from fixes every value after a block grows or shrinks."""
    free = RbFreeIndex(Counters(), print)
    areas = [VmapArea(i * 64, i * 64 + 16) for i in range(64)]
    for va in areas:
        free.insert(va)
    for slot, delta in edits:
        va = areas[slot]
        va.va_end = max(va.va_start + 1, min(va.va_start + 63, va.va_end + delta))
        free.propagate(va)
        brute_rb_check(free.rb_node, augmented=True)


def test_sequential_and_reverse_fill() -> None:
    counters = Counters()
    for order in (range(2000), range(1999, -1, -1)):
        free = RbFreeIndex(counters, print)
        vas = [VmapArea(i * 8, i * 8 + 1 + i % 7) for i in order]
        for va in vas:
            free.insert(va)
        brute_rb_check(free.rb_node, augmented=True)
        for va in vas[::2]:
            free.unlink(va)
            assert va.list_next is None and va.rb_parent is None
        brute_rb_check(free.rb_node, augmented=True)
        free.check()


def test_counters_move() -> None:
    counters = Counters()
    free = RbFreeIndex(counters, print)
    for i in range(100):
        free.insert(VmapArea(i * 8, i * 8 + 4))
    assert counters.rotations > 0
    assert counters.augment_updates > 0
    # a link search per insert into a non-empty tree, a propagate per insert
    assert counters.walks == 99 + 100
    assert counters.nodes_visited > 0 and counters.line_accesses >= counters.nodes_visited
    rot = counters.rotations
    for va in list(free)[:50]:
        free.unlink(va)
    assert counters.rotations > rot


def test_cache_lines_follow_slab_position() -> None:
    counters = Counters()
    """Reference §1: a lookup reads va_start, va_end and rb_node, bytes 0..39 of the
    72-byte object.  At slab position 1 (byte 72) they sit in one line (72..111); at
    position 4 (byte 288) they straddle the line boundary at 320: two lines."""
    for pos, lines in ((1, 1), (4, 2)):
        busy = RbBusyIndex(counters, print)
        va = VmapArea(0x1000, 0x2000, slab_pos=pos)
        busy.insert(va)
        counters.op_end()
        before = counters.cache_lines, counters.line_accesses
        assert busy.find(0x1800) is va
        counters.op_end()  # the lookup is one operation: its distinct lines
        assert counters.cache_lines - before[0] == lines
        assert counters.line_accesses - before[1] == lines


def test_check_reports_corruption() -> None:
    free = RbFreeIndex(Counters(), print)
    vas = [VmapArea(i * 8, i * 8 + 4) for i in range(32)]
    for va in vas:
        free.insert(va)
    free.check()
    root = free.rb_node
    root.subtree_max_size += 1
    with pytest.raises(InvariantError, match="subtree_max_size"):
        free.check()
    root.subtree_max_size -= 1
    root.rb_red = True
    with pytest.raises(InvariantError, match=r"root .* is red"):
        free.check()
    root.rb_red = False
    free.nr += 1
    with pytest.raises(InvariantError):
        free.check()
    free.nr -= 1
    # list out of tree order
    a, b = vas[3], vas[4]
    a.list_prev.list_next, b.list_next.list_prev = b, a
    a.list_next, b.list_next, b.list_prev, a.list_prev = b.list_next, a, a.list_prev, b
    with pytest.raises(InvariantError, match="list entry"):
        free.check()


def test_long_seeded_sequence_matches_brute_force() -> None:
    """20000 mixed inserts and erases (seeded), brute-force check every 500 steps."""
    import random

    rng = random.Random(2024)
    free = RbFreeIndex(Counters(), print)
    live: dict[int, VmapArea] = {}
    for step in range(20000):
        slot = rng.randrange(4096)
        if slot in live:
            free.unlink(live.pop(slot))
        else:
            va = VmapArea(slot * 64, slot * 64 + rng.randrange(1, 64), slab_pos=slot % 56)
            assert free.insert(va)
            live[slot] = va
        if step % 500 == 0:
            assert brute_rb_check(free.rb_node, augmented=True) == [live[k] for k in sorted(live)]
    free.check()
