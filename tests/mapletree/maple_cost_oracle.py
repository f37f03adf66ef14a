"""The maple tree's cost rules, restated for the tests (docs/mapletree.md,
"Cost model"; docs/metrics.md).

Read side: ``lines_read`` (which 64-byte lines a step through a node reads),
``oracle_load_cost`` (a descent), ``oracle_forward`` / ``oracle_reverse``
(the gap searches, depth first and recursive).

Write side: :class:`Snapshot` copies a tree's shape before a write, and
:func:`expect_write` recomputes every counter the write must add — the
walk(s), the store-type classification and its node reservation
(``mas_prealloc_calc``), the lines of the in-place or structural write, the
gap propagation, the pulled neighbours, the nodes allocated and freed —
from the documented rules, the shape before the write and the shape after
it (which nodes are new, which are gone, where the new nodes hang).  It
never reads the tree's counters nor calls the tree's cost tables or write
helpers; the shape after the write only tells it which case happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmapsim_mapletree import ZERO_ENTRY, MapleTree

ULONG_MAX = (1 << 64) - 1
LINE = 64
NODE_LINES = 4  # a 256-byte node, 256-byte aligned

# enum maple_type values and the per-type tables (mt_slots, mt_min_slots)
LEAF, RANGE64, ARANGE64 = 1, 2, 3
SLOTS = {LEAF: 16, RANGE64: 16, ARANGE64: 10}
MIN_SLOTS = {LEAF: 6, RANGE64: 6, ARANGE64: 4}


# ---------------------------------------------------------------------------
# read side


def line_set(
    type_: int, end: int, first: int, last: int, *, gaps: bool, data_end: bool = True
) -> set[int]:
    """The lines (0..3) :func:`lines_of` counts; without ``data_end``, the
    step of ``mtree_lookup_walk`` (6.8 on): the pivots compared, up to the
    one at ``last`` (a node has 15 pivots, 9 for arange_64), and the slot."""
    if data_end:
        return _lines(type_, end, first, last, gaps=gaps)
    npiv = 9 if type_ == ARANGE64 else 15
    slot_base = 80 if type_ == ARANGE64 else 128
    offsets = [8 + 8 * i for i in range(first, min(last, npiv - 1) + 1)]
    offsets.append(slot_base + 8 * last)
    return {b // LINE for b in offsets}


def lines_of(type_: int, end: int, first: int, last: int, *, gaps: bool) -> int:
    """The number of lines of :func:`line_set`."""
    return len(_lines(type_, end, first, last, gaps=gaps))


def _lines(type_: int, end: int, first: int, last: int, *, gaps: bool) -> set[int]:
    """Distinct lines a step reads when it examines offsets ``first..last``
    of a node of ``type_`` whose last used slot is ``end``.

    Layout (docs/metrics.md): pivot ``i`` at byte ``8 + 8i``; range_64 and
    leaf_64 slots from byte 128, arange_64 slots from 80 and gaps from 160.
    The data end comes from the metadata (byte 240) in an arange_64 node, and
    from ``pivot[14]`` plus, when the node is not full, the metadata over the
    last slot (byte 248) in the others.  The pivot of the last used slot is
    the node's maximum and is not read; a one-slot node reads pivot 0.
    """
    offsets: list[int] = []
    if type_ == ARANGE64:
        offsets.append(240)
        slot_base, gap_base = 80, 160
    else:
        offsets.append(8 + 8 * 14)
        if end < 14:
            offsets.append(248)
        slot_base, gap_base = 128, None
    for i in range(first, last + 1):
        if i < end or end == 0:
            offsets.append(8 + 8 * i)
        offsets.append(slot_base + 8 * i)
        if gaps and gap_base is not None:
            offsets.append(gap_base + 8 * i)
    return {b // LINE for b in offsets}


def lines_read(node: Any, first: int, last: int, *, gaps: bool) -> int:
    """:func:`lines_of` for a live node."""
    return lines_of(node.type, len(node.slots) - 1, first, last, gaps=gaps)


@dataclass
class Cost:
    """``lines``: line accesses (every step's lines, again when a node is
    read again); ``distinct``: the distinct (node, line) pairs of the
    operation (``cache_lines`` once the operation ends)."""

    walks: int = 0
    nodes: int = 0
    cmps: int = 0
    lines: int = 0
    distinct: int = 0
    seen: set[tuple[int, int]] = field(default_factory=set, compare=False, repr=False)

    def read(self, node: Any, lines: set[int]) -> None:
        """``node``'s ``lines`` were read."""
        self.lines += len(lines)
        self.seen.update((id(node), ln) for ln in lines)
        self.distinct = len(self.seen)

    def scan(self, node: Any, a: int, b: int) -> None:
        """A gap search examined offsets ``a..b`` of ``node`` (a <= b)."""
        self.cmps += b + 1  # a linear pivot scan from 0 reaching offset b
        self.read(node, line_set(node.type, len(node.slots) - 1, a, b, gaps=True))


