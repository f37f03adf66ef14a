"""Bad input: a clear error naming the argument and the rule, or the kernel's
warning, and in every case the allocator's state is unchanged."""

from __future__ import annotations

import errno

import pytest

import vmapsim
from conftest import P, snapshot
from vmapsim import ULONG_MAX, VmapArgumentError, VmapError, VmapTypeError

XS = vmapsim.VMALLOC_START
XE = vmapsim.VMALLOC_END


#: every stage of the maple series that exists (docs/stages.md rows 0-7)
STAGES = range(8)


@pytest.fixture(params=STAGES, ids=[f"stage{n}" for n in STAGES])
def stage(request) -> int:
    """Each bad-input case runs on every stage: each must refuse it the same way."""
    return request.param


@pytest.fixture
def busy(stage):
    """An allocator with some busy, lazy and free structure to disturb."""
    a = vmapsim.build(stage, nr_cpus=2, debug=True)
    addrs = [a.vmalloc(k * P, cpu=k % 2) for k in (1, 2, 3, 4)]
    a.vfree(addrs[1])
    return a, addrs


# Size 0, an unaligned size and an align that is no power of two are values the
# kernel receives and refuses with -EINVAL: tests/test_kernel_divergences.py.
@pytest.mark.parametrize(
    ("args", "argument", "rule"),
    [
        ((P, P, XE, XS), "vstart", "below vend"),
        ((P, P, XS, XS), "vstart", "below vend"),
        ((P, P, -1, XE), "vstart", "[0, 2**64 - 1]"),
        ((P, P, XS, ULONG_MAX + 1), "vend", "[0, 2**64 - 1]"),
        ((ULONG_MAX + 1, P, XS, XE), "size", "[0, 2**64 - 1]"),
        ((-P, P, XS, XE), "size", "[0, 2**64 - 1]"),
        ((P, -1, XS, XE), "align", "[0, 2**64 - 1]"),
        ((P, 1 << 64, XS, XE), "align", "[0, 2**64 - 1]"),
    ],
)
def test_alloc_vmap_area_rejects_bad_values(busy, args, argument, rule):
    a, _ = busy
    before = snapshot(a)
    with pytest.raises(VmapArgumentError) as ei:
        a.alloc_vmap_area(*args)
    assert ei.value.errno == errno.EINVAL
    assert ei.value.argument == argument
    assert argument in str(ei.value) and rule in str(ei.value)
    assert snapshot(a) == before
    assert a.log == []


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        ((4096.0, P, XS, XE), "size"),
        (("4096", P, XS, XE), "size"),
        ((P, True, XS, XE), "align"),
        ((P, P, None, XE), "vstart"),
        ((P, P, XS, float(XE)), "vend"),
    ],
)
def test_alloc_vmap_area_rejects_non_ints(busy, args, argument):
    a, _ = busy
    before = snapshot(a)
    with pytest.raises(VmapTypeError) as ei:
        a.alloc_vmap_area(*args)
    assert ei.value.argument == argument and "must be an int" in str(ei.value)
    assert isinstance(ei.value, TypeError)
    assert snapshot(a) == before


@pytest.mark.parametrize("cpu", [-1, 2, 99])
def test_cpu_out_of_range(busy, cpu):
    a, addrs = busy
    before = snapshot(a)
    with pytest.raises(VmapArgumentError, match=r"cpu: must be in \[0, 1\]"):
        a.vmalloc(P, cpu=cpu)
    with pytest.raises(VmapArgumentError, match="cpu"):
        a.vfree(addrs[0], cpu=cpu)
    assert snapshot(a) == before


@pytest.mark.parametrize("size", [-1, 1.5, "x", None, ULONG_MAX + 1])
def test_vmalloc_bad_size(busy, size):
    a, _ = busy
    before = snapshot(a)
    with pytest.raises(VmapError, match="size"):
        a.vmalloc(size)
    assert snapshot(a) == before


@pytest.mark.parametrize("align", [-1, ULONG_MAX + 1])
def test_vmalloc_node_align_outside_unsigned_long(busy, align):
    a, _ = busy
    before = snapshot(a)
    with pytest.raises(VmapArgumentError, match=r"align: must be in \[0, 2\*\*64 - 1\]"):
        a.vmalloc_node(P, align)
    assert snapshot(a) == before
    assert a.log == []


