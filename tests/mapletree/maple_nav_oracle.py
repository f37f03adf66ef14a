"""A kernel-semantics oracle for ``ma_state`` navigation on a tree with a root node.

Written from ``lib/maple_tree.c`` (``mas_walk``, ``mas_next_setup`` /
``mas_next_slot``, ``mas_prev_setup`` / ``mas_prev_slot``, ``mas_find_setup``,
``mas_find_rev_setup``), independently of the model: the tree is a flat list
of its slots ``(first, last, entry)`` in key order (NULL ranges included),
and a step to the next or previous slot is an index into that list.  Node
boundaries do not change what the kernel returns, so they are not modelled.

Sequences on which the kernel would step from a state that never walked
(``mas->node`` is NULL: an overflow or underflow reported before any walk,
then a step with a wider limit) raise :class:`Undefined`.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any


class Undefined(Exception):
    """The kernel would dereference a NULL node here."""


class NavOracle:
    """One ``ma_state`` over a fixed list of slots."""

    def __init__(self, slots: list[tuple[int, int, Any]]) -> None:
        self.slots = slots
        self.starts = [s[0] for s in slots]
        self.status = "ma_start"
        self.pos: int | None = None  # slot index; None before the first walk
        self.index = 0
        self.last = 0

    def set(self, index: int) -> None:
        """``mas_set``."""
        self.index = self.last = index
        self.status = "ma_start"
        self.pos = None

    def pause(self) -> None:
        """``mas_pause``."""
        self.status = "ma_pause"
        self.pos = None

    def _go(self, pos: int) -> Any:
        self.pos = pos
        self.index, self.last, entry = self.slots[pos]
        return entry

    def walk(self) -> Any:
        """``mas_walk``: the slot holding ``index``."""
        self.status = "ma_active"
        return self._go(bisect_right(self.starts, self.index) - 1)

    def _next_slot(self, limit: int) -> Any:
        if self.pos is None:
            raise Undefined
        while True:
            if self.last >= limit:
                self.status = "ma_overflow"
                return None
            entry = self._go(self.pos + 1)
            if entry is not None:
                self.status = "ma_active"
                return entry

    def _prev_slot(self, limit: int) -> Any:
        if self.pos is None:
            raise Undefined
        while True:
            if self.index <= limit:
                self.status = "ma_underflow"
                return None
            entry = self._go(self.pos - 1)
            if entry is not None:
                self.status = "ma_active"
                return entry

    def next(self, limit: int) -> Any:
        """``mas_next``."""
        if self.last >= limit:
            self.status = "ma_overflow"
            return None
        st = self.status
        if st in ("ma_start", "ma_pause", "ma_none"):
            self.walk()
        elif st == "ma_overflow":
            self.status = "ma_active"
        elif st == "ma_underflow":
            entry = self.walk()
            if entry is not None:
                return entry
        return self._next_slot(limit)

    def prev(self, limit: int) -> Any:
        """``mas_prev``."""
        if self.index <= limit:
            self.status = "ma_underflow"
            return None
        st = self.status
        if st in ("ma_start", "ma_pause", "ma_none"):
            self.walk()
        elif st == "ma_underflow":
            self.status = "ma_active"
        elif st == "ma_overflow":
            entry = self.walk()
            if entry is not None:
                return entry
        return self._prev_slot(limit)

    def find(self, limit: int) -> Any:
        """``mas_find``: overflow is reported as ``ma_active``."""
        st = self.status
        if st == "ma_active":
            if self.last >= limit:
                return None
        else:
            if st == "ma_pause":
                if self.last >= limit:
                    return None
                self.index = self.last = self.last + 1
                st = "ma_start"
            elif st == "ma_none":
                if self.last >= limit:
                    return None
                self.index = self.last
                st = "ma_start"
            elif st == "ma_underflow":
                if self.index >= limit:
                    self.status = "ma_overflow"
                    return None
                entry = self.walk()
                if entry is not None:
                    return entry
            elif st == "ma_overflow":
                if self.last >= limit:
                    return None
                entry = self.walk()
                if entry is not None:
                    return entry
            if st == "ma_start":
                if self.index > limit:
                    return None
                entry = self.walk()
                if entry is not None:
                    return entry
            if self.index == limit:
                return None
        entry = self._next_slot(limit)
        self.status = "ma_active"
        return entry

    def find_rev(self, limit: int) -> Any:
        """``mas_find_rev``."""
        st = self.status
        if st == "ma_pause":
            if self.index <= limit:
                self.status = "ma_underflow"
                return None
            self.index = self.last = self.index - 1
            st = "ma_start"
        elif st == "ma_none":
            if self.index <= limit:
                return None
            self.last = self.index
            st = "ma_start"
        elif st in ("ma_overflow", "ma_underflow"):
            if self.index <= limit:
                if st == "ma_overflow":
                    self.status = "ma_underflow"
                return None
            self.status = "ma_active"
        if st == "ma_start":
            if self.index < limit:
                return None
            entry = self.walk()
            if entry is not None:
                return entry
        if self.index < limit:
            return None
        return self._prev_slot(limit)
