"""An independent cost oracle for the rbtree plugin's write paths.

:class:`RefTree` is a second, plain red-black tree written from the rules in
docs/rbtree.md and docs/metrics.md (and lib/rbtree.c's case structure as
those docs describe it), over its own :class:`Ref` nodes.  It shares no code
with ``vmapsim_rbtree`` and never reads the plugin's counters: each operation
returns the costs the documented rules give, computed here, and the tests
compare them with what the plugin added to its :class:`vmapsim.Counters`.

The insert and erase follow the textbook algorithm lib/rbtree.c implements
(insert cases 1-3, erase with the in-order successor and fix-up cases 1-4),
so the tree has the same shape as the plugin's after every operation (the
tests check that too).  In augmented mode the three callbacks of
``RB_DECLARE_CALLBACKS_MAX`` are applied where docs/rbtree.md says:

* rotate: the new subtree top takes the old top's stored value, the old top
  is recomputed (one ``augment_updates``), on every rotation;
* copy: the successor takes the erased node's stored value (no update);
* propagate: recompute rootwards, counting every recomputation including the
  unchanged one that stops the walk.

The cache-line model is written out here from the kernel's ``struct
vmap_area`` (72 bytes before the series), not taken from ``vmapsim.kernel.layout``:
an object at slab position ``p`` starts at byte ``72 * p`` of its slab page;
reading a set of fields costs the distinct 64-byte lines covering them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

#: ``struct vmap_area`` (mm/vmalloc.c, before the series), byte spans of the fields
#: the rb-tree reads: two unsigned longs, the 24-byte ``struct rb_node``, the
#: 16-byte ``struct list_head``, the ``subtree_max_size``/``vm`` union, ``flags``.
VMAP_AREA_SIZE = 72
FIELD_SPANS = {
    "va_start": (0, 8),
    "va_end": (8, 16),
    "rb_node": (16, 40),
    "list": (40, 56),
    "subtree_max_size": (56, 64),
    "flags": (64, 72),
}
CACHE_LINE = 64
SLAB_OBJECTS = 4096 // VMAP_AREA_SIZE  # 56 objects per 4 KiB slab page

#: fields read per node, as docs/rbtree.md "Counters" lists them
LOOKUP = ("va_start", "va_end", "rb_node")  # link search, lookup
AUGMENT = ("va_start", "va_end", "rb_node", "subtree_max_size")  # gap search, propagate
SUCCESSOR = ("rb_node",)  # rb_erase's successor search reads rb_left only


def lines(pos: int, fields: tuple[str, ...]) -> int:
    """Distinct 64-byte lines covering ``fields`` of the object at slab position ``pos``."""
    base = (pos % SLAB_OBJECTS) * VMAP_AREA_SIZE
    seen: set[int] = set()
    for name in fields:
        lo, hi = FIELD_SPANS[name]
        seen.update(range((base + lo) // CACHE_LINE, (base + hi - 1) // CACHE_LINE + 1))
    return len(seen)


class Ref:
    """One node of the reference tree: an interval, its slab position, its links."""

    __slots__ = ("end", "left", "parent", "pos", "red", "right", "smax", "start")

    def __init__(self, start: int, end: int, pos: int) -> None:
        self.start = start
        self.end = end
        self.pos = pos
        self.left: Ref | None = None
        self.right: Ref | None = None
        self.parent: Ref | None = None
        self.red = True
        self.smax = 0

    def __repr__(self) -> str:
        return f"Ref({self.start:#x}-{self.end:#x})"


class RefTree:
    """A red-black tree (+ sorted order) with the documented cost rules.

    Every public operation returns a :class:`collections.Counter` of the
    counters it costs (only non-zero entries).
    """

    def __init__(self, augmented: bool) -> None:
        self.root: Ref | None = None
        self.augmented = augmented
        self.cost: Counter[str] = Counter()
        #: how often each insert / erase fix-up case ran (for coverage checks)
        self.cases: Counter[str] = Counter()

    # -- helpers -------------------------------------------------------------

    def _value(self, n: Ref) -> int:
        """The documented recomputation: max of own size and the children's stored values."""
        m = n.end - n.start
        for c in (n.left, n.right):
            if c is not None:
                m = max(m, c.smax)
        return m

    def _replace(self, old: Ref, new: Ref | None) -> None:
        """Make ``old``'s parent (or the root) point at ``new``."""
        p = old.parent
        if p is None:
            self.root = new
        elif p.left is old:
            p.left = new
        else:
            p.right = new
        if new is not None:
            new.parent = p

    def _rotate(self, x: Ref, to_left: bool) -> None:
        """Rotate at ``x`` (left: its right child comes up); run the rotate callback."""
        y = x.right if to_left else x.left
        assert y is not None
        if to_left:
            x.right = y.left
            if y.left is not None:
                y.left.parent = x
            self._replace(x, y)
            y.left = x
        else:
            x.left = y.right
            if y.right is not None:
                y.right.parent = x
            self._replace(x, y)
            y.right = x
        x.parent = y
        self.cost["rotations"] += 1
        if self.augmented:
            y.smax = x.smax
            x.smax = self._value(x)
            self.cost["augment_updates"] += 1

    def _propagate(self, n: Ref | None, stop: Ref | None, *, walk: bool) -> None:
        """Recompute rootwards from ``n`` up to (not including) ``stop``; stop early
        at the first node whose value is unchanged (that step is counted)."""
        steps = 0
        while n is not stop and n is not None:
            m = self._value(n)
            steps += 1
            self.cost["line_accesses"] += lines(n.pos, AUGMENT)
            if m == n.smax:
                break
            n.smax = m
            n = n.parent
        self.cost["augment_updates"] += steps
        self.cost["nodes_visited"] += steps
        if walk:
            self.cost["walks"] += 1

    def _take(self) -> Counter[str]:
        out = +self.cost
        self.cost = Counter()
        return out

    # -- link search -----------------------------------------------------------

    def find_links(
        self, start: int, end: int, near: Ref | None = None
    ) -> tuple[Ref | None, bool] | None:
        """``find_va_links`` costs: per node 1 comparison to go left, 2 to go right
        or to find an overlap (then None: nothing is linked)."""
        n = near if near is not None else self.root
        if n is None:
            return None, True
        self.cost["walks"] += 1
        while True:
            self.cost["nodes_visited"] += 1
            self.cost["line_accesses"] += lines(n.pos, LOOKUP)
            if end <= n.start:
                self.cost["comparisons"] += 1
                if n.left is None:
                    return n, True
                n = n.left
            elif start >= n.end:
                self.cost["comparisons"] += 2
                if n.right is None:
                    return n, False
                n = n.right
            else:
                self.cost["comparisons"] += 2
                return None

    # -- insert ----------------------------------------------------------------

    def link(self, z: Ref, parent: Ref | None, left: bool) -> None:
        """``__link_va``: link red, fix up (insert cases 1-3), value 0, one list_add."""
        z.parent, z.left, z.right, z.red = parent, None, None, True
        if parent is None:
            self.root = z
        elif left:
            parent.left = z
        else:
            parent.right = z
        while z.parent is not None and z.parent.red:
            p = z.parent
            g = p.parent
            assert g is not None
            p_left = p is g.left
            u = g.right if p_left else g.left
            if u is not None and u.red:  # case 1: recolour, two levels up
                self.cases["insert 1"] += 1
                p.red = u.red = False
                g.red = True
                z = g
                continue
            if z is (p.right if p_left else p.left):  # case 2: inner child
                self.cases["insert 2"] += 1
                self._rotate(p, to_left=p_left)
                z, p = p, z
            self.cases["insert 3"] += 1
            p.red = False  # case 3
            g.red = True
            self._rotate(g, to_left=not p_left)
            break
        assert self.root is not None
        self.root.red = False
        self.cost["list_ops"] += 1

    def insert(self, z: Ref, near: Ref | None = None) -> Counter[str]:
        """``insert_vmap_area_augment`` (free) / ``insert_vmap_area`` (busy, lazy)."""
        links = self.find_links(z.start, z.end, near)
        if links is None:  # the overlap warning: nothing changes
            return self._take()
        parent, left = links
        self.link(z, parent, left)
        if self.augmented:
            z.smax = 0  # __link_va, then augment_tree_propagate_from(va)
            self._propagate(z, None, walk=True)
        return self._take()

    def propagate(self, n: Ref) -> Counter[str]:
        """``augment_tree_propagate_from`` after an in-place edit of ``n``."""
        self._propagate(n, None, walk=True)
        return self._take()

    # -- erase -----------------------------------------------------------------

    def unlink(self, z: Ref) -> None:
        """``rb_erase[_augmented]`` + ``list_del_init``: costs go to ``self.cost``."""
        aug = self.augmented
        fix_parent: Ref | None = None  # where a black deficit starts (None: no fix-up)
        if z.left is None or z.right is None:
            child = z.left if z.right is None else z.right
            parent = z.parent
            self._replace(z, child)
            if child is not None:
                child.red = False  # a lone child is red, below a black node
            elif not z.red:
                fix_parent = parent
            start_from = parent
        else:
            # successor: right child, then left as far as it goes (rb_left reads)
            y = z.right
            self.cost["nodes_visited"] += 1
            self.cost["line_accesses"] += lines(y.pos, SUCCESSOR)
            while y.left is not None:
                y = y.left
                self.cost["nodes_visited"] += 1
                self.cost["line_accesses"] += lines(y.pos, SUCCESSOR)
            x = y.right
            if y.parent is z:
                xp = y
                if aug:
                    y.smax = z.smax  # copy
            else:
                xp = y.parent
                xp.left = x
                if x is not None:
                    x.parent = xp
                y.right = z.right
                z.right.parent = y
                if aug:
                    y.smax = z.smax  # copy
                    self._propagate(xp, y, walk=False)
            y.left = z.left
            z.left.parent = y
            self._replace(z, y)
            y_was_red = y.red
            y.red = z.red
            if x is not None:
                x.red = False
            elif not y_was_red:
                fix_parent = xp
            start_from = y
        if aug:
            self._propagate(start_from, None, walk=False)
        z.parent = z.left = z.right = None
        if fix_parent is not None:
            self._erase_fixup(fix_parent)
        self.cost["list_ops"] += 1

    def erase(self, z: Ref) -> Counter[str]:
        self.unlink(z)
        return self._take()

    def _erase_fixup(self, xp: Ref) -> None:
        """Fix-up cases 1-4 for a black deficit on a (possibly empty) child of ``xp``."""
        x: Ref | None = None
        while True:
            x_left = xp.left is x
            w = xp.right if x_left else xp.left
            assert w is not None
            if w.red:  # case 1
                self.cases["erase 1"] += 1
                w.red = False
                xp.red = True
                self._rotate(xp, to_left=x_left)
                w = xp.right if x_left else xp.left
                assert w is not None
            near = w.left if x_left else w.right
            far = w.right if x_left else w.left
            if (near is None or not near.red) and (far is None or not far.red):  # case 2
                self.cases["erase 2"] += 1
                w.red = True
                if xp.red or xp.parent is None:
                    xp.red = False
                    return
                x, xp = xp, xp.parent
                continue
            if far is None or not far.red:  # case 3
                self.cases["erase 3"] += 1
                assert near is not None
                near.red = False
                w.red = True
                self._rotate(w, to_left=not x_left)
                w = xp.right if x_left else xp.left
                assert w is not None
            self.cases["erase 4"] += 1
            w.red = xp.red  # case 4
            xp.red = False
            far = w.right if x_left else w.left
            assert far is not None
            far.red = False
            self._rotate(xp, to_left=x_left)
            return

    # -- coalescing ------------------------------------------------------------

    def merge_or_add(self, z: Ref) -> tuple[Ref, list[Ref], Counter[str]]:
        """``merge_or_add_vmap_area_augment``: the resulting block, the absorbed
        nodes, and the costs (docs/rbtree.md "Coalescing")."""
        links = self.find_links(z.start, z.end)
        assert links is not None, "the tests release only free ranges"
        parent, left = links
        absorbed: list[Ref] = []
        if parent is None:
            self.link(z, None, True)
            z.smax = 0
            self._propagate(z, None, walk=True)
            return z, absorbed, self._take()
        order = list(self.in_order())
        # the next block: the parent for a left link, else the parent's successor
        i = order.index(parent)
        nxt = parent if left else (order[i + 1] if i + 1 < len(order) else None)
        j = order.index(nxt) if nxt is not None else len(order)
        prv = order[j - 1] if j > 0 else None
        self.cost["list_ops"] += 2
        result = None
        if nxt is not None and nxt.start == z.end:
            nxt.start = z.start
            absorbed.append(z)
            result = nxt
        if prv is not None and prv.end == z.start:
            if result is not None:
                self.unlink(result)
                absorbed.append(result)
                prv.end = result.end
            else:
                absorbed.append(z)
                prv.end = z.end
            result = prv
        if result is None:
            self.link(z, parent, left)
            z.smax = 0
            result = z
        self._propagate(result, None, walk=True)
        return result, absorbed, self._take()

    # -- views -----------------------------------------------------------------

    def in_order(self) -> Iterator[Ref]:
        stack: list[Ref] = []
        n = self.root
        while stack or n is not None:
            while n is not None:
                stack.append(n)
                n = n.left
            n = stack.pop()
            yield n
            n = n.right

    def shape(self) -> list[tuple]:
        """(start, end, red, parent start, stored value) in order: compared with the plugin's."""
        return [
            (
                n.start,
                n.end,
                n.red,
                None if n.parent is None else n.parent.start,
                n.smax if self.augmented else None,
            )
            for n in self.in_order()
        ]

    def check_values(self) -> None:
        """The oracle's own stored values equal a from-scratch recomputation."""

        def exact(n: Ref | None) -> int:
            if n is None:
                return 0
            m = max(n.end - n.start, exact(n.left), exact(n.right))
            assert n.smax == m, (n, n.smax, m)
            return m

        if self.augmented:
            exact(self.root)
