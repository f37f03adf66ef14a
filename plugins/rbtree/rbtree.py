"""A red-black tree over the ``rb_node`` embedded in :class:`vmapsim.VmapArea`.

This models lib/rbtree.c and include/linux/rbtree_augmented.h as vmalloc
uses them: the tree links are the area's own fields (``rb_parent``,
``rb_left``, ``rb_right``, ``rb_red``), exactly like the ``struct rb_node``
embedded in ``struct vmap_area``, so no tree node is ever allocated.

:class:`RbTree` is a ``struct rb_root``.  In augmented mode it keeps every
area's ``subtree_max_size`` equal to the largest ``va_size`` in its subtree
through insertion, erasure and every rotation, with the three callbacks that
``RB_DECLARE_CALLBACKS_MAX`` generates (propagate, copy, rotate), and offers
:meth:`RbTree.augment_tree_propagate_from` for ranges edited in place.

:class:`RbList` adds the address-sorted list that vmalloc keeps beside each
tree (``struct rb_list``: root + list head): ``find_va_links``,
``__link_va``, ``__unlink_va``, iteration, and the structural check.

The list is circular through a head sentinel (``head``, a :class:`VmapArea`
that is never in the tree); an area on no list has ``list_next is None``
(the model's ``list_empty()`` after ``list_del_init``).

Costs go to the shared :class:`vmapsim.Counters`; see docs/rbtree.md for what
each counter means here.  Counters are accumulated in locals and added once
per operation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from vmapsim import (
    OVERLAP_WARNING,
    VMAP_AREA_RB,
    Counters,
    InvariantError,
    StructLayout,
    VmapArea,
    field_blocks_table,
    field_lines_table,
)

__all__ = [
    "AUGMENT_FIELDS",
    "LOOKUP_FIELDS",
    "OVERLAP_WARNING",
    "SUCCESSOR_FIELDS",
    "ULONG_MASK",
    "RbList",
    "RbTree",
    "compute_subtree_max_size",
    "layout_from_params",
]

#: 64-bit ``unsigned long`` arithmetic: values are reduced modulo 2**64.
ULONG_MASK = (1 << 64) - 1


#: fields an augmented (free-tree) walk reads per node
AUGMENT_FIELDS = ("va_start", "va_end", "rb_node", "subtree_max_size")
#: fields a busy/lazy lookup or a link search reads per node
LOOKUP_FIELDS = ("va_start", "va_end", "rb_node")
#: fields rb_erase's in-order successor search reads per node (``rb_left``)
SUCCESSOR_FIELDS = ("rb_node",)
#: fields a recomputation reads of each child (``compute_subtree_max_size``)
#: and writes of the node whose value changed
SUBTREE_FIELDS = ("subtree_max_size",)
#: the fields a relink or a recolour writes (``__rb_parent_color``, children)
RB_NODE_FIELDS = ("rb_node",)
#: the list_head a list_add / list_del writes
LIST_FIELDS = ("list",)


def _flat(layout: StructLayout, fields: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    """``field_blocks_table`` as ``(block, mask, next block's mask)`` per slab
    position: an object of at most 256 bytes covers at most two
    consecutive 256-byte blocks, so one tuple and no loop per touch."""
    out = []
    for entry in field_blocks_table(layout, fields):
        if not entry:
            out.append((0, 0, 0))
            continue
        (b0, m0), *rest = entry
        m1 = 0
        if rest:
            (b1, m1), *more = rest
            assert b1 == b0 + 1 and not more, "an object spans two consecutive blocks at most"
        out.append((b0, m0, m1))
    return tuple(out)


def _touch(d: dict[int, int], va: VmapArea | None, table: tuple) -> None:
    """Record ``va``'s lines of a field set (a :func:`_flat` table) in ``d``
    (the counters' ``rd`` or ``wr``)."""
    if va is None:
        return
    e = table[va.slab_pos]
    k = va.slab_blk + e[0]
    d[k] = d.get(k, 0) | e[1]
    if e[2]:
        k += 1
        d[k] = d.get(k, 0) | e[2]


def layout_from_params(params: Mapping[str, Any] | None) -> StructLayout:
    """The stage's ``struct vmap_area`` layout from factory params (default: stage 0)."""
    layout = (params or {}).get("layout")
    return layout if isinstance(layout, StructLayout) else VMAP_AREA_RB


def compute_subtree_max_size(va: VmapArea) -> int:
    """``compute_subtree_max_size()``: max of ``va_size(va)`` and the children's values."""
    m = va.va_end - va.va_start
    c = va.rb_left
    if c is not None and c.subtree_max_size > m:
        m = c.subtree_max_size
    c = va.rb_right
    if c is not None and c.subtree_max_size > m:
        m = c.subtree_max_size
    return m


def _fmt(va: VmapArea) -> str:
    return f"{va.va_start:#x}-{va.va_end:#x}"


class RbTree:
    """``struct rb_root`` over embedded nodes, optionally augmented.

    ``augmented=True`` selects the ``free_vmap_area_rb_augment_cb`` callbacks
    (``RB_DECLARE_CALLBACKS_MAX`` over ``va_size``); ``False`` is the plain
    colour-only tree of the busy and lazy trees.
    """

    __slots__ = (
        "augmented",
        "blocks_augment",
        "blocks_list",
        "blocks_lookup",
        "blocks_node",
        "blocks_subtree",
        "counters",
        "lines_augment",
        "lines_lookup",
        "lines_successor",
        "name",
        "rb_node",
    )

    def __init__(
        self,
        counters: Counters,
        *,
        augmented: bool = False,
        layout: StructLayout | None = None,
        name: str = "rb-tree",
    ) -> None:
        self.rb_node: VmapArea | None = None
        self.augmented = augmented
        self.counters = counters
        self.name = name
        layout = layout or VMAP_AREA_RB
        #: cache lines per slab position for an augmented walk / a lookup walk
        self.lines_augment: tuple[int, ...] = field_lines_table(layout, AUGMENT_FIELDS)
        self.lines_lookup: tuple[int, ...] = field_lines_table(layout, LOOKUP_FIELDS)
        #: cache lines per slab position for a step of rb_erase's successor search
        self.lines_successor: tuple[int, ...] = field_lines_table(layout, SUCCESSOR_FIELDS)
        #: the same reads as touches (``field_blocks_table``), and the
        #: field sets the write paths touch
        self.blocks_augment = _flat(layout, AUGMENT_FIELDS)
        self.blocks_lookup = _flat(layout, LOOKUP_FIELDS)
        self.blocks_node = _flat(layout, RB_NODE_FIELDS)
        self.blocks_subtree = _flat(layout, SUBTREE_FIELDS)
        self.blocks_list = _flat(layout, LIST_FIELDS)

    def _wnode(self, *vas: VmapArea | None) -> None:
        """The rb_node of each of ``vas`` is written (relink, recolour)."""
        wr = self.counters.wr
        t = self.blocks_node
        for va in vas:
            _touch(wr, va, t)

    def _rnode(self, *vas: VmapArea | None) -> None:
        """The rb_node of each of ``vas`` is read (an uncle's or sibling's colour)."""
        rd = self.counters.rd
        t = self.blocks_node
        for va in vas:
            _touch(rd, va, t)

    def _recompute_read(self, va: VmapArea) -> None:
        """A propagate step's reads: ``va``'s augment fields and both
        children's ``subtree_max_size``."""
        rd = self.counters.rd
        _touch(rd, va, self.blocks_augment)
        t = self.blocks_subtree
        _touch(rd, va.rb_left, t)
        _touch(rd, va.rb_right, t)

    def _recompute(self, va: VmapArea) -> None:
        """``compute_subtree_max_size(va)``'s reads (``va``'s augment fields,
        both children's ``subtree_max_size``) and the write of the result."""
        c = self.counters
        rd = c.rd
        _touch(rd, va, self.blocks_augment)
        t = self.blocks_subtree
        _touch(rd, va.rb_left, t)
        _touch(rd, va.rb_right, t)
        _touch(c.wr, va, t)

    # -- helpers --------------------------------------------------------

    def _change_child(self, old: VmapArea, new: VmapArea | None, parent: VmapArea | None) -> None:
        """``__rb_change_child()``: make ``parent`` point at ``new`` where it pointed at ``old``."""
        if parent is None:
            self.rb_node = new
        elif parent.rb_left is old:
            parent.rb_left = new
            _touch(self.counters.wr, parent, self.blocks_node)
        else:
            parent.rb_right = new
            _touch(self.counters.wr, parent, self.blocks_node)

    # -- insertion ------------------------------------------------------

    def rb_insert(self, node: VmapArea, parent: VmapArea | None, left: bool) -> None:
        """``rb_link_node()`` + ``rb_insert_color()`` / ``rb_insert_augmented()``.

        Links ``node`` as the ``left`` (else right) child of ``parent`` (the
        root when ``parent`` is None) and rebalances.  In augmented mode the
        rotations run the rotate callback; as in ``__link_va`` the node's
        ``subtree_max_size`` is then set to 0 and the caller propagates.
        """
        node.rb_parent = parent
        node.rb_left = node.rb_right = None
        node.rb_red = True
        self._wnode(node, parent)  # rb_link_node()
        if parent is None:
            self.rb_node = node
        elif left:
            parent.rb_left = node
        else:
            parent.rb_right = node

        aug = self.augmented
        rot = 0
        upd = 0
        while True:
            if parent is None:
                # the root is black
                node.rb_red = False
                break
            if not parent.rb_red:
                break
            gparent = parent.rb_parent  # a red parent is never the root
            uncle = gparent.rb_right
            self._rnode(gparent, uncle if parent is not uncle else gparent.rb_left)
            if parent is not uncle:
                # parent is gparent's left child
                if uncle is not None and uncle.rb_red:
                    # red uncle: recolour and continue two levels up
                    uncle.rb_red = False
                    parent.rb_red = False
                    gparent.rb_red = True
                    self._wnode(uncle, parent, gparent)
                    node = gparent
                    parent = node.rb_parent
                    continue
                if node is parent.rb_right:
                    # left-rotate at parent so node becomes the outer child
                    tmp = node.rb_left
                    parent.rb_right = tmp
                    if tmp is not None:
                        tmp.rb_parent = parent
                    node.rb_left = parent
                    parent.rb_parent = node
                    node.rb_parent = gparent
                    gparent.rb_left = node
                    rot += 1
                    self._wnode(node, parent, gparent, tmp)
                    if aug:
                        node.subtree_max_size = parent.subtree_max_size
                        parent.subtree_max_size = compute_subtree_max_size(parent)
                        self._recompute(parent)
                        _touch(self.counters.wr, node, self.blocks_subtree)
                        upd += 1
                    parent = node
                # right-rotate at gparent
                tmp = parent.rb_right
                gparent.rb_left = tmp
                if tmp is not None:
                    tmp.rb_parent = gparent
                parent.rb_right = gparent
            else:
                # parent is gparent's right child (mirror image)
                uncle = gparent.rb_left
                if uncle is not None and uncle.rb_red:
                    uncle.rb_red = False
                    parent.rb_red = False
                    gparent.rb_red = True
                    self._wnode(uncle, parent, gparent)
                    node = gparent
                    parent = node.rb_parent
                    continue
                if node is parent.rb_left:
                    tmp = node.rb_right
                    parent.rb_left = tmp
                    if tmp is not None:
                        tmp.rb_parent = parent
                    node.rb_right = parent
                    parent.rb_parent = node
                    node.rb_parent = gparent
                    gparent.rb_right = node
                    rot += 1
                    self._wnode(node, parent, gparent, tmp)
                    if aug:
                        node.subtree_max_size = parent.subtree_max_size
                        parent.subtree_max_size = compute_subtree_max_size(parent)
                        self._recompute(parent)
                        _touch(self.counters.wr, node, self.blocks_subtree)
                        upd += 1
                    parent = node
                tmp = parent.rb_left
                gparent.rb_right = tmp
                if tmp is not None:
                    tmp.rb_parent = gparent
                parent.rb_left = gparent
            # finish the rotation at gparent: parent takes its place
            ggparent = gparent.rb_parent
            parent.rb_parent = ggparent
            self._change_child(gparent, parent, ggparent)
            gparent.rb_parent = parent
            parent.rb_red = False
            gparent.rb_red = True
            rot += 1
            self._wnode(parent, gparent, tmp)
            if aug:
                parent.subtree_max_size = gparent.subtree_max_size
                gparent.subtree_max_size = compute_subtree_max_size(gparent)
                self._recompute(gparent)
                _touch(self.counters.wr, parent, self.blocks_subtree)
                upd += 1
            break

        if rot:
            c = self.counters
            c.rotations += rot
            if upd:
                c.augment_updates += upd

    # -- erasure --------------------------------------------------------

    def rb_erase(self, node: VmapArea) -> None:
        """``rb_erase()`` / ``rb_erase_augmented()``: unlink ``node`` and rebalance.

        Clears ``node``'s tree fields afterwards (``RB_CLEAR_NODE``).

        Counts the rotations; in augmented mode one ``augment_updates`` per
        rotation and per propagate step; ``nodes_visited`` and
        ``line_accesses`` (and touches) for the nodes the successor search and the propagate
        steps read (docs/rbtree.md, "Counters").
        """
        aug = self.augmented
        upd = 0
        visited = 0  # nodes read by the successor search
        lines = 0
        child = node.rb_right
        tmp = node.rb_left
        pnode = node.rb_parent
        if tmp is None:
            # at most one (right) child: it replaces node
            parent = pnode
            self._change_child(node, child, parent)
            if child is not None:
                # a lone child is red; it takes node's colour (black)
                child.rb_parent = parent
                child.rb_red = node.rb_red
                self._wnode(child)
                rebalance = None
            else:
                rebalance = parent if not node.rb_red else None
            from_node = parent
        elif child is None:
            # only a left child: it replaces node and takes its colour
            tmp.rb_parent = pnode
            tmp.rb_red = node.rb_red
            self._wnode(tmp)
            self._change_child(node, tmp, pnode)
            rebalance = None
            from_node = pnode
        else:
            # two children: splice in the in-order successor
            successor = child
            tbl = self.lines_successor  # the search reads each node's rb_left only
            visited = 1
            lines = tbl[child.slab_pos]
            self._rnode(child)
            tmp = child.rb_left
            if tmp is None:
                # the successor is node's right child
                parent = successor
                child2 = successor.rb_right
                if aug:
                    successor.subtree_max_size = node.subtree_max_size  # copy
            else:
                while tmp is not None:
                    parent = successor
                    successor = tmp
                    visited += 1
                    lines += tbl[tmp.slab_pos]
                    self._rnode(tmp)
                    tmp = tmp.rb_left
                child2 = successor.rb_right
                parent.rb_left = child2
                successor.rb_right = child
                child.rb_parent = successor
                if aug:
                    successor.subtree_max_size = node.subtree_max_size  # copy
                    # propagate from the successor's old parent up to the successor
                    atbl = self.lines_augment
                    p = parent
                    while p is not successor:
                        m = compute_subtree_max_size(p)
                        upd += 1
                        lines += atbl[p.slab_pos]
                        self._recompute_read(p)
                        if p.subtree_max_size == m:
                            break
                        p.subtree_max_size = m
                        _touch(self.counters.wr, p, self.blocks_subtree)
                        p = p.rb_parent
            tmp = node.rb_left
            successor.rb_left = tmp
            tmp.rb_parent = successor
            self._change_child(node, successor, pnode)
            if child2 is not None:
                child2.rb_parent = parent
                child2.rb_red = False
                rebalance = None
            else:
                rebalance = parent if not successor.rb_red else None
            successor.rb_parent = pnode
            successor.rb_red = node.rb_red
            self._wnode(successor, parent, child, tmp, child2)
            from_node = successor
        if aug:
            # propagate callback up to the root, stopping when unchanged
            atbl = self.lines_augment
            p = from_node
            while p is not None:
                m = compute_subtree_max_size(p)
                upd += 1
                lines += atbl[p.slab_pos]
                self._recompute_read(p)
                if p.subtree_max_size == m:
                    break
                p.subtree_max_size = m
                _touch(self.counters.wr, p, self.blocks_subtree)
                p = p.rb_parent
        node.rb_parent = node.rb_left = node.rb_right = None
        node.rb_red = False
        rot = self._erase_color(rebalance) if rebalance is not None else 0
        if rot or upd or visited:
            c = self.counters
            c.rotations += rot
            c.augment_updates += upd + (rot if aug else 0)
            # the successor search's nodes and every node a propagate step read
            c.nodes_visited += visited + upd
            c.line_accesses += lines

    def _erase_color(self, parent: VmapArea) -> int:
        """``____rb_erase_color()``: restore the black height below ``parent``.

        Returns the number of rotations; in augmented mode each rotation ran
        the rotate callback (one recomputation each, counted by the caller).
        """
        aug = self.augmented
        rot = 0
        node: VmapArea | None = None
        while True:
            sibling = parent.rb_right
            # the sibling's colour and its children's
            self._rnode(parent, sibling if node is not sibling else parent.rb_left)
            if node is not sibling:
                # node is parent's left child (node may be None)
                if sibling.rb_red:
                    # red sibling: left-rotate at parent
                    tmp1 = sibling.rb_left
                    parent.rb_right = tmp1
                    tmp1.rb_parent = parent
                    sibling.rb_left = parent
                    self._rotate_set_parents(parent, sibling, True)
                    rot += 1
                    self._wnode(parent, sibling, parent.rb_left, parent.rb_right)
                    if aug:
                        sibling.subtree_max_size = parent.subtree_max_size
                        parent.subtree_max_size = compute_subtree_max_size(parent)
                        self._recompute(parent)
                    sibling = tmp1
                tmp1 = sibling.rb_right
                if tmp1 is None or not tmp1.rb_red:
                    tmp2 = sibling.rb_left
                    if tmp2 is None or not tmp2.rb_red:
                        # black sibling with black children: recolour
                        sibling.rb_red = True
                        self._wnode(sibling, parent)
                        if parent.rb_red:
                            parent.rb_red = False
                        else:
                            node = parent
                            parent = node.rb_parent
                            if parent is not None:
                                continue
                        break
                    # sibling's near child red: right-rotate at sibling
                    tmp1 = tmp2.rb_right
                    sibling.rb_left = tmp1
                    if tmp1 is not None:
                        tmp1.rb_parent = sibling
                        tmp1.rb_red = False
                    tmp2.rb_right = sibling
                    sibling.rb_parent = tmp2
                    parent.rb_right = tmp2
                    tmp2.rb_parent = parent
                    rot += 1
                    self._wnode(tmp1, tmp2, sibling, parent)
                    if aug:
                        tmp2.subtree_max_size = sibling.subtree_max_size
                        sibling.subtree_max_size = compute_subtree_max_size(sibling)
                        self._recompute(sibling)
                    tmp1 = sibling
                    sibling = tmp2
                # sibling's far child red: left-rotate at parent
                tmp2 = sibling.rb_left
                parent.rb_right = tmp2
                if tmp2 is not None:
                    tmp2.rb_parent = parent
                sibling.rb_left = parent
                tmp1.rb_parent = sibling
                tmp1.rb_red = False
                self._rotate_set_parents(parent, sibling, False)
                rot += 1
                self._wnode(parent, sibling, parent.rb_left, parent.rb_right)
                if aug:
                    sibling.subtree_max_size = parent.subtree_max_size
                    parent.subtree_max_size = compute_subtree_max_size(parent)
                    self._recompute(parent)
                break
            else:
                # mirror image: node is parent's right child
                sibling = parent.rb_left
                if sibling.rb_red:
                    tmp1 = sibling.rb_right
                    parent.rb_left = tmp1
                    tmp1.rb_parent = parent
                    sibling.rb_right = parent
                    self._rotate_set_parents(parent, sibling, True)
                    rot += 1
                    self._wnode(parent, sibling, parent.rb_left, parent.rb_right)
                    if aug:
                        sibling.subtree_max_size = parent.subtree_max_size
                        parent.subtree_max_size = compute_subtree_max_size(parent)
                        self._recompute(parent)
                    sibling = tmp1
                tmp1 = sibling.rb_left
                if tmp1 is None or not tmp1.rb_red:
                    tmp2 = sibling.rb_right
                    if tmp2 is None or not tmp2.rb_red:
                        sibling.rb_red = True
                        self._wnode(sibling, parent)
                        if parent.rb_red:
                            parent.rb_red = False
                        else:
                            node = parent
                            parent = node.rb_parent
                            if parent is not None:
                                continue
                        break
                    tmp1 = tmp2.rb_left
                    sibling.rb_right = tmp1
                    if tmp1 is not None:
                        tmp1.rb_parent = sibling
                        tmp1.rb_red = False
                    tmp2.rb_left = sibling
                    sibling.rb_parent = tmp2
                    parent.rb_left = tmp2
                    tmp2.rb_parent = parent
                    rot += 1
                    self._wnode(tmp1, tmp2, sibling, parent)
                    if aug:
                        tmp2.subtree_max_size = sibling.subtree_max_size
                        sibling.subtree_max_size = compute_subtree_max_size(sibling)
                        self._recompute(sibling)
                    tmp1 = sibling
                    sibling = tmp2
                tmp2 = sibling.rb_right
                parent.rb_left = tmp2
                if tmp2 is not None:
                    tmp2.rb_parent = parent
                sibling.rb_right = parent
                tmp1.rb_parent = sibling
                tmp1.rb_red = False
                self._rotate_set_parents(parent, sibling, False)
                rot += 1
                self._wnode(parent, sibling, parent.rb_left, parent.rb_right)
                if aug:
                    sibling.subtree_max_size = parent.subtree_max_size
                    parent.subtree_max_size = compute_subtree_max_size(parent)
                    self._recompute(parent)
                break
        return rot

    def _rotate_set_parents(self, old: VmapArea, new: VmapArea, old_red: bool) -> None:
        """``__rb_rotate_set_parents()``: ``new`` takes ``old``'s place and colour."""
        gp = old.rb_parent
        new.rb_parent = gp
        new.rb_red = old.rb_red
        old.rb_parent = new
        old.rb_red = old_red
        self._change_child(old, new, gp)

    # -- augmentation ---------------------------------------------------

    def augment_tree_propagate_from(self, va: VmapArea) -> None:
        """``augment_tree_propagate_from()``: recompute ``subtree_max_size``
        from ``va`` rootwards, stopping at the first unchanged value.

        Counts one walk, each recomputation (``augment_updates``), each node
        (``nodes_visited``) and its cache lines.
        """
        tbl = self.lines_augment
        upd = 0
        lines = 0
        node: VmapArea | None = va
        while node is not None:
            m = node.va_end - node.va_start
            c = node.rb_left
            if c is not None and c.subtree_max_size > m:
                m = c.subtree_max_size
            c = node.rb_right
            if c is not None and c.subtree_max_size > m:
                m = c.subtree_max_size
            upd += 1
            lines += tbl[node.slab_pos]
            self._recompute_read(node)
            if node.subtree_max_size == m:
                break
            node.subtree_max_size = m
            _touch(self.counters.wr, node, self.blocks_subtree)
            node = node.rb_parent
        c = self.counters
        c.walks += 1
        c.augment_updates += upd
        c.nodes_visited += upd
        c.line_accesses += lines

    # -- checking -------------------------------------------------------

    def check_tree(self, expected: int) -> list[VmapArea]:
        """Verify the red-black rules, parent links, BST order without
        overlap and (augmented) every ``subtree_max_size``; return the areas
        in order.  ``expected`` bounds the walk so a cycle cannot hang it.
        """
        name = self.name
        root = self.rb_node
        out: list[VmapArea] = []
        if root is None:
            return out
        if root.rb_parent is not None:
            raise InvariantError(f"{name}: root {_fmt(root)} has a parent {_fmt(root.rb_parent)}")
        if root.rb_red:
            raise InvariantError(f"{name}: root {_fmt(root)} is red")
        aug = self.augmented
        # iterative post-order: black height and max size per node
        bh: dict[int, int] = {}
        smax: dict[int, int] = {}
        stack: list[tuple[VmapArea, bool]] = [(root, False)]
        seen = 0
        while stack:
            node, done = stack.pop()
            if not done:
                seen += 1
                if seen > expected:
                    raise InvariantError(
                        f"{name}: more than {expected} nodes reachable (cycle or count drift)"
                    )
                if node.va_start >= node.va_end:
                    raise InvariantError(f"{name}: empty or inverted area {_fmt(node)}")
                stack.append((node, True))
                for child in (node.rb_right, node.rb_left):
                    if child is None:
                        continue
                    if child.rb_parent is not node:
                        raise InvariantError(
                            f"{name}: {_fmt(child)} is a child of {_fmt(node)} but its "
                            f"parent is {_fmt(child.rb_parent) if child.rb_parent else None}"
                        )
                    if node.rb_red and child.rb_red:
                        raise InvariantError(
                            f"{name}: red node {_fmt(node)} has red child {_fmt(child)}"
                        )
                    stack.append((child, False))
                continue
            lb = bh[id(node.rb_left)] if node.rb_left is not None else 1
            rb = bh[id(node.rb_right)] if node.rb_right is not None else 1
            if lb != rb:
                raise InvariantError(
                    f"{name}: black height differs below {_fmt(node)}: left {lb}, right {rb}"
                )
            bh[id(node)] = lb + (0 if node.rb_red else 1)
            if aug:
                m = node.va_end - node.va_start
                for child in (node.rb_left, node.rb_right):
                    if child is not None:
                        m = max(m, smax[id(child)])
                smax[id(node)] = m
                if node.subtree_max_size != m:
                    raise InvariantError(
                        f"{name}: subtree_max_size of {_fmt(node)} is "
                        f"{node.subtree_max_size:#x}, expected {m:#x}"
                    )
        # in-order walk for order and overlap
        node = root
        stack2: list[VmapArea] = []
        prev: VmapArea | None = None
        while stack2 or node is not None:
            while node is not None:
                stack2.append(node)
                node = node.rb_left
            node = stack2.pop()
            if prev is not None and prev.va_end > node.va_start:
                raise InvariantError(
                    f"{name}: {_fmt(prev)} and {_fmt(node)} are out of order or overlap"
                )
            out.append(node)
            prev = node
            node = node.rb_right
        return out


class RbList(RbTree):
    """``struct rb_list``: an rb-tree plus the address-sorted list kept in step.

    ``head`` is the list head (a sentinel :class:`VmapArea` never in the
    tree); ``nr`` counts the linked areas.
    """

    __slots__ = ("head", "head_line", "nr", "warn")

    def __init__(
        self,
        counters: Counters,
        warn: Any,
        *,
        augmented: bool = False,
        layout: StructLayout | None = None,
        name: str = "rb-list",
    ) -> None:
        super().__init__(counters, augmented=augmented, layout=layout, name=name)
        head = VmapArea(0, 0)
        head.list_next = head.list_prev = head
        self.head = head
        #: the line of the tree's root pointer and list head (``struct
        #: rb_list`` / the free tree's globals), in the model's static data
        self.head_line = counters.mem.static(64, 64) >> 6
        self.nr = 0
        self.warn = warn

    def find_va_links(
        self, va: VmapArea, start: VmapArea | None = None
    ) -> tuple[VmapArea | None, bool] | None:
        """``find_va_links()``: where ``va`` would be linked.

        Descends from the root, or from ``start`` (the kernel's ``from``):
        left if ``va.va_end <= tmp.va_start``, right if ``va.va_start >=
        tmp.va_end``.  Returns ``(parent, is_left)`` (``(None, True)`` for an
        empty tree), or None after logging the kernel's overlap warning.
        """
        node = start if start is not None else self.rb_node
        if node is None:
            return None, True
        tbl = self.lines_lookup
        start_a = va.va_start
        end_a = va.va_end
        visited = 0
        lefts = 0
        lines = 0
        rd = self.counters.rd
        btab = self.blocks_lookup
        while True:
            visited += 1
            pos = node.slab_pos
            lines += tbl[pos]
            e = btab[pos]  # _touch(rd, node, btab), inline
            k = node.slab_blk + e[0]
            rd[k] = rd.get(k, 0) | e[1]
            if e[2]:
                rd[k + 1] = rd.get(k + 1, 0) | e[2]
            if end_a <= node.va_start:
                lefts += 1
                nxt = node.rb_left
                if nxt is None:
                    res: tuple[VmapArea | None, bool] | None = (node, True)
                    break
            elif start_a >= node.va_end:
                nxt = node.rb_right
                if nxt is None:
                    res = (node, False)
                    break
            else:
                self.warn(OVERLAP_WARNING % (start_a, end_a, node.va_start, node.va_end))
                res = None
                break
            node = nxt
        c = self.counters
        c.walks += 1
        c.nodes_visited += visited
        # one comparison to go left, two to go right or to find an overlap
        c.comparisons += visited + visited - lefts
        c.line_accesses += lines
        return res

    def _wlist(self, *vas: VmapArea) -> None:
        """``list_add``/``list_del`` write the list_heads of the area and of
        its neighbours (the list head itself, ``head``, lives in the tree's
        owner: its line is that of :attr:`head_line`)."""
        c = self.counters
        wr = c.wr
        t = self.blocks_list
        for va in vas:
            if va is self.head:  # a touch only: line_accesses keep the walk rules
                hl = self.head_line
                wr[hl >> 2] = wr.get(hl >> 2, 0) | (1 << (hl & 3))
            else:
                _touch(wr, va, t)

    def insert_vmap_area(self, va: VmapArea) -> bool:
        """``insert_vmap_area()``: ``find_va_links`` + ``__link_va`` (no augment).

        False, with the kernel's overlap warning logged and nothing changed,
        if ``va`` overlaps an area already linked.
        """
        links = self.find_va_links(va)
        if links is None:
            return False
        self.link_va(va, links[0], links[1])
        return True

    def link_va(self, va: VmapArea, parent: VmapArea | None, left: bool) -> None:
        """``__link_va()``: rb-link ``va`` under ``parent`` and ``list_add`` it
        after its predecessor (``parent`` for a right child, else ``parent``'s
        list predecessor; the head for an empty tree)."""
        if parent is None:
            prev = self.head
        elif left:
            prev = parent.list_prev
        else:
            prev = parent
        self.rb_insert(va, parent, left)
        if self.augmented:
            va.subtree_max_size = 0
        nxt = prev.list_next
        va.list_prev = prev
        va.list_next = nxt
        nxt.list_prev = va
        prev.list_next = va
        self._wlist(prev, va, nxt)
        self.nr += 1
        self.counters.list_ops += 1

    def unlink_va(self, va: VmapArea) -> None:
        """``__unlink_va()``: ``rb_erase`` (augmented or not) and ``list_del_init``.

        An area on no list is left alone with a warning (the kernel's
        ``WARN_ON(RB_EMPTY_NODE())``).
        """
        if va.list_next is None:
            self.warn(f"WARNING: {self.name}: unlink of {_fmt(va)}, which is on no list")
            return
        self.rb_erase(va)
        prev = va.list_prev
        nxt = va.list_next
        prev.list_next = nxt
        nxt.list_prev = prev
        self._wlist(prev, va, nxt)
        va.list_prev = va.list_next = None
        self.nr -= 1
        self.counters.list_ops += 1

    def lookup(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area()``: the area with ``va_start <= addr < va_end``."""
        node = self.rb_node
        tbl = self.lines_lookup
        visited = 0
        lefts = 0
        lines = 0
        rd = self.counters.rd
        btab = self.blocks_lookup
        while node is not None:
            visited += 1
            pos = node.slab_pos
            lines += tbl[pos]
            e = btab[pos]  # _touch(rd, node, btab), inline
            k = node.slab_blk + e[0]
            rd[k] = rd.get(k, 0) | e[1]
            if e[2]:
                rd[k + 1] = rd.get(k + 1, 0) | e[2]
            if addr < node.va_start:
                lefts += 1
                node = node.rb_left
            elif addr >= node.va_end:
                node = node.rb_right
            else:
                break
        c = self.counters
        c.walks += 1
        c.nodes_visited += visited
        # one comparison to go left, two to go right or to match
        c.comparisons += visited + visited - lefts
        c.line_accesses += lines
        return node

    def __iter__(self) -> Iterator[VmapArea]:
        head = self.head
        va = head.list_next
        while va is not head:
            nxt = va.list_next
            yield va
            va = nxt

    def __len__(self) -> int:
        return self.nr

    def check(self) -> None:
        """Raise :class:`vmapsim.InvariantError` unless the tree and the list agree.

        Checks the red-black rules, parent links, BST order and
        non-overlap, every ``subtree_max_size`` (augmented), that the list
        runs in the tree's in-order sequence with consistent back links, and
        the element count.
        """
        name = self.name
        in_order = self.check_tree(self.nr)
        if len(in_order) != self.nr:
            raise InvariantError(
                f"{name}: tree holds {len(in_order)} areas but the count is {self.nr}"
            )
        head = self.head
        va = head.list_next
        prev = head
        i = 0
        while va is not head:
            if va is None:
                raise InvariantError(f"{name}: list broken after {_fmt(prev)} (next is None)")
            if va.list_prev is not prev:
                raise InvariantError(f"{name}: list_prev of {_fmt(va)} does not point back")
            if i >= len(in_order):
                raise InvariantError(f"{name}: list is longer than the tree ({len(in_order)})")
            if in_order[i] is not va:
                raise InvariantError(
                    f"{name}: list entry {i} is {_fmt(va)}, tree in-order entry is "
                    f"{_fmt(in_order[i])}"
                )
            i += 1
            prev = va
            va = va.list_next
        if head.list_prev is not prev:
            raise InvariantError(f"{name}: list head's prev is not the last entry")
        if i != len(in_order):
            raise InvariantError(f"{name}: list has {i} entries, tree has {len(in_order)}")
