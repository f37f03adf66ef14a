"""Stage 0: one-page vmalloc+vfree pairs per second at 1e3, 1e4, 1e5 live areas.

Prints, per live-area count: the median µs per pair over --repeat runs of
--pairs pairs (lazy freeing and the drains it triggers included), pairs/s,
the cost-model counters per pair, the pluggy hook calls made during the
timed loop (must be 0), and the Python heap bytes per live busy area
(tracemalloc, measured while populating).

    python benchmarks/bench_stage0.py [--sizes 1e3,1e4,1e5] [--pairs 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc

import vmapsim
from vmapsim.framework.registry import HOOK_CALLS

P = vmapsim.PAGE_SIZE


def populate(a: vmapsim.VmapAllocator, n: int) -> list[int]:
    return [a.vmalloc(P) for _ in range(n)]


def heap_per_area(stage: int | str, n: int) -> float:
    a = vmapsim.build(stage)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    live = populate(a, n)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    # the list of addresses is the benchmark's, not the allocator's
    used -= 8 * len(live) + 56
    return used / n


def time_pairs(stage: int | str, n: int, pairs: int, repeat: int) -> dict[str, float]:
    a = vmapsim.build(stage)
    populate(a, n)
    vmalloc, vfree = a.vmalloc, a.vfree
    for _ in range(min(pairs, 5000)):  # warm up: reach the lazy/purge steady state
        vfree(vmalloc(P))
    times = []
    hooks_before = HOOK_CALLS[0]
    a.metrics.reset()
    for _ in range(repeat):
        gc.disable()
        t0 = time.perf_counter()
        for _ in range(pairs):
            vfree(vmalloc(P))
        times.append(time.perf_counter() - t0)
        gc.enable()
    hooks = HOOK_CALLS[0] - hooks_before
    total = pairs * repeat
    med = statistics.median(times) / pairs
    m = a.metrics
    return {
        "us_per_pair": med * 1e6,
        "pairs_per_s": 1 / med,
        "hook_calls": hooks,
        "nodes_visited": m["nodes_visited"] / total,
        "comparisons": m["comparisons"] / total,
        "cache_lines": m["cache_lines"] / total,
        "augment_updates": m["augment_updates"] / total,
        "rotations": m["rotations"] / total,
        "purges_per_1k": 1000 * m["purges"] / total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", default="0")
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--pairs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(
        f"stage {args.stage}: one-page vmalloc+vfree pairs, median of {args.repeat} x {args.pairs}"
    )
    hdr = (
        f"{'live':>8} {'us/pair':>8} {'pairs/s':>9} {'hooks':>5} {'nodes':>6} {'cmps':>6} "
        f"{'lines':>6} {'augm':>5} {'rot':>5} {'purge/1k':>8} {'heap B/area':>11}"
    )
    print(hdr)
    first = None
    for n in sizes:
        r = time_pairs(args.stage, n, args.pairs, args.repeat)
        heap = heap_per_area(args.stage, n)
        first = first or r["us_per_pair"]
        print(
            f"{n:>8} {r['us_per_pair']:>8.2f} {r['pairs_per_s']:>9.0f} {r['hook_calls']:>5} "
            f"{r['nodes_visited']:>6.1f} {r['comparisons']:>6.1f} {r['cache_lines']:>6.1f} "
            f"{r['augment_updates']:>5.1f} {r['rotations']:>5.2f} {r['purges_per_1k']:>8.2f} "
            f"{heap:>11.0f}"
        )
    print(f"(cost at the largest size / cost at the smallest: {r['us_per_pair'] / first:.2f}x)")


if __name__ == "__main__":
    main()
