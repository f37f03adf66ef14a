"""Entry point of vmapsim_sortedfree: registers ``free=sorted``."""

from __future__ import annotations

import vmapsim

from .index import SortedFreeIndex


def make_free(ctx: vmapsim.ComponentContext) -> SortedFreeIndex:
    """One free index per allocator."""
    return SortedFreeIndex(ctx.counters, ctx.warn)


@vmapsim.hookimpl
def vmapsim_index_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "sorted", {"free"}, make_free, "free blocks in a sortedcontainers SortedKeyList"
        )
    ]
