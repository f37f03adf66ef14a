"""Errors and the zero-entry sentinel of the maple tree model."""

from __future__ import annotations

from typing import Final

from vmapsim import VmapError

__all__ = ["ZERO_ENTRY", "MapleError", "ZeroEntry"]


class MapleError(VmapError):
    """A maple tree operation failed; ``.errno`` is the kernel's errno.

    ``EINVAL`` (bad arguments, ``mtree_alloc_*`` on a tree without
    ``MT_FLAGS_ALLOC_RANGE``), ``EEXIST`` (``mtree_insert_range`` over an
    occupied index), ``EBUSY`` (``mas_empty_area[_rev]`` found no fit) or
    ``ENOMEM`` (node allocation failed).  The tree is untouched when one is
    raised.
    """


class ZeroEntry:
    """Model of ``XA_ZERO_ENTRY`` (``xa_mk_internal(257)``).

    It occupies its range (not a gap; inserts over it fail with ``EEXIST``,
    gap searches skip it) but ``mtree_load`` / ``mt_find`` / ``mt_for_each``
    read it as NULL, while ``mas_walk`` / ``mas_find`` / ``mas_next`` return it
    as-is.  It is an internal entry, so it is never kept in the root pointer.
    """

    __slots__ = ()
    _instance: ZeroEntry | None = None

    def __new__(cls) -> ZeroEntry:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ZERO_ENTRY"

    def __reduce__(self) -> str:
        return "ZERO_ENTRY"


#: The single zero entry.
ZERO_ENTRY: Final = ZeroEntry()
