"""The kernel's own maple-tree expectations, run against ``vmapsim_mapletree``.

The vectors are ported as data in :mod:`maple_vectors` from the kernel's
``lib/test_maple_tree.c`` (each scenario names its kernel function); this
module is the driver.  Beside every explicit kernel expectation the driver
keeps a small reference model of the key space (ordered non-NULL ranges,
§2.1 of the reference notes) and checks the tree against it: every errno,
every erase result, every gap search (§2.4) and, at each ``check`` step, the
whole content as seen by ``mas_find``.  Where the kernel data and the model
disagree the failure says ``PORT``: that is a bug in the port, not in the tree.

Tree-shape expectations (``mt_height``) are collected in their own test, since
they depend on the split/rebalance rules of §3 rather than on the API semantics;
so are the ``ma_state`` statuses the kernel asserts (``ma_none``, ``ma_root``,
``ma_overflow``, ...), which are checked only if ``MapleState`` exposes ``status``.
"""

from __future__ import annotations

import bisect
import errno
import operator
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from maple_vectors import (
    ANY,
    ITERATION_CASES,
    ULONG_MAX,
    ZERO,
    Scenario,
    scenarios,
)

try:
    from vmapsim_mapletree import ZERO_ENTRY, MapleError, MapleState, MapleTree, MaStatus
except ImportError as exc:  # the implementation has not landed yet
    pytest.skip(f"vmapsim_mapletree is not importable yet: {exc}", allow_module_level=True)


# ---------------------------------------------------------------------------
# entries
class Token:
    """A distinct, hashable stand-in for one kernel entry (``xa_mk_value(n)`` or a pointer)."""

    __slots__ = ("key",)

    def __init__(self, key: int | str) -> None:
        self.key = key

    def __repr__(self) -> str:
        if isinstance(self.key, int):
            return f"xa_mk_value({self.key})"
        return f"&{self.key}"


_TOKENS: dict[int | str, Token] = {}


def entry(v: Any) -> Any:
    """Map a data-table value to what is stored in the tree."""
    if v is None or v is ANY:
        return v
    if v == ZERO:
        return ZERO_ENTRY
    tok = _TOKENS.get(v)
    if tok is None:
        tok = _TOKENS[v] = Token(v)
    return tok


def loaded(e: Any) -> Any:
    """What ``mtree_load`` returns for a stored entry (the zero entry reads as NULL)."""
    return None if e is ZERO_ENTRY else e


