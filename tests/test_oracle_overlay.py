"""The oracle's model of the per-CPU bump overlay (vmapsim.checking.oracle_overlay).

Every expected value here is worked out by hand from the patch mails
(../shared/seed/patches/10.patch .. 12.patch, as docs/stages.md rows 10-12
state them), never taken from the oracle's or the model's output.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vmapsim.checking.oracle
import vmapsim.checking.oracle_overlay
from vmapsim.checking.oracle import ReferenceAllocator
from vmapsim.checking.oracle_constants import PAGE_SIZE
from vmapsim.checking.oracle_overlay import CHUNK_BYTES, OVERLAY_MODES
from vmapsim.errors import VmapArgumentError

P = PAGE_SIZE
MiB = 1 << 20
#: x86_64 (4-level, no KASLR): VMALLOC_START and the inclusive VMALLOC_END
X86_VS = 0xFFFFC90000000000
X86_VE = 0xFFFFE8FFFFFFFFFF


def oracle(mode: str = "patch11", nr_cpus: int = 1) -> ReferenceAllocator:
    return ReferenceAllocator(nr_cpus=nr_cpus, placement="gaps", overlay=mode)


def test_chunk_size_is_64_mib() -> None:
    assert 64 * MiB == CHUNK_BYTES  # VMAP_BUMP_CHUNK_SIZE (patch 10)
    assert oracle().overlay.chunk_pages == 16384  # VMAP_BUMP_CHUNK_PAGES (patch 11)


@pytest.mark.parametrize("mode", ["patch10", "patch11", "patch12"])
def test_eligibility(mode: str) -> None:
    ov = oracle(mode).overlay
    assert ov.eligible(32 * MiB, 32 * MiB, X86_VS, X86_VE)  # both limits are inclusive
    assert not ov.eligible(32 * MiB + P, P, X86_VS, X86_VE)
    assert not ov.eligible(P, 64 * MiB, X86_VS, X86_VE)
    assert not ov.eligible(0, P, X86_VS, X86_VE)
    assert not ov.eligible(P, P, X86_VS + P, X86_VE)  # any other window
    # patch 12 adds PAGE_ALIGNED(size) and align > 0
    assert ov.eligible(P + 1, 1, X86_VS, X86_VE) == (mode != "patch12")
    assert ov.eligible(P, 0, X86_VS, X86_VE) == (mode != "patch12")


@pytest.mark.parametrize("mode", ["patch10", "patch11", "patch12"])
def test_first_chunk_is_the_lowest_fit_and_requests_bump(mode: str) -> None:
    o = oracle(mode)
    a = o.vmalloc(P)  # 2 pages with the guard
    b = o.vmalloc(3 * P)  # 4 pages
    assert (a, b) == (X86_VS, X86_VS + 2 * P)
    assert o.overlay_chunks() == [(X86_VS, X86_VS + 64 * MiB, 0, X86_VS + 6 * P, 2)]
    # the chunk is a busy area with no vm_struct; the bump areas are in no busy tree
    assert o.busy_areas() == [(X86_VS, X86_VS + 64 * MiB)]
    assert o.free_areas()[1][0] == X86_VS + 64 * MiB
    assert o.find_vmap_area(b + P).as_tuple() == (b, b + 4 * P)
    assert o.find_vmap_area(X86_VS + 6 * P) is None  # the chunk's free tail: no area


@pytest.mark.parametrize("mode", ["patch10", "patch11", "patch12"])
def test_alignment_skips_and_a_miss_refills(mode: str) -> None:
    o = oracle(mode)
    o.vmalloc(P)  # [VS, VS + 8K)
    addr = o.vmalloc_node(P, 64 * 1024)  # ALIGN(VS + 8K, 64K) = VS + 64K
    assert addr == X86_VS + 64 * 1024
    big = o.vmalloc(32 * MiB - P)  # 32 MiB with the guard: fits the rest
    assert big == X86_VS + 64 * 1024 + 2 * P
    again = o.vmalloc(32 * MiB - P)  # does not fit: a second chunk
    assert again == X86_VS + 64 * MiB
    starts = [c[0] for c in o.overlay_chunks()]
    assert starts == [X86_VS, X86_VS + 64 * MiB]  # the first one stays (not empty)


def test_patch11_ineligible_request_still_refills() -> None:
    """vmap_bump_alloc() returns NULL for a miss and for an ineligible request alike."""
    o = oracle("patch11")
    o.vmalloc(P)
    area = o.alloc_vmap_area(P, P, X86_VS, X86_VS + (1 << 40))  # another window
    # a second chunk was reserved (lowest fit above the first), then the request
    # took the normal path: the lowest fit above that
    assert [c[0] for c in o.overlay_chunks()] == [X86_VS, X86_VS + 64 * MiB]
    assert area.va_start == X86_VS + 128 * MiB
    o12 = oracle("patch12")
    o12.vmalloc(P)
    area = o12.alloc_vmap_area(P, P, X86_VS, X86_VS + (1 << 40))
    assert [c[0] for c in o12.overlay_chunks()] == [X86_VS]  # eligibility before refill
    assert area.va_start == X86_VS + 64 * MiB


def test_patch11_cross_cpu_retire_then_use_after_free() -> None:
    o = oracle("patch11", nr_cpus=2)
    a = o.vmalloc(P, cpu=0)
    o.vfree(a, cpu=1)  # alloced -> 0, and CPU 1's current chunk is not this one
    assert o.overlay_chunks() == [] and o.busy_areas() == []
    assert o.free_areas() == [(1, (1 << 64) - 1)]  # the whole range back, at once
    b = o.vmalloc(P, cpu=0)  # CPU 0 still bumps the retired chunk: space it gave back
    assert b == X86_VS + 2 * P and o.log == []
    assert o.find_vmap_area(b) is None  # on no list: invisible to other CPUs
    o.synchronize_rcu()  # the descriptor is freed
    o.vmalloc(P, cpu=0)
    assert o.log == ["BUG: KASAN: use-after-free in vmap_bump_alloc", "Read of size 8 at addr"]
    assert o.overlay.kasan_reports == 1


def test_patch12_owner_cpu_keeps_the_chunk() -> None:
    o = oracle("patch12", nr_cpus=2)
    a = o.vmalloc(P, cpu=0)
    o.vfree(a, cpu=1)  # the owner's current chunk: kept
    assert [c[0] for c in o.overlay_chunks()] == [X86_VS]
    o.synchronize_rcu()
    assert o.vmalloc(P, cpu=0) == X86_VS + 2 * P and o.log == []


@pytest.mark.parametrize("mode", ["patch11", "patch12"])
def test_drained_current_chunk_leaks_once_replaced(mode: str) -> None:
    o = oracle(mode)
    a = o.vmalloc(31 * MiB)
    b = o.vmalloc(31 * MiB)
    o.vfree(a)
    o.vfree(b)  # drained while current: not retired
    assert o.overlay.leaked() == []
    o.vmalloc(31 * MiB)  # does not fit the rest (2 MiB - 8 KiB): a refill replaces it
    assert o.overlay.leaked() == [(X86_VS, X86_VS + 64 * MiB)]
    o.purge_vmap_area_lazy()
    assert o.overlay.leaked() == [(X86_VS, X86_VS + 64 * MiB)]  # nothing gives it back


@pytest.mark.parametrize("mode", ["patch11", "patch12"])
def test_retired_chunk_range_is_reused_at_once(mode: str) -> None:
    """Retirement gives the range back without waiting for a flush."""
    o = oracle(mode)
    a = o.vmalloc(31 * MiB)
    o.vmalloc(31 * MiB)
    o.vmalloc(31 * MiB)  # second chunk at VS + 64 MiB; the first is no longer current
    o.vfree(a)
    o.vfree(a + 31 * MiB + P)  # drained, not current: retired, range free now
    assert o.lazy_areas() == []  # no flush pending for them: they are free space now
    assert any(s <= X86_VS and X86_VS + 64 * MiB <= e for s, e in o.free_areas())


def test_patch10_forgets_old_chunks() -> None:
    o = oracle("patch10")
    a = o.vmalloc(P)
    o.vfree(a)
    o.vmalloc(31 * MiB)
    o.vmalloc(31 * MiB)
    o.vmalloc(31 * MiB)
    assert [c[0] for c in o.overlay_chunks()] == [X86_VS, X86_VS + 64 * MiB]
    assert o.overlay.leaked() == [(X86_VS, X86_VS + 64 * MiB)]


def test_shrinker_and_reclaim_leave_chunks_alone() -> None:
    o = oracle("patch11")
    a = o.vmalloc(P)
    o.vfree(a)
    assert o.shrinkable_objects() == 0
    o.vmap_node_shrink_scan()
    o.purge_vmap_area_lazy()
    assert [c[0] for c in o.overlay_chunks()] == [X86_VS]


# -- setup and independence ----------------------------------------------------------------


def test_overlay_mode_is_checked() -> None:
    assert OVERLAY_MODES == ("off", "patch10", "patch11", "patch12")
    with pytest.raises(VmapArgumentError, match="overlay"):
        ReferenceAllocator(overlay="pcpu-bump")
    assert ReferenceAllocator().overlay is None


@pytest.mark.parametrize("module", [vmapsim.checking.oracle, vmapsim.checking.oracle_overlay])
def test_the_oracle_imports_nothing_from_the_flow_or_plugins(module: object) -> None:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    allowed = {
        "vmapsim.errors",
        "vmapsim.checking.oracle_constants",
        "vmapsim.checking.oracle_overlay",
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module.__name__} imports .{node.module}"
            if node.module.startswith("vmapsim"):
                assert node.module in allowed, f"{module.__name__} imports {node.module}"
            else:
                assert node.module in {"__future__", "collections", "collections.abc", "attrs"}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert not alias.name.startswith("vmapsim"), alias.name
