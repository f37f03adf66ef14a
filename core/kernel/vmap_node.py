"""``struct vmap_node``: per-node busy/lazy tracking and size pools."""

from __future__ import annotations

from collections import deque

from vmapsim.framework.roles import BusyIndex, LazyQueue
from vmapsim.kernel.area import VmapArea

__all__ = ["VmapNode", "decode_vn_id", "encode_vn_id"]


def encode_vn_id(node_id: int, nr_vmap_nodes: int) -> int:
    """``encode_vn_id()``: ``(id + 1) << 8`` for a valid id, else 0."""
    return (node_id + 1) << 8 if 0 <= node_id < nr_vmap_nodes else 0


def decode_vn_id(flags: int, nr_vmap_nodes: int) -> int:
    """``decode_vn_id()``: the node id in ``va->flags``; ``nr_vmap_nodes`` if none."""
    vn_id = (flags >> 8) - 1
    return vn_id if 0 <= vn_id < nr_vmap_nodes else nr_vmap_nodes


class VmapNode:
    """``struct vmap_node``: ``busy`` and ``lazy`` indexes, ``pool[MAX_VA_SIZE_PAGES]``.

    A pool is a deque (head on the left) of areas of one size; only the pools
    in use exist.  ``skip_populate`` is set for the duration of a purge with
    full pool decay.
    """

    __slots__ = ("busy", "id", "lazy", "nr_purged", "pools", "purge_list", "skip_populate")

    def __init__(self, node_id: int, busy: BusyIndex, lazy: LazyQueue) -> None:
        self.id = node_id
        self.busy = busy
        self.lazy = lazy
        self.pools: dict[int, deque[VmapArea]] = {}
        self.skip_populate = False
        self.purge_list: list[VmapArea] = []
        self.nr_purged = 0
