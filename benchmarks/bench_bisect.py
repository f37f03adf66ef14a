"""How long ``vmapsim bisect`` takes: a --metric and a --log bisect over a series' stages.

Runs, in this process, the bisects of docs/bisect.md's first two worked
examples on the default bisect workload (``mixed``, ``nr_ops=5000``) --
the struct-size one twice: as written (its expression reads only a property
of the built allocator, so no workload runs) and with ``and ops > 0``
added (which forces the workload run on every probe) -- each
--repeat times, and prints per bisect: the median and min wall time, the
steps (halving probes) and probes (steps + the two end checks), the answer,
and the seconds per probe.  Target: <= 10 s for a 4-step bisect over 13
stages.

While the ``maple`` series has fewer than 13 stages, a stand-in series
``bench`` is used: 13 copies of stage ``maple:0`` whose struct layout
shrinks at stage 4 (the --metric bisect answers 4).  The stand-in has no
stage that loses areas, so its --log bisect runs with --no-verify over a
pattern that never matches: every probe is good and the search walks to the
top in 4 steps.  Each probe costs what a stage-0 run costs.

    python benchmarks/bench_bisect.py [--repeat 3] [--nr-ops 5000] [--series maple|bench]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time

import vmapsim
from vmapsim.framework.registry import Registry, get_registry, load_registry
from vmapsim.kernel.layout import VMAP_AREA_MAPLE
from vmapsim.tools.bisect import BISECT_NR_OPS
from vmapsim.tools.bisect import run as bisect_run
from vmapsim.tools.cli import make_parser


class _StandIn:
    """13 copies of maple:0 (series ``bench``); the struct shrinks at stage 4."""

    @vmapsim.hookimpl
    def vmapsim_stages(self):
        base = get_registry().stage("maple:0")
        return [
            vmapsim.Stage(
                number=n,
                title=f"stand-in stage {n} (a copy of maple:0)",
                components=dict(base.components),
                layout=VMAP_AREA_MAPLE if n >= 4 else base.layout,
                features=dict(base.features),
                series="bench",
            )
            for n in range(13)
        ]


def cases(series: str, nr_ops: int) -> list[tuple[str, list[str]]]:
    common = ["--series", series, "--param", f"nr_ops={nr_ops}", "--json"]
    if series == "maple":
        return [
            ("metric", [*common, "--metric", "struct_vmap_area_size < 72"]),
            ("metric/op", [*common, "--metric", "struct_vmap_area_size < 72 and ops > 0"]),
            (
                "log",
                [
                    *common,
                    *("--good", "1", "--invert", "--log", "nonexistent vm area"),
                    *("--param", "nowait_pct=20", "--faults", "maple_node:probability=50"),
                ],
            ),
        ]
    return [
        ("metric", [*common, "--metric", "struct_vmap_area_size < 72"]),
        ("metric/op", [*common, "--metric", "struct_vmap_area_size < 72 and ops > 0"]),
        ("log", [*common, "--no-verify", "--log", "nonexistent vm area"]),
    ]


def one(registry: Registry, argv: list[str]) -> tuple[float, dict]:
    args = make_parser().parse_args(["bisect", *argv])
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        bisect_run(args, registry)
    return time.perf_counter() - t0, json.loads(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--nr-ops", type=int, default=BISECT_NR_OPS)
    p.add_argument("--series", choices=["maple", "bench"], default=None)
    ns = p.parse_args(argv)
    maple = [k for k in get_registry().stage_keys() if k.startswith("maple:")]
    series = ns.series or ("maple" if len(maple) >= 13 else "bench")
    registry = (
        get_registry() if series == "maple" else load_registry(plugins=[("bench", _StandIn())])
    )
    n = len([k for k in registry.stage_keys() if k.startswith(f"{series}:")])
    print(
        f"bisect over series {series} ({n} stages), workload mixed nr_ops={ns.nr_ops}, "
        f"median of {ns.repeat}"
        + ("" if series == "maple" else f" (maple has {len(maple)} stage(s): stand-in series)")
    )
    print(
        f"{'check':<8} {'median s':>9} {'min s':>7} {'steps':>6} {'probes':>7} {'s/probe':>8}  answer"
    )
    for name, case in cases(series, ns.nr_ops):
        times, data = [], {}
        for _ in range(ns.repeat):
            t, data = one(registry, case)
            times.append(t)
        med = statistics.median(times)
        probes = len(data["probes"])
        print(
            f"{name:<10} {med:>9.2f} {min(times):>7.2f} {data['steps']:>6} {probes:>7} "
            f"{med / max(probes, 1):>8.3f}  first bad: {data['first_bad']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
