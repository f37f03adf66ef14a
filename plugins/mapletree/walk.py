"""Read-side walks: descent to a leaf, lookups, and slot-by-slot stepping.

Models ``mtree_range_walk`` / ``mas_descend`` (one pivot scan per level),
``mtree_load``, and the leaf-to-leaf moves of ``mas_next_node`` /
``mas_prev_node`` used by ``mas_next_slot`` / ``mas_prev_slot``.  Counters are
accumulated in locals and added once per call.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from vmapsim import POPCOUNT4

from .errors import ZERO_ENTRY
from .node import (
    COST_MASK,
    COST_SHIFT,
    DESCEND_COST,
    DESCEND_MASK,
    LOAD_MASK,
    MAPLE_LEAF64,
    ULONG_MAX,
    MapleNode,
    pivot_mask,
    slot_mask,
)

if TYPE_CHECKING:
    from .tree import MapleTree

__all__ = ["descend", "load", "next_leaf", "prev_leaf", "virtual_root_leaf"]

#: DESCEND_COST rows indexed by the number of used slots (``len(pivots)``)
#: rather than ``end``, saving a subtraction per level.
_COST_BY_LEN = tuple(((), *per_type) for per_type in DESCEND_COST)
_LEAF_COST = _COST_BY_LEN[MAPLE_LEAF64]
#: DESCEND_MASK / LOAD_MASK rows indexed by ``len(pivots)``, as _COST_BY_LEN
_MASK_BY_LEN = tuple(((), *per_type) for per_type in DESCEND_MASK)
_LEAF_MASK = _MASK_BY_LEN[MAPLE_LEAF64]
_LOAD_BY_LEN = tuple(((), *per_type) for per_type in LOAD_MASK)
_LEAF_LOAD = _LOAD_BY_LEN[MAPLE_LEAF64]


def _touch_path(tree: MapleTree, touches: tuple[int, ...]) -> None:
    """Record the internal steps' line reads (``blk, mask`` pairs, flat)."""
    rd = tree.counters.rd
    for k in range(0, len(touches), 2):
        b = touches[k]
        rd[b] = rd.get(b, 0) | touches[k + 1]


def _path(tree: MapleTree, index: int) -> tuple[Any, ...]:
    """The internal levels of a descent to ``index`` (a tree with a root node):
    ``(version, leaf, leaf_min, leaf_max, cost, parent_offset, touches,
    load_touches)``, ``cost`` being the packed :data:`DESCEND_COST` of the
    ``height - 1`` internal steps and the touches their lines as flat
    ``(blk, mask, ...)`` tuples (``mas_walk`` steps; ``mtree_lookup_walk``
    steps).

    The result is kept as ``tree.walk_memo`` and reused for the next descent
    into the same leaf while the allocator's ``version`` is unchanged: no
    node was linked or freed since, so the internal nodes, their pivots and
    the path to that leaf are the same and so is every counter of those
    steps (in-place stores only change a leaf's own pivots and slots, never
    its range).  Only the leaf step is done again by the caller.
    """
    memo = tree.walk_memo
    version = tree.allocator.version
    if memo is not None and memo[0] == version and memo[2] <= index <= memo[3]:
        return memo
    node = tree.root
    cost = 0
    poff = -1
    mn = 0
    height = tree.height
    touches: list[int] = []
    loads: list[int] = []
    if height > 1:
        itab = _COST_BY_LEN[tree.itype]
        mtab = _MASK_BY_LEN[tree.itype]
        ltab = _LOAD_BY_LEN[tree.itype]
        for _ in range(height - 1):
            piv = node.pivots
            poff = bisect_left(piv, index)
            cost += itab[len(piv)][poff]
            touches += (node.blk, mtab[len(piv)][poff])
            loads += (node.blk, ltab[len(piv)][poff])
            if poff:
                mn = piv[poff - 1] + 1
            node = node.slots[poff]
    memo = tree.walk_memo = (
        version,
        node,
        mn,
        node.pivots[-1],
        cost,
        poff,
        tuple(touches),
        tuple(loads),
    )
    return memo


def descend(tree: MapleTree, index: int) -> tuple[MapleNode, int, int, int]:
    """``mas_walk`` descent (``mtree_range_walk``): the leaf holding ``index``.

    Returns ``(leaf, offset, leaf_min, parent_offset)``; the slot's range is
    ``[pivots[offset-1]+1 or leaf_min, pivots[offset]]`` and
    ``parent_offset`` is the leaf's slot in its parent (the kernel keeps it
    in the parent pointer, ``mte_parent_slot``), -1 for a root leaf.  The
    tree must have a root node.  Counts one walk, ``height`` nodes, the pivots a linear scan
    would compare, and the cache lines of each step.

    Every leaf sits at depth ``height`` and every internal node has the
    tree's internal type, so the path runs ``height - 1`` internal steps with
    one cost table (:func:`_path`, memoised) and then reads the leaf.
    """
    memo = _path(tree, index)
    node = memo[1]
    mn = memo[2]
    cost = memo[4]
    piv = node.pivots
    off = bisect_left(piv, index)
    cost += _LEAF_COST[len(piv)][off]
    c = tree.counters
    c.walks += 1
    c.nodes_visited += tree.height
    c.comparisons += cost & COST_MASK
    c.line_accesses += cost >> COST_SHIFT
    touches = memo[6]
    if touches:
        _touch_path(tree, touches)
    rd = c.rd
    b = node.blk
    rd[b] = rd.get(b, 0) | _LEAF_MASK[len(piv)][off]
    return node, off, mn, memo[5]


