"""Brute-force oracles for the rbtree plugin tests (independent of the plugin's code)."""

from __future__ import annotations

import itertools

from vmapsim import VmapArea

ULONG = 1 << 64


def brute_is_within(start: int, end: int, size: int, align: int, vstart: int) -> bool:
    """is_within_this_va() in 64-bit unsigned arithmetic, written from reference §2.3."""
    base = start if start > vstart else vstart
    nva = ((base + align - 1) % ULONG) // align * align  # ALIGN wraps modulo 2**64
    if nva + size >= ULONG:  # the sum overflows
        return False
    if nva < vstart:
        return False
    return nva + size <= end


def brute_rb_check(root: VmapArea | None, augmented: bool) -> list[VmapArea]:
    """Recompute everything from scratch: red-black rules, parents, order, max sizes."""
    out: list[VmapArea] = []
    assert root is None or (root.rb_parent is None and not root.rb_red)

    def walk(node: VmapArea | None, parent: VmapArea | None) -> tuple[int, int]:
        if node is None:
            return 1, 0
        assert node.rb_parent is parent
        if node.rb_red:
            assert not (node.rb_left and node.rb_left.rb_red)
            assert not (node.rb_right and node.rb_right.rb_red)
        lb, lmax = walk(node.rb_left, node)
        out.append(node)
        rb, rmax = walk(node.rb_right, node)
        assert lb == rb, "unequal black height"
        m = max(node.va_end - node.va_start, lmax, rmax)
        if augmented:
            assert node.subtree_max_size == m, (node, node.subtree_max_size, m)
        return lb + (not node.rb_red), m

    walk(root, None)
    for a, b in itertools.pairwise(out):
        assert a.va_end <= b.va_start
    return out
