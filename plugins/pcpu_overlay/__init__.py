"""vmapsim_pcpu_overlay: the per-CPU bump-allocator overlay of patches 10-12.

``overlay=pcpu-bump`` runs patch 10's, 11's or 12's bump path (the stage's
``pcpu_bump`` feature, :mod:`.overlay`): 64 MiB chunks reserved through the
flow's ``__alloc_vmap_area()``, kvzalloc'd descriptors with ``page_va[]``
from patch 11 (:mod:`.ubsan` instruments patch 11's indexed fill loop as
UBSAN would), KASAN-style reports of a freed descriptor's use; the
``module_load`` workload (:mod:`.workload`) drives the finit_module /
kernel_read_file path.  See docs/stages.md, rows 10-12.
"""

from __future__ import annotations

from .overlay import (
    VA_FROM_BUMP_CHUNK,
    VMAP_BUMP_CHUNK_PAGES,
    VMAP_BUMP_CHUNK_SIZE,
    PcpuBumpOverlay,
    VmapBumpChunk,
    kasan_report,
)
from .ubsan import BoundsCheckedArray, UbsanError

__all__ = [
    "VA_FROM_BUMP_CHUNK",
    "VMAP_BUMP_CHUNK_PAGES",
    "VMAP_BUMP_CHUNK_SIZE",
    "BoundsCheckedArray",
    "PcpuBumpOverlay",
    "UbsanError",
    "VmapBumpChunk",
    "kasan_report",
]
