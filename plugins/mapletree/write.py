"""The write path: store classification, in-place stores, splits, rebalances
and spanning stores.

Models ``mas_wr_store_type`` (classification at the leaf holding the first
index, after ``mas_wr_extend_null``), ``mas_prealloc_calc`` (worst-case node
count per store type), and the store paths ``mas_wr_slot_store`` /
``mas_wr_node_store`` / ``mas_wr_append`` (in place, as outside RCU mode),
``mas_split`` (upward split with ``mas_push_data`` into the left then right
sibling), ``mas_rebalance`` and ``mas_wr_spanning_store`` (both finished by
``mas_spanning_rebalance``, which rebuilds every level up to the root and
shrinks the height when one node ends up covering the whole key space),
``mas_new_root`` and ``mas_store_root`` / ``mas_root_expand``.

Every node a write creates is taken from the reservation the caller made
with the node allocator before anything was changed, so a write either
happens completely or (allocation failure) not at all.
"""

from __future__ import annotations

import errno
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from vmapsim import POPCOUNT4

from .errors import ZERO_ENTRY, MapleError
from .gap import gap_up, leaf_max_gap
from .node import (
    DEAD,
    FULL_SCAN_LINES,
    FULL_SCAN_MASK,
    MAPLE_LEAF64,
    MAPLE_RANGE64_SLOTS,
    MT_MIN_SLOTS,
    MT_SLOTS,
    NODE_MASK,
    ULONG_MAX,
    MapleNode,
    slot_mask,
    write_mask,
)
from .walk import descend, node_min

if TYPE_CHECKING:
    from .state import MapleState
    from .tree import MapleTree

__all__ = [
    "STORE_TYPE_NAMES",
    "WR_EXACT_FIT",
    "InsertExists",
    "classify",
    "exact_fit",
    "execute",
    "exists_error",
]

_LEAF_SCAN_LINES = FULL_SCAN_LINES[MAPLE_LEAF64]
_LEAF_SCAN_MASK = FULL_SCAN_MASK[MAPLE_LEAF64]

# enum store_type
WR_INVALID = 0
WR_NEW_ROOT = 1
WR_STORE_ROOT = 2
WR_EXACT_FIT = 3
WR_SPANNING_STORE = 4
WR_SPLIT_STORE = 5
WR_REBALANCE = 6
WR_APPEND = 7
WR_NODE_STORE = 8
WR_SLOT_STORE = 9

STORE_TYPE_NAMES = (
    "wr_invalid",
    "wr_new_root",
    "wr_store_root",
    "wr_exact_fit",
    "wr_spanning_store",
    "wr_split_store",
    "wr_rebalance",
    "wr_append",
    "wr_node_store",
    "wr_slot_store",
)


def exists_error(first: int, last: int) -> MapleError:
    return MapleError(errno.EEXIST, f"insert [{first:#x}, {last:#x}]: range is not empty")


class InsertExists(Exception):
    """Raised by :func:`classify` for an insert over an occupied range.

    ``mas_insert()`` classifies and preallocates for the store first
    (``mas_wr_preallocate``) and only then finds the range occupied, so the
    writer still obtains ``need`` nodes and gives them back before it
    reports EEXIST (or ENOMEM, if it could not obtain them).
    """

    def __init__(self, need: int) -> None:
        super().__init__(need)
        self.need = need


