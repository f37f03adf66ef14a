"""vmapsim_pcpu_overlay on its own: the bounds-checked array, KASAN's lines, the component."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, Counters, VmapArea
from vmapsim_pcpu_overlay import BoundsCheckedArray, UbsanError, kasan_report

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


def test_bounds_checked_fill_reports_each_bad_index() -> None:
    """Patch 11's indexed loop as UBSAN instruments it: in-range slots written,
    each index past the end reported."""
    log: list[str] = []
    c = Counters()
    arr = BoundsCheckedArray(8, c, log.append)
    va = VmapArea(P, 2 * P)
    arr.fill(6, 2, va)
    assert arr.slots[6:] == [va, va] and c.ubsan_reports == 0
    arr.fill(7, 2, va)
    assert (
        c.ubsan_reports == 1
        and log[1] == "index 8 is out of range for type 'struct vmap_area *[8]'"
    )


def test_kasan_report_lines() -> None:
    assert kasan_report("use-after-free", "vmap_bump_alloc", 0xFFFF888100000000, 8, 3) == [
        "BUG: KASAN: use-after-free in vmap_bump_alloc",
        "Read of size 8 at addr ffff888100000000 on CPU 3 (the task is not modelled)",
    ]


def test_overlay_component_swaps_in_on_stage_9() -> None:
    """The overlay is a component like any other: stage 9 with overlay=pcpu-bump
    (patch 10's rules without the pcpu_bump feature)."""
    a = vmapsim.build(9, components={"overlay": "pcpu-bump"}, debug=True)
    assert a.overlay.mode == 10
    addr = a.vmalloc(P)
    (chunk,) = a.overlay.chunks()
    assert chunk.base == addr == a.vmalloc_start
    a.vfree(addr)
    a.check_invariants()


def test_pcpu_bump_feature_is_checked() -> None:
    from vmapsim_pcpu_overlay import PcpuBumpOverlay

    a = vmapsim.build(12)
    params = {"arch": a.arch, "pcpu_bump": 13}
    with pytest.raises(ValueError, match="pcpu_bump must be 10, 11 or 12"):
        PcpuBumpOverlay(Counters(), print, params)
