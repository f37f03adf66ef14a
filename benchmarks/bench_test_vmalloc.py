"""test_vmalloc at stage 0 and the highest registered stage, and what compare saves.

Three parts, one JSON document on stdout (or --output):

* ``sets``: the default set (run_test_mask 7) and the full set (--full-mask,
  default 0xFFF) run in-process at stage 0 and at the highest stage that
  ``vmapsim stages`` lists: per subtest the kernel's avg usec, modeled
  cycles and counters, and the run's wall clock;
* ``cli_run``: wall clock of ``vmapsim run --mask <full> --mode <mode>`` per
  stage (a fresh process each, as a user runs it; target < 60 s);
* ``compare``: wall clock of ``vmapsim compare 0 N --mode <mode>`` (stages in
  parallel processes) against the two stages' ``vmapsim run``s one after the
  other (target ratio <= 0.6 on two cores).

    python benchmarks/bench_test_vmalloc.py [--mode smoke] [--full-mask 0xFFF]
        [--test-loop-count N] [--skip-cli] [--output FILE.json]

Timings are wall clock on a shared machine: read them as ratios in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import vmapsim
from vmapsim.framework.registry import get_registry


def stages_to_run() -> list[str]:
    """Stage 0 and the highest stage of the default series."""
    reg = get_registry()
    first = reg.stage(0)
    same = [k for k in reg.stage_keys() if reg.stages[k].series == first.series]
    top = max(same, key=lambda k: reg.stages[k].number)
    return [first.key] if top == first.key else [first.key, top]


def run_set(stage: str, mask: int, mode: str, extra: dict[str, int]) -> dict[str, Any]:
    reg = get_registry()
    a = vmapsim.build(stage)
    t0 = time.perf_counter()
    rep = reg.workload("test_vmalloc").run(a, mode=mode, run_test_mask=mask, **extra)
    wall = time.perf_counter() - t0
    (w,) = rep.workers[:1]
    return {
        "stage": stage,
        "mask": hex(mask),
        "wall_s": wall,
        "module_params": rep.module_params,
        "cycles": w.cycles,
        "tests": {
            t["name"]: {
                "passed": t["passed"],
                "failed": t["failed"],
                "xfailed": t["xfailed"],
                "avg_usec": t["avg_usec"],
                "cycles": t["cycles"],
                "counters": t["counters"],
            }
            for t in w.tests
        },
    }


def timed(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vmapsim", *argv],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=os.getcwd(),
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", default="smoke", choices=["smoke", "performance", "stress"])
    ap.add_argument("--full-mask", type=lambda s: int(s, 0), default=0xFFF)
    ap.add_argument(
        "--test-loop-count", type=int, default=None, help="override the mode's loop count"
    )
    ap.add_argument("--test-repeat-count", type=int, default=None)
    ap.add_argument("--skip-cli", action="store_true", help="only the in-process sets")
    ap.add_argument("--output", default=None)
    args = ap.parse_args(argv)
    extra = {
        k: v
        for k, v in (
            ("test_loop_count", args.test_loop_count),
            ("test_repeat_count", args.test_repeat_count),
        )
        if v is not None
    }
    stages = stages_to_run()
    doc: dict[str, Any] = {
        "stages": stages,
        "mode": args.mode,
        "overrides": extra,
        "cpu_count": os.cpu_count(),
        "sets": [],
    }
    for mask in (7, args.full_mask):
        for stage in stages:
            res = run_set(stage, mask, args.mode, extra)
            doc["sets"].append(res)
            print(f"set {res['mask']:>6} {stage:<10} {res['wall_s']:8.2f} s", file=sys.stderr)
    if not args.skip_cli:
        cli_extra = [f"--{k.replace('_', '-')}={v}" for k, v in extra.items()]
        mask = hex(args.full_mask)
        doc["cli_run"] = {}
        for stage in stages:
            secs = timed(["run", "--stage", stage, "--mask", mask, "--mode", args.mode, *cli_extra])
            doc["cli_run"][stage] = secs
            print(f"vmapsim run --stage {stage} --mask {mask}: {secs:.2f} s", file=sys.stderr)
        serial = sum(doc["cli_run"].values())
        # one repetition, as the serial runs (compare's default is 3)
        par = timed(
            ["compare", *stages, "--mask", mask, "--mode", args.mode, "--reps", "1", *cli_extra]
        )
        doc["compare"] = {
            "stages": stages,
            "compare_s": par,
            "serial_runs_s": serial,
            "ratio": par / serial if serial else None,
        }
        print(f"compare {' '.join(stages)}: {par:.2f} s vs {serial:.2f} s serial", file=sys.stderr)
    text = json.dumps(doc, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