def classify(
    tree: MapleTree,
    mas: MapleState,
    first: int,
    last: int,
    entry: Any,
    insert: bool,
    pos: tuple[MapleNode, int, int, int] | None = None,
    store: bool = False,
) -> int:
    """``mas_wr_store_type()`` + ``mas_prealloc_calc()``.

    Walks to the leaf holding ``first``, records the store plan in ``mas``
    (``wr_*`` fields) and returns the worst-case number of nodes the store
    needs.  With ``insert``, a range holding any entry raises
    :class:`InsertExists` carrying what the store would need (``mas_insert``
    preallocates before it checks), or EEXIST straight away for the root
    entry of a tree without nodes (checked before preallocation).  Changes
    nothing in the tree unless ``store``.  ``pos`` is the
    ``descend(tree, first)`` result when the caller has already walked (a
    tree with a root node and a reset state).

    With ``store``, a store of a leaf with nothing to reserve (exact fit,
    append, slot or node store: ``mas_wr_store_entry()`` would run straight
    away) is carried out here, counted as :func:`execute` counts it, and -1
    is returned; ``mas`` then holds the plan's type, range and old content
    only (there is nothing left to execute).
    """
    root = tree.root
    if root is None:
        cur = tree.root_entry
        if insert and cur is not None and first == 0:
            raise exists_error(first, last)
        mas.wr_type = WR_STORE_ROOT
        mas.wr_content = cur if first == 0 else None
        mas.wr_first = first
        mas.wr_last = last
        if first == 0 and last == 0 and entry is not ZERO_ENTRY:
            return 0
        return 1
    leaf = mas.node
    if pos is not None:
        leaf, o1, mn, _ = pos
    elif (
        leaf is not None
        and mas.seq == tree.seq
        and mas.min <= first <= leaf.pivots[-1]
        and leaf.parent is not DEAD
    ):
        # mas_wr_store_setup: an active state already on the right leaf
        # writes without walking again.
        mn = mas.min
        o1 = bisect_left(leaf.pivots, first)
        tree.counters.comparisons += o1 + 1
    else:
        leaf, o1, mn, _ = descend(tree, first)
    piv = leaf.pivots
    slots = leaf.slots
    content = slots[o1]
    mas.wr_content = content
    p1 = piv[o1]
    if insert and (content is not None or last > p1):
        raise InsertExists(classify(tree, mas, first, last, entry, False, (leaf, o1, mn, -1)))
    lmax = piv[-1]
    if last > lmax or (entry is None and last == lmax and lmax != ULONG_MAX):
        mas.wr_type = WR_SPANNING_STORE
        mas.wr_node = leaf
        mas.wr_min = mn
        mas.wr_o1 = o1
        mas.wr_first = first
        mas.wr_last = last
        vacant, sufficient = _path_heights(tree, leaf, last, entry, True)
        return 3 * (tree.height - min(vacant, sufficient)) + 1
    end = len(piv) - 1
    if last == p1 and entry is not None:
        # The write ends in the slot it starts in, nothing to widen.
        o2 = o1
    else:
        o2 = bisect_left(piv, last, o1) if last > p1 else o1
        if o2 != o1:
            tree.counters.comparisons += o2 - o1
        if entry is None:
            # mas_wr_extend_null: absorb neighbouring NULL ranges.
            o1, first = _extend_null_left(piv, slots, o1, first, mn)
            if slots[o2] is None:
                last = piv[o2]
            elif o2 < end and slots[o2 + 1] is None and last == piv[o2]:
                o2 += 1
                last = piv[o2]
    mas.wr_first = first
    mas.wr_last = last
    s1 = piv[o1 - 1] + 1 if o1 else mn
    need = 0
    if o1 == o2 and first == s1 and last == piv[o2]:
        wr_type = WR_EXACT_FIT
    elif first == 0 and last == ULONG_MAX:
        wr_type = WR_NEW_ROOT
        need = 1
    else:
        new_end = end - (o2 - o1) + (first > s1) + (last < piv[o2])
        if new_end < MT_MIN_SLOTS[MAPLE_LEAF64]:
            if leaf.parent is not None:
                wr_type = WR_REBALANCE
                vacant, sufficient = _path_heights(tree, leaf, last, entry, False)
                need = 2 * (tree.height - min(vacant, sufficient)) + 1
            else:
                wr_type = WR_NODE_STORE
        elif new_end >= MT_SLOTS[MAPLE_LEAF64]:
            wr_type = WR_SPLIT_STORE
            vacant, _ = _path_heights(tree, leaf, last, entry, False)
            need = 2 * (tree.height - vacant) + 1
        elif o1 == end:
            wr_type = WR_APPEND
        elif new_end == end:
            wr_type = WR_SLOT_STORE
        else:
            wr_type = WR_NODE_STORE
    mas.wr_type = wr_type
    if store and not need and wr_type != WR_NEW_ROOT:
        # mas_wr_store_entry() of an in-place store, without a second look
        # at the plan.
        _store_leaf(tree, wr_type, leaf, o1, o2, mn, first, last, entry)
        return -1
    mas.wr_node = leaf
    mas.wr_min = mn
    mas.wr_o1 = o1
    mas.wr_o2 = o2
    return need


def _path_heights(
    tree: MapleTree, leaf: MapleNode, last: int, entry: Any, spanning: bool
) -> tuple[int, int]:
    """``mas_wr_walk()``'s ``vacant_height`` and ``sufficient_height`` (6.16+).

    Over the internal nodes of the write's path (the root at height 1, its
    children at 2, ...): the height of the deepest node with room for one
    more child (fewer than ``mt_slots`` used), and of the deepest node that
    can give one up (the root: at least 4 children; others: more than
    ``mt_min_slots + 2``); 0 where there is none.  A spanning write's walk
    stops at the node where it finds the write leaving the child that holds
    ``first`` (``mas_is_span_wr``): that node and those below are not
    counted.  Only split, rebalance and spanning stores ask, so this climbs
    the parent pointers instead of slowing every descent.
    """
    path: list[tuple[MapleNode, MapleNode]] = []
    child = leaf
    node = leaf.parent
    while node is not None:
        path.append((node, child))
        child = node
        node = node.parent
    itype = tree.itype
    slot_count = MT_SLOTS[itype]
    enough = MT_MIN_SLOTS[itype] + 2
    vacant = sufficient = 0
    for depth, (node, child) in enumerate(reversed(path)):
        if spanning:
            cmax = child.pivots[-1]
            if last > cmax or (entry is None and last == cmax and cmax != ULONG_MAX):
                break
        used = len(node.slots)
        if used < slot_count:
            vacant = depth + 1
        if used > (3 if depth == 0 else enough):
            sufficient = depth + 1
    return vacant, sufficient


