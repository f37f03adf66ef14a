"""What one index update costs, rb-tree against maple tree, under the same flow state.

Fills stage 0 and stage 7 with ``--live`` one-page areas (as
``bench_stages.py``), then times, with the CPU clock and per call, the
component operations a one-page pair is made of, called directly (no flow):

* ``busy find_unlink + publish``: take a busy area out of the busy index and
  put it back (stage 0: rb erase + ``find_va_links`` insert with augment
  propagation; stage 7: the occupied tree's ``mtree_load`` + store of
  RESERVED, then a walk + store of the area: exact fits);
* ``lazy add + drop``: stage 0 an rb insert into the lazy tree and
  ``unlink``; stage 7 ``mtree_insert_range`` into the lazy maple tree and
  ``mtree_erase``;
* ``gap search``: the allocation-side search (stage 0
  ``find_vmap_lowest_match`` on the free rb-tree; stage 7
  ``mas_empty_area`` on the occupied tree), which changes nothing.

Counters move as usual (these are real operations); only time is reported.

    python benchmarks/bench_index_ops.py [--live 10000] [--n 3000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

import vmapsim

P = vmapsim.PAGE_SIZE


def timed(fn, n: int, repeat: int) -> float:
    """Median CPU µs per call of ``fn`` over ``repeat`` runs of ``n`` calls."""
    out = []
    gc.disable()
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        out.append((time.process_time() - t0) / n * 1e6)
    gc.enable()
    return statistics.median(out)


def subjects(live: int) -> dict[int, vmapsim.VmapAllocator]:
    out = {}
    for stage in (0, 7):
        a = vmapsim.build(stage)
        for _ in range(live):
            a.vmalloc(P)
        for _ in range(2000):
            a.vfree(a.vmalloc(P))
        out[stage] = a
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", type=int, default=10000)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    subs = subjects(args.live)
    rows = []
    for stage, a in subs.items():
        vn = a.vmap_nodes[0]
        busy, lazy = vn.busy, vn.lazy
        va = next(iter(busy))
        while va.va_start == a.vmalloc_start:  # any busy area but the first
            va = next(v for v in busy if v.va_start != a.vmalloc_start)

        def busy_cycle(busy=busy, va=va):
            busy.find_unlink(va.va_start)
            busy.publish(va, True)

        spare = vmapsim.VmapArea(a.vmalloc_end - 64 * P, a.vmalloc_end - 62 * P)

        if stage == 0:

            def lazy_cycle(lazy=lazy, spare=spare):
                lazy.add(spare)
                lazy.unlink_va(spare)
        else:

            def lazy_cycle(lazy=lazy, spare=spare):
                lazy.add(spare)
                lazy.tree.erase(spare.va_start)
                lazy._n -= 1

        if stage == 0:
            free = a.free

            def search(free=free, vs=a.vmalloc_start):
                free.find_vmap_lowest_match(2 * P, P, vs, False)
        else:
            occ = a.occupied

            def search(occ=occ, vs=a.vmalloc_start, ve=a.vmalloc_end):
                occ.find_lowest_fit(2 * P, P, vs, ve, False)
                occ._fit = None

        for name, fn in (
            ("busy find_unlink + publish", busy_cycle),
            ("lazy add + drop", lazy_cycle),
            ("gap search", search),
        ):
            rows.append((name, stage, timed(fn, args.n, args.repeat)))
    print(f"{args.live} live areas, CPU µs per call (median of {args.repeat} x {args.n})")
    print(f"{'operation':<28} {'stage 0 (rb)':>12} {'stage 7 (maple)':>16} {'ratio':>6}")
    for name in dict.fromkeys(r[0] for r in rows):
        t0 = next(t for n, s, t in rows if n == name and s == 0)
        t7 = next(t for n, s, t in rows if n == name and s == 7)
        print(f"{name:<28} {t0:>12.2f} {t7:>16.2f} {t7 / t0:>6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