def test_vfree_unaligned_address_warns_and_changes_nothing(busy):
    a, addrs = busy
    before = snapshot(a)
    a.vfree(addrs[0] + 8)
    assert snapshot(a) == before
    assert a.log[-2:] == [
        f"WARNING: Trying to vfree() bad address ({addrs[0] + 8:#x})",
        f"WARNING: Trying to vfree() nonexistent vm area ({addrs[0] + 8:#x})",
    ]


def test_vfree_of_an_address_that_is_no_area(busy):
    a, _ = busy
    before = snapshot(a)
    a.vfree(XS + (1 << 40))
    assert snapshot(a) == before
    assert a.log == [f"WARNING: Trying to vfree() nonexistent vm area ({XS + (1 << 40):#x})"]


def test_vfree_inside_an_area_but_not_its_start(busy):
    a, addrs = busy
    before = snapshot(a)
    a.vfree(addrs[3] + P)
    assert snapshot(a) == before
    assert "is inside" in a.log[0] and "not its start" in a.log[0]
    assert a.find_vmap_area(addrs[3]).va_start == addrs[3]


def test_double_vfree_warns_and_changes_nothing(busy):
    a, addrs = busy
    before = snapshot(a)
    a.vfree(addrs[1])  # freed by the fixture already (lazy now)
    assert snapshot(a) == before
    assert a.log == [f"WARNING: Trying to vfree() nonexistent vm area ({addrs[1]:#x})"]
    a.purge_vmap_area_lazy()
    after_purge = snapshot(a)
    a.vfree(addrs[1])  # and once it has been purged
    assert snapshot(a) == after_purge


def test_vfree_of_an_area_without_vm_struct_is_refused(busy):
    a, _ = busy
    va = a.alloc_vmap_area(2 * P, P, XS, XE)
    before = snapshot(a)
    a.vfree(va.va_start)
    assert snapshot(a) == before
    assert a.log[-1].endswith(f"nonexistent vm area ({va.va_start:#x})")


def test_double_free_vmap_area_noflush(busy):
    a, _ = busy
    va = a.alloc_vmap_area(2 * P, P, XS, XE)
    a.free_vmap_area_noflush(va)
    before = snapshot(a)
    a.free_vmap_area_noflush(va)
    assert snapshot(a) == before
    assert "not busy" in a.log[-1]
    with pytest.raises(VmapTypeError, match="area"):
        a.free_vmap_area_noflush("not an area")


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"arch": "mips"}, "arch"),
        ({"nr_cpus": 0}, "nr_cpus"),
        ({"nr_cpus": "4"}, "nr_cpus"),
        ({"seed": 1.0}, "seed"),
        ({"debug": "yes"}, "debug"),
        ({"components": {"cache": "rb"}}, "components"),
    ],
)
def test_build_rejects_bad_arguments(stage, kwargs, argument):
    with pytest.raises(VmapError) as ei:
        vmapsim.build(stage, **kwargs)
    assert ei.value.argument == argument


def test_find_vmap_area_bad_address(busy):
    a, _ = busy
    with pytest.raises(VmapArgumentError, match="addr"):
        a.find_vmap_area(-5)
    assert a.find_vmap_area(1) is None


@pytest.mark.parametrize(
    ("gfp", "error"),
    [(-1, VmapArgumentError), (1 << 32, VmapArgumentError), ("GFP_KERNEL", VmapTypeError)],
)
def test_gfp_outside_gfp_t(busy, gfp, error):
    a, _ = busy
    before = snapshot(a)
    with pytest.raises(error) as ei:
        a.vmalloc_node(P, P, gfp=gfp)
    assert ei.value.argument == "gfp"
    with pytest.raises(error) as ei:
        a.alloc_vmap_area(P, P, XS, XE, gfp=gfp)
    assert ei.value.argument == "gfp"
    assert snapshot(a) == before
    assert a.log == []


def test_bad_input_before_vmalloc_init_brings_nothing_up(stage):
    """Before vmalloc_init() a refused call changes nothing, not even at the
    stages that bring maple up on first use (row 1): the refusal comes first."""
    a = vmapsim.build(stage, init=False, debug=True)
    with pytest.raises(VmapArgumentError, match="size"):
        a.alloc_vmap_area(-P, P, XS, XE)
    with pytest.raises(VmapArgumentError, match="vstart"):
        a.alloc_vmap_area(P, P, XE, XS)
    assert a.vmalloc(0) is None  # the kernel's zero-size WARN, no area
    assert a.find_vmap_area(XS) is None
    a.vfree(XS)
    assert a.log[-1] == f"WARNING: Trying to vfree() nonexistent vm area ({XS:#x})"
    assert not a.vmap_initialized
    a.vmalloc_init()
    a.check_invariants()
