"""find_vmap_lowest_match() and is_within_this_va() against brute-force oracles."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rb_oracle import ULONG, brute_is_within

from vmapsim import PAGE_SIZE, Counters, VmapArea
from vmapsim_rbtree import RbFreeIndex, is_within_this_va

ULONG_MAX = ULONG - 1


@st.composite
def free_trees(draw):
    """Non-overlapping page-granular free blocks, optionally pushed near ULONG_MAX."""
    gaps = draw(
        st.lists(st.tuples(st.integers(1, 40), st.integers(1, 64)), min_size=1, max_size=60)
    )
    top = draw(st.booleans())
    base = ULONG - 4096 * PAGE_SIZE if top else draw(st.integers(0, 1 << 40)) * PAGE_SIZE
    blocks = []
    addr = base
    for gap, size in gaps:
        addr += gap * PAGE_SIZE
        end = min(addr + size * PAGE_SIZE, ULONG_MAX)
        if end <= addr:
            break
        blocks.append((addr, end))
        addr = end
    order = draw(st.permutations(range(len(blocks))))
    free = RbFreeIndex(Counters(), print)
    for i in order:
        assert free.insert(VmapArea(*blocks[i]))
    free.check()
    return free, blocks


def _vstart(draw, blocks):
    """vstart >= 1, as in the kernel (the KVA space is [1, ULONG_MAX)).  With
    vstart == 0 a wrapped ALIGN (0) passes is_within_this_va's nva >= vstart test
    for any block, and the size-pruned search then differs from a linear scan."""
    lo, hi = blocks[0][0], blocks[-1][1]
    return draw(
        st.one_of(
            st.just(1),
            st.integers(max(lo - 8 * PAGE_SIZE, 1), hi),
            st.sampled_from([b[0] for b in blocks] + [b[0] + 1 for b in blocks]),
        )
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_lowest_match_is_lowest_fit_without_adjust(data) -> None:
    """adjust_search_size=False (align <= PAGE_SIZE, or an exact window): the result
    is the lowest block for which is_within_this_va holds, or None if none does."""
    free, blocks = data.draw(free_trees())
    size = data.draw(st.integers(1, 80)) * PAGE_SIZE + data.draw(st.sampled_from([0, 0, 1]))
    align = data.draw(st.sampled_from([1, 8, PAGE_SIZE, 2 * PAGE_SIZE, 1 << 20, 1 << 63]))
    vstart = _vstart(data.draw, blocks)
    got = free.find_vmap_lowest_match(size, align, vstart, False)
    want = next((b for b in blocks if brute_is_within(*b, size, align, vstart)), None)
    assert (None if got is None else (got.va_start, got.va_end)) == want


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_lowest_match_with_adjust(data) -> None:
    """align > PAGE_SIZE with adjust: the result fits; it is no higher than the lowest
    fitting block of size >= size + align - 1; None only if no such block fits."""
    free, blocks = data.draw(free_trees())
    size = data.draw(st.integers(1, 40)) * PAGE_SIZE
    align = PAGE_SIZE << data.draw(st.integers(1, 6))
    vstart = _vstart(data.draw, blocks)
    got = free.find_vmap_lowest_match(size, align, vstart, True)
    length = size + align - 1
    big = next(
        (b for b in blocks if b[1] - b[0] >= length and brute_is_within(*b, size, align, vstart)),
        None,
    )
    if got is None:
        assert big is None
    else:
        assert brute_is_within(got.va_start, got.va_end, size, align, vstart)
        if big is not None:
            assert got.va_start <= big[0]


def test_is_within_this_va_overflow_and_wrap() -> None:
    top = VmapArea(ULONG_MAX - 2 * PAGE_SIZE + 1, ULONG_MAX)
    # ALIGN(vstart, 1 << 63) wraps to 0: below vstart, no fit
    assert not is_within_this_va(top, PAGE_SIZE, 1 << 63, top.va_start)
    # nva + size would overflow 64 bits
    assert not is_within_this_va(top, ULONG - top.va_start, 1, top.va_start)
    # an ordinary fit and a miss by one byte
    va = VmapArea(0x10000, 0x20000)
    assert is_within_this_va(va, 0x10000, PAGE_SIZE, 0)
    assert not is_within_this_va(va, 0x10001, 1, 0)
    assert not is_within_this_va(va, 0x8000, 0x10000, 0x10001)  # aligns to 0x20000
    # vend is not checked here, and vstart inside the block is honoured
    assert is_within_this_va(va, 0x1000, 0x1000, 0x1F000)


def test_backtrack_to_right_subtree() -> None:
    """A left subtree with big enough blocks that all sit below vstart forces the
    climb-and-go-right path: the answer is the first fit above vstart."""
    free = RbFreeIndex(Counters(), print)
    blocks = [(i * 0x100000, i * 0x100000 + 0x10000) for i in range(64)]
    for b in blocks:
        free.insert(VmapArea(*b))
    vstart = blocks[20][0] + 0xF001  # leaves < 0x1000 in block 20
    got = free.find_vmap_lowest_match(0x1000, 1, vstart, False)
    assert (got.va_start, got.va_end) == blocks[21]
    assert free.find_vmap_lowest_match(0x20000, 1, 0, False) is None
    assert free.find_vmap_lowest_match(0x1000, 1, blocks[63][1], False) is None


def test_empty_tree_returns_none() -> None:
    assert RbFreeIndex(Counters(), print).find_vmap_lowest_match(PAGE_SIZE, 1, 0, False) is None


def test_adjusted_search_skips_a_small_aligned_fit() -> None:
    """The kernel's pruning, on a tree whose shape is known: root B = [1 MiB,
    2 MiB) with left child H = [4 KiB, 12 KiB).  One page aligned to 8 KiB fits H
    at 8 KiB, but H (8 KiB) is shorter than size + align - 1, so with adjust the
    search does not go left and returns the root; without adjust it takes H."""
    free = RbFreeIndex(Counters(), print)
    big = VmapArea(0x100000, 0x200000)
    hole = VmapArea(0x1000, 0x3000)
    assert free.insert(big) and free.insert(hole)
    assert free.rb_node is big and big.rb_left is hole
    assert free.find_vmap_lowest_match(PAGE_SIZE, 2 * PAGE_SIZE, 1, True) is big
    assert free.find_vmap_lowest_match(PAGE_SIZE, 2 * PAGE_SIZE, 1, False) is hole
    # vstart at or above H's start: the left subtree is not entered either way
    assert free.find_vmap_lowest_match(PAGE_SIZE, 1, 0x100000, False) is big


def test_search_does_not_go_left_below_vstart() -> None:
    """Root R = [64 KiB, 128 KiB), left child L = [4 KiB, 32 KiB) (big enough), vstart
    inside R: the left subtree lies below vstart, so the search must not descend
    into it; R itself fits above vstart."""
    free = RbFreeIndex(Counters(), print)
    root = VmapArea(0x10000, 0x20000)
    left = VmapArea(0x1000, 0x8000)
    assert free.insert(root) and free.insert(left)
    assert free.rb_node is root and root.rb_left is left
    counters = free.counters
    before = counters.nodes_visited
    assert free.find_vmap_lowest_match(PAGE_SIZE, 1, 0x10000, False) is root
    assert counters.nodes_visited - before == 1  # the root only
