"""Shared fixtures and helpers for the core tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

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

# CI runs the same examples every time (derandomized, no example database), so a
# red CI is reproducible; developers' runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
