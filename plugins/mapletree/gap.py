"""Gap bookkeeping and gap search of allocation trees.

Models ``mas_leaf_max_gap`` (a leaf's largest NULL run, found by scanning),
``mas_update_gap`` / ``mas_parent_gap`` (propagating a child's new maximum
gap upward, stopping at the first parent whose recorded value is
unchanged), and ``mas_empty_area`` / ``mas_empty_area_rev`` (descending only
into children whose recorded gap can hold the request).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from .node import (
    GAP_SCAN_LINES,
    GAP_SCAN_MASK,
    GAPS_READ_MASK,
    MAPLE_LEAF64,
    ULONG_MAX,
    MapleNode,
    gap_mask,
)

if TYPE_CHECKING:
    from .tree import MapleTree

__all__ = ["gap_up", "leaf_max_gap", "node_max_gap", "search_forward", "search_reverse"]

#: _ENTER_COST[type][used slots][offset]: the cost of a gap-search step that
#: enters the child at the first offset it examines, packed as
#: ``1 << _VISIT_SHIFT | lines << _LINE_SHIFT | comparisons`` (one node
#: visited).  The fields are 10 bits wide so that the sum stays below 2**30,
#: a one-digit CPython int whose additions are the fast ones.  A search takes
#: such steps only along at most three root-to-leaf chains (towards ``lo``,
#: into the subtree that fits, along ``hi``; a subtree inside the window
#: whose recorded gap is large enough always holds a fit), at most 10
#: comparisons and 4 lines each: far below 1024 for any tree height.
_LINE_SHIFT = 10
_VISIT_SHIFT = 20
_FIELD = (1 << 10) - 1
_ENTER_COST: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    (
        (),  # indexed by the number of used slots: no row for 0
        *(
            tuple(
                (1 << _VISIT_SHIFT) | (per_end[off][off] << _LINE_SHIFT) | (off + 1)
                for off in range(len(per_end))
            )
            for per_end in per_type
        ),
    )
    for per_type in GAP_SCAN_LINES
)


_LEAF_SCAN = GAP_SCAN_LINES[MAPLE_LEAF64]


def leaf_max_gap(pivots: list[int], slots: list[object], mn: int) -> int:
    """``mas_leaf_max_gap()``: size of the largest NULL range in a leaf.

    Only the NULL slots are visited, found by ``list.count`` / ``list.index``
    (C loops; a leaf holds few NULLs, never two side by side)."""
    gap = 0
    i = -1
    for _ in range(slots.count(None)):
        i = slots.index(None, i + 1)
        g = pivots[i] - (pivots[i - 1] if i else mn - 1)
        if g > gap:
            gap = g
    return gap


def node_max_gap(node: MapleNode, mn: int) -> int:
    """``mas_max_gap()``: a node's largest gap (leaf scan or gap array max)."""
    if node.type == MAPLE_LEAF64:
        return leaf_max_gap(node.pivots, node.slots, mn)
    return max(node.gaps)  # type: ignore[arg-type]


def gap_up(tree: MapleTree, node: MapleNode, gap: int, off: int = -1) -> None:
    """``mas_update_gap()`` → ``mas_parent_gap()``: push ``gap`` upward.

    ``gap`` is the new maximum gap of ``node``.  Each parent's gap slot for
    the child is rewritten if it differs, then the parent's own maximum is
    carried up; the walk stops at the first unchanged slot.  ``off`` is
    ``node``'s slot in its parent when the caller knows it, else -1.
    """
    updates = 0
    parent = node.parent
    c = tree.counters
    while parent is not None:
        gaps = parent.gaps
        if off < 0:
            off = bisect_left(parent.pivots, node.pivots[-1])
        b = parent.blk
        # ma_max_gap()/the slot compared read the gap array and metadata
        rd = c.rd
        rd[b] = rd.get(b, 0) | GAPS_READ_MASK
        if gaps[off] == gap:
            break
        gaps[off] = gap
        wr = c.wr
        wr[b] = wr.get(b, 0) | gap_mask(off)
        updates += 1
        gap = max(gaps)
        node = parent
        parent = node.parent
        off = -1
    if updates:
        c.gap_updates += updates
        c.line_accesses += updates


