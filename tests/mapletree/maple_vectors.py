"""Kernel maple-tree test vectors, as data.

The numbers below (ranges, requests, expected results and errnos) are taken
from the kernel's maple-tree self test, ``lib/test_maple_tree.c`` (64-bit
variants), checked against the newest stored copy found:
linux-mm/linux-mm at caf8af6a6b73da2928c8f915fe3798027fabaecb (it has
check_range64_in_rcu() and the reworked end of check_ranges(); older copies,
e.g. torvalds/linux 0604aa87 or ColinIanKing/linux-next 76f46d62, end
check_ranges() differently and pass ``end - 1`` to ``mtree_alloc_rrange()``
or lack the inclusive-max request values).  Each table names the kernel test
function it comes from.  The driver that runs them is
``test_maple_kernel_vectors.py``; only the data is ported here.

Encoding
--------
A *scenario* is a list of steps, each a tuple whose first element is the op
name.  Entry values are written as:

* ``int n``     -- the kernel's ``xa_mk_value(n)`` (any distinct token per n)
* ``None``      -- NULL (absent / gap)
* ``"ZERO"``    -- ``XA_ZERO_ENTRY``
* other ``str`` -- a named pointer (``"ptr"``, ``"ptr2"``, ...)
* ``ANY``       -- not checked

Ops (``mt`` = tree-level, ``mas`` = the one ``ma_state`` of the scenario):

``("new", alloc)``                      fresh tree (``mtree_destroy`` + ``mt_init_flags``)
``("seq", n)``                          insert ``i -> i`` for ``i = 0..n`` (check_seq)
``("rev_seq", n)``                      insert ``i -> i`` for ``i = n..1`` (check_rev_seq)
``("store", first, last, v)``           ``mtree_store_range`` must succeed; every index loads v
``("store_raw", first, last, v, err)``  ``mtree_store_range``, expected errno (0 = success)
``("insert", first, last, v, err)``     ``mtree_insert_range``, expected errno (0 = success)
``("erase", index, old)``               ``mtree_erase`` returns ``old``
``("load", index, v)``                  ``mtree_load``
``("loads", first, last, v)``           ``mtree_load`` of every index in [first, last]
``("check",)``                          ``mt_validate`` plus a full content check against the model
``("validate",)``                       ``mt_validate`` alone (inside loops)
``("height", cmp, n)``                  ``mt_height(mt) <cmp> n`` (shape; see §3 of the reference)
``("set", index)`` / ``("set_range", first, last)`` / ``("reset",)`` / ``("pause",)``
``("set_index", index, last)``          ``mas.index = index`` (and ``mas.last``, unless None)
``("force_status", name, offset)``      ``mas.status = name`` (and ``mas.offset``, unless None)
``("walk", v, index, last)``            ``mas_walk``; ``index``/``last`` None = unchecked
``("next", max, v, index, last)``       ``mas_next``
``("prev", min, v, index, last)``       ``mas_prev``
``("find", max, v, index, last)``       ``mas_find``
``("find_rev", min, v, index, last)``   ``mas_find_rev``
``("mas_store", v)``                    ``mas_store`` / ``mas_store_gfp`` over [mas.index, mas.last]
``("mas_erase", old)``                  ``mas_erase``
``("for_each", max, [(index, last, v), ...][, pause])``  ``mas_for_each`` from the current
                                        position (``mas_pause()`` after each entry if pause)
``("mt_find", index, max, v)``          ``mt_find`` (skips XA_ZERO_ENTRY)
``("mt_for_each", index, max, [(index, last, v), ...])``  ``mt_for_each``
``("empty_area", min, max, size, err, index, last)``      after a reset; index/last None = unchecked
``("empty_area_rev", min, max, size, err, index, last)``
``("alloc", min, max, size, err, expected, v)``           ``mtree_alloc_range``
``("alloc_rev", min, max, size, err, expected, v)``       ``mtree_alloc_rrange``
``("empty",)``                          the tree holds no entry (``mtree_empty`` as seen by a walk)
``("status", name)``                    ``mas.status`` (checked only if the state exposes one)
"""

from __future__ import annotations

from errno import EBUSY, EEXIST, EINVAL
from typing import Any, Final, NamedTuple

ULONG_MAX: Final = (1 << 64) - 1
LONG_MAX: Final = (1 << 63) - 1
#: The allocation tests park XA_ZERO_ENTRY on [MTREE_ALLOC_MAX, ULONG_MAX].
MTREE_ALLOC_MAX: Final = 0x2000000000000
PAGE_SHIFT: Final = 12

ANY: Final = "<any>"
ZERO: Final = "ZERO"

Step = tuple[Any, ...]


class Scenario(NamedTuple):
    """One kernel test function (or one independent part of it)."""

    name: str
    kernel_function: str
    alloc: bool
    steps: list[Step]
    #: check every gap search against the brute-force oracle as well
    oracle_gaps: bool = True


# ---------------------------------------------------------------------------
# check_alloc_range() and check_alloc_rev_range(): a /proc/self/maps snapshot.
# Byte addresses, [start, end); the kernel stores pages: [start >> 12, (end >> 12) - 1]
# with value xa_mk_value(start >> 12), on top of XA_ZERO_ENTRY at [MTREE_ALLOC_MAX, ULONG_MAX].
PROC_MAPS: Final[tuple[tuple[int, int], ...]] = (
    (0x565234AF2000, 0x565234AF4000),
    (0x565234AF4000, 0x565234AF9000),
    (0x565234AF9000, 0x565234AFB000),
    (0x565234AFC000, 0x565234AFD000),
    (0x565234AFD000, 0x565234AFE000),
    (0x565235DEF000, 0x565235E10000),
    (0x7F36D4BFD000, 0x7F36D4EE2000),
    (0x7F36D4EE2000, 0x7F36D4F04000),
    (0x7F36D4F04000, 0x7F36D504C000),
    (0x7F36D504C000, 0x7F36D5098000),
    (0x7F36D5098000, 0x7F36D5099000),
    (0x7F36D5099000, 0x7F36D509D000),
    (0x7F36D509D000, 0x7F36D509F000),
    (0x7F36D509F000, 0x7F36D50A5000),
    (0x7F36D50B9000, 0x7F36D50DB000),
    (0x7F36D50DB000, 0x7F36D50DC000),
    (0x7F36D50DC000, 0x7F36D50FA000),
    (0x7F36D50FA000, 0x7F36D5102000),
    (0x7F36D5102000, 0x7F36D5103000),
    (0x7F36D5103000, 0x7F36D5104000),
    (0x7F36D5104000, 0x7F36D5105000),
    (0x7FFF5876B000, 0x7FFF5878D000),
    (0x7FFF5878E000, 0x7FFF58791000),
    (0x7FFF58791000, 0x7FFF58793000),
)

#: holes[]: (hole start, hole end (exclusive), hole size), bytes
PROC_MAPS_HOLES: Final[tuple[tuple[int, int, int], ...]] = (
    (0x565234AFB000, 0x565234AFC000, 0x1000),
    (0x565234AFE000, 0x565235DEF000, 0x12F1000),
    (0x565235E10000, 0x7F36D4BFD000, 0x28E49EDED000),
)


class AllocRequest(NamedTuple):
    """req_range[] row: bytes, shifted right by PAGE_SHIFT by the driver."""

    min: int
    max: int
    size: int
    expected: int
    errno: int


# check_alloc_range(): req_range[]
ALLOC_RANGE_REQUESTS: Final[tuple[AllocRequest, ...]] = (
    AllocRequest(0x565234AF9000, 0x7FFF58791000, 0x1000, 0x565234AFB000, 0),
    AllocRequest(0x0, 0x7FFF58791000, 0x1F00, 0x0, 0),
    # ascend
    AllocRequest(34148797436 << 12, 0x7FFF587AF000, 0x3000, 34148798629 << 12, 0),
    # failing
    AllocRequest(34148798623 << 12, 34148798683 << 12, 0x15000, 0, EBUSY),
    # filling an entire gap
    AllocRequest(34148798623 << 12, 0x7FFF587AF000, 0x10000, 34148798632 << 12, 0),
    # walking off the end of the root (max = size = -1)
    AllocRequest(0, ULONG_MAX, ULONG_MAX, 0, EBUSY),
    # too large a hole across the entire range
    AllocRequest(0, ULONG_MAX, 4503599618982063 << 12, 34359052178 << 12, EBUSY),
    # a single entry
    AllocRequest(34148798648 << 12, 34148798648 << 12, 4096, 34148798648 << 12, 0),
)

