"""Where a stage's one-page vmalloc+vfree pair spends its time, layer by layer.

Builds each stage with N live one-page areas (as ``bench_stages.py`` does),
runs ``--pairs`` pairs under cProfile and prints, per stage, the self time
(tottime) summed by layer (flow, mirror wrappers, components, maple tree
internals, rb internals, …) as µs per pair and share, then the top functions.
cProfile inflates call-heavy code, so read shares, not absolute µs; the
wall-clock truth is ``bench_stages.py``.

    python benchmarks/profile_stages.py [--stages 0,4,7] [--live 10000]
        [--pairs 3000] [--top 15] [--pattern pairs|busy]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections import defaultdict

from bench_stages import Subject, parse_stages

LAYERS = (
    # (layer, path fragments), first match wins
    ("flow", ("core/alloc.py", "core/vmalloc.py", "core/purge.py", "core/allocator.py")),
    ("mirror", ("core/mirror.py",)),
    ("core other", ("core/",)),
    (
        "maple components",
        (
            "mapletree/vmap_occupied.py",
            "mapletree/vmap_free.py",
            "mapletree/components.py",
        ),
    ),
    ("maple write", ("mapletree/write.py",)),
    ("maple gap", ("mapletree/gap.py",)),
    ("maple walk", ("mapletree/walk.py",)),
    ("maple state", ("mapletree/state.py",)),
    ("maple node/tree", ("mapletree/",)),
    ("rb components", ("rbtree/busy.py", "rbtree/free.py", "rbtree/coalesce.py")),
    ("rb internals", ("rbtree/",)),
    ("attrs/builtins", ("",)),
)


def layer_of(filename: str) -> str:
    for name, frags in LAYERS:
        if any(f in filename for f in frags):
            return name
    return "attrs/builtins"


def profile(stage: int, live: int, pairs: int, pattern: str) -> pstats.Stats:
    sub = Subject(stage, live, pattern)
    prof = cProfile.Profile()
    prof.enable()
    sub.run(pairs)
    prof.disable()
    return pstats.Stats(prof)


def report(stage: int, st: pstats.Stats, pairs: int, top: int) -> None:
    by_layer: dict[str, float] = defaultdict(float)
    calls_by_layer: dict[str, int] = defaultdict(int)
    rows = []
    for (fn, line, name), (_cc, nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        layer = layer_of(fn)
        by_layer[layer] += tt
        calls_by_layer[layer] += nc
        rows.append((tt, nc, f"{'/'.join(fn.split('/')[-2:])}:{line}({name})"))
    total = sum(by_layer.values())
    print(f"\nstage {stage}: {total / pairs * 1e6:.1f} µs/pair under cProfile")
    print(f"  {'layer':<18} {'µs/pair':>8} {'share':>6} {'calls/pair':>10}")
    for layer, _ in LAYERS:
        if layer in by_layer:
            t = by_layer[layer]
            print(
                f"  {layer:<18} {t / pairs * 1e6:>8.1f} {t / total:>6.1%}"
                f" {calls_by_layer[layer] / pairs:>10.1f}"
            )
    print(f"  top {top} functions by self time:")
    for tt, nc, label in sorted(rows, reverse=True)[:top]:
        print(f"    {tt / pairs * 1e6:>7.2f} µs {nc / pairs:>6.1f} calls  {label}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="0,4,7")
    ap.add_argument("--live", type=int, default=10000)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--pattern", default="pairs", choices=("pairs", "busy"))
    args = ap.parse_args(argv)
    for stage in parse_stages(args.stages):
        report(stage, profile(stage, args.live, args.pairs, args.pattern), args.pairs, args.top)


if __name__ == "__main__":
    main(sys.argv[1:])