def _extend_null_left(
    piv: list[int], slots: list[Any], o1: int, first: int, mn: int
) -> tuple[int, int]:
    """``mas_wr_extend_null`` (left side) for a NULL store starting in slot
    ``o1`` of a leaf with minimum ``mn``: a NULL slot ``o1`` is absorbed from
    its start, and a NULL slot just before ``first`` is absorbed whole.
    Returns the new ``(o1, first)``."""
    if slots[o1] is None:
        return o1, piv[o1 - 1] + 1 if o1 else mn
    if o1 and slots[o1 - 1] is None and first == piv[o1 - 1] + 1:
        o1 -= 1
        return o1, piv[o1 - 1] + 1 if o1 else mn
    return o1, first


def execute(tree: MapleTree, mas: MapleState, entry: Any) -> None:
    """``mas_wr_store_entry()``: carry out the plan ``classify`` recorded."""
    t = mas.wr_type
    if t == WR_EXACT_FIT or t >= WR_APPEND:
        _store_leaf(
            tree, t, mas.wr_node, mas.wr_o1, mas.wr_o2, mas.wr_min, mas.wr_first, mas.wr_last, entry
        )
        return
    tree.counters.stores += 1
    tree.seq += 1
    if t == WR_SPLIT_STORE:
        bp, bs = _leaf_bnode(mas, entry)
        _split(tree, mas, mas.wr_node, mas.wr_min, bp, bs, None)
    elif t == WR_REBALANCE:
        bp, bs = _leaf_bnode(mas, entry)
        _rebalance(tree, mas, bp, bs)
    elif t == WR_SPANNING_STORE:
        _spanning_store(tree, mas, entry)
    elif t == WR_NEW_ROOT:
        _new_root(tree, mas, entry)
    elif t == WR_STORE_ROOT:
        _store_root(tree, mas, entry)
    else:  # pragma: no cover - classify never leaves WR_INVALID
        raise AssertionError("maple write without a store plan")


def _store_leaf(
    tree: MapleTree,
    wr_type: int,
    leaf: MapleNode,
    o1: int,
    o2: int,
    mn: int,
    first: int,
    last: int,
    entry: Any,
) -> None:
    """``mas_wr_store_entry()`` of a store that stays inside ``leaf`` (exact
    fit, append, slot or node store): counted, then carried out in place.
    Both :func:`classify` (with ``store``) and :func:`execute` end here."""
    tree.counters.stores += 1
    tree.seq += 1
    if wr_type == WR_EXACT_FIT:
        exact_fit(tree, leaf, o1, mn, entry)
    else:
        _store_in_place(tree, leaf, o1, o2, mn, first, last, entry, wr_type)


def exact_fit(
    tree: MapleTree, leaf: MapleNode, o1: int, mn: int, entry: Any, poff: int = -1
) -> None:
    """``mas_wr_slot_store`` of one whole slot, then ``mas_update_gap``.

    The store part of a ``wr_exact_fit`` (the caller counts the store and
    bumps ``tree.seq``).  The tree-level ``insert_range`` / ``erase`` call
    it straight after their own walk, without the state's write plan; the
    kernel's ``mtree_*`` state is a local of the call, so nothing is lost.
    ``poff`` is the leaf's slot in its parent when the caller's walk knows it
    (the kernel reads it from the parent pointer), else -1.
    """
    slots = leaf.slots
    old = slots[o1]
    slots[o1] = entry
    c = tree.counters
    parent = leaf.parent
    wr = c.wr
    b = leaf.blk
    wr[b] = wr.get(b, 0) | slot_mask(MAPLE_LEAF64, o1)
    if tree.is_alloc and parent is not None and (old is None) != (entry is None):
        piv = leaf.pivots
        # mas_update_gap(): mas_leaf_max_gap() rescans the leaf
        c.line_accesses += 1 + _LEAF_SCAN_LINES[len(slots) - 1]
        rd = c.rd
        rd[b] = rd.get(b, 0) | _LEAF_SCAN_MASK[len(slots) - 1]
        size = piv[o1] - (piv[o1 - 1] + 1 if o1 else mn) + 1
        if poff < 0:
            poff = bisect_left(parent.pivots, piv[-1])
        recorded = parent.gaps[poff]
        if entry is None:
            if size > recorded:
                gap_up(tree, leaf, size, poff)
        elif size >= recorded:
            # The filled NULL may have been the only one as large as the
            # recorded maximum: one rescan finds whether, and the new one.
            gap = leaf_max_gap(piv, slots, mn)
            if gap < recorded:
                gap_up(tree, leaf, gap, poff)
    else:
        c.line_accesses += 1


# ---------------------------------------------------------------------------
# node helpers


