"""Modeled cycles: the ``get_cycles()`` the kernel's workers report, from the cost model.

The model has no CPU to read a cycle counter from, so ``All test took
worker<i>=<N> cycles`` reports a fixed weighting of the cost-model counters
a worker's steps added (docs/cost-model.md).  The weights are round numbers
of the right order for a modern x86 core (an uncontended spin lock ≈ 20
cycles, a cache line from L2/L3 ≈ 30, a slab allocation ≈ 60, a kernel TLB
range flush ≈ 1000); they are **not calibrated**.  What they give is a
deterministic number: the same stage, parameters and seed always print the
same cycles, and two stages differ only where their counters do.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["CYCLE_WEIGHTS", "LOCK_CYCLES", "modeled_cycles"]

#: cycles charged per unit of each counter
CYCLE_WEIGHTS: dict[str, int] = {
    "alloc_calls": 100,
    "free_calls": 100,
    "walks": 10,
    "stores": 20,
    "nodes_visited": 4,
    "comparisons": 1,
    "cache_lines": 30,
    "list_ops": 4,
    "augment_updates": 6,
    "rotations": 10,
    "node_allocs": 60,
    "node_frees": 60,
    "splits": 40,
    "merges": 40,
    "rebalances": 40,
    "gap_updates": 4,
    "va_allocs": 60,
    "va_frees": 60,
    "lazy_frees": 10,
    "purges": 200,
    "tlb_flushes": 1000,
    "pool_hits": 10,
    "pool_misses": 10,
    "alloc_failures": 100,
    "alloc_retries": 100,
}
#: cycles per lock acquisition (any lock)
LOCK_CYCLES = 20


def modeled_cycles(counters: Mapping[str, int]) -> int:
    """Modeled cycles of a counter delta (``lock.*`` keys at :data:`LOCK_CYCLES`)."""
    total = 0
    for name, value in counters.items():
        if name.startswith("lock."):
            total += LOCK_CYCLES * value
        else:
            total += CYCLE_WEIGHTS.get(name, 0) * value
    return total
