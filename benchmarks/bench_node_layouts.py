"""How much does a node's Python data layout matter for a maple-shaped descent?

    python benchmarks/bench_node_layouts.py [--sizes 1e3,1e5,1e6] [--repeat 15]

Builds, for each layout, the same two-level-type B-tree that
``bench_mapletree.py`` indexes (``n`` one-page ranges at a two-page stride;
16-slot leaves holding 14 ranges, 10-slot internal nodes holding 8 children
with a gap per child) and times one uncounted descent to a random index:
per level ``bisect_left`` on the pivots, one gap test, one child load.  No
``vmapsim`` code runs; this measures CPython, not the model.

Layouts (node object with ``__slots__`` in every case):

* ``list``   pivots, slots and gaps are lists (what ``vmapsim_mapletree`` uses);
* ``tuple``  pivots and gaps are tuples (one allocation each, no item array);
* ``array``  pivots and gaps are ``array('Q')`` (contiguous 64-bit words; each
  probe boxes a new int);
* ``gaps``   only the gaps are ``array('Q')``.

Timings are medians (and minimums) of ``--repeat`` interleaved batches.
Every layout's descents are first checked against a bisect over all pivots.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

BLOCK = 4096
LEAF_FILL = 14
FANOUT = 8


class Node:
    __slots__ = ("gaps", "pivots", "slots")

    def __init__(self, pivots: Any, slots: list[Any], gaps: Any) -> None:
        self.pivots = pivots
        self.slots = slots
        self.gaps = gaps


Maker = Callable[[list[int], list[Any], list[int] | None], Node]

LAYOUTS: dict[str, Maker] = {
    "list": lambda p, s, g: Node(list(p), s, list(g) if g else None),
    "tuple": lambda p, s, g: Node(tuple(p), s, tuple(g) if g else None),
    "array": lambda p, s, g: Node(array("Q", p), s, array("Q", g) if g else None),
    "gaps": lambda p, s, g: Node(list(p), s, array("Q", g) if g else None),
}


def build(n: int, make: Maker) -> tuple[Node, int]:
    """Bottom-up build; returns the root and the height."""
    pivots = [(2 * i + 1) * BLOCK - 1 for i in range(n)]
    # leaf entry i is the range's number, so a descent can be checked
    level = [
        make(pivots[i : i + LEAF_FILL], list(range(i, min(n, i + LEAF_FILL))), None)
        for i in range(0, n, LEAF_FILL)
    ]
    height = 1
    while len(level) > 1:
        level = [
            make([c.pivots[-1] for c in kids], kids, [BLOCK] * len(kids))
            for kids in (level[i : i + FANOUT] for i in range(0, len(level), FANOUT))
        ]
        height += 1
    return level[0], height


def descend(root: Node, height: int, index: int) -> Any:
    node = root
    for _ in range(height - 1):
        off = bisect_left(node.pivots, index)
        if node.gaps[off] >= BLOCK:
            node = node.slots[off]
    return node.slots[bisect_left(node.pivots, index)]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e3,1e5,1e6")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--ops", type=int, default=20000)
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 2:
        ap.error("--sizes: integers >= 2, e.g. 1e3,1e5")
    print(f"{'n':>10}  {'height':>6}  " + "  ".join(f"{k:>14}" for k in LAYOUTS))
    for n in sizes:
        trees = {name: build(n, make) for name, make in LAYOUTS.items()}
        rng = random.Random(n)
        qs = [rng.randrange(0, (2 * n - 1) * BLOCK) for _ in range(args.ops)]
        times: dict[str, list[float]] = {k: [] for k in trees}
        for _ in range(args.repeat):
            for name, (root, height) in trees.items():
                t0 = time.perf_counter()
                for q in qs:
                    descend(root, height, q)
                times[name].append((time.perf_counter() - t0) / len(qs) * 1e9)
        want = [bisect_left(range(BLOCK - 1, (2 * n + 1) * BLOCK - 1, 2 * BLOCK), q) for q in qs]
        for name, (root, height) in trees.items():
            got = [descend(root, height, q) for q in qs]
            if got != want:
                raise AssertionError(f"layout {name}: descent reached the wrong range")
        height = next(iter(trees.values()))[1]
        cells = [f"{statistics.median(v):6.0f} ({min(v):5.0f})" for v in times.values()]
        print(f"{n:>10,}  {height:>6}  " + "  ".join(f"{c:>14}" for c in cells))
    print("ns per descent: median (min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
