"""``struct ma_state``: the advanced (cursor) API of the maple tree.

A state carries ``index``/``last``, a status (``ma_start``, ``ma_active``, ...),
the leaf it is positioned on, and the nodes it has preallocated.  Moves
within a leaf are O(1); crossing to a neighbouring leaf climbs through the
parent pointers (``mas_next_node`` / ``mas_prev_node``).  If the tree was
written since the state was positioned, the next move re-walks from the
root first (the kernel requires the lock to be held across; this model
re-walks instead of following a freed node).
"""

from __future__ import annotations

import errno
from bisect import bisect_left
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import MapleError
from .gap import search_forward, search_reverse
from .node import ULONG_MAX, MapleNode
from .walk import descend, next_leaf, prev_leaf, virtual_root_leaf
from .write import (
    STORE_TYPE_NAMES,
    WR_INVALID,
    WR_STORE_ROOT,
    InsertExists,
    classify,
    execute,
    exists_error,
)

if TYPE_CHECKING:
    from .tree import MapleTree

__all__ = ["MaStatus", "MapleState", "check_index"]


class MaStatus(Enum):
    """``enum maple_status``."""

    ma_active = "ma_active"
    ma_start = "ma_start"
    ma_root = "ma_root"
    ma_none = "ma_none"
    ma_pause = "ma_pause"
    ma_overflow = "ma_overflow"
    ma_underflow = "ma_underflow"
    ma_error = "ma_error"


_ACTIVE = MaStatus.ma_active
_START = MaStatus.ma_start
_ROOT = MaStatus.ma_root
_NONE = MaStatus.ma_none
_PAUSE = MaStatus.ma_pause
_OVERFLOW = MaStatus.ma_overflow
_UNDERFLOW = MaStatus.ma_underflow
_ERROR = MaStatus.ma_error


def check_index(name: str, value: object) -> int:
    """Validate an index argument: an int in ``[0, ULONG_MAX]`` (EINVAL)."""
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise MapleError(errno.EINVAL, f"{name}: must be an int (got {type(value).__name__})")
    if value < 0 or value > ULONG_MAX:  # type: ignore[operator]
        raise MapleError(errno.EINVAL, f"{name}: must be in [0, ULONG_MAX] (got {value!r})")
    return value  # type: ignore[return-value]


