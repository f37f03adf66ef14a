"""The free-space index: ``free_vmap_area_root`` + ``free_vmap_area_list``.

:class:`RbFreeIndex` is an augmented rb-tree (``subtree_max_size``) of free
:class:`vmapsim.VmapArea` blocks with the address-sorted list kept in step,
implementing :class:`vmapsim.FreeIndex`.
"""

from __future__ import annotations

from typing import Any

from vmapsim import Counters, StructLayout, VmapArea, is_within_this_va

from .rbtree import ULONG_MASK, RbList, _touch

__all__ = ["RbFreeIndex", "is_within_this_va"]


class RbFreeIndex(RbList):
    """``free_vmap_area_root`` / ``free_vmap_area_list``: augmented rb-tree + sorted list.

    ``RbFreeIndex(counters, warn, layout=None)``; ``warn`` receives the
    kernel's warning texts.  The list is circular through ``self.head``.
    """

    __slots__ = ()

    def __init__(
        self,
        counters: Counters,
        warn: Any,
        layout: StructLayout | None = None,
        name: str = "free_vmap_area_root",
    ) -> None:
        super().__init__(counters, warn, augmented=True, layout=layout, name=name)

    def find_vmap_lowest_match(
        self, size: int, align: int, vstart: int, adjust_search_size: bool
    ) -> VmapArea | None:
        """``find_vmap_lowest_match()``, with the kernel's control flow.

        ``length`` is ``size + align - 1`` when ``adjust_search_size``, else
        ``size``.  At each node: go left if the left subtree's max size is
        ``>= length`` and ``vstart < va_start``; else return the node if
        :func:`is_within_this_va`; else go right if the right subtree's max
        is ``>= length``; else climb: return a parent that fits, or, at the
        first parent whose right max is ``>= length`` and ``vstart <=
        va_start``, set ``vstart = va_start + 1`` and descend into its right
        subtree.  Reaching the top returns None.

        Counts one walk, every node read (descent and climb) in
        ``nodes_visited`` and ``comparisons``, and its cache lines
        (``va_start``, ``va_end``, ``rb_node``, ``subtree_max_size``).
        """
        node = self.rb_node
        length = size + align - 1 if adjust_search_size else size
        am1 = align - 1
        amask = ULONG_MASK & ~am1
        tbl = self.lines_augment
        visited = 0
        lines = 0
        found = None
        rd = self.counters.rd
        atab = self.blocks_augment
        stab = self.blocks_subtree
        while node is not None:
            visited += 1
            lines += tbl[node.slab_pos]
            _touch(rd, node, atab)
            s = node.va_start
            left = node.rb_left
            _touch(rd, left, stab)  # get_subtree_max_size(node->rb_left)
            if (left.subtree_max_size if left is not None else 0) >= length and vstart < s:
                node = left
                continue
            # is_within_this_va(node)
            nva = ((s if s > vstart else vstart) + am1) & amask
            if nva >= vstart and nva + size <= node.va_end:
                found = node
                break
            right = node.rb_right
            _touch(rd, right, stab)
            if (right.subtree_max_size if right is not None else 0) >= length:
                node = right
                continue
            # climb towards the root
            while True:
                node = node.rb_parent
                if node is None:
                    break
                visited += 1
                lines += tbl[node.slab_pos]
                _touch(rd, node, atab)
                s = node.va_start
                nva = ((s if s > vstart else vstart) + am1) & amask
                if nva >= vstart and nva + size <= node.va_end:
                    found = node
                    break
                right = node.rb_right
                _touch(rd, right, stab)
                if (right.subtree_max_size if right is not None else 0) >= length and vstart <= s:
                    # the left side and node itself are done: resume right of it
                    vstart = s + 1
                    node = right
                    break
            if found is not None:
                break
        c = self.counters
        c.walks += 1
        c.nodes_visited += visited
        c.comparisons += visited
        c.line_accesses += lines
        return found

    def insert(self, va: VmapArea, near: VmapArea | None = None) -> bool:
        """``insert_vmap_area_augment()``: ``find_va_links`` (from ``near`` if
        given, the kernel's ``from``), ``__link_va`` and propagate.  False,
        with the overlap warning logged and nothing changed, on overlap."""
        links = self.find_va_links(va, near)
        if links is None:
            return False
        self.link_va(va, links[0], links[1])
        self.augment_tree_propagate_from(va)
        return True

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va_augment()``: ``rb_erase_augmented`` + ``list_del_init``."""
        self.unlink_va(va)

    def propagate(self, va: VmapArea) -> None:
        """``augment_tree_propagate_from()`` after ``va``'s bounds changed in place."""
        self.augment_tree_propagate_from(va)

    def next_block(self, va: VmapArea) -> VmapArea | None:
        """``list_next_entry()``, or None past the last block."""
        nxt = va.list_next
        return None if nxt is self.head else nxt

    def prev_block(self, va: VmapArea) -> VmapArea | None:
        """``list_prev_entry()``, or None before the first block."""
        prv = va.list_prev
        return None if prv is self.head else prv

    def first(self) -> VmapArea | None:
        """``list_first_entry_or_null(&free_vmap_area_list)``."""
        va = self.head.list_next
        return None if va is self.head else va

    def last(self) -> VmapArea | None:
        """``list_last_entry()`` of the free list, or None when empty."""
        va = self.head.list_prev
        return None if va is self.head else va

    def find_enclosing(self, addr: int) -> VmapArea | None:
        """``find_vmap_area_exfree()``: the free block with ``va_start <= addr < va_end``."""
        return self.lookup(addr)