def first_at_or_above(pivots: Any, index: int) -> int:
    i = 0
    while pivots[i] < index:
        i += 1
    return i


def child_min(node: Any, i: int, nmin: int) -> int:
    return node.pivots[i - 1] + 1 if i else nmin


def step_comparisons(end: int, off: int) -> int:
    """Pivots a linear scan compares to stop at ``off`` (the last used
    pivot is the node maximum and never compared)."""
    return off + 1 if off < end else max(end, 1)


def oracle_load_cost(t: MapleTree, index: int) -> Cost:
    """A lookup (``mtree_lookup_walk``): ``height`` nodes; per node, the
    pivots up to the offset (comparisons: the last used one never) and the
    lines of the pivots it compares and of its slot (no data end)."""
    cost = Cost(walks=1)
    node = t.root
    while True:
        cost.nodes += 1
        off = first_at_or_above(node.pivots, index)
        end = len(node.slots) - 1
        cost.cmps += step_comparisons(end, off)
        cost.read(node, line_set(node.type, end, 0, off, gaps=False, data_end=False))
        if node.type == LEAF:
            return cost
        node = node.slots[off]


def oracle_forward(t: MapleTree, lo: int, hi: int, size: int) -> tuple[int, Cost]:
    """``mas_empty_area``, depth first and recursive: each node is entered at
    the offset holding ``lo`` (0 right of it); an internal node enters the
    first child whose gap is large enough, and when that child fails the scan
    goes on from it; a scan stops at the last slot or at a pivot >= ``hi``."""
    cost = Cost(walks=1)

    def enter(node: Any, nmin: int) -> int:
        cost.nodes += 1
        piv = node.pivots
        n = len(piv)
        off = first_at_or_above(piv, lo)
        if node.type == LEAF:
            i = off
            while True:
                if node.slots[i] is None:
                    start = max(child_min(node, i, nmin), lo)
                    if min(piv[i], hi) - start + 1 >= size:
                        cost.scan(node, off, i)
                        return start
                if piv[i] >= hi or i == n - 1:
                    cost.scan(node, off, i)
                    return -1
                i += 1
        first = i = off
        while True:
            if node.gaps[i] >= size:
                cost.scan(node, first, i)
                got = enter(node.slots[i], child_min(node, i, nmin))
                if got >= 0:
                    return got
                first = i  # the scan resumes at the child that failed
            if piv[i] >= hi or i == n - 1:
                cost.scan(node, first, i)
                return -1
            i += 1

    return enter(t.root, 0), cost


def oracle_reverse(t: MapleTree, lo: int, hi: int, size: int) -> tuple[int, Cost]:
    """``mas_empty_area_rev``: the mirror image; a node is entered at the
    offset holding ``hi`` (its last slot left of it), children are tried
    downwards, a scan stops at slot 0 or at a slot starting at or below
    ``lo``, and each scan charges the offsets from the lowest examined up to
    the one it started at (comparisons: their number)."""
    cost = Cost(walks=1)

    def scan(node: Any, a: int, b: int) -> None:
        cost.cmps += b - a + 1
        cost.read(node, line_set(node.type, len(node.slots) - 1, a, b, gaps=True))

    def enter(node: Any, nmin: int, nmax: int) -> int:
        cost.nodes += 1
        piv = node.pivots
        n = len(piv)
        off = first_at_or_above(piv, hi) if hi < nmax else n - 1
        start_at = off
        i = off
        while True:
            start = child_min(node, i, nmin)
            if node.type == LEAF:
                if node.slots[i] is None:
                    stop = min(piv[i], hi)
                    if stop - max(start, lo) + 1 >= size:
                        scan(node, i, start_at)
                        return stop
            elif node.gaps[i] >= size:
                scan(node, i, start_at)
                got = enter(node.slots[i], start, piv[i])
                if got >= 0:
                    return got
                start_at = i  # resumes at the child that failed
            if start <= lo or i == 0:
                scan(node, i, start_at)
                return -1
            i -= 1

    return enter(t.root, 0, ULONG_MAX), cost