def _new(
    tree: MapleTree,
    mas: MapleState,
    type_: int,
    pivots: list[int],
    slots: list[Any],
    gaps: list[int] | None,
) -> MapleNode:
    """``mas_pop_node()``: take one node of the reservation and fill it."""
    if mas.reserved <= 0:
        raise AssertionError(
            f"maple write ({STORE_TYPE_NAMES[mas.wr_type]}) needs more nodes than reserved"
        )
    mas.reserved -= 1
    node = tree.allocator.make(type_, pivots, slots, gaps, None)
    # the node is written whole; each child's parent pointer (line 0) is
    # rewritten when the new node adopts it (mas_adopt_children)
    wr = tree.counters.wr
    wr[node.blk] = wr.get(node.blk, 0) | NODE_MASK
    if type_ != MAPLE_LEAF64:
        for child in slots:
            child.parent = node
            b = child.blk
            wr[b] = wr.get(b, 0) | 1
    return node


def _free(tree: MapleTree, node: MapleNode) -> None:
    if node.parent is DEAD:  # pragma: no cover - would be a double free
        raise AssertionError("maple node freed twice")
    tree.allocator.free(node)


def _free_subtree(tree: MapleTree, node: MapleNode) -> None:
    """``mt_destroy_walk()`` for one subtree."""
    if node.type != MAPLE_LEAF64:
        for child in node.slots:
            _free_subtree(tree, child)
    _free(tree, node)


def _free_old(tree: MapleTree, node: MapleNode) -> None:
    """Free a replaced node and every descendant still hanging from it.

    Children a rewrite kept have been re-parented to new nodes and children
    already freed are dead, so only the overwritten parts are released
    (the kernel's ``mas_topiary`` / ``mas_destroy_descend`` bookkeeping).
    """
    if node.type != MAPLE_LEAF64:
        for child in node.slots:
            if child.parent is node:
                _free_old(tree, child)
    _free(tree, node)


def _replace(tree: MapleTree, old: MapleNode, new: MapleNode, gap: int) -> None:
    """``mas_replace_node()``: put ``new`` where ``old`` hangs; free ``old``.

    Writing the parent's slot costs one line; the tree's root pointer lives
    in ``struct maple_tree``, which the cost model does not charge (a walk
    does not charge reading it either)."""
    parent = old.parent
    if parent is None:
        tree.root = new
        new.parent = None
    else:
        off = bisect_left(parent.pivots, old.pivots[-1])
        parent.slots[off] = new
        new.parent = parent
        c = tree.counters
        c.line_accesses += 1
        c.wr[parent.blk] = c.wr.get(parent.blk, 0) | slot_mask(parent.type, off)
    _free(tree, old)
    if parent is not None and tree.is_alloc:
        gap_up(tree, new, gap)


def _gap_of(tree: MapleTree, type_: int, pivots: list[int], slots: list[Any], gaps, mn: int):
    if not tree.is_alloc:
        return 0
    if type_ == MAPLE_LEAF64:
        return leaf_max_gap(pivots, slots, mn)
    return max(gaps)


def _no_null_split(slots: list[Any], split: int, slot_count: int, min_slots: int) -> int:
    """``mab_no_null_split()``: never end the left node on a NULL entry."""
    if slots[split] is None:
        if split < slot_count - 1 and len(slots) - 1 - split > min_slots:
            split += 1
        else:
            split -= 1
    return split


def _calc_split(pivots: list[int], slots: list[Any], type_: int) -> tuple[int, int]:
    """``mab_calc_split()``: last index of the left node, and of the middle
    node for a 3-way split (0 if none).

    An equal split, or thirds when the data cannot fit two nodes
    (``mab_middle_node``); then never end a node on a NULL entry.  This is
    the rule since 6.14 ("maple_tree: simplify split calculation", also in
    the stable kernels): the earlier loop that moved the split right inside
    dense ranges was given a minimum of 0 for every leaf and is gone.
    """
    slot_count = MT_SLOTS[type_]
    slot_min = MT_MIN_SLOTS[type_]
    b_end = len(pivots) - 1
    split = b_end // 2
    mid = 0
    if b_end >= 2 * slot_count or (slots[split] is None and b_end >= 2 * slot_count - 1):
        split = b_end // 3
        mid = split * 2
    if type_ == MAPLE_LEAF64:
        split = _no_null_split(slots, split, slot_count, slot_min)
        if mid:
            mid = _no_null_split(slots, mid, slot_count, slot_min)
    return split, mid


def _make_pieces(
    tree: MapleTree,
    mas: MapleState,
    type_: int,
    bp: list[int],
    bs: list[Any],
    bg: list[int] | None,
    mn: int,
    cuts: list[int],
    linked: bool = True,
) -> tuple[list[MapleNode], list[int]]:
    """Create the nodes holding ``bp/bs[previous cut + 1 .. cut]`` per cut.

    Each node is written whole (4 lines).  In an allocation tree each one's
    largest gap goes into its parent's new data (one gap update), unless
    ``linked`` is false: a single node becoming the root has no parent."""
    pieces: list[MapleNode] = []
    pgaps: list[int] = []
    alloc = tree.is_alloc
    start = 0
    for cut in cuts:
        sp = bp[start : cut + 1]
        ss = bs[start : cut + 1]
        sg = bg[start : cut + 1] if bg is not None else None
        pieces.append(_new(tree, mas, type_, sp, ss, sg))
        if alloc:
            pgaps.append(leaf_max_gap(sp, ss, mn) if type_ == MAPLE_LEAF64 else max(sg))
        mn = bp[cut] + 1
        start = cut + 1
    if alloc and linked:
        tree.counters.gap_updates += len(pieces)
    tree.counters.line_accesses += 4 * len(pieces)
    return pieces, pgaps


