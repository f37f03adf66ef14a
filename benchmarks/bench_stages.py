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

    python benchmarks/bench_stages.py [COLUMN ...] [--stages 0..7] [--sizes 1e3,1e4,1e5]
        [--pairs 5000] [--repeat 5] [--patterns pairs,busy] [--json FILE]
        [--memory 1e4] [--nr-cpus 8] [--cache]

``--nr-cpus`` (default 8, the series' configuration; 1 for the old
single-CPU figures) builds allocators with that many CPUs and runs the
pairs (loops) round-robin over them, CPU ``i % nr_cpus`` for the ``i``-th.
``--cache`` attaches the cache model (hits, misses, transfers per pair).

A COLUMN is what ``vmapsim compare`` takes: a stage with ``+ROLE=NAME``
swaps (``7+free=sorted+coalesce=generic``), a range, ``all`` (the default
series, each stage once, whatever plugin series are installed).

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
from vmapsim.tools.compare import ColumnSpec, parse_columns

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


def parse_stages(text: str, registry=None) -> list[ColumnSpec]:
    """The columns ``text`` names, as ``vmapsim compare`` takes them
    (core/tools/compare.py ``parse_columns``): stages (``7``, ``maple:7``,
    ``mine:7``), ranges (``0..7``), ``all``, each with ``+ROLE=NAME`` swaps
    (``7+free=sorted+coalesce=generic``); separated by spaces, or by commas
    between plain stages (``0,4,7``).  ``all`` is the default series' stages,
    each once, even when a plugin has installed a series of its own (name its
    stages, ``mine:0..12``, to bench them)."""
    reg = registry or get_registry()
    tokens: list[str] = []
    for word in text.split():
        tokens.extend([word] if "+" in word or ":" in word.split("..")[0] else word.split(","))
    default = reg.stage(0).series
    expanded: list[str] = []
    for tok in tokens:
        stage_part, plus, swaps = tok.partition("+")
        if stage_part == "all":
            keys = [k for k in reg.stage_keys() if reg.stages[k].series == default]
            expanded.extend(k + plus + swaps for k in keys)
        else:
            expanded.append(tok)
    cols = parse_columns(expanded, reg)
    seen: set[tuple[str, tuple]] = set()
    out: list[ColumnSpec] = []
    for col in cols:  # each stage once (the same swaps)
        ident = (col.key, tuple(sorted(col.swaps.items())))
        if ident not in seen:
            seen.add(ident)
            out.append(col)
    return out


class Subject:
    """One stage's allocator, filled to ``live`` areas, ready to run a pattern."""

    def __init__(
        self,
        col: ColumnSpec,
        live: int,
        pattern: str,
        registry=None,
        nr_cpus: int = 8,
        cache: bool = False,
    ) -> None:
        self.stage = col.label
        self.pattern = pattern
        self.nr_cpus = nr_cpus
        self.cpu = 0
        self.counters = COUNTERS + (CACHE_COUNTERS if cache else ())
        a = self.a = vmapsim.build(
            col.key,
            components=dict(col.swaps),
            registry=registry,
            nr_cpus=nr_cpus,
            cache_model=cache,
        )
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


def bytes_per_live_area(col: ColumnSpec, live: int, registry=None) -> dict[str, float]:
    """Memory per live area (see the module docstring), with ``live`` one-page areas."""
    a = vmapsim.build(col.key, components=dict(col.swaps), registry=registry)
    for _ in range(live):
        a.vmalloc(P)
    objects = a.va_cache.live
    structs = objects * a.struct_vmap_area_size
    nodes = (a.metrics.node_allocs - a.metrics.node_frees) * 256
    overlay = a.overlay.memory_bytes() if a.overlay is not None else 0
    return {
        "stage": col.label,
        "struct": a.struct_vmap_area_size,
        "objects": objects,
        "index_nodes_bytes": nodes,
        "overlay_bytes": overlay,
        "bytes_per_area": (structs + nodes + overlay) / live,
    }


def main(argv: list[str] | None = None, registry=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "columns",
        nargs="*",
        help="columns as `vmapsim compare` takes them: 0..7 7+free=sorted+coalesce=generic "
        "(default: --stages)",
    )
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
    stages = parse_stages(" ".join(args.columns) if args.columns else args.stages, registry)
    labels = [c.label for c in stages]
    width = max(5, *(len(x) for x in labels))
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results: dict = {
        "stages": labels,
        "sizes": sizes,
        "pairs": args.pairs,
        "nr_cpus": args.nr_cpus,
        "cache": args.cache,
        "rows": [],
    }
    names = COUNTERS + (CACHE_COUNTERS if args.cache else ())
    for pattern in args.patterns.split(","):
        for n in sizes:
            subjects = [Subject(c, n, pattern, registry, args.nr_cpus, args.cache) for c in stages]
            times: dict[str, list[float]] = {c: [] for c in labels}
            for _ in range(args.repeat):
                for sub in subjects:
                    times[sub.stage].append(sub.run(args.pairs))
            base = statistics.median(times[labels[0]])
            label = "one-page pairs" if pattern == "pairs" else "long_busy_list loops"
            print(
                f"\n{label}, {n} live areas, {args.nr_cpus} CPUs "
                f"(median of {args.repeat} x {args.pairs})"
            )
            print(
                f"{'stage':>{width}} {'us/op':>8} {'vs first':>8} "
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
                    f"{sub.stage:>{width}} {med * 1e6:>8.2f} {med / base:>8.2f} "
                    + " ".join(f"{per[k]:>12.2f}" for k in names)
                )
            del subjects
    if args.memory:
        n = int(float(args.memory))
        print(f"\nbytes per live area, {n} one-page areas live")
        print(
            f"{'stage':>{width}} {'struct':>6} {'objects':>8} {'nodes B':>10} {'overlay B':>10} {'B/area':>8}"
        )
        results["memory"] = []
        for col in stages:
            m = bytes_per_live_area(col, n, registry)
            results["memory"].append(m)
            print(
                f"{m['stage']:>{width}} {m['struct']:>6} {m['objects']:>8} {m['index_nodes_bytes']:>10} "
                f"{m['overlay_bytes']:>10} {m['bytes_per_area']:>8.1f}"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
