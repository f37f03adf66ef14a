"""__merge_or_add_vmap_area() (augmented) cases, reference §2.9."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rb_oracle import brute_rb_check

from vmapsim import Counters, VmapArea
from vmapsim_rbtree import ListNeighbourCoalescer, RbFreeIndex

P = 0x1000


def _setup(ranges: list[tuple[int, int]], warn=print):
    free = RbFreeIndex(Counters(), warn)
    for r in ranges:
        free.insert(VmapArea(r[0] * P, r[1] * P))
    return free, ListNeighbourCoalescer(free)


def _ranges(free: RbFreeIndex) -> list[tuple[int, int]]:
    return [(va.va_start // P, va.va_end // P) for va in free]


def test_merge_with_next() -> None:
    free, co = _setup([(0, 2), (10, 12)])
    nxt = free.last()
    va = VmapArea(8 * P, 10 * P)
    res = co.merge_or_add(va)
    assert res is nxt and _ranges(free) == [(0, 2), (8, 12)]
    assert co.dropped == [va]
    brute_rb_check(free.rb_node, augmented=True)


def test_merge_with_prev() -> None:
    free, co = _setup([(0, 2), (10, 12)])
    prv = free.first()
    va = VmapArea(2 * P, 4 * P)
    assert co.merge_or_add(va) is prv
    assert _ranges(free) == [(0, 4), (10, 12)] and co.dropped == [va]
    brute_rb_check(free.rb_node, augmented=True)


def test_merge_with_both() -> None:
    free, co = _setup([(0, 2), (4, 6), (10, 12)])
    prv, nxt = free.first(), free.next_block(free.first())
    va = VmapArea(2 * P, 4 * P)
    assert co.merge_or_add(va) is prv
    assert _ranges(free) == [(0, 6), (10, 12)]
    # va merged into next first, then next was absorbed by prev: both dropped
    assert co.dropped == [va, nxt]
    assert nxt.list_next is None and nxt.rb_parent is None
    assert len(free) == 2
    free.check()


def test_no_merge_links_new_block() -> None:
    free, co = _setup([(0, 2), (10, 12)])
    va = VmapArea(5 * P, 6 * P)
    assert co.merge_or_add(va) is va
    assert _ranges(free) == [(0, 2), (5, 6), (10, 12)] and co.dropped == []
    free.check()


def test_into_empty_tree() -> None:
    free, co = _setup([])
    va = VmapArea(P, 2 * P)
    assert co.merge_or_add(va) is va and _ranges(free) == [(1, 2)]
    assert va.subtree_max_size == P
    free.check()


def test_overlap_warns_and_changes_nothing() -> None:
    warnings: list[str] = []
    free, co = _setup([(0, 2), (10, 12)], warnings.append)
    before = [(va, va.va_start, va.va_end, va.subtree_max_size) for va in free]
    assert co.merge_or_add(VmapArea(11 * P, 13 * P)) is None
    assert warnings == ["vmalloc bug: 0xb000-0xd000 overlaps with 0xa000-0xc000"]
    assert [(va, va.va_start, va.va_end, va.subtree_max_size) for va in free] == before
    assert co.dropped == []
    free.check()


@settings(max_examples=100, deadline=None)
@given(st.permutations(range(48)), st.integers(1, 47))
def test_release_everything_coalesces(order: list[int], stop: int) -> None:
    """Releasing adjacent pages in any order leaves exactly the maximal runs."""
    free, co = _setup([])
    released: set[int] = set()
    for i in order[:stop]:
        co.merge_or_add(VmapArea(i * P, (i + 1) * P))
        released.add(i)
    runs: list[tuple[int, int]] = []
    for i in sorted(released):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    assert _ranges(free) == runs
    assert len(co.dropped) == stop - len(runs)
    brute_rb_check(free.rb_node, augmented=True)
    free.check()
