"""The cost of the debug kernel: CPU time with and without ``--debug-kernel``.

For stages 0 and 12 (``maple`` series) runs the ``mixed`` workload
(``nr_ops`` 20000, 4 CPUs) and test_vmalloc's ``fix_size_alloc_test``
(``run_test_mask=0x1``, 20000 loops) --repeat times each with ``build(debug_kernel=False)``
and ``build(debug_kernel=True)``, and prints the median process CPU time
(``time.process_time``) of each and their ratio (on / off).  A micro
benchmark adds the per-acquisition cost of the LockingMixin primitives
(a ``spin_lock``/``spin_unlock`` pair nested under another lock) with the
observer off and on: what every lock site costs once the flow's locks go
through the mixin (today's flow takes few of its locks there).

    python benchmarks/bench_debug_kernel.py [--repeat 5] [--nr-ops 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import vmapsim
from vmapsim.framework.registry import get_registry


def cpu_time(stage: int, workload: str, params: dict, debug_kernel: bool, cpus: int) -> float:
    a = vmapsim.build(stage, nr_cpus=cpus, debug_kernel=debug_kernel)
    wl = get_registry().workload(workload)
    t0 = time.process_time()
    wl.run(a, **params)
    return time.process_time() - t0


def lock_pairs(debug_kernel: bool, n: int) -> float:
    """CPU seconds per nested spin_lock/spin_unlock pair."""
    a = vmapsim.build(0, debug_kernel=debug_kernel)
    a.spin_lock("vmap_node.lazy.lock")
    t0 = time.process_time()
    for _ in range(n):
        a.spin_lock("free_vmap_area_lock")
        a.spin_unlock("free_vmap_area_lock")
    dt = time.process_time() - t0
    a.spin_unlock("vmap_node.lazy.lock")
    return dt / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--nr-ops", type=int, default=20000)
    args = ap.parse_args()
    runs = [
        ("mixed", {"seed": 0, "nr_ops": args.nr_ops}, 4),
        (
            "test_vmalloc",
            {"seed": 0, "run_test_mask": 0x1, "test_loop_count": 20000, "nr_threads": 1},
            1,
        ),
    ]
    print("| stage | workload | off: median CPU s | on: median CPU s | on/off |")
    print("|---|---|---|---|---|")
    for stage in (0, 12):
        for workload, params, cpus in runs:
            med = {}
            for dk in (False, True):
                times = []
                for _ in range(args.repeat):  # interleaving off/on would not change medians
                    times.append(cpu_time(stage, workload, params, dk, cpus))
                med[dk] = statistics.median(times)
            print(
                f"| {stage} | {workload} | {med[False]:.3f} | {med[True]:.3f} | "
                f"{med[True] / med[False]:.3f} |",
                flush=True,
            )
    n = 100_000
    off = statistics.median(lock_pairs(False, n) for _ in range(args.repeat))
    on = statistics.median(lock_pairs(True, n) for _ in range(args.repeat))
    print()
    print(
        f"nested spin_lock/spin_unlock pair: off {off * 1e9:.0f} ns, on {on * 1e9:.0f} ns "
        f"(x{on / off:.1f})"
    )


if __name__ == "__main__":
    main()