def load(tree: MapleTree, index: int) -> Any:
    """``mtree_load()``: the entry at ``index``; NULL and ZERO_ENTRY read as None.

    ``mtree_lookup_walk`` (6.8 on) does not find a node's data end: each
    step reads the pivots it compares and the slot it follows
    (:data:`LOAD_MASK`); ``comparisons`` stay those of the range walk."""
    if tree.root is None:
        c = tree.counters
        c.walks += 1
        if tree.height == 0 and index == 0:
            return tree.root_entry
        return None
    memo = _path(tree, index)
    node = memo[1]
    cost = memo[4]
    piv = node.pivots
    off = bisect_left(piv, index)
    cost += _LEAF_COST[len(piv)][off]
    c = tree.counters
    c.walks += 1
    c.nodes_visited += tree.height
    c.comparisons += cost & COST_MASK
    loads = memo[7]
    n = 0
    rd = c.rd
    for k in range(0, len(loads), 2):
        b = loads[k]
        m = loads[k + 1]
        rd[b] = rd.get(b, 0) | m
        n += POPCOUNT4[m]
    m = _LEAF_LOAD[len(piv)][off]
    b = node.blk
    rd[b] = rd.get(b, 0) | m
    c.line_accesses += n + POPCOUNT4[m]
    entry = node.slots[off]
    if entry is ZERO_ENTRY:
        return None
    return entry


def virtual_root_leaf(tree: MapleTree) -> MapleNode:
    """A throw-away leaf describing a tree with no root node.

    An empty tree is one NULL range; a root-pointer tree (``ma_root`` holding
    the entry at index 0) is ``[0,0] = entry`` then NULL.  Used so iteration
    code handles height 0 like any other leaf; it is never linked in.
    """
    if tree.root_entry is None:
        return MapleNode(MAPLE_LEAF64, [ULONG_MAX], [None])
    return MapleNode(MAPLE_LEAF64, [0, ULONG_MAX], [tree.root_entry, None])


def next_leaf(tree: MapleTree, leaf: MapleNode) -> tuple[MapleNode, int] | None:
    """``mas_next_node()``: the leaf after ``leaf`` and its minimum, or None.

    Charges every node read on the way, up and down (the leaf left is not
    one of them), two line reads each: the pivot compared and the slot
    followed (the leaf reached: pivot 0 and slot 0).
    """
    node = leaf
    visited = 0
    rd = tree.counters.rd
    while True:
        parent = node.parent
        if parent is None:
            _charge_move(tree, visited)
            return None
        visited += 1
        piv = parent.pivots
        off = bisect_left(piv, node.pivots[-1])
        if off < len(piv) - 1:
            mn = piv[off] + 1
            _read2(rd, parent, off, off + 1)
            node = parent.slots[off + 1]
            break
        _read2(rd, parent, off, off)
        node = parent
    while node.type != MAPLE_LEAF64:
        visited += 1
        _read2(rd, node, 0, 0)
        node = node.slots[0]
    _read2(rd, node, 0, 0)
    _charge_move(tree, visited + 1)
    return node, mn


def prev_leaf(tree: MapleTree, leaf: MapleNode) -> tuple[MapleNode, int] | None:
    """``mas_prev_node()``: the leaf before ``leaf`` and its minimum, or None
    (charged as :func:`next_leaf`: from the first leaf the climb to the root
    is charged too).  ``MapleState`` stops at its ``min`` before it asks,
    as the kernel's ``mas_prev_slot`` does, so it never moves off the first
    leaf."""
    node = leaf
    visited = 0
    rd = tree.counters.rd
    while True:
        parent = node.parent
        if parent is None:
            _charge_move(tree, visited)
            return None
        visited += 1
        piv = parent.pivots
        off = bisect_left(piv, node.pivots[-1])
        if off:
            mn = piv[off - 2] + 1 if off > 1 else _node_min(parent)
            _read2(rd, parent, off - 1, off - 1)
            node = parent.slots[off - 1]
            break
        _read2(rd, parent, 0, 0)
        node = parent
    while node.type != MAPLE_LEAF64:
        visited += 1
        piv = node.pivots
        if len(piv) > 1:
            mn = piv[-2] + 1
        _read2(rd, node, len(piv) - 1, len(piv) - 1)
        node = node.slots[-1]
    last = len(node.pivots) - 1
    _read2(rd, node, last, last)
    _charge_move(tree, visited + 1)
    return node, mn


def _charge_move(tree: MapleTree, visited: int) -> None:
    """Count a leaf-to-leaf move: ``visited`` nodes, two lines each."""
    c = tree.counters
    c.nodes_visited += visited
    c.line_accesses += 2 * visited


def _read2(rd: dict[int, int], node: MapleNode, piv_i: int, slot_i: int) -> None:
    """A move step reads ``pivot[piv_i]`` (when stored) and ``slot[slot_i]``."""
    b = node.blk
    rd[b] = rd.get(b, 0) | slot_mask(node.type, slot_i) | pivot_mask(piv_i)


def _node_min(node: MapleNode) -> int:
    """The implied minimum of ``node`` (from its ancestors' pivots)."""
    while node.parent is not None:
        parent = node.parent
        off = bisect_left(parent.pivots, node.pivots[-1])
        if off:
            return parent.pivots[off - 1] + 1
        node = parent
    return 0


node_min = _node_min