# check_alloc_rev_range(): req_range[]
ALLOC_REV_RANGE_REQUESTS: Final[tuple[AllocRequest, ...]] = (
    AllocRequest(0x565234AF9000, 0x7FFF58791000, 0x1000, 0x7FFF5878D << 12, 0),
    AllocRequest(0x0, 0x565234AF0 << 12, 0x3000, 0x565234AEE << 12, 0),
    AllocRequest(0x0, ULONG_MAX, 0x1000, 562949953421311 << 12, 0),
    AllocRequest(0x0, 0x7F36D5109 << 12, 0x4000, 0x7F36D5106 << 12, 0),
    # ascend
    AllocRequest(0x0, 34148798628 << 12, 19 << 12, 34148797418 << 12, 0),
    # too big
    AllocRequest(0x0, ULONG_MAX, 562915594369134 << 12, 0x0, EBUSY),
    # single space
    AllocRequest(34148798725 << 12, 34148798725 << 12, 1 << 12, 34148798725 << 12, 0),
)

#: check_alloc_rev_range() tail (already in pages): erase these, then one more request
ALLOC_REV_RANGE_TAIL_ERASE: Final[tuple[int, ...]] = (34148798727, 34148798725)
ALLOC_REV_RANGE_TAIL_REQUEST: Final = AllocRequest(0, 34359052173, 210253414, 34148798725, 0)


def _maps_setup() -> list[Step]:
    steps: list[Step] = [("store", MTREE_ALLOC_MAX, ULONG_MAX, ZERO)]
    for start, end in PROC_MAPS:
        first = start >> PAGE_SHIFT
        steps.append(("insert", first, (end >> PAGE_SHIFT) - 1, first, 0))
        steps.append(("check",))
    return steps


def _alloc_range_steps() -> list[Step]:
    steps = _maps_setup()
    lo = 0x565234AF2000
    for start, end, size in PROC_MAPS_HOLES:
        # the kernel checks only the start of the hole found
        steps.append(
            ("empty_area", lo >> PAGE_SHIFT, end >> PAGE_SHIFT, size >> PAGE_SHIFT, 0,
             start >> PAGE_SHIFT, None)
        )  # fmt: skip
        lo = end
    for req in ALLOC_RANGE_REQUESTS:
        steps.append(
            ("alloc", req.min >> PAGE_SHIFT, req.max >> PAGE_SHIFT, req.size >> PAGE_SHIFT,
             req.errno, req.expected >> PAGE_SHIFT, req.min >> PAGE_SHIFT)
        )  # fmt: skip
        steps.append(("check",))
    return steps


def _alloc_rev_range_steps() -> list[Step]:
    steps = _maps_setup()
    lo = 0
    for _start, end, size in PROC_MAPS_HOLES:
        end_pg, size_pg = end >> PAGE_SHIFT, size >> PAGE_SHIFT
        steps.append(("empty_area_rev", lo, end_pg, size_pg, 0, end_pg - size_pg, end_pg - 1))
        lo = end_pg
    for req in ALLOC_REV_RANGE_REQUESTS:
        steps.append(
            ("alloc_rev", req.min >> PAGE_SHIFT, req.max >> PAGE_SHIFT, req.size >> PAGE_SHIFT,
             req.errno, req.expected >> PAGE_SHIFT, req.min >> PAGE_SHIFT)
        )  # fmt: skip
        steps.append(("check",))
    for index in ALLOC_REV_RANGE_TAIL_ERASE:
        steps.append(("erase", index, ANY))
    t = ALLOC_REV_RANGE_TAIL_REQUEST
    steps.append(("alloc_rev", t.min, t.max, t.size, t.errno, t.expected, "mt"))
    steps.append(("check",))
    return steps


# ---------------------------------------------------------------------------
# check_empty_area_window(): entries [i*10, i*10+9] for i = 1..20, then a hole at 160..169.
# (rev?, min, max, size, errno, index, last)
EMPTY_AREA_WINDOW: Final[tuple[tuple[bool, int, int, int, int, int | None, int | None], ...]] = (
    # lower bounds that don't fit
    (True, 5, 90, 10, EBUSY, None, None),
    (True, 6, 90, 5, EBUSY, None, None),
    # lower bound that does fit
    (True, 5, 90, 5, 0, 5, 9),
    # one gap that doesn't fit and one that does
    (True, 5, 217, 9, 0, 161, 169),
    # one gap that fits above the min
    (True, 100, 218, 3, 0, 216, 218),
    # size that fits no gap
    (True, 100, 218, 16, EBUSY, None, None),
    # fits the gap but not the lower end of the window
    (True, 167, 200, 4, EBUSY, None, None),
    # fits the gap but not the upper end of the window
    (True, 100, 162, 4, EBUSY, None, None),
    # forward
    (False, 0, 100, 9, 0, 0, 8),
    (False, 0, 100, 4, 0, 0, 3),
    (False, 0, 100, 11, EBUSY, None, None),
    (False, 5, 100, 6, EBUSY, None, None),
    (False, 0, 8, 10, EINVAL, None, None),
    # the kernel makes this call without checking its result
    (False, 100, 165, 3, ANY, None, None),
    (False, 100, 163, 6, EBUSY, None, None),
)


def _empty_area_window_steps() -> list[Step]:
    steps: list[Step] = [("store", i * 10, i * 10 + 9, i) for i in range(1, 21)]
    steps.append(("store", 160, 169, None))
    for rev, lo, hi, size, err, index, last in EMPTY_AREA_WINDOW:
        steps.append(("empty_area_rev" if rev else "empty_area", lo, hi, size, err, index, last))
    return steps


# ---------------------------------------------------------------------------
# check_empty_area_fill(): 5000 allocations each of 2^12..2^16 fill [0, 0x25D78000) exactly.
EMPTY_AREA_FILL_MAX: Final = 0x25D78000
EMPTY_AREA_FILL_SHIFTS: Final = (12, 13, 14, 15, 16)
EMPTY_AREA_FILL_LOOPS: Final = 5000
#: then: mtree_store_range(i, i + 5, i) for i in range(START, STOP + 1, 6) ...
EMPTY_AREA_FILL_OVERWRITE: Final = (629440511, 629440800, 6)
#: ... mtree_erase() of these ...
EMPTY_AREA_FILL_ERASE: Final = (631668735, 629506047)
#: ... and mas_empty_area(min, max, size) must succeed
EMPTY_AREA_FILL_SEARCH: Final = (629506048, 690000000, 0x5000)


def _empty_area_fill_steps() -> list[Step]:
    steps: list[Step] = []
    # Derived (not asserted by the kernel, which checks only success and
    # last == index + size - 1): on an empty tree the lowest fits are consecutive.
    index = 0
    for shift in EMPTY_AREA_FILL_SHIFTS:
        size = 1 << shift
        for _ in range(EMPTY_AREA_FILL_LOOPS):
            steps.append(("set", 0))
            steps.append(("empty_area", 0, EMPTY_AREA_FILL_MAX, size, 0, index, index + size - 1))
            steps.append(("mas_store", size))
            index += size
    # no space left
    steps.append(("empty_area", 0, EMPTY_AREA_FILL_MAX, 0x1000, EBUSY, None, None))
    start, stop, step = EMPTY_AREA_FILL_OVERWRITE
    for i in range(start, stop + 1, step):
        steps.append(("store_raw", i, i + 5, i, 0))
    for i in EMPTY_AREA_FILL_ERASE:
        steps.append(("erase", i, ANY))
    lo, hi, size = EMPTY_AREA_FILL_SEARCH
    # Derived: the erase of 631668735 frees the whole 64 KiB block [631603200, 631668735];
    # the kernel asserts only success.
    steps.append(("empty_area", lo, hi, size, 0, 631603200, 631603200 + size - 1))
    steps.append(("check",))
    return steps


# ---------------------------------------------------------------------------
# check_gap_combining() (64-bit seq100, seq2000, seq400)
SEQ100_64: Final = (74, 75, 76, 50, 100, 2, 44, 45, 46, 43, 20, 50, 3,
                    80, 81, 82, 76, 2, 79, 85, 4)  # fmt: skip
SEQ2000: Final = (1152, 1151, 1100, 1200, 2)
SEQ400: Final = (286, 318, 256, 260, 266, 270, 275, 280, 290, 398, 286, 310)


