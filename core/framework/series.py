"""The stages of the vmalloc maple-tree series (series name ``maple``).

Stage 0 is upstream before the series; stage N is the tree after patch N.
The ledger of what each stage changes is docs/stages.md.  Stages are data:
components are named, not imported, so core never depends on a plugin.
"""

from __future__ import annotations

from vmapsim.framework.descriptors import Stage
from vmapsim.kernel.layout import VMAP_AREA_MAPLE, VMAP_AREA_RB

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

#: stage 1 on: maple bring-up deferred, vmalloc_init() on first use
_DEFERRED = {"lazy_bringup": True}
#: stage 5 on: publish through mas_preallocate/mas_store_prealloc; a publish
#: that cannot get its nodes parks the area on the retry queue
_PREALLOC = {**_DEFERRED, "maple_publish": "prealloc", "publish_retry_queue": True}
#: stage 6 on: va_clip() trims a free-area entry with one store of NULL
_CLIP_STORE = {**_PREALLOC, "va_clip_store_null": True}
#: stage 9 on: find_unlink_vmap_area() is one mas_erase walk
_SINGLE_ERASE = {**_CLIP_STORE, "busy_single_erase": True}
#: stages 10-12: which patch's bump path the overlay runs (plugins/pcpu_overlay)
_BUMP10 = {**_SINGLE_ERASE, "pcpu_bump": 10}
#: stage 11: kvzalloc'd chunk descriptors with page_va[], no busy insert, retirement
_BUMP11 = {**_SINGLE_ERASE, "pcpu_bump": 11}
#: stage 12: vmap_bump_eligible() before refill, bounds checks, owner_cpu
_BUMP12 = {**_SINGLE_ERASE, "pcpu_bump": 12}
#: stages 8-9: the occupied tree is gap and busy index; lazy areas on a list_head
_LIST = {"occupied": "maple", "busy": "maple-occupied", "lazy": "listhead"}
#: stage 10 on: and the per-CPU bump overlay in front
_OVERLAY = {**_LIST, "overlay": "pcpu-bump"}


#: stages 4-6: every index a maple tree, the rb-trees gone
_MAPLE_ONLY = {
    "occupied": "maple",
    "free": "maple",
    "busy": "maple",
    "lazy": "maple",
    "coalesce": "generic",
}


def _stage(number: int, components: dict[str, str], features: dict, summary: str) -> Stage:
    return Stage(
        number=number,
        title=PATCH_TITLES[number],
        components=components,
        layout=VMAP_AREA_RB if number < 4 else VMAP_AREA_MAPLE,
        features=features,
        series=SERIES,
        summary=summary,
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
    _stage(
        1,
        {"free": "rb+maple", "busy": "rb+maple", "lazy": "rb+maple", "coalesce": "list-neighbour"},
        _DEFERRED,
        "a maple tree shadows every rb-tree (same contents, rb answers); bring-up deferred "
        "to first use",
    ),
    _stage(
        2,
        {
            "occupied": "maple",
            "free": "maple+rb",
            "busy": "rb+maple",
            "lazy": "rb+maple",
            "coalesce": "list-neighbour",
        },
        {**_DEFERRED, "coalesce_member": "shadow"},
        "gap search is mas_empty_area over the occupied-range tree and the block to clip "
        "is found in the maple free tree; rb still serves lookups, free and purge merging",
    ),
    _stage(
        3,
        {
            "occupied": "maple",
            "free": "maple+rb",
            "busy": "maple+rb",
            "lazy": "maple+rb",
            "coalesce": "generic",
        },
        _DEFERRED,
        "lookups, unlink, purge merging and pcpu placement on maple; rb only mirrored",
    ),
    _stage(
        4,
        _MAPLE_ONLY,
        _DEFERRED,
        "rb-trees removed: maple only; struct vmap_area loses rb_node (72 -> 48 B)",
    ),
    _stage(
        5,
        _MAPLE_ONLY,
        _PREALLOC,
        "publish via mas_preallocate/mas_store_prealloc; a failed publish parks the area on "
        "a retry queue",
    ),
    _stage(
        6,
        _MAPLE_ONLY,
        _CLIP_STORE,
        "va_clip trims a free-area entry with one mas_store(NULL)",
    ),
    _stage(
        7,
        {"occupied": "maple", "busy": "maple-occupied", "lazy": "maple"},
        _CLIP_STORE,
        "the occupied tree is the busy index too: one empty_area descent and one store per "
        "alloc; no free-area tree",
    ),
    _stage(
        8,
        _LIST,
        _CLIP_STORE,
        "lazy areas on a plain list_head per node: O(1) append, the drain splices the list; "
        "no tree work per lazy free",
    ),
    _stage(
        9,
        _LIST,
        _SINGLE_ERASE,
        "vfree unlinks the busy entry with one mas_erase walk instead of a find walk and an "
        "erase walk",
    ),
    _stage(
        10,
        _OVERLAY,
        _BUMP10,
        "per-CPU 64 MiB chunks from __alloc_vmap_area (lowest fit); default-window requests "
        "up to 32 MiB bumped under vmap_bump_lock, then busy-inserted; old chunks forgotten",
    ),
    _stage(
        11,
        _OVERLAY,
        _BUMP11,
        "kvzalloc'd chunk descriptors (page_va[]) on an RCU list; bump areas in no busy tree; "
        "a drained non-current chunk retired: cross-CPU retire is a use-after-free (KASAN)",
    ),
    _stage(
        12,
        _OVERLAY,
        _BUMP12,
        "vmap_bump_eligible() before refill, overflow/index checks, pointer-walk fill, "
        "owner_cpu retirement; retire-before-flush and the drained-current leak remain",
    ),
]
