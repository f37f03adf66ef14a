"""Entry point of vmapsim_listhead: ``lazy=listhead``."""

from __future__ import annotations

import vmapsim
from vmapsim import ComponentContext

from .queue import ListHeadLazyQueue

__all__ = ["make_lazy", "vmapsim_lazy_purge_components"]


def make_lazy(ctx: ComponentContext) -> ListHeadLazyQueue:
    """Factory for ``lazy=listhead``: one list per vmap node."""
    return ListHeadLazyQueue(ctx.counters, ctx.warn, f"lazy[{ctx.node_id}]")


@vmapsim.hookimpl
def vmapsim_lazy_purge_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "listhead",
            {"lazy"},
            make_lazy,
            "lazily freed vmap_areas on a plain list_head per vmap node (append; drain splices)",
        )
    ]
