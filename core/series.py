"""The stages of the vmalloc maple-tree series (series name ``maple``).

Stage 0 is upstream before the series; stage N is the tree after patch N.
The ledger of what each stage changes is docs/stages.md.  Stages are data:
components are named, not imported, so core never depends on a plugin.
"""

from __future__ import annotations

from .descriptors import Stage
from .layout import VMAP_AREA_RB

__all__ = ["PATCH_TITLES", "SERIES", "STAGES"]

SERIES = "maple"

#: the series' patch titles, from the cover letter (index = patch number)
PATCH_TITLES: tuple[str, ...] = (
    "upstream vmalloc before the series (augmented rb-tree baseline)",
    "mm/vmalloc: introduce maple_tree-based indexing for vmap_area",
    "mm/vmalloc: convert allocation-side gap finding and insertion to maple_tree",
    "mm/vmalloc: convert free, purge, and pcpu paths to maple_tree",
    "mm/vmalloc: finalize maple-only indexing and shrink struct vmap_area",
    "mm/vmalloc: tighten failure handling under memory pressure",
    "mm/vmalloc: tighten alloc/free hot paths",
    "mm/vmalloc: consolidate occupied tree as authoritative index on hot path",
    "mm/vmalloc: track lazy-purge queue as a list_head",
    "mm/vmalloc: collapse busy-tree find-then-unlink into a single mas_erase",
    "mm/vmalloc: per-CPU caching of free ranges from the maple_tree allocator",
    "mm/vmalloc: O(1) lookup of cached vmap_areas with bounded fast-reject",
    "mm/vmalloc: harden bump-allocator alloc/free against UBSAN array bounds",
)

STAGES: list[Stage] = [
    Stage(
        number=0,
        title=PATCH_TITLES[0],
        components={"free": "rb", "busy": "rb", "lazy": "rb", "coalesce": "list-neighbour"},
        layout=VMAP_AREA_RB,
        series=SERIES,
        summary=(
            "free: augmented rb-tree (subtree_max_size) + sorted list; busy and lazy: "
            "rb-tree + list per vmap node; per-node pools; struct vmap_area 72 B"
        ),
    ),
]
