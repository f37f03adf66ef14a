"""Gap bookkeeping and gap search of allocation trees.

Models ``mas_leaf_max_gap`` (a leaf's largest NULL run, found by scanning),
``mas_update_gap`` / ``mas_parent_gap`` (propagating a child's new maximum
gap upward, stopping at the first parent whose recorded value is
unchanged), and ``mas_empty_area`` / ``mas_empty_area_rev`` (descending only
into children whose recorded gap can hold the request).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

from .node import MAPLE_LEAF64, ULONG_MAX, MapleNode, scan_lines

if TYPE_CHECKING:
    from .tree import MapleTree

__all__ = ["gap_up", "leaf_max_gap", "node_max_gap", "search_forward", "search_reverse"]


def leaf_max_gap(pivots: list[int], slots: list[object], mn: int) -> int:
    """``mas_leaf_max_gap()``: size of the largest NULL range in a leaf."""
    gap = 0
    prev = mn - 1
    for p, s in zip(pivots, slots, strict=True):
        if s is None and p - prev > gap:
            gap = p - prev
        prev = p
    return gap


def node_max_gap(node: MapleNode, mn: int) -> int:
    """``mas_max_gap()``: a node's largest gap (leaf scan or gap array max)."""
    if node.type == MAPLE_LEAF64:
        return leaf_max_gap(node.pivots, node.slots, mn)
    return max(node.gaps)  # type: ignore[arg-type]


def gap_up(tree: MapleTree, node: MapleNode, gap: int) -> None:
    """``mas_update_gap()`` → ``mas_parent_gap()``: push ``gap`` upward.

    ``gap`` is the new maximum gap of ``node``.  Each parent's gap slot for
    the child is rewritten if it differs, then the parent's own maximum is
    carried up; the walk stops at the first unchanged slot.
    """
    updates = 0
    parent = node.parent
    while parent is not None:
        gaps = parent.gaps
        off = bisect_left(parent.pivots, node.pivots[-1])
        if gaps[off] == gap:
            break
        gaps[off] = gap
        updates += 1
        gap = max(gaps)
        node = parent
        parent = node.parent
    if updates:
        c = tree.counters
        c.gap_updates += updates
        c.cache_lines += updates


def search_forward(tree: MapleTree, lo: int, hi: int, size: int) -> int:
    """``mas_empty_area()`` core: lowest ``index >= lo`` with a free
    ``[index, index+size-1] <= hi``; -1 if none.

    Children are entered in key order when their recorded gap is at least
    ``size``; a child whose gap lies outside ``[lo, hi]`` is left again (the
    kernel's ``mas_skip_node``).  A NULL run never crosses a leaf boundary, so
    a fit is always a single NULL slot of one leaf.
    """
    counts = [0, 0, 0]  # nodes visited, comparisons, cache lines
    res = _fwd(tree.root, 0, lo, hi, size, counts)
    c = tree.counters
    c.walks += 1
    c.nodes_visited += counts[0]
    c.comparisons += counts[1]
    c.cache_lines += counts[2]
    return res


def _fwd(node: MapleNode, nmin: int, lo: int, hi: int, size: int, counts: list[int]) -> int:
    piv = node.pivots
    slots = node.slots
    n = len(piv)
    off = bisect_left(piv, lo) if lo > nmin else 0
    counts[0] += 1
    i = off
    if node.type == MAPLE_LEAF64:
        prev = piv[off - 1] if off else nmin - 1
        while i < n:
            p = piv[i]
            if slots[i] is None:
                start = prev + 1 if prev >= lo else lo
                stop = p if p < hi else hi
                if stop - start + 1 >= size:
                    counts[1] += i + 1
                    counts[2] += scan_lines(node, off, i)
                    return start
            if p >= hi:
                break
            prev = p
            i += 1
        counts[1] += i + 1
        counts[2] += scan_lines(node, off, i)
        return -1
    gaps = node.gaps
    cmin = piv[off - 1] + 1 if off else nmin
    while i < n:
        p = piv[i]
        if gaps[i] >= size:
            counts[1] += i + 1
            counts[2] += scan_lines(node, off, i, gaps=True)
            off = i
            res = _fwd(slots[i], cmin, lo, hi, size, counts)
            if res >= 0:
                return res
        if p >= hi:
            break
        cmin = p + 1
        i += 1
    counts[1] += i + 1
    counts[2] += scan_lines(node, off, i, gaps=True)
    return -1


def search_reverse(tree: MapleTree, lo: int, hi: int, size: int) -> int:
    """``mas_empty_area_rev()`` core: highest fit; returns its last index or -1."""
    counts = [0, 0, 0]
    res = _rev(tree.root, 0, ULONG_MAX, lo, hi, size, counts)
    c = tree.counters
    c.walks += 1
    c.nodes_visited += counts[0]
    c.comparisons += counts[1]
    c.cache_lines += counts[2]
    return res


def _rev(
    node: MapleNode, nmin: int, nmax: int, lo: int, hi: int, size: int, counts: list[int]
) -> int:
    piv = node.pivots
    slots = node.slots
    off = bisect_left(piv, hi) if hi < nmax else len(piv) - 1
    counts[0] += 1
    i = off
    if node.type == MAPLE_LEAF64:
        while i >= 0:
            start = piv[i - 1] + 1 if i else nmin
            if slots[i] is None:
                lo2 = start if start > lo else lo
                stop = piv[i] if piv[i] < hi else hi
                if stop - lo2 + 1 >= size:
                    counts[1] += off - i + 1
                    counts[2] += scan_lines(node, i, off)
                    return stop
            if start <= lo:
                break
            i -= 1
        i = max(i, 0)
        counts[1] += off - i + 1
        counts[2] += scan_lines(node, i, off)
        return -1
    gaps = node.gaps
    while i >= 0:
        start = piv[i - 1] + 1 if i else nmin
        if gaps[i] >= size:
            counts[1] += off - i + 1
            counts[2] += scan_lines(node, i, off, gaps=True)
            off = i
            res = _rev(slots[i], start, piv[i], lo, hi, size, counts)
            if res >= 0:
                return res
        if start <= lo:
            break
        i -= 1
    i = max(i, 0)
    counts[1] += off - i + 1
    counts[2] += scan_lines(node, i, off, gaps=True)
    return -1
