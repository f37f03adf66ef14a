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

#: where the report points.  We have no patch text, so the line and column
#: are illustrative, fixed so that reports compare equal across runs.
UBSAN_SITE = "mm/vmalloc.c:2417:24"


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

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[VmapArea | None]:
        return iter(self.slots)