# ---------------------------------------------------------------------------
# in-place stores


def _segment(
    piv: list[int], slots: list[Any], o1: int, o2: int, s1: int, first: int, last: int, entry: Any
) -> tuple[list[int], list[Any]]:
    """The pivots/slots replacing ``o1..o2``: left remnant, new range, right remnant."""
    if first > s1:
        if last < piv[o2]:
            return [first - 1, last, piv[o2]], [slots[o1], entry, slots[o2]]
        return [first - 1, last], [slots[o1], entry]
    if last < piv[o2]:
        return [last, piv[o2]], [entry, slots[o2]]
    return [last], [entry]


def _store_in_place(
    tree: MapleTree,
    leaf: MapleNode,
    o1: int,
    o2: int,
    mn: int,
    first: int,
    last: int,
    entry: Any,
    wr_type: int = WR_NODE_STORE,
) -> None:
    """``mas_wr_slot_store`` / ``mas_wr_node_store`` / ``mas_wr_append``, all
    in place (no RCU mode), then ``mas_update_gap``: ``[first, last]`` over
    slots ``o1..o2`` of ``leaf`` (minimum ``mn``).  (The exact fit is
    :func:`exact_fit`.)"""
    piv = leaf.pivots
    slots = leaf.slots
    parent = leaf.parent
    s1 = piv[o1 - 1] + 1 if o1 else mn
    np_, ns = _segment(piv, slots, o1, o2, s1, first, last, entry)
    # What the store writes: a slot store its slots' pivots and slots, an
    # append the new tail and the metadata, a node store (no RCU mode:
    # built aside and copied back whole, mas_wr_node_store) all 256 bytes.
    old_end = len(slots) - 1
    new_end = old_end - (o2 - o1 + 1) + len(ns)
    if wr_type == WR_APPEND:
        wmask = write_mask(MAPLE_LEAF64, o1, new_end, new_end < MAPLE_RANGE64_SLOTS - 1)
    elif wr_type == WR_SLOT_STORE:
        wmask = write_mask(MAPLE_LEAF64, o1, o2, False)
    else:  # WR_NODE_STORE
        wmask = NODE_MASK
    c = tree.counters
    wr = c.wr
    b = leaf.blk
    wr[b] = wr.get(b, 0) | wmask
    if tree.is_alloc and parent is not None:
        # NULL ranges removed and created by this store (the new pieces of
        # _segment: the left remnant of slot o1, the range written, the right
        # remnant of slot o2).
        removed = 0
        start = s1
        for i in range(o1, o2 + 1):
            if slots[i] is None and piv[i] - start + 1 > removed:
                removed = piv[i] - start + 1
            start = piv[i] + 1
        created = last - first + 1 if entry is None else 0
        if first > s1 and slots[o1] is None and first - s1 > created:
            created = first - s1
        p2 = piv[o2]
        if last < p2 and slots[o2] is None and p2 - last > created:
            created = p2 - last
        piv[o1 : o2 + 1] = np_
        slots[o1 : o2 + 1] = ns
        # mas_update_gap: the kernel rescans the leaf (mas_leaf_max_gap); the
        # rescan is skipped here when the recorded maximum cannot have
        # changed, but its cache lines are charged all the same.
        c.line_accesses += POPCOUNT4[wmask] + _LEAF_SCAN_LINES[len(slots) - 1]
        rd = c.rd
        rd[b] = rd.get(b, 0) | _LEAF_SCAN_MASK[len(slots) - 1]
        recorded = parent.gaps[bisect_left(parent.pivots, piv[-1])]
        if created > recorded:
            gap_up(tree, leaf, created)
        elif removed >= recorded:
            # No NULL exceeds the recorded maximum now; it changed only if
            # none reaches it any more (one rescan finds whether, and the
            # new maximum).
            gap = leaf_max_gap(piv, slots, mn)
            if gap < recorded:
                gap_up(tree, leaf, gap)
        return
    piv[o1 : o2 + 1] = np_
    slots[o1 : o2 + 1] = ns
    c.line_accesses += POPCOUNT4[wmask]


def _leaf_bnode(mas: MapleState, entry: Any) -> tuple[list[int], list[Any]]:
    """``mas_store_b_node()``: the leaf's data with the write applied."""
    leaf = mas.wr_node
    piv = leaf.pivots
    slots = leaf.slots
    o1 = mas.wr_o1
    o2 = mas.wr_o2
    s1 = piv[o1 - 1] + 1 if o1 else mas.wr_min
    np_, ns = _segment(piv, slots, o1, o2, s1, mas.wr_first, mas.wr_last, entry)
    return piv[:o1] + np_ + piv[o2 + 1 :], slots[:o1] + ns + slots[o2 + 1 :]


