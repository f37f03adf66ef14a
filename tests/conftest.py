"""Shared fixtures and helpers for the core tests."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE


def snapshot(a: vmapsim.VmapAllocator) -> tuple:
    """Everything observable about an allocator's address space (for 'state unchanged')."""
    return (
        tuple((v.va_start, v.va_end) for v in a.free_areas()),
        tuple((v.va_start, v.va_end, v.flags) for v in a.busy_areas()),
        tuple((v.va_start, v.va_end) for v in a.lazy_areas()),
        tuple((v.va_start, v.va_end) for v in a.pooled_areas()),
        a.vmap_lazy_nr,
    )


@pytest.fixture
def a0() -> vmapsim.VmapAllocator:
    """A stage-0 allocator, 1 CPU, invariants checked after every operation."""
    return vmapsim.build(0, debug=True)


P = PAGE_SIZE
