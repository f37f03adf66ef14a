"""``vmapsim sweep``'s executors on one 24-cell grid: wall time and parallel efficiency.

The grid: stages 0, 7, 12 x seeds 1..4 x nr_cpus 1, 2 (24 cells), each cell
fix_size_alloc_test and full_fit_alloc_test with ``--loops`` loop
iterations, once.  It runs, each into a fresh results folder, on

- ``serial`` (the reference, in this process),
- ``processes`` with ``--workers`` workers (standard-library pool),
- ``dask``: a LocalCluster of ``--workers`` worker processes (needs the
  ``dask`` extra; skipped without it),

and prints per executor the wall time (executor start-up included), the
speed-up over serial, the parallel efficiency ``serial / (workers x
wall)`` (the issue's target: >= 0.8 at 2 workers), and whether its table
equals the serial one (every column but wall time).  Measured, not
asserted: the numbers depend on what else the machine runs.

    python benchmarks/bench_sweep.py [--loops 20000] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from typing import Any

from vmapsim.framework.registry import get_registry
from vmapsim.tools.sweep.cells import WALL_COLUMNS
from vmapsim.tools.sweep.executors import make_executor
from vmapsim.tools.sweep.grid import make_grid
from vmapsim.tools.sweep.runner import prepare, run_sweep


def grid(loops: int) -> Any:
    """The 24-cell grid."""
    return make_grid(
        stages="0,7,12",
        seeds="1..4",
        nr_cpus="1,2",
        masks=0x3,
        params={"test_loop_count": loops, "test_repeat_count": 1},
    )


def run_one(executor_name: str, workers: int, loops: int) -> dict[str, Any]:
    """One sweep of the grid into a fresh folder; its wall time and table."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        plan = prepare(grid(loops), tmp, get_registry())
        executor = make_executor(executor_name, jobs=workers)
        t0 = time.perf_counter()
        report = run_sweep(plan, executor, progress_stream=io.StringIO())
        wall = time.perf_counter() - t0
    if report.failed or report.interrupted:
        raise SystemExit(f"{executor_name}: {len(report.failed)} cells failed: {report.failed}")
    cell_s = sum(r["wall_s"] for r in report.rows)
    table = [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in report.rows]
    return {
        "executor": executor_name,
        "workers": 1 if executor_name == "serial" else workers,
        "cells": len(plan.cells),
        "rows": len(report.rows),
        "wall_s": wall,
        "subtest_wall_s": cell_s,
        "table": table,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loops", type=int, default=20000, help="test_loop_count per subtest")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    runs = [run_one("serial", 1, args.loops), run_one("processes", args.workers, args.loops)]
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("dask: skipped (install the 'dask' extra)")
    else:
        runs.append(run_one("dask", args.workers, args.loops))
    base = runs[0]
    for r in runs:
        r["speedup"] = base["wall_s"] / r["wall_s"]
        r["efficiency"] = r["speedup"] / r["workers"]
        r["same_table"] = r["table"] == base["table"]
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "table"} for r in runs], indent=2))
        return 0
    print(
        f"24-cell grid (stages 0,7,12 x seeds 1..4 x nr_cpus 1,2; fix_size + full_fit, "
        f"{args.loops} loops), {os.cpu_count()} CPUs"
    )
    print(
        f"{'executor':<10} {'workers':>7} {'wall s':>8} {'subtests s':>10} {'speed-up':>8} "
        f"{'efficiency':>10}  same table"
    )
    for r in runs:
        print(
            f"{r['executor']:<10} {r['workers']:>7} {r['wall_s']:8.2f} {r['subtest_wall_s']:10.2f} "
            f"{r['speedup']:8.2f} {r['efficiency']:10.2f}  {r['same_table']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
