"""How long ``vmapsim replay vmallocinfo`` takes to parse a snapshot and build its state.

Generates a synthetic ``/proc/vmallocinfo`` of --lines lines
(``vmapsim.tools.replay.generate``, seeded; x86_64 by default), then times,
--repeat times per stage, what the command does before any workload:
read the text (from memory), parse it, check the plan (window, overlaps),
build the stage's allocator and place every area through the kernel
model's paths.  Prints per stage the median and min wall time, split into
parse+plan and build+place, and the areas placed.  Target (issue #23):
under 2 s for 2,000 lines at stage 0.

    python benchmarks/bench_replay.py [--lines 2000] [--repeat 5] [--stages 0,7,12] [--arch x86_64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from vmapsim.framework.api import build
from vmapsim.tools.replay import infer_arch, parse_vmallocinfo, plan_snapshot, rebuild
from vmapsim.tools.replay.generate import generate_vmallocinfo


def one(text: str, stage: str) -> tuple[float, float, int]:
    """One replay: (parse+plan seconds, build+place seconds, areas placed)."""
    t0 = time.perf_counter()
    snap = parse_vmallocinfo(text.splitlines())
    arch, _reason = infer_arch(snap.records)
    plan = plan_snapshot(snap.records, arch)
    t1 = time.perf_counter()
    alloc = build(stage, arch=arch.name)
    res = rebuild(alloc, plan)
    t2 = time.perf_counter()
    if snap.problems or plan.problems or res.problems:  # pragma: no cover - a generator bug
        raise SystemExit(f"the generated file did not replay cleanly: {res.problems[:3]}")
    return t1 - t0, t2 - t1, res.nr_placed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--stages", default="0,7,12")
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    text = generate_vmallocinfo(args.lines, arch=args.arch, seed=args.seed)
    one(text, "0")  # warm up: imports, the registry, plugin loading
    print(f"replay vmallocinfo: {args.lines} lines ({args.arch}), {args.repeat} runs per stage")
    print(f"{'stage':>6} {'median s':>9} {'min s':>8} {'parse s':>8} {'build s':>8} {'areas':>6}")
    for stage in args.stages.split(","):
        runs = [one(text, stage.strip()) for _ in range(args.repeat)]
        totals = [a + b for a, b, _ in runs]
        print(
            f"{stage:>6} {statistics.median(totals):9.3f} {min(totals):8.3f} "
            f"{statistics.median(a for a, _, _ in runs):8.3f} "
            f"{statistics.median(b for _, b, _ in runs):8.3f} {runs[0][2]:>6}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
