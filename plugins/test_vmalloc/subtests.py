"""The subtests of lib/test_vmalloc.c, each a generator over one allocator.

A subtest is a generator function of a :class:`VmallocTestContext`: it drives the
allocator as the kernel's function does, **yields once per iteration of each
of its loops** (the scheduler's step: other workers may run between two
steps), and returns the kernel function's return value (0 = pass, non-zero =
fail).  Pages are not modelled, so the kernel's one-byte writes are no-ops;
everything that reaches the allocator is.

The random draws use the worker's seeded generator with the kernel's
distributions: ``get_random_u8()`` is ``randrange(256)``,
``get_random_u32_inclusive(a, b)`` is ``randint(a, b)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

from attrs import define, frozen

from vmapsim import __GFP_ZERO, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, PAGE_SHIFT, PAGE_SIZE

from .params import ModuleParams

if TYPE_CHECKING:
    from vmapsim import VmapAllocator

__all__ = ["TESTS", "THREAD_ALIGN", "VmallocTestCase", "VmallocTestContext", "subtest_names"]

BITS_PER_LONG = 64
SIZEOF_PTR = 8
#: ``THREAD_ALIGN`` per architecture (no KASAN): x86_64 aligns stacks to
#: THREAD_SIZE (16 KiB); arm64 with VMAP_STACK to 2 x THREAD_SIZE (32 KiB).
THREAD_ALIGN: dict[str, int] = {"x86_64": 16 << 10, "arm64": 32 << 10}
_GFP_ZEROED = int(GFP_KERNEL | __GFP_ZERO)
_GFP_KERNEL = int(GFP_KERNEL)

Step = Generator[None, None, int]


@define(slots=True, eq=False, weakref_slot=False)
class VmallocTestContext:
    """What one worker's subtest sees: the allocator, the CPU it runs on now
    (the driver moves an unpinned worker between CPUs, so a subtest reads
    ``cpu`` at every call), its random generator and the module's parameters."""

    a: VmapAllocator
    cpu: int
    rng: random.Random
    p: ModuleParams
    worker: int = 0


@frozen
class VmallocTestCase:
    """One entry of ``test_case_array``: name, function, whether it is xfail,
    and how many iterations its main loop makes per run (for time per loop)."""

    name: str
    func: Callable[[VmallocTestContext], Step]
    xfail: bool = False
    loops: Callable[[ModuleParams], int] = lambda p: p.test_loop_count
    #: allocator methods the test calls beyond vmalloc / __vmalloc_node / vfree
    needs: tuple[str, ...] = ()


def fix_size_alloc_test(t: VmallocTestContext) -> Step:
    """``fix_size_alloc_test()``: vmalloc ``max(nr_pages, 1)`` pages, vfree, in a loop."""
    vmalloc, vfree = t.a.vmalloc, t.a.vfree
    size = t.p.pages * PAGE_SIZE
    for _ in range(t.p.test_loop_count):
        ptr = vmalloc(size, cpu=t.cpu)
        if ptr is None:
            return -1
        vfree(ptr, cpu=t.cpu)
        yield
    return 0


