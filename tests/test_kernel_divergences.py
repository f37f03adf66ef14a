"""Stage 0 where it used to differ from the kernel (issue #14, part 1).

Expected values are worked out from the kernel's headers and mm/vmalloc.c
(include/linux/gfp_types.h, arch/arm64/include/asm/memory.h and pgtable.h,
``__vmalloc_node_range_noprof`` and ``alloc_vmap_area``), never captured
from a run of the model.
"""

from __future__ import annotations

import errno

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import VmapArgumentError, VmapError, VmapTypeError
from vmapsim.kernel.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, Gfp

#: More than x86_64's 32 TiB vmalloc window: a request that always fails.
TOO_BIG = 33 << 40
NOFAIL = int(Gfp.NOFAIL)
NOWARN = int(Gfp.NOWARN)


@pytest.fixture
def busy():
    """An allocator with busy, lazy and free structure (2 CPUs, checked)."""
    a = vmapsim.build(0, nr_cpus=2, debug=True)
    addrs = [a.vmalloc(k * P, cpu=k % 2) for k in (1, 2, 3, 4)]
    a.vfree(addrs[1])
    return a


def _warn_alloc_lines(a: vmapsim.VmapAllocator) -> list[str]:
    return [m for m in a.log if "vmalloc error:" in m]


# -- 1. GFP_NOWAIT includes __GFP_NOWARN -------------------------------------------


def test_gfp_composites_have_the_header_values():
    # gfp_types.h bits: HIGH 0x20, IO 0x40, FS 0x80, DIRECT_RECLAIM 0x400,
    # KSWAPD_RECLAIM 0x800, NOWARN 0x2000
    assert int(GFP_NOWAIT) == 0x800 | 0x2000  # __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
    assert int(GFP_ATOMIC) == 0x20 | 0x800  # __GFP_HIGH | __GFP_KSWAPD_RECLAIM
    assert int(GFP_KERNEL) == 0x400 | 0x800 | 0x40 | 0x80  # __GFP_RECLAIM | IO | FS


def test_failing_vmalloc_node_with_gfp_nowait_prints_nothing(busy):
    before = snapshot(busy)
    assert busy.vmalloc_node(TOO_BIG, 1, gfp=GFP_NOWAIT) is None
    assert busy.log == []  # non-blocking: no purge, no pr_warn; NOWARN: no warn_alloc
    assert snapshot(busy) == before


def test_failing_vmalloc_node_with_gfp_atomic_still_warns(busy):
    assert busy.vmalloc_node(TOO_BIG, 1, gfp=GFP_ATOMIC) is None
    [line] = busy.log  # non-blocking: only warn_alloc() speaks
    assert f"vmalloc error: size {TOO_BIG}, vm_struct allocation failed, mode:0x820" in line


# -- 2. arm64 VMALLOC_END from the current memory layout ------------------------------

#: VA_BITS 48, 4 KiB pages, 64-byte struct page:
#: PAGE_OFFSET = -(1 << 48), PAGE_END = -(1 << 47), VMEMMAP_SIZE = (2**47 >> 12) * 64 = 2 TiB,
#: VMEMMAP_END = -SZ_1G = 0xffffffffc0000000, VMEMMAP_START = 0xfffffdffc0000000,
#: VMALLOC_END = VMEMMAP_START - SZ_8M; VMALLOC_START = MODULES_END = PAGE_END + SZ_2G.
ARM64_VMALLOC_START = 0xFFFF800080000000
ARM64_VMALLOC_END = 0xFFFFFDFFBF800000


def test_arm64_window_is_the_current_layout():
    arm = vmapsim.ARCHES["arm64"]
    assert (arm.vmalloc_start, arm.vmalloc_end) == (ARM64_VMALLOC_START, ARM64_VMALLOC_END)


def test_arm64_vmalloc_can_fill_the_window_up_to_vmalloc_end():
    a = vmapsim.build(0, arch="arm64", debug=True)
    whole = ARM64_VMALLOC_END - ARM64_VMALLOC_START
    addr = a.vmalloc(whole - P)  # plus the guard page: exactly the window
    assert addr == ARM64_VMALLOC_START
    assert a.find_vmap_area(addr).va_end == ARM64_VMALLOC_END
    assert a.vmalloc(1) is None  # nothing left


# -- 3. the __GFP_NOFAIL failure line -------------------------------------------------