# ---------------------------------------------------------------------------
# reference model (oracle)
class RangeModel:
    """The key space as ordered, non-overlapping non-NULL ranges ``(first, last, entry)``.

    NULL is the absence of a range, so NULL runs are coalesced by construction;
    equal neighbouring entries stay separate ranges (reference §2.1).
    """

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int, Any]] = []
        self.firsts: list[int] = []

    def _first_ending_at_or_after(self, index: int) -> int:
        i = bisect.bisect_right(self.firsts, index) - 1
        if i < 0:
            return 0
        return i if self.ranges[i][1] >= index else i + 1

    def lookup(self, index: int) -> tuple[int, int, Any] | None:
        i = self._first_ending_at_or_after(index)
        if i < len(self.ranges) and self.ranges[i][0] <= index:
            return self.ranges[i]
        return None

    def load(self, index: int) -> Any:
        r = self.lookup(index)
        return None if r is None else r[2]

    def occupied(self, first: int, last: int) -> bool:
        i = self._first_ending_at_or_after(first)
        return i < len(self.ranges) and self.ranges[i][0] <= last

    def store(self, first: int, last: int, e: Any) -> None:
        i = self._first_ending_at_or_after(first)
        j = i
        left: list[tuple[int, int, Any]] = []
        right: list[tuple[int, int, Any]] = []
        while j < len(self.ranges) and self.ranges[j][0] <= last:
            f, la, old = self.ranges[j]
            if f < first:
                left.append((f, first - 1, old))
            if la > last:
                right.append((last + 1, la, old))
            j += 1
        new = left + ([(first, last, e)] if e is not None else []) + right
        self.ranges[i:j] = new
        self.firsts[i:j] = [r[0] for r in new]

    def erase(self, index: int) -> Any:
        r = self.lookup(index)
        if r is None:
            return None
        self.store(r[0], r[1], None)
        return r[2]

    def gaps_up(self, lo: int) -> Iterator[tuple[int, int]]:
        cur = lo
        for f, la, _ in self.ranges[self._first_ending_at_or_after(lo) :]:
            if f > cur:
                yield cur, f - 1
            if la == ULONG_MAX:
                return
            cur = max(cur, la + 1)
        yield cur, ULONG_MAX

    def gaps_down(self, hi: int) -> Iterator[tuple[int, int]]:
        cur = hi
        i = self._first_ending_at_or_after(hi)
        if i < len(self.ranges) and self.ranges[i][0] <= hi:
            if self.ranges[i][0] == 0:
                return
            cur = self.ranges[i][0] - 1
        for f, la, _ in reversed(self.ranges[:i]):
            if la < cur:
                yield la + 1, cur
            if f == 0:
                return
            cur = f - 1
        yield 0, cur

    def empty_area(self, lo: int, hi: int, size: int, rev: bool) -> tuple[int, int] | int:
        """§2.4: ``(index, last)`` or an errno."""
        if lo > hi or size == 0 or hi - lo < size - 1:
            return errno.EINVAL
        if not rev:
            for gf, gl in self.gaps_up(lo):
                if gf > hi:
                    break
                a, b = max(gf, lo), min(gl, hi)
                if b - a + 1 >= size:
                    return a, a + size - 1
        else:
            for gf, gl in self.gaps_down(hi):
                if gl < lo:
                    break
                a, b = max(gf, lo), min(gl, hi)
                if b - a + 1 >= size:
                    return b - size + 1, b
        return errno.EBUSY


# ---------------------------------------------------------------------------
# driver
_CMP: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    "<": operator.lt,
    "==": operator.eq,
}


def call_errno(fn: Callable[[], Any], err: int) -> Any:
    """Run ``fn``; it must return normally if ``err`` is 0, else raise with that errno."""
    if err == 0:
        return fn()
    with pytest.raises(MapleError) as info:
        fn()
    assert info.value.errno == err, (
        f"errno {errno.errorcode.get(info.value.errno, info.value.errno)}, "
        f"expected {errno.errorcode[err]}"
    )
    return None


def mas_entries(tree: MapleTree, limit: int) -> list[tuple[int, int, Any]]:
    """The non-NULL ranges as ``mas_for_each`` sees them (zero entries included)."""
    mas = MapleState(tree, 0)
    out: list[tuple[int, int, Any]] = []
    while (e := mas.find(ULONG_MAX)) is not None:
        out.append((mas.index, mas.last, e))
        assert len(out) <= limit, f"mas_find() does not terminate: {out[-3:]}"
    return out


def check_contents(tree: MapleTree, model: RangeModel) -> None:
    got = mas_entries(tree, len(model.ranges) + 4)
    if got != model.ranges:
        bad = next(
            (k for k, (a, b) in enumerate(zip(got, model.ranges, strict=False)) if a != b),
            min(len(got), len(model.ranges)),
        )
        raise AssertionError(
            f"content differs from the model at range #{bad}: "
            f"tree {got[bad : bad + 3]} model {model.ranges[bad : bad + 3]} "
            f"({len(got)} vs {len(model.ranges)} ranges)"
        )
    # tree iteration: compare the ordinary (non-NULL, non-zero) entries only
    plain = [r for r in model.ranges if r[2] is not ZERO_ENTRY]
    itered = [tuple(r) for r in tree if r[2] is not None and r[2] is not ZERO_ENTRY]
    assert itered == plain, "iterating the tree disagrees with mas_find()"