def _gap_combining_steps() -> list[Step]:
    s = SEQ100_64
    index = s[0]
    steps: list[Step] = [
        ("seq", 100),
        ("erase", s[2], s[2]),
        ("load", s[2], None),
        ("erase", s[1], s[1]),
        ("load", s[1], None),
        ("set", index),
        ("find", ULONG_MAX, index, None, None),
        ("next", ULONG_MAX, ANY, None, None),
        ("next", ULONG_MAX, index + 4, None, None),
        # a gap of 2 at index + 1
        ("empty_area_rev", s[3], s[4], s[5], 0, index + 1, None),
        ("erase", s[6], s[6]),
        ("load", s[6], None),
        ("erase", s[7], s[7]),
        ("load", s[7], None),
        ("erase", s[8], s[8]),
        ("set", s[9]),
        ("find", ULONG_MAX, s[9], None, None),
        ("next", ULONG_MAX, s[9] + 4, None, None),
        ("next", ULONG_MAX, ANY, None, None),
        # a gap of 3 at seq100[6]
        ("empty_area_rev", s[10], s[11], s[12], 0, s[6], None),
        ("store", s[13], s[13], None),
        ("load", s[13], None),
        ("load", s[14], s[14]),
        ("store", s[14], s[14], None),
        ("load", s[13], None),
        ("load", s[14], None),
        ("empty_area_rev", s[16], s[15], s[17], 0, s[13], None),
        ("check",),
        ("store_raw", s[18], s[14], None, 0),
        ("erase", s[15], s[15]),
        ("empty_area_rev", s[16], s[19], s[20], 0, s[18], None),
        ("check",),
        # seq2000: multi-level gaps
        ("new", True),
        ("seq", 2000),
        ("erase", SEQ2000[0], SEQ2000[0]),
        ("erase", SEQ2000[1], SEQ2000[1]),
        ("empty_area_rev", SEQ2000[2], SEQ2000[3], SEQ2000[4], 0, SEQ2000[1], None),
        ("check",),
        # seq400: rebalancing over two levels
        ("new", True),
        ("seq", 400),
        ("store_raw", SEQ400[0], SEQ400[1], None, 0),
        ("check",),
        ("new", True),
        ("seq", 400),
    ]
    for k in (2, 3, 4, 5, 0, 6, 7, 8):
        steps.append(("store_raw", SEQ400[k], SEQ400[9], SEQ400[k], 0))
    steps.append(("store_raw", SEQ400[10], SEQ400[11], SEQ400[10], 0))
    steps.append(("check",))
    return steps


# ---------------------------------------------------------------------------
# check_ranges(): store-range overwrite and split, insert -EEXIST, erase, load.
CHECK_RANGES_R: Final = (10, 15, 20, 25, 17, 22, 9, 1000, 100, 200, 45, 168, 118, 128)


def _check_ranges_steps() -> list[Step]:
    r = CHECK_RANGES_R
    st: list[Step] = [
        ("insert", r[0], r[1], r[0], 0),
        ("insert", r[2], r[3], r[2], 0),
        ("insert", r[4], r[5], r[4], EEXIST),
        ("height", ">=", 1),
        ("store", r[4], r[5], r[4]),
        ("store", r[6], r[7], r[6]),
        ("store", r[8], r[9], r[8]),
        ("height", ">=", 1),
        ("new", False),
        ("height", "==", 0),  # mtree_destroy() leaves no height
        ("seq", 50),
        ("store", 5, 47, 47),
        ("height", ">=", 1),
        ("new", False),
        ("seq", 100),
        ("store", r[10], r[11], r[10]),
        ("height", ">=", 1),
        ("check",),
        ("new", False),
        ("seq", 200),
        ("store", r[10], r[11], r[10]),
        ("height", ">=", 1),
        ("check",),
        ("new", False),
        ("seq", 30),
        ("store", 6, 18, 6),
        ("height", ">=", 1),
        ("check",),
        # overwrite across multiple levels
        ("new", False),
        ("seq", 400),
        ("store", r[12], r[13], r[12]),
    ]
    st += [("erase", i, i) for i in (140, 141, 142, 143, 130, 131, 132, 133, 134, 135)]
    st += [
        ("load", r[12], r[12]),
        ("load", r[13], r[12]),
        ("load", r[13] - 1, r[12]),
        ("load", r[13] + 1, r[13] + 1),
        ("load", 135, None),
        ("load", 140, None),
        ("check",),
        ("height", ">=", 1),
        # overwrite multiple levels at the end of the tree
        ("new", False),
        ("seq", 400),
        ("store", 353, 361, 353),
        ("store", 347, 352, 347),
        ("load", 346, 346),
        ("loads", 347, 352, 347),
        ("loads", 353, 361, 353),
        ("load", 362, 362),
        ("height", ">=", 1),
        ("new", False),
        ("seq", 400),
        ("store", 352, 364, None),
        ("store", 351, 363, 352),
        ("load", 350, 350),
        ("load", 351, 352),
        ("loads", 352, 363, 352),
        ("load", 364, None),
        ("load", 365, 365),
        ("height", ">=", 1),
        ("new", False),
        ("seq", 400),
        ("store", 352, 364, None),
        ("store", 351, 364, 352),
        ("load", 350, 350),
        ("loads", 351, 364, 352),
        ("load", 365, 365),
        ("height", ">=", 1),
        ("new", False),
        ("seq", 400),
        ("store", 362, 367, 362),
        ("store", 353, 361, 353),
        ("check",),
        ("height", ">=", 1),
        ("new", False),
    ]
    st += [("store", i * 5, (i + 1) * 5, i * 5) for i in range(501)]
    st += [
        ("store", 2400, 2400, 2400),
        ("store", 2411, 2411, 2411),
        ("store", 2412, 2412, 2412),
        ("store", 2396, 2400, 4052020),
        ("store", 2402, 2402, 2402),
        ("check",),
        ("new", False),
    ]
    st += [("store", i * 5, (i + 1) * 5, i * 5) for i in range(501)]
    st += [
        ("store", 2422, 2422, 2422),
        ("store", 2424, 2424, 2424),
        ("store", 2425, 2425, 2),
        ("store", 2460, 2470, None),
        ("store", 2435, 2460, 2435),
        ("store", 2461, 2470, 2461),
        ("height", ">=", 1),
        ("check",),
        # in-place modifications (allocation tree)
        ("new", True),
    ]
    val = val2 = 0
    for i in range(501):  # append to the start of the last range
        val = i * 5 + 1
        val2 = val + 4
        st.append(("store", val, val2, val))
    for _ in range(10):  # append to the last range without touching any boundary
        val = val2 + 5
        val2 = val + 4
        st.append(("store", val, val2, val))
    val = val2
    for _ in range(10):  # append to the end of the last range
        val += 5
        st.append(("store_raw", val, ULONG_MAX, val, 0))
    for i in range(10, 30, 2):  # over the range and part of the next one
        val = i * 5 + 1
        st.append(("store", val, val + 5, val))
    for i in range(50, 70, 2):  # part of the range and over the next one
        val2 = i * 5
        st.append(("store", val2 - 5, val2, val2 - 5))
    for i in range(100, 130, 3):  # expand, partially overwriting both neighbours
        st.append(("store", i * 5 - 5, i * 5 + 1, i * 5 - 5))
    for i in range(150, 180, 3):  # the same (the kernel does these in RCU mode)
        st.append(("store", i * 5 - 5, i * 5 + 1, i * 5 - 5))
    st += [("height", ">=", 1), ("check",)]
    # rebalance gaps
    st.append(("new", True))
    st += [("store", i * 10, (i + 1) * 10, i * 10) for i in range(51)]
    st += [
        ("store", 161, 161, 161),
        ("store", 162, 162, 162),
        ("store", 163, 163, 163),
        ("store", 240, 249, None),
        ("erase", 200, ANY),
        ("erase", 210, ANY),
        ("erase", 220, ANY),
        ("erase", 230, ANY),
        ("height", ">=", 1),
        ("check",),
        ("new", True),
    ]
    st += [("store", i * 10, (i + 1) * 10, i * 10) for i in range(501)]
    st += [("store", 4600, 4959, 1), ("check",), ("height", ">=", 1), ("new", True)]
    st += [("store", i * 10, (i + 1) * 10, i * 10) for i in range(501)]
    st += [
        ("store", 4811, 4811, 4811),
        ("store", 4812, 4812, 4812),
        ("store", 4861, 4861, 4861),
        ("store", 4862, 4862, 4862),
        ("store", 4842, 4849, None),
        ("check",),
        ("height", ">=", 1),
        # a 3-child split all the way up the tree
        ("new", True),
    ]
    for i in range(1301):
        st.append(("store", i * 10, (i + 1) * 10, i * 10))
        st.append(("height", "<", 4))
    # mt_validate() after every store of these loops ("validate"), full content check after
    for first in [11450 + i for i in range(5, 215, 10)] + [11770 + i for i in range(5, 65, 10)]:
        st += [("store", first, first + 1, None), ("validate",)]
    st += [("check",), ("height", "<", 4)]
    for i in range(5, 45, 10):
        st += [("store", 11700 + i, 11700 + i + 1, None), ("validate",)]
    st += [("check",), ("height", ">=", 4)]
    # fill parents and leaves, then a triple split across multiple levels
    st.append(("new", True))
    for i in range(1201):
        st.append(("store", i * 10, (i + 1) * 10, i * 10))
        st.append(("height", "<", 4))
        st.append(("validate",))
    st.append(("check",))
    val = 7660
    for _ in range(5, 490, 5):
        val += 5
        st += [("store", val, val + 1, None), ("validate",), ("height", "<", 4)]
    st.append(("check",))
    val = 9460
    for _ in range(1, 10):
        val += 1
        st += [("store", val, val + 1, val), ("validate",)]
    val = 8000
    for _ in range(1, 14):
        val += 1
        st += [("store", val, val + 1, val), ("validate",)]
    st += [
        ("store", 8051, 8051, 8081),
        ("store", 8052, 8052, 8082),
        ("store", 8083, 8083, 8083),
        ("store", 8084, 8084, 8084),
        ("store", 8085, 8085, 8085),
        ("store", 8099, 8100, 1),
        ("check",),
        ("height", "==", 4),
    ]
    return st


