"""Where a stage's one-page vmalloc+vfree pair spends its time, layer by layer.

Builds each stage with N live one-page areas (as ``bench_stages.py`` does),
runs ``--pairs`` pairs under cProfile and prints, per stage, the self time
(tottime) summed by layer (flow, mirror wrappers, components, maple tree
internals, rb internals, …) as µs per pair and share, then the top functions.
cProfile inflates call-heavy code (it charges every call), so ``--sample``
instead runs a statistical sampler: a ``SIGPROF`` timer every ``--interval``
seconds of CPU time, whose handler charges the interrupted frame's layer
(self time, builtins included in their caller) and each layer on the stack
(inclusive time).  Its overhead is one handler per sample, so its shares are
the wall-clock ones; the absolute µs are the run's CPU time per pair.
``--lines`` counts, with ``sys.settrace``, the Python lines executed and the
Python functions called per pair, per layer: the interpreter's work, the same
on every machine.

    python benchmarks/profile_stages.py [--stages 0,4,7] [--live 10000]
        [--pairs 3000] [--top 15] [--pattern pairs|busy] [--sample | --lines]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import signal
import sys
import time
from collections import Counter, defaultdict

from bench_stages import Subject, parse_stages

LAYERS = (
    # (layer, path fragments), first match wins
    (
        "flow",
        (
            "core/kernel/alloc.py",
            "core/kernel/vmalloc.py",
            "core/kernel/purge.py",
            "core/kernel/allocator.py",
        ),
    ),
    ("mirror", ("core/framework/mirror.py",)),
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


@functools.cache
def layer_of(filename: str) -> str:
    """The layer of a source file (symlinks resolved: see ab_stages.py)."""
    path = os.path.realpath(filename)
    for name, frags in LAYERS:
        if any(f in path for f in frags):
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


def sample(stage: int, live: int, pairs: int, pattern: str, interval: float, top: int) -> None:
    """The ``--sample`` report: self and inclusive CPU time per layer, sampled."""
    sub = Subject(stage, live, pattern)
    self_layer: Counter[str] = Counter()
    incl_layer: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    n = 0

    def on_sample(_signum, frame) -> None:
        nonlocal n
        n += 1
        code = frame.f_code
        self_layer[layer_of(code.co_filename)] += 1
        self_fn[f"{'/'.join(code.co_filename.split('/')[-2:])}({code.co_name})"] += 1
        seen = set()
        while frame is not None:
            seen.add(layer_of(frame.f_code.co_filename))
            frame = frame.f_back
        for layer in seen:
            incl_layer[layer] += 1

    old = signal.signal(signal.SIGPROF, on_sample)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    t0 = time.process_time()
    try:
        sub.run(pairs)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, old)
    us = (time.process_time() - t0) / pairs * 1e6
    print(f"\nstage {stage}: {us:.1f} CPU µs/pair, {n} samples")
    print(f"  {'layer':<18} {'self':>6} {'µs':>6} {'incl':>6}")
    for layer, _ in LAYERS:
        if incl_layer[layer]:
            sh = self_layer[layer] / n
            print(f"  {layer:<18} {sh:>6.1%} {sh * us:>6.1f} {incl_layer[layer] / n:>6.1%}")
    print(f"  top {top} functions by sampled self time:")
    for name, k in self_fn.most_common(top):
        print(f"    {k / n:>6.1%} {k / n * us:>6.2f} µs  {name}")


def trace_lines(stage: int, live: int, pairs: int, pattern: str) -> None:
    """The ``--lines`` report: Python lines executed and calls made per pair, by layer."""
    sub = Subject(stage, live, pattern)
    lines: Counter[str] = Counter()
    calls: Counter[str] = Counter()

    def local(frame, event, _arg):
        if event == "line":
            lines[layer_of(frame.f_code.co_filename)] += 1
        return local

    def on_call(frame, event, _arg):
        if event != "call":
            return None
        calls[layer_of(frame.f_code.co_filename)] += 1
        return local

    sys.settrace(on_call)
    try:
        sub.run(pairs)
    finally:
        sys.settrace(None)
    total = sum(lines.values()) / pairs
    print(f"\nstage {stage}: {total:.0f} lines, {sum(calls.values()) / pairs:.0f} calls per pair")
    for layer, _ in LAYERS:
        if lines[layer]:
            print(
                f"  {layer:<18} {lines[layer] / pairs:>6.0f} lines {calls[layer] / pairs:>5.1f} calls"
            )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="0,4,7")
    ap.add_argument("--live", type=int, default=10000)
    ap.add_argument("--pairs", type=int, default=3000)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--pattern", default="pairs", choices=("pairs", "busy"))
    ap.add_argument("--sample", action="store_true", help="sample instead of cProfile")
    ap.add_argument("--interval", type=float, default=0.0002)
    ap.add_argument("--lines", action="store_true", help="count lines executed per pair")
    args = ap.parse_args(argv)
    for stage in parse_stages(args.stages):
        if args.lines:
            trace_lines(stage, args.live, args.pairs, args.pattern)
            continue
        if args.sample:
            sample(stage, args.live, args.pairs, args.pattern, args.interval, args.top)
            continue
        report(stage, profile(stage, args.live, args.pairs, args.pattern), args.pairs, args.top)


if __name__ == "__main__":
    main(sys.argv[1:])
