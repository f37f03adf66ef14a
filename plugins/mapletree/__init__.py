"""vmapsim_mapletree: a model of the Linux kernel's maple tree.

``MapleTree`` is ``struct maple_tree`` with the normal API (``mtree_*``),
``MapleState`` the advanced API (``struct ma_state``, ``mas_*``).  Nodes are
the kernel's range_64 / leaf_64 (16 slots) and, in allocation trees,
arange_64 (10 slots plus per-child gaps); the node structure is what the
cost model counts.  See docs/mapletree.md.
"""

from __future__ import annotations

from .errors import ZERO_ENTRY, MapleError
from .node import MapleNode
from .state import MapleState, MaStatus
from .tree import MapleTree

__all__ = ["ZERO_ENTRY", "MaStatus", "MapleError", "MapleNode", "MapleState", "MapleTree"]