# ---------------------------------------------------------------------------
# write side: the shape of a tree


@dataclass(eq=False)
class NodeCopy:
    """One node as it was before the write (its lists copied)."""

    obj: Any
    type: int
    pivots: tuple[int, ...]
    slots: tuple[Any, ...]
    gaps: tuple[int, ...] | None
    parent: NodeCopy | None
    depth: int  # the root is 1
    min: int
    max: int

    @property
    def end(self) -> int:
        return len(self.slots) - 1

    def children(self, snap: Snapshot) -> list[NodeCopy]:
        return [snap.by_id[id(c)] for c in self.slots]


class Snapshot:
    """A tree's shape at one moment: every node copied, by identity and by
    depth in key order."""

    def __init__(self, t: MapleTree) -> None:
        self.height = t.height
        self.alloc = t.is_alloc
        self.root_entry = t.root_entry
        self.by_id: dict[int, NodeCopy] = {}
        self.levels: dict[int, list[NodeCopy]] = {}
        self.root: NodeCopy | None = None
        if t.root is not None:
            self.root = self._copy(t.root, None, 1, 0, ULONG_MAX)

    def _copy(self, node: Any, parent: NodeCopy | None, depth: int, mn: int, mx: int) -> NodeCopy:
        nc = NodeCopy(
            node,
            node.type,
            tuple(node.pivots),
            tuple(node.slots),
            tuple(node.gaps) if node.gaps is not None else None,
            parent,
            depth,
            mn,
            mx,
        )
        self.by_id[id(node)] = nc
        self.levels.setdefault(depth, []).append(nc)
        if node.type != LEAF:
            start = mn
            for p, child in zip(node.pivots, node.slots, strict=True):
                self._copy(child, nc, depth + 1, start, p)
                start = p + 1
        return nc

    def ids(self) -> set[int]:
        return set(self.by_id)

    def walk(self, index: int) -> tuple[list[NodeCopy], list[int]]:
        """The root-to-leaf path to ``index`` and the offset taken in each."""
        path: list[NodeCopy] = []
        offs: list[int] = []
        node = self.root
        while True:
            off = first_at_or_above(node.pivots, index)
            path.append(node)
            offs.append(off)
            if node.type == LEAF:
                return path, offs
            node = self.by_id[id(node.slots[off])]


def subtree_gaps(snap: Snapshot) -> dict[int, int]:
    """The largest NULL run of every node's subtree, from the leaves."""
    out: dict[int, int] = {}
    for depth in sorted(snap.levels, reverse=True):
        for n in snap.levels[depth]:
            if n.type == LEAF:
                best = 0
                start = n.min
                for p, s in zip(n.pivots, n.slots, strict=True):
                    if s is None:
                        best = max(best, p - start + 1)
                    start = p + 1
            else:
                best = max(out[id(c)] for c in n.slots)
            out[id(n.obj)] = best
    return out


# ---------------------------------------------------------------------------
# write side: classification (mas_wr_store_type) and reservation


@dataclass
class Plan:
    """What the documented classification says about one write."""

    type: str
    need: int
    cmps: int = 0  # comparisons beyond the walk (the scan to the slot holding last)
    leaf: NodeCopy | None = None
    path: list[NodeCopy] = field(default_factory=list)
    o1: int = 0  # the slot holding first
    written: int = 0  # the slot an exact fit writes (after NULL widening)
    span: tuple[int, int] = (0, 0)  # the slots written over (after NULL widening)
    new_end: int = 0  # the leaf's last used slot after an in-place store


def walk_cost(snap: Snapshot, index: int) -> Cost:
    """One descent of the tree as it was: per node one visit, the pivots
    compared, the lines of the scan and of the slot followed."""
    cost = Cost(walks=1)
    path, offs = snap.walk(index)
    for node, off in zip(path, offs, strict=True):
        cost.nodes += 1
        cost.cmps += step_comparisons(node.end, off)
        cost.lines += lines_of(node.type, node.end, 0, off, gaps=False)
    return cost


def _spans(child: NodeCopy, last: int, entry: Any) -> bool:
    """The write leaves ``child`` (mas_is_span_wr)."""
    return last > child.max or (entry is None and last == child.max and child.max != ULONG_MAX)