# ---------------------------------------------------------------------------
# maple_tree_seed(): the set[] insert / duplicate-insert / load sequence (normal tree).
SEED_SET: Final = (5015, 5014, 5017, 25, 1000, 1001, 1002, 1003, 1005, 0, 5003, 5002)


def _seed_steps() -> list[Step]:
    s = SEED_SET
    T, P = "tree", "ptr"  # the kernel's &tree and ptr
    st: list[Step] = [
        ("load", s[0], None),
        ("insert", s[9], s[9], T, 0),
        ("load", s[9], T),
        ("load", s[0], None),
        ("insert", s[10], s[10], P, 0),
        ("load", s[9], T),
        ("load", s[11], None),
        ("load", s[10], P),
        ("new", False),
        ("insert", s[0], s[0], T, 0),
        ("insert", s[0], s[0], T, EEXIST),
        ("load", s[0], T),
        ("load", s[1], None),
        ("insert", s[1], s[1], P, 0),
        ("load", s[1], P),
        ("load", s[0], T),
        ("insert", s[6], s[6], P, 0),
        ("insert", s[7], s[7], T, 0),
        ("load", s[0], T),
        ("load", s[1], P),
        ("load", s[6], P),
        ("load", s[7], T),
        ("new", False),
        ("insert", s[5], s[5], P, 0),
        ("insert", s[7], s[7], T, 0),
        ("insert", s[6], s[6], P, 0),
        ("load", s[5], P),
        ("load", s[6], P),
        ("load", s[7], T),
        ("new", False),
    ]
    vals = {0: P, 1: T, 2: P, 3: T, 4: P, 5: T, 6: P, 7: T, 8: P, 9: T}
    # (set[] indices inserted, then set[] indices loaded), in the kernel's order
    for ins, lds in (
        ((0, 1, 2, 3), (0, 1, 2, 3)),
        ((4,), (0, 1, 2, 3, 4)),
        ((5,), (0, 1, 2, 3, 4, 5)),
        ((6,), (0, 1, 2, 3, 4, 5, 6)),
        ((7,), (0,)),
        ((8, 9), (0, 1, 2, 3, 4, 5, 6, 9)),
    ):
        st += [("insert", s[k], s[k], vals[k], 0) for k in ins]
        st += [("load", s[j], vals[j]) for j in lds]
    st += [
        ("new", False),
        ("seq", 16),
        ("new", False),
        ("seq", 1000),
        ("new", True),
        ("rev_seq", 1000),
    ]
    return st


# check_lower_bound_split() / check_upper_bound_split() / check_mid_split()
BOUND_SPLIT_HUGE: Final = 4000 * 1000 * 1000
MID_SPLIT_HUGE: Final = 8000 * 1000 * 1000


def _lb_not_empty_steps() -> list[Step]:
    st: list[Step] = []
    i = BOUND_SPLIT_HUGE
    while i > 4096:
        st.append(("insert", i, i, i, 0))
        j = BOUND_SPLIT_HUGE
        while j >= i:
            st += [("load", j - 1, None), ("load", j, j), ("load", j + 1, None)]
            j //= 2
        i //= 2
    return st


def _bound_split_steps() -> list[Step]:
    st = _lb_not_empty_steps()
    st.append(("new", True))
    i = 4096
    while i < BOUND_SPLIT_HUGE:
        st.append(("insert", i, i, i, 0))
        i *= 2
    st += [("new", True), ("insert", MID_SPLIT_HUGE, MID_SPLIT_HUGE, MID_SPLIT_HUGE, 0)]
    st.append(("insert", 0, 0, 0, 0))
    st += _lb_not_empty_steps()
    return st


# ---------------------------------------------------------------------------
# check_next_entry(), check_prev_entry()
def _next_entry_steps() -> list[Step]:
    st: list[Step] = [("seq", 30), ("set", 0), ("walk", 0, None, None)]
    st += [("next", 30, i, None, None) for i in range(1, 31)]
    st.append(("next", 30, None, None, None))
    return st


def _prev_entry_steps() -> list[Step]:
    st: list[Step] = [
        ("seq", 30),
        ("set", 16),
        ("find", ULONG_MAX, 16, None, None),
        ("prev", 0, 15, None, None),
        # limits on prev (allocation tree)
        ("new", True),
    ]
    for i in range(17):
        st += [("set_range", i * 10, i * 10 + 5), ("mas_store", i)]
    st += [
        ("set", 20),
        ("walk", 2, None, None),
        ("prev", 19, None, None, None),
        ("set", 80),
        ("walk", 8, None, None),
        ("prev", 76, None, None, None),
    ]
    return st


# ---------------------------------------------------------------------------
# check_find(): values 4^k (k = 0..20) plus 0, with XA_ZERO_ENTRY at 64 (normal tree).
CHECK_FIND_TOP: Final = 4398046511104  # 4^21, where the ULONG_MAX entry shows up
CHECK_FIND_MAX1: Final = 268435456


def _find_values() -> list[int]:
    vals = [0]
    v = 1
    for _ in range(21):
        vals.append(v)
        v <<= 2
    return vals


def _find_token(v: int) -> Any:
    return ZERO if v == 64 else v


def _check_find_steps() -> list[Step]:
    vals = _find_values()
    every = [(v, v, _find_token(v)) for v in vals]
    plain = [(v, v, v) for v in vals if v != 64]  # mt_find() skips XA_ZERO_ENTRY
    top = (ULONG_MAX, ULONG_MAX, LONG_MAX)  # mtree_insert_index(ULONG_MAX): xa_mk_value(LONG_MAX)
    st: list[Step] = [("insert", v, v, _find_token(v), 0) for v in vals]
    st.append(("set", 0))
    # mas_find() up to 268435456; XA_ZERO_ENTRY is returned as-is
    st += [("find", CHECK_FIND_MAX1, _find_token(v), v, v) for v in vals if v <= CHECK_FIND_MAX1]
    st.append(("find", CHECK_FIND_MAX1, None, None, None))
    st += [
        ("set", 0),
        ("for_each", ULONG_MAX, every),
        ("set", 0),
        ("for_each", ULONG_MAX, every, True),  # with mas_pause() after each entry
        ("mt_for_each", 0, 300, [r for r in plain if r[0] <= 300]),
        ("insert", ULONG_MAX, ULONG_MAX, LONG_MAX, 0),
        ("mt_for_each", 0, ULONG_MAX, [*plain, top]),
        ("erase", ULONG_MAX, LONG_MAX),  # mtree_erase_index()
        ("load", ULONG_MAX, None),
        ("mt_find", 17, 512, 256),
        ("mt_find", 17, 20, None),
        ("insert", ULONG_MAX, ULONG_MAX, LONG_MAX, 0),
        ("set", 0),
        ("for_each", ULONG_MAX, [*every, top], True),
        ("set", 1048576),
        ("find", 1048576, 1048576, 1048576, 1048576),
        # find the last value: mas_reset(), mas.index = ULONG_MAX, find, then prev
        ("reset",),
        ("set_index", ULONG_MAX, None),
        ("find", ULONG_MAX, LONG_MAX, ULONG_MAX, ULONG_MAX),
        ("prev", 0, vals[-1], vals[-1], vals[-1]),
        # erase the end entry: mas_reset(), index = last = ULONG_MAX, mas_erase()
        ("reset",),
        ("set_index", ULONG_MAX, ULONG_MAX),
        ("mas_erase", LONG_MAX),
        # mas_prev() from ma_start gives the same entry and range
        ("reset",),
        ("prev", 0, vals[-1], vals[-1], vals[-1]),
        # ... and from ma_none at ULONG_MAX
        ("force_status", "ma_none", None),
        ("set_index", ULONG_MAX, ULONG_MAX),
        ("prev", 0, vals[-1], None, None),
        ("set", 0),
        ("prev", 0, None, None, None),
    ]
    return st