# ---------------------------------------------------------------------------
# split


def _split(
    tree: MapleTree,
    mas: MapleState,
    node: MapleNode,
    nmin: int,
    bp: list[int],
    bs: list[Any],
    bg: list[int] | None,
) -> None:
    """``mas_split()``: split upward from the leaf until a level fits.

    At each level that overflows: try ``mas_push_data`` into the left, then
    the right sibling (the parent keeps its entry count, so the parent is the
    last level rewritten); otherwise split in two at ``mab_calc_split`` and
    insert the new pair into the parent's data.  Splitting the root adds a
    level.
    """
    itype = tree.itype
    alloc = tree.is_alloc
    ctype = node.type
    c = tree.counters
    while True:
        slot_count = MT_SLOTS[ctype]
        parent = node.parent
        if len(bp) <= slot_count:
            new = _new(tree, mas, ctype, bp, bs, bg)
            c.line_accesses += 4
            _replace(tree, node, new, _gap_of(tree, ctype, bp, bs, bg, nmin))
            return
        if parent is None:
            split, _mid = _calc_split(bp, bs, ctype)
            pieces, pgaps = _make_pieces(tree, mas, ctype, bp, bs, bg, nmin, [split, len(bp) - 1])
            _free(tree, node)
            root = _new(tree, mas, itype, [bp[split], ULONG_MAX], pieces, pgaps if alloc else None)
            c.line_accesses += 4
            tree.root = root
            tree.height += 1
            c.splits += 1
            return
        poff = bisect_left(parent.pivots, bp[-1])
        pushed = None
        if poff:
            pushed = _push(tree, mas, node, nmin, parent, poff, bp, bs, bg, ctype, True)
        if pushed is None and poff < len(parent.slots) - 1:
            pushed = _push(tree, mas, node, nmin, parent, poff, bp, bs, bg, ctype, False)
        if pushed is not None:
            c.merges += 1
            bp, bs, bg = pushed
        else:
            split, _mid = _calc_split(bp, bs, ctype)
            pieces, pgaps = _make_pieces(tree, mas, ctype, bp, bs, bg, nmin, [split, len(bp) - 1])
            c.splits += 1
            _free(tree, node)
            pp = parent.pivots
            ps = parent.slots
            bp = [*pp[:poff], bp[split], pp[poff], *pp[poff + 1 :]]
            bs = [*ps[:poff], *pieces, *ps[poff + 1 :]]
            if alloc:
                pg = parent.gaps
                bg = [*pg[:poff], *pgaps, *pg[poff + 1 :]]
        node = parent
        nmin = node_min(parent)
        ctype = itype


def _push(
    tree: MapleTree,
    mas: MapleState,
    node: MapleNode,
    nmin: int,
    parent: MapleNode,
    poff: int,
    bp: list[int],
    bs: list[Any],
    bg: list[int] | None,
    ctype: int,
    left: bool,
) -> tuple[list[int], list[Any], list[int] | None] | None:
    """``mas_push_data()``: share the overflowing data with a sibling.

    Allowed when the combined data stays below ``2 * slots - 2`` (one less
    for leaves, one less again when the node ends at ULONG_MAX).  The sibling
    is filled to ``slots - 1`` entries and the rest stays in the node; both
    are rewritten.  Returns the parent's data with the two children replaced.
    """
    slot_count = MT_SLOTS[ctype]
    soff = poff - 1 if left else poff + 1
    sib = parent.slots[soff]
    total = len(bp) - 1 + len(sib.slots) - 1
    space = 2 * slot_count - 2
    if ctype == MAPLE_LEAF64:
        space -= 1
    if bp[-1] == ULONG_MAX:
        space -= 1
    if total >= space:
        return None
    alloc = tree.is_alloc
    if left:
        cmin = parent.pivots[soff - 1] + 1 if soff else node_min(parent)
        cp = sib.pivots + bp
        cs = sib.slots + bs
        cg = sib.gaps + bg if bg is not None else None
        split = slot_count - 2
        lo = soff
    else:
        cmin = nmin
        cp = bp + sib.pivots
        cs = bs + sib.slots
        cg = bg + sib.gaps if bg is not None else None
        split = total - (slot_count - 2)
        lo = poff
    if ctype == MAPLE_LEAF64:
        split = _no_null_split(cs, split, slot_count, MT_MIN_SLOTS[ctype])
    pieces, pgaps = _make_pieces(tree, mas, ctype, cp, cs, cg, cmin, [split, len(cp) - 1])
    _free(tree, sib)
    _free(tree, node)
    pp = parent.pivots
    ps = parent.slots
    nbp = [*pp[:lo], cp[split], cp[-1], *pp[lo + 2 :]]
    nbs = [*ps[:lo], *pieces, *ps[lo + 2 :]]
    nbg = None
    if alloc:
        pg = parent.gaps
        nbg = [*pg[:lo], *pgaps, *pg[lo + 2 :]]
    return nbp, nbs, nbg


