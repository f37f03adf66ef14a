"""Shadow indexes: one role filled by a primary component with a mirror kept in step.

Stages 1-3 of the maple series keep a maple tree beside every rb-tree
("introduce maple_tree-based indexing", then "convert ... to maple_tree"
with the rb-trees "kept only as mirrors").  A stage names such a pair as
``"A+B"``: component ``A`` answers every query, ``B`` receives every write
and is checked against ``A`` by :meth:`check` (``check_invariants()``, so
after every operation in debug mode).  Both count their work in the same
counters, so a shadowed stage shows the cost of writing two structures.

The wrappers are built once, when the allocator is built; afterwards the
flow calls their methods, which call the two components' methods directly.

Publishing a busy area is atomic across the pair: it goes to every member
in order, and if one refuses it (``-ENOMEM``: its nodes could not be
allocated) the members that took it drop it again, so the flow sees one
answer for the pair.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from vmapsim.errors import InvariantError
from vmapsim.kernel.area import VmapArea

__all__ = ["MirroredBusyIndex", "MirroredCoalescer", "MirroredFreeIndex", "MirroredLazyQueue"]


def _ranges(index: Any) -> list[tuple[int, int, int]]:
    return [(va.va_start, va.va_end, id(va)) for va in index]


class _Mirrored:
    __slots__ = ("mirror", "name", "primary")

    def __init__(self, primary: Any, mirror: Any, name: str) -> None:
        self.primary = primary
        self.mirror = mirror
        self.name = name

    def __iter__(self) -> Iterator[VmapArea]:
        return iter(self.primary)

    def __len__(self) -> int:
        return len(self.primary)

    def check(self) -> None:
        """Both members' own rules, then: the shadow holds exactly the primary's areas."""
        self.primary.check()
        self.mirror.check()
        a = _ranges(self.primary)
        b = _ranges(self.mirror)
        if a != b:
            only_a = sorted(set(a) - set(b))[:3]
            only_b = sorted(set(b) - set(a))[:3]
            raise InvariantError(
                f"{self.name}: shadow differs from its primary "
                f"(primary only: {[(hex(s), hex(e)) for s, e, _ in only_a]}, "
                f"shadow only: {[(hex(s), hex(e)) for s, e, _ in only_b]})"
            )


class MirroredFreeIndex(_Mirrored):
    """A :class:`~vmapsim.FreeIndex` pair: the primary answers, the shadow follows."""

    __slots__ = ()

    def find_vmap_lowest_match(
        self, size: int, align: int, vstart: int, adjust_search_size: bool
    ) -> VmapArea | None:
        """``find_vmap_lowest_match()`` on the primary."""
        return self.primary.find_vmap_lowest_match(size, align, vstart, adjust_search_size)

    def insert(self, va: VmapArea, near: VmapArea | None = None) -> bool:
        """``insert_vmap_area_augment()`` into both."""
        if not self.primary.insert(va, near):
            return False
        self.mirror.insert(va, near)
        return True

    def unlink(self, va: VmapArea) -> None:
        """``unlink_va_augment()`` from both."""
        self.primary.unlink(va)
        self.mirror.unlink(va)

    def propagate(self, va: VmapArea) -> None:
        """``va``'s bounds changed in place: both re-index it."""
        self.primary.propagate(va)
        self.mirror.propagate(va)

    def next_block(self, va: VmapArea) -> VmapArea | None:
        return self.primary.next_block(va)

    def prev_block(self, va: VmapArea) -> VmapArea | None:
        return self.primary.prev_block(va)

    def first(self) -> VmapArea | None:
        return self.primary.first()

    def last(self) -> VmapArea | None:
        return self.primary.last()

    def find_enclosing(self, addr: int) -> VmapArea | None:
        return self.primary.find_enclosing(addr)


class MirroredCoalescer:
    """The primary free index's coalescer, with the shadow free index kept in step.

    A merge edits blocks of the primary in place; afterwards the shadow drops
    the blocks that were merged away and re-indexes (or links) the result.
    """

    __slots__ = ("coalescer", "dropped", "mirror")

    def __init__(self, coalescer: Any, mirror: Any) -> None:
        self.coalescer = coalescer
        self.mirror = mirror
        #: the inner coalescer's list of areas merged away (the flow frees them)
        self.dropped = getattr(coalescer, "dropped", None)

    def merge_or_add(self, va: VmapArea) -> VmapArea | None:
        """``merge_or_add_vmap_area_augment()`` on the primary, then the shadow."""
        dropped = self.dropped
        before = len(dropped) if dropped is not None else 0
        result = self.coalescer.merge_or_add(va)
        if result is None:
            return None
        mirror = self.mirror
        if dropped is not None:
            for old in dropped[before:]:
                if old is not va:  # an existing block merged away
                    mirror.unlink(old)
        if result is va:
            mirror.insert(va)
        else:
            mirror.propagate(result)
        return result


class MirroredBusyIndex(_Mirrored):
    """A :class:`~vmapsim.BusyIndex` pair: lookups on the primary, writes to both."""

    __slots__ = ()

    def insert(self, va: VmapArea) -> bool:
        if not self.primary.insert(va):
            return False
        self.mirror.insert(va)
        return True

    def publish(self, va: VmapArea, can_block: bool) -> int:
        """Publish to both members, all or nothing (see the module docstring)."""
        ret = self.primary.publish(va, can_block)
        if ret:
            return ret
        ret = self.mirror.publish(va, can_block)
        if ret:
            self.primary.unlink(va)
        return ret

    def find(self, addr: int) -> VmapArea | None:
        return self.primary.find(addr)

    def unlink(self, va: VmapArea) -> None:
        self.primary.unlink(va)
        self.mirror.unlink(va)

    def find_unlink(self, addr: int) -> VmapArea | None:
        """Find and unlink on the primary; the shadow unlinks the area it found."""
        va = self.primary.find_unlink(addr)
        if va is not None:
            self.mirror.unlink(va)
        return va


class MirroredLazyQueue(_Mirrored):
    """A :class:`~vmapsim.LazyQueue` pair: both queue, both are drained."""

    __slots__ = ()

    def add(self, va: VmapArea) -> bool:
        if not self.primary.add(va):
            return False
        self.mirror.add(va)
        return True

    def detach_all(self) -> list[VmapArea]:
        areas = self.primary.detach_all()
        self.mirror.detach_all()
        return areas


MIRRORS: dict[str, type] = {
    "free": MirroredFreeIndex,
    "busy": MirroredBusyIndex,
    "lazy": MirroredLazyQueue,
}
