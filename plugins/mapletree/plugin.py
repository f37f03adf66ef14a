"""Entry point of vmapsim_mapletree: maple-tree components for the flow's roles."""

from __future__ import annotations

import vmapsim

from .components import make_busy, make_lazy


@vmapsim.hookimpl
def vmapsim_index_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "maple",
            {"busy"},
            make_busy,
            "busy vmap_areas as maple-tree ranges [va_start, va_end - 1], one tree per vmap node",
        )
    ]


@vmapsim.hookimpl
def vmapsim_lazy_purge_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "maple",
            {"lazy"},
            make_lazy,
            "lazily freed vmap_areas as maple-tree ranges, drained whole",
        )
    ]
