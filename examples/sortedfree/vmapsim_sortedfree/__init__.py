"""vmapsim_sortedfree: a free index on sortedcontainers' SortedKeyList (example plugin)."""

from .index import SortedFreeIndex

__all__ = ["SortedFreeIndex"]