# check_find_2(): insert 0..255 one at a time, then erase them one at a time
def _check_find_2_steps() -> list[Step]:
    st: list[Step] = [("set", 0), ("for_each", ULONG_MAX, [])]
    for i in range(256):
        st += [("insert", i, i, i, 0), ("set", 0)]
        st.append(("for_each", ULONG_MAX, [(j, j, j) for j in range(i + 1)]))
    for i in range(256):
        st += [("erase", i, i), ("load", i, None), ("set", 0)]
        st.append(("for_each", ULONG_MAX, [(j, j, j) for j in range(i + 1, 256)]))
    return st


# check_rev_find(): [i*10, i*10+5] -> i for i = 0..200
def _rev_find_steps() -> list[Step]:
    st: list[Step] = [("store_raw", i * 10, i * 10 + 5, i, 0) for i in range(201)]
    st += [
        ("set", 1000),
        ("find_rev", 1000, 100, None, None),
        ("find_rev", 1000, None, None, None),
        ("set", 999),
        ("find_rev", 997, None, None, None),
        ("set", 1000),
        ("find_rev", 900, 100, None, None),
        ("find_rev", 900, 99, None, None),
        ("set", 20),
        ("find_rev", 0, 2, None, None),
        ("find_rev", 0, 1, None, None),
        ("find_rev", 0, 0, None, None),
        ("find_rev", 0, None, None, None),
    ]
    return st


# next_prev_test() (64-bit: 201 entries, level2 = 707, 1000, 710, 715, 720, 725; last 0x7d6)
NEXT_PREV_LEVEL2_64: Final = (707, 1000, 710, 715, 720, 725)
NEXT_PREV_LAST_INDEX_64: Final = 0x7D6


