"""Differential testing of the maple tree against an interval-map oracle.

A Hypothesis state machine mixes normal-API writes (store_range,
insert_range, erase, alloc_range, alloc_rrange), gap searches and cursor
moves (walk, find, find_rev, next, prev) over indices near 0 and near
ULONG_MAX, and after every step compares the whole content with the oracle
and runs ``check()`` (the mt_validate rules).
"""

from __future__ import annotations

import errno

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from maple_oracle import ULONG_MAX, IntervalMap

from vmapsim_mapletree import ZERO_ENTRY, MapleError, MapleTree
from vmapsim_mapletree.state import MaStatus

SPAN = 3000
LOW = st.one_of(st.integers(0, 40), st.integers(0, SPAN))
HIGH = st.one_of(st.integers(ULONG_MAX - 40, ULONG_MAX), st.integers(ULONG_MAX - SPAN, ULONG_MAX))
INDEX = st.one_of(LOW, LOW, HIGH)
LENGTH = st.one_of(st.integers(0, 3), st.integers(0, 40), st.integers(0, 1000))
ENTRY = st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.none(), st.just(ZERO_ENTRY))
VALUE = st.sampled_from(["v1", "v2", "v3", "v4", "v5"])
SIZE = st.one_of(st.integers(1, 4), st.integers(1, 64), st.integers(1, 1 << 63))


def _range(first: int, length: int) -> tuple[int, int]:
    return first, min(ULONG_MAX, first + length)


