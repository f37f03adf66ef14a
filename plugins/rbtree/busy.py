"""Per-node busy and lazy trees: ``vn->busy`` and ``vn->lazy`` (``struct rb_list``)."""

from __future__ import annotations

import errno
from typing import Any

from vmapsim import Counters, StructLayout, VmapArea

from .rbtree import RbList

__all__ = ["RbBusyIndex", "RbLazyQueue"]


class _PlainRbList(RbList):
    """A ``struct rb_list`` whose tree is not augmented (busy and lazy trees)."""

    __slots__ = ()
    default_name = "rb-list"

    def __init__(
        self,
        counters: Counters,
        warn: Any,
        layout: StructLayout | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            counters, warn, augmented=False, layout=layout, name=name or self.default_name
        )


class RbBusyIndex(_PlainRbList):
    """One vmap node's busy tree ``vn->busy``: plain rb-tree + sorted list.

    ``RbBusyIndex(counters, warn, layout=None, name="busy")``.
    """

    __slots__ = ()
    default_name = "busy"

    #: ``insert_vmap_area()`` into the busy tree
    insert = RbList.insert_vmap_area

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Publish on the allocation path: ``insert_vmap_area()``, which allocates
        nothing, so it never fails for memory: 0, or ``-EEXIST`` on overlap."""
        return 0 if self.insert_vmap_area(va) else -errno.EEXIST

    def find(self, addr: int) -> VmapArea | None:
        """``__find_vmap_area()``: the busy area with ``va_start <= addr < va_end``."""
        return self.lookup(addr)

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va()``: ``rb_erase`` + ``list_del_init``."""
        self.unlink_va(va)

    def find_unlink(self, addr: int) -> VmapArea | None:
        """The lookup and ``unlink_va()`` of ``find_unlink_vmap_area()`` for
        this node (one pass under ``busy.lock``)."""
        va = self.lookup(addr)
        if va is not None:
            self.unlink_va(va)
        return va


class RbLazyQueue(_PlainRbList):
    """One vmap node's lazy tree ``vn->lazy``: plain rb-tree + sorted list.

    ``RbLazyQueue(counters, warn, layout=None, name="lazy")``.
    """

    __slots__ = ()
    default_name = "lazy"

    #: ``insert_vmap_area()`` into the lazy tree (``free_vmap_area_noflush``)
    add = RbList.insert_vmap_area

    def detach_all(self) -> list[VmapArea]:
        """``list_replace_init(&vn->lazy.head, &vn->purge_list)`` with
        ``vn->lazy.root = RB_ROOT``: every queued area in address order.

        Each area's tree and list fields are cleared so it can be linked
        elsewhere.  Counts one ``list_ops`` (the splice).
        """
        head = self.head
        out: list[VmapArea] = []
        append = out.append
        va = head.list_next
        while va is not head:
            nxt = va.list_next
            va.rb_parent = va.rb_left = va.rb_right = None
            va.rb_red = False
            va.list_prev = va.list_next = None
            append(va)
            va = nxt
        head.list_next = head.list_prev = head
        self.rb_node = None
        self.nr = 0
        self.counters.list_ops += 1
        return out
