"""A/B wall-clock of two source trees of the project, interleaved.

Two versions of the same packages cannot share one interpreter, so each
round runs one short child process per tree, alternating A, B, A, B, …; a
child imports ``vmapsim`` and the plugins from its tree (a directory of
symlinks put first on ``sys.path``), fills each stage with ``--live`` one-page
areas, and times ``--pairs`` one-page vmalloc+vfree pairs per stage (stages
interleaved inside the child too), reporting CPU time per pair
(``time.process_time``: less disturbed by other load on a shared machine than
wall time).  The summary is the median over rounds per tree and stage, the
B/A ratio, and each tree's ratio to stage 0 in the same child.

    git worktree add /tmp/base HEAD      # the "before" tree
    python benchmarks/ab_stages.py --a /tmp/base --b . [--stages 0,4,7]
        [--live 10000] [--pairs 2000] [--rounds 5] [--pattern pairs|busy]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import tomllib

CHILD = r"""
import gc, json, sys, time
import vmapsim
stages = [int(s) for s in sys.argv[1].split(",")]
live, pairs, pattern = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
P = vmapsim.PAGE_SIZE
subs = []
for s in stages:
    a = vmapsim.build(s)
    keep = [a.vmalloc(P) for _ in range(max(live, 15000) if pattern == "busy" else live)]
    subs.append((s, a, keep))
def run(a, n):
    vm, vf = a.vmalloc, a.vfree
    if pattern == "pairs":
        for _ in range(n):
            vf(vm(P))
    else:
        for _ in range(n):
            big = vm(100 * P); small = vm(P); vf(big); vf(small)
for _s, a, _k in subs:
    run(a, 1500)
out = {}
gc.disable()
for rep in range(3):
    for s, a, _k in subs:
        t0 = time.process_time()
        run(a, pairs)
        out.setdefault(s, []).append((time.process_time() - t0) / pairs * 1e6)
gc.enable()
print(json.dumps({s: sorted(v)[1] for s, v in out.items()}))
"""


def link_dir(tree: str) -> str:
    """A temporary directory of symlinks to ``tree``'s packages (its
    pyproject's ``package-dir``), to put first on ``sys.path``."""
    with open(os.path.join(tree, "pyproject.toml"), "rb") as fh:
        packages = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    d = tempfile.mkdtemp(prefix="ab_stages_")
    for name, rel in packages.items():
        os.symlink(os.path.abspath(os.path.join(tree, rel)), os.path.join(d, name))
    return d


def child(links: str, args: argparse.Namespace) -> dict[int, float]:
    env = dict(os.environ, PYTHONPATH=links)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, args.stages, str(args.live), str(args.pairs), args.pattern],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="the 'before' source tree")
    ap.add_argument("--b", default=".", help="the 'after' source tree")
    ap.add_argument("--stages", default="0,4,7")
    ap.add_argument("--live", type=int, default=10000)
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--pattern", default="pairs", choices=("pairs", "busy"))
    args = ap.parse_args(argv)
    trees = {"A": link_dir(args.a), "B": link_dir(args.b)}
    res: dict[str, dict[int, list[float]]] = {"A": {}, "B": {}}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            for s, v in child(trees[name], args).items():
                res[name].setdefault(s, []).append(v)
    stages = sorted(res["A"])
    print(f"{args.pattern}, {args.live} live, median of {args.rounds} rounds (CPU µs/pair)")
    print(f"{'stage':>5} {'A':>8} {'B':>8} {'B/A':>6} {'A/st0':>6} {'B/st0':>6}")
    for s in stages:
        a = statistics.median(res["A"][s])
        b = statistics.median(res["B"][s])
        a0 = statistics.median(res["A"][stages[0]])
        b0 = statistics.median(res["B"][stages[0]])
        print(f"{s:>5} {a:>8.2f} {b:>8.2f} {b / a:>6.3f} {a / a0:>6.2f} {b / b0:>6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