class MapleMachine(RuleBasedStateMachine):
    """One tree, one oracle, one cursor."""

    alloc: bool = False

    def __init__(self) -> None:
        super().__init__()
        self.tree = MapleTree(self.alloc)
        self.oracle = IntervalMap()
        self.mas = self.tree.state()

    def _written(self) -> None:
        # A cursor is not kept across writes made through another handle.
        self.mas.set(self.mas.index)

    @initialize(
        base=st.sampled_from([0, ULONG_MAX - SPAN]),
        count=st.one_of(st.integers(0, 40), st.integers(100, 350)),
        stride=st.integers(1, 6),
        width=st.integers(0, 4),
    )
    def fill(self, base: int, count: int, stride: int, width: int) -> None:
        """Start from a populated tree so splits and rebalances happen early."""
        for i in range(count):
            first = base + i * (stride + width)
            if first > ULONG_MAX:
                break
            last = min(ULONG_MAX, first + width)
            self.tree.store_range(first, last, f"f{i % 7}")
            self.oracle.store(first, last, f"f{i % 7}")
        self.tree.check()

    @rule(first=INDEX, length=LENGTH, entry=ENTRY)
    def store_range(self, first: int, length: int, entry: object) -> None:
        first, last = _range(first, length)
        self.tree.store_range(first, last, entry)
        self.oracle.store(first, last, entry)
        self._written()

    @rule(first=INDEX, length=LENGTH, entry=ENTRY)
    def insert_range(self, first: int, length: int, entry: object) -> None:
        first, last = _range(first, length)
        free = self.oracle.is_free(first, last)
        try:
            self.tree.insert_range(first, last, entry)
        except MapleError as err:
            assert err.errno == errno.EEXIST
            assert not free
        else:
            assert free
            self.oracle.store(first, last, entry)
        self._written()

    @rule(index=INDEX)
    def erase(self, index: int) -> None:
        first, last, old = self.oracle.range_at(index)
        assert self.tree.erase(index) == old
        self.oracle.store(first, last, None)
        self._written()

    @rule(index=INDEX, count=st.integers(1, 40))
    def erase_run(self, index: int, count: int) -> None:
        """Erase entries one by one, driving leaves below mt_min_slots."""
        for first, last, old in [it for it in self.oracle.items if it[0] >= index][:count]:
            assert self.tree.erase(first) == old
            self.oracle.store(first, last, None)
        self._written()

    @rule(index=INDEX)
    def load(self, index: int) -> None:
        want = self.oracle.load(index)
        assert self.tree.load(index) == (None if want is ZERO_ENTRY else want)

    def _gap_expect(self, lo: int, hi: int, size: int, rev: bool) -> int | str | None:
        if size - 1 > hi - lo:
            return "einval"
        if self.tree.height > 1 and not self.alloc:
            return None  # no gap array: the walk cannot descend (EBUSY)
        if rev:
            return self.oracle.empty_area_rev(lo, hi, size)
        return self.oracle.empty_area(lo, hi, size)

    @rule(lo=INDEX, length=LENGTH, size=SIZE, rev=st.booleans())
    def empty_area(self, lo: int, length: int, size: int, rev: bool) -> None:
        lo, hi = _range(lo, length)
        want = self._gap_expect(lo, hi, size, rev)
        mas = self.tree.state()
        try:
            if rev:
                mas.empty_area_rev(lo, hi, size)
            else:
                mas.empty_area(lo, hi, size)
        except MapleError as err:
            assert err.errno == (errno.EINVAL if want == "einval" else errno.EBUSY), want
            assert want is None or want == "einval"
        else:
            assert (mas.index, mas.last) == (want, want + size - 1)

    @precondition(lambda self: self.alloc)
    @rule(lo=INDEX, length=LENGTH, size=SIZE, rev=st.booleans(), value=VALUE)
    def allocate(self, lo: int, length: int, size: int, rev: bool, value: str) -> None:
        lo, hi = _range(lo, length)
        want = self._gap_expect(lo, hi, size, rev)
        try:
            if rev:
                start = self.tree.alloc_rrange(value, size, lo, hi)
            else:
                start = self.tree.alloc_range(value, size, lo, hi)
        except MapleError as err:
            assert err.errno == (errno.EINVAL if want == "einval" else errno.EBUSY), want
            assert want is None or want == "einval"
        else:
            assert start == want
            self.oracle.store(start, start + size - 1, value)
        self._written()

    # ------------------------------------------------------------------
    # cursor

    @rule(index=INDEX)
    def cursor_set(self, index: int) -> None:
        self.mas.set(index)

    @rule()
    def cursor_walk(self) -> None:
        want = self.oracle.range_at(self.mas.index)
        got = self.mas.walk()
        assert (self.mas.index, self.mas.last, got) == want

    def _current(self) -> tuple[int, int] | None:
        """The cursor's current range, or None if the state is at a limit."""
        mas = self.mas
        if mas.status is MaStatus.ma_active:
            return mas.index, mas.last
        if mas.status in (MaStatus.ma_start, MaStatus.ma_pause, MaStatus.ma_none):
            first, last, _ = self.oracle.range_at(mas.index)
            return first, last
        return None

    @rule(limit=INDEX)
    def cursor_next(self, limit: int) -> None:
        mas = self.mas
        if mas.status not in (MaStatus.ma_start, MaStatus.ma_active):
            mas.set(mas.index)
        early = mas.last >= limit
        cur = self._current()
        got = mas.next(limit)
        want = None if early else self.oracle.next_entry(cur[1], limit)
        if want is None:
            assert got is None
            if early or self.tree.root is not None:
                assert mas.status is MaStatus.ma_overflow
            else:  # no root node: the kernel reports ma_none
                assert mas.status is MaStatus.ma_none
        else:
            assert (mas.index, mas.last, got) == want
            assert mas.status is MaStatus.ma_active

    @rule(limit=INDEX)
    def cursor_prev(self, limit: int) -> None:
        mas = self.mas
        if mas.status not in (MaStatus.ma_start, MaStatus.ma_active):
            mas.set(mas.index)
        early = mas.index <= limit
        rootless = not early and self.tree.root is None
        cur = self._current()
        got = mas.prev(limit)
        if rootless:
            # mas_prev_setup: the walk lands past the root entry and returns
            # it over [0, 0] without comparing it with min; empty: ma_none.
            root = self.oracle.load(0)
            want = None if root is None else (0, 0, root)
        else:
            want = None if early else self.oracle.prev_entry(cur[0], limit)
        if want is None:
            assert got is None
            assert mas.status is (MaStatus.ma_none if rootless else MaStatus.ma_underflow)
        else:
            assert (mas.index, mas.last, got) == want

    @rule(limit=INDEX)
    def cursor_find(self, limit: int) -> None:
        mas = self.mas
        if mas.status not in (MaStatus.ma_start, MaStatus.ma_active):
            mas.set(mas.index)
        if mas.status is MaStatus.ma_start:
            first, last, entry = self.oracle.range_at(mas.index)
            if mas.index > limit:
                want = None
            elif entry is not None:
                want = (first, last, entry)
            else:
                want = self.oracle.next_entry(last, limit)
        else:
            want = None if mas.last >= limit else self.oracle.next_entry(mas.last, limit)
        got = mas.find(limit)
        if want is None:
            assert got is None
        else:
            assert (mas.index, mas.last, got) == want

    @rule(limit=INDEX)
    def cursor_find_rev(self, limit: int) -> None:
        mas = self.mas
        if mas.status not in (MaStatus.ma_start, MaStatus.ma_active):
            mas.set(mas.index)
        if mas.status is MaStatus.ma_start:
            first, last, entry = self.oracle.range_at(mas.index)
            if mas.index < limit:
                want = None
            elif entry is not None:
                want = (first, last, entry)
            elif self.tree.root is None:
                # mas_find_rev_setup: a walk past the root entry (or of an
                # empty tree) returns the root entry over [0, 0], whatever min.
                root = self.oracle.load(0)
                want = None if root is None else (0, 0, root)
            else:
                want = self.oracle.prev_entry(first, limit)
        else:
            want = None if mas.index <= limit else self.oracle.prev_entry(mas.index, limit)
        got = mas.find_rev(limit)
        if want is None:
            assert got is None
        else:
            assert (mas.index, mas.last, got) == want

    @invariant()
    def same_content_and_valid(self) -> None:
        self.tree.check()
        assert list(self.tree.ranges()) == self.oracle.items
        assert list(self.tree) == [it for it in self.oracle.items if it[2] is not ZERO_ENTRY]


class AllocMapleMachine(MapleMachine):
    """The same against an allocation tree (MT_FLAGS_ALLOC_RANGE)."""

    alloc: bool = True


DEFAULT = settings(max_examples=200, stateful_step_count=50, deadline=None)
SOAK = settings(max_examples=2000, stateful_step_count=200, deadline=None)

TestMapleMachine = MapleMachine.TestCase
TestMapleMachine.settings = DEFAULT
TestAllocMapleMachine = AllocMapleMachine.TestCase
TestAllocMapleMachine.settings = DEFAULT


@pytest.mark.soak
class TestMapleSoak(MapleMachine.TestCase):  # type: ignore[misc, valid-type]
    """Longer run: ``pytest -m soak``."""

    settings = SOAK


@pytest.mark.soak
class TestAllocMapleSoak(AllocMapleMachine.TestCase):  # type: ignore[misc, valid-type]
    """Longer run on an allocation tree: ``pytest -m soak``."""

    settings = SOAK