def search_forward(
    tree: MapleTree, lo: int, hi: int, size: int, where: list[Any] | None = None
) -> int:
    """``mas_empty_area()`` core: lowest ``index >= lo`` with a free
    ``[index, index+size-1] <= hi``; -1 if none.  On success ``where`` (if
    given) receives ``[leaf, offset, leaf_min]`` of the NULL slot found.

    Children are entered in key order when their recorded gap is at least
    ``size``; a child whose gap lies outside ``[lo, hi]`` is left again (the
    kernel's ``mas_skip_node``).  A NULL run never crosses a leaf boundary, so
    a fit is always a single NULL slot of one leaf.

    The depth-first search is a loop: a failed child resumes its parent's
    scan after that child (found through the parent pointer, as
    ``mas_ascend`` does).  For each node the comparisons are ``offset + 1``
    of the last slot examined and the cache lines those of the offsets from
    the first examined (or the last child entered) up to the last examined
    (:data:`GAP_SCAN_LINES`).
    """
    table = GAP_SCAN_LINES
    ltab = _LEAF_SCAN
    idiag = _ENTER_COST[tree.itype]
    mtable = GAP_SCAN_MASK
    lmtab = GAP_SCAN_MASK[MAPLE_LEAF64]
    imask = GAP_SCAN_MASK[tree.itype]
    rd = tree.counters.rd
    node = tree.root
    nmin = 0
    visited = cmps = lines = 0
    cost = 0
    res = -1
    while True:
        # Enter ``node`` (minimum ``nmin``).
        piv = node.pivots
        off = bisect_left(piv, lo)  # 0 when lo <= nmin (nmin <= piv[0])
        if node.type != MAPLE_LEAF64 and node.gaps[off] >= size:
            # Common case: enter the child holding ``lo`` straight away.
            cost += idiag[len(piv)][off]
            b = node.blk
            rd[b] = rd.get(b, 0) | imask[len(piv) - 1][off][off]
            if off:
                nmin = piv[off - 1] + 1
            node = node.slots[off]
            continue
        visited += 1
        n = len(piv)
        # The scan examines offsets off.. up to the first pivot >= hi (or the
        # last slot); ``last`` is where it stops when nothing is found.
        last = bisect_left(piv, hi, off)
        if last == n:
            last -= 1
        i = last
        if node.type == MAPLE_LEAF64:
            slots = node.slots
            for j in range(off, last + 1):
                if slots[j] is None:
                    prev = piv[j - 1] if j else nmin - 1
                    start = prev + 1 if prev >= lo else lo
                    p = piv[j]
                    stop = p if p < hi else hi
                    if stop - start + 1 >= size:
                        res = start
                        if where is not None:
                            where[:] = (node, j, nmin)
                        i = j
                        break
            cmps += i + 1
            lines += ltab[n - 1][off][i]
            b = node.blk
            rd[b] = rd.get(b, 0) | lmtab[n - 1][off][i]
            if res >= 0:
                break
        else:
            gaps = node.gaps
            for j in range(off, last + 1):
                if gaps[j] >= size:
                    cmps += j + 1
                    lines += table[node.type][n - 1][off][j]
                    b = node.blk
                    rd[b] = rd.get(b, 0) | mtable[node.type][n - 1][off][j]
                    nmin = piv[j - 1] + 1
                    node = node.slots[j]
                    break
            else:
                j = -1
            if j >= 0:
                continue
            cmps += i + 1
            lines += table[node.type][n - 1][off][i]
            b = node.blk
            rd[b] = rd.get(b, 0) | mtable[node.type][n - 1][off][i]
        # ``node`` failed: resume the nearest ancestor with another candidate.
        while True:
            parent = node.parent
            if parent is None:
                break
            piv = parent.pivots
            n = len(piv)
            off = bisect_left(piv, node.pivots[-1])
            node = parent
            gaps = node.gaps
            # the siblings after the failed child, up to the first pivot >= hi
            last = bisect_left(piv, hi, off)
            if last == n:
                last -= 1
            for i in range(off + 1, last + 1):
                if gaps[i] >= size:
                    break
            else:
                i = -1
            if i >= 0:  # enter child ``i``
                cmps += i + 1
                lines += table[node.type][n - 1][off][i]
                b = node.blk
                rd[b] = rd.get(b, 0) | mtable[node.type][n - 1][off][i]
                break
            i = last
            cmps += i + 1
            lines += table[node.type][n - 1][off][i]
            b = node.blk
            rd[b] = rd.get(b, 0) | mtable[node.type][n - 1][off][i]
        if parent is None:
            break
        nmin = piv[i - 1] + 1
        node = node.slots[i]
    c = tree.counters
    c.walks += 1
    c.nodes_visited += visited + (cost >> _VISIT_SHIFT)
    c.comparisons += cmps + (cost & _FIELD)
    c.line_accesses += lines + ((cost >> _LINE_SHIFT) & _FIELD)
    return res


