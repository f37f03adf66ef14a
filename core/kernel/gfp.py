"""GFP flags, as far as vmalloc's flow looks at them.

The bits are the kernel's: include/linux/gfp_types.h numbers them with an
enum whose first 24 entries do not depend on the configuration (the
KASAN_HW_TAGS, LOCKDEP and SLAB_OBJ_EXT bits above them do, and are left
out).  The composite masks follow the same header; ``GFP_RECLAIM_MASK``
follows mm/internal.h.  The flow uses only what the bits mean: may the
request block (``__GFP_DIRECT_RECLAIM``), is it silent (``__GFP_NOWARN``),
must it not fail (``__GFP_NOFAIL``).
"""

from __future__ import annotations

import enum

__all__ = [
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT",
    "GFP_NOFS",
    "GFP_NOIO",
    "GFP_NOWAIT",
    "GFP_RECLAIM_MASK",
    "__GFP_NOFAIL",
    "__GFP_NOWARN",
    "__GFP_ZERO",
    "Gfp",
    "gfpflags_allow_blocking",
]


class Gfp(enum.IntFlag):
    """Individual ``__GFP_*`` bits (bit 9 is unused in the kernel)."""

    DMA = 0x01
    HIGHMEM = 0x02
    DMA32 = 0x04
    MOVABLE = 0x08
    RECLAIMABLE = 0x10
    HIGH = 0x20
    IO = 0x40
    FS = 0x80
    ZERO = 0x100
    DIRECT_RECLAIM = 0x400
    KSWAPD_RECLAIM = 0x800
    WRITE = 0x1000
    NOWARN = 0x2000
    RETRY_MAYFAIL = 0x4000
    NOFAIL = 0x8000
    NORETRY = 0x10000
    MEMALLOC = 0x20000
    COMP = 0x40000
    NOMEMALLOC = 0x80000
    HARDWALL = 0x100000
    THISNODE = 0x200000
    ACCOUNT = 0x400000
    ZEROTAGS = 0x800000


__GFP_NOWARN = Gfp.NOWARN
__GFP_NOFAIL = Gfp.NOFAIL
__GFP_ZERO = Gfp.ZERO
__GFP_RECLAIM = Gfp.DIRECT_RECLAIM | Gfp.KSWAPD_RECLAIM
GFP_ATOMIC = Gfp.HIGH | Gfp.KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | Gfp.IO | Gfp.FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | Gfp.ACCOUNT
#: ``GFP_NOWAIT``: wakes kswapd, never blocks, and is silent on failure.
GFP_NOWAIT = Gfp.KSWAPD_RECLAIM | Gfp.NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | Gfp.IO
#: ``GFP_RECLAIM_MASK``: the bits alloc_vmap_area keeps for its own allocations
#: (``__GFP_NOLOCKDEP`` is 0 without CONFIG_LOCKDEP).
GFP_RECLAIM_MASK = (
    __GFP_RECLAIM
    | Gfp.HIGH
    | Gfp.IO
    | Gfp.FS
    | Gfp.NOWARN
    | Gfp.RETRY_MAYFAIL
    | Gfp.NOFAIL
    | Gfp.NORETRY
    | Gfp.MEMALLOC
    | Gfp.NOMEMALLOC
)


def gfpflags_allow_blocking(gfp: int) -> bool:
    """``gfpflags_allow_blocking()``: may this request sleep (direct reclaim)?"""
    return bool(gfp & Gfp.DIRECT_RECLAIM)
