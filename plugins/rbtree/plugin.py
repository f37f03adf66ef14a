"""Entry point of vmapsim_rbtree: the stage-0 index components.

Registers, through vmapsim's hooks:

* ``free=rb``: :class:`~vmapsim_rbtree.free.RbFreeIndex` (one per allocator;
  stored in ``ctx.shared["free"]`` for the coalescer);
* ``busy=rb``: :class:`~vmapsim_rbtree.busy.RbBusyIndex` (one per vmap node);
* ``lazy=rb``: :class:`~vmapsim_rbtree.busy.RbLazyQueue` (one per vmap node);
* ``coalesce=list-neighbour``:
  :class:`~vmapsim_rbtree.coalesce.ListNeighbourCoalescer` over the free
  index found in ``ctx.shared["free"]``.

Every factory reads the stage's ``struct vmap_area`` layout from
``ctx.params["layout"]`` (default ``vmapsim.kernel.layout.VMAP_AREA_RB``) for the
cache-line model.
"""

from __future__ import annotations

import vmapsim
from vmapsim import Component, ComponentContext, ComponentError

from .busy import RbBusyIndex, RbLazyQueue
from .coalesce import ListNeighbourCoalescer
from .free import RbFreeIndex
from .rbtree import layout_from_params

__all__ = [
    "make_busy",
    "make_coalescer",
    "make_free",
    "make_lazy",
    "vmapsim_coalescing_components",
    "vmapsim_index_components",
    "vmapsim_lazy_purge_components",
]


def _node_name(base: str, ctx: ComponentContext) -> str:
    return base if ctx.node_id is None else f"{base}[node {ctx.node_id}]"


def make_free(ctx: ComponentContext) -> RbFreeIndex:
    """Build ``free_vmap_area_root`` and publish it as ``ctx.shared["free"]``."""
    free = RbFreeIndex(ctx.counters, ctx.warn, layout_from_params(ctx.params))
    ctx.shared["free"] = free
    return free


def make_busy(ctx: ComponentContext) -> RbBusyIndex:
    """Build one vmap node's ``busy`` rb_list."""
    return RbBusyIndex(
        ctx.counters, ctx.warn, layout_from_params(ctx.params), _node_name("busy", ctx)
    )


def make_lazy(ctx: ComponentContext) -> RbLazyQueue:
    """Build one vmap node's ``lazy`` rb_list."""
    return RbLazyQueue(
        ctx.counters, ctx.warn, layout_from_params(ctx.params), _node_name("lazy", ctx)
    )


def make_coalescer(ctx: ComponentContext) -> ListNeighbourCoalescer:
    """Build the coalescer over the free index built for the same allocator."""
    free = ctx.shared.get("free")
    if not isinstance(free, RbFreeIndex):
        raise ComponentError(
            "coalesce=list-neighbour needs free=rb built first for the same allocator "
            f"(ctx.shared['free'] is {type(free).__name__})"
        )
    return ListNeighbourCoalescer(free)


@vmapsim.hookimpl
def vmapsim_index_components() -> list[Component]:
    return [
        Component(
            "rb", {"free"}, make_free, "augmented rb-tree + sorted list (free_vmap_area_root)"
        ),
        Component("rb", {"busy"}, make_busy, "rb-tree + sorted list per vmap node (vn->busy)"),
    ]


@vmapsim.hookimpl
def vmapsim_lazy_purge_components() -> list[Component]:
    return [Component("rb", {"lazy"}, make_lazy, "rb-tree + sorted list per vmap node (vn->lazy)")]


@vmapsim.hookimpl
def vmapsim_coalescing_components() -> list[Component]:
    return [
        Component(
            "list-neighbour",
            {"coalesce"},
            make_coalescer,
            "merge with the sorted free list's neighbours (__merge_or_add_vmap_area)",
        )
    ]