class MapleState:
    """``MA_STATE()``: a cursor on one tree over ``[index, last]``."""

    __slots__ = (
        "error",
        "index",
        "last",
        "min",
        "node",
        "offset",
        "prealloc",
        "reserved",
        "seq",
        "status",
        "tree",
        "wr_content",
        "wr_first",
        "wr_last",
        "wr_min",
        "wr_node",
        "wr_o1",
        "wr_o2",
        "wr_type",
    )

    def __init__(self, tree: MapleTree, index: int = 0, last: int | None = None) -> None:
        """``MA_STATE(name, mt, first, end)``; ``last`` defaults to ``index``."""
        if last is None:
            last = index
        if type(index) is not int or type(last) is not int or not 0 <= index <= last <= ULONG_MAX:
            # the checks, in order, only when the one-line test fails
            check_index("index", index)
            check_index("last", last)
            if index > last:
                raise MapleError(errno.EINVAL, f"index: must be <= last (got {index} > {last})")
        self.tree = tree
        self.index = index
        self.last = last
        self.status = _START
        self.node: MapleNode | None = None
        self.offset = 0
        self.min = 0
        self.seq = -1
        self.reserved = 0
        self.prealloc = False
        self.error = 0
        self.wr_type = WR_INVALID
        self.wr_node: MapleNode | None = None
        self.wr_min = 0
        self.wr_o1 = 0
        self.wr_o2 = 0
        self.wr_first = 0
        self.wr_last = 0
        self.wr_content: Any = None

    @property
    def store_type(self) -> str:
        """``mas->store_type``: the kind of the last write planned on this
        state (``wr_exact_fit``, ``wr_split_store``, …)."""
        return STORE_TYPE_NAMES[self.wr_type]

    def __repr__(self) -> str:
        return f"MapleState(index={self.index:#x}, last={self.last:#x}, status={self.status.name})"

    # ------------------------------------------------------------------
    # positioning

    def reset(self) -> None:
        """``mas_reset()``: the next operation walks from the root."""
        self.status = _START
        self.node = None

    def reuse(self, index: int) -> MapleState:
        """``MA_STATE(mas, tree, index, index)`` again, on a state a component
        keeps for its hot paths instead of building one per operation.

        Resets what a fresh state starts from and is read before it is set
        (``index``/``last``, status, leaf, error, store type); ``offset``,
        ``min`` and ``seq`` are only read with a leaf, which a walk sets
        together with them.  A state still holding preallocated nodes is not
        reused: a fresh one is returned (keep the returned state)."""
        if type(index) is not int or not 0 <= index <= ULONG_MAX:
            check_index("index", index)
        if self.reserved or self.prealloc:
            return MapleState(self.tree, index)
        self.index = self.last = index
        self.status = _START
        self.node = None
        self.error = 0
        self.wr_type = WR_INVALID
        return self

    def set(self, index: int) -> None:
        """``mas_set()``: ``index = last = index`` and reset."""
        check_index("index", index)
        self.index = self.last = index
        self.reset()

    def set_range(self, first: int, last: int) -> None:
        """``mas_set_range()``: ``[first, last]`` and reset."""
        check_index("first", first)
        check_index("last", last)
        if first > last:
            raise MapleError(errno.EINVAL, f"first: must be <= last (got {first} > {last})")
        self.index = first
        self.last = last
        self.reset()

    def pause(self) -> None:
        """``mas_pause()``: drop the position; iteration resumes after ``last``."""
        self.status = _PAUSE
        self.node = None

    def _position(self, index: int) -> Any:
        """Descend to ``index``: set node/offset/min and index/last; return the slot."""
        tree = self.tree
        if tree.root is None:
            node = virtual_root_leaf(tree)
            off = bisect_left(node.pivots, index)
            mn = 0
            tree.counters.walks += 1
        else:
            node, off, mn, _ = descend(tree, index)
        piv = node.pivots
        self.node = node
        self.offset = off
        self.min = mn
        self.index = piv[off - 1] + 1 if off else mn
        self.last = piv[off]
        self.seq = tree.seq
        return node.slots[off]

    def _fresh(self) -> bool:
        return self.node is not None and self.seq == self.tree.seq

    def walk(self) -> Any:
        """``mas_walk()``: the entry at ``index`` (NULL ranges included).

        Sets ``index``/``last`` to the range of the slot found; ZERO_ENTRY is
        returned as-is.  Always walks from the root, whatever the status.
        Without a root node: the root entry over ``[0, 0]`` (``ma_root``)
        when ``index`` is 0, else NULL over ``[1, ULONG_MAX]`` (``ma_none``);
        an empty tree gives NULL over ``[0, ULONG_MAX]`` (``ma_none``).
        """
        tree = self.tree
        if tree.root is not None:
            entry = self._position(self.index)
            self.status = _ACTIVE
            return entry
        tree.counters.walks += 1
        self.node = None
        entry = tree.root_entry
        if entry is None:
            self.index = 0
            self.last = ULONG_MAX
            self.status = _NONE
            return None
        if self.index:
            return self._past_root()
        self.last = 0
        self.status = _ROOT
        return entry

    def _past_root(self) -> None:
        """A tree without a root node holds nothing above index 0: the state
        is left on the NULL range ``[1, ULONG_MAX]`` with ``ma_none``."""
        self.index = 1
        self.last = ULONG_MAX
        self.status = _NONE

    # ------------------------------------------------------------------
    # stepping

    def _next_slot(self, max: int) -> Any:
        """``mas_next_slot()``: the next non-NULL entry whose start is <= max."""
        tree = self.tree
        node = self.node
        off = self.offset
        mn = self.min
        while True:
            if self.last >= max:
                self.status = _OVERFLOW
                return None
            piv = node.pivots
            if off < len(piv) - 1:
                off += 1
                start = piv[off - 1] + 1
            else:
                nxt = next_leaf(tree, node)
                if nxt is None:  # pragma: no cover - last == ULONG_MAX >= max
                    self.status = _OVERFLOW
                    return None
                node, mn = nxt
                piv = node.pivots
                off = 0
                start = mn
            self.node = node
            self.offset = off
            self.min = mn
            self.index = start
            self.last = piv[off]
            entry = node.slots[off]
            if entry is not None:
                self.status = _ACTIVE
                return entry

    def _prev_slot(self, min: int) -> Any:
        """``mas_prev_slot()``: the previous non-NULL entry whose end is >= min."""
        tree = self.tree
        node = self.node
        off = self.offset
        mn = self.min
        while True:
            if self.index <= min:
                self.status = _UNDERFLOW
                return None
            if off:
                off -= 1
            else:
                prv = prev_leaf(tree, node)
                if prv is None:  # pragma: no cover - index == 0 <= min
                    self.status = _UNDERFLOW
                    return None
                node, mn = prv
                off = len(node.slots) - 1
            piv = node.pivots
            self.node = node
            self.offset = off
            self.min = mn
            self.index = piv[off - 1] + 1 if off else mn
            self.last = piv[off]
            entry = node.slots[off]
            if entry is not None:
                self.status = _ACTIVE
                return entry

    def _stale_next(self, max: int) -> Any:
        """``mas_next_slot()`` from a state with no usable leaf.

        The leaf was rewritten through another handle (the kernel finds it
        dead and re-walks to ``last``), or the state never walked (an
        overflow reported before any walk, where the kernel would follow a
        NULL node).  Re-walks to ``last`` and steps from there; a tree left
        without a root node ends in ``ma_none``, like a walk of one.
        """
        self._position(self.last)
        entry = self._next_slot(max)
        if entry is None and self.tree.root is None:
            self.status = _NONE
        return entry

    def _stale_prev(self, min: int) -> Any:
        """``mas_prev_slot()`` from a state with no usable leaf: re-walks to
        ``index`` first (see :meth:`_stale_next`)."""
        self._position(self.index)
        return self._prev_slot(min)

    def _setup_move(self, st: MaStatus, turned: MaStatus) -> tuple[bool, Any]:
        """The part of ``mas_next_setup`` / ``mas_prev_setup`` both share, for
        a state that is not ``ma_active``.

        ``ma_start``/``ma_pause``/``ma_none`` walk to ``index``; a state that
        stopped at the other end (``turned``: underflow for next, overflow
        for prev) walks and answers with the entry at ``index`` if there is
        one; the state that stopped at this end resumes; ``ma_root`` has
        nothing to walk.  Returns ``(True, entry)`` when the setup already
        answers the call.
        """
        if st is _START or st is _PAUSE or st is _NONE:
            self.walk()
        elif st is turned:
            self.status = _ACTIVE
            entry = self.walk()
            if entry is not None:
                return True, entry
        elif st is _ERROR:
            return True, None
        elif st is not _ROOT:  # stopped at this end: resume
            self.status = _ACTIVE
        return False, None

    def next(self, max: int) -> Any:
        """``mas_next()``: the next entry after the current one whose start <= max.

        ``mas_next_setup`` by status: ``ma_start``/``ma_pause``/``ma_none``
        walk to ``index`` first; ``ma_underflow`` returns the entry at
        ``index`` if there is one; ``ma_overflow`` resumes.  At the limit
        returns None with status ``ma_overflow`` (``index``/``last`` are the
        NULL range reached, if any).  Without a root node nothing follows
        the root entry: None over ``[1, ULONG_MAX]`` with ``ma_none`` (from
        ``ma_none`` at index 0: ``[0, 0]``, ``ma_root``).
        """
        check_index("max", max)
        if self.last >= max:
            self.status = _OVERFLOW
            return None
        st = self.status
        if st is not _ACTIVE:
            done, entry = self._setup_move(st, _UNDERFLOW)
            if done:
                return entry
            if self.status is _ROOT:  # no root node: nothing follows the entry
                if st is not _NONE or self.index:
                    return self._past_root()
                self.last = 0
                return None
            if self.status is not _ACTIVE:
                return None
        if self._fresh():
            return self._next_slot(max)
        return self._stale_next(max)

    def prev(self, min: int) -> Any:
        """``mas_prev()``: the previous entry whose end >= min.

        ``mas_prev_setup`` by status: ``ma_start``/``ma_pause``/``ma_none``
        walk to ``index`` first; ``ma_overflow`` returns the entry at
        ``index`` if there is one; ``ma_underflow`` resumes.  At the limit
        returns None with status ``ma_underflow``.  Without a root node:
        from an index above 0 the root entry over ``[0, 0]`` (``ma_root``;
        the kernel does not compare it with ``min``), on an empty tree None
        with ``ma_none``.
        """
        check_index("min", min)
        if self.index <= min:
            self.status = _UNDERFLOW
            return None
        st = self.status
        if st is not _ACTIVE:
            done, entry = self._setup_move(st, _OVERFLOW)
            if done:
                return entry
            now = self.status
            if now is _ROOT:
                if not self.index:  # pragma: no cover - index 0 is always <= min
                    self.status = _NONE
                    return None
                self.index = self.last = 0
                return self.tree.root_entry
            if now is not _ACTIVE:
                # ma_none: walked past the root entry (or an empty tree)
                if self.index:
                    self.index = self.last = 0
                    self.status = _ROOT
                    return self.tree.root_entry
                return None
        if self._fresh():
            return self._prev_slot(min)
        return self._stale_prev(min)

    def find(self, max: int) -> Any:
        """``mas_find()``: first call → entry at or after ``index`` (start <= max);
        later calls → the next entry.

        ``mas_find_setup`` by status: ``ma_pause`` resumes after ``last``,
        ``ma_none`` at ``last``; ``ma_underflow`` and ``ma_overflow`` return
        the entry at ``index`` if there is one (``ma_underflow`` with
        ``index >= max`` becomes ``ma_overflow``).  Past max returns None and
        leaves the state on the NULL range reached, ``ma_active`` (overflow
        is ignored).  Without a root node: the root entry (``ma_root``) when
        ``index`` is 0, else None over ``[1, ULONG_MAX]`` with ``ma_none``.
        """
        check_index("max", max)
        st = self.status
        if st is _ACTIVE:
            if self.last >= max:
                return None
            return self._find_step(max)
        if st is _PAUSE:
            if self.last >= max:
                return None
            self.index = self.last = self.last + 1
            st = _START
        elif st is _NONE:
            if self.last >= max:
                return None
            self.index = self.last
            st = _START
        elif st is _UNDERFLOW:
            if self.index >= max:
                self.status = _OVERFLOW
                return None
            entry = self.walk()
            if entry is not None:
                return entry
        elif st is _OVERFLOW:
            if self.last >= max:
                return None
            entry = self.walk()
            if entry is not None:
                return entry
        elif st is _ERROR:
            return None
        if st is _START:
            if self.index > max:
                return None
            entry = self.walk()
            if entry is not None:
                return entry
        now = self.status
        if now is _ROOT:
            return self._past_root()
        if now is _NONE or self.index == max:
            return None
        return self._find_step(max)

    def _find_step(self, max: int) -> Any:
        """``mas_find``'s step: ``mas_next_slot``, but reaching ``max`` leaves
        the state active on the range it stopped at (overflow is ignored)."""
        entry = self._next_slot(max) if self._fresh() else self._stale_next(max)
        if self.status is _OVERFLOW:
            self.status = _ACTIVE
        return entry

    def find_rev(self, min: int) -> Any:
        """``mas_find_rev()``: first call → entry at or before ``index``
        (end >= min); later calls → the previous entry.

        ``mas_find_rev_setup`` by status: ``ma_pause`` resumes below
        ``index``; ``ma_overflow`` and ``ma_underflow`` resume from the
        current range.  None with status ``ma_underflow`` when stepping
        below min; a start or current range already below min returns None
        and keeps the status.  Without a root node: the root entry over
        ``[0, 0]`` (``ma_root``, whatever min), then None with ``ma_none``.
        """
        check_index("min", min)
        st = self.status
        if st is _ACTIVE:
            if self.index < min:
                return None
            if self._fresh():
                return self._prev_slot(min)
            return self._stale_prev(min)
        if st is _PAUSE:
            if self.index <= min:
                self.status = _UNDERFLOW
                return None
            self.index = self.last = self.index - 1
            st = _START
        elif st is _NONE:
            if self.index <= min:
                return None
            self.last = self.index
            st = _START
        elif st is _OVERFLOW:
            if self.index <= min:
                self.status = _UNDERFLOW
                return None
            self.status = _ACTIVE
        elif st is _UNDERFLOW:
            if self.index <= min:
                return None
            self.status = _ACTIVE
        elif st is _ERROR:
            return None
        if st is _START:
            if self.index < min:
                return None
            entry = self.walk()
            if entry is not None:
                return entry
        now = self.status
        if now is _ROOT:
            self.status = _NONE
            return None
        if now is _NONE:
            # walked to an index past the root entry (or an empty tree)
            self.index = self.last = 0
            self.status = _ROOT
            return self.tree.root_entry
        if self.index < min:
            return None
        if self._fresh():
            return self._prev_slot(min)
        return self._stale_prev(min)

    # ------------------------------------------------------------------
    # writes

    def _write(
        self,
        first: int,
        last: int,
        entry: Any,
        can_block: bool,
        retry: bool,
        insert: bool = False,
        pos: tuple[MapleNode, int, int, int] | None = None,
    ) -> Any:
        """Classify, obtain nodes (all up front), store, release leftovers.

        ``pos`` is the caller's ``descend(tree, first)`` when it has walked
        already (see :func:`classify`)."""
        tree = self.tree
        try:
            need = classify(tree, self, first, last, entry, insert, pos, True)
        except InsertExists as exists:
            self._insert_exists(first, last, exists.need, can_block, retry)
        prior = tree.root_entry
        if need >= 0:  # else an in-place store, done by classify (nothing to reserve)
            if need > self.reserved:
                if self.prealloc:
                    raise MapleError(
                        errno.EINVAL,
                        f"store_prealloc: the {self.store_type} needs {need} nodes but "
                        f"{self.reserved} were preallocated (preallocate for the same "
                        "range and entry)",
                    )
                self._obtain(
                    need - self.reserved, can_block, retry, f"store [{first:#x}, {last:#x}]"
                )
                self.reserved = need
            execute(tree, self, entry)
        content = self.wr_content
        self.index = self.wr_first
        self.last = self.wr_last
        self.status = _ACTIVE if tree.root is not None else self._rootless_status(entry, prior)
        self.node = None
        self.error = 0
        if self.reserved and not self.prealloc:
            tree.allocator.unreserve(self.reserved)
            self.reserved = 0
        return content

    def _rootless_status(self, entry: Any, prior: Any) -> MaStatus:
        """The status a write leaves when the tree ends without a root node.

        ``mas_store_root()``: a root entry stored at ``[0, 0]`` sets
        ``ma_start``; a NULL store keeps what ``mas_start()`` found before it
        (``ma_root`` over a root entry, ``ma_none`` on an empty tree).
        ``mas_new_root()`` of NULL (a NULL store over the whole key space of
        a tree with nodes) sets ``ma_start``.
        """
        if self.wr_type == WR_STORE_ROOT and entry is None:
            return _ROOT if prior is not None else _NONE
        return _START

    def _obtain(self, more: int, can_block: bool, retry: bool, what: str) -> None:
        """``mas_alloc_nodes(GFP_NOWAIT)``, then (with ``retry``) ``mas_nomem``'s
        second request with the caller's ``can_block``: obtain ``more`` nodes
        or fail with ENOMEM (state ``ma_error``), nothing obtained."""
        alloc = self.tree.allocator
        ok = alloc.reserve(more, False)
        if not ok and retry:
            ok = alloc.reserve(more, can_block)
        if not ok:
            self.status = _ERROR
            self.error = errno.ENOMEM
            raise MapleError(errno.ENOMEM, f"{what}: cannot allocate {more} maple nodes")

    def _insert_exists(
        self, first: int, last: int, need: int, can_block: bool, retry: bool
    ) -> NoReturn:
        """``mas_insert()`` over an occupied range, after its preallocation.

        The kernel reserves the store's worst case (``mas_wr_preallocate``,
        retried blocking by ``mas_nomem``) before it looks at the range, then
        gives the nodes back (``mas_destroy``): EEXIST, or ENOMEM when the
        nodes could not be obtained.  The tree is never changed.
        """
        more = need - self.reserved
        if more > 0:
            self._obtain(more, can_block, retry, f"insert [{first:#x}, {last:#x}]")
            self.tree.allocator.unreserve(more)
        self.status = _ERROR
        self.error = errno.EEXIST
        raise exists_error(first, last)

    def store(self, entry: Any) -> Any:
        """``mas_store()``: store ``entry`` over ``[index, last]``.

        Returns the entry that was at ``index``.  Uses the nodes of a
        successful ``preallocate``; otherwise allocates without blocking
        (GFP_NOWAIT) and raises ENOMEM if that fails, with nothing changed.
        """
        self._check_range()
        return self._write(self.index, self.last, entry, False, False)

    def store_gfp(self, entry: Any, can_block: bool = True) -> None:
        """``mas_store_gfp()``: store, retrying a failed non-blocking allocation
        with ``can_block`` (``mas_nomem``); ENOMEM if that fails too."""
        self._check_range()
        self._write(self.index, self.last, entry, can_block, True)

    def insert(self, entry: Any, can_block: bool = True) -> None:
        """``mas_insert()`` with ``mas_nomem`` retry: EEXIST unless all NULL."""
        self._check_range()
        self._write(self.index, self.last, entry, can_block, True, True)

    def erase(self) -> Any:
        """``mas_erase()``: NULL over the whole range holding ``index``.

        Sets ``index``/``last`` to that range (widened over NULL
        neighbours) and returns the old entry (None if it was a gap).
        Without a root node there is no range to walk (``mas_start()``):
        ``index``/``last`` are kept, the status is ``ma_root`` over a root
        entry and ``ma_none`` on an empty tree, and only the root entry (at
        index 0) is erased.
        """
        tree = self.tree
        if tree.root is None:
            tree.counters.walks += 1
            self.node = None
            entry = tree.root_entry
            if entry is None:
                self.status = _NONE
                return None
            self.status = _ROOT
            if self.index:
                return None
        else:
            entry = self._position(self.index)
            self.status = _ACTIVE
            if entry is None:
                return None
        self._write(self.index, self.last, None, True, True)
        return entry

    def preallocate(self, entry: Any, can_block: bool = True) -> None:
        """``mas_preallocate()``: reserve the worst case for storing ``entry``
        over ``[index, last]`` (by store type); ENOMEM leaves nothing changed."""
        self._check_range()
        tree = self.tree
        need = classify(tree, self, self.index, self.last, entry, False)
        more = need - self.reserved
        if more > 0:
            if not tree.allocator.reserve(more, can_block):
                self.status = _ERROR
                self.error = errno.ENOMEM
                raise MapleError(
                    errno.ENOMEM,
                    f"preallocate [{self.index:#x}, {self.last:#x}]: cannot allocate "
                    f"{more} maple nodes",
                )
            self.reserved = need
        self.prealloc = True

    def store_prealloc(self, entry: Any) -> None:
        """``mas_store_prealloc()``: store with the preallocated nodes (cannot
        fail for the range and entry that were preallocated), then
        ``mas_destroy``."""
        self._check_range()
        if not self.prealloc:
            raise MapleError(errno.EINVAL, "store_prealloc: preallocate() was not called")
        try:
            self._write(self.index, self.last, entry, False, False)
        finally:
            self.destroy()

    def destroy(self) -> None:
        """``mas_destroy()``: give back unused preallocated nodes."""
        if self.reserved:
            self.tree.allocator.unreserve(self.reserved)
            self.reserved = 0
        self.prealloc = False

    def _check_range(self) -> None:
        if self.index > self.last:
            raise MapleError(
                errno.EINVAL, f"index: must be <= last (got {self.index} > {self.last})"
            )

    # ------------------------------------------------------------------
    # gap search

    def _area_args(self, min: int, max: int, size: int) -> None:
        check_index("min", min)
        check_index("max", max)
        if type(size) is not int:
            raise MapleError(errno.EINVAL, f"size: must be an int (got {type(size).__name__})")
        if min > max:
            raise MapleError(errno.EINVAL, f"min: must be <= max (got {min:#x} > {max:#x})")
        if size <= 0 or size > ULONG_MAX:
            raise MapleError(
                errno.EINVAL, f"size: must be in [1, ULONG_MAX] (an unsigned long; got {size})"
            )
        if max - min < size - 1:
            raise MapleError(
                errno.EINVAL,
                f"size: must fit in [min, max] (got size {size:#x} > {max - min + 1:#x})",
            )

    def _sparse_area(self, min: int, max: int, size: int, fwd: bool) -> None:
        """``mas_sparse_area()``: gap search in a tree without a root node."""
        if self.tree.root_entry is not None and min == 0:
            min = 1
            if min > max or max - min < size - 1:
                # a plain -EBUSY: the state keeps mas_start's ma_root, no error
                self.status = _ROOT
                raise MapleError(
                    errno.EBUSY, f"no free range of size {size:#x} in [{min:#x}, {max:#x}]"
                )
        if fwd:
            self.index = min
            self.last = min + size - 1
        else:
            self.last = max
            self.index = max - size + 1

    def _busy(self, min: int, max: int, size: int) -> MapleError:
        """A failed gap search: ``mas_empty_area`` has set ``[index, last]`` to
        the window before walking, so that is what the caller sees."""
        self.index = min
        self.last = max
        self.status = _ERROR
        self.error = errno.EBUSY
        return MapleError(errno.EBUSY, f"no free range of size {size:#x} in [{min:#x}, {max:#x}]")

    def empty_area(self, min: int, max: int, size: int) -> None:
        """``mas_empty_area()``: lowest ``[index, last]`` of ``size`` free
        indices inside ``[min, max]``; EINVAL on bad bounds, EBUSY if none.

        Sets ``index``/``last``.  Each call searches from the root (the
        kernel continues from a non-start state; use ``reset()`` semantics).
        A successful search in a tree with nodes leaves the state active on
        the leaf holding the fit, so a store through it does not walk again.
        """
        if not (
            type(min) is int
            and type(max) is int
            and type(size) is int
            and 0 <= min <= max <= ULONG_MAX
            and 0 < size <= max - min + 1
            and size <= ULONG_MAX
        ):
            self._area_args(min, max, size)
        tree = self.tree
        if tree.root is None:
            self._sparse_area(min, max, size, True)
        else:
            if tree.height > 1 and not tree.is_alloc:
                raise self._busy(min, max, size)
            where: list[Any] = []
            start = search_forward(tree, min, max, size, where)
            if start < 0:
                raise self._busy(min, max, size)
            self.index = start
            self.last = start + size - 1
            # Left active on the leaf holding the fit, as the kernel's search
            # leaves it: a store through this state writes without a new walk.
            self.node, self.offset, self.min = where
            self.seq = tree.seq
            self.status = _ACTIVE
            return
        self.status = _START
        self.node = None

    def empty_area_rev(self, min: int, max: int, size: int) -> None:
        """``mas_empty_area_rev()``: the highest fit; EINVAL / EBUSY as above."""
        if not (
            type(min) is int
            and type(max) is int
            and type(size) is int
            and 0 <= min <= max <= ULONG_MAX
            and 0 < size <= max - min + 1
            and size <= ULONG_MAX
        ):
            self._area_args(min, max, size)
        tree = self.tree
        if tree.root is None:
            self._sparse_area(min, max, size, False)
        else:
            if tree.height > 1 and not tree.is_alloc:
                raise self._busy(min, max, size)
            last = search_reverse(tree, min, max, size)
            if last < 0:
                raise self._busy(min, max, size)
            self.last = last
            self.index = last - size + 1
        self.status = _START
        self.node = None