def full_fit_alloc_test(t: VmallocTestContext) -> Step:
    """``full_fit_alloc_test()``: ``junk = lazy_max_pages()`` pairs of 1-page areas;
    free every second one (2-page holes: page + guard), then allocate and free
    one page in a loop (each an exact fit of a hole); then free the rest."""
    a = t.a
    vmalloc, vfree = a.vmalloc, a.vfree
    # fls(num_online_cpus()) * (32 MiB / PAGE_SIZE): the same formula as lazy_max_pages()
    junk = a.lazy_max_pages()
    ptr = vmalloc(SIZEOF_PTR * junk, cpu=t.cpu)
    if ptr is None:
        return -1
    junk_ptr = vmalloc(SIZEOF_PTR * junk, cpu=t.cpu)
    if junk_ptr is None:
        vfree(ptr, cpu=t.cpu)
        return -1
    ptrs: list[int | None] = []
    junks: list[int | None] = []
    for _ in range(junk):
        ptrs.append(vmalloc(PAGE_SIZE, cpu=t.cpu))
        junks.append(vmalloc(PAGE_SIZE, cpu=t.cpu))
        yield
    for p in junks:
        vfree(p, cpu=t.cpu)
        yield
    rv = 0
    for _ in range(t.p.test_loop_count):
        tmp = vmalloc(PAGE_SIZE, cpu=t.cpu)
        if tmp is None:
            rv = -1
            break
        vfree(tmp, cpu=t.cpu)
        yield
    for p in ptrs:
        vfree(p, cpu=t.cpu)
        yield
    vfree(ptr, cpu=t.cpu)
    vfree(junk_ptr, cpu=t.cpu)
    return rv


LONG_BUSY = 15_000


def long_busy_list_alloc_test(t: VmallocTestContext) -> Step:
    """``long_busy_list_alloc_test()``: 15,000 one-page areas kept busy; a loop
    of vmalloc(100 pages) + vmalloc(1 page) and both vfree'd; then free all."""
    a = t.a
    vmalloc, vfree = a.vmalloc, a.vfree
    ptr = vmalloc(SIZEOF_PTR * LONG_BUSY, cpu=t.cpu)
    if ptr is None:
        return -1
    busy: list[int | None] = []
    for _ in range(LONG_BUSY):
        busy.append(vmalloc(PAGE_SIZE, cpu=t.cpu))
        yield
    rv = 0
    big, one = 100 * PAGE_SIZE, PAGE_SIZE
    for _ in range(t.p.test_loop_count):
        p1 = vmalloc(big, cpu=t.cpu)
        if p1 is None:
            rv = -1
            break
        p2 = vmalloc(one, cpu=t.cpu)
        if p2 is None:
            vfree(p1, cpu=t.cpu)
            rv = -1
            break
        vfree(p1, cpu=t.cpu)
        vfree(p2, cpu=t.cpu)
        yield
    for p in busy:
        vfree(p, cpu=t.cpu)
        yield
    vfree(ptr, cpu=t.cpu)
    return rv


def random_size_alloc_test(t: VmallocTestContext) -> Step:
    """``random_size_alloc_test()``: vmalloc ``rand[1, 100]`` pages, vfree."""
    vmalloc, vfree = t.a.vmalloc, t.a.vfree
    randint = t.rng.randint
    for _ in range(t.p.test_loop_count):
        p = vmalloc(randint(1, 100) * PAGE_SIZE, cpu=t.cpu)
        if p is None:
            return -1
        vfree(p, cpu=t.cpu)
        yield
    return 0


def fix_align_alloc_test(t: VmallocTestContext) -> Step:
    """``fix_align_alloc_test()``: ``__vmalloc_node(5 pages, THREAD_ALIGN << 1)``, vfree."""
    a = t.a
    vmalloc_node, vfree = a.vmalloc_node, a.vfree
    align = THREAD_ALIGN[a.arch.name] << 1
    for _ in range(t.p.test_loop_count):
        ptr = vmalloc_node(5 * PAGE_SIZE, align, gfp=_GFP_ZEROED, cpu=t.cpu)
        if ptr is None:
            return -1
        vfree(ptr, cpu=t.cpu)
        yield
    return 0


def random_size_align_alloc_test(t: VmallocTestContext) -> Step:
    """``random_size_align_alloc_test()``: ``r = get_random_u8()``; align
    ``1 << (r % 23)`` (1 B … 4 MiB), size ``(r % 10 + 1)`` pages."""
    a = t.a
    vmalloc_node, vfree = a.vmalloc_node, a.vfree
    randrange = t.rng.randrange
    for _ in range(t.p.test_loop_count):
        rnd = randrange(256)
        ptr = vmalloc_node((rnd % 10 + 1) * PAGE_SIZE, 1 << (rnd % 23), gfp=_GFP_ZEROED, cpu=t.cpu)
        if ptr is None:
            return -1
        vfree(ptr, cpu=t.cpu)
        yield
    return 0