def test_nofail_failure_line_ends_with_retrying(busy):
    gfp = int(GFP_KERNEL) | NOFAIL
    assert busy.vmalloc_node(TOO_BIG, 1, gfp=gfp) is None
    [line] = _warn_alloc_lines(busy)
    assert f"vmalloc error: size {TOO_BIG}, vm_struct allocation failed. Retrying.," in line
    assert line.endswith(f"mode:{gfp:#x}")


def test_without_nofail_there_is_no_retrying_suffix(busy):
    assert busy.vmalloc_node(TOO_BIG, 1) is None
    [line] = _warn_alloc_lines(busy)
    assert f"vm_struct allocation failed, mode:{int(GFP_KERNEL):#x}" in line


def test_nofail_with_nowarn_prints_no_warn_alloc_line(busy):
    assert busy.vmalloc_node(TOO_BIG, 1, gfp=int(GFP_KERNEL) | NOFAIL | NOWARN) is None
    assert busy.log == []


# -- 4. non-power-of-two align at the kernel's entry points ----------------------------

BAD_ALIGNS = [0, 3, 3 * P, P + 1, (1 << 63) + 1]


@pytest.mark.parametrize("align", BAD_ALIGNS)
def test_vmalloc_node_bad_align_returns_null_and_warns(busy, align):
    # alloc_vmap_area() -> ERR_PTR(-EINVAL); __get_vm_area_node() -> NULL;
    # __vmalloc_node_range() -> warn_alloc(), NULL
    before = snapshot(busy)
    calls = busy.metrics["alloc_calls"]
    assert busy.vmalloc_node(5 * P, align) is None
    assert len(busy.log) == 1
    assert busy.log[0].endswith(
        f"vmalloc error: size {5 * P}, vm_struct allocation failed, mode:{int(GFP_KERNEL):#x}"
    )
    assert snapshot(busy) == before
    assert busy.metrics["purges"] == 0
    assert busy.metrics["alloc_calls"] == calls  # rejected before any search


@pytest.mark.parametrize("align", [0, 3 * P])
def test_vmalloc_node_bad_align_with_nowarn_is_silent(busy, align):
    before = snapshot(busy)
    assert busy.vmalloc_node(P, align, gfp=int(GFP_KERNEL) | NOWARN) is None
    assert busy.log == []
    assert snapshot(busy) == before


def test_vmalloc_node_bad_align_with_nofail_says_retrying(busy):
    assert busy.vmalloc_node(P, 3, gfp=int(GFP_KERNEL) | NOFAIL) is None
    [line] = busy.log
    assert "vm_struct allocation failed. Retrying.," in line


@pytest.mark.parametrize(
    ("size", "align", "argument"),
    [
        (0, P, "size"),
        (P + 1, P, "size"),
        (100, P, "size"),
        (P, 3, "align"),
        (P, 0, "align"),
        (P, 3 * P, "align"),
    ],
)
def test_alloc_vmap_area_einval_is_the_kernel_error(busy, size, align, argument):
    before = snapshot(busy)
    xs, xe = vmapsim.VMALLOC_START, vmapsim.VMALLOC_END
    with pytest.raises(VmapError) as ei:
        busy.alloc_vmap_area(size, align, xs, xe)
    assert ei.value.errno == errno.EINVAL  # as its ERR_PTR(-EINVAL)
    assert not isinstance(ei.value, (VmapArgumentError, VmapTypeError))
    assert argument in str(ei.value)
    assert snapshot(busy) == before
    assert busy.log == []


@pytest.mark.parametrize(
    ("kwargs", "exc", "argument"),
    [
        ({"align": -1}, VmapArgumentError, "align"),
        ({"align": 1 << 64}, VmapArgumentError, "align"),
        ({"align": 4096.0}, VmapTypeError, "align"),
        ({"align": True}, VmapTypeError, "align"),
        ({"cpu": 2}, VmapArgumentError, "cpu"),
        ({"gfp": -1}, VmapArgumentError, "gfp"),
        ({"gfp": 1 << 32}, VmapArgumentError, "gfp"),
        ({"gfp": "GFP_KERNEL"}, VmapTypeError, "gfp"),
    ],
)
def test_vmalloc_node_refuses_what_the_kernel_cannot_receive(busy, kwargs, exc, argument):
    before = snapshot(busy)
    call = {"align": P, **kwargs}
    align = call.pop("align")
    with pytest.raises(exc) as ei:
        busy.vmalloc_node(P, align, **call)
    assert ei.value.argument == argument and ei.value.errno == errno.EINVAL
    assert snapshot(busy) == before
    assert busy.log == []
