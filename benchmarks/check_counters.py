"""Guard for performance work: the cost model's counters must not move.

Runs ``vmapsim run --stage N --json`` for every stage 0..12: the default
workload (test_vmalloc) with every subtest of the series' base mask (0xFFF,
shortened loops), once with one worker and once with two, and the ``mixed``
workload at a size that grows deeper trees; plus the one-page pair /
long_busy_list patterns of ``bench_stages.py`` at a few thousand live areas.
Records every counter, modeled cycle count and log line (wall-clock fields
dropped: ``elapsed_s``, ``avg_usec``, ``time_s`` and the ``avg: … usec`` of
the summary lines).  ``--save FILE`` writes the snapshot;
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

import vmapsim
from vmapsim.cli import main as cli_main

P = vmapsim.PAGE_SIZE
RUNS = (
    # test_vmalloc (the default workload): all twelve subtests, short loops
    ("--mask", "0xFFF", "--test-loop-count", "100", "--test-repeat-count", "1"),
    ("--mask", "0xFFF", "--test-loop-count", "40", "--nr-threads", "2", "--seed", "3"),
    # the mixed workload, large enough for deeper trees
    ("--workload", "mixed", "--param", "nr_ops=30000", "--param", "max_live=6000", "--seed", "3"),
)
WALL_CLOCK = ("elapsed_s", "avg_usec", "time_s")
_AVG = re.compile(r" avg: \d+ usec")


def _drop_wall_clock(obj: object) -> object:
    """``obj`` without its wall-clock fields (at any depth)."""
    if isinstance(obj, dict):
        return {k: _drop_wall_clock(v) for k, v in obj.items() if k not in WALL_CLOCK}
    if isinstance(obj, list):
        return [_drop_wall_clock(v) for v in obj]
    if isinstance(obj, str):
        return _AVG.sub("", obj)
    return obj


def cli_counters(stage: int, extra: tuple[str, ...]) -> dict:
    """The JSON of one ``vmapsim run``, minus its wall-clock fields."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["run", "--stage", str(stage), "--json", *extra])
    if rc:
        raise SystemExit(f"vmapsim run --stage {stage} {' '.join(extra)}: exit status {rc}")
    return _drop_wall_clock(json.loads(buf.getvalue()))  # type: ignore[return-value]


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
    ap.add_argument("--stages", default=",".join(str(s) for s in range(13)))
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
        ref = json.load(fh)
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