def path_heights(path: list[NodeCopy], last: int, entry: Any, spanning: bool) -> tuple[int, int]:
    """``vacant_height`` and ``sufficient_height`` of the write's path."""
    vacant = sufficient = 0
    for depth, node in enumerate(path[:-1]):
        if spanning and _spans(path[depth + 1], last, entry):
            break
        used = len(node.slots)
        if used < SLOTS[node.type]:
            vacant = depth + 1
        if used > (3 if depth == 0 else MIN_SLOTS[node.type] + 2):
            sufficient = depth + 1
    return vacant, sufficient


def classify(snap: Snapshot, first: int, last: int, entry: Any) -> Plan:
    """The store type and node count of docs/mapletree.md ("Writes")."""
    if snap.root is None:
        need = 0 if first == 0 and last == 0 and entry is not ZERO_ENTRY else 1
        return Plan("wr_store_root", need)
    path, offs = snap.walk(first)
    leaf = path[-1]
    o1 = offs[-1]
    h = snap.height
    plan = Plan("", 0, 0, leaf, path, o1)
    if _spans(leaf, last, entry):
        v, s = path_heights(path, last, entry, True)
        plan.type = "wr_spanning_store"
        plan.need = 3 * (h - min(v, s)) + 1
        return plan
    piv, slots = leaf.pivots, leaf.slots
    end = leaf.end

    def start(i: int) -> int:
        return piv[i - 1] + 1 if i else leaf.min

    o2 = first_at_or_above(piv, last)
    plan.cmps = o2 - o1
    if entry is None:  # mas_wr_extend_null
        if slots[o1] is None:
            first = start(o1)
        elif o1 and slots[o1 - 1] is None and first == start(o1):
            o1 -= 1
            first = start(o1)
        if slots[o2] is None:
            last = piv[o2]
        elif o2 < end and slots[o2 + 1] is None and last == piv[o2]:
            o2 += 1
            last = piv[o2]
    if o1 == o2 and first == start(o1) and last == piv[o2]:
        plan.type = "wr_exact_fit"
        plan.written = o1
        return plan
    if first == 0 and last == ULONG_MAX:
        plan.type, plan.need = "wr_new_root", 1
        return plan
    new_end = end - (o2 - o1) + (first > start(o1)) + (last < piv[o2])
    plan.span = (o1, o2)
    plan.new_end = new_end
    if new_end < MIN_SLOTS[LEAF] and leaf.parent is not None:
        v, s = path_heights(path, last, entry, False)
        plan.type, plan.need = "wr_rebalance", 2 * (h - min(v, s)) + 1
    elif new_end < MIN_SLOTS[LEAF]:
        plan.type = "wr_node_store"
    elif new_end >= SLOTS[LEAF]:
        v, _ = path_heights(path, last, entry, False)
        plan.type, plan.need = "wr_split_store", 2 * (h - v) + 1
    elif o1 == end:
        plan.type = "wr_append"
    elif new_end == end:
        plan.type = "wr_slot_store"
    else:
        plan.type = "wr_node_store"
    return plan


# ---------------------------------------------------------------------------
# write side: what the write costs


@dataclass
class Expect:
    """Counter deltas of one operation (names as in ``vmapsim.Counters``)."""

    walks: int = 0
    nodes_visited: int = 0
    comparisons: int = 0
    line_accesses: int = 0
    stores: int = 0
    node_allocs: int = 0
    node_frees: int = 0
    gap_updates: int = 0
    rebalances: int = 0

    def add(self, c: Cost) -> None:
        self.walks += c.walks
        self.nodes_visited += c.nodes
        self.comparisons += c.cmps
        self.line_accesses += c.lines


EXPECT_FIELDS = tuple(Expect.__dataclass_fields__)


def counted(t: MapleTree) -> Expect:
    c = t.counters
    return Expect(**{name: getattr(c, name) for name in EXPECT_FIELDS})


@dataclass
class Shape:
    """What the shape before and after a write says happened."""

    new: list[Any]  # node objects in the tree after, not before
    removed: set[int]  # ids of nodes before, not after
    top: Any | None  # the new node the others hang from
    top_parent: Any | None  # the surviving node it hangs from (None: it is the root)
    pulled: int  # neighbours a rebuild pulled in (nodes beyond each level's span)
    new_under_new: int  # new nodes whose parent is new
    gap_chain: int  # parent gap slots whose value changed (upward, from the write)
    shape_before: Snapshot
    shape_after: Snapshot


