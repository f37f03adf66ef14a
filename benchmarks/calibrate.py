"""Calibrate the modelled-time cost table on published test_vmalloc figures.

The hardware entries of :mod:`vmapsim.cost.timing`'s tables are fixed from
their sources; two entries are fitted here, by least squares (non-negative),
on published **single-thread** test_vmalloc figures of an **unpatched**
kernel (never on any figure of the series the model reproduces):

* ``call_ns``: ns per ``vmalloc()`` and per ``vfree()`` call for the work the
  model does not count (``__vmalloc_node_range()``'s wrapper work, the
  ``vm_struct``, the page-array loop's control flow, ``vfree()``'s checks,
  the test's own loop);
* ``page_ns``: ns per mapped page beyond the fixed per-page entries (page
  allocator slow paths, memcg/page accounting, the page-table walk of a
  large area).

Why those two: the published figures span 1 to 101 pages per loop, so
a per-call and a per-page term are what they can tell apart; everything
else in the table comes from hardware sources, and with five data points
two free parameters leave three degrees of freedom to judge the fit by.

Data (``PUBLISHED``): U. Rezki (the driver's author), lkml, 14 Dec 2020, "Re: [PATCH]
mm/vmalloc: Fix unlock order in s_stop()", Message-ID
<20201214175640.GA20756@pc638.lan>: ``test_vmalloc.sh run_test_mask=31
single_cpu_test=1`` on the RB-tree kernel of the day (v5.10-rc, augmented
free tree since v5.2), 1,000,000 loops, one repeat.  At that time
fix_size_alloc_test allocated 3 pages (the ``nr_pages`` parameter came in
v5.13), so the model runs it with ``nr_pages=3``.

Check (``PUBLISHED_2019``, not fitted): the test driver's own commit
message (lib/test_vmalloc.c, "vmalloc: add test driver to analyse vmalloc
allocator", RFC v3 2019-01-02, merged for v5.1): single CPU, sequential
order, 3 repeats, on a v4.20 kernel *without* the augmented free tree (a
list walk from a cached hole), on a 2.59 GHz machine (192,945,605,995
cycles over 3 x 24.79 s): shown for scale only; the model's stage 0 is not
that allocator.

Method: stage 0, 1 CPU, one worker, sequential order; each subtest run
alone on a fresh allocator at two loop counts; counters are linear in the
loops (set-up once, then a constant per loop), so ``c(1,000,000) = c(L1) +
(1,000,000 - L1) * (c(L2) - c(L1)) / (L2 - L1)`` -- the kernel's ``avg``
includes the set-up once per 1,000,000 loops, so does the prediction.

    python benchmarks/calibrate.py [--loops 20000,60000] [--cache] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import vmapsim
from vmapsim.cost.cache import CacheConfig, CacheModel
from vmapsim.cost.timing import X86_64, CostTable, modelled_ns
from vmapsim.framework.registry import get_registry

#: published avg usec per 1,000,000 loops (see the module docstring)
PUBLISHED: dict[str, int] = {
    "fix_size_alloc_test": 429_836,
    "full_fit_alloc_test": 566_042,
    "long_busy_list_alloc_test": 7_663_974,
    "random_size_alloc_test": 3_853_388,
    "fix_align_alloc_test": 1_370_097,
}
PUBLISHED_2019: dict[str, int] = {
    "fix_size_alloc_test": 901_177,
    "full_fit_alloc_test": 1_039_341,
    "long_busy_list_alloc_test": 11_775_763,
    "random_size_alloc_test": 6_081_992,
    "fix_align_alloc_test": 2_003_712,
}
SOURCE = "Rezki, lkml 2020-12-14, <20201214175640.GA20756@pc638.lan>"
#: module parameters that make today's subtests the 2020 ones
PARAMS: dict[str, dict[str, int]] = {"fix_size_alloc_test": {"nr_pages": 3}}
PER_LOOPS = 1_000_000


def subtest_counters(name: str, loops: int, arch: str, cache: bool = False) -> dict[str, int]:
    """Counters of subtest ``name`` run alone for ``loops`` loops at stage 0, 1 CPU
    (with ``cache``, the platform's cache model attached: cache outcomes are
    priced instead of counted lines)."""
    reg = get_registry()
    a = vmapsim.build(0, nr_cpus=1, arch=arch)
    if cache:
        a.metrics.set_cache(CacheModel(1, CacheConfig.for_arch(arch)))
    rep = reg.workload("test_vmalloc").run(
        a,
        tests=name,
        test_loop_count=loops,
        nr_threads=1,
        sequential_test_order=1,
        **PARAMS.get(name, {}),
    )
    (t,) = rep.workers[0].tests
    if t["failed"]:
        raise RuntimeError(f"{name} failed at stage 0")
    return dict(t["counters"])


def extrapolate(c1: dict[str, int], c2: dict[str, int], l1: int, l2: int) -> dict[str, float]:
    """Counters at PER_LOOPS loops, linear through the two runs."""
    out: dict[str, float] = {}
    for k in set(c1) | set(c2):
        a, b = c1.get(k, 0), c2.get(k, 0)
        out[k] = a + (PER_LOOPS - l1) * (b - a) / (l2 - l1)
    return out


def fit(
    rows: list[tuple[float, float, float, float]],
) -> tuple[float, float]:
    """Non-negative least squares of ``y = fixed + x1 * call + x2 * page``
    over rows ``(y, fixed, x1, x2)`` (two unknowns: solve, and if one comes
    out negative, fix it at 0 and solve for the other)."""

    def solve1(col: int) -> float:
        num = sum(r[col] * (r[0] - r[1]) for r in rows)
        den = sum(r[col] ** 2 for r in rows)
        return max(num / den, 0.0) if den else 0.0

    s11 = sum(r[2] * r[2] for r in rows)
    s22 = sum(r[3] * r[3] for r in rows)
    s12 = sum(r[2] * r[3] for r in rows)
    t1 = sum(r[2] * (r[0] - r[1]) for r in rows)
    t2 = sum(r[3] * (r[0] - r[1]) for r in rows)
    det = s11 * s22 - s12 * s12
    if det:
        call = (t1 * s22 - t2 * s12) / det
        page = (s11 * t2 - s12 * t1) / det
        if call >= 0 and page >= 0:
            return call, page
    call1, page2 = solve1(2), solve1(3)
    # the better of the two one-parameter fits
    sse_call = sum((r[0] - r[1] - call1 * r[2]) ** 2 for r in rows)
    sse_page = sum((r[0] - r[1] - page2 * r[3]) ** 2 for r in rows)
    return (call1, 0.0) if sse_call <= sse_page else (0.0, page2)


def calibrate(
    loops: tuple[int, int], arch: str, base: CostTable, cache: bool = False
) -> dict[str, Any]:
    l1, l2 = loops
    counters: dict[str, dict[str, float]] = {}
    for name in PUBLISHED:
        c1 = subtest_counters(name, l1, arch, cache)
        c2 = subtest_counters(name, l2, arch, cache)
        counters[name] = extrapolate(c1, c2, l1, l2)
    zero = base.with_fit(call_ns=0.0, page_ns=0.0, calibration="fixed entries only")
    rows = []
    for name, us in PUBLISHED.items():
        c = counters[name]
        fixed_ns = modelled_ns(c, zero)["total"]  # type: ignore[arg-type]
        calls = c.get("alloc_calls", 0) + c.get("free_calls", 0)
        rows.append((us * 1000.0, fixed_ns, calls, c.get("pages_mapped", 0)))
    call_ns, page_ns = fit(rows)
    table = base.with_fit(
        call_ns=round(call_ns, 2),
        page_ns=round(page_ns, 2),
        calibration=f"fitted on {SOURCE} (benchmarks/calibrate.py)",
    )
    result: dict[str, Any] = {
        "arch": arch,
        "cache_model": cache,
        "loops": list(loops),
        "call_ns": table.call_ns,
        "page_ns": table.page_ns,
        "subtests": {},
    }
    sse = 0.0
    for name, us in PUBLISHED.items():
        c = counters[name]
        parts = modelled_ns(c, table)  # type: ignore[arg-type]
        pred = parts["total"] / 1000.0
        sse += (pred - us) ** 2
        result["subtests"][name] = {
            "published_us": us,
            "predicted_us": round(pred),
            "residual_us": round(pred - us),
            "residual_pct": round(100.0 * (pred - us) / us, 1),
            "parts_us": {k: round(v / 1000.0) for k, v in parts.items() if k != "total"},
            "per_loop": {
                k: round(c.get(k, 0) / PER_LOOPS, 2)
                for k in (
                    "alloc_calls",
                    "pages_mapped",
                    "cache_lines",
                    "nodes_visited",
                    "va_allocs",
                    "tlb_flushes",
                )
            },
            "published_2019_us": PUBLISHED_2019.get(name),
        }
    result["rms_residual_us"] = round((sse / len(PUBLISHED)) ** 0.5)
    return result


def print_report(r: dict[str, Any]) -> None:
    how = "cache model on" if r["cache_model"] else "no cache model: lines at line_ns"
    print(f"calibration of {r['arch']} on {SOURCE}; stage 0, 1 CPU, loops {r['loops']}; {how}")
    print(f"fitted: call_ns = {r['call_ns']} ns per vmalloc()/vfree(), page_ns = {r['page_ns']}")
    print()
    print(
        "| subtest | published µs | predicted µs | residual | cache | tree | locks | slab "
        "| pages | tlb | calls | 2019 table µs (not fitted) |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, s in r["subtests"].items():
        p = s["parts_us"]
        print(
            f"| {name} | {s['published_us']:,} | {s['predicted_us']:,} | "
            f"{s['residual_us']:+,} ({s['residual_pct']:+.1f} %) | {p['cache']:,} | "
            f"{p['tree']:,} | {p['locks']:,} | {p['slab']:,} | {p['pages']:,} | {p['tlb']:,} | "
            f"{p['calls']:,} | {s['published_2019_us']:,} |"
        )
    print()
    print(f"rms residual: {r['rms_residual_us']:,} µs")
    print()
    print("per loop (model counters at 1,000,000 loops / 1,000,000):")
    for name, s in r["subtests"].items():
        print(f"  {name}: " + ", ".join(f"{k}={v}" for k, v in s["per_loop"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", default="20000,60000", help="two loop counts L1,L2 (L1 < L2)")
    ap.add_argument("--arch", choices=("x86_64",), default="x86_64")
    ap.add_argument("--json", help="also write the result to this file")
    ap.add_argument(
        "--cache",
        action="store_true",
        help="attach the cache model (meaningful once every charge is a touch)",
    )
    args = ap.parse_args(argv)
    try:
        l1, l2 = (int(x) for x in args.loops.split(","))
    except ValueError:
        print("calibrate.py: --loops: give two integers, L1,L2", file=sys.stderr)
        return 2
    if not 0 < l1 < l2:
        print("calibrate.py: --loops: need 0 < L1 < L2", file=sys.stderr)
        return 2
    r = calibrate((l1, l2), args.arch, X86_64, args.cache)
    print_report(r)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
