"""Tree validation: the rules ``mt_validate()`` and friends enforce.

Checked: node types per level, slot counts, strictly increasing pivots
inside each node's implied ``[min, max]`` with the last pivot equal to the
maximum, parent pointers, no dead nodes, equal leaf depth equal to the
cached height, fill (``mt_validate``'s rule: the 0-based end of every
non-root node whose maximum is not ULONG_MAX is at least ``mt_min_slots``,
i.e. ``mt_min_slots + 1`` used slots), no two adjacent NULL
slots (also across leaves), no NULL ending a leaf other than the last,
exact gap values in allocation trees, the root-pointer rules, and that the
allocator's live-node count equals the nodes in the tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vmapsim import InvariantError

from .errors import ZERO_ENTRY
from .gap import leaf_max_gap
from .node import DEAD, MAPLE_LEAF64, MT_MIN_SLOTS, MT_SLOTS, ULONG_MAX, MapleNode

if TYPE_CHECKING:
    from .tree import MapleTree

__all__ = ["check_tree"]

_TYPE_NAMES = {1: "leaf_64", 2: "range_64", 3: "arange_64"}


def _where(node: MapleNode, depth: int, mn: int, mx: int) -> str:
    return f"{_TYPE_NAMES.get(node.type, node.type)} node at depth {depth} [{mn:#x}, {mx:#x}]"


def check_tree(tree: MapleTree) -> None:
    """``mt_validate()``: raise InvariantError describing the first broken rule."""
    root = tree.root
    if root is None:
        if tree.height != 0:
            raise InvariantError(f"tree without root node has height {tree.height}, not 0")
        if tree.root_entry is ZERO_ENTRY:
            raise InvariantError("ZERO_ENTRY (an internal entry) stored in the root pointer")
        if tree.allocator.live:
            raise InvariantError(f"{tree.allocator.live} maple nodes live in an empty tree")
        return
    if tree.root_entry is not None:
        raise InvariantError("root pointer entry set while the tree has a root node")
    if root.parent is not None:
        raise InvariantError("root node has a parent")
    if tree.height < 1 or tree.height > 31:
        raise InvariantError(f"height {tree.height} outside 1..MAPLE_HEIGHT_MAX")
    if root.type == MAPLE_LEAF64 and root.slots == [None]:
        raise InvariantError("root leaf holds a single NULL range: the tree should be empty")
    state: dict[str, Any] = {"prev_null": False, "nodes": 0}
    _check_node(tree, root, None, 0, ULONG_MAX, 1, state)
    if state["nodes"] != tree.allocator.live:
        raise InvariantError(
            f"allocator counts {tree.allocator.live} live nodes but the tree has {state['nodes']}"
        )


def _check_node(
    tree: MapleTree,
    node: MapleNode,
    parent: MapleNode | None,
    mn: int,
    mx: int,
    depth: int,
    state: dict[str, Any],
) -> int:
    """Check one subtree; return its largest gap."""
    where = _where(node, depth, mn, mx)
    state["nodes"] += 1
    if node.parent is DEAD:
        raise InvariantError(f"{where}: dead (freed) node still linked")
    if node.parent is not parent:
        raise InvariantError(f"{where}: parent pointer does not point at its parent")
    leaf = depth == tree.height
    want = MAPLE_LEAF64 if leaf else tree.itype
    if node.type != want:
        raise InvariantError(
            f"{where}: type {_TYPE_NAMES.get(node.type)} but expected {_TYPE_NAMES[want]}"
            f" (height {tree.height})"
        )
    piv = node.pivots
    slots = node.slots
    n = len(slots)
    if len(piv) != n or n == 0:
        raise InvariantError(f"{where}: {len(piv)} pivots for {n} slots")
    if n > MT_SLOTS[node.type]:
        raise InvariantError(f"{where}: {n} slots exceed mt_slots {MT_SLOTS[node.type]}")
    if parent is not None and mx != ULONG_MAX and n <= MT_MIN_SLOTS[node.type]:
        raise InvariantError(
            f"{where}: end {n - 1} below mt_min_slots {MT_MIN_SLOTS[node.type]} "
            "(a node that does not end at ULONG_MAX)"
        )
    if parent is not None and n < 2 and not leaf:
        raise InvariantError(f"{where}: internal node with a single child")
    prev = mn - 1
    for i, p in enumerate(piv):
        if p <= prev:
            raise InvariantError(f"{where}: pivot[{i}]={p:#x} not above {prev:#x}")
        prev = p
    if piv[-1] != mx:
        raise InvariantError(f"{where}: last pivot {piv[-1]:#x} is not the node max {mx:#x}")
    if leaf:
        if node.gaps is not None:
            raise InvariantError(f"{where}: leaf carries a gap array")
        for i, s in enumerate(slots):
            if s is None and (state["prev_null"]):
                raise InvariantError(f"{where}: slot {i} is NULL after a NULL (not coalesced)")
            state["prev_null"] = s is None
        if slots[-1] is None and mx != ULONG_MAX:
            raise InvariantError(f"{where}: leaf not ending at ULONG_MAX ends with NULL")
        return leaf_max_gap(piv, slots, mn)
    gaps = node.gaps
    if tree.is_alloc:
        if gaps is None or len(gaps) != n:
            raise InvariantError(f"{where}: gap array missing or of wrong length")
    elif gaps is not None:
        raise InvariantError(f"{where}: non-allocation tree node carries gaps")
    best = 0
    cmin = mn
    for i, child in enumerate(slots):
        if not isinstance(child, MapleNode):
            raise InvariantError(f"{where}: slot {i} is not a node")
        g = _check_node(tree, child, node, cmin, piv[i], depth + 1, state)
        if gaps is not None and gaps[i] != g:
            raise InvariantError(
                f"{where}: gap[{i}]={gaps[i]:#x} but child's largest gap is {g:#x}"
            )
        best = max(best, g)
        cmin = piv[i] + 1
    return best