def align_shift_alloc_test(t: VmallocTestContext) -> Step:
    """``align_shift_alloc_test()`` (xfail): one page at alignment ``1 << i`` for
    i = 0 … 63; -1 at the first failure (the alignment passes the window's top)."""
    a = t.a
    for i in range(BITS_PER_LONG):
        ptr = a.vmalloc_node(PAGE_SIZE, 1 << i, gfp=_GFP_ZEROED, cpu=t.cpu)
        if ptr is None:
            return -1
        a.vfree(ptr, cpu=t.cpu)
        yield
    return 0


def pcpu_alloc_test(t: VmallocTestContext) -> Step:
    """``pcpu_alloc_test()``: ``nr_pcpu_objects`` x ``__alloc_percpu(rand[1,
    PAGE_SIZE/4] B, 1 << rand[1, PAGE_SHIFT - 1])``; a failure sets -1 but the
    loop goes on; then free them all."""
    a = t.a
    n = t.p.nr_pcpu_objects
    pcpu = a.vmalloc(max(SIZEOF_PTR * n, 0), cpu=t.cpu)
    if pcpu is None:
        return -1
    alloc_percpu, free_percpu = a.alloc_percpu, a.free_percpu
    randint = t.rng.randint
    objs: list[int | None] = []
    rv = 0
    for _ in range(n):
        size = randint(1, PAGE_SIZE // 4)
        align = 1 << randint(1, PAGE_SHIFT - 1)
        obj = alloc_percpu(size, align, cpu=t.cpu)
        if obj is None:
            rv = -1
        objs.append(obj)
        yield
    for obj in objs:
        if obj is not None:  # free_percpu(NULL) is a no-op
            free_percpu(obj)
        yield
    a.vfree(pcpu, cpu=t.cpu)
    return rv


def _kvfree_rcu_test(t: VmallocTestContext) -> Step:
    a = t.a
    vmalloc, kvfree_rcu = a.vmalloc, a.kvfree_rcu
    for _ in range(t.p.test_loop_count):
        p = vmalloc(PAGE_SIZE, cpu=t.cpu)
        if p is None:
            return -1
        kvfree_rcu(p, cpu=t.cpu)
        yield
    return 0


def kvfree_rcu_1_arg_vmalloc_test(t: VmallocTestContext) -> Step:
    """``kvfree_rcu_1_arg_vmalloc_test()``: vmalloc one page, ``kvfree_rcu_mightsleep(p)``.

    The model's ``kvfree_rcu`` has one form; the 1-argument variant differs
    in the kernel only when it cannot allocate its bookkeeping (then it
    waits for a grace period itself), which the model does not reach."""
    return (yield from _kvfree_rcu_test(t))


def kvfree_rcu_2_arg_vmalloc_test(t: VmallocTestContext) -> Step:
    """``kvfree_rcu_2_arg_vmalloc_test()``: vmalloc one page, ``kvfree_rcu(p, rcu)``."""
    return (yield from _kvfree_rcu_test(t))


def vm_map_ram_test(t: VmallocTestContext) -> Step:
    """``vm_map_ram_test()``: map ``max(nr_pages, 1)`` pages with ``vm_map_ram``
    and unmap them, in a loop.  (The page bulk allocation always succeeds:
    pages are not modelled.)  A NULL mapping, which the kernel's test would
    write through, is counted as a failure here."""
    a = t.a
    vm_map_ram, vm_unmap_ram = a.vm_map_ram, a.vm_unmap_ram
    count = t.p.pages
    for _ in range(t.p.test_loop_count):
        v = vm_map_ram(count, cpu=t.cpu)
        if v is None:
            return -1
        vm_unmap_ram(v, count, cpu=t.cpu)
        yield
    return 0


def no_block_alloc_test(t: VmallocTestContext) -> Step:
    """``no_block_alloc_test()`` (xfail): ``__vmalloc(max(nr_pages, 1) pages)``
    with GFP_ATOMIC or GFP_NOWAIT (``get_random_u8() % 2``), vfree; -1 at the
    first failure.  Non-blocking requests neither purge nor retry, so they
    may fail where GFP_KERNEL would not."""
    a = t.a
    vmalloc_gfp, vfree = a.vmalloc_gfp, a.vfree
    randrange = t.rng.randrange
    size = t.p.pages * PAGE_SIZE
    atomic, nowait = int(GFP_ATOMIC), int(GFP_NOWAIT)
    for _ in range(t.p.test_loop_count):
        gfp = atomic if randrange(256) % 2 else nowait
        ptr = vmalloc_gfp(size, gfp=gfp, cpu=t.cpu)
        if ptr is None:
            return -1
        vfree(ptr, cpu=t.cpu)
        yield
    return 0


def vrealloc_test(t: VmallocTestContext) -> Step:
    """``vrealloc_test()``: vmalloc one page, vrealloc it to 4 pages, 1 page,
    half a page and 1 page again, then vfree; -1 if a step fails."""
    a = t.a
    vmalloc, vrealloc, vfree = a.vmalloc, a.vrealloc, a.vfree
    sizes = (4 * PAGE_SIZE, PAGE_SIZE, PAGE_SIZE // 2, PAGE_SIZE)
    for _ in range(t.p.test_loop_count):
        ptr = vmalloc(PAGE_SIZE, cpu=t.cpu)
        if ptr is None:
            return -1
        for size in sizes:
            tmp = vrealloc(ptr, size, gfp=_GFP_KERNEL, cpu=t.cpu)
            if tmp is None:
                vfree(ptr, cpu=t.cpu)
                return -1
            ptr = tmp
        vfree(ptr, cpu=t.cpu)
        yield
    return 0


#: ``test_case_array``, in the kernel's order (bit = ``1 << index``).
TESTS: tuple[VmallocTestCase, ...] = (
    VmallocTestCase("fix_size_alloc_test", fix_size_alloc_test),
    VmallocTestCase("full_fit_alloc_test", full_fit_alloc_test),
    VmallocTestCase("long_busy_list_alloc_test", long_busy_list_alloc_test),
    VmallocTestCase("random_size_alloc_test", random_size_alloc_test),
    VmallocTestCase("fix_align_alloc_test", fix_align_alloc_test),
    VmallocTestCase("random_size_align_alloc_test", random_size_align_alloc_test),
    VmallocTestCase(
        "align_shift_alloc_test", align_shift_alloc_test, True, lambda p: BITS_PER_LONG
    ),
    VmallocTestCase(
        "pcpu_alloc_test",
        pcpu_alloc_test,
        False,
        lambda p: p.nr_pcpu_objects,
        ("alloc_percpu", "free_percpu"),
    ),
    VmallocTestCase(
        "kvfree_rcu_1_arg_vmalloc_test", kvfree_rcu_1_arg_vmalloc_test, needs=("kvfree_rcu",)
    ),
    VmallocTestCase(
        "kvfree_rcu_2_arg_vmalloc_test", kvfree_rcu_2_arg_vmalloc_test, needs=("kvfree_rcu",)
    ),
    VmallocTestCase("vm_map_ram_test", vm_map_ram_test, needs=("vm_map_ram", "vm_unmap_ram")),
    VmallocTestCase("no_block_alloc_test", no_block_alloc_test, True, needs=("vmalloc_gfp",)),
    VmallocTestCase("vrealloc_test", vrealloc_test, needs=("vrealloc",)),
)


def subtest_names() -> list[str]:
    """The subtests' names, index = bit number."""
    return [tc.name for tc in TESTS]
