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
            "patches 10-12's per-CPU bump path: 64 MiB chunks from __alloc_vmap_area(), "
            "page_va[] descriptors from patch 11, owner_cpu from patch 12 (feature pcpu_bump)",
        )
    ]


@vmapsim.hookimpl
def vmapsim_workloads() -> list[vmapsim.Workload]:
    return list(WORKLOADS)
