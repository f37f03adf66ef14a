"""Maple nodes: types, per-type tables, and the cache-line model of a node.

Models ``struct maple_node`` restricted to the layouts the kernel creates:
``maple_leaf_64`` and ``maple_range_64`` (16 slots, 15 pivots) and
``maple_arange_64`` (10 slots, 9 pivots, 10 gaps).  A node keeps Python lists
whose length is the number of used slots (the kernel's ``end + 1``); the
last entry of ``pivots`` is the node's maximum, which the kernel stores as the
pivot at ``end`` when the node is not full and implies from the parent when
it is.  The node minimum is never stored: it comes from the parent, as in the
kernel.  ``parent`` is a plain reference (the kernel packs the parent slot
and type into the low bits of the pointer; here the slot is found by a
bisect on the parent's pivots with the child's maximum).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from attrs import define

from vmapsim import CACHE_LINE, MAPLE_NODE_LINES

__all__ = [
    "DEAD",
    "MAPLE_ARANGE64",
    "MAPLE_ARANGE64_SLOTS",
    "MAPLE_LEAF64",
    "MAPLE_NODE_BYTES",
    "MAPLE_RANGE64",
    "MAPLE_RANGE64_SLOTS",
    "MT_MIN_SLOTS",
    "MT_SLOTS",
    "ULONG_MAX",
    "MapleNode",
    "descend_lines",
    "scan_lines",
]

ULONG_MAX = (1 << 64) - 1

#: ``enum maple_type`` values (``maple_dense`` = 0 is never created).
MAPLE_LEAF64 = 1
MAPLE_RANGE64 = 2
MAPLE_ARANGE64 = 3

MAPLE_RANGE64_SLOTS = 16
MAPLE_ARANGE64_SLOTS = 10
MAPLE_NODE_BYTES = 256

#: ``mt_slots[]`` and ``mt_min_slots[]`` indexed by type.
MT_SLOTS = (31, 16, 16, 10)
MT_MIN_SLOTS = (15, 6, 6, 4)


@define(slots=True, eq=False, weakref_slot=False)
class MapleNode:
    """One 256-byte ``struct maple_node``.

    ``type`` is a ``maple_type`` value; ``pivots[i]`` is the inclusive upper
    bound of ``slots[i]``; ``gaps`` (arange_64 only) holds, per child, the
    largest run of NULL indices in that child's subtree.  A node freed by a
    write has ``parent`` set to :data:`DEAD`, the kernel's dead-node mark.
    """

    type: int
    pivots: list[int]
    slots: list[Any]
    gaps: list[int] | None = None
    parent: MapleNode | None = None
    #: modelled address >> 8 (a node is one 256-byte block: lines 4*blk..4*blk+3);
    #: 0 for nodes that are not from the node cache (a throw-away root leaf)
    blk: int = 0

    @property
    def is_leaf(self) -> bool:
        """``ma_is_leaf()``."""
        return self.type == MAPLE_LEAF64

    @property
    def end(self) -> int:
        """``mas_data_end()``: index of the last used slot."""
        return len(self.slots) - 1

    @property
    def dead(self) -> bool:
        """``mte_dead_node()``: the node was replaced and freed."""
        return self.parent is DEAD


#: The dead-node mark (``mte_set_node_dead``).  The kernel points a freed
#: node's parent at the node itself; here it points at this one sentinel, so
#: that a freed node is not a reference cycle and CPython reclaims it (and
#: its lists) at once by reference counting instead of leaving it to the
#: cycle collector.
DEAD = MapleNode(MAPLE_LEAF64, [], [])


# ---------------------------------------------------------------------------
# Cache-line model.
#
# range_64 / leaf_64 (256 B, 256-B aligned):
#   parent @0, pivot[i] @8+8i (i < 15), slot[i] @128+8i, metadata {end, gap}
#   overlays the last slot (@248) and is only valid when the node is not full.
#   line 0: parent, pivot 0..6   line 1: pivot 7..14
#   line 2: slot 0..7            line 3: slot 8..15 / metadata
# arange_64:
#   parent @0, pivot[i] @8+8i (i < 9), slot[i] @80+8i, gap[i] @160+8i,
#   metadata @240.
#   line 0: parent, pivot 0..6   line 1: pivot 7..8, slot 0..5
#   line 2: slot 6..9, gap 0..3  line 3: gap 4..9, metadata
#
# A descent step (mtree_range_walk / mas_descend) reads the data end
# (ma_data_end: pivot[14] for range_64, then the metadata if that pivot is 0;
# the metadata for arange_64), scans pivots 0..offset (the pivot of the last
# used slot is never compared: it is the node maximum), then reads slot[offset].


def _line(byte: int) -> int:
    return byte // CACHE_LINE


def _pivot_byte(i: int) -> int:
    return 8 + 8 * i


@cache
def _lines_for(type_: int, end: int, lo: int, hi: int, *, gaps: bool) -> int:
    """Distinct lines read when scanning offsets lo..hi of a node with ``end``."""
    lines: set[int] = set()
    if type_ == MAPLE_ARANGE64:
        lines.add(_line(240))  # metadata end
        slot0, gap0 = 80, 160
    else:
        lines.add(_line(_pivot_byte(14)))  # ma_data_end reads pivot[14]
        if end < 14:
            lines.add(_line(248))  # pivot[14] == 0: metadata
        slot0, gap0 = 128, 0
    last_cmp = min(hi, end - 1) if end else 0
    for i in range(lo, last_cmp + 1):
        if i < end or end == 0:
            lines.add(_line(_pivot_byte(i)))
    for i in range(lo, hi + 1):
        lines.add(_line(slot0 + 8 * i))
        if gaps and type_ == MAPLE_ARANGE64:
            lines.add(_line(gap0 + 8 * i))
    assert len(lines) <= MAPLE_NODE_LINES
    return len(lines)


#: DESCEND_LINES[type][end][offset]: lines read by one descent step.
DESCEND_LINES: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    tuple(
        tuple(_lines_for(t, end, 0, off, gaps=False) for off in range(end + 1))
        for end in range(MT_SLOTS[t] if t else 1)
    )
    if t
    else ()
    for t in range(4)
)


#: Pivots a linear scan compares to stop at ``offset`` of a node with ``end``
#: (the pivot of the last used slot is implied, never compared).
def _scan_comparisons(end: int, off: int) -> int:
    return off + 1 if off < end else (end or 1)


#: Hot-path table DESCEND_COST[type][end][offset] = lines << 16 | comparisons,
#: so one lookup and one addition per level account for both counters.
COST_SHIFT = 16
COST_MASK = (1 << COST_SHIFT) - 1
DESCEND_COST: tuple[tuple[tuple[int, ...], ...], ...] = tuple(
    tuple(
        tuple((lines << COST_SHIFT) | _scan_comparisons(end, off) for off, lines in enumerate(row))
        for end, row in enumerate(per_type)
    )
    for per_type in DESCEND_LINES
)


def descend_lines(node: MapleNode, offset: int) -> int:
    """Cache lines one descent step through ``node`` to ``offset`` reads."""
    return DESCEND_LINES[node.type][len(node.slots) - 1][offset]


def scan_lines(node: MapleNode, lo: int, hi: int, *, gaps: bool = False) -> int:
    """Cache lines read when a search scans offsets ``lo..hi`` of ``node``.

    Used by gap searches and iteration; ``gaps`` adds the gap array lines of
    an arange_64 node.
    """
    end = len(node.slots) - 1
    return _lines_for(node.type, end, lo, min(hi, end), gaps=gaps)


#: Hot-path table GAP_SCAN_LINES[type][end][lo][hi] (``lo <= hi <= end``):
#: ``scan_lines(node, lo, hi, gaps=True)``, the lines a gap search reads when
#: it scans offsets lo..hi (the gap array only counts for arange_64).
GAP_SCAN_LINES: tuple[tuple[tuple[tuple[int, ...], ...], ...], ...] = tuple(
    tuple(
        tuple(
            tuple(_lines_for(t, end, lo, hi, gaps=True) if lo <= hi else 0 for hi in range(end + 1))
            for lo in range(end + 1)
        )
        for end in range(MT_SLOTS[t] if t else 1)
    )
    if t
    else ()
    for t in range(4)
)

#: FULL_SCAN_LINES[type][end]: ``scan_lines(node, 0, end)``, a whole-node scan
#: (``mas_leaf_max_gap`` rescanning a leaf).
FULL_SCAN_LINES: tuple[tuple[int, ...], ...] = tuple(
    tuple(_lines_for(t, end, 0, end, gaps=False) for end in range(MT_SLOTS[t] if t else 1))
    if t
    else ()
    for t in range(4)
)


# ---------------------------------------------------------------------------
# Line masks: the same reads as lines *touched* (bit i = line i of the node),
# for the distinct-lines model (``Counters.touch_block(node.blk, mask)``).


@cache
def _mask_for(type_: int, end: int, lo: int, hi: int, *, gaps: bool, data_end: bool = True) -> int:
    """Bit mask of the lines read when scanning offsets lo..hi (``_lines_for``);
    without ``data_end`` the step does not read ``ma_data_end`` (pivot[14] /
    metadata): ``mtree_lookup_walk`` since 6.8 scans pivots up to the one
    that stops it and reads the slot, nothing else."""
    mask = 0
    if type_ == MAPLE_ARANGE64:
        if data_end:
            mask |= 1 << _line(240)
        slot0, gap0, npiv = 80, 160, 9
    else:
        if data_end:
            mask |= 1 << _line(_pivot_byte(14))
            if end < 14:
                mask |= 1 << _line(248)
        slot0, gap0, npiv = 128, 0, 15
    if data_end:
        last_cmp = min(hi, end - 1) if end else 0
        for i in range(lo, last_cmp + 1):
            if i < end or end == 0:
                mask |= 1 << _line(_pivot_byte(i))
    else:
        for i in range(lo, min(hi, npiv - 1) + 1):
            mask |= 1 << _line(_pivot_byte(i))
    if not data_end:  # the lookup walk follows one slot
        return mask | 1 << _line(slot0 + 8 * hi)
    for i in range(lo, hi + 1):
        mask |= 1 << _line(slot0 + 8 * i)
        if gaps and type_ == MAPLE_ARANGE64:
            mask |= 1 << _line(gap0 + 8 * i)
    return mask


def _table(fn) -> tuple:  # type: ignore[no-untyped-def]
    return tuple(
        tuple(tuple(fn(t, end, off) for off in range(end + 1)) for end in range(MT_SLOTS[t]))
        if t
        else ()
        for t in range(4)
    )


#: DESCEND_MASK[type][end][offset]: lines a descent step reads (DESCEND_LINES as a mask)
DESCEND_MASK = _table(lambda t, end, off: _mask_for(t, end, 0, off, gaps=False))
#: LOAD_MASK[type][end][offset]: lines an ``mtree_lookup_walk`` step reads
#: (no data-end read: pivots 0..offset, the slot)
LOAD_MASK = _table(lambda t, end, off: _mask_for(t, end, 0, off, gaps=False, data_end=False))
#: GAP_SCAN_MASK[type][end][lo][hi]: GAP_SCAN_LINES as masks
GAP_SCAN_MASK = tuple(
    tuple(
        tuple(
            tuple(_mask_for(t, end, lo, hi, gaps=True) if lo <= hi else 0 for hi in range(end + 1))
            for lo in range(end + 1)
        )
        for end in range(MT_SLOTS[t])
    )
    if t
    else ()
    for t in range(4)
)
#: FULL_SCAN_MASK[type][end]: a whole-node scan (``mas_leaf_max_gap``)
FULL_SCAN_MASK = tuple(
    tuple(_mask_for(t, end, 0, end, gaps=False) for end in range(MT_SLOTS[t])) if t else ()
    for t in range(4)
)


@cache
def write_mask(type_: int, lo: int, hi: int, meta: bool) -> int:
    """Lines written when pivots and slots ``lo..hi`` of a node are stored
    (a slot store, an append), plus the metadata line when ``meta`` (the
    node's end changes: ``ma_set_meta``)."""
    if type_ == MAPLE_ARANGE64:
        slot0, npiv, meta_byte = 80, 9, 240
    else:
        slot0, npiv, meta_byte = 128, 15, 248
    mask = 0
    for i in range(lo, hi + 1):
        if i < npiv:
            mask |= 1 << _line(_pivot_byte(i))
        mask |= 1 << _line(slot0 + 8 * i)
    if meta:
        mask |= 1 << _line(meta_byte)
    return mask


def slot_mask(type_: int, i: int) -> int:
    """The line of slot ``i``."""
    return 1 << _line((80 if type_ == MAPLE_ARANGE64 else 128) + 8 * i)


def gap_mask(i: int) -> int:
    """The line of an arange_64 node's ``gap[i]``."""
    return 1 << _line(160 + 8 * i)


#: all four lines of a node (a new node written whole, a node store's memcpy)
NODE_MASK = 0xF
#: the gap array and metadata of an arange_64 node (lines 2-3: ``ma_max_gap``)
GAPS_READ_MASK = (1 << _line(160)) | (1 << _line(232)) | (1 << _line(240))


def pivot_mask(i: int) -> int:
    """The line of ``pivot[i]`` (same offset in every node type; none past the last)."""
    return 1 << _line(_pivot_byte(min(i, 14)))
