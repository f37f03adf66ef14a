"""The allocator: state of mm/vmalloc.c and the components bound into it.

:class:`VmapAllocator` is assembled from the flow's mixins (one module
each: :mod:`~vmapsim.alloc`, :mod:`~vmapsim.purge`, :mod:`~vmapsim.vmalloc`,
:mod:`~vmapsim.invariants`).  Components are built once, here, from the
stage's choices; afterwards the flow calls their methods directly.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from typing import Any

from .alloc import AllocMixin
from .area import VmapArea
from .constants import PAGE_SIZE, ULONG_MAX, Arch
from .counters import Counters
from .descriptors import Component, ComponentContext, Stage
from .errors import ComponentError, VmapArgumentError
from .faults import FaultInjector
from .gfp import GFP_KERNEL
from .invariants import InvariantsMixin
from .pcpu import PcpuMixin
from .percpu import PercpuMixin
from .purge import PurgeMixin
from .rcu import RcuMixin
from .roles import ROLE_PROTOCOLS
from .slab import KmemCache
from .validate import check_align, check_cpu, check_int, check_size, check_window
from .vmalloc import VmallocMixin
from .vmap_block import VmapBlockMixin
from .vmap_node import VmapNode
from .vrealloc import VreallocMixin

__all__ = ["VmapAllocator"]

#: ``vmap_zone_size`` with several nodes: 16 pages
VMAP_ZONE_SIZE = 16 * PAGE_SIZE
MAX_VMAP_NODES = 128


class VmapAllocator(
    AllocMixin,
    PurgeMixin,
    VmallocMixin,
    InvariantsMixin,
    # the features test_vmalloc's subtests need (vmcore): one module each
    VmapBlockMixin,
    PcpuMixin,
    PercpuMixin,
    RcuMixin,
    VreallocMixin,
):
    """One simulated kernel's vmalloc state, at one stage.

    Build it with :func:`vmapsim.build`.  Methods carry the kernel's names.
    """

    def __init__(
        self,
        stage: Stage,
        components: Mapping[str, Component],
        *,
        arch: Arch,
        nr_cpus: int,
        seed: int,
        debug: bool,
        faults: FaultInjector,
    ) -> None:
        self.stage = stage
        self.arch = arch
        self.vmalloc_start = arch.vmalloc_start
        self.vmalloc_end = arch.vmalloc_end
        self.nr_cpus = nr_cpus
        self.seed = seed
        self.debug = debug
        self.faults = faults
        self.metrics = Counters()
        #: kernel-style messages (warnings, failures), oldest first
        self.log: list[str] = []
        self._warned: set[str] = set()
        self.components = dict(components)
        self.vmap_lazy_nr = 0
        self._lazy_max = self.lazy_max_pages()
        self.vmap_initialized = False
        self.vmap_notify_list: list[Any] = []
        self.ne_fit_preload_node: list[VmapArea | None] = [None] * nr_cpus
        self.va_cache = KmemCache("vmap_area", stage.layout)
        self.last_tlb_flush: tuple[int, int] | None = None
        self._shared: dict[str, Any] = {}
        # vmap blocks, the RCU clock, the percpu allocator (vmap_block.py, rcu.py, percpu.py)
        self._vmap_block_init()
        self._rcu_init()
        self._percpu_init()
        self.vmalloc_init()

    # -- bring-up -------------------------------------------------------------
    def _make(self, role: str, node_id: int | None = None) -> Any:
        comp = self.components[role]
        ctx = ComponentContext(
            role=role,
            node_id=node_id,
            counters=self.metrics,
            warn=self._printk,
            nr_vmap_nodes=self.nr_vmap_nodes,
            params={**self.stage.features, "layout": self.stage.layout, "arch": self.arch},
            faults=self.faults,
            shared=self._shared,
        )
        obj = comp.factory(ctx)
        proto = ROLE_PROTOCOLS[role]
        if not isinstance(obj, proto):
            raise ComponentError(
                f"component {comp.name!r} built {type(obj).__name__} for role {role!r}, "
                f"which lacks the {proto.__name__} methods"
            )
        return obj

    def vmap_init_nodes(self) -> None:
        """``vmap_init_nodes()``: one node per CPU (1..128); 64 KiB zones."""
        n = min(max(self.nr_cpus, 1), MAX_VMAP_NODES)
        if n > 1:
            self.nr_vmap_nodes = n
            self.vmap_zone_size = VMAP_ZONE_SIZE
        else:
            self.nr_vmap_nodes = 1
            self.vmap_zone_size = 1

    def vmalloc_init(self) -> None:
        """``vmalloc_init()``: nodes, the free space ``[1, ULONG_MAX)``, then ready."""
        self.vmap_init_nodes()
        self.free = self._make("free")
        self._shared["free"] = self.free
        self.coalesce = self._make("coalesce")
        self.vmap_nodes = [
            VmapNode(i, self._make("busy", i), self._make("lazy", i))
            for i in range(self.nr_vmap_nodes)
        ]
        self.overlay = self._make("overlay") if "overlay" in self.components else None
        self.vmap_init_free_space()
        self.vmap_initialized = True

    def vmap_init_free_space(self) -> None:
        """``vmap_init_free_space()``: the whole KVA space ``[1, ULONG_MAX)`` is free."""
        va = self._kmem_cache_alloc_va(True)
        assert va is not None
        va.va_start = 1
        va.va_end = ULONG_MAX
        self.free.insert(va)

    # -- helpers --------------------------------------------------------------
    def addr_to_node_id(self, addr: int) -> int:
        """``addr_to_node_id()``: ``(addr / vmap_zone_size) % nr_vmap_nodes``."""
        return (addr // self.vmap_zone_size) % self.nr_vmap_nodes

    def _printk(self, message: str) -> None:
        self.log.append(message)

    def _warn_once(self, site: str, message: str) -> None:
        """``WARN_ON_ONCE``: log ``message`` the first time ``site`` fires."""
        if site not in self._warned:
            self._warned.add(site)
            self.log.append(message)

    def _drain_coalesced(self) -> None:
        """Free the areas the coalescer merged away (``kmem_cache_free``)."""
        dropped = getattr(self.coalesce, "dropped", None)
        if dropped:
            for va in dropped:
                self._kmem_cache_free_va(va)
            dropped.clear()

    def _debug_check(self) -> None:
        if self.debug:
            self.check_invariants()

    def register_vmap_purge_notifier(self, notifier: Any) -> None:
        """``register_vmap_purge_notifier()``: ``notifier(allocator)`` returns pages freed."""
        self.vmap_notify_list.append(notifier)

    # -- public allocation API ---------------------------------------------------
    def alloc_vmap_area(
        self,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        *,
        gfp: int = int(GFP_KERNEL),
        cpu: int = 0,
        va_flags: int = 0,
    ) -> VmapArea:
        """``alloc_vmap_area()``: a busy area of ``size`` bytes in ``[vstart, vend)``.

        Raises :class:`~vmapsim.VmapError` with ``errno`` EINVAL (bad
        arguments), EBUSY (no space, or not initialised) or ENOMEM.
        """
        check_size("size", size, page_aligned=True)
        check_align("align", align)
        vstart, vend = check_window(vstart, vend)
        check_int("gfp", gfp)
        check_cpu(cpu, self.nr_cpus)
        va_flags = check_int("va_flags", va_flags)
        if va_flags & ~0x3:
            raise VmapArgumentError(
                "va_flags", "only VMAP_RAM (0x1) and VMAP_BLOCK (0x2)", va_flags
            )
        try:
            return self._alloc_vmap_area(size, align, vstart, vend, int(gfp), cpu, va_flags)
        finally:
            self._debug_check()

    # -- properties and iteration --------------------------------------------
    @property
    def struct_vmap_area_size(self) -> int:
        """``sizeof(struct vmap_area)`` at this stage, from its field layout."""
        return self.stage.layout.size

    def free_areas(self) -> Iterator[VmapArea]:
        """Free blocks of the global free index, in address order."""
        return iter(self.free)

    def busy_areas(self) -> Iterator[VmapArea]:
        """Busy areas of every node, in address order."""
        return heapq.merge(*(vn.busy for vn in self.vmap_nodes), key=_start)

    def lazy_areas(self) -> Iterator[VmapArea]:
        """Lazily freed, not yet purged areas of every node, in address order."""
        return heapq.merge(*(vn.lazy for vn in self.vmap_nodes), key=_start)

    def pooled_areas(self) -> Iterator[VmapArea]:
        """Areas parked in the per-node pools, in address order."""
        return iter(
            sorted(
                (va for vn in self.vmap_nodes for p in vn.pools.values() for va in p), key=_start
            )
        )

    def __repr__(self) -> str:
        return (
            f"<VmapAllocator stage={self.stage.key} arch={self.arch.name} "
            f"nr_cpus={self.nr_cpus} nodes={self.nr_vmap_nodes}>"
        )


def _start(va: VmapArea) -> int:
    return va.va_start
