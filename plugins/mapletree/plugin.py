"""Entry point of vmapsim_mapletree: maple-tree components for the flow's roles.

Registers, through vmapsim's hooks:

* ``free=maple``: :class:`~vmapsim_mapletree.vmap_free.MapleFreeIndex`, free
  blocks as ranges of one tree (published as ``ctx.shared["free"]``; pairs
  with ``coalesce=generic``);
* ``busy=maple``: :class:`~vmapsim_mapletree.components.MapleBusyIndex`, one
  range tree per vmap node;
* ``occupied=maple``: :class:`~vmapsim_mapletree.vmap_occupied.MapleOccupiedIndex`,
  the allocation-range tree of in-use ranges (one per allocator, published as
  ``ctx.shared["occupied"]``);
* ``maple-occupied`` for ``occupied`` and ``busy``: the same tree for role
  ``occupied``, and for role ``busy`` one node's
  :class:`~vmapsim_mapletree.vmap_occupied.OccupiedBusyView` of it;
* ``lazy=maple``: :class:`~vmapsim_mapletree.components.MapleLazyQueue`.

See docs/mapletree.md, "vmalloc components".
"""

from __future__ import annotations

import vmapsim

from .components import make_busy, make_lazy
from .vmap_free import make_free
from .vmap_occupied import make_occupied, make_occupied_or_busy


@vmapsim.hookimpl
def vmapsim_index_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "maple",
            {"free"},
            make_free,
            "free vmap_areas as maple-tree ranges [va_start, va_end - 1] (no subtree sizes: "
            "the lowest match is a scan)",
        ),
        vmapsim.Component(
            "maple",
            {"busy"},
            make_busy,
            "busy vmap_areas as maple-tree ranges [va_start, va_end - 1], one tree per vmap node",
        ),
        vmapsim.Component(
            "maple",
            {"occupied"},
            make_occupied,
            "in-use ranges in one allocation-range maple tree; free space = its gaps "
            "(mas_empty_area)",
        ),
        vmapsim.Component(
            "maple-occupied",
            {"occupied", "busy"},
            make_occupied_or_busy,
            "the occupied maple tree also as every vmap node's busy index (busy areas are "
            "its entries, unlinked ones stay RESERVED)",
        ),
    ]


@vmapsim.hookimpl
def vmapsim_lazy_purge_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "maple",
            {"lazy"},
            make_lazy,
            "lazily freed vmap_areas as maple-tree ranges, drained whole",
        )
    ]
