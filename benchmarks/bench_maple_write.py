"""The counted maple write, store type by store type, A/B of two source trees.

Each case is a pair of counted maple operations that leaves the tree as it
found it, run over ``--n`` positions spread across a tree of ``--live``
one-page ranges, so every leaf and store type of a steady state is met:

* ``range erase+store``: a normal (non-allocation) tree of areas with
  one-page holes, as the busy, lazy and free maple indexes: ``mtree_store_range(NULL)``
  over an area (``wr_node_store``, the NULL absorbs both holes) and the area
  stored back (``wr_node_store``, or a split where the leaf is full);
* ``range exact fit``: the same tree, an area overwritten by itself through
  ``mas_walk`` + ``mas_store`` (``wr_exact_fit``);
* ``alloc release+insert``: an allocation tree of adjacent RESERVED ranges
  (the occupied tree): ``mtree_store_range(NULL)`` over one
  (``wr_node_store`` with gap propagation), then ``mtree_insert_range`` back
  (exact fit of the NULL slot, gap propagation);
* ``alloc empty_area``: ``mas_empty_area`` for one page on that tree with
  a hole every ``--n``-th range (the search of a vmalloc).

Every tree is its own child process per round (``--a`` and ``--b`` alternate,
as in ``ab_stages.py``); the CPU time per pair is the median over rounds, and
the counters each case adds are printed per tree: they must be identical.

    python benchmarks/bench_maple_write.py --a /tmp/mapleperf-base --b .
        [--live 10000] [--n 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ab_stages import link_dir

CHILD = r"""
import gc, json, sys, time
import vmapsim
from vmapsim_mapletree import MapleTree
from vmapsim.framework.roles import RESERVED
P = vmapsim.PAGE_SIZE
live, n = int(sys.argv[1]), int(sys.argv[2])
BASE = 0xFFFFC90000000000
step = max(1, live // n)

def range_tree():
    t = MapleTree()
    vas = [vmapsim.VmapArea(BASE + 2 * i * P, BASE + (2 * i + 1) * P) for i in range(live)]
    for va in vas:
        t.insert_range(va.va_start, va.va_end - 1, va)
    return t, vas[1:-1:step]

def alloc_tree(holes):
    t = MapleTree(alloc_range=True)
    t.store_range(0, 0, RESERVED)
    t.store_range((1 << 64) - 1, (1 << 64) - 1, RESERVED)
    for i in range(live):
        if not (holes and i % holes == holes - 1):
            t.insert_range(BASE + i * P, BASE + (i + 1) * P - 1, RESERVED)
    return t, [BASE + i * P for i in range(1, live - 1, step)]

rt, rvas = range_tree()
def range_erase_store():
    for va in rvas:
        rt.store_range(va.va_start, va.va_end - 1, None)
        rt.store_range(va.va_start, va.va_end - 1, va)
mas = rt.state()
def range_exact_fit():
    for va in rvas:
        mas.set(va.va_start)
        mas.walk()
        mas.store(va)
at, starts = alloc_tree(0)
def alloc_release_insert():
    for s in starts:
        at.store_range(s, s + P - 1, None)
        at.insert_range(s, s + P - 1, RESERVED)
st, _ = alloc_tree(max(2, n // 8))
smas = st.state()
lo, hi = BASE, BASE + (live + 1) * P
def alloc_empty_area():
    for _ in range(len(starts)):
        smas.reset()
        smas.empty_area(lo, hi, P)

out = {}
for name, fn, tree in (
    ("range erase+store", range_erase_store, rt),
    ("range exact fit", range_exact_fit, rt),
    ("alloc release+insert", alloc_release_insert, at),
    ("alloc empty_area", alloc_empty_area, st),
):
    fn()
    c = tree.counters
    before = c.snapshot()
    fn()
    after = c.snapshot()
    delta = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    times = []
    gc.disable()
    for _ in range(3):
        t0 = time.process_time()
        fn()
        times.append((time.process_time() - t0) / len(starts if name.startswith("alloc") else rvas) * 1e6)
    gc.enable()
    out[name] = (sorted(times)[1], delta)
print(json.dumps(out))
"""


def child(links: str, live: int, n: int) -> dict[str, tuple[float, dict[str, int]]]:
    env = dict(os.environ, PYTHONPATH=links)
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(live), str(n)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(res.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the 'before' source tree")
    ap.add_argument("--b", default=".", help="the 'after' source tree")
    ap.add_argument("--live", type=int, default=10000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    trees = {"A": link_dir(args.a), "B": link_dir(args.b)}
    times: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    deltas: dict[str, dict[str, dict[str, int]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            for case, (us, delta) in child(trees[name], args.live, args.n).items():
                times[name].setdefault(case, []).append(us)
                deltas[name][case] = delta
    print(f"{args.live} live, {args.n} positions, median of {args.rounds} rounds (CPU µs/pair)")
    print(f"{'case':<22} {'A':>8} {'B':>8} {'B/A':>6}  counters")
    same = True
    for case in times["A"]:
        a = statistics.median(times["A"][case])
        b = statistics.median(times["B"][case])
        eq = deltas["A"][case] == deltas["B"][case]
        same &= eq
        print(f"{case:<22} {a:>8.2f} {b:>8.2f} {b / a:>6.3f}  {'same' if eq else 'DIFFER'}")
        if not eq:
            print(f"    A {deltas['A'][case]}\n    B {deltas['B'][case]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
