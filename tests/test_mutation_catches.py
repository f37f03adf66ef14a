"""Kernel rules of core/ that the rest of the suite pins only loosely.

Each test here was added because a behaviour mutation listed in
benchmarks/mutation_probe.py survived the suite: the rule-based oracles
accept every placement the kernel's pruned search *may* return, so a flow
that passed the wrong ``adjust_search_size`` to the search went unnoticed.
"""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, VMALLOC_END, VMALLOC_START

P = PAGE_SIZE
XS = VMALLOC_START
XE = VMALLOC_END


@pytest.mark.parametrize(
    ("size", "align", "window", "adjust"),
    [
        # __alloc_vmap_area(): adjust_search_size is on only for align > PAGE_SIZE ...
        (P, 1, None, False),
        (P, P, None, False),
        (P, 2 * P, None, True),
        (3 * P, 1 << 21, None, True),
        # ... and never when the window is exactly the size (an exact-fit request)
        (4 * P, 16 * P, 4 * P, False),
        (4 * P, 16 * P, 5 * P, True),
    ],
)
def test_alloc_passes_adjust_search_size_as_the_kernel(
    size: int, align: int, window: int | None, adjust: bool, monkeypatch
) -> None:
    """``adjust_search_size = !(align <= PAGE_SIZE || vend - vstart == size)``."""
    a = vmapsim.build(0, debug=True)
    calls: list[tuple[int, int, int, bool]] = []
    index = type(a.free)  # whatever the stage's free index is (a slotted class)
    real = index.find_vmap_lowest_match

    def spy(self, sz: int, al: int, vstart: int, adj: bool):
        calls.append((sz, al, vstart, adj))
        return real(self, sz, al, vstart, adj)

    monkeypatch.setattr(index, "find_vmap_lowest_match", spy)
    vstart = XS + 64 * P
    vend = XE if window is None else vstart + window
    va = a.alloc_vmap_area(size, align, vstart, vend)
    assert va.va_start % align == 0 and vstart <= va.va_start and va.va_end <= vend
    assert calls == [(size, align, vstart, adjust)]
