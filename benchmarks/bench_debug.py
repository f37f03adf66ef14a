"""What ``--debug`` costs: a test_vmalloc run with and without the checks, per stage.

    .venv/bin/python benchmarks/bench_debug.py [--stages 0,7,12] [--loops 2000]
        [--mask 7] [--every 1000] [--full-too]

Prints, per stage, the run's wall time without ``--debug``, with it (the
incremental check after each operation and the full check every ``--every``
operations, what ``vmapsim run --debug`` does), and with ``--full-too`` the
full check after every operation (what ``--debug`` did before), each as a
factor of the plain run (the same process, runs interleaved; medians of 3).
"""

from __future__ import annotations

import argparse
import statistics
import time

import vmapsim
from vmapsim.framework.registry import get_registry


def _time(stage: int, params: dict, every: int | None) -> float:
    wl = get_registry().workload("test_vmalloc")
    a = vmapsim.build(stage, debug=every is not None)
    if every is not None:
        a.debug_full_every = every
    t0 = time.perf_counter()
    wl.run(a, seed=0, **params)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="0,7,12")
    ap.add_argument("--loops", type=int, default=2000)
    ap.add_argument("--mask", type=lambda s: int(s, 0), default=7)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--full-too", action="store_true")
    args = ap.parse_args(argv)
    params = {"run_test_mask": args.mask, "test_loop_count": args.loops, "test_repeat_count": 1}
    print(f"test_vmalloc mask {args.mask:#x}, {args.loops} loops; full check every {args.every}")
    for stage in (int(s) for s in args.stages.split(",")):
        plain, inc, full = [], [], []
        for _ in range(args.reps):
            plain.append(_time(stage, params, None))
            inc.append(_time(stage, params, args.every))
            if args.full_too:
                full.append(_time(stage, params, 1))
        p, i = statistics.median(plain), statistics.median(inc)
        line = f"stage {stage:>2}: plain {p:7.2f} s  --debug {i:7.2f} s (x{i / p:.1f})"
        if full:
            f = statistics.median(full)
            line += f"  full check every op {f:7.2f} s (x{f / p:.1f})"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