def _next_prev_steps() -> list[Step]:
    n = 200
    lv = NEXT_PREV_LEVEL2_64
    st: list[Step] = [("store_raw", i * 10, i * 10 + 5, i, 0) for i in range(n + 1)]
    st += [
        # the kernel counts these without checking; entries starting <= 1000
        ("set", 0),
        ("for_each", 1000, [(i * 10, i * 10 + 5, i) for i in range(101)]),
        ("set", 0),
        ("for_each", 1000, [(i * 10, i * 10 + 5, i) for i in range(101)], True),
        # simple next/prev
        ("set", 686),
        ("walk", None, None, None),
        ("next", 1000, 69, 690, 695),
        ("prev", 0, 68, 680, 685),
        ("next", 1000, 69, 690, 695),
        ("next", 1000, 70, 700, 705),
        # across node boundaries
        ("set", 70),
        ("walk", 7, 70, 75),
        ("next", 1000, 8, 80, 85),
        ("prev", 70, 7, 70, 75),
        # across two levels
        ("reset",),
        ("set", lv[0]),
        ("walk", None, None, None),
        ("next", lv[1], lv[2] // 10, lv[2], lv[3]),
        ("next", lv[1], lv[4] // 10, lv[4], lv[5]),
        ("prev", 0, lv[2] // 10, lv[2], lv[3]),
        # off the end and back on
        ("set", n * 10),
        ("walk", n, n * 10, n * 10 + 5),
        ("next", ULONG_MAX, None, NEXT_PREV_LAST_INDEX_64, ULONG_MAX),
        ("prev", 0, n, n * 10, n * 10 + 5),
        # off the start and back on
        ("reset",),
        ("set", 10),
        ("walk", 1, 10, 15),
        ("prev", 0, 0, 0, 5),
        ("prev", 0, None, 0, 5),
        ("status", "ma_underflow"),
        ("set_range", 0, 5),
        ("mas_store", None),
        ("reset",),
        ("set", 10),
        ("walk", ANY, None, None),
        ("prev", 0, None, 0, 9),
        # a normal tree: 0 and 5
        ("new", False),
        ("store_raw", 0, 0, 0, 0),
        ("store_raw", 5, 5, 5, 0),
        ("set", 5),
        ("prev", 4, None, None, None),
    ]
    return st


# ---------------------------------------------------------------------------
# check_state_handling(): index/last results and, where the state exposes ``status``, the
# status reached (``("status", ...)`` steps; ``ma_active`` is the kernel's mas_is_active()).
# ``set_index`` / ``force_status`` write mas.index/last, mas.status (and mas.offset) directly,
# as the kernel test does.
def _state_handling_steps() -> list[Step]:
    M = ULONG_MAX
    A, R, N = "ma_active", "ma_root", "ma_none"
    OV, UN = "ma_overflow", "ma_underflow"
    st: list[Step] = [
        # single entry at 0 (root pointer)
        ("store_raw", 0, 0, "ptr", 0),
        ("set", 0),  # MA_STATE(mas, mt, 0, 0)
        ("prev", 0, None, None, None), ("status", UN),  # prev: start -> underflow
        ("set", 10), ("prev", 0, "ptr", 0, 0), ("status", R),  # prev: start -> root
        ("set", 10), ("pause",), ("prev", 0, "ptr", 0, 0), ("status", R),  # pause -> root
        ("set", 0), ("next", M, None, 1, M), ("status", N),  # next: start -> none
        ("set", 10), ("next", M, None, 1, M), ("status", N),
        ("set", 0), ("find", M, "ptr", 0, 0), ("status", R),  # find: start -> root
        ("find", M, None, 1, M), ("status", N),  # find: root -> none
        ("find", M, None, 1, M), ("status", N),  # find: none -> none
        ("set", 10), ("find", M, None, 1, M), ("status", N),  # find: start -> none
        ("find_rev", 0, "ptr", 0, 0), ("status", R),  # find_rev: none -> root
        ("set", 0), ("find_rev", 0, "ptr", 0, 0), ("status", R),  # start -> root
        ("find_rev", 0, None, 0, 0), ("status", N),  # root -> none
        ("find_rev", 0, None, 0, 0), ("status", N),  # none -> none
        ("set", 10), ("find_rev", 0, "ptr", 0, 0), ("status", R),  # start -> root
        ("set", 10), ("walk", None, 1, M), ("status", N),  # walk: start -> none
        ("set", 10), ("pause",), ("walk", None, 1, M), ("status", N),  # pause -> none
        ("set_index", 10, 10), ("walk", None, 1, M), ("status", N),  # none -> none
        ("walk", None, 1, M), ("status", N),  # none -> none
        ("set", 0), ("walk", "ptr", 0, 0), ("status", R),  # start -> root
        ("set", 0), ("pause",), ("walk", "ptr", 0, 0), ("status", R),  # pause -> root
        ("force_status", N, None), ("walk", "ptr", 0, 0), ("status", R),  # none -> root
        ("walk", "ptr", 0, 0), ("status", R),  # root -> root
        ("set", 10), ("walk", None, 1, M), ("status", N),  # root -> none
        ("set_index", 0, 0), ("walk", "ptr", 0, 0), ("status", R),  # none -> root
        # a tree with a node
        ("store_raw", 0, 0, None, 0),
        ("store_raw", 0x1000, 0x1500, "ptr", 0),
        ("store_raw", 0x2000, 0x2500, "ptr2", 0),
        ("store_raw", 0x3000, 0x3500, "ptr3", 0),
        ("set", 0), ("next", M, "ptr", 0x1000, 0x1500), ("status", A),  # next: start -> active
        ("set", 0), ("pause",), ("next", M, "ptr", 0x1000, 0x1500), ("status", A),  # pause
        ("set_index", 0, 0), ("force_status", N, 0),  # next: none -> active
        ("next", M, "ptr", 0x1000, 0x1500), ("status", A),
        ("next", 0x2100, "ptr2", 0x2000, 0x2500), ("status", A),  # spanning limit
        ("next", 0x2999, None, 0x2501, 0x2FFF), ("status", OV),  # limit reached beyond data
        ("next", M, "ptr3", 0x3000, 0x3500), ("status", A),  # overflow -> active
        ("next", M, None, 0x3501, M), ("status", OV),  # active -> overflow
        ("next", M, None, 0x3501, M), ("status", OV),  # overflow -> overflow
        ("prev", 0, "ptr3", 0x3000, 0x3500), ("status", A),  # prev: overflow -> active
        # next: none -> active, skipping the value at the location
        ("set", 0), ("next", M, ANY, None, None), ("force_status", N, 0),
        ("next", M, "ptr2", 0x2000, 0x2500), ("status", A),
        ("prev", 0, "ptr", 0x1000, 0x1500), ("status", A),  # prev: active -> active
        ("next", M, ANY, None, None),
        ("prev", 0x1200, "ptr", 0x1000, 0x1500), ("status", A),  # spanning limit
        ("prev", 0x1200, None, 0x1000, 0x1500), ("status", UN),  # underflow
        ("prev", 0x0100, None, 0, 0x0FFF), ("status", UN),  # underflow, spanning end range
        ("prev", 0, None, 0, 0x0FFF), ("status", UN),
        ("prev", 0, None, 0, 0x0FFF), ("status", UN),
        ("next", M, "ptr", 0x1000, 0x1500), ("status", A),  # next: underflow -> active
        ("prev", 0x1000, None, 0x1000, 0x1500), ("status", UN),  # first value -> underflow
        ("find", M, "ptr", 0x1000, 0x1500), ("status", A),  # find: underflow -> first value
        ("set", 0x3600), ("prev", 0, "ptr3", None, None), ("pause",),  # prev: pause -> active
        ("prev", 0, "ptr2", 0x2000, 0x2500), ("status", A),
        ("prev", 0x1600, None, 0x1501, 0x1FFF), ("status", UN),  # underflow spanning min
        ("prev", 0, "ptr", 0x1000, 0x1500), ("status", A),  # active -> active, continue
        ("set", 0), ("find", M, "ptr", 0x1000, 0x1500), ("status", A),  # find: start -> active
        ("set", 0), ("pause",), ("find", M, "ptr", 0x1000, 0x1500), ("status", A),  # pause
        ("set", 1200), ("find", M, "ptr", 0x1000, 0x1500), ("status", A),  # start, on value
        ("find", M, "ptr2", 0x2000, 0x2500), ("status", A),  # active -> active
        ("find", 0x2700, None, 0x2501, 0x2FFF), ("status", A),  # active -> active (NULL)
        ("find", 0x5000, "ptr3", 0x3000, 0x3500), ("status", A),  # overflow -> active
        ("find", M, None, 0x3501, M), ("status", A),  # active -> active (NULL) end
        ("find_rev", 0, "ptr3", 0x3000, 0x3500), ("status", A),  # find_rev: active (END)
        ("find_rev", 0, "ptr2", 0x2000, 0x2500), ("status", A),
        ("pause",), ("find_rev", 0, "ptr", 0x1000, 0x1500), ("status", A),  # pause -> active
        ("find_rev", 0, None, 0, 0x0FFF), ("status", UN),  # active -> underflow
        ("set", 0x1200), ("find_rev", 0, "ptr", 0x1000, 0x1500), ("status", A),
        ("set", 0x1200), ("walk", "ptr", 0x1000, 0x1500), ("status", A),  # walk: start
        ("set", 0x1600), ("walk", None, 0x1501, 0x1FFF), ("status", A),
        ("set", 0x1200), ("pause",), ("walk", "ptr", 0x1000, 0x1500), ("status", A),  # pause
        ("set", 0x1600), ("pause",), ("walk", None, 0x1501, 0x1FFF), ("status", A),
        ("set", 0x1200), ("force_status", N, None),  # walk: none -> active
        ("walk", "ptr", 0x1000, 0x1500), ("status", A),
        ("set", 0x1600), ("force_status", N, None),
        ("walk", None, 0x1501, 0x1FFF), ("status", A),
        ("set_index", 0x1200, 0x1200), ("force_status", A, 0),  # walk: active -> active
        ("walk", "ptr", 0x1000, 0x1500), ("status", A),
        ("set_index", 0x1600, 0x1600),
        ("walk", None, 0x1501, 0x1FFF), ("status", A),
        # allocation tree with 0..29
        ("new", True),
    ]  # fmt: skip
    for count in range(30):
        st += [("set", count), ("mas_store", count)]
    st += [
        # mas_find() works from ma_underflow
        ("set", 0), ("walk", 0, 0, 0),
        ("set", 0), ("prev", 0, None, None, None), ("status", UN),
        ("find", M, 0, None, None),
        # mas_next() restores active after underflow
        ("next", M, 1, 1, 1),
        ("prev", 1, None, None, None), ("status", UN),
        ("next", M, 1, None, None),
        # overflow -> active
        ("prev", 0, ANY, None, None),
        ("next", 0, None, None, None), ("status", OV),
        ("next", M, 1, None, None),
    ]  # fmt: skip
    return st


# check_root_expand() (pointer-tagging variants have no Python counterpart)
def _root_expand_steps() -> list[Step]:
    return [
        ("set", 3),
        ("walk", None, 0, ULONG_MAX),
        ("set", 1),
        ("mas_store", "ptr"),
        ("set", 0),
        ("walk", None, None, None),
        ("set", 1),
        ("walk", "ptr", None, None),
        ("set", 2),
        ("walk", None, None, None),
        ("new", False),
        ("set", 0),
        ("mas_store", "ptr"),
        ("set", 5),
        ("walk", None, 1, ULONG_MAX),
        ("set_range", 0, 100),
        ("walk", "ptr", None, 0),
        ("new", False),
        ("set", 0),
        ("mas_store", "ptr"),
        ("next", ULONG_MAX, None, None, None),
        ("set", 1),
        ("prev", 0, "ptr", None, None),
    ]


# check_store_null()
def _store_null_steps() -> list[Step]:
    M = ULONG_MAX
    return [
        ("set_range", 0, M), ("mas_store", None), ("empty",),
        ("new", True), ("set_range", 3, 10), ("mas_store", None), ("empty",),
        ("new", True), ("set", 0), ("mas_store", "mas"), ("set_range", 0, M),
        ("mas_store", None), ("empty",),
        ("new", True), ("set", 0), ("mas_store", "mas"), ("set_range", 0, 5),
        ("mas_store", None), ("empty",),
        ("new", True), ("set", 0), ("mas_store", "mas"), ("set_range", 2, 5),
        ("mas_store", None), ("load", 0, "mas"),
        ("new", True), ("set_range", 1, 3), ("mas_store", "mas"), ("set_range", 0, M),
        ("mas_store", None), ("empty",),
    ]  # fmt: skip


# check_deficient_node()
def _deficient_node_steps() -> list[Step]:
    st: list[Step] = []
    for r in (range(0, 10), range(20, 39), range(10, 12)):
        for c in r:
            st += [("set", c), ("mas_store", c)]
    st.append(("check",))
    return st


# check_iteration(): [i*10, i*10+9] -> i for i = 0..125, stores during iteration.
# Modelled as: (for_each max, stop index, store range, post-loop find value).
ITERATION_CASES: Final = (
    # (loop max, i at which to store, store first, store last, find() after the loop)
    (925, 92, 925, 929, 93),  # overwrite the end of entry 92
    (785, 78, 780, 785, 78),  # overwrite the start of entry 78
    (765, 76, 760, 765, 76),  # overwrite the end of entry 76 and advance
)


# check_node_overwrite(), check_spanning_relatives(), check_bnode_min_spanning()
def _node_overwrite_steps() -> list[Step]:
    st: list[Step] = [("store_raw", i * 100, i * 100 + 50, i * 100, 0) for i in range(4000)]
    st += [("store_raw", 319951, 367950, None, 0), ("check",)]
    return st


def _spanning_relatives_steps() -> list[Step]:
    st: list[Step] = [("store_raw", i * 10, i * 10 + 5, i, 0) for i in range(1001)]
    st += [("store_raw", 9365, 9955, None, 0), ("check",)]
    return st


def _bnode_min_spanning_steps() -> list[Step]:
    st: list[Step] = []
    for i in range(50, -1, -1):
        st += [("set_range", i * 10, i * 10 + 9), ("mas_store", "fn")]
    st += [("set_range", 240, 509), ("mas_store", None), ("check",)]
    return st


# check_range64_in_rcu(): fill a whole range_64 root (226 ranges), then a height-3 tree
# (3166 ranges; root with 15 children) by mtree_insert_range() in RCU mode; every insert
# succeeds.  (MT_FLAGS_USE_RCU only: a normal tree; the model has no RCU mode.)
RANGE64_IN_RCU_COUNTS: Final = (226, 3166)


def _range64_in_rcu_steps() -> list[Step]:
    st: list[Step] = []
    for n in RANGE64_IN_RCU_COUNTS:
        st.append(("new", False))
        st += [("insert", i * 10, i * 10 + 9, i, 0) for i in range(n)]
        st.append(("check",))
    return st


# ---------------------------------------------------------------------------
# Not from the kernel test file: edge cases stated in the reference notes
# (/work/shared/reference/maple-tree.md), kept apart so a failure names its source.


# §2.1: XA_ZERO_ENTRY occupies its range (not a gap), reads as NULL through
# mtree_load(), but the ma_state walkers return it as-is.
def _zero_entry_steps() -> list[Step]:
    return [
        ("store", 10, 20, ZERO),
        ("load", 15, None),
        ("insert", 15, 15, 1, EEXIST),
        ("insert", 5, 10, 1, EEXIST),
        ("insert", 20, 25, 1, EEXIST),
        ("set", 15),
        ("walk", ZERO, 10, 20),
        ("set", 0),
        ("find", ULONG_MAX, ZERO, 10, 20),
        ("set", 0),
        ("next", ULONG_MAX, ZERO, 10, 20),
        ("set", 30),
        ("prev", 0, ZERO, 10, 20),
        ("set", 30),
        ("find_rev", 0, ZERO, 10, 20),
        ("empty_area", 0, 100, 5, 0, 0, 4),
        ("empty_area", 5, 100, 10, 0, 21, 30),
        ("empty_area_rev", 0, 20, 5, 0, 5, 9),
        ("empty_area_rev", 0, 20, 11, EBUSY, None, None),
        ("alloc", 5, 40, 10, 0, 21, 21),
        ("alloc_rev", 0, 25, 5, 0, 5, 5),
        ("store", 10, 20, None),
        ("empty_area", 0, 100, 11, 0, 10, 20),
        ("check",),
    ]


# §2.2 / §2.4: argument errors, empty-tree and root-entry gap searches.
def _api_edges_steps() -> list[Step]:
    return [
        ("store_raw", 5, 4, 1, EINVAL),
        ("insert", 5, 4, 1, EINVAL),
        ("empty_area", 10, 5, 1, EINVAL, None, None),
        ("empty_area", 0, 10, 0, EINVAL, None, None),
        ("empty_area", 0, 8, 10, EINVAL, None, None),
        ("empty_area_rev", 10, 5, 1, EINVAL, None, None),
        ("empty_area_rev", 0, 10, 0, EINVAL, None, None),
        ("empty_area_rev", 0, 8, 10, EINVAL, None, None),
        ("alloc", 10, 5, 1, EINVAL, 0, 1),
        ("alloc", 0, 10, 0, EINVAL, 0, 1),
        ("alloc_rev", 10, 5, 1, EINVAL, 0, 1),
        # empty tree
        ("empty_area", 100, 200, 10, 0, 100, 109),
        ("empty_area_rev", 100, 200, 10, 0, 191, 200),
        ("empty_area", 0, ULONG_MAX, 1, 0, 0, 0),
        ("empty_area_rev", 0, ULONG_MAX, 1, 0, ULONG_MAX, ULONG_MAX),
        # only a root entry at 0
        ("set", 0),
        ("mas_store", "ptr"),
        ("empty_area", 0, 10, 5, 0, 1, 5),
        ("empty_area", 0, 4, 5, EBUSY, None, None),
        ("empty_area_rev", 0, 10, 5, 0, 6, 10),
        ("alloc", 0, 10, 5, 0, 1, 1),
        ("check",),
        # mtree_alloc_*() need MT_FLAGS_ALLOC_RANGE
        ("new", False),
        ("alloc", 0, 100, 1, EINVAL, 0, 1),
        ("alloc_rev", 0, 100, 1, EINVAL, 0, 1),
    ]


# ---------------------------------------------------------------------------
# check_fuzzer(): nine op sequences found by fuzzing (normal tree).  The kernel checks
# only that they run and leave a valid tree; the driver checks each op against a model.
# Op codes: i = mtree_insert, s = mtree_store, e = mtree_erase, l = mtree_load,
# sr = mtree_store_range, ir = mtree_insert_range.
FUZZER: Final[tuple[tuple[tuple[Any, ...], ...], ...]] = (
    (  # 1: spanning rebalance of a single root node
        ("i", 88, 0xB1), ("i", 84, 0xA9), ("i", 2, 0x5), ("i", 4, 0x9), ("i", 14, 0x1D),
        ("i", 7, 0xF), ("i", 12, 0x19), ("i", 18, 0x25), ("sr", 8, 18, 0x11),
    ),
    (  # 2: spanning rebalance of two nodes in root
        ("s", 87, 0xAF), ("s", 0, 0x1), ("l", 4), ("i", 4, 0x9), ("s", 8, 0x11),
        ("s", 44, 0x59), ("s", 68, 0x89), ("s", 2, 0x5), ("i", 43, 0x57), ("i", 24, 0x31),
        ("i", 844, 0x699), ("s", 84, 0xA9), ("s", 4, 0x9), ("e", 4), ("l", 5), ("e", 0),
    ),
    (  # 3: node overflow on copy
        ("sr", 0, ULONG_MAX, 0x1), ("s", 4, 0x9), ("e", 5), ("e", 0), ("e", 4), ("s", 5, 0xB),
        ("e", 5), ("s", 5, 0xB), ("e", 5), ("e", 4), ("s", 4, 0x9), ("s", 444, 0x379),
        ("s", 0, 0x1), ("l", 0), ("s", 5, 0xB), ("e", 0),
    ),
    (  # 4: spanning store writing a wrong pivot in the last slot
        ("i", 261, 0x20B), ("s", 516, 0x409), ("s", 6, 0xD), ("i", 5, 0xB), ("i", 1256, 0x9D1),
        ("s", 4, 0x9), ("e", 1), ("s", 56, 0x71), ("i", 1, 0x3), ("s", 24, 0x31), ("e", 1),
        ("i", 2263, 0x11AF), ("i", 446, 0x37D), ("sr", 6, 45, 0xD), ("sr", 3, 446, 0x7),
    ),
    (  # 5: extending a NULL may overflow slots
        ("s", 48, 0x61), ("s", 3, 0x7), ("l", 0), ("s", 88, 0xB1), ("s", 81, 0xA3),
        ("i", 0, 0x1), ("i", 8, 0x11), ("i", 4, 0x9), ("i", 2480, 0x1361),
        ("i", ULONG_MAX, 0xFFFFFFFFFFFFFFFF), ("e", ULONG_MAX),
    ),
    (  # 6: stale data in an implied slot of a shrinking reused node
        ("e", 3), ("i", 22, 0x2D), ("i", 15, 0x1F), ("l", 2), ("i", 1, 0x3), ("i", 1, 0x3),
        ("i", 5, 0xB), ("e", 1), ("i", 1, 0x3), ("i", 4, 0x9), ("i", 1, 0x3), ("e", 1),
        ("i", 2, 0x5), ("i", 1, 0x3), ("e", 3), ("i", 22, 0x2D), ("i", 15, 0x1F),
        ("i", 2, 0x5), ("i", 1, 0x3), ("i", 8, 0x11), ("l", 2), ("i", 1, 0x3), ("i", 1, 0x3),
        ("s", 1, 0x3), ("i", 5, 0xB), ("e", 1), ("i", 1, 0x3), ("i", 4, 0x9), ("i", 1, 0x3),
        ("e", 1), ("i", 2, 0x5), ("i", 1, 0x3), ("e", 3), ("i", 22, 0x2D), ("i", 15, 0x1F),
        ("i", 2, 0x5), ("i", 1, 0x3), ("i", 8, 0x11), ("i", 12, 0x19), ("e", 1),
        ("sr", 4, 62, 0x9), ("e", 62), ("sr", 1, 0, 0x3), ("i", 11, 0x17), ("i", 3, 0x7),
        ("i", 3, 0x7), ("s", 62, 0x7D), ("e", 62), ("sr", 1, 15, 0x3), ("e", 1),
        ("i", 22, 0x2D), ("i", 12, 0x19), ("e", 1), ("i", 3, 0x7), ("s", 62, 0x7D), ("e", 62),
        ("i", 122, 0xF5), ("s", 3, 0x7), ("i", 0, 0x1), ("sr", 0, 1, 0x1), ("i", 85, 0xAB),
        ("i", 72, 0x91), ("i", 81, 0xA3), ("i", 726, 0x5AD), ("i", 0, 0x1), ("i", 1, 0x3),
        ("s", 51, 0x67), ("i", 611, 0x4C7), ("i", 485, 0x3CB), ("i", 1, 0x3), ("e", 1),
        ("i", 0, 0x1), ("i", 1, 0x3), ("ir", 26, 1, 0x35), ("l", 1), ("sr", 1, 22, 0x3),
        ("i", 1, 0x3), ("e", 1), ("l", 53), ("l", 1), ("sr", 1, 1, 0x3), ("i", 222, 0x1BD),
        ("i", 485, 0x3CB), ("i", 1, 0x3), ("e", 1), ("l", 0), ("i", 21, 0x2B), ("i", 3, 0x7),
        ("s", 621, 0x4DB), ("i", 0, 0x1), ("e", 5), ("i", 1, 0x3), ("s", 62, 0x7D),
        ("e", 62), ("sr", 1, 0, 0x3), ("i", 22, 0x2D), ("i", 12, 0x19), ("e", 1),
        ("i", 1, 0x3), ("sr", 4, 62, 0x9), ("e", 62), ("e", 1), ("l", 1), ("sr", 1, 22, 0x3),
        ("i", 1, 0x3), ("e", 1), ("l", 53), ("l", 1), ("sr", 1, 1, 0x3), ("i", 222, 0x1BD),
        ("i", 485, 0x3CB), ("i", 1, 0x3), ("e", 1), ("i", 1, 0x3), ("l", 0), ("l", 0),
    ),
    (  # 7: clearing old data when a node is reused
        ("l", 1), ("i", 102, 0xCD), ("e", 2), ("e", 0), ("l", 0), ("i", 4, 0x9), ("i", 2, 0x5),
        ("i", 110, 0xDD), ("i", 1, 0x3), ("ir", 5, 0, 0xB), ("e", 2), ("s", 0, 0x1),
        ("s", 112, 0xE1), ("i", 21, 0x2B), ("s", 1, 0x3), ("ir", 110, 2, 0xDD), ("s", 2, 0x5),
        ("l", 22), ("e", 2), ("s", 210, 0x1A5), ("sr", 0, 2, 0x1), ("s", 2, 0x5), ("e", 2),
        ("e", 22), ("e", 1), ("e", 2), ("s", 0, 0x1), ("l", 112), ("i", 2, 0x5), ("e", 2),
        ("s", 1, 0x3), ("ir", 1, 2, 0x3), ("e", 0), ("e", 2), ("s", 2, 0x5), ("e", 0),
        ("e", 2), ("s", 0, 0x1), ("s", 0, 0x1), ("e", 2), ("s", 2, 0x5), ("e", 2),
        ("i", 2, 0x5), ("ir", 1, 2, 0x3), ("e", 0), ("e", 2), ("s", 0, 0x1), ("l", 112),
        ("sr", 110, 12, 0xDD), ("s", 2, 0x5), ("l", 110), ("ir", 4, 71, 0x9), ("l", 2),
        ("s", 2, 0x5), ("ir", 11, 22, 0x17), ("e", 12), ("s", 2, 0x5), ("l", 22),
    ),
    (  # 8: wrong max of a node after a (spanning) rebalance
        ("s", 6, 0xD), ("s", 67, 0x87), ("i", 15, 0x1F), ("i", 6716, 0x3479), ("s", 61, 0x7B),
        ("i", 13, 0x1B), ("s", 8, 0x11), ("i", 1, 0x3), ("l", 0), ("e", 67167),
        ("ir", 6, 7167, 0xD), ("i", 6, 0xD), ("e", 67), ("i", 1, 0x3), ("e", 667167),
        ("i", 6, 0xD), ("s", 67, 0x87), ("i", 5, 0xB), ("e", 1), ("i", 6, 0xD), ("e", 67),
        ("i", 15, 0x1F), ("i", 67167, 0x20CBF), ("i", 1, 0x3), ("l", 7), ("i", 16, 0x21),
        ("i", 36, 0x49), ("s", 67, 0x87), ("s", 6, 0xD), ("i", 367, 0x2DF), ("i", 115, 0xE7),
        ("s", 0, 0x1), ("sr", 1, 3, 0x3), ("s", 1, 0x3), ("e", 67167), ("ir", 6, 47, 0xD),
        ("s", 1, 0x3), ("ir", 1, 67, 0x3), ("l", 67), ("i", 1, 0x3), ("e", 67167),
    ),
    (  # 9: spanning store to the end of data, bad metadata length
        ("i", 21, 0x2B), ("i", 12, 0x19), ("i", 6, 0xD), ("i", 8, 0x11), ("i", 2, 0x5),
        ("i", 91, 0xB7), ("i", 18, 0x25), ("i", 81, 0xA3), ("sr", 0, 128, 0x1), ("s", 1, 0x3),
        ("e", 8), ("i", 11, 0x17), ("i", 8, 0x11), ("i", 21, 0x2B), ("i", 2, 0x5),
        ("i", ULONG_MAX - 10, 0xFFFFFFFFFFFFFFEB), ("e", ULONG_MAX - 10), ("sr", 0, 281, 0x1),
        ("e", 2), ("i", 1211, 0x977), ("i", 111, 0xDF), ("i", 13, 0x1B), ("i", 211, 0x1A7),
        ("i", 11, 0x17), ("i", 5, 0xB), ("i", 1218, 0x985), ("i", 61, 0x7B), ("s", 1, 0x3),
        ("i", 121, 0xF3), ("i", 8, 0x11), ("i", 21, 0x2B), ("i", 2, 0x5),
        ("i", ULONG_MAX - 10, 0xFFFFFFFFFFFFFFEB), ("e", ULONG_MAX - 10),
    ),
)  # fmt: skip


def _fuzzer_steps(ops: tuple[tuple[Any, ...], ...]) -> list[Step]:
    """Fuzzer ops with no kernel expectation: errno and loads come from the model."""
    st: list[Step] = []
    for op in ops:
        code = op[0]
        if code == "i":
            st.append(("insert", op[1], op[1], op[2], ANY))
        elif code == "ir":
            st.append(("insert", op[1], op[2], op[3], ANY))
        elif code == "s":
            st.append(("store_raw", op[1], op[1], op[2], ANY))
        elif code == "sr":
            st.append(("store_raw", op[1], op[2], op[3], ANY))
        elif code == "e":
            st.append(("erase", op[1], ANY))
        elif code == "l":
            st.append(("load", op[1], ANY))
        else:  # pragma: no cover - data error
            raise ValueError(op)
    st.append(("check",))
    return st


# ---------------------------------------------------------------------------
def scenarios() -> list[Scenario]:
    """Every ported scenario, in kernel order."""
    out = [
        Scenario("deficient_node", "check_deficient_node", True, _deficient_node_steps()),
        Scenario("store_null", "check_store_null", True, _store_null_steps()),
        Scenario("root_expand", "check_root_expand", True, _root_expand_steps()),
        Scenario("ranges", "check_ranges", False, _check_ranges_steps()),
        Scenario("alloc_range", "check_alloc_range", True, _alloc_range_steps()),
        Scenario("alloc_rev_range", "check_alloc_rev_range", True, _alloc_rev_range_steps()),
        Scenario("seed_set", "maple_tree_seed", False, _seed_steps()),
        # the tree keeps MT_FLAGS_ALLOC_RANGE from check_rev_seq() (mtree_destroy keeps flags)
        Scenario("bound_splits", "check_lower/upper_bound_split, check_mid_split", True,
                 _bound_split_steps()),
        Scenario("next_entry", "check_next_entry", False, _next_entry_steps()),
        Scenario("find", "check_find", False, _check_find_steps()),
        Scenario("find_2", "check_find_2", False, _check_find_2_steps()),
        Scenario("prev_entry", "check_prev_entry", True, _prev_entry_steps()),
        Scenario("gap_combining", "check_gap_combining", True, _gap_combining_steps()),
        Scenario("node_overwrite", "check_node_overwrite", True, _node_overwrite_steps()),
        Scenario("next_prev", "next_prev_test", True, _next_prev_steps()),
        Scenario("spanning_relatives", "check_spanning_relatives", True,
                 _spanning_relatives_steps()),
        Scenario("rev_find", "check_rev_find", True, _rev_find_steps()),
        Scenario("bnode_min_spanning", "check_bnode_min_spanning", True,
                 _bnode_min_spanning_steps()),
        Scenario("empty_area_window", "check_empty_area_window", True,
                 _empty_area_window_steps()),
        Scenario("empty_area_fill", "check_empty_area_fill", True, _empty_area_fill_steps(),
                 oracle_gaps=False),
        Scenario("state_handling", "check_state_handling", True, _state_handling_steps()),
        Scenario("range64_in_rcu", "check_range64_in_rcu", False, _range64_in_rcu_steps()),
    ]  # fmt: skip
    out.append(Scenario("zero_entry", "reference §2.1 (XA_ZERO_ENTRY)", True, _zero_entry_steps()))
    out.append(Scenario("api_edges", "reference §2.2, §2.4", True, _api_edges_steps()))
    for k, ops in enumerate(FUZZER, 1):
        out.append(Scenario(f"fuzzer_{k}", "check_fuzzer", False, _fuzzer_steps(ops)))
    return out
