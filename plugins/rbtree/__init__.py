"""vmapsim_rbtree: the stage-0 indexes of mm/vmalloc.c.

An augmented red-black tree over the ``rb_node`` embedded in
``struct vmap_area`` (:mod:`.rbtree`), the free index built on it
(:class:`RbFreeIndex`), list-neighbour coalescing
(:class:`ListNeighbourCoalescer`) and the per-node busy and lazy trees
(:class:`RbBusyIndex`, :class:`RbLazyQueue`).  The components are registered
by :mod:`vmapsim_rbtree.plugin`.  See docs/rbtree.md.
"""

from __future__ import annotations

from .busy import RbBusyIndex, RbLazyQueue
from .coalesce import ListNeighbourCoalescer
from .free import RbFreeIndex, is_within_this_va
from .rbtree import RbList, RbTree, compute_subtree_max_size

__all__ = [
    "ListNeighbourCoalescer",
    "RbBusyIndex",
    "RbFreeIndex",
    "RbLazyQueue",
    "RbList",
    "RbTree",
    "compute_subtree_max_size",
    "is_within_this_va",
]
