"""What one ``CacheModel.access`` costs, in ns of CPU time per call.

Three access streams, each replayed on a fresh model (x86_64 preset unless
``--arch arm64``), median over ``--repeat`` runs:

* ``l1-hot``: 32 lines read and written over and over by one CPU (all L1d
  hits after the first pass): the per-touch fast path;
* ``mixed``: a seeded stream over 200,000 lines (12.5 MiB) with a hot
  set, 8 CPUs, one access in four a write: every outcome occurs;
* ``pingpong``: 8 CPUs writing the same 16 lines in turn (every access a
  coherence transfer with an invalidation): the slowest path.

The model's counters per stream are printed too, so a change of behaviour
shows beside a change of speed.

    python benchmarks/bench_cache.py [--n 200000] [--repeat 5] [--arch x86_64]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time

from vmapsim.cost.cache import CacheConfig, CacheModel


def streams(n: int, seed: int = 1) -> dict[str, list[tuple[int, int, bool]]]:
    rng = random.Random(seed)
    hot = [(0, i % 32, bool(i & 1)) for i in range(n)]
    mixed = []
    for _ in range(n):
        line = rng.randrange(4096) if rng.random() < 0.7 else rng.randrange(200_000)
        mixed.append((rng.randrange(8), line, rng.random() < 0.25))
    ping = [(i % 8, (i // 8) % 16, True) for i in range(n)]
    return {"l1-hot": hot, "mixed": mixed, "pingpong": ping}


def run(stream: list[tuple[int, int, bool]], config: CacheConfig) -> tuple[float, dict[str, int]]:
    m = CacheModel(8, config)
    access = m.access
    gc.disable()
    t0 = time.process_time_ns()
    for cpu, line, write in stream:
        access(cpu, line, write)
    dt = time.process_time_ns() - t0
    gc.enable()
    return dt / len(stream), m.snapshot()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="accesses per stream")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--arch", choices=("x86_64", "arm64"), default="x86_64")
    args = ap.parse_args(argv)
    config = CacheConfig.for_arch(args.arch)
    # the loop's own cost (tuple unpacking + a call to a no-op), to subtract
    base = []
    for _ in range(args.repeat):
        stream = [(0, i, False) for i in range(args.n)]

        def noop(cpu: int, line: int, write: bool) -> None:
            return None

        gc.disable()
        t0 = time.process_time_ns()
        for cpu, line, write in stream:
            noop(cpu, line, write)
        base.append((time.process_time_ns() - t0) / args.n)
        gc.enable()
    loop_ns = statistics.median(base)
    print(f"{config.name}; {args.n:,} accesses per stream, median of {args.repeat}")
    print(f"loop + call overhead of a no-op function: {loop_ns:.0f} ns")
    print(f"{'stream':<10} {'ns/access':>10} {'minus loop':>11}  counters")
    for name, stream in streams(args.n).items():
        times = []
        snap: dict[str, int] = {}
        for _ in range(args.repeat):
            t, snap = run(stream, config)
            times.append(t)
        t = statistics.median(times)
        shown = " ".join(f"{k}={v}" for k, v in snap.items() if v)
        print(f"{name:<10} {t:>10.0f} {t - loop_ns:>11.0f}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