def search_reverse(tree: MapleTree, lo: int, hi: int, size: int) -> int:
    """``mas_empty_area_rev()`` core: highest fit; returns its last index or -1.

    The mirror image of :func:`search_forward`: children are tried from the
    one holding ``hi`` downwards, comparisons are the offsets examined from
    the first (or the last child entered) down to the last, plus one.
    """
    table = GAP_SCAN_LINES
    mtable = GAP_SCAN_MASK
    rd = tree.counters.rd
    node = tree.root
    nmin = 0
    nmax = ULONG_MAX
    stack: list[tuple[MapleNode, list[int], list[int], int, int]] = []
    visited = cmps = lines = 0
    res = -1
    while True:
        # Enter ``node`` (range ``[nmin, nmax]``).
        piv = node.pivots
        off = bisect_left(piv, hi) if hi < nmax else len(piv) - 1
        visited += 1
        i = off
        ntype = node.type
        found = False
        if ntype == MAPLE_LEAF64:
            slots = node.slots
            while i >= 0:
                start = piv[i - 1] + 1 if i else nmin
                if slots[i] is None:
                    lo2 = start if start > lo else lo
                    p = piv[i]
                    stop = p if p < hi else hi
                    if stop - lo2 + 1 >= size:
                        res = stop
                        break
                if start <= lo:
                    break
                i -= 1
            if i < 0:
                i = 0
            cmps += off - i + 1
            lines += table[ntype][len(piv) - 1][i][off]
            b = node.blk
            rd[b] = rd.get(b, 0) | mtable[ntype][len(piv) - 1][i][off]
            if res >= 0:
                break
        else:
            gaps = node.gaps
            while i >= 0:
                start = piv[i - 1] + 1 if i else nmin
                if gaps[i] >= size:
                    found = True
                    break
                if start <= lo:
                    break
                i -= 1
            if not found:
                if i < 0:
                    i = 0
                cmps += off - i + 1
                lines += table[ntype][len(piv) - 1][i][off]
                b = node.blk
                rd[b] = rd.get(b, 0) | mtable[ntype][len(piv) - 1][i][off]
        if not found:
            # ``node`` failed: resume the nearest ancestor with another
            # candidate below the child it entered last.
            while stack:
                node, piv, gaps, nmin, off = stack.pop()
                i = off
                start = piv[i - 1] + 1 if i else nmin
                while start > lo:
                    i -= 1
                    if i < 0:
                        break
                    start = piv[i - 1] + 1 if i else nmin
                    if gaps[i] >= size:
                        found = True
                        break
                if found:
                    break
                if i < 0:
                    i = 0
                cmps += off - i + 1
                lines += table[node.type][len(piv) - 1][i][off]
                b = node.blk
                rd[b] = rd.get(b, 0) | mtable[node.type][len(piv) - 1][i][off]
            if not found:
                break
        # Enter child ``i`` of ``node`` (range ``[start, piv[i]]``).
        cmps += off - i + 1
        lines += table[node.type][len(piv) - 1][i][off]
        b = node.blk
        rd[b] = rd.get(b, 0) | mtable[node.type][len(piv) - 1][i][off]
        stack.append((node, piv, gaps, nmin, i))
        nmin = start
        nmax = piv[i]
        node = node.slots[i]
    c = tree.counters
    c.walks += 1
    c.nodes_visited += visited
    c.comparisons += cmps
    c.line_accesses += lines
    return res
