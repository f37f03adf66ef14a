"""Maple tree (allocation mode) against the augmented rb-tree free index.

    python benchmarks/bench_mapletree.py [--sizes 1e3,1e4,1e5] [--repeat 5] [--ops 2000]
                                         [--range-tree] [--floor]

Both structures index the same address space: ``n`` busy blocks of ``B``
bytes, each followed by a free hole of ``B`` bytes, except the last hole,
which is ``2B`` long.  The maple tree (``alloc_range=True``) stores the busy
blocks and searches its gaps; the rb-tree free index holds the free holes as
``VmapArea`` blocks (``free_vmap_area_root``), each at the slab position
``vmap_area_cachep`` would give it, so that an area whose fields straddle
two cache lines is charged two.  Measured per operation:

* ``fit@vstart``  lowest fit of ``B`` bytes at or above a random address
  (``mas_empty_area`` / ``find_vmap_lowest_match``);
* ``fit@end``     lowest fit of ``2B`` bytes from 0: only the last hole fits,
  so the search has to follow the gap / ``subtree_max_size`` augmentation;
* ``insert``      maple: occupy half of a random hole (``mtree_insert_range``);
                  rb: link a free block back (``insert_vmap_area_augment``);
* ``erase``       maple: ``mtree_erase`` of such a range;
                  rb: unlink a random free block (``unlink_va_augment``);
* ``pair``        one exact-fit allocation and its release, as a vmalloc+vfree
                  of a hole-sized area does to the index: maple, insert a whole
                  hole then erase it; rb, unlink a whole hole (FL fit) then link
                  it back.  Counts and ops/s are per pair.

Counters come from the shared :class:`vmapsim.Counters` (``nodes_visited``,
``cache_lines``, ``comparisons``; ``aug`` = ``augment_updates + gap_updates``;
``shape`` = rotations + splits + merges + rebalances + node allocations) and
are divided by the number of operations;
time is the median of ``--repeat`` runs (``time.perf_counter``).  The last
table gives ``cost@largest / cost@smallest`` for each metric.

``--range-tree`` adds a normal maple tree (``alloc_range=False``: range_64
internal nodes, no gaps; what the busy and lazy indexes use) holding the
same blocks; it has no gap search, so only insert, erase and pair run.

``--floor`` adds a reference table: per size, the time of a bare descent
(``bisect`` per level, nothing counted, no gap test) over the same maple
tree at random indices, beside the counted ``descend()`` and ``mtree_load``.
The bare descent is the floor any CPython walk of that tree pays for its
memory accesses; the difference is the cost model's bookkeeping.  A second
table takes the lowest fit and the exact-fit pair apart layer by layer: an
uncounted lowest fit (straight descent and leaf scan, correct for this
layout only), the counted ``mas_empty_area`` core, the full
``MapleState.empty_area`` call; two counted descents, the same with the two
exact-fit stores, and ``insert_range`` + ``erase`` as the pair op calls them.

If ``vmapsim_rbtree`` cannot be imported, a ``sortedcontainers.SortedList``
of free blocks (bisect + linear scan; no augmentation) is used instead, when
that optional package is installed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vmapsim import Counters, VmapArea
from vmapsim.kernel.layout import VMAP_AREA_RB
from vmapsim.kernel.slab import KmemCache

BLOCK = 4096  # bytes per busy block and per ordinary free hole
ULONG_MAX = (1 << 64) - 1
METRICS = (
    "nodes_visited",
    "cache_lines",
    "comparisons",
    "augment_updates",
    "gap_updates",
    "rotations",
    "splits",
    "merges",
    "rebalances",
    "node_allocs",
)
#: structural work: rb rotations; maple splits, merges, rebalances and node allocations
SHAPE_METRICS = ("rotations", "splits", "merges", "rebalances", "node_allocs")
OPS = ("fit@vstart", "fit@end", "insert", "erase", "pair")


# ---------------------------------------------------------------------------
@dataclass
class OpResult:
    """Per-operation cost of one op on one structure at one size."""

    counts: dict[str, float] = field(default_factory=dict)
    seconds_per_op: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return 1.0 / self.seconds_per_op if self.seconds_per_op else float("inf")


@dataclass
class SizeResult:
    structure: str
    n: int
    height: int
    build_s: float
    ops: dict[str, OpResult] = field(default_factory=dict)


class Subject(Protocol):
    """One index under test, populated with ``n`` busy blocks / free holes."""

    name: str
    counters: Counters
    #: False when the structure has no gap search (the fit ops are skipped)
    fits: bool

    def height(self) -> int: ...

    def fit(self, size: int, vstart: int) -> int: ...

    def prepare_insert_erase(self, picks: Sequence[int]) -> tuple[Callable[[], None], ...]: ...

    def prepare_pair(self, picks: Sequence[int]) -> Callable[[], None]: ...


def hole_start(i: int) -> int:
    """Address of hole ``i`` (the busy block ``i`` is just below it)."""
    return 2 * i * BLOCK + BLOCK


def space_end(n: int) -> int:
    """One past the last hole (the last hole is ``2 * BLOCK`` long)."""
    return hole_start(n - 1) + 2 * BLOCK


# ---------------------------------------------------------------------------
class MapleSubject:
    """``MapleTree(alloc_range=True)`` holding the busy blocks."""

    name = "maple"
    alloc_range = True
    fits = True

    def __init__(self, n: int) -> None:
        from vmapsim_mapletree import MapleState, MapleTree

        self.counters = Counters()
        self.tree = MapleTree(alloc_range=self.alloc_range, counters=self.counters)
        busy = object()
        store = self.tree.store_range
        for i in range(n):  # consecutive (appending) stores
            store(2 * i * BLOCK, 2 * i * BLOCK + BLOCK - 1, busy)
        # everything above the address space is taken, as vmalloc's range ends at VMALLOC_END
        store(space_end(n), ULONG_MAX, busy)
        self.mas = MapleState(self.tree, 0)
        self.token = object()

    def height(self) -> int:
        return int(self.tree.height)

    def fit(self, size: int, vstart: int) -> int:
        mas = self.mas
        mas.reset()
        mas.empty_area(vstart, ULONG_MAX, size)
        return int(mas.index)

    def prepare_insert_erase(self, picks: Sequence[int]) -> tuple[Callable[[], None], ...]:
        tree, token, half = self.tree, self.token, BLOCK // 2
        starts = [hole_start(i) for i in picks]

        def insert() -> None:
            for s in starts:
                tree.insert_range(s, s + half - 1, token)

        def erase() -> None:
            for s in starts:
                tree.erase(s)

        return insert, erase

    def prepare_pair(self, picks: Sequence[int]) -> Callable[[], None]:
        tree, token = self.tree, self.token
        starts = [hole_start(i) for i in picks]

        def pair() -> None:
            insert, erase = tree.insert_range, tree.erase
            for s in starts:
                insert(s, s + BLOCK - 1, token)
                erase(s)

        return pair


class MapleRangeSubject(MapleSubject):
    """``MapleTree()`` (range_64 nodes, no gaps), as the busy and lazy
    indexes use it: insert, erase and pair only."""

    name = "maple-rng"
    alloc_range = False
    fits = False


class RbSubject:
    """``vmapsim_rbtree.free.RbFreeIndex`` holding the free holes."""

    def __init__(self, n: int) -> None:
        from vmapsim_rbtree.free import RbFreeIndex

        self.name = "rbtree"
        self.fits = True
        self.counters = Counters()
        self.warnings: list[str] = []
        self.index = RbFreeIndex(self.counters, self.warnings.append)
        # Each area sits where vmap_area_cachep would put it (72-byte objects
        # fill slab pages in turn), so that the line count charges objects
        # straddling two lines as the allocator's areas are charged.
        cache = KmemCache("vmap_area", VMAP_AREA_RB)
        self.areas = []
        for i in range(n):
            # kmem_cache_alloc() gives (position in the slab page, its first block)
            pos, blk = cache.alloc()
            self.areas.append(
                VmapArea(
                    hole_start(i),
                    hole_start(i) + (2 * BLOCK if i == n - 1 else BLOCK),
                    slab_pos=pos,
                    slab_blk=blk,
                )
            )
        insert = self.index.insert
        for va in self.areas:
            insert(va)
        if self.warnings:
            raise RuntimeError(f"rb free index refused the layout: {self.warnings[:3]}")

    def height(self) -> int:
        root = self.index.rb_node
        best = 0
        stack = [(root, 1)] if root is not None else []
        while stack:
            node, depth = stack.pop()
            best = max(best, depth)
            for child in (node.rb_left, node.rb_right):
                if child is not None:
                    stack.append((child, depth + 1))
        return best

    def fit(self, size: int, vstart: int) -> int:
        va = self.index.find_vmap_lowest_match(size, 1, vstart, False)
        if va is None:
            raise LookupError("no fit")
        return max(va.va_start, vstart)

    def prepare_insert_erase(self, picks: Sequence[int]) -> tuple[Callable[[], None], ...]:
        index = self.index
        areas = [self.areas[i] for i in picks]

        def erase() -> None:
            for va in areas:
                index.unlink(va)

        def insert() -> None:
            for va in areas:
                index.insert(va)

        # a block has to be out before it can be linked back: erase runs first
        return insert, erase

    def prepare_pair(self, picks: Sequence[int]) -> Callable[[], None]:
        index = self.index
        areas = [self.areas[i] for i in picks]

        def pair() -> None:
            unlink, insert = index.unlink, index.insert
            for va in areas:
                unlink(va)
                insert(va)

        return pair


class SortedListSubject:
    """Fallback baseline: free holes in a ``SortedList`` (no augmentation)."""

    def __init__(self, n: int) -> None:
        from sortedcontainers import SortedList

        self.name = "sortedlist"
        self.fits = True
        self.counters = Counters()
        self.free = SortedList(
            (hole_start(i), hole_start(i) + (2 * BLOCK if i == n - 1 else BLOCK)) for i in range(n)
        )

    def height(self) -> int:
        return 0

    def fit(self, size: int, vstart: int) -> int:
        free = self.free
        k = max(free.bisect_left((vstart, 0)) - 1, 0)
        scanned = 0
        for start, end in free.islice(k):
            scanned += 1
            nva = max(start, vstart)
            if nva + size <= end:
                self.counters.nodes_visited += scanned
                self.counters.comparisons += scanned
                return nva
        self.counters.nodes_visited += scanned
        raise LookupError("no fit")

    def prepare_insert_erase(self, picks: Sequence[int]) -> tuple[Callable[[], None], ...]:
        free = self.free
        blocks = [free[i] for i in picks]

        def erase() -> None:
            for b in blocks:
                free.remove(b)

        def insert() -> None:
            for b in blocks:
                free.add(b)

        return insert, erase

    def prepare_pair(self, picks: Sequence[int]) -> Callable[[], None]:
        free = self.free
        blocks = [free[i] for i in picks]

        def pair() -> None:
            for b in blocks:
                free.remove(b)
                free.add(b)

        return pair


# ---------------------------------------------------------------------------
def measure(subject: Subject, fn: Callable[[], None], nops: int) -> tuple[dict[str, int], float]:
    c = subject.counters
    c.reset()
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return {m: c[m] for m in METRICS}, dt


def bench_subject(make: Callable[[int], Any], n: int, repeat: int, nops: int) -> SizeResult:
    t0 = time.perf_counter()
    subject = make(n)
    build = time.perf_counter() - t0
    res = SizeResult(subject.name, n, subject.height(), build)
    nops = min(nops, n - 1)
    samples: dict[str, list[tuple[dict[str, int], float]]] = {op: [] for op in OPS}

    if not subject.fits:
        del samples["fit@vstart"], samples["fit@end"]
    for rep in range(repeat):
        rng = random.Random(1000 * n + rep)
        vstarts = [rng.randrange(0, hole_start(n - 1)) for _ in range(nops)]
        picks = rng.sample(range(n - 1), nops)  # never the last (2B) hole

        def fit_vstart(vs: list[int] = vstarts) -> None:
            fit = subject.fit
            for v in vs:
                fit(BLOCK, v)

        def fit_end() -> None:
            fit = subject.fit
            for _ in range(nops):
                fit(2 * BLOCK, 0)

        if subject.fits:
            samples["fit@vstart"].append(measure(subject, fit_vstart, nops))
            samples["fit@end"].append(measure(subject, fit_end, nops))
        insert, erase = subject.prepare_insert_erase(picks)
        if isinstance(subject, MapleSubject):
            samples["insert"].append(measure(subject, insert, nops))
            samples["erase"].append(measure(subject, erase, nops))
        else:
            samples["erase"].append(measure(subject, erase, nops))
            samples["insert"].append(measure(subject, insert, nops))
        samples["pair"].append(measure(subject, subject.prepare_pair(picks), nops))

    if subject.fits:  # sanity: both searches must land where the layout says
        assert subject.fit(2 * BLOCK, 0) == hole_start(n - 1), subject.name
        probe = hole_start(n // 2) + 1
        assert subject.fit(BLOCK, probe) == hole_start(n // 2 + 1), subject.name
    for op, runs in samples.items():
        r = OpResult()
        for m in METRICS:
            r.counts[m] = statistics.median(c[m] for c, _ in runs) / nops
        r.seconds_per_op = statistics.median(dt for _, dt in runs) / nops
        res.ops[op] = r
    return res


# ---------------------------------------------------------------------------
def fmt_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    pairs = enumerate(zip(cells, widths, strict=True))
    return "  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in pairs)


def print_tables(results: list[SizeResult]) -> None:
    head = ["structure", "n", "height", "op", "nodes/op", "lines/op", "cmps/op", "aug/op"]
    head += ["shape/op", "ops/s", "vs rb", "build s"]
    widths = [10, 9, 6, 10, 9, 9, 9, 7, 8, 10, 6, 8]
    print(fmt_row(head, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    # speed relative to the baseline measured in the same process (rb time /
    # this time: > 1 is faster than the rb-tree); steadier than ops/s on a
    # machine whose speed drifts
    rb = {
        (r.n, op): o.seconds_per_op
        for r in results
        if r.structure == "rbtree"
        for op, o in r.ops.items()
    }
    for r in results:
        for op in (op for op in OPS if op in r.ops):
            o = r.ops[op]
            base = rb.get((r.n, op))
            vs_rb = f"{base / o.seconds_per_op:.2f}" if base and o.seconds_per_op else ""
            print(
                fmt_row(
                    [
                        r.structure,
                        f"{r.n:,}",
                        str(r.height),
                        op,
                        f"{o.counts['nodes_visited']:.1f}",
                        f"{o.counts['cache_lines']:.1f}",
                        f"{o.counts['comparisons']:.1f}",
                        f"{o.counts['augment_updates'] + o.counts['gap_updates']:.1f}",
                        f"{sum(o.counts[m] for m in SHAPE_METRICS):.2f}",
                        f"{o.ops_per_s:,.0f}",
                        vs_rb,
                        f"{r.build_s:.2f}" if op == next(iter(r.ops)) else "",
                    ],
                    widths,
                )
            )
        print()

    by_struct: dict[str, list[SizeResult]] = {}
    for r in results:
        by_struct.setdefault(r.structure, []).append(r)
    print("growth: cost@largest / cost@smallest")
    gh = ["structure", "sizes", "op", "nodes", "lines", "cmps", "time/op", "height"]
    gw = [10, 17, 10, 7, 7, 7, 8, 7]
    print(fmt_row(gh, gw))
    print(fmt_row(["-" * w for w in gw], gw))

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else ("-" if not a else "inf")

    for name, rs in by_struct.items():
        lo, hi = min(rs, key=lambda r: r.n), max(rs, key=lambda r: r.n)
        if lo is hi:
            continue
        for op in (op for op in OPS if op in hi.ops):
            a, b = hi.ops[op], lo.ops[op]
            print(
                fmt_row(
                    [
                        name,
                        f"{hi.n:.0e}/{lo.n:.0e}",
                        op,
                        ratio(a.counts["nodes_visited"], b.counts["nodes_visited"]),
                        ratio(a.counts["cache_lines"], b.counts["cache_lines"]),
                        ratio(a.counts["comparisons"], b.counts["comparisons"]),
                        ratio(a.seconds_per_op, b.seconds_per_op),
                        ratio(hi.height, lo.height),
                    ],
                    gw,
                )
            )


def print_floor(sizes: Sequence[int], repeat: int, nops: int) -> None:
    """Bare descent vs counted walks over the benchmark's maple tree."""
    from vmapsim_mapletree.walk import descend

    def bare(tree: Any, index: int) -> Any:
        node = tree.root
        for _ in range(tree.height - 1):
            node = node.slots[bisect_left(node.pivots, index)]
        return node.slots[bisect_left(node.pivots, index)]

    print("floor: one walk to a random index (µs, median of --repeat batches)")
    head = ["n", "height", "bare", "descend", "load", "counting"]
    widths = [10, 6, 8, 8, 8, 8]
    print(fmt_row(head, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for n in sizes:
        subject = MapleSubject(n)
        tree = subject.tree
        rng = random.Random(n)
        idx = [rng.randrange(0, space_end(n)) for _ in range(nops)]
        fns: dict[str, Callable[[Any, int], Any]] = {
            "bare": bare,
            "descend": descend,
            "load": type(tree).load,
        }
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(repeat):
            for name, fn in fns.items():  # interleaved, so drift hits all alike
                t0 = time.perf_counter()
                for i in idx:
                    fn(tree, i)
                times[name].append((time.perf_counter() - t0) / nops)
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        share = 1 - med["bare"] / med["descend"]
        print(
            fmt_row(
                [
                    f"{n:,}",
                    str(tree.height),
                    f"{med['bare']:.2f}",
                    f"{med['descend']:.2f}",
                    f"{med['load']:.2f}",
                    f"{share:.0%}",
                ],
                widths,
            )
        )
    print()
    print_fit_floor(sizes, repeat, nops)


def bare_lowest_fit(tree: Any, lo: int, size: int) -> int:
    """Uncounted lowest fit at or above ``lo`` for this benchmark's layout.

    It descends straight to the leaf holding ``lo`` and scans it, else the
    next leaf, which is right here because every leaf holds holes of
    ``BLOCK`` bytes; a real search also has to test each child's gap and
    resume parents.
    """
    node = tree.root
    nmin = 0
    for _ in range(tree.height - 1):
        piv = node.pivots
        off = bisect_left(piv, lo)
        if off:
            nmin = piv[off - 1] + 1
        node = node.slots[off]
    piv, slots = node.pivots, node.slots
    off = bisect_left(piv, lo)
    prev = piv[off - 1] if off else nmin - 1
    for i in range(off, len(piv)):
        p = piv[i]
        if slots[i] is None:
            start = prev + 1 if prev >= lo else lo
            if p - start + 1 >= size:
                return start
        prev = p
    return bare_lowest_fit(tree, piv[-1] + 1, size)  # the next leaf's first hole


def print_fit_floor(sizes: Sequence[int], repeat: int, nops: int) -> None:
    """Lowest fit and exact-fit pair, layer by layer (what each layer adds)."""
    print("layers: lowest fit of BLOCK from a random address; exact-fit insert+erase pair")
    print("(µs per op, median of --repeat batches)")
    head = ["n", "bare fit", "search", "empty_area", "2 descents", "+exact_fit", "API pair"]
    widths = [10, 8, 8, 10, 10, 10, 8]
    print(fmt_row(head, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for n in sizes:
        cells = [f"{n:,}"] + [f"{t * 1e6:.2f}" for t in fit_layers(n, repeat, nops)]
        print(fmt_row(cells, widths))
    print()


def fit_layers(n: int, repeat: int, nops: int) -> list[float]:
    """Median seconds per op of each layer of :func:`print_fit_floor` at ``n``."""
    from vmapsim_mapletree.gap import search_forward
    from vmapsim_mapletree.walk import descend
    from vmapsim_mapletree.write import exact_fit

    subject = MapleSubject(n)
    tree, mas, token = subject.tree, subject.mas, subject.token
    rng = random.Random(n)
    vs = [rng.randrange(0, hole_start(n - 1)) for _ in range(nops)]
    picks = rng.sample(range(n - 1), min(nops, n - 1))
    starts = [hole_start(i) for i in picks]
    for v in vs:  # the reference really is the search's answer here
        assert bare_lowest_fit(tree, v, BLOCK) == search_forward(tree, v, ULONG_MAX, BLOCK)

    def bare_fit() -> None:
        for v in vs:
            bare_lowest_fit(tree, v, BLOCK)

    def search() -> None:
        for v in vs:
            search_forward(tree, v, ULONG_MAX, BLOCK)

    def empty_area() -> None:
        for v in vs:
            mas.reset()
            mas.empty_area(v, ULONG_MAX, BLOCK)

    def descents() -> None:
        for s in starts:
            descend(tree, s)
            descend(tree, s)

    def with_exact_fit() -> None:
        for s in starts:
            leaf, off, mn, poff = descend(tree, s)
            exact_fit(tree, leaf, off, mn, token, poff)
            leaf, off, mn, poff = descend(tree, s)
            exact_fit(tree, leaf, off, mn, None, poff)

    fns = (bare_fit, search, empty_area, descents, with_exact_fit, subject.prepare_pair(picks))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for k, fn in enumerate(fns):  # interleaved, so drift hits all alike
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) / (len(vs) if k < 3 else len(starts)))
    return [statistics.median(t) for t in times]


def parse_sizes(text: str) -> list[int]:
    sizes = [int(float(s)) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("sizes must be integers >= 2, e.g. 1e3,1e4")
    return sizes


def baseline_factory() -> Callable[[int], Any] | None:
    try:
        import vmapsim_rbtree.free  # noqa: F401
    except ImportError as exc:
        print(f"note: vmapsim_rbtree not importable ({exc}); trying sortedcontainers")
    else:
        return RbSubject
    try:
        import sortedcontainers  # noqa: F401
    except ImportError:
        print("note: sortedcontainers is not installed either; maple tree only")
        return None
    return SortedListSubject


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=parse_sizes, default=parse_sizes("1e3,1e4,1e5"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ops", type=int, default=2000, help="operations per timed batch")
    ap.add_argument(
        "--floor", action="store_true", help="also time a bare, uncounted descent (reference)"
    )
    ap.add_argument(
        "--range-tree",
        action="store_true",
        help="also run a normal maple tree (range_64, as the busy/lazy indexes use)",
    )
    args = ap.parse_args(argv)

    makers: list[Callable[[int], Any]] = []
    try:
        import vmapsim_mapletree

        if not hasattr(vmapsim_mapletree, "MapleTree"):
            raise ImportError("vmapsim_mapletree does not export MapleTree yet")
    except ImportError as exc:
        print(f"note: maple tree not available ({exc})")
    else:
        makers.append(MapleSubject)
        if args.range_tree:
            makers.append(MapleRangeSubject)
    base = baseline_factory()
    if base is not None:
        makers.append(base)
    if not makers:
        print("nothing to benchmark", file=sys.stderr)
        return 1

    print(
        f"sizes {', '.join(f'{n:,}' for n in args.sizes)}; repeat {args.repeat}; "
        f"{args.ops} ops per batch; block {BLOCK} B",
        flush=True,
    )
    results = []
    for n in args.sizes:
        for make in makers:
            results.append(bench_subject(make, n, args.repeat, args.ops))
            r = results[-1]
            print(f"  {r.structure} n={n:,}: built in {r.build_s:.2f}s", flush=True)
    print()
    print_tables(results)
    if args.floor and MapleSubject in makers:
        print()
        print_floor(args.sizes, args.repeat, args.ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
