"""``vmap_area_cachep``: where each ``struct vmap_area`` object sits in its slab.

Only positions are modelled (for the cache-line model): a freed object's
slot is reused first (last freed, first reused, like a SLUB freelist), else
the next fresh slot.  Positions repeat every ``objects_per_slab``.
"""

from __future__ import annotations

from vmapsim.cost.cachemodel import objects_per_slab
from vmapsim.kernel.layout import StructLayout

__all__ = ["KmemCache"]


class KmemCache:
    """A slab cache of fixed-size objects: hands out slab positions."""

    __slots__ = ("_freelist", "_fresh", "live", "name", "per_slab")

    def __init__(self, name: str, layout: StructLayout) -> None:
        self.name = name
        self.per_slab = objects_per_slab(layout)
        self._freelist: list[int] = []
        self._fresh = 0
        self.live = 0

    def alloc(self) -> int:
        """Allocate an object; return its position in its slab page."""
        self.live += 1
        if self._freelist:
            return self._freelist.pop()
        pos = self._fresh
        self._fresh = pos + 1 if pos + 1 < self.per_slab else 0
        return pos

    def free(self, pos: int) -> None:
        """Free the object at slab position ``pos``."""
        self.live -= 1
        self._freelist.append(pos)
