"""The allocator: state of mm/vmalloc.c and the components bound into it.

:class:`VmapAllocator` is assembled from the flow's mixins (one module
each: :mod:`~vmapsim.kernel.alloc`, :mod:`~vmapsim.kernel.purge`, :mod:`~vmapsim.kernel.vmalloc`,
:mod:`~vmapsim.checking.invariants`).  Components are built once, here, from the
stage's choices; afterwards the flow calls their methods directly.
"""

from __future__ import annotations

import errno
import heapq
from collections.abc import Iterator, Mapping
from typing import Any

from vmapsim.checking.debug_kernel import DebugKernel
from vmapsim.checking.faults import FaultInjector
from vmapsim.checking.invariants import InvariantsMixin
from vmapsim.checking.validate import (
    alloc_vmap_area_einval,
    check_cpu,
    check_gfp,
    check_int,
    check_ulong,
    check_window,
)
from vmapsim.cost.counters import Counters
from vmapsim.errors import ComponentError, VmapArgumentError, VmapError
from vmapsim.framework.descriptors import Component, ComponentContext, Stage
from vmapsim.framework.mirror import MIRRORS, MirroredCoalescer, MirroredFreeIndex
from vmapsim.framework.roles import ROLE_PROTOCOLS
from vmapsim.kernel.alloc import AllocMixin
from vmapsim.kernel.area import VM_ALLOC, VmapArea, VmStruct
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX, Arch
from vmapsim.kernel.gfp import GFP_KERNEL
from vmapsim.kernel.kvmalloc import KvmallocMixin
from vmapsim.kernel.locking import LockingMixin
from vmapsim.kernel.pcpu import PcpuMixin
from vmapsim.kernel.percpu import PercpuMixin
from vmapsim.kernel.purge import PurgeMixin
from vmapsim.kernel.rcu import RcuMixin
from vmapsim.kernel.slab import KmemCache
from vmapsim.kernel.vmalloc import VmallocMixin
from vmapsim.kernel.vmap_block import VmapBlockMixin
from vmapsim.kernel.vmap_node import VmapNode
from vmapsim.kernel.vrealloc import VreallocMixin

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
    LockingMixin,
    KvmallocMixin,
):
    """One simulated kernel's vmalloc state, at one stage.

    Build it with :func:`vmapsim.build`.  Methods carry the kernel's names.
    """

    def __init__(
        self,
        stage: Stage,
        components: Mapping[str, Component | tuple[Component, ...]],
        *,
        arch: Arch,
        nr_cpus: int,
        seed: int,
        debug: bool,
        faults: FaultInjector,
        init: bool = True,
        debug_kernel: bool = False,
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
        self.va_cache = KmemCache("vmap_area", stage.layout, self.metrics.mem)
        self.last_tlb_flush: tuple[int, int] | None = None
        self._shared: dict[str, Any] = {}
        self._locking_init()
        #: the line of ``vmap_lazy_nr`` (an atomic_long_t in .data)
        self.line_vmap_lazy_nr = self.metrics.mem.static(8, 8) >> 6
        #: the debug kernel (lockdep, might_sleep; core/checking/debug_kernel.py)
        self.debug_kernel = debug_kernel
        if debug_kernel:
            self._lockdep = DebugKernel(self._printk, f"vmapsim-{stage.key} #1 Not tainted")
        # vmap blocks, the RCU clock, the percpu allocator (vmap_block.py, rcu.py, percpu.py)
        self._vmap_block_init()
        self._rcu_init()
        self._percpu_init()
        self._kvmalloc_init()  # kmalloc objects, the nested-vmalloc stack (kvmalloc.py)
        features = stage.features
        #: stage 1 on: vmalloc_init() runs on first use instead of -EBUSY before it
        self._lazy_bringup = bool(features.get("lazy_bringup", False))
        #: stage 5 on: a busy publish that cannot get its nodes parks the area
        self._publish_retry = bool(features.get("publish_retry_queue", False))
        #: ``vmlist``: areas registered by vm_area_register_early() before init
        self.vmlist: list[VmStruct] = []
        self._vm_init_off = 0
        #: busy areas whose publish failed for lack of maple nodes (stage 5 on):
        #: not in any index, seen by lookups, published by a later call
        self.vmap_retry_queue: list[VmapArea] = []
        self.vmap_nodes: list[VmapNode] = []
        self.free = None
        self.occupied = None
        self.coalesce = None
        self.overlay = None
        self.vmap_init_nodes()
        if init:
            self.vmalloc_init()

    # -- bring-up -------------------------------------------------------------
    def _build_one(self, comp: Component, role: str, node_id: int | None) -> Any:
        ctx = ComponentContext(
            role=role,
            node_id=node_id,
            counters=self.metrics,
            locking=self,
            warn=self._printk,
            nr_vmap_nodes=self.nr_vmap_nodes,
            params={
                **self.stage.features,
                "layout": self.stage.layout,
                "arch": self.arch,
                "vmap_zone_size": self.vmap_zone_size,
            },
            faults=self.faults,
            shared=self._shared,
            might_alloc=self.might_alloc if self._lockdep is not None else None,
        )
        obj = comp.factory(ctx)
        proto = ROLE_PROTOCOLS[role]
        if not isinstance(obj, proto):
            raise ComponentError(
                f"component {comp.name!r} built {type(obj).__name__} for role {role!r}, "
                f"which lacks the {proto.__name__} methods"
            )
        return obj

    def _make(self, role: str, node_id: int | None = None) -> Any:
        """Build the component(s) of ``role``; a (primary, shadow) pair is
        wrapped in its :mod:`~vmapsim.framework.mirror` class."""
        comp = self.components[role]
        if isinstance(comp, tuple):
            primary, shadow = (self._build_one(c, role, node_id) for c in comp)
            name = role if node_id is None else f"{role}[{node_id}]"
            return MIRRORS[role](primary, shadow, f"{name} {component_name(comp)}")
        return self._build_one(comp, role, node_id)

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
        """``vmalloc_init()``: the indexes, the early ``vmlist`` areas as busy
        areas, the free space around them, then ready.  Idempotent."""
        if self.vmap_initialized:
            return
        comps = self.components
        if "occupied" in comps:
            self.occupied = self._make("occupied")
            self._shared["occupied"] = self.occupied
        if "free" in comps:
            free = self._make("free")
            self.free = free
            if isinstance(free, MirroredFreeIndex):
                # the coalescer merges in one member (the primary, or the shadow
                # when the stage says so: stage 2 still merges in the rb-tree);
                # the other member follows each result
                on_shadow = self.stage.features.get("coalesce_member") == "shadow"
                member, other = (
                    (free.mirror, free.primary) if on_shadow else (free.primary, free.mirror)
                )
                self._shared["free"] = member
                self.coalesce = MirroredCoalescer(self._make("coalesce"), other)
            else:
                self._shared["free"] = free
                self.coalesce = self._make("coalesce")
        self.vmap_nodes = [
            VmapNode(i, self._make("busy", i), self._make("lazy", i))
            for i in range(self.nr_vmap_nodes)
        ]
        #: the busy index's publish also marks the range in use (stage 7 on)
        self._busy_occupies = bool(getattr(self.vmap_nodes[0].busy, "occupies", False))
        self.overlay = self._make("overlay") if "overlay" in comps else None
        if self.overlay is not None:
            self.overlay.attach(
                self._overlay_reserve,
                self._overlay_release,
                nr_cpus=self.nr_cpus,
                lazy_max_pages=self._lazy_max,
                debug=self.debug,
            )
        self._import_vmlist()
        self.vmap_init_free_space()
        self.vmap_initialized = True

    def _import_vmlist(self) -> None:
        """``vmalloc_init()``'s loop over ``vmlist``: each early area becomes a
        busy ``vmap_area`` in its address's node (and in use in ``occupied``)."""
        for vm in self.vmlist:
            # kmem_cache_zalloc(vmap_area_cachep, GFP_NOWAIT): failslab armed at
            # boot can fail it; the kernel WARNs and leaves the area out of the
            # busy tree (its range stays out of the free space too)
            va = self._kmem_cache_alloc_va(False)
            if va is None:
                self._boot_alloc_warning("vmalloc_init")
                continue
            va.va_start = vm.addr
            va.va_end = vm.addr + vm.size
            va.vm = vm
            if self.occupied is not None and not self._busy_occupies:
                self.occupied.occupy(va.va_start, va.va_end, True)
            bn = self.addr_to_node_id(va.va_start)
            vn = self.vmap_nodes[bn]
            self.spin_lock("vmap_node.busy.lock", bn)
            vn.busy.publish(va, True)
            self.spin_unlock("vmap_node.busy.lock", bn)

    def vmap_init_free_space(self) -> None:
        """``vmap_init_free_space()``: the whole KVA space ``[1, ULONG_MAX)`` less
        the early ``vmlist`` areas is free (as free blocks, when the stage keeps a
        free index; the occupied index already has the areas as its in-use ranges)."""
        if self.free is None:
            return
        start = 1
        for vm in [*sorted(self.vmlist, key=_vm_addr), None]:
            end = ULONG_MAX if vm is None else vm.addr
            if end > start:
                # GFP_NOWAIT as in the kernel; a failure is WARN_ON_ONCE and that
                # range is simply not free (every allocation in it fails)
                va = self._kmem_cache_alloc_va(False)
                if va is None:
                    self._boot_alloc_warning("vmap_init_free_space")
                    if vm is not None:
                        start = vm.addr + vm.size
                    continue
                va.va_start = start
                va.va_end = end
                self.free.insert(va)
            if vm is not None:
                start = vm.addr + vm.size

    def _boot_alloc_warning(self, function: str) -> None:
        """``WARN_ON_ONCE(!va)`` of a failed boot-time ``vmap_area`` allocation."""
        self._warn_once(
            function,
            f"WARNING: CPU: 0 at mm/vmalloc.c {function}: kmem_cache_zalloc(vmap_area_cachep, "
            "GFP_NOWAIT) failed",
        )

    def vm_area_register_early(self, size: int, align: int) -> VmStruct:
        """``vm_area_register_early()``: before ``vmalloc_init()``, place a
        ``size``-byte area at the next ``align``-aligned address from
        ``VMALLOC_START`` on ``vmlist``; ``vmalloc_init()`` makes it busy."""
        if self.vmap_initialized:
            raise VmapArgumentError(
                "vm_area_register_early", "only before vmalloc_init() (early boot)"
            )
        check_ulong("size", size)
        check_ulong("align", align)
        if not size or align & (align - 1) or not align:
            raise VmapArgumentError(
                "vm_area_register_early", "size > 0 and a power-of-two align", (size, align)
            )
        addr = (self.vmalloc_start + self._vm_init_off + align - 1) & -align
        vm = VmStruct(addr, size, VM_ALLOC, size, "vm_area_register_early")
        self._vm_init_off = ((addr + size + PAGE_SIZE - 1) & -PAGE_SIZE) - self.vmalloc_start
        self.vmlist.append(vm)
        return vm

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

    def _debug_check(self, *touched: int) -> None:
        """``CONFIG_DEBUG_VM`` after an operation: the invariants around the
        ``touched`` addresses, all of them every ``debug_full_every`` operations
        and when nothing is named (core/checking/invariants.py, ``debug_step``).

        Every public entry point calls it when it returns: it is also where a
        kernel operation ends for the cost model (``Counters.op_end``: the
        operation's distinct lines are counted)."""
        self.metrics.op_end()
        if self.debug:
            self.debug_step(touched)

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

        Raises :class:`~vmapsim.VmapError` with ``errno`` EINVAL (size 0,
        unaligned size, align not a power of two: the kernel's
        ``ERR_PTR(-EINVAL)``), EBUSY (no space, or not initialised) or ENOMEM;
        :class:`~vmapsim.VmapArgumentError` / :class:`~vmapsim.VmapTypeError`
        for what the kernel cannot receive and for the window and flags the
        model refuses (docs/divergences.md).
        """
        check_ulong("size", size)
        check_ulong("align", align)
        check_ulong("vstart", vstart)
        check_ulong("vend", vend)
        check_gfp(gfp)
        check_cpu(cpu, self.nr_cpus)
        va_flags = check_int("va_flags", va_flags)
        einval = alloc_vmap_area_einval(size, align)
        if einval is not None:
            raise VmapError(errno.EINVAL, f"alloc_vmap_area: {einval}")
        vstart, vend = check_window(vstart, vend)
        if va_flags & ~0x3:
            raise VmapArgumentError(
                "va_flags", "only VMAP_RAM (0x1) and VMAP_BLOCK (0x2)", va_flags
            )
        va = None
        try:
            va = self._alloc_vmap_area(size, align, vstart, vend, int(gfp), cpu, va_flags)
            return va
        finally:
            if va is not None:
                self._debug_check(va.va_start)
            else:
                self._debug_check()

    # -- properties and iteration --------------------------------------------
    @property
    def struct_vmap_area_size(self) -> int:
        """``sizeof(struct vmap_area)`` at this stage, from its field layout."""
        return self.stage.layout.size

    def free_areas(self) -> Iterator[VmapArea]:
        """Free space in address order: the free index's blocks, or (a stage
        without one) the occupied index's gaps as fresh :class:`VmapArea` objects."""
        if self.free is not None:
            return iter(self.free)
        if self.occupied is not None:
            return (VmapArea(start, end) for start, end in self.occupied.gaps())
        return iter(())

    def busy_areas(self) -> Iterator[VmapArea]:
        """Busy areas of every node (and of the publish retry queue), in address order."""
        return heapq.merge(
            *(vn.busy for vn in self.vmap_nodes),
            sorted(self.vmap_retry_queue, key=_start),
            key=_start,
        )

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


def _vm_addr(vm: VmStruct) -> int:
    return vm.addr


def component_name(comp: Component | tuple[Component, ...]) -> str:
    """A role's component name as a stage writes it (``"rb+maple"`` for a pair)."""
    return "+".join(c.name for c in comp) if isinstance(comp, tuple) else comp.name