def _gap_chain(before: Snapshot, after: Snapshot, gaps_after: dict[int, int], node: Any) -> int:
    """Parent gap slots above ``node`` whose recorded value must change:
    from ``node``'s parent upward, while the value recorded before differs
    from the subtree's largest gap after (the propagation stops at the
    first slot that already holds it)."""
    if not before.alloc:
        return 0
    count = 0
    child = after.by_id[id(node)]
    parent = child.parent
    while parent is not None:
        j = next(i for i, c in enumerate(parent.obj.slots) if c is child.obj)
        was = before.by_id[id(parent.obj)].gaps[j]
        if was == gaps_after[id(child.obj)]:
            break
        count += 1
        child, parent = parent, parent.parent
    return count


def _level_span(before: Snapshot, depth: int, lo: NodeCopy, hi: NodeCopy) -> list[NodeCopy]:
    row = before.levels[depth]
    a = next(i for i, n in enumerate(row) if n is lo)
    b = next(i for i, n in enumerate(row) if n is hi)
    return row[a : b + 1]


def _pulled(before: Snapshot, removed: set[int], base: list[NodeCopy]) -> int:
    """Neighbours pulled in by a rebuild: level by level from the leaves,
    the nodes removed beyond the span the level had to replace (the leaves
    written and, above, every parent of the previous level's nodes)."""
    depth = before.height
    span = base
    pulled = 0
    while depth >= 1:
        gone = [n for n in before.levels[depth] if id(n.obj) in removed]
        if not gone:
            break
        assert {id(n.obj) for n in span} <= {id(n.obj) for n in gone}, "span not replaced"
        extra = len(gone) - len(span)
        assert extra in (0, 1), f"{extra} nodes pulled at depth {depth}"
        pulled += extra
        if depth == 1:
            break
        span = _level_span(before, depth - 1, gone[0].parent, gone[-1].parent)
        depth -= 1
    return pulled


def shape_change(before: Snapshot, t: MapleTree, base: list[NodeCopy] | None) -> Shape:
    after = Snapshot(t)
    new_ids = after.ids() - before.ids()
    removed = before.ids() - after.ids()
    new = [after.by_id[i].obj for i in new_ids]
    top = top_parent = None
    under_new = 0
    for i in new_ids:
        parent = after.by_id[i].parent
        if parent is not None and id(parent.obj) in new_ids:
            under_new += 1
        else:
            assert top is None, "the new nodes do not hang from one node"
            top = after.by_id[i].obj
            top_parent = parent.obj if parent is not None else None
    gaps_after = subtree_gaps(after)
    chain = 0
    if top_parent is not None:
        chain = _gap_chain(before, after, gaps_after, top)
    pulled = _pulled(before, removed, base) if base else 0
    return Shape(new, removed, top, top_parent, pulled, under_new, chain, before, after)


def in_place_chain(before: Snapshot, t: MapleTree, leaf: NodeCopy) -> int:
    after = Snapshot(t)
    assert after.ids() == before.ids(), "an in-place store changed the nodes"
    return _gap_chain(before, after, subtree_gaps(after), leaf.obj)


def rebalance_base(leaf: NodeCopy, before: Snapshot) -> list[NodeCopy]:
    """The leaf and the sibling ``mas_rebalance`` combines it with (the next
    one, or the previous one for the last child)."""
    siblings = leaf.parent.children(before)
    k = siblings.index(leaf)
    if k + 1 < len(siblings):
        return [leaf, siblings[k + 1]]
    return [siblings[k - 1], leaf]


