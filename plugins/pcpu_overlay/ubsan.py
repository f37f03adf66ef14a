"""A bounds-checked array, reporting as ``CONFIG_UBSAN_BOUNDS`` does.

:class:`BoundsCheckedArray` models a C array ``struct vmap_area *[M]``
compiled with ``-fsanitize=array-bounds``: an index outside ``[0, M)`` is
reported in UBSAN's words in the allocator log and counted
(``ubsan_reports``); the access itself is suppressed (a write is dropped, a
read gives NULL) so the model keeps running, as a kernel without
``panic_on_warn`` does.  With ``debug`` the report raises
:class:`UbsanError` (``panic_on_warn``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from vmapsim import Counters, InvariantError, VmapArea

__all__ = ["BoundsCheckedArray", "UbsanError", "ubsan_report"]

#: where the report points: patch 11's ``chunk->page_va[idx + i] = va`` in
#: ``vmap_bump_alloc()`` (mm/vmalloc.c after the patch, index 6991054e1cba:
#: the hunk at 2468 puts the loop at line 2620; the column is illustrative)
UBSAN_SITE = "mm/vmalloc.c:2620:24"


class UbsanError(InvariantError):
    """An out-of-range index, raised when the allocator runs with ``debug=True``."""


def ubsan_report(index: int, length: int, elem_type: str, site: str = UBSAN_SITE) -> list[str]:
    """The lines ``__ubsan_handle_out_of_bounds()`` prints for one bad index."""
    return [
        f"UBSAN: array-index-out-of-bounds in {site}",
        f"index {index} is out of range for type '{elem_type}[{length}]'",
    ]


class BoundsCheckedArray:
    """``struct vmap_area *name[length]`` with every index checked (UBSAN bounds).

    ``array[i]`` / ``array[i] = v`` with ``0 <= i < length`` behave as a C
    array; any other ``i`` is reported (:func:`ubsan_report`), counted in
    ``counters.ubsan_reports`` and suppressed, or raised with ``debug``.
    """

    __slots__ = ("counters", "debug", "elem_type", "length", "slots", "warn")

    def __init__(
        self,
        length: int,
        counters: Counters,
        warn: Callable[[str], None],
        *,
        debug: bool = False,
        elem_type: str = "struct vmap_area *",
    ) -> None:
        self.length = length
        self.slots: list[VmapArea | None] = [None] * length
        self.counters = counters
        self.warn = warn
        self.debug = debug
        self.elem_type = elem_type

    def _out_of_bounds(self, index: int) -> None:
        self.counters.ubsan_reports += 1
        lines = ubsan_report(index, self.length, self.elem_type)
        for line in lines:
            self.warn(line)
        if self.debug:
            raise UbsanError("; ".join(lines))

    def __getitem__(self, index: int) -> VmapArea | None:
        if 0 <= index < self.length:
            return self.slots[index]
        self._out_of_bounds(index)
        return None

    def __setitem__(self, index: int, value: VmapArea | None) -> None:
        if 0 <= index < self.length:
            self.slots[index] = value
        else:
            self._out_of_bounds(index)

    def fill(self, index: int, count: int, value: VmapArea | None) -> None:
        """``for (i = 0; i < count; i++) array[index + i] = value;`` with every
        index checked: the in-range slots are written (one slice), each
        out-of-range one reported."""
        lo = max(index, 0)
        hi = min(index + count, self.length)
        if lo < hi:
            self.slots[lo:hi] = [value] * (hi - lo)
        if lo != index or hi != index + count:
            for i in range(index, index + count):
                if not 0 <= i < self.length:
                    self._out_of_bounds(i)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[VmapArea | None]:
        return iter(self.slots)
