"""Which debug-kernel reports each stage produces: the docs/debug-kernel.md table.

Runs every stage of the ``maple`` series with the debug kernel on
(``build(debug_kernel=True)``: lockdep, might_sleep, KASAN, UBSAN) over
test_vmalloc's series sweep (``run_test_mask=0xFFF``, ``test_loop_count`` shortened) and
the ``mixed`` workload, on both arches, several seeds and CPU counts (the
test_vmalloc runs on one CPU by default: with 4 threads a 0xFFF cell costs
about 25 s of CPU), and
prints per stage the reports' first lines (distinct, with how many cells
showed them) as a markdown table.

    python benchmarks/debug_kernel_sweep.py [--loops 10] [--mixed-ops 5000] [--seeds 0,1]
        [--cpus 1,4] [--tv-cpus 1] [--stages 0-12]
"""

from __future__ import annotations

import argparse
from collections import Counter

import vmapsim
from vmapsim.checking.debug_kernel import debug_kernel_counts, kernel_reports
from vmapsim.framework.registry import get_registry


def cell(
    stage: int, workload: str, arch: str, seed: int, cpus: int, loops: int, mixed_ops: int
) -> list[str]:
    """The kernel reports' first lines of one run."""
    a = vmapsim.build(stage, arch=arch, nr_cpus=cpus, seed=seed, debug_kernel=True)
    wl = get_registry().workload(workload)
    if workload == "test_vmalloc":
        wl.run(
            a,
            seed=seed,
            run_test_mask=0xFFF,
            test_loop_count=loops,
            nr_threads=cpus,
            nr_pcpu_objects=loops,
        )
    else:
        wl.run(a, seed=seed, nr_ops=mixed_ops)
    counts = debug_kernel_counts(a)
    assert counts["reports"] == len(kernel_reports(a.log))
    return kernel_reports(a.log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", type=int, default=10, help="test_loop_count")
    ap.add_argument("--mixed-ops", type=int, default=5000, help="nr_ops of the mixed runs")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--cpus", default="1,4", help="nr_cpus of the mixed runs")
    ap.add_argument(
        "--tv-cpus", default="1", help="nr_cpus (= nr_threads) of the test_vmalloc runs"
    )
    ap.add_argument("--stages", default="0-12")
    args = ap.parse_args()
    lo, _, hi = args.stages.partition("-")
    stages = range(int(lo), int(hi or lo) + 1)
    seeds = [int(s) for s in args.seeds.split(",")]
    cpus = {
        "mixed": [int(c) for c in args.cpus.split(",")],
        "test_vmalloc": [int(c) for c in args.tv_cpus.split(",")],
    }
    print("| stage | cells | reports (first line: cells showing it) |")
    print("|---|---|---|")
    for st in stages:
        seen: Counter[str] = Counter()
        n = 0
        for workload in ("test_vmalloc", "mixed"):
            for arch in ("x86_64", "arm64"):
                for seed in seeds:
                    for c in cpus[workload]:
                        n += 1
                        for line in set(
                            cell(st, workload, arch, seed, c, args.loops, args.mixed_ops)
                        ):
                            seen[line] += 1
        text = "; ".join(f"`{k}`: {v}" for k, v in sorted(seen.items())) or "none"
        print(f"| {st} | {n} | {text} |", flush=True)


if __name__ == "__main__":
    main()
