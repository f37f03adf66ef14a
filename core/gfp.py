"""GFP flags, as far as vmalloc's flow looks at them.

Bit values are our own (the kernel's move between releases); the names and
the composite masks follow include/linux/gfp_types.h.
"""

from __future__ import annotations

import enum

__all__ = [
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_NOWAIT",
    "GFP_RECLAIM_MASK",
    "__GFP_NOWARN",
    "__GFP_ZERO",
    "Gfp",
    "gfpflags_allow_blocking",
]


class Gfp(enum.IntFlag):
    """Individual ``__GFP_*`` bits."""

    DMA = 0x01
    HIGHMEM = 0x02
    HIGH = 0x20
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    NOWARN = 0x2000
    RETRY_MAYFAIL = 0x4000
    NOFAIL = 0x8000
    NORETRY = 0x10000


__GFP_NOWARN = Gfp.NOWARN
__GFP_ZERO = Gfp.ZERO
__GFP_RECLAIM = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | Gfp.IO | Gfp.FS
GFP_NOWAIT = Gfp.KSWAPD_RECLAIM
GFP_ATOMIC = Gfp.HIGH | Gfp.KSWAPD_RECLAIM
#: ``GFP_RECLAIM_MASK``: the bits alloc_vmap_area keeps for its own allocations.
GFP_RECLAIM_MASK = (
    __GFP_RECLAIM
    | Gfp.HIGH
    | Gfp.IO
    | Gfp.FS
    | Gfp.NOWARN
    | Gfp.RETRY_MAYFAIL
    | Gfp.NOFAIL
    | Gfp.NORETRY
)


def gfpflags_allow_blocking(gfp: int) -> bool:
    """``gfpflags_allow_blocking()``: may this request sleep (direct reclaim)?"""
    return bool(gfp & Gfp.DIRECT_RECLAIM)
