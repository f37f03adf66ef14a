"""CPU time of the test_vmalloc driver's scheduler per step (no allocator work).

One (or ``--workers``) worker(s) whose subtest only yields, ``--steps`` steps
in all, through ``_schedule()``; then the same generator drained bare.  The
difference is the scheduler's own cost per step (peak tracking, charging).

    python benchmarks/bench_schedule.py [--steps 1000000] [--workers 1]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator

import vmapsim
from vmapsim_test_vmalloc import driver


def _steps(n: int) -> Iterator[None]:
    for _ in range(n):
        yield


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    a = vmapsim.build(0)
    per = args.steps // args.workers
    workers = []
    for i in range(args.workers):
        w = driver._Worker(i, 0, [0], {0: driver._Stats()})
        w.gen = _steps(per)
        w.current = 0
        workers.append(w)
    t0 = time.process_time()
    driver._schedule(a, workers, random.Random(0), None)
    sched = time.process_time() - t0
    t0 = time.process_time()
    for _ in _steps(per * args.workers):
        pass
    bare = time.process_time() - t0
    n = per * args.workers
    print(
        f"{n} steps, {args.workers} worker(s): scheduler {sched:.3f} s, bare {bare:.3f} s, "
        f"{(sched - bare) / n * 1e6:.3f} µs/step of scheduling"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
