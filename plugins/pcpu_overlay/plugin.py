"""Entry point of vmapsim_pcpu_overlay: ``overlay=pcpu-bump`` and the ``module_load`` workload."""

from __future__ import annotations

import vmapsim

from .overlay import make_overlay
from .workload import WORKLOADS

__all__ = ["vmapsim_overlay_components", "vmapsim_workloads"]


@vmapsim.hookimpl
def vmapsim_overlay_components() -> list[vmapsim.Component]:
    return [
        vmapsim.Component(
            "pcpu-bump",
            {"overlay"},
            make_overlay,
            "per-CPU chunks reserved through alloc_vmap_area(), bump-allocated for small "
            "page-aligned blocking vmalloc()s (back-pointer array with pcpu_backptr)",
        )
    ]


@vmapsim.hookimpl
def vmapsim_workloads() -> list[vmapsim.Workload]:
    return list(WORKLOADS)
