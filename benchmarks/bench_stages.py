"""Every stage of the series on two patterns, side by side, in one process.

Patterns (all through ``vmalloc``/``vfree``, lazy freeing and its drains included):

* ``pairs``: with N one-page areas live, one-page vmalloc+vfree pairs;
* ``busy``: test_vmalloc's long_busy_list pattern: 15,000 live one-page areas
  (plus N - 15,000 more when N is larger), then loops of a 100-page and a
  1-page vmalloc, both freed.

For each live-area count N and stage: the median µs per pair (or loop) over
``--repeat`` runs, its ratio to stage 0 measured in the same process (the
only wall-clock figure worth comparing across machines), and the cost
model's counters per pair: nodes visited, cache lines, stores, walks (plus
rb augment updates / rotations and maple node allocations).  Stages are
interleaved run by run so drift hits all of them alike.

    python benchmarks/bench_stages.py [--stages 0..7] [--sizes 1e3,1e4,1e5]
        [--pairs 5000] [--repeat 5] [--patterns pairs,busy] [--json FILE]
        [--memory 1e4] [--nr-cpus 8] [--cache]

``--nr-cpus`` (default 8, the series' configuration; 1 for the old
single-CPU figures) builds allocators with that many CPUs and runs the
pairs (loops) round-robin over them, CPU ``i % nr_cpus`` for the ``i``-th.
``--cache`` attaches the cache model (hits, misses, transfers per pair).

``--memory N`` also prints bytes per live area with N one-page vmallocs live:
``sizeof(struct vmap_area)`` at the stage times the live ``vmap_area``
objects (busy, free blocks, chunks and overlay areas alike), plus 256 bytes
per maple node held (node allocations minus frees since build), plus what
an overlay holds itself (chunk headers, back-pointer arrays), over N.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time

import vmapsim
from vmapsim.framework.registry import get_registry

P = vmapsim.PAGE_SIZE
COUNTERS = (
    "nodes_visited",
    "cache_lines",
    "lines_written",
    "line_accesses",
    "stores",
    "walks",
    "augment_updates",
    "node_allocs",
)
#: with ``--cache``
CACHE_COUNTERS = ("mem_misses", "llc_hits", "coherence_transfers")


def parse_stages(text: str) -> list[int]:
    """``0..7``, ``0,4,7`` or ``all`` (every registered stage of the series)."""
    if text == "all":
        reg = get_registry()
        return sorted(reg.stages[k].number for k in reg.stage_keys())
    out: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.partition("..")
        out.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return out


class Subject:
    """One stage's allocator, filled to ``live`` areas, ready to run a pattern."""

    def __init__(
        self, stage: int, live: int, pattern: str, nr_cpus: int = 8, cache: bool = False
    ) -> None:
        self.stage = stage
        self.pattern = pattern
        self.nr_cpus = nr_cpus
        self.cpu = 0
        self.counters = COUNTERS + (CACHE_COUNTERS if cache else ())
        a = self.a = vmapsim.build(stage, nr_cpus=nr_cpus, cache_model=cache)
        fill = max(live, 15000) if pattern == "busy" else live
        self.live = [a.vmalloc(P, cpu=i % nr_cpus) for i in range(fill)]
        self.op = self._pair if pattern == "pairs" else self._busy_loop
        for _ in range(2000):  # reach the lazy/purge steady state
            self.op()
        a.metrics.reset()
        self.ops = 0

    def _pair(self) -> None:
        a = self.a
        c = self.cpu
        self.cpu = (c + 1) % self.nr_cpus
        a.vfree(a.vmalloc(P, cpu=c), cpu=c)

    def _busy_loop(self) -> None:
        a = self.a
        c = self.cpu
        self.cpu = (c + 1) % self.nr_cpus
        big = a.vmalloc(100 * P, cpu=c)
        small = a.vmalloc(P, cpu=c)
        a.vfree(big, cpu=c)
        a.vfree(small, cpu=c)

    def run(self, n: int) -> float:
        op = self.op
        gc.disable()
        t0 = time.perf_counter()
        for _ in range(n):
            op()
        dt = time.perf_counter() - t0
        gc.enable()
        self.ops += n
        return dt / n

    def per_op(self) -> dict[str, float]:
        m = self.a.metrics
        return {k: m[k] / self.ops for k in self.counters}


def bytes_per_live_area(stage: int, live: int) -> dict[str, float]:
    """Memory per live area (see the module docstring), with ``live`` one-page areas."""
    a = vmapsim.build(stage)
    for _ in range(live):
        a.vmalloc(P)
    objects = a.va_cache.live
    structs = objects * a.struct_vmap_area_size
    nodes = (a.metrics.node_allocs - a.metrics.node_frees) * 256
    overlay = a.overlay.memory_bytes() if a.overlay is not None else 0
    return {
        "stage": stage,
        "struct": a.struct_vmap_area_size,
        "objects": objects,
        "index_nodes_bytes": nodes,
        "overlay_bytes": overlay,
        "bytes_per_area": (structs + nodes + overlay) / live,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="all")
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--patterns", default="pairs,busy")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    ap.add_argument("--memory", default=None, help="also print bytes per live area at N live")
    ap.add_argument("--nr-cpus", type=int, default=8, help="simulated CPUs (default 8)")
    ap.add_argument("--cache", action="store_true", help="attach the cache model")
    args = ap.parse_args(argv)
    stages = parse_stages(args.stages)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results: dict = {
        "stages": stages,
        "sizes": sizes,
        "pairs": args.pairs,
        "nr_cpus": args.nr_cpus,
        "cache": args.cache,
        "rows": [],
    }
    names = COUNTERS + (CACHE_COUNTERS if args.cache else ())
    for pattern in args.patterns.split(","):
        for n in sizes:
            subjects = [Subject(s, n, pattern, args.nr_cpus, args.cache) for s in stages]
            times: dict[int, list[float]] = {s: [] for s in stages}
            for _ in range(args.repeat):
                for sub in subjects:
                    times[sub.stage].append(sub.run(args.pairs))
            base = statistics.median(times[stages[0]])
            label = "one-page pairs" if pattern == "pairs" else "long_busy_list loops"
            print(
                f"\n{label}, {n} live areas, {args.nr_cpus} CPUs "
                f"(median of {args.repeat} x {args.pairs})"
            )
            print(
                f"{'stage':>5} {'us/op':>8} {'vs ' + str(stages[0]):>7} "
                + " ".join(f"{k[:12]:>12}" for k in names)
            )
            for sub in subjects:
                med = statistics.median(times[sub.stage])
                per = sub.per_op()
                row = {
                    "pattern": pattern,
                    "live": n,
                    "stage": sub.stage,
                    "us_per_op": med * 1e6,
                    "ratio_to_first": med / base,
                    **per,
                }
                results["rows"].append(row)
                print(
                    f"{sub.stage:>5} {med * 1e6:>8.2f} {med / base:>7.2f} "
                    + " ".join(f"{per[k]:>12.2f}" for k in names)
                )
            del subjects
    if args.memory:
        n = int(float(args.memory))
        print(f"\nbytes per live area, {n} one-page areas live")
        print(
            f"{'stage':>5} {'struct':>6} {'objects':>8} {'nodes B':>10} {'overlay B':>10} {'B/area':>8}"
        )
        results["memory"] = []
        for st in stages:
            m = bytes_per_live_area(st, n)
            results["memory"].append(m)
            print(
                f"{st:>5} {m['struct']:>6} {m['objects']:>8} {m['index_nodes_bytes']:>10} "
                f"{m['overlay_bytes']:>10} {m['bytes_per_area']:>8.1f}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