# ---------------------------------------------------------------------------
# rebalance and spanning store


def _rebalance(tree: MapleTree, mas: MapleState, bp: list[int], bs: list[Any]) -> None:
    """``mas_rebalance()``: combine an insufficient leaf with its right
    sibling (or the left one if it is the last child), then
    ``mas_spanning_rebalance``."""
    leaf = mas.wr_node
    parent = leaf.parent
    poff = bisect_left(parent.pivots, leaf.pivots[-1])
    tree.counters.rebalances += 1
    if poff < len(parent.slots) - 1:
        sib = parent.slots[poff + 1]
        _rebuild(tree, mas, leaf, sib, mas.wr_min, bp + sib.pivots, bs + sib.slots, None, 1)
    else:
        sib = parent.slots[poff - 1]
        smin = parent.pivots[poff - 2] + 1 if poff > 1 else node_min(parent)
        _rebuild(tree, mas, sib, leaf, smin, sib.pivots + bp, sib.slots + bs, None, 1)


def _spanning_store(tree: MapleTree, mas: MapleState, entry: Any) -> None:
    """``mas_wr_spanning_store()``: a write crossing leaves.

    The left leaf holds ``first``; the right leaf holds ``last + 1`` (so a
    NULL written up to a leaf's end merges with a NULL starting the next
    leaf).  NULL writes are widened over neighbouring NULL ranges
    (``mas_extend_spanning_null``).  The combined data replaces everything
    from the left leaf to the right leaf.
    """
    first = mas.wr_first
    last = mas.wr_last
    lleaf = mas.wr_node
    lmin = mas.wr_min
    o1 = mas.wr_o1
    lpiv = lleaf.pivots
    lsl = lleaf.slots
    rleaf, roff, _rmin, _ = descend(tree, last + 1 if last < ULONG_MAX else ULONG_MAX)
    tail = roff
    if entry is None:
        o1, first = _extend_null_left(lpiv, lsl, o1, first, lmin)
        if last < ULONG_MAX and rleaf.slots[roff] is None:
            last = rleaf.pivots[roff]
            tail = roff + 1
    if last == ULONG_MAX:
        tail = len(rleaf.slots)
    if first == 0 and last == ULONG_MAX:
        _new_root(tree, mas, entry)
        return
    s1 = lpiv[o1 - 1] + 1 if o1 else lmin
    bp = lpiv[:o1]
    bs = lsl[:o1]
    if first > s1:
        bp.append(first - 1)
        bs.append(lsl[o1])
    bp.append(last)
    bs.append(entry)
    bp += rleaf.pivots[tail:]
    bs += rleaf.slots[tail:]
    mas.wr_first = first
    mas.wr_last = last
    _rebuild(tree, mas, lleaf, rleaf, lmin, bp, bs, None, 1)


def _pull_neighbour(lnode: MapleNode, rnode: MapleNode) -> tuple[bool, MapleNode, int] | None:
    """``mast_spanning_rebalance()``: the node next to ``rnode`` (preferred)
    or before ``lnode`` at the same depth, found through the lowest ancestor
    that has one.  Returns ``(is_right, node, node_min)``."""
    left, right = lnode, rnode
    depth = 0
    while True:
        lp = left.parent
        rp = right.parent
        if lp is None:
            return None
        depth += 1
        rpiv = rp.pivots
        roff = bisect_left(rpiv, right.pivots[-1])
        if roff < len(rpiv) - 1:
            node = rp.slots[roff + 1]
            mn = rpiv[roff] + 1
            for _ in range(depth - 1):
                node = node.slots[0]
            return True, node, mn
        lpiv = lp.pivots
        loff = bisect_left(lpiv, left.pivots[-1])
        if loff:
            node = lp.slots[loff - 1]
            mn = lpiv[loff - 2] + 1 if loff > 1 else node_min(lp)
            for _ in range(depth - 1):
                if len(node.pivots) > 1:
                    mn = node.pivots[-2] + 1
                node = node.slots[-1]
            return False, node, mn
        left, right = lp, rp


