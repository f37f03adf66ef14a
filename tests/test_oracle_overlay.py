"""The oracle's model of the per-CPU bump overlay (vmapsim.checking.oracle_overlay).

Every expected value here is worked out by hand from the rule in
docs/stages.md (stage 10's eligibility, "The chunk size, derived", the chunk
window, stage 11's defect, stage 12), never taken from the oracle's or the
model's output.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vmapsim.checking.oracle
import vmapsim.checking.oracle_overlay
from vmapsim.checking.oracle import ReferenceAllocator
from vmapsim.checking.oracle_constants import GFP_KERNEL, GFP_NOWAIT, PAGE_SIZE
from vmapsim.checking.oracle_overlay import OVERLAY_MODES, chunk_pages_for, chunk_window
from vmapsim.errors import VmapArgumentError

P = PAGE_SIZE
MiB = 1 << 20
#: x86_64 (4-level, no KASLR): VMALLOC_START and the inclusive VMALLOC_END
X86_VS = 0xFFFFC90000000000
X86_VE = 0xFFFFE8FFFFFFFFFF
#: arm64 (48-bit VA, 4 KiB pages): MODULES_END and VMEMMAP_START - 8 MiB
ARM_VS = 0xFFFF800080000000
ARM_VE = 0xFFFFFDFFBF800000
UBSAN_2048 = [
    "UBSAN: array-index-out-of-bounds in mm/vmalloc.c:2417:24",
    "index 2048 is out of range for type 'struct vmap_area *[2048]'",
]


def oracle(mode: str = "backptr", nr_cpus: int = 1, arch: str = "x86_64") -> ReferenceAllocator:
    return ReferenceAllocator(arch=arch, nr_cpus=nr_cpus, placement="gaps", overlay=mode)


# -- chunk size and window -------------------------------------------------------


@pytest.mark.parametrize(
    ("nr_cpus", "lazy_max", "pages"),
    [
        # lazy_max_pages = fls(n) * 8192; chunk = largest 2^k <= lazy_max / (4 n),
        # capped at 2048, at least 32 * 16 = 512
        (1, 8192, 2048),  # 8192 / 4 = 2048
        (2, 16384, 2048),  # 16384 / 8 = 2048
        (4, 24576, 1024),  # 24576 / 16 = 1536 -> 1024
        (8, 32768, 1024),  # 32768 / 32 = 1024
        (16, 40960, 512),  # 40960 / 64 = 640 -> 512
        (64, 57344, 512),  # 57344 / 256 = 224 -> 128, raised to 512
        (128, 65536, 512),  # 65536 / 512 = 128, raised to 512
    ],
)
def test_chunk_pages(nr_cpus: int, lazy_max: int, pages: int) -> None:
    o = oracle(nr_cpus=nr_cpus)
    assert o.lazy_max_pages() == lazy_max
    assert chunk_pages_for(nr_cpus, lazy_max) == pages
    assert o.overlay is not None and o.overlay.chunk_pages == pages


def test_uncapped_chunk_would_be_bigger() -> None:
    """The cap: 1 CPU with a huge lazy threshold still gets 2048 pages."""
    assert chunk_pages_for(1, 1 << 20) == 2048


def test_chunk_window_x86_64() -> None:
    # span 0x1fffffffffff, a sixteenth 0x1ffffffffff: lo = 0xffffe70000000000,
    # already a multiple of 8 MiB
    assert chunk_window(X86_VS, X86_VE, 8 * MiB) == (0xFFFFE70000000000, X86_VE)


def test_chunk_window_arm64_is_rounded_up() -> None:
    # span 0x7dff3f800000, a sixteenth 0x7dff3f80000: VE - it = 0xfffff61fcb880000,
    # rounded up to 8 MiB and to 2 MiB
    assert chunk_window(ARM_VS, ARM_VE, 8 * MiB) == (0xFFFFF61FCC000000, ARM_VE)
    assert chunk_window(ARM_VS, ARM_VE, 2 * MiB) == (0xFFFFF61FCBA00000, ARM_VE)


@pytest.mark.parametrize(
    ("arch", "nr_cpus", "first"),
    [
        ("x86_64", 1, 0xFFFFE70000000000),
        ("x86_64", 64, 0xFFFFE70000000000),
        ("arm64", 1, 0xFFFFF61FCC000000),
        ("arm64", 64, 0xFFFFF61FCBA00000),
    ],
)
def test_first_chunk_lands_at_the_window_base(arch: str, nr_cpus: int, first: int) -> None:
    """On an empty allocator the first chunk is the window's (aligned) base,
    and the first eligible vmalloc() gets the chunk's first page."""
    o = oracle(arch=arch, nr_cpus=nr_cpus)
    assert o.vmalloc(P) == first
    assert o.busy_areas() == [(first, first + o.overlay.chunk_bytes)]
    assert o.overlay_areas() == [(first, first + 2 * P)]


