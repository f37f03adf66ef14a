"""vmapsim_pcpu_overlay on its own: the bounds-checked array and the eligibility rule."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, Counters, VmapArea
from vmapsim_pcpu_overlay import BoundsCheckedArray, UbsanError

P = PAGE_SIZE


def test_bounds_checked_array_reports_like_ubsan() -> None:
    log: list[str] = []
    c = Counters()
    arr = BoundsCheckedArray(8, c, log.append)
    va = VmapArea(P, 2 * P)
    arr[7] = va
    assert arr[7] is va and log == [] and c.ubsan_reports == 0
    arr[8] = va  # one past the end: dropped, reported
    assert arr[-1] is None  # a negative index is out of range too (no wrap-around)
    assert c.ubsan_reports == 2
    assert log[0].startswith("UBSAN: array-index-out-of-bounds in mm/vmalloc.c:")
    assert log[1] == "index 8 is out of range for type 'struct vmap_area *[8]'"
    assert log[3] == "index -1 is out of range for type 'struct vmap_area *[8]'"
    assert list(arr)[:7] == [None] * 7


def test_bounds_checked_array_raises_in_debug() -> None:
    arr = BoundsCheckedArray(4, Counters(), lambda _m: None, debug=True)
    with pytest.raises(UbsanError, match="index 4 is out of range"):
        arr[4] = None


@pytest.mark.parametrize("stage", [10, 11, 12])
def test_eligible_is_the_documented_rule(stage: int) -> None:
    a = vmapsim.build(stage)
    ov = a.overlay
    vs, ve = a.vmalloc_start, a.vmalloc_end
    assert ov.eligible(16 * P, P, vs, ve, True)
    assert ov.eligible(P, 1, vs, ve, True)
    assert not ov.eligible(17 * P, P, vs, ve, True)
    assert not ov.eligible(P, 2 * P, vs, ve, True)
    assert not ov.eligible(P, P, vs, ve, False)
    assert not ov.eligible(P, P, vs + P, ve, True)
    assert not ov.eligible(P, P, vs, ve - P, True)


def test_overlay_component_swaps_in_on_stage_9() -> None:
    """The overlay is a component like any other: stage 9 with overlay=pcpu-bump."""
    a = vmapsim.build(9, components={"overlay": "pcpu-bump"}, debug=True)
    addr = a.vmalloc(P)
    lo, hi = a.overlay.window
    assert lo <= addr < hi
    a.vfree(addr)
    a.check_invariants()