def _written_lines(kind: str, plan: Plan) -> set[int]:
    """The leaf lines an in-place store writes (range_64 layout: pivot ``i``
    at byte 8 + 8i, slot ``i`` at 128 + 8i, the metadata at byte 248):
    a slot store its slots' pivots and slots, an append the slots from
    the one it starts in to the new end and, the node not full, the
    metadata; a node store (no RCU mode: built aside, copied back whole)
    all four lines."""
    if kind == "wr_node_store":
        return set(range(NODE_LINES))
    o1, o2 = plan.span
    hi = plan.new_end if kind == "wr_append" else o2
    offsets = []
    for i in range(o1, hi + 1):
        if i < 15:
            offsets.append(8 + 8 * i)
        offsets.append(128 + 8 * i)
    if kind == "wr_append" and plan.new_end < 15:
        offsets.append(248)
    return {b // LINE for b in offsets}


def write_cost(
    before: Snapshot, t: MapleTree, plan: Plan, first: int, last: int, entry: Any
) -> tuple[Expect, Shape | None]:
    """The store itself, after classification: its store count, the second
    walk of a spanning store, and the lines, gap updates, rebalances and
    pulled neighbours of its path.  Node frees are the nodes it removed
    (the reservation's leftovers are the caller's)."""
    e = Expect(stores=1)
    kind = plan.type
    if kind in ("wr_exact_fit", "wr_append", "wr_slot_store", "wr_node_store") and (
        before.root is not None
    ):
        leaf = plan.leaf
        below_root = before.alloc and leaf.parent is not None
        if kind == "wr_exact_fit":
            e.line_accesses += 1  # the slot written
            old = leaf.slots[plan.written]
            rescan = below_root and (old is None) != (entry is None)
        else:
            e.line_accesses += len(_written_lines(kind, plan))
            rescan = below_root
        if rescan:  # mas_leaf_max_gap over the leaf as it is after the write
            end = len(leaf.obj.slots) - 1  # in place: the same node object
            e.line_accesses += lines_of(LEAF, end, 0, end, gaps=False)
        chain = in_place_chain(before, t, leaf)
        e.line_accesses += chain
        e.gap_updates += chain
        return e, None
    base: list[NodeCopy] | None = None
    if kind == "wr_spanning_store":
        e.add(walk_cost(before, last + 1 if last < ULONG_MAX else ULONG_MAX))
        lo = plan.leaf
        hi = before.walk(last + 1 if last < ULONG_MAX else ULONG_MAX)[0][-1]
        base = _level_span(before, before.height, lo, hi)
    elif kind == "wr_rebalance":
        e.rebalances = 1
        base = rebalance_base(plan.leaf, before)
    shape = shape_change(before, t, base)
    e.line_accesses += NODE_LINES * len(shape.new)  # every node a write fills
    e.line_accesses += NODE_LINES * shape.pulled  # a pulled neighbour is read whole
    e.nodes_visited += shape.pulled
    if shape.top_parent is not None:  # the top new node linked into a kept parent
        e.line_accesses += 1 + shape.gap_chain
    if before.alloc:
        e.gap_updates += shape.new_under_new + shape.gap_chain
    e.node_frees += len(shape.removed)
    return e, shape


def expect_classify(
    before: Snapshot, first: int, last: int, entry: Any, *, positioned: bool = False
) -> tuple[Expect, Plan]:
    """The walk and classification every write starts with
    (``mas_wr_store_type``): a descent to ``first`` (none without a root
    node; from a state already on that leaf, a re-scan of the leaf up to
    the slot: offset + 1 comparisons), then the pivots compared up to the
    slot holding ``last`` when the write covers several slots of the leaf."""
    plan = classify(before, first, last, entry)
    e = Expect()
    if before.root is not None:
        if positioned:
            e.comparisons += plan.o1 + 1
        else:
            e.add(walk_cost(before, first))
        e.comparisons += plan.cmps
    return e, plan


def expect_write(
    before: Snapshot,
    t: MapleTree,
    first: int,
    last: int,
    entry: Any,
    *,
    positioned: bool = False,
    reserved: int | None = None,
) -> tuple[Expect, Plan, Shape | None]:
    """A whole write of ``entry`` over ``[first, last]`` (``mas_store`` and
    everything built on it), given the shape ``before`` and the tree after.

    ``positioned``: the state was already on the leaf holding ``first``.
    ``reserved``: the nodes a ``preallocate`` obtained (``store_prealloc``:
    no allocation, the leftovers are freed by ``mas_destroy``); else the
    write obtains what its store type needs in one request and gives back
    what it did not use.
    """
    e, plan = expect_classify(before, first, last, entry, positioned=positioned)
    w, shape = write_cost(before, t, plan, first, last, entry)
    for name in EXPECT_FIELDS:
        setattr(e, name, getattr(e, name) + getattr(w, name))
    used = len(shape.new) if shape is not None else 0
    if reserved is None:
        e.node_allocs += plan.need
        e.node_frees += plan.need - used
    else:
        e.node_frees += reserved - used
    return e, plan, shape


def expect_insert_exists(before: Snapshot, first: int, last: int, entry: Any) -> Expect:
    """``mas_insert`` over an occupied range: the walk and classification,
    the store's nodes obtained and given back, no store.  (A root entry at
    index 0 of a tree without nodes is found before anything: nothing.)"""
    if before.root is None:
        return Expect()
    e, plan = expect_classify(before, first, last, entry)
    e.node_allocs = e.node_frees = plan.need
    return e