def _rebuild(
    tree: MapleTree,
    mas: MapleState,
    lnode: MapleNode,
    rnode: MapleNode,
    lmin: int,
    bp: list[int],
    bs: list[Any],
    bg: list[int] | None,
    level: int,
) -> None:
    """``mas_spanning_rebalance()``: rewrite the levels from ``level`` up.

    ``bp/bs/bg`` replace the nodes ``lnode .. rnode`` of one level.  Per
    level: pull a neighbour in if the data is insufficient (not at the full
    key range); cut the data into 1, 2 or 3 nodes; if one node covers the
    whole key space it becomes the root (the height shrinks); otherwise
    build the parent level's data (left parent's entries before ``lnode``,
    the new nodes, right parent's entries after ``rnode``) and go up, until
    both sides meet in one non-root parent whose new data is sufficient and
    fits one node (6.16's break on convergence): that node replaces the
    parent and the rebuild stops.  A root cut in several nodes gets a new
    root above (the height grows).
    """
    itype = tree.itype
    alloc = tree.is_alloc
    c = tree.counters
    ctype = lnode.type
    while True:
        slot_count = MT_SLOTS[ctype]
        rmax = rnode.pivots[-1]
        whole = lmin == 0 and rmax == ULONG_MAX
        if not whole and len(bp) <= MT_MIN_SLOTS[ctype]:
            pulled = _pull_neighbour(lnode, rnode)
            if pulled is not None:
                is_right, nb, nbmin = pulled
                c.merges += 1
                c.nodes_visited += 1
                c.line_accesses += 4
                c.rd[nb.blk] = c.rd.get(nb.blk, 0) | NODE_MASK
                if is_right:
                    bp = bp + nb.pivots
                    bs = bs + nb.slots
                    if bg is not None:
                        bg = bg + nb.gaps
                    rnode = nb
                else:
                    bp = nb.pivots + bp
                    bs = nb.slots + bs
                    if bg is not None:
                        bg = nb.gaps + bg
                    lnode = nb
                    lmin = nbmin
                rmax = rnode.pivots[-1]
                whole = lmin == 0 and rmax == ULONG_MAX
        b_end = len(bp) - 1
        if b_end < slot_count:
            cuts = [b_end]
        else:
            split, mid = _calc_split(bp, bs, ctype)
            cuts = [split, mid, b_end] if mid else [split, b_end]
            c.splits += 1
        pieces, pgaps = _make_pieces(
            tree, mas, ctype, bp, bs, bg, lmin, cuts, not (whole and len(cuts) == 1)
        )
        if len(pieces) == 1 and whole:
            _free_old(tree, tree.root)
            tree.root = pieces[0]
            tree.height = level
            return
        lp = lnode.parent
        rp = rnode.parent
        if lp is None:
            _free_old(tree, lnode)
            root = _new(
                tree,
                mas,
                itype,
                [p.pivots[-1] for p in pieces],
                pieces,
                pgaps if alloc else None,
            )
            c.line_accesses += 4
            tree.root = root
            tree.height = level + 1
            return
        loff = bisect_left(lp.pivots, lnode.pivots[-1])
        roff = bisect_left(rp.pivots, rmax)
        if lp is rp:
            span = lp.slots[loff : roff + 1]
        else:
            span = lp.slots[loff:] + rp.slots[: roff + 1]
        for n in span:
            _free_old(tree, n)
        bp = [*lp.pivots[:loff], *(p.pivots[-1] for p in pieces), *rp.pivots[roff + 1 :]]
        bs = [*lp.slots[:loff], *pieces, *rp.slots[roff + 1 :]]
        if alloc:
            bg = [*lp.gaps[:loff], *pgaps, *rp.gaps[roff + 1 :]]
        if lp is rp and lp.parent is not None and MT_MIN_SLOTS[itype] < len(bp) <= MT_SLOTS[itype]:
            # 6.16+: both sides met in one parent whose new data is enough
            # for one node and fits it; that node replaces the parent in
            # place and the ancestors above are left alone.
            new = _new(tree, mas, itype, bp, bs, bg)
            c.line_accesses += 4
            _replace(tree, lp, new, max(bg) if bg is not None else 0)
            return
        if loff:
            lmin = node_min(lp)
        lnode, rnode = lp, rp
        ctype = itype
        level += 1


# ---------------------------------------------------------------------------
# root cases


def _new_root(tree: MapleTree, mas: MapleState, entry: Any) -> None:
    """``mas_new_root()``: a store over the whole key space."""
    if tree.root is not None:
        _free_subtree(tree, tree.root)
    if entry is None:
        tree.root = None
        tree.root_entry = None
        tree.height = 0
        return
    tree.root = _new(tree, mas, MAPLE_LEAF64, [ULONG_MAX], [entry], None)
    tree.root_entry = None
    tree.height = 1
    tree.counters.line_accesses += 4


def _store_root(tree: MapleTree, mas: MapleState, entry: Any) -> None:
    """``mas_store_root()`` / ``mas_root_expand()``: tree with no root node."""
    first = mas.wr_first
    last = mas.wr_last
    cur = tree.root_entry
    if entry is None:
        if first == 0:
            tree.root_entry = None
        return
    if first == 0 and last == 0 and entry is not ZERO_ENTRY:
        tree.root_entry = entry
        return
    piv: list[int] = []
    slots: list[Any] = []
    keep = cur is not None and first > 0
    if keep:
        piv.append(0)
        slots.append(cur)
    if first > (1 if keep else 0):
        piv.append(first - 1)
        slots.append(None)
    piv.append(last)
    slots.append(entry)
    if last < ULONG_MAX:
        piv.append(ULONG_MAX)
        slots.append(None)
    tree.root = _new(tree, mas, MAPLE_LEAF64, piv, slots, None)
    tree.root_entry = None
    tree.height = 1
    tree.counters.line_accesses += 4
