"""``free=sorted``: the free blocks in a :class:`sortedcontainers.SortedKeyList`.

A second structure for vmapsim's :class:`~vmapsim.FreeIndex` role.  Blocks
are kept in a SortedKeyList keyed by ``va_start``.  The flow edits a block's
bounds in place (``va_clip``) and then calls :meth:`propagate`; because
SortedKeyList caches keys, the key is the start recorded when the block was
(re)linked, and ``propagate`` re-links the block under its new start.

``find_vmap_lowest_match`` scans from the block holding ``vstart`` upwards
and returns the lowest block ``is_within_this_va`` accepts.  That is exactly
the kernel's answer for ``align <= PAGE_SIZE`` (and for exact-fit windows),
and an allowed answer under the bounds rule for larger alignments (it is
never above the lowest accepted block of ``size + align - 1`` bytes), so the
allocation trace equals the rb-tree index's wherever the kernel's is fixed.
The scan is linear in the number of blocks below the answer: this example is
about the plugin boundary, not about a fast search.

Counters: one ``walks`` per search, lookup and link; one ``nodes_visited``
and ``comparisons`` per block a search examines; ``list_ops`` per link and
unlink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sortedcontainers import SortedKeyList

from vmapsim import Counters, InvariantError, VmapArea

__all__ = ["OVERLAP_WARNING", "SortedFreeIndex", "is_within_this_va"]

#: ``find_va_links()``'s warning when a block to link overlaps a linked one
OVERLAP_WARNING = "vmalloc bug: 0x%x-0x%x overlaps with 0x%x-0x%x"
ADDRESS_LIMIT = 1 << 64


def is_within_this_va(va: VmapArea, size: int, align: int, vstart: int) -> bool:
    """``is_within_this_va()`` in 64-bit unsigned arithmetic."""
    nva = ((max(va.va_start, vstart) + align - 1) // align * align) % ADDRESS_LIMIT
    if nva + size >= ADDRESS_LIMIT or nva < vstart:
        return False
    return nva + size <= va.va_end


class SortedFreeIndex:
    """``free_vmap_area_root`` + ``free_vmap_area_list`` as one SortedKeyList."""

    def __init__(self, counters: Counters, warn: Callable[[str], None]) -> None:
        self.counters = counters
        self.warn = warn
        self._key: dict[int, int] = {}  # id(block) -> the start it is keyed under
        self.blocks: SortedKeyList = SortedKeyList(key=self._key_of)

    def _key_of(self, va: VmapArea) -> int:
        return self._key[id(va)]

    def _index(self, va: VmapArea) -> int:
        key = self._key.get(id(va))
        if key is not None:
            i = self.blocks.bisect_key_left(key)
            if i < len(self.blocks) and self.blocks[i] is va:
                return i
        raise InvariantError(f"sorted: {va!r} is not in the free index")

    def _holding(self, addr: int) -> int:
        """Index of the last block starting at or below ``addr`` (-1 if none)."""
        return self.blocks.bisect_key_right(addr) - 1

    def find_vmap_lowest_match(
        self, size: int, align: int, vstart: int, adjust_search_size: bool
    ) -> VmapArea | None:
        """``find_vmap_lowest_match()``: the lowest block that fits (exact for any align)."""
        c = self.counters
        c.walks += 1
        seen = 0
        found = None
        for va in self.blocks.islice(max(self._holding(vstart), 0)):
            seen += 1
            if is_within_this_va(va, size, align, vstart):
                found = va
                break
        c.nodes_visited += seen
        c.comparisons += seen
        return found

    def insert(self, va: VmapArea, near: VmapArea | None = None) -> bool:
        """Link a free block; False with the kernel's overlap warning if it overlaps one."""
        c = self.counters
        c.walks += 1
        i = self.blocks.bisect_key_left(va.va_start)
        for j in (i - 1, i):
            if 0 <= j < len(self.blocks):
                other = self.blocks[j]
                c.comparisons += 1
                if other.va_start < va.va_end and other.va_end > va.va_start:
                    self.warn(
                        OVERLAP_WARNING % (va.va_start, va.va_end, other.va_start, other.va_end)
                    )
                    return False
        self._key[id(va)] = va.va_start
        self.blocks.add(va)
        c.list_ops += 1
        return True

    def unlink(self, va: VmapArea) -> None:
        """Remove a block."""
        del self.blocks[self._index(va)]
        del self._key[id(va)]
        self.counters.list_ops += 1

    def propagate(self, va: VmapArea) -> None:
        """``va``'s bounds changed in place: re-key it under its new start."""
        self.counters.walks += 1
        if self._key.get(id(va)) != va.va_start:
            del self.blocks[self._index(va)]
            self._key[id(va)] = va.va_start
            self.blocks.add(va)

    def next_block(self, va: VmapArea) -> VmapArea | None:
        i = self._index(va) + 1
        return self.blocks[i] if i < len(self.blocks) else None

    def prev_block(self, va: VmapArea) -> VmapArea | None:
        i = self._index(va)
        return self.blocks[i - 1] if i else None

    def first(self) -> VmapArea | None:
        return self.blocks[0] if self.blocks else None

    def last(self) -> VmapArea | None:
        return self.blocks[-1] if self.blocks else None

    def find_enclosing(self, addr: int) -> VmapArea | None:
        """The block with ``va_start <= addr < va_end``."""
        self.counters.walks += 1
        self.counters.comparisons += 1
        i = self._holding(addr)
        if i >= 0 and addr < self.blocks[i].va_end:
            return self.blocks[i]
        return None

    def __iter__(self) -> Iterator[VmapArea]:
        return iter(list(self.blocks))

    def __len__(self) -> int:
        return len(self.blocks)

    def check(self) -> None:
        """Keys equal starts, blocks non-empty and non-overlapping, in order."""
        prev = None
        for va in self.blocks:
            if self._key.get(id(va)) != va.va_start:
                raise InvariantError(f"sorted: {va!r} is keyed under a stale start")
            if va.va_start >= va.va_end:
                raise InvariantError(f"sorted: free block {va!r} is empty")
            if prev is not None and prev.va_end > va.va_start:
                raise InvariantError(f"sorted: free blocks {prev!r} and {va!r} overlap")
            prev = va
        if len(self._key) != len(self.blocks):
            raise InvariantError("sorted: key table and list disagree on the number of blocks")
