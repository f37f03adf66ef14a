"""``vmap_area_cachep``: where each ``struct vmap_area`` object sits.

Each object has a modelled address from the cost model's slab cache
(:class:`vmapsim.cost.memory.SlabCache`): objects packed from the start of
4 KiB slab pages, a freed object's address handed out next (last freed,
first reused, like a SLUB freelist).  The cache-line tables are indexed by
the object's position in its page (``slab_pos``); the page's first
256-byte block (``slab_blk``) turns their line offsets into lines.
"""

from __future__ import annotations

from vmapsim.cost.memory import AddressSpace, SlabCache
from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.kernel.layout import StructLayout

__all__ = ["KmemCache"]


class KmemCache:
    """A slab cache of fixed-size objects: hands out object addresses."""

    __slots__ = ("_slab", "name", "per_slab", "size")

    def __init__(self, name: str, layout: StructLayout, mem: AddressSpace | None = None) -> None:
        self.name = name
        self.size = layout.size
        self._slab: SlabCache = (mem if mem is not None else AddressSpace()).cache(
            name, layout.size
        )
        self.per_slab = self._slab.per_slab

    @property
    def live(self) -> int:
        """Objects allocated and not freed."""
        return self._slab.live

    def alloc(self) -> tuple[int, int]:
        """``kmem_cache_alloc()``: ``(slab_pos, slab_blk)`` of a new object:
        its index in its slab page and the page's first 256-byte block."""
        addr = self._slab.alloc()
        return (addr % PAGE_SIZE) // self.size, (addr - addr % PAGE_SIZE) >> 8

    def free(self, pos: int, blk: int) -> None:
        """``kmem_cache_free()`` of the object at ``pos`` in the page at block ``blk``."""
        self._slab.free((blk << 8) + pos * self.size)