def test_each_cpu_has_its_own_chunk() -> None:
    o = oracle(nr_cpus=2)  # 2048-page (8 MiB) chunks
    a0 = o.vmalloc(P, cpu=0)
    a1 = o.vmalloc(P, cpu=1)
    b0 = o.vmalloc(P, cpu=0)
    assert a0 == 0xFFFFE70000000000
    assert a1 == a0 + 8 * MiB
    assert b0 == a0 + 2 * P
    assert [(c[2], c[3]) for c in o.overlay_chunks()] == [(0, a0 + 4 * P), (1, a1 + 2 * P)]


# -- eligibility ----------------------------------------------------------------------


def test_eligibility() -> None:
    o = oracle()
    base = 0xFFFFE70000000000
    assert o.vmalloc(15 * P) == base  # 16 pages with the guard: eligible
    assert o.vmalloc(16 * P) == X86_VS  # 17 pages: the normal path, lowest address
    # align 2 pages: the normal path; [VS + 17P, VS + 18P) is skipped by the alignment
    assert o.vmalloc_node(P, 2 * P) == X86_VS + 18 * P
    assert o.vmalloc_gfp(P, gfp=GFP_NOWAIT) == X86_VS + 20 * P  # not blocking: normal path
    area = o.alloc_vmap_area(2 * P, P, X86_VS, X86_VE, gfp=GFP_KERNEL)  # no vm_struct
    assert area.va_start == X86_VS + 22 * P
    assert o.vmalloc(P) == base + 16 * P  # back in the chunk
    assert len(o.overlay_areas()) == 2


def test_vmalloc_node_align_page_is_eligible() -> None:
    o = oracle()
    assert o.vmalloc_node(P, P) == 0xFFFFE70000000000


# -- the chunk's life ------------------------------------------------------------------


def test_exhausted_chunk_goes_back_through_the_lazy_path() -> None:
    o = oracle()
    base = 0xFFFFE70000000000
    chunk = 2048 * P
    addrs = [o.vmalloc(15 * P) for _ in range(128)]  # 128 * 16 = 2048 pages: full
    assert addrs == [base + 16 * P * i for i in range(128)]
    nxt = o.vmalloc(P)  # does not fit: retire, a new chunk above
    assert nxt == base + chunk
    assert [c[4] for c in o.overlay_chunks()] == [True, False]
    for a in addrs[:-1]:
        o.vfree(a)
    assert o.lazy_areas() == [] and o.vmap_lazy_nr == 0  # overlay frees are not lazy
    assert (base, base + chunk) in o.busy_areas()
    o.vfree(addrs[-1])  # the last live area of an exhausted chunk
    assert o.lazy_areas() == [(base, base + chunk)]
    assert o.vmap_lazy_nr == 2048
    assert (base, base + chunk) not in o.busy_areas()
    o.purge_vmap_area_lazy()
    assert (base, base + chunk) not in o.lazy_areas()
    assert any(s <= base and base + chunk <= e for s, e in o.free_areas())


def test_freed_range_is_not_reused_by_its_chunk() -> None:
    o = oracle()
    a = o.vmalloc(P)
    o.vfree(a)
    b = o.vmalloc(P)
    assert b == a + 2 * P


def test_retired_empty_chunk_goes_back_at_once() -> None:
    o = oracle()
    base = 0xFFFFE70000000000
    a = o.vmalloc(14 * P)  # 15 pages
    o.vfree(a)  # the chunk is empty but current: it stays
    assert o.overlay_chunks() == [(base, base + 2048 * P, 0, base + 15 * P, False, 0)]
    for _ in range(127):  # 127 * 16 = 2032 pages: 2047 used, one left
        o.vmalloc(15 * P)
    o.vmalloc(P)  # 2 pages do not fit in 1: retired (live areas) and a new chunk
    assert len(o.overlay_chunks()) == 2


