"""Fault injection for every allocation the model makes, and kvmalloc.

The injectors follow Documentation/fault-injection/fault-injection.rst and
mm/failslab.c / mm/fail_page_alloc.c (defaults: failslab ignore-gfp-wait=Y,
fail_page_alloc ignore-gfp-wait=Y, ignore-gfp-highmem=Y, min-order=1;
``__GFP_NOFAIL`` never fails).  kvmalloc follows mm/slub.c of the series'
2026 base (``kmalloc_gfp_adjust()``, then the vmalloc fallback, non-blocking
requests included).  Boot allocations follow mm/vmalloc.c ``vmalloc_init()``
and ``vmap_init_free_space()`` (GFP_NOWAIT, ``WARN_ON_ONCE`` and go on)."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import (
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOWAIT,
    PAGE_SIZE,
    FailPageAllocConfig,
    FailslabConfig,
    FaultInjector,
    Gfp,
)
from vmapsim.checking.faultspec import FaultSpecError, parse_faults
from vmapsim.kernel.kvmalloc import (
    INT_MAX,
    get_order,
    kmalloc_cache_name,
    kmalloc_gfp_adjust,
)
from vmapsim.testing import inject_faults
from vmapsim.tools.cli import main

P = PAGE_SIZE
K = int(GFP_KERNEL)
NOWAIT = int(GFP_NOWAIT)
HIGHMEM = int(Gfp.HIGHMEM)
NOFAIL = int(Gfp.NOFAIL)
#: sizeof(struct vmap_bump_chunk), patches 11-12
DESC = 131_136


# -- the injectors ------------------------------------------------------------------------


def test_failslab_filters_as_the_kernel():
    fi = FaultInjector(FailslabConfig(probability=100, cache_filter={"kmalloc", "vmap_area"}))
    assert fi.should_failslab("kmalloc-256", NOWAIT)  # 'kmalloc': every kmalloc cache
    assert fi.should_failslab("vmap_area", NOWAIT)
    assert not fi.should_failslab("maple_node", NOWAIT)  # not in the filter
    assert not fi.should_failslab("vmap_area", K)  # ignore-gfp-wait
    assert not fi.should_failslab("vmap_area", NOWAIT | NOFAIL)  # __GFP_NOFAIL
    # the old entry point still answers (other helpers call it)
    assert fi.should_fail(False, "vmap_area") and not fi.should_fail(True, "vmap_area")
    assert fi.failures == fi.slab_failures == 3 and fi.page_failures == 0


def test_fail_page_alloc_min_order_highmem_and_wait():
    page = FailPageAllocConfig(probability=100, min_order=6)
    fi = FaultInjector(FailslabConfig(fail_page_alloc=page))
    assert fi.enabled
    assert not fi.should_fail_alloc_page(NOWAIT, 5)  # below min-order
    assert fi.should_fail_alloc_page(NOWAIT, 6)
    assert not fi.should_fail_alloc_page(NOWAIT | HIGHMEM, 6)  # ignore-gfp-highmem
    assert not fi.should_fail_alloc_page(K, 6)  # ignore-gfp-wait
    assert not fi.should_fail_alloc_page(NOWAIT | NOFAIL, 6)
    assert not fi.should_failslab("vmap_area", NOWAIT)  # failslab is off
    fi.configure(
        FailslabConfig(
            fail_page_alloc=FailPageAllocConfig(
                probability=100, min_order=0, ignore_gfp_highmem=False, ignore_gfp_wait=False
            )
        )
    )
    assert fi.should_fail_alloc_page(K | HIGHMEM, 0)


def test_interval_and_times_count_eligible_calls_only():
    page = FailPageAllocConfig(probability=100, interval=3, times=2)
    fi = FaultInjector(FailslabConfig(fail_page_alloc=page))
    got = [fi.should_fail_alloc_page(NOWAIT, 0 if i % 2 else 1) for i in range(14)]
    # only the order-1 calls (even i) are eligible; every 3rd of them fails, twice
    eligible = [g for i, g in enumerate(got) if i % 2 == 0]
    assert eligible == [False, False, True, False, False, True, False]
    assert not any(g for i, g in enumerate(got) if i % 2)
    assert fi.page_failures == 2 and not fi.enabled


def test_injection_is_deterministic_for_a_seed():
    def draws(seed: int) -> list[bool]:
        page = FailPageAllocConfig(probability=50, seed=seed)
        fi = FaultInjector(FailslabConfig(probability=50, seed=seed, fail_page_alloc=page))
        return [
            fi.should_fail_alloc_page(NOWAIT, 3) if i % 2 else fi.should_failslab("x", NOWAIT)
            for i in range(64)
        ]

    assert draws(4) == draws(4) != draws(5)


# -- --faults -------------------------------------------------------------------------------


def test_faults_spec_page_injector_and_both():
    cfg = parse_faults("page:probability=100:min-order=6", seed=3)
    assert cfg.probability == 0 and cfg.fail_page_alloc == FailPageAllocConfig(
        probability=100, min_order=6, seed=3
    )
    cfg = parse_faults("maple_node:probability=5+fail_page_alloc:any:highmem:probability=7")
    assert cfg.cache_filter == {"maple_node"} and cfg.probability == 5
    pa = cfg.fail_page_alloc
    assert pa is not None and pa.probability == 7
    assert not pa.ignore_gfp_wait and not pa.ignore_gfp_highmem and pa.min_order == 1
    cfg = parse_faults("page:probability=1:ignore-gfp-wait=0:ignore_gfp_highmem=0:min_order=0")
    pa = cfg.fail_page_alloc
    assert pa is not None and (pa.ignore_gfp_wait, pa.ignore_gfp_highmem, pa.min_order) == (
        False,
        False,
        0,
    )
    assert parse_faults("kmalloc-256,kmalloc:probability=1").cache_filter == {
        "kmalloc-256",
        "kmalloc",
    }
    # the old syntax means what it meant
    assert parse_faults("all:nowait:probability=1").fail_page_alloc is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("maple_node:min-order=2:probability=5", "'min-order=2' is not nowait, any or KEY"),
        ("page:probability=5+page:probability=1", "page injector is given twice"),
        ("maple_node:probability=5+vmap_area:probability=1", "failslab is given twice"),
        ("page:probability=5:min-order=11", "min_order"),
        ("page:probability=5:ignore-gfp-highmem=2", "takes 0 or 1"),
        ("page:min-order=3", "give probability=P"),
        ("kmalloc-100:probability=5", "unknown cache(s) kmalloc-100"),
    ],
)
def test_faults_spec_refusals(spec, message):
    with pytest.raises(FaultSpecError) as exc:
        parse_faults(spec)
    assert message in str(exc.value)


# -- kmalloc and kvmalloc --------------------------------------------------------------------


def test_kmalloc_sizes_orders_and_gfp_adjust():
    assert kmalloc_cache_name(8) == "kmalloc-8" and kmalloc_cache_name(97) == "kmalloc-128"
    assert kmalloc_cache_name(232) == "kmalloc-256" and kmalloc_cache_name(8192) == "kmalloc-8k"
    assert get_order(1) == 0 and get_order(P) == 0 and get_order(P + 1) == 1
    assert get_order(DESC) == 6  # 33 pages -> 64
    assert kmalloc_gfp_adjust(K, P) == K  # at most a page: unchanged
    adj = kmalloc_gfp_adjust(K | NOFAIL, P + 1)
    # above a page: silent, no direct reclaim (v6.16), never __GFP_NOFAIL
    assert adj & Gfp.NOWARN and not adj & Gfp.DIRECT_RECLAIM and not adj & NOFAIL
    mayfail = kmalloc_gfp_adjust(K | int(Gfp.RETRY_MAYFAIL), 2 * P)
    assert mayfail & Gfp.DIRECT_RECLAIM and mayfail & Gfp.NOWARN


def test_kvmalloc_kmalloc_first_then_the_vmalloc_fallback():
    a = vmapsim.build(0, debug=True)
    small = a.kvmalloc_node(100, K)
    assert small is not None and not a.is_vmalloc_addr(small)
    with inject_faults(a, "page:probability=100:min-order=6") as fi:
        big = a.kvzalloc(DESC, K)  # the order-6 kmalloc fails: vmalloc'ed
        assert fi.page_failures == 1
        assert big == a.vmalloc_start and a.is_vmalloc_addr(big)
        vm = a.find_vmap_area(big).vm
        assert vm.caller == "kvzalloc" and vm.nr_pages == 33
        # non-blocking requests fall back too (v6.19: "support non-blocking GFP flags")
        assert a.is_vmalloc_addr(a.kvmalloc_node(DESC, int(GFP_ATOMIC)))
        assert a.log == []  # kmalloc's attempt is __GFP_NOWARN
    with inject_faults(a, "kmalloc:any:probability=100"):
        assert a.kvmalloc_node(P, K) is None  # at most a page: no fallback
    a.kvfree(big)
    a.kvfree(small)
    assert a.kmalloc_objects == {} and a.find_vmap_area(big) is None
    a.kfree(small)
    assert a.log[-1].startswith("BUG: KASAN: double-free or invalid-free in kfree")


def test_kvmalloc_refuses_sizes_above_int_max():
    a = vmapsim.build(0)
    assert a.kvmalloc_node(INT_MAX + 1, K) is None
    assert a.kvmalloc_node(INT_MAX + 1, K) is None
    assert len(a.log) == 1 and "above INT_MAX" in a.log[0]  # WARN_ON_ONCE
    b = vmapsim.build(0)
    assert b.kvmalloc_node(INT_MAX + 1, K | int(Gfp.NOWARN)) is None and b.log == []


# -- every allocation site ---------------------------------------------------------------------


def test_min_order_fails_the_descriptor_but_not_order_0_pages():
    """page:probability=100 (min-order=1): vmalloc's order-0 pages never fail,
    nor, with ignore-gfp-highmem, would they; the 8 KiB+ kmalloc does."""
    a = vmapsim.build(0, debug=True, failslab=parse_faults("page:probability=100"))
    assert a.vmalloc(100 * P) is not None
    assert a.faults.page_failures == 0
    assert a.kmalloc(3 * P, NOWAIT) is None and a.faults.page_failures == 1


def test_vmalloc_pages_fail_with_highmem_and_order_0_armed():
    a = vmapsim.build(0, debug=True)
    busy = len(list(a.busy_areas()))
    with inject_faults(a, "page:any:highmem:min-order=0:probability=100:interval=2"):
        assert a.vmalloc(250 * P) is None
    # bulk pass: the 1st call (100 pages) passes, the 2nd fails; page by page:
    # the 3rd call (page 101) passes, the 4th fails: 101 pages were had
    assert a.log == [
        f"vmalloc: vmalloc error: size {101 * P}, failed to allocate pages, mode:0xcc2"
    ]
    # vfree(area->addr): the area is freed (lazily), nothing else stays
    assert len(list(a.busy_areas())) == busy
    assert a.vmap_lazy_nr == 251
    a.check_invariants()


def test_vmalloc_page_array_kmalloc_can_fail():
    a = vmapsim.build(0, debug=True)
    with inject_faults(a, "kmalloc-8:any:probability=100"):
        assert a.vmalloc(P) is None
        assert a.vmalloc_node(2 * P, P, gfp=K | int(Gfp.NOWARN)) is not None  # kmalloc-16
    assert a.log == [
        "vmalloc: vmalloc error: size 4096, failed to allocated page array size 8, mode:0xcc2"
    ]
    a.check_invariants()


def test_vmap_block_kmalloc_can_fail():
    a = vmapsim.build(0, debug=True)
    with inject_faults(a, "kmalloc-256:any:probability=100"):
        assert a.vm_map_ram(1) is None  # new_vmap_block(): kmalloc_node() -> -ENOMEM
    assert a.vm_map_ram(1) is not None


def test_percpu_chunk_kmalloc_can_fail():
    a = vmapsim.build(0, debug=True)
    with inject_faults(a, "kmalloc-256:any:probability=100"):
        assert a.alloc_percpu(64, 8) is None  # pcpu_alloc_chunk(): no chunk
    assert a.alloc_percpu(64, 8) is not None


# -- boot -------------------------------------------------------------------------------------


def test_boot_allocation_failure_warns_and_leaves_no_free_space():
    """vmap_init_free_space(): kmem_cache_zalloc(GFP_NOWAIT) fails ->
    WARN_ON_ONCE and that range is not free: every allocation fails
    (vmalloc_init() itself goes on; the kernel does not panic)."""
    a = vmapsim.build(0, failslab=parse_faults("vmap_area:probability=100:times=1"))
    assert a.log == [
        "WARNING: CPU: 0 at mm/vmalloc.c vmap_init_free_space: "
        "kmem_cache_zalloc(vmap_area_cachep, GFP_NOWAIT) failed"
    ]
    assert a.vmalloc(P) is None
    assert "vmalloc error: size 4096, vm_struct allocation failed" in a.log[-1]


def test_boot_vmlist_import_failure_leaves_the_early_area_out():
    a = vmapsim.build(0, init=False, failslab=parse_faults("vmap_area:probability=100:times=1"))
    vm = a.vm_area_register_early(4 * P, P)
    a.vmalloc_init()
    assert a.log[0].startswith("WARNING: CPU: 0 at mm/vmalloc.c vmalloc_init:")
    assert a.find_vmap_area(vm.addr) is None  # not in the busy tree
    addr = a.vmalloc(P)  # the free space around it is there (the 2nd GFP_NOWAIT passed)
    assert addr is not None and not vm.addr <= addr < vm.addr + vm.size


# -- nesting: patch 11-12's refill under a failing order-6 kmalloc ----------------------------


@pytest.mark.parametrize("stage", [11, 12])
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_refill_recursion_hits_the_stack_guard_page(stage, arch):
    """With every order-6 allocation failing, vmap_bump_refill()'s kvzalloc
    falls back to vmalloc, whose bump path refills again: the recursion runs
    until the modelled 16 KiB kernel stack overflows; the kernel's report is
    logged, the innermost call fails, the outer ones unwind, and no Python
    RecursionError escapes."""
    fs = parse_faults("page:probability=100:min-order=6")
    a = vmapsim.build(stage, arch=arch, failslab=fs, debug=True)
    addr = a.vmalloc(P)
    assert addr is not None and a.stack_overflows == 1
    if arch == "x86_64":
        assert a.log[0].startswith("BUG: TASK stack guard page was hit")
        assert a.log[1] == "stack guard page: 0000 [#1] SMP NOPTI"
    else:
        assert a.log[0] == "Insufficient stack space to handle exception!"
        assert a.log[2] == "Kernel panic - not syncing: kernel stack overflow"
    assert a.vmalloc_nesting == 0 and a.faults.page_failures >= 10
    a.check_invariants()


def test_cli_faults_page_injector_reaches_the_run(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--stage", "11", "--mask", "1", "--test-loop-count", "3"]
    rc = main([*argv, "--faults", "page:probability=100:min-order=6"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and rc in (0, 1)
    assert "stack guard page was hit" in out


def test_a_flow_assertion_is_an_internal_error_not_a_traceback(capsys, tmp_path, monkeypatch):
    """An AssertionError raised by the flow itself (not by a component) reaches
    the CLI user as one line naming the stage, the operation and where it
    asserted, exit status 70 (README: exit status)."""
    from vmapsim.kernel.allocator import VmapAllocator

    def broken(self, *args, **kwargs):
        raise AssertionError("busy publish refused")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(VmapAllocator, "_alloc_vmap_area", broken)
    rc = main(["run", "--stage", "7", "--mask", "1", "--test-loop-count", "2"])
    err = capsys.readouterr().err
    assert rc == 70 and "Traceback" not in err
    assert "internal error: AssertionError in vmalloc() (asserted in broken())" in err
    assert "at stage maple:7: busy publish refused" in err
