"""Entry point of vmapsim_test_vmalloc: registers the ``test_vmalloc`` workload."""

from __future__ import annotations

import vmapsim
from vmapsim import Workload

from .driver import run_test_vmalloc

__all__ = ["vmapsim_workloads"]


@vmapsim.hookimpl
def vmapsim_workloads() -> list[Workload]:
    return [
        Workload(
            "test_vmalloc",
            "lib/test_vmalloc.c's subtests (run_test_mask, modes smoke/performance/stress)",
            run_test_vmalloc,
        )
    ]
