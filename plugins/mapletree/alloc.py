"""The node allocator: every maple node is obtained and released here.

Models the ``maple_node_cache`` kmem_cache together with the ma_state's
allocation list (``mas_alloc_nodes`` / ``mas_pop_node`` / ``mas_destroy``):
a writer first reserves the worst case for its store type, then takes nodes
from the reservation while writing, and finally returns what it did not use.
A reservation request is one bulk slab allocation, so it consults the fault
injector once (``should_failslab``) and either gets every node or none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attrs import define, field

from vmapsim import Counters, FaultInjector, SlabCache

from .node import DEAD, MAPLE_NODE_BYTES, MapleNode

__all__ = ["NodeAllocator"]


@define(slots=True, eq=False, weakref_slot=False)
class NodeAllocator:
    """``maple_node_cache`` with failslab-style fault injection.

    ``node_allocs`` counts nodes obtained from the slab (reservations, like
    ``kmem_cache_alloc_bulk``); ``node_frees`` counts nodes given back, both
    unused reservations (``mas_destroy``) and nodes replaced by a write
    (``ma_free_rcu`` / ``mt_free_bulk``).
    """

    counters: Counters
    faults: FaultInjector | None = None
    #: Nodes linked into a tree (taken from a reservation, not yet freed).
    live: int = 0
    #: Nodes reserved by writers and not yet used or given back.
    reserved: int = 0
    #: Bumped whenever a node is linked in (:meth:`make`) or freed: while it
    #: is unchanged, so is the shape of the tree (``walk._path``'s memo).
    version: int = 0
    #: ``maple_node_cache``: the modelled addresses of the nodes (shared by
    #: every tree of the allocator, through the counters' address space)
    cache: SlabCache | None = None
    #: addresses of nodes freed by the current write: back to the slab only
    #: at the next reservation, as the kernel's writer has its new nodes
    #: (``mas_alloc_nodes``) before it frees the replaced ones
    limbo: list[int] = field(factory=list)
    #: the debug kernel's ``might_alloc(can_block, what)`` (``ComponentContext``);
    #: None when it is off
    might_alloc: Callable[[bool, str], None] | None = None

    def __attrs_post_init__(self) -> None:
        self.cache = self.counters.mem.cache("maple_node", MAPLE_NODE_BYTES)

    def reserve(self, count: int, can_block: bool) -> bool:
        """``mas_alloc_nodes()``: obtain ``count`` nodes; False on failure.

        A blocking request (``mas_nomem()``'s retry with the caller's gfp) may
        sleep: the debug kernel checks the context first."""
        if self.limbo:
            free = self.cache.free
            for addr in self.limbo:
                free(addr)
            self.limbo.clear()
        if count <= 0:
            return True
        if can_block and self.might_alloc is not None:
            self.might_alloc(True, "mas_alloc_nodes")
        faults = self.faults
        if faults is not None and faults.should_fail(can_block):
            return False
        self.counters.node_allocs += count
        self.reserved += count
        return True

    def unreserve(self, count: int) -> None:
        """``mas_destroy()`` path: give back ``count`` unused reserved nodes."""
        if count > 0:
            self.counters.node_frees += count
            self.reserved -= count

    def make(
        self,
        type_: int,
        pivots: list[int],
        slots: list[Any],
        gaps: list[int] | None,
        parent: MapleNode | None,
    ) -> MapleNode:
        """``mas_pop_node()`` + initialise: a node taken from a reservation.

        The caller has already charged the node to its reservation.
        """
        self.reserved -= 1
        self.live += 1
        self.version += 1
        return MapleNode(type_, pivots, slots, gaps, parent, self.cache.alloc() >> 8)

    def free(self, node: MapleNode) -> None:
        """``ma_free_rcu()``: a node replaced by a write; marks it dead."""
        node.parent = DEAD
        self.limbo.append(node.blk << 8)
        self.counters.node_frees += 1
        self.live -= 1
        self.version += 1