class Runner:
    """Interpret one scenario's steps against a fresh tree and a model."""

    def __init__(self, scn: Scenario, heights: bool = False, statuses: bool = False) -> None:
        self.scn = scn
        self.heights = heights
        self.statuses = statuses
        self.height_checks = 0
        self.status_checks = 0
        self.new(scn.alloc)

    def new(self, alloc: bool) -> None:
        self.alloc = alloc
        self.tree = MapleTree(alloc_range=alloc)
        self.model = RangeModel()
        self.mas = MapleState(self.tree, 0)

    def run(self) -> None:
        for k, step in enumerate(self.scn.steps):
            try:
                getattr(self, "op_" + step[0])(*step[1:])
            except (AssertionError, pytest.fail.Exception) as e:
                raise AssertionError(
                    f"[{self.scn.kernel_function}] {self.scn.name} step {k} {step!r}: {e}"
                ) from e

    # -- helpers ------------------------------------------------------------
    def expect_load(self, index: int, v: Any) -> None:
        got = self.tree.load(index)
        want = self.model.load(index)
        if v is not ANY:
            assert loaded(want) == loaded(entry(v)), f"PORT: model loads {want!r} at {index}"
        assert got == loaded(want), f"load({index}) = {got!r}, expected {loaded(want)!r}"

    def expect_loads(self, first: int, last: int, v: Any, full: int = 1024) -> None:
        """Load every index of a range of up to ``full`` indices, else a sample."""
        if last - first < full:
            indices: Any = range(first, last + 1)
        else:
            indices = sorted({first, first + 1, (first + last) // 2, last - 1, last})
        for i in indices:
            self.expect_load(i, v)

    def expect_mas(self, got: Any, v: Any, index: int | None, last: int | None) -> None:
        if v is not ANY:
            assert got == entry(v), f"returned {got!r}, expected {entry(v)!r}"
        if index is not None:
            assert self.mas.index == index, f"mas.index = {self.mas.index}, expected {index}"
        if last is not None:
            assert self.mas.last == last, f"mas.last = {self.mas.last}, expected {last}"

    # -- tree-level ops -----------------------------------------------------
    def op_new(self, alloc: bool) -> None:
        self.new(alloc)

    def _insert_seq(self, indices: range, step: int) -> None:
        """Insert ``i -> i``; after each, ``i`` loads and the next index to come is NULL."""
        for i in indices:
            self.tree.insert_range(i, i, entry(i))
            self.model.store(i, i, entry(i))
            assert self.tree.load(i) == entry(i), f"load({i}) after insert"
            assert self.tree.load(i + step) is None, f"load({i + step}) after insert of {i}"
        for i in indices:
            assert self.tree.load(i) == entry(i), f"load({i}) after the sequence"

    def op_seq(self, n: int) -> None:
        """check_seq(): ``check_load(i + 1, NULL)`` after each insert."""
        self._insert_seq(range(n + 1), 1)

    def op_rev_seq(self, n: int) -> None:
        """check_rev_seq(): ``check_load(i - 1, NULL)`` after each insert."""
        self._insert_seq(range(n, 0, -1), -1)
        assert self.tree.load(0) is None
        assert self.tree.load(n + 1) is None

    def op_store(self, first: int, last: int, v: Any) -> None:
        self.op_store_raw(first, last, v, 0)
        self.expect_loads(first, last, v)

    def op_store_raw(self, first: int, last: int, v: Any, err: Any) -> None:
        want = errno.EINVAL if first > last else 0
        if err is not ANY:
            assert err == want, f"PORT: model expects errno {want}"
        call_errno(lambda: self.tree.store_range(first, last, entry(v)), want)
        if not want:
            self.model.store(first, last, entry(v))

    def op_insert(self, first: int, last: int, v: Any, err: Any) -> None:
        want = 0
        if first > last:
            want = errno.EINVAL
        elif self.model.occupied(first, last):
            want = errno.EEXIST
        if err is not ANY:
            assert err == want, f"PORT: model expects errno {want}"
        call_errno(lambda: self.tree.insert_range(first, last, entry(v)), want)
        if not want:
            self.model.store(first, last, entry(v))
            self.expect_loads(first, last, v)

    def op_erase(self, index: int, old: Any) -> None:
        want = self.model.erase(index)
        if old is not ANY:
            assert want == entry(old), f"PORT: model erases {want!r}"
        got = self.tree.erase(index)
        assert got == want, f"erase({index}) returned {got!r}, expected {want!r}"
        assert self.tree.load(index) is None, f"load({index}) after erase"

    def op_load(self, index: int, v: Any) -> None:
        self.expect_load(index, v)

    def op_loads(self, first: int, last: int, v: Any) -> None:
        self.expect_loads(first, last, v)

    def op_check(self) -> None:
        if self.heights:  # the shape run reports heights only; validity is checked elsewhere
            return
        self.tree.check()
        check_contents(self.tree, self.model)

    def op_validate(self) -> None:
        """``mt_validate`` alone (inside loops, where a full content check would be slow)."""
        if not self.heights:
            self.tree.check()

    def op_height(self, cmp: str, n: int) -> None:
        if self.heights:
            self.height_checks += 1
            h = self.tree.height
            assert _CMP[cmp](h, n), f"height {h}, expected {cmp} {n}"

    def op_empty(self) -> None:
        assert not self.model.ranges, "PORT: model not empty"
        mas = MapleState(self.tree, 0)
        assert mas.walk() is None
        assert (mas.index, mas.last) == (0, ULONG_MAX), "walk of an empty tree"
        assert mas_entries(self.tree, 4) == []

    # -- ma_state ops -------------------------------------------------------
    def op_status(self, name: str) -> None:
        if not self.statuses:
            return
        status = getattr(self.mas, "status", None)
        if status is None:  # not part of the agreed API
            pytest.skip("MapleState has no status attribute")
        self.status_checks += 1
        got = getattr(status, "name", status)
        assert got == name, f"mas.status = {got}, expected {name}"

    def op_set(self, index: int) -> None:
        self.mas.set(index)

    def op_set_index(self, index: int, last: int | None) -> None:
        """``mas.index = ...; mas.last = ...`` written directly (status kept)."""
        self.mas.index = index
        if last is not None:
            self.mas.last = last

    def op_force_status(self, name: str, offset: int | None) -> None:
        """``mas.status = <name>`` (and ``mas.offset``) written directly, as the kernel test does."""
        self.mas.status = MaStatus[name]
        if offset is not None:
            self.mas.offset = offset

    def op_pause(self) -> None:
        self.mas.pause()

    def op_set_range(self, first: int, last: int) -> None:
        self.mas.set_range(first, last)

    def op_reset(self) -> None:
        self.mas.reset()

    def op_walk(self, v: Any, index: int | None, last: int | None) -> None:
        self.expect_mas(self.mas.walk(), v, index, last)

    def op_next(self, limit: int, v: Any, index: int | None, last: int | None) -> None:
        self.expect_mas(self.mas.next(limit), v, index, last)

    def op_prev(self, limit: int, v: Any, index: int | None, last: int | None) -> None:
        self.expect_mas(self.mas.prev(limit), v, index, last)

    def op_find(self, limit: int, v: Any, index: int | None, last: int | None) -> None:
        self.expect_mas(self.mas.find(limit), v, index, last)

    def op_find_rev(self, limit: int, v: Any, index: int | None, last: int | None) -> None:
        self.expect_mas(self.mas.find_rev(limit), v, index, last)

    def op_mas_store(self, v: Any) -> None:
        first, last = self.mas.index, self.mas.last
        self.mas.store(entry(v))
        self.model.store(first, last, entry(v))
        self.expect_loads(first, last, v, full=16)

    def op_mas_erase(self, old: Any) -> None:
        want = self.model.erase(self.mas.index)
        assert want == entry(old), f"PORT: model erases {want!r}"
        got = self.mas.erase()
        assert got == want, f"mas_erase() returned {got!r}, expected {want!r}"

    def op_for_each(
        self, limit: int, expected: list[tuple[int, int, Any]], pause: bool = False
    ) -> None:
        """``mas_for_each``; with ``pause``, ``mas_pause()`` after every entry."""
        want = [(f, la, entry(v)) for f, la, v in expected]
        got: list[tuple[int, int, Any]] = []
        while (e := self.mas.find(limit)) is not None:
            got.append((self.mas.index, self.mas.last, e))
            assert len(got) <= len(want) + 2, f"mas_for_each runs past {want[-1:]}: {got[-3:]}"
            if pause:
                self.mas.pause()
        assert got == want

    def op_mt_find(self, index: int, limit: int, v: Any) -> None:
        """``mt_find(mt, &index, max)`` (skips XA_ZERO_ENTRY)."""
        got = self.tree.find(index, limit)
        want = None if v is None else entry(v)
        assert (None if got is None else got[2]) == want, f"mt_find({index}, {limit}) = {got!r}"

    def op_mt_for_each(self, index: int, limit: int, expected: list[tuple[int, int, Any]]) -> None:
        """``mt_for_each(mt, entry, index, max)``: ``mt_find`` / ``mt_find_after``."""
        want = [(f, la, entry(v)) for f, la, v in expected]
        got: list[tuple[int, int, Any]] = []
        while (r := self.tree.find(index, limit)) is not None:
            got.append(tuple(r))  # type: ignore[arg-type]
            assert len(got) <= len(want) + 2, f"mt_for_each runs past {want[-1:]}: {got[-3:]}"
            if r[1] == ULONG_MAX:
                break
            index = r[1] + 1
        assert got == want

    def _expected_gap(
        self, rev: bool, lo: int, hi: int, size: int, err: Any, index: int | None
    ) -> tuple[int, tuple[int, int] | None]:
        """The errno to expect and, when the model ran, the model's placement."""
        oracle = self.model.empty_area(lo, hi, size, rev) if self.scn.oracle_gaps else None
        o_err = None if oracle is None else (oracle if isinstance(oracle, int) else 0)
        if err is ANY:
            assert o_err is not None, "PORT: unchecked search needs the model"
            err = o_err
        elif o_err is not None:
            assert o_err == err, f"PORT: model expects errno {o_err}"
            if not err and index is not None:
                assert isinstance(oracle, tuple) and oracle[0] == index, (
                    f"PORT: model finds {oracle}"
                )
        return err, (oracle if isinstance(oracle, tuple) else None)

    def _empty_area(
        self, rev: bool, lo: int, hi: int, size: int, err: Any, index: Any, last: Any
    ) -> None:
        err, oracle = self._expected_gap(rev, lo, hi, size, err, index)
        self.mas.reset()
        fn = self.mas.empty_area_rev if rev else self.mas.empty_area
        call_errno(lambda: fn(lo, hi, size), err)
        if err:
            return
        got = (self.mas.index, self.mas.last)
        assert got[1] - got[0] + 1 == size, f"[index, last] = {got} is not {size} long"
        if index is not None:
            assert got[0] == index, f"mas.index = {got[0]}, expected {index}"
        if last is not None:
            assert got[1] == last, f"mas.last = {got[1]}, expected {last}"
        if oracle is not None:
            assert got == oracle, (
                f"[index, last] = {got}, the {'highest' if rev else 'lowest'} fit is {oracle}"
            )
        assert lo <= got[0] and got[1] <= hi, f"{got} outside [{lo}, {hi}]"

    def op_empty_area(self, lo: int, hi: int, size: int, err: Any, index: Any, last: Any) -> None:
        self._empty_area(False, lo, hi, size, err, index, last)

    def op_empty_area_rev(
        self, lo: int, hi: int, size: int, err: Any, index: Any, last: Any
    ) -> None:
        self._empty_area(True, lo, hi, size, err, index, last)

    def _alloc(self, rev: bool, lo: int, hi: int, size: int, err: int, exp: int, v: Any) -> None:
        if self.alloc:
            err, _ = self._expected_gap(rev, lo, hi, size, err, None if err else exp)
        else:
            assert err == errno.EINVAL, "PORT: mtree_alloc_*() on a normal tree is -EINVAL"
        fn = self.tree.alloc_rrange if rev else self.tree.alloc_range
        start = call_errno(lambda: fn(entry(v), size, lo, hi), err)
        if err:
            return
        assert start == exp, f"allocated at {start}, expected {exp}"
        self.model.store(start, start + size - 1, entry(v))
        self.expect_loads(start, start + size - 1, v, full=16)

    def op_alloc(self, lo: int, hi: int, size: int, err: int, exp: int, v: Any) -> None:
        self._alloc(False, lo, hi, size, err, exp, v)

    def op_alloc_rev(self, lo: int, hi: int, size: int, err: int, exp: int, v: Any) -> None:
        self._alloc(True, lo, hi, size, err, exp, v)


# ---------------------------------------------------------------------------
SCENARIOS = scenarios()


def _with(op: str) -> list[Scenario]:
    return [s for s in SCENARIOS if any(step[0] == op for step in s.steps)]


@pytest.mark.parametrize("scn", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_kernel_vectors(scn: Scenario) -> None:
    """Every ported kernel vector (API semantics; heights and statuses excluded)."""
    runner = Runner(scn)
    runner.run()
    runner.op_check()


@pytest.mark.parametrize("scn", _with("height"), ids=[s.name for s in _with("height")])
def test_kernel_height_vectors(scn: Scenario) -> None:
    """The kernel's ``mt_height()`` expectations (shape: §3 split and rebalance rules)."""
    runner = Runner(scn, heights=True)
    runner.run()
    assert runner.height_checks


@pytest.mark.parametrize("scn", _with("status"), ids=[s.name for s in _with("status")])
def test_kernel_status_vectors(scn: Scenario) -> None:
    """The ``ma_state`` statuses the kernel asserts (``mas.status``; outside the agreed API)."""
    runner = Runner(scn, statuses=True)
    runner.run()
    assert runner.status_checks


def test_check_iteration() -> None:
    """check_iteration(): stores through the ``ma_state`` while iterating with it."""
    tree = MapleTree(alloc_range=True)
    for i in range(126):
        tree.store_range(i * 10, i * 10 + 9, entry(i))
    mas = MapleState(tree, 0)
    for loop_max, at, first, last, after in ITERATION_CASES:
        mas.set(0)
        i = 0
        while (val := mas.find(loop_max)) is not None:
            assert i <= at, f"mas_find({loop_max}) went past entry {at}: {mas.index}-{mas.last}"
            assert (mas.index, mas.last) == (i * 10, i * 10 + 9), (loop_max, i)
            if i == at:
                mas.set_range(first, last)
                mas.store(val)
            i += 1
        assert i == at + 1, (loop_max, i)
        got = mas.find(ULONG_MAX)
        assert got == entry(after), (loop_max, got, mas.index, mas.last)
        tree.check()


def test_check_mas_store_gfp() -> None:
    """check_mas_store_gfp(): copy a tree entry by entry with ``mas_store_gfp``."""
    tree = MapleTree(alloc_range=True)
    for i in range(136):
        tree.store_range(i * 10, i * 10 + 5, entry(i))
    new = MapleTree(alloc_range=True)
    newmas = MapleState(new, 0)
    mas = MapleState(tree, 0)
    while (val := mas.find(ULONG_MAX)) is not None:
        newmas.index, newmas.last = mas.index, mas.last
        newmas.store_gfp(val)
    new.check()
    assert mas_entries(new, 140) == mas_entries(tree, 140)


def test_zero_entry_is_exported() -> None:
    """XA_ZERO_ENTRY is a distinct non-None token (reference §2.1)."""
    assert ZERO_ENTRY is not None
    tree = MapleTree()
    tree.store_range(0, 0, ZERO_ENTRY)
    assert tree.load(0) is None
    assert MapleState(tree, 0).walk() is ZERO_ENTRY
