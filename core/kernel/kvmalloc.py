"""``kmalloc()`` / ``kvmalloc_node()`` / ``kvzalloc()`` / ``kvfree()`` as the
kernel does them, over the model's own vmalloc flow.

Read in torvalds/linux mm/slub.c of the 2026 series' base (kvmalloc lives in
slub.c since v6.13): ``__kvmalloc_node_noprof()`` first tries ``kmalloc``
with ``kmalloc_gfp_adjust()``'s flags -- above ``PAGE_SIZE``: ``__GFP_NOWARN``,
no direct reclaim unless ``__GFP_RETRY_MAYFAIL`` (v6.16), never
``__GFP_NOFAIL`` (the fallback implements it) --; a result, or a request of at
most ``PAGE_SIZE``, is final; a request above ``INT_MAX`` fails with
``WARN_ON_ONCE`` unless ``__GFP_NOWARN``; everything else falls back to
``__vmalloc_node_range(size, 1, VMALLOC_START, VMALLOC_END, flags, ...)``,
non-blocking requests included (v6.19, "support non-blocking GFP flags":
before it, ``!gfpflags_allow_blocking()`` returned NULL here).

``kmalloc`` of at most ``KMALLOC_MAX_CACHE_SIZE`` (8 KiB: two pages, SLUB)
comes from a ``kmalloc-<size>`` cache and can be failed by failslab; above
it, ``kmalloc_large`` asks the page allocator for ``get_order(size)`` pages
and can be failed by fail_page_alloc (e.g. patch 11's 131,136-byte chunk
descriptor: order 6).  kmalloc'ed objects get addresses in the direct map
(``PAGE_OFFSET`` on), which ``is_vmalloc_addr()`` tells from vmalloc ones.

An allocation made inside the allocator that reaches vmalloc again runs
nested, on a modelled kernel stack of ``THREAD_SIZE`` bytes: each nested
vmalloc level costs :data:`NESTED_VMALLOC_FRAME` bytes.  A call that would
overflow it logs what the kernel reports when a task runs into its stack's
guard page (x86_64 ``handle_stack_overflow()``; arm64 ``panic_bad_stack()``)
and fails; the kernel kills the task (x86_64) or panics (arm64) there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmapsim.kernel.constants import PAGE_SHIFT, PAGE_SIZE
from vmapsim.kernel.gfp import Gfp

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "INT_MAX",
    "KMALLOC_MAX_CACHE_SIZE",
    "KMALLOC_MAX_SIZE",
    "MAX_PAGE_ORDER",
    "NESTED_VMALLOC_FRAME",
    "THREAD_SIZE",
    "KvmallocMixin",
    "get_order",
    "kmalloc_cache_name",
    "kmalloc_gfp_adjust",
]

#: SLUB: ``KMALLOC_SHIFT_HIGH = PAGE_SHIFT + 1`` -> 8 KiB with 4 KiB pages
KMALLOC_MAX_CACHE_SIZE = 2 * PAGE_SIZE
INT_MAX = (1 << 31) - 1
#: ``MAX_PAGE_ORDER`` (default 10) and ``KMALLOC_MAX_SIZE``: 4 MiB
MAX_PAGE_ORDER = 10
KMALLOC_MAX_SIZE = PAGE_SIZE << MAX_PAGE_ORDER
#: ``THREAD_SIZE``: 16 KiB on x86_64 (no KASAN) and on arm64 with 4 KiB pages
THREAD_SIZE = 16 << 10
#: what the task had used before the outermost call (kthread entry, the
#: caller's frames) -- a modelling estimate
STACK_BASE_USE = 3 << 10
#: stack bytes one nested ``__vmalloc_node_range`` level costs
#: (``__vmalloc_node_range`` + ``__get_vm_area_node`` + ``alloc_vmap_area`` +
#: ``vmap_bump_refill`` + ``kvmalloc_node`` frames) -- a modelling estimate
NESTED_VMALLOC_FRAME = 1280
#: ``kmalloc_caches[]`` sizes (SLUB, 4 KiB pages)
_KMALLOC_SIZES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
#: where the model's kmalloc'ed objects live: 4 GiB into the direct map
#: (``PAGE_OFFSET`` is 0xffff888000000000 on x86_64 4-level and
#: 0xffff000000000000 on arm64 with 48-bit VA), below VMALLOC_START
_DIRECT_MAP = {"x86_64": 0xFFFF888100000000, "arm64": 0xFFFF000100000000}

_NOWARN = int(Gfp.NOWARN)
_NOFAIL = int(Gfp.NOFAIL)
_NORETRY_MAYFAIL = int(Gfp.RETRY_MAYFAIL)
_RECLAIM = int(Gfp.DIRECT_RECLAIM)
_ZERO = int(Gfp.ZERO)


def get_order(size: int) -> int:
    """``get_order(size)``: the smallest order whose pages hold ``size`` bytes."""
    pages = (max(size, 1) - 1) >> PAGE_SHIFT
    return pages.bit_length()


def kmalloc_cache_name(size: int) -> str:
    """The ``kmalloc-<size>`` cache a ``kmalloc(size)`` of at most 8 KiB uses."""
    for s in _KMALLOC_SIZES:
        if size <= s:
            return f"kmalloc-{s // 1024}k" if s >= 1024 else f"kmalloc-{s}"
    raise ValueError(f"size: {size} is above KMALLOC_MAX_CACHE_SIZE ({KMALLOC_MAX_CACHE_SIZE})")


def kmalloc_gfp_adjust(gfp: int, size: int) -> int:
    """``kmalloc_gfp_adjust()``: the flags of kvmalloc's kmalloc attempt."""
    if size > PAGE_SIZE:
        gfp |= _NOWARN
        if not gfp & _NORETRY_MAYFAIL:
            gfp &= ~_RECLAIM
        gfp &= ~_NOFAIL
    return gfp


