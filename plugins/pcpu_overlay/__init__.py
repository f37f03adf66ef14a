"""vmapsim_pcpu_overlay: the per-CPU bump-allocator overlay (stages 10-12).

``overlay=pcpu-bump`` reserves per-CPU chunks from the flow's own
``alloc_vmap_area()`` and bump-allocates eligible vmalloc requests from
them (:mod:`.overlay`); from stage 11 each chunk keeps a back-pointer array
(page index -> area, :mod:`.ubsan` instruments it as UBSAN would); the
``module_load`` workload (:mod:`.workload`) drives the finit_module /
kernel_read_file path.  See docs/stages.md, "Stages 8-12 in detail".
"""

from __future__ import annotations

from .overlay import (
    OVERLAY_MAX_PAGES,
    PcpuBumpOverlay,
    PcpuChunk,
    derive_chunk_pages,
)
from .ubsan import BoundsCheckedArray, UbsanError

__all__ = [
    "OVERLAY_MAX_PAGES",
    "BoundsCheckedArray",
    "PcpuBumpOverlay",
    "PcpuChunk",
    "UbsanError",
    "derive_chunk_pages",
]
