"""A seeded driver that records an allocator's allocation trace (for the stage tests).

The trace is what a caller sees, in order: each allocation's address (or
None / the errno), and the allocator log's length after every step.  Two
stages whose traces are equal handed out the same addresses in the same
order and warned the same number of times.
"""

from __future__ import annotations

import random

import vmapsim
from vmapsim import PAGE_SIZE, VmapError

P = PAGE_SIZE


def run_trace(
    stage: int,
    *,
    seed: int,
    nr_ops: int = 600,
    nr_cpus: int = 4,
    big_align: bool = False,
    windows: bool = True,
    maintenance: bool = True,
    debug: bool = False,
) -> tuple[list[object], vmapsim.VmapAllocator]:
    """Drive ``stage`` with a seeded mix of the kernel's entry points.

    ``big_align`` lets aligned requests ask for more than PAGE_SIZE (where
    the stages may differ by design); otherwise every align is <= PAGE_SIZE.
    ``windows`` adds ``alloc_vmap_area`` calls in narrow ``[vstart, vend)``
    windows; ``maintenance`` adds ``vm_unmap_aliases()``, the shrinker and
    explicit purges.
    """
    rng = random.Random(seed)
    a = vmapsim.build(stage, nr_cpus=nr_cpus, seed=seed, debug=debug)
    vs, ve = a.vmalloc_start, a.vmalloc_end
    win_lo = vs + (1 << 30)
    win_hi = win_lo + 4096 * P
    live: list[int] = []
    areas: list[vmapsim.VmapArea] = []
    out: list[object] = []
    for _ in range(nr_ops):
        cpu = rng.randrange(nr_cpus)
        r = rng.random()
        if r < 0.30 and live:
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            a.vfree(live.pop(), cpu=cpu)
            out.append(("vfree", len(a.log)))
        elif r < 0.35 and areas:
            va = areas.pop(rng.randrange(len(areas)))
            a.free_vmap_area_noflush(va)
            out.append(("free_va", len(a.log)))
        elif r < 0.45 and windows:
            size = rng.randint(1, 64) * P
            align = rng.choice([1, P]) if not big_align else P << rng.randint(0, 6)
            try:
                va = a.alloc_vmap_area(size, align, win_lo, win_hi, cpu=cpu)
            except VmapError as exc:
                out.append(("va", exc.errno))
            else:
                areas.append(va)
                out.append(("va", va.va_start))
        elif r < 0.55:
            align = rng.choice([1, 8, P]) if not big_align else P << rng.randint(1, 8)
            addr = a.vmalloc_node(rng.randint(1, 40) * P, align, cpu=cpu)
            out.append(("node", addr))
            if addr is not None:
                live.append(addr)
        elif r < 0.58 and maintenance:
            choice = rng.randrange(3)
            if choice == 0:
                a.vm_unmap_aliases()
            elif choice == 1:
                a.vmap_node_shrink_scan()
            else:
                a.purge_vmap_area_lazy()
            out.append(("maint", choice, len(a.log)))
        else:
            pages = rng.choice([1, 1, 2, 3, 4, 8, 16, rng.randint(1, 300), rng.randint(300, 3000)])
            addr = a.vmalloc(pages * P - rng.choice([0, 0, 100]), cpu=cpu)
            out.append(("vmalloc", addr))
            if addr is not None:
                live.append(addr)
    assert vs < ve
    return out, a
