"""The cache-line model: which 64-byte lines an access to a struct touches.

``struct vmap_area`` objects come from a slab cache (``vmap_area_cachep``):
each 4 KiB slab page holds ``PAGE_SIZE // sizeof`` objects packed back to
back from the page start, so an object's byte offset is
``slab_pos * sizeof``.  Reading a set of fields touches every 64-byte line
that covers any byte of them; that count depends on the object's position in
its slab (a 72-byte object straddles lines differently at each position) and
is tabulated once per (layout, field set).

Maple nodes are 256 bytes and 256-byte aligned: exactly 4 lines each.
"""

from __future__ import annotations

from collections.abc import Iterable

from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.kernel.layout import StructLayout, Union

CACHE_LINE = 64
MAPLE_NODE_LINES = 4

__all__ = ["CACHE_LINE", "MAPLE_NODE_LINES", "field_lines_table", "objects_per_slab"]


def objects_per_slab(layout: StructLayout) -> int:
    """How many objects of ``layout`` one 4 KiB slab page holds."""
    return PAGE_SIZE // layout.size


def _field_span(layout: StructLayout, name: str) -> tuple[int, int]:
    for off, m in layout.offsets():
        names = [x.name for x in m.members] if isinstance(m, Union) else [m.name]
        if name in names:
            return off, off + m.size
    raise KeyError(f"{layout.name} has no field {name!r}")


def field_lines_table(layout: StructLayout, fields: Iterable[str]) -> tuple[int, ...]:
    """Lines touched when reading ``fields`` of the object at each slab position.

    Entry ``i`` is the number of distinct cache lines covering the fields of
    the object at position ``i`` of its slab page.  Fields absent from the
    layout are ignored (a stage that dropped ``rb_node`` reads nothing there).
    """
    spans = []
    for name in fields:
        try:
            spans.append(_field_span(layout, name))
        except KeyError:
            continue
    table = []
    for pos in range(objects_per_slab(layout)):
        base = pos * layout.size
        lines: set[int] = set()
        for lo, hi in spans:
            lines.update(range((base + lo) // CACHE_LINE, (base + hi - 1) // CACHE_LINE + 1))
        table.append(len(lines))
    return tuple(table)