def test_reclaim_gives_back_empty_current_chunks() -> None:
    o = oracle(nr_cpus=2)
    a0 = o.vmalloc(P, cpu=0)
    a1 = o.vmalloc(P, cpu=1)
    o.vfree(a0)  # CPU 0's chunk is empty, CPU 1's is not
    assert o.shrinkable_objects() == 1
    o.vmap_node_shrink_scan()
    assert [c[2] for c in o.overlay_chunks()] == [1]
    assert o.lazy_areas() == [(a0, a0 + 2048 * P)]
    o.vfree(a1)
    o.purge_vmap_area_lazy()  # the failure path's reclaim: CPU 1's goes too, purged
    assert o.overlay_chunks() == [] and o.lazy_areas() == []
    assert o.vmalloc(P, cpu=1) == a0  # the window is free again from its base


def test_window_full_falls_back_to_the_normal_path() -> None:
    o = oracle()
    lo, hi = o.overlay.window
    top = hi // P * P  # VMALLOC_END is inclusive (odd): the last whole page ends here
    area = o.alloc_vmap_area(top - lo, P, lo, hi)  # the whole chunk window
    assert area.va_start == lo
    assert o.vmalloc(P) == X86_VS  # no chunk: the normal path
    assert o.overlay_chunks() == [] and o.log == []  # the reservation fails silently


# -- vm_unmap_aliases ------------------------------------------------------------------


def test_vm_unmap_aliases_flushes_the_freed_sub_areas() -> None:
    o = oracle()
    a, b, c = (o.vmalloc(P) for _ in range(3))
    o.vfree(a)
    o.vfree(c)
    o.vm_unmap_aliases()
    assert o.unmap_aliases_flush == (a, c + 2 * P)
    o.vm_unmap_aliases()
    assert o.unmap_aliases_flush is None  # nothing freed since
    o.vfree(b)
    big = o.vmalloc(100 * P)  # normal path, then lazily freed
    o.vfree(big)
    o.vm_unmap_aliases()
    assert o.unmap_aliases_flush == (big, b + 2 * P)  # lazy area and sub-area together


# -- UBSAN at stage 11, never at 12 ---------------------------------------------------


@pytest.mark.parametrize("mode", ["lookup", "backptr", "bounded"])
def test_ubsan_fires_only_at_stage_11_on_an_area_ending_at_the_chunk_end(mode: str) -> None:
    o = oracle(mode)
    for _ in range(127):  # 127 * 16 = 2032 pages
        o.vmalloc(15 * P)
    assert o.log == []
    o.vmalloc(14 * P)  # 15 pages: 2047, one page left: no report
    assert o.log == []
    o.vmalloc(P)  # 2 pages do not fit: retired, the next chunk, no report
    assert o.log == []
    for _ in range(1023):  # 1 + 1023 areas of 2 pages: 2048 pages, the last ends at the end
        o.vmalloc(P)
    want = UBSAN_2048 if mode == "backptr" else []
    assert o.log == want
    assert o.overlay.ubsan_reports == (1 if mode == "backptr" else 0)


def test_ubsan_with_1024_page_chunks() -> None:
    o = oracle(nr_cpus=4)  # 1024-page chunks
    for _ in range(64):  # 64 * 16 = 1024
        o.vmalloc(15 * P, cpu=3)
    assert o.log == [
        "UBSAN: array-index-out-of-bounds in mm/vmalloc.c:2417:24",
        "index 1024 is out of range for type 'struct vmap_area *[1024]'",
    ]


def test_lookup_finds_the_live_area_or_the_chunk() -> None:
    o = oracle()
    a = o.vmalloc(3 * P)  # 4 pages
    o.vmalloc(P)
    assert o.find_vmap_area(a + 3 * P).as_tuple() == (a, a + 4 * P)
    o.vfree(a)
    assert o.find_vmap_area(a + P).as_tuple() == (a, a + 2048 * P)  # the chunk itself
    o.vfree(a)  # a freed sub-area: nothing to free
    assert o.log == [f"Trying to vfree() nonexistent vm area ({a:#x})"]


# -- setup and independence ----------------------------------------------------------------


def test_overlay_mode_is_checked() -> None:
    assert OVERLAY_MODES == ("off", "lookup", "backptr", "bounded")
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
