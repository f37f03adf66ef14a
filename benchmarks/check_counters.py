"""Guard for performance work: the cost model's counters must not move.

Runs ``vmapsim run --stage N --json`` for every stage (the default
test_vmalloc smoke run, the series' whole base mask 0xFFF with shorter loops
on one and on two workers, and the ``mixed`` workload at a size that grows
deeper trees) and the one-page pair / long_busy_list
patterns of ``bench_stages.py`` at a few thousand live areas, and records every
counter (wall-clock fields dropped).  ``--save FILE`` writes the snapshot;
``--check FILE`` compares against one and exits 1 naming each difference.

    python benchmarks/check_counters.py --save /tmp/counters.json   # before
    python benchmarks/check_counters.py --check /tmp/counters.json  # after
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
from typing import Any

import vmapsim
from vmapsim.tools.cli import main as cli_main

P = vmapsim.PAGE_SIZE
_BASE_MASK = ("--mask", "0xFFF", "--test-repeat-count", "1")
RUNS = (
    (),
    (*_BASE_MASK, "--test-loop-count", "2000", "--seed", "1"),
    (*_BASE_MASK, "--test-loop-count", "500", "--nr-pcpu-objects", "5000", "--nr-threads", "2"),
    ("--workload", "mixed", "--param", "nr_ops=30000", "--param", "max_live=6000", "--seed", "3"),
)


#: wall-clock fields of a run's JSON (test_vmalloc's per-subtest times too)
_CLOCK_KEYS = frozenset({"elapsed_s", "time_s", "avg_usec"})
_AVG_USEC = re.compile(r"avg: \d+ usec")


def drop_clock(obj: Any) -> Any:
    """``obj`` without its wall-clock fields (test_vmalloc's summary lines say
    ``avg: - usec``)."""
    if isinstance(obj, dict):
        return {k: drop_clock(v) for k, v in obj.items() if k not in _CLOCK_KEYS}
    if isinstance(obj, list):
        return [drop_clock(v) for v in obj]
    if isinstance(obj, str):
        return _AVG_USEC.sub("avg: - usec", obj)
    return obj


def cli_counters(stage: int, extra: tuple[str, ...]) -> dict:
    """The JSON of one ``vmapsim run``, minus its wall-clock fields."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["run", "--stage", str(stage), "--json", *extra])
    if rc:
        raise SystemExit(f"vmapsim run --stage {stage} {' '.join(extra)} failed ({rc})")
    return drop_clock(json.loads(buf.getvalue()))


def pattern_counters(stage: int, live: int, pattern: str) -> dict:
    """Counters of the benchmark's patterns after filling ``live`` areas."""
    a = vmapsim.build(stage)
    areas = [a.vmalloc(P) for _ in range(live)]
    for _ in range(1500):
        if pattern == "pairs":
            a.vfree(a.vmalloc(P))
        else:
            big = a.vmalloc(100 * P)
            small = a.vmalloc(P)
            a.vfree(big)
            a.vfree(small)
    for addr in areas[::3]:
        a.vfree(addr)
    return a.metrics.snapshot()


def snapshot(stages: list[int]) -> dict:
    out: dict = {}
    for s in stages:
        for i, extra in enumerate(RUNS):
            out[f"cli:{s}:{i}"] = cli_counters(s, extra)
        for pattern in ("pairs", "busy"):
            out[f"{pattern}:{s}"] = pattern_counters(s, 3000, pattern)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stages", default="0,1,2,3,4,5,6,7,8,9,10,11,12")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--save")
    g.add_argument("--check")
    args = ap.parse_args(argv)
    stages = [int(s) for s in args.stages.split(",")]
    snap = snapshot(stages)
    if args.save:
        with open(args.save, "w") as fh:
            json.dump(snap, fh, indent=1, sort_keys=True)
        print(f"saved {len(snap)} runs to {args.save}")
        return 0
    with open(args.check) as fh:
        ref = drop_clock(json.load(fh))  # snapshots saved before wall clock was dropped
    bad = 0
    for key in sorted(set(ref) | set(snap)):
        if ref.get(key) != snap.get(key):
            bad += 1
            a, b = ref.get(key) or {}, snap.get(key) or {}
            diffs = {
                k: (a.get(k), b.get(k))
                for k in set(a) | set(b)
                if a.get(k) != b.get(k) and k != "metrics"
            }
            am, bm = a.get("metrics", a), b.get("metrics", b)
            if isinstance(am, dict) and isinstance(bm, dict):
                diffs.update(
                    {
                        f"metrics.{k}": (am.get(k), bm.get(k))
                        for k in set(am) | set(bm)
                        if am.get(k) != bm.get(k)
                    }
                )
            print(f"DIFF {key}: {diffs}")
    print(f"{len(snap)} runs, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
