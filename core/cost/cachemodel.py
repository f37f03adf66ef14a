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

__all__ = [
    "CACHE_LINE",
    "MAPLE_NODE_LINES",
    "field_blocks_table",
    "field_lines_table",
    "objects_per_slab",
]


def objects_per_slab(layout: StructLayout) -> int:
    """How many objects of ``layout`` one 4 KiB slab page holds."""
    return PAGE_SIZE // layout.size


def _field_span(layout: StructLayout, name: str) -> tuple[int, int]:
    for off, m in layout.offsets():
        names = [x.name for x in m.members] if isinstance(m, Union) else [m.name]
        if name in names:
            return off, off + m.size
    raise KeyError(f"{layout.name} has no field {name!r}")


def _field_line_set(layout: StructLayout, fields: Iterable[str], pos: int) -> set[int]:
    """Line numbers (from the page start) covering ``fields`` of the object at ``pos``."""
    lines: set[int] = set()
    base = pos * layout.size
    for name in fields:
        try:
            lo, hi = _field_span(layout, name)
        except KeyError:
            continue
        lines.update(range((base + lo) // CACHE_LINE, (base + hi - 1) // CACHE_LINE + 1))
    return lines


def field_blocks_table(
    layout: StructLayout, fields: Iterable[str]
) -> tuple[tuple[tuple[int, int], ...], ...]:
    """The lines of ``fields`` at each slab position, as touches.

    Entry ``i`` is a tuple of ``(block, mask)`` pairs for the object at
    position ``i``: ``block`` is the 256-byte block's index from the slab
    page's start and bit ``j`` of ``mask`` is the block's line ``j``; add
    the page's first block (``va.slab_blk``) and hand each pair to
    ``Counters.touch_block``.  Fields absent from the layout are ignored.
    """
    fields = tuple(fields)
    table = []
    for pos in range(objects_per_slab(layout)):
        blocks: dict[int, int] = {}
        for line in sorted(_field_line_set(layout, fields, pos)):
            blocks[line >> 2] = blocks.get(line >> 2, 0) | (1 << (line & 3))
        table.append(tuple(blocks.items()))
    return tuple(table)


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