class KvmallocMixin:
    """``kmalloc``/``kfree``, ``kvmalloc_node``/``kvzalloc``/``kvfree`` and the
    modelled kernel stack of nested vmalloc calls."""

    def _kvmalloc_init(self: VmapAllocator) -> None:
        #: live kmalloc'ed objects: address -> size
        self.kmalloc_objects: dict[int, int] = {}
        self._kmalloc_next = _DIRECT_MAP.get(self.arch.name, _DIRECT_MAP["x86_64"])
        #: nested vmalloc levels running now (0: none)
        self.vmalloc_nesting = 0
        #: calls refused because the modelled kernel stack would overflow
        self.stack_overflows = 0

    # -- fault points ---------------------------------------------------------
    def _kmalloc_fails(self: VmapAllocator, size: int, gfp: int) -> bool:
        """Whether ``kmalloc(size, gfp)`` fails: failslab on its
        ``kmalloc-<size>`` cache, or fail_page_alloc on a large one's pages."""
        faults = self.faults
        if not faults.enabled:
            return False
        if size <= KMALLOC_MAX_CACHE_SIZE:
            return faults.should_failslab(kmalloc_cache_name(size), gfp)
        return faults.should_fail_alloc_page(gfp, get_order(size))

    # -- kmalloc --------------------------------------------------------------
    def kmalloc(self: VmapAllocator, size: int, gfp: int) -> int | None:
        """``kmalloc(size, gfp)``: a direct-map address, or None on failure
        (``ZERO_SIZE_PTR`` for 0 is returned as None too: nothing to use)."""
        if size <= 0:
            return None
        if size > KMALLOC_MAX_SIZE:  # __alloc_pages(): order above MAX_PAGE_ORDER
            if not gfp & _NOWARN:
                self._warn_once(
                    "__alloc_pages",
                    f"WARNING: CPU: 0 at mm/page_alloc.c __alloc_pages: order "
                    f"{get_order(size)} above MAX_PAGE_ORDER {MAX_PAGE_ORDER}",
                )
            return None
        if self._kmalloc_fails(size, gfp):
            return None
        addr = self._kmalloc_next
        stride = (
            KMALLOC_MAX_CACHE_SIZE
            if size <= KMALLOC_MAX_CACHE_SIZE
            else PAGE_SIZE << get_order(size)
        )
        self._kmalloc_next += stride
        self.kmalloc_objects[addr] = size
        return addr

    def kfree(self: VmapAllocator, addr: int | None) -> None:
        """``kfree(addr)``: ``kfree(NULL)`` does nothing; a double free warns."""
        if not addr:
            return
        if self.kmalloc_objects.pop(addr, None) is None:
            self._printk(f"BUG: KASAN: double-free or invalid-free in kfree ({addr:#x})")

    def is_vmalloc_addr(self: VmapAllocator, addr: int) -> bool:
        """``is_vmalloc_addr()``: ``VMALLOC_START <= addr < VMALLOC_END``."""
        return self.vmalloc_start <= addr < self.vmalloc_end

    # -- kvmalloc -------------------------------------------------------------
    def kvmalloc_node(
        self: VmapAllocator, size: int, gfp: int, *, cpu: int = 0, caller: str = "kvmalloc_node"
    ) -> int | None:
        """``kvmalloc_node()``: kmalloc first, then the vmalloc fallback
        (see the module docstring); the address or None."""
        addr = self.kmalloc(size, kmalloc_gfp_adjust(gfp, size))
        if addr is not None or size <= PAGE_SIZE:
            return addr
        if size > INT_MAX:
            if not gfp & _NOWARN:
                self._warn_once(
                    "kvmalloc_node",
                    f"WARNING: CPU: {cpu} at mm/slub.c __kvmalloc_node_noprof: size {size} "
                    "above INT_MAX",
                )
            return None
        return self._nested_vmalloc(size, 1, gfp, cpu, caller)

    def kvzalloc(self: VmapAllocator, size: int, gfp: int, *, cpu: int = 0) -> int | None:
        """``kvzalloc()``: ``kvmalloc_node(size, gfp | __GFP_ZERO)``."""
        return self.kvmalloc_node(size, gfp | _ZERO, cpu=cpu, caller="kvzalloc")

    def kvfree(self: VmapAllocator, addr: int | None, *, cpu: int = 0) -> None:
        """``kvfree()``: ``vfree()`` for a vmalloc address, else ``kfree()``."""
        if not addr:
            return
        if self.is_vmalloc_addr(addr):
            self.vfree(addr, cpu=cpu)
        else:
            self.kfree(addr)

    # -- nesting ---------------------------------------------------------------
    def _nested_vmalloc(
        self: VmapAllocator, size: int, align: int, gfp: int, cpu: int, caller: str
    ) -> int | None:
        """A vmalloc made from inside the allocator: one more level on the
        modelled kernel stack; past ``THREAD_SIZE`` the kernel's report and
        the call fails.  The invariant checks of ``--debug`` wait for the
        outermost operation (the outer one is mid-way)."""
        depth = self.vmalloc_nesting + 1
        used = STACK_BASE_USE + depth * NESTED_VMALLOC_FRAME
        if used > THREAD_SIZE:
            self.stack_overflows += 1
            self._report_stack_overflow(cpu, depth)
            return None
        self.vmalloc_nesting = depth
        debug = self.debug
        self.debug = False
        try:
            return self._vmalloc_range(size, align, gfp, cpu, caller)
        finally:
            self.debug = debug
            self.vmalloc_nesting = depth - 1

    def _report_stack_overflow(self: VmapAllocator, cpu: int, depth: int) -> None:
        """What the kernel prints when the task's stack runs into its guard page."""
        if self.arch.name == "arm64":
            self._printk("Insufficient stack space to handle exception!")
            self._printk(f"Task stack:     [{THREAD_SIZE} bytes] ({depth} nested vmalloc calls)")
            self._printk("Kernel panic - not syncing: kernel stack overflow")
        else:
            self._printk(
                f"BUG: TASK stack guard page was hit ({THREAD_SIZE}-byte stack, "
                f"{depth} nested vmalloc calls)"
            )
            self._printk(f"stack guard page: 0000 [#{self.stack_overflows}] SMP NOPTI")
            self._printk(f"CPU: {cpu} (the task is not modelled) Tainted: G      D")
