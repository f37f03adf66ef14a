"""The reference allocator: the oracle for differential tests.

:class:`ReferenceAllocator` models the same vmalloc semantics as the allocator
flow, written independently of it and as plainly as possible: free space is a
sorted Python list of ``(start, end)`` intervals searched linearly, busy and
lazy areas live in dicts and lists, the per-node pools in deques.  It is slow
and meant to be read, not run in benchmarks.

What it stands for (mm/vmalloc.c, v6.9+ per-node design):

* one global free set, initially ``[1, ULONG_MAX)``, for every window;
* ``__alloc_vmap_area`` placement: the lowest free block that
  ``is_within_this_va`` accepts (``vend`` is not part of the search), then
  ``-ERANGE`` if the aligned range crosses ``vend``.  When
  ``adjust_search_size`` is on (``align > PAGE_SIZE`` and not an exact-fit
  window) the kernel's pruned tree search may pick another block; the oracle
  then only knows :class:`PlacementBounds`, and a caller-supplied *choose*
  function tells it which allowed block the model took;
* vmap nodes, zones and ``vn_id`` encoding; per-node pools (``node_alloc``,
  ``node_pool_del_va``, ``node_pool_add_va``, ``decay_va_pool_node``);
* lazy freeing (``free_vmap_area_noflush``) with the ``lazy_max_pages()``
  drain run synchronously, and ``__purge_vmap_area_lazy`` with and without
  full pool decay;
* ``alloc_vmap_area``'s failure path (one purge and retry, then ``-EBUSY``
  and the kernel's warning), ``vmalloc``/``__vmalloc_node``/``vfree``;
* with ``overlay=`` (stages 10-12) the per-CPU bump overlay in front of
  ``alloc_vmap_area`` for eligible vmalloc requests
  (:mod:`vmapsim.checking.oracle_overlay`, written from the documented rule): chunks
  reserved through this allocator's own ``alloc_vmap_area``, given back
  through its lazy path, reclaimed by the failure path and the shrinker,
  flushed by ``vm_unmap_aliases``, and stage 11's UBSAN report.

It imports nothing from the flow or from any plugin, and takes its kernel
constants (GFP bits, page size, vmalloc windows) from
:mod:`vmapsim.checking.oracle_constants`, not from the model's modules.
"""

from __future__ import annotations

import bisect
import errno
from collections import deque
from collections.abc import Callable

from attrs import define, frozen

from vmapsim.checking.oracle_constants import (
    __GFP_DIRECT_RECLAIM,
    __GFP_NOFAIL,
    __GFP_NOWARN,
    GFP_KERNEL,
    MAX_VA_SIZE_PAGES,
    PAGE_SIZE,
    VMALLOC_WINDOWS,
)
from vmapsim.checking.oracle_overlay import OVERLAY_MODES, ReferenceOverlay
from vmapsim.errors import VmapArgumentError, VmapError

__all__ = ["OracleArea", "OracleMismatch", "PlacementBounds", "ReferenceAllocator"]

#: 2**64: every address and every ``start + size`` must stay below it.
ADDRESS_LIMIT = 1 << 64
ULONG_MAX = ADDRESS_LIMIT - 1
#: include/linux/shrinker.h: ``count_objects`` has nothing at all (``~0UL - 1``)
SHRINK_EMPTY = ULONG_MAX - 1
#: an overlay chunk is reserved blocking and silently (a failure falls back)
_CHUNK_GFP = GFP_KERNEL | __GFP_NOWARN
#: ``32 MiB / PAGE_SIZE`` pages per ``fls(nr_cpus)`` step of ``lazy_max_pages()``.
LAZY_MAX_BYTES_PER_STEP = 32 * 1024 * 1024

Block = tuple[int, int]
#: the placement policies above PAGE_SIZE (see ReferenceAllocator.placement)
PLACEMENTS = ("pruned", "gaps")
#: ``choose(bounds, vend) -> address or None``: which allowed outcome the model took.
Chooser = Callable[["PlacementBounds", int], "int | None"]


class OracleMismatch(AssertionError):
    """A choice handed to the oracle breaks the kernel's placement rules."""


def _c_hex(value: int) -> str:
    """printf ``%#lx``: ``0x``-prefixed hex, but plain ``0`` for zero."""
    return f"{value:#x}" if value else "0"


def _is_power_of_2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _fls(n: int) -> int:
    """``fls()``: the 1-based index of the highest set bit, 0 for 0."""
    return n.bit_length()


@define(eq=False)
class OracleArea:
    """A ``struct vmap_area`` as the oracle sees it: range, flags, whether a ``vm`` is bound."""

    va_start: int
    va_end: int
    flags: int = 0
    has_vm: bool = False

    @property
    def size(self) -> int:
        return self.va_end - self.va_start

    def as_tuple(self) -> Block:
        return (self.va_start, self.va_end)


@frozen
class PlacementBounds:
    """What the kernel's ``find_vmap_lowest_match`` may return for one request.

    ``lowest_fit`` is the lowest free block ``is_within_this_va`` accepts.
    ``limit`` is the lowest *accepted* block of at least ``size + align - 1``
    bytes: the pruned search never skips a subtree that holds one, so the
    block it returns is never above ``limit``, and it returns NULL only when
    there is no ``limit``.  Without ``adjust`` the search is exact: it returns
    ``lowest_fit``.
    """

    size: int
    align: int
    vstart: int
    adjust: bool
    lowest_fit: Block | None
    limit: Block | None

    def nva(self, block: Block) -> int:
        """The aligned start ``is_within_this_va`` and ``va_alloc`` compute in *block*."""
        return _aligned_start(block, self.align, self.vstart)

    def allows_block(self, block: Block) -> bool:
        """May the search return *block* (a current free block)?"""
        if not _is_within_this_va(block, self.size, self.align, self.vstart):
            return False
        if not self.adjust:
            return block == self.lowest_fit
        return self.limit is None or block[0] <= self.limit[0]

    def may_fail(self, vend: int) -> bool:
        """May ``__alloc_vmap_area`` fail (-ENOENT or -ERANGE) for this window end?"""
        if self.adjust:
            # Every allowed block is at or below ``limit`` and has an aligned start
            # no higher than limit's, so only ``limit`` itself decides -ERANGE.
            return self.limit is None or self.nva(self.limit) + self.size > vend
        return self.lowest_fit is None or self.nva(self.lowest_fit) + self.size > vend


def _aligned_start(block: Block, align: int, vstart: int) -> int:
    """``ALIGN(max(va_start, vstart), align)`` in unsigned 64-bit arithmetic."""
    base = max(block[0], vstart)
    return ((base + align - 1) // align * align) % ADDRESS_LIMIT


def _gfp_semantics(gfp: int | None) -> tuple[bool, bool]:
    """``(gfpflags_allow_blocking(gfp), gfp & __GFP_NOWARN)``; None is GFP_KERNEL."""
    if gfp is None:
        return True, False
    return bool(gfp & __GFP_DIRECT_RECLAIM), bool(gfp & __GFP_NOWARN)


def _warn_alloc_suffix(gfp: int | None) -> str:
    """What ``__vmalloc_node_range`` appends to its failure line: ". Retrying." if nofail."""
    return ". Retrying." if gfp is not None and gfp & __GFP_NOFAIL else ""


def _is_within_this_va(block: Block, size: int, align: int, vstart: int) -> bool:
    """``is_within_this_va()``: does an aligned ``size`` fit in *block* at or above vstart?"""
    nva = _aligned_start(block, align, vstart)
    if nva + size >= ADDRESS_LIMIT or nva < vstart:
        return False
    return nva + size <= block[1]


class ReferenceAllocator:
    """An obviously-correct model of mm/vmalloc.c's VA allocator (the oracle).

    ``nr_cpus`` is ``num_possible_cpus()`` and ``num_online_cpus()`` alike.
    ``overlay`` names the per-CPU bump overlay's rules
    (:data:`vmapsim.checking.oracle_overlay.OVERLAY_MODES`): ``"off"`` (stages 0-9),
    ``"patch10"``, ``"patch11"`` or ``"patch12"``.
    """

    def __init__(
        self,
        *,
        arch: str = "x86_64",
        nr_cpus: int = 1,
        placement: str = "pruned",
        overlay: str = "off",
    ) -> None:
        if arch not in VMALLOC_WINDOWS:
            raise VmapArgumentError("arch", f"must be one of {sorted(VMALLOC_WINDOWS)}", arch)
        if placement not in PLACEMENTS:
            raise VmapArgumentError("placement", f"must be one of {PLACEMENTS}", placement)
        if overlay not in OVERLAY_MODES:
            raise VmapArgumentError("overlay", f"must be one of {OVERLAY_MODES}", overlay)
        #: how placements above PAGE_SIZE are made: "pruned" (the rb-tree's walk:
        #: bounds, the model's choice followed) or "gaps" (an occupied tree's
        #: over-ask: exact, see :meth:`_gap_placement`)
        self.placement = placement
        self.arch = arch
        self.page_size = PAGE_SIZE
        self.vmalloc_start, self.vmalloc_end = VMALLOC_WINDOWS[arch]
        self.nr_cpus = nr_cpus
        # vmap_init_nodes()
        self.nr_vmap_nodes = min(max(nr_cpus, 1), 128)
        self.vmap_zone_size = 16 * self.page_size if self.nr_vmap_nodes > 1 else 1
        # vmap_init_free_space(): the whole KVA space, no early vmlist areas.
        self._free: list[Block] = [(1, ULONG_MAX)]
        nodes = range(self.nr_vmap_nodes)
        self._busy: list[dict[int, OracleArea]] = [{} for _ in nodes]
        self._lazy: list[list[OracleArea]] = [[] for _ in nodes]
        self._pools: list[dict[int, deque[OracleArea]]] = [{} for _ in nodes]
        self.vmap_lazy_nr = 0
        self.log: list[str] = []
        self._warned_once: set[str] = set()
        self._init_core_features()  # vmap blocks, pcpu, percpu, RCU, vrealloc (below)
        #: the per-CPU bump overlay (stages 10-12), or None
        self.overlay: ReferenceOverlay | None = None
        if overlay != "off":
            self.overlay = ReferenceOverlay(
                overlay,
                nr_cpus=nr_cpus,
                vmalloc_start=self.vmalloc_start,
                vmalloc_end=self.vmalloc_end,
                reserve=self._reserve_chunk,
                release=self._release_chunk,
                log=self.log,
            )
        #: bump area start -> whether a vm_struct is bound to it
        self._bump_vm: dict[int, bool] = {}
        #: the range the last ``vm_unmap_aliases()`` flushed, or None if it flushed nothing
        self.unmap_aliases_flush: Block | None = None

    def _warn_once(self, what: str) -> None:
        """``WARN_ON_ONCE()``: log the first time only."""
        if what not in self._warned_once:
            self._warned_once.add(what)
            self.log.append(f"WARNING: {what}")

    # -- nodes ---------------------------------------------------------------

    def lazy_max_pages(self) -> int:
        """``lazy_max_pages()``: ``fls(num_online_cpus()) * 32 MiB / PAGE_SIZE``."""
        return _fls(self.nr_cpus) * (LAZY_MAX_BYTES_PER_STEP // self.page_size)

    def addr_to_node(self, addr: int) -> int:
        """``addr_to_node_id()``."""
        return (addr // self.vmap_zone_size) % self.nr_vmap_nodes

    @staticmethod
    def encode_vn_id(node_id: int) -> int:
        """``encode_vn_id()``: ``(id + 1) << 8``; 0 means no node."""
        return (node_id + 1) << 8

    def decode_vn_id(self, flags: int) -> int:
        """``decode_vn_id()``: the node id, or ``nr_vmap_nodes`` (invalid) for none."""
        encoded = flags >> 8
        return encoded - 1 if 0 < encoded <= self.nr_vmap_nodes else self.nr_vmap_nodes

    def pool_index(self, size: int) -> int | None:
        """``size_to_va_pool()``: ``(size - 1) / PAGE_SIZE`` if below MAX_VA_SIZE_PAGES."""
        idx = (size - 1) // self.page_size
        return idx if idx < MAX_VA_SIZE_PAGES else None

    # -- the global free set -------------------------------------------------

    def _carve(self, start: int, end: int) -> None:
        """``va_clip()``: remove ``[start, end)`` from the one free block holding it."""
        i = bisect.bisect_right(self._free, (start, ADDRESS_LIMIT)) - 1
        if i < 0 or not (self._free[i][0] <= start and end <= self._free[i][1]):
            raise OracleMismatch(f"[{start:#x}, {end:#x}) is not inside one free block")
        bstart, bend = self._free.pop(i)
        pieces = [p for p in ((bstart, start), (end, bend)) if p[0] < p[1]]
        self._free[i:i] = pieces

    def _release(self, start: int, end: int) -> None:
        """``merge_or_add_vmap_area()``: give ``[start, end)`` back, merging with neighbours."""
        i = bisect.bisect_left(self._free, (start, end))
        prev = self._free[i - 1] if i > 0 else None
        nxt = self._free[i] if i < len(self._free) else None
        if (prev and prev[1] > start) or (nxt and nxt[0] < end):
            raise OracleMismatch(f"released [{start:#x}, {end:#x}) overlaps free space")
        if nxt and nxt[0] == end:
            end = self._free.pop(i)[1]
        if prev and prev[1] == start:
            start = self._free.pop(i - 1)[0]
            i -= 1
        self._free.insert(i, (start, end))

    # -- placement -----------------------------------------------------------

    def lowest_match(self, size: int, align: int, vstart: int) -> Block | None:
        """The lowest free block ``is_within_this_va`` accepts (the exact search)."""
        for block in self._free:
            if _is_within_this_va(block, size, align, vstart):
                return block
        return None

    def placement_bounds(
        self, size: int, align: int, vstart: int, *, adjust: bool = True
    ) -> PlacementBounds:
        """What ``find_vmap_lowest_match`` may return (see :class:`PlacementBounds`)."""
        fits = [b for b in self._free if _is_within_this_va(b, size, align, vstart)]
        big = [b for b in fits if b[1] - b[0] >= size + align - 1]
        return PlacementBounds(
            size=size,
            align=align,
            vstart=vstart,
            adjust=adjust,
            lowest_fit=fits[0] if fits else None,
            limit=big[0] if big else None,
        )

    def alloc_at(self, addr: int, size: int) -> None:
        """Carve ``[addr, addr + size)`` out of free space (the model chose *addr*)."""
        self._carve(addr, addr + size)

    def try_alloc_range(
        self,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        choose: Chooser | None = None,
    ) -> int:
        """``__alloc_vmap_area()``: the address, or ``-ENOENT`` / ``-ERANGE``.

        ``adjust_search_size`` is off for ``align <= PAGE_SIZE`` and for an
        exact-fit window; then the result is exact.  Otherwise *choose* (if
        given) picks the outcome the model produced, checked against the
        bounds; without it the oracle takes the lowest fit, one allowed outcome.
        """
        adjust = not (align <= self.page_size or vend - vstart == size)
        if adjust and self.placement == "gaps":
            nva = self._gap_placement(size, align, vstart, vend)
            if nva < 0:
                return nva
            self._carve(nva, nva + size)
            return nva
        bounds = self.placement_bounds(size, align, vstart, adjust=adjust)
        if not adjust or choose is None:
            block = bounds.lowest_fit
            if block is None:
                return -errno.ENOENT
            nva = bounds.nva(block)
            if nva + size > vend:
                return -errno.ERANGE
            self._carve(nva, nva + size)
            return nva
        chosen = choose(bounds, vend)
        if chosen is None:
            if not bounds.may_fail(vend):
                raise OracleMismatch(
                    f"placement of size {size:#x} align {align:#x} in "
                    f"[{vstart:#x}, {vend:#x}) failed, but block {bounds.limit} fits"
                )
            return -errno.ENOENT if bounds.limit is None else -errno.ERANGE
        i = bisect.bisect_right(self._free, (chosen, ADDRESS_LIMIT)) - 1
        block = self._free[i] if i >= 0 else None
        if (
            block is None
            or not bounds.allows_block(block)
            or bounds.nva(block) != chosen
            or chosen + size > vend
        ):
            raise OracleMismatch(
                f"placement of size {size:#x} align {align:#x} in [{vstart:#x}, {vend:#x}) "
                f"at {chosen:#x} is not allowed: free block {block}, "
                f"lowest fit {bounds.lowest_fit}, limit {bounds.limit}"
            )
        self._carve(chosen, chosen + size)
        return chosen

    def _gap_placement(self, size: int, align: int, vstart: int, vend: int) -> int:
        """Placement over the gaps of an occupied tree, above PAGE_SIZE: the
        lowest free range whose part inside ``[vstart, vend)`` holds ``size +
        align - 1`` bytes gives ``ALIGN(max(start, vstart), align)`` (the
        over-ask); if none does, the lowest aligned fit inside the window;
        ``-ENOENT`` if there is none either."""
        length = size + align - 1
        fallback = -errno.ENOENT
        for start, end in self._free:
            lo = start if start > vstart else vstart
            hi = end if end < vend else vend
            if lo >= hi:
                continue
            nva = (lo + align - 1) & ~(align - 1)
            if nva < lo or nva >= ADDRESS_LIMIT:  # ALIGN() wrapped
                continue
            if hi - lo >= length:
                return nva
            if fallback < 0 and nva + size <= hi:
                fallback = nva
        return fallback

    # -- pools ---------------------------------------------------------------

    def node_alloc(
        self, size: int, align: int, vstart: int, vend: int, cpu: int
    ) -> tuple[OracleArea | None, int]:
        """``node_alloc()`` + ``node_pool_del_va()``: a pooled area or None, and vn_id."""
        if vstart != self.vmalloc_start or vend != self.vmalloc_end or self.nr_vmap_nodes == 1:
            return None, 0
        node = cpu % self.nr_vmap_nodes
        vn_id = self.encode_vn_id(node)
        idx = self.pool_index(size)
        pool = self._pools[node].get(idx) if idx is not None else None
        if not pool:
            return None, vn_id
        head = pool[0]
        if head.va_start % align:
            pool.rotate(-1)  # list_move_tail()
            return None, vn_id
        if head.size != size or head.va_start < vstart or head.va_end > vend:
            self._warn_once("node_pool_del_va: pooled area fails sanity checks")
            return None, vn_id
        pool.popleft()
        return head, vn_id

    def pooled_areas(self) -> list[Block]:
        """Every pooled area, all nodes and sizes, sorted by address."""
        return sorted(a.as_tuple() for node in self._pools for p in node.values() for a in p)

    def pools(self) -> dict[tuple[int, int], list[Block]]:
        """``{(node, pool index): [areas from head to tail]}`` for the non-empty pools."""
        return {
            (n, idx): [a.as_tuple() for a in pool]
            for n, node in enumerate(self._pools)
            for idx, pool in sorted(node.items())
            if pool
        }

    # -- lazy freeing and purging ---------------------------------------------

    def free_vmap_area_noflush(self, area: OracleArea) -> None:
        """``free_vmap_area_noflush()``, busy unlink included; drains past the threshold.
        A bump area leaves its chunk instead (on CPU 0 at patches 11-12)."""
        if self._free_bump(area.va_start, 0, area.as_tuple()):
            return
        self._unlink_busy(area)
        self._queue_lazy(area)

    def _queue_lazy(self, area: OracleArea) -> None:
        self.vmap_lazy_nr += area.size // self.page_size
        vn = self.decode_vn_id(area.flags)
        node = vn if vn < self.nr_vmap_nodes else self.addr_to_node(area.va_start)
        self._lazy[node].append(area)
        if self.vmap_lazy_nr > self.lazy_max_pages():
            # drain_vmap_area_work(), run at once by the model
            self._purge_vmap_area_lazy(full_pool_decay=False)

    def _purge_vmap_area_lazy(self, *, full_pool_decay: bool) -> None:
        """``__purge_vmap_area_lazy()`` with ``decay_va_pool_node()`` and ``purge_vmap_node()``."""
        for node in range(self.nr_vmap_nodes):
            skip_populate = full_pool_decay
            for idx in sorted(self._pools[node]):
                pool = self._pools[node][idx]
                n_decay = len(pool) if full_pool_decay else len(pool) >> 2
                for _ in range(n_decay):
                    va = pool.popleft()
                    self._release(va.va_start, va.va_end)
            lazy = sorted(self._lazy[node], key=lambda a: a.va_start)
            self._lazy[node] = []
            for va in lazy:
                self.vmap_lazy_nr -= va.size // self.page_size
                idx = self.pool_index(va.size)
                vn_valid = self.decode_vn_id(va.flags) < self.nr_vmap_nodes
                if vn_valid and not skip_populate and idx is not None:
                    self._pools[node].setdefault(idx, deque()).appendleft(va)
                else:
                    self._release(va.va_start, va.va_end)

    def purge_vmap_area_lazy(self) -> None:
        """``purge_vmap_area_lazy()``: ``reclaim_and_purge_vmap_areas()`` (full pool decay)."""
        self._reclaim_and_purge_vmap_areas()

    def shrinkable_objects(self) -> int:
        """What the "vmap-node" shrinker can free: pooled areas, and the
        overlay's current chunks with nothing live."""
        return len(self.pooled_areas())

    def vmap_node_shrink_count(self) -> int:
        """``vmap_node_shrink_count()``: :meth:`shrinkable_objects`, or
        ``SHRINK_EMPTY`` (``~0UL - 1``) when that is 0."""
        return self.shrinkable_objects() or SHRINK_EMPTY

    def vmap_node_shrink_scan(self) -> None:
        """``vmap_node_shrink_scan()``: every pool is released whole; the
        lazily freed areas stay queued (the patches give the shrinker no chunk)."""
        for pools in self._pools:
            for pool in pools.values():
                while pool:
                    va = pool.popleft()
                    self._release(va.va_start, va.va_end)

    # -- busy areas ----------------------------------------------------------

    def _unlink_busy(self, area: OracleArea) -> None:
        busy = self._busy[self.addr_to_node(area.va_start)]
        if busy.get(area.va_start) is not area:
            raise OracleMismatch(f"{area} is not busy")
        del busy[area.va_start]
        self._drop_vm_struct(area)

    def _drop_vm_struct(self, area: OracleArea) -> None:
        """The area's ``vm_struct`` goes with it (requested size, pages)."""
        self._requested.pop(area.va_start, None)
        self._nr_pages.pop(area.va_start, None)

    def find_vmap_area(self, addr: int) -> OracleArea | None:
        """``find_vmap_area()``: the busy area with ``va_start <= addr < va_end``, any node.

        With the overlay: patches 11-12 look in the chunks first; at 10 a bump
        area is found inside its chunk's busy area.  A chunk's range itself is
        no busy area."""
        ov = self.overlay
        if ov is not None:
            live = ov.lookup(addr, None, self.rcu_clock)
            if live is not None:
                return self._bump_area(live)
        return self._find_busy(addr)

    def _find_busy(self, addr: int) -> OracleArea | None:
        """The busy trees' answer (a chunk's busy area resolved or hidden)."""
        ov = self.overlay
        for busy in self._busy:
            for va in busy.values():
                if va.va_start <= addr < va.va_end:
                    chunk = ov.chunk_of_area(va) if ov is not None else None
                    if chunk is None:
                        return va
                    if ov.patch != 10:  # type: ignore[union-attr]
                        return None
                    live = ov.live_in(chunk, addr)  # type: ignore[union-attr]
                    return None if live is None else self._bump_area(live)
        return None

    def _bump_area(self, live: Block) -> OracleArea:
        return OracleArea(live[0], live[1], flags=0, has_vm=self._bump_vm.get(live[0], False))

    def _free_bump(self, addr: int, cpu: int, want: Block | None) -> bool:
        """A bump area freed: patches 11-12 ``vmap_bump_unlink()`` on ``cpu``
        (``want`` None: only one with a ``vm_struct`` starting at ``addr``,
        else exactly ``want``); patch 10 through its chunk's busy area.
        False if ``addr`` starts no such bump area."""
        ov = self.overlay
        if ov is None:
            return False
        if ov.patch != 10:

            def accept(r: Block) -> bool:
                return r == want if want is not None else self._bump_vm.get(r[0], False)

            got = ov.unlink(addr, cpu, self.rcu_clock, self.rcu_clock + self.RCU_GP, accept)
            if got is None:
                return False
        else:
            for chunk in ov.chunks:
                if chunk.start <= addr < chunk.end and not chunk.retired:
                    break
            else:
                return False
            end = chunk.live.get(addr)
            if end is None or (want is not None and want != (addr, end)):
                return False
            if want is None and not self._bump_vm.get(addr, False):
                return False
            ov.free10(chunk, addr)
        self._drop_vm_struct(OracleArea(addr, addr + 1))
        self._bump_vm.pop(addr, None)
        return True

    def _free_vm_area(self, area: OracleArea, cpu: int = 0) -> None:
        """``remove_vm_area()`` + ``free_unmap_vmap_area()`` of a vmalloc area:
        a bump area leaves its chunk, any other goes to the lazy path."""
        if self._free_bump(area.va_start, cpu, None):
            return
        self._unlink_busy(area)
        self._queue_lazy(area)

    def _reserve_chunk(self, size: int, cpu: int) -> OracleArea | None:
        """A chunk's range: the lowest page-aligned fit in the vmalloc window,
        no purge; held as a busy area without ``vm_struct``."""
        addr = self.try_alloc_range(size, self.page_size, self.vmalloc_start, self.vmalloc_end)
        if addr < 0:
            return None
        area = OracleArea(addr, addr + size, flags=0, has_vm=False)
        self._busy[self.addr_to_node(addr)][addr] = area
        return area

    def _release_chunk(self, area: object) -> None:
        """A retired chunk's range goes back at once (no lazy queue)."""
        assert isinstance(area, OracleArea)
        self._unlink_busy(area)
        self._release(area.va_start, area.va_end)

    # -- allocation ----------------------------------------------------------

    def alloc_vmap_area(
        self,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        *,
        gfp: int | None = None,
        cpu: int = 0,
        choose: Chooser | None = None,
        has_vm: bool = False,
        ram: bool = False,
    ) -> OracleArea:
        """``alloc_vmap_area()``: pool, placement, one purge-and-retry, ``-EBUSY``.

        *gfp* None means ``GFP_KERNEL``.  Raises :class:`VmapError` with the errno.
        With the overlay, a request that is not ``vm_map_ram``'s (``ram``) goes
        through the bump path first (11-12) or after the pool (10).
        """
        if size <= 0 or size % self.page_size:  # ERR_PTR(-EINVAL)
            raise VmapError(errno.EINVAL, f"size {size:#x}: not a non-zero multiple of PAGE_SIZE")
        if not _is_power_of_2(align):
            raise VmapError(errno.EINVAL, f"align {align:#x}: not a power of two")
        allow_block, nowarn = _gfp_semantics(gfp)
        ov = self.overlay if not ram else None
        if ov is not None and ov.patch != 10:
            eligible = ov.eligible(size, align, vstart, vend)
            if eligible or ov.patch == 11:
                addr = ov.bump(size, align, cpu, self.rcu_clock) if eligible else None
                if addr is None and ov.refill(cpu) and eligible:
                    addr = ov.bump(size, align, cpu, self.rcu_clock)
                if addr is not None:  # in no busy tree: the chunk holds it
                    self._bump_vm[addr] = has_vm
                    return OracleArea(addr, addr + size, flags=0, has_vm=has_vm)
        pooled, vn_id = self.node_alloc(size, align, vstart, vend, cpu)
        if pooled is not None:
            addr = pooled.va_start
        else:
            addr = self._bump10(ov, size, align, vstart, vend, cpu, has_vm)
            if addr is not None:
                return OracleArea(addr, addr + size, flags=vn_id, has_vm=has_vm)
            addr = self.try_alloc_range(size, align, vstart, vend, choose)
            if addr < 0 and allow_block:
                self._reclaim_and_purge_vmap_areas()
                addr = self._bump10(ov, size, align, vstart, vend, cpu, has_vm)
                if addr is not None:
                    return OracleArea(addr, addr + size, flags=vn_id, has_vm=has_vm)
                addr = self.try_alloc_range(size, align, vstart, vend, choose)
            if addr < 0:
                if allow_block and not nowarn:
                    self.log.append(
                        f"vmalloc_node_range for size {size} failed: Address range "
                        f"restricted to {_c_hex(vstart)} - {_c_hex(vend)}"
                    )
                raise VmapError(errno.EBUSY, f"no free range of {size:#x} bytes")
        area = OracleArea(addr, addr + size, flags=vn_id, has_vm=has_vm)
        self._busy[self.addr_to_node(addr)][addr] = area
        return area

    def _bump10(
        self,
        ov: ReferenceOverlay | None,
        size: int,
        align: int,
        vstart: int,
        vend: int,
        cpu: int,
        has_vm: bool,
    ) -> int | None:
        """Patch 10 at ``retry:``: bump; on a miss refill and bump once more."""
        if ov is None or ov.patch != 10 or not ov.eligible(size, align, vstart, vend):
            return None
        addr = ov.bump(size, align, cpu, self.rcu_clock)
        if addr is None and ov.refill(cpu):
            addr = ov.bump(size, align, cpu, self.rcu_clock)
        if addr is not None:
            self._bump_vm[addr] = has_vm
        return addr

    def vmalloc_node(
        self,
        size: int,
        align: int,
        *,
        gfp: int | None = None,
        cpu: int = 0,
        choose: Chooser | None = None,
    ) -> int | None:
        """``__vmalloc_node()``: page-rounded size plus a guard page in the vmalloc window."""
        self._rcu_tick()
        return self._vmalloc_node_range(size, align, gfp=gfp, cpu=cpu, choose=choose)

    def _vmalloc_node_range(
        self,
        size: int,
        align: int,
        *,
        gfp: int | None = None,
        cpu: int = 0,
        choose: Chooser | None = None,
    ) -> int | None:
        """``__vmalloc_node_range()`` in the vmalloc window; records ``requested_size``."""
        if size == 0:
            self._warn_once("__vmalloc_node_range: size 0")
            return None
        real = -(-size // self.page_size) * self.page_size + self.page_size
        try:
            area = self.alloc_vmap_area(
                real,
                align,
                self.vmalloc_start,
                self.vmalloc_end,
                gfp=gfp,
                cpu=cpu,
                choose=choose,
                has_vm=True,
            )
        except VmapError:
            if not _gfp_semantics(gfp)[1]:  # warn_alloc() is silent under __GFP_NOWARN
                self.log.append(
                    f"vmalloc error: size {size}, vm_struct allocation failed"
                    f"{_warn_alloc_suffix(gfp)}"
                )
            return None
        self._requested[area.va_start] = size
        self._nr_pages[area.va_start] = real // self.page_size - 1  # no guard page
        return area.va_start

    def vmalloc(self, size: int, *, cpu: int = 0, choose: Chooser | None = None) -> int | None:
        """``vmalloc()``: ``__vmalloc_node(size, 1, GFP_KERNEL, ...)``."""
        return self.vmalloc_node(size, 1, cpu=cpu, choose=choose)

    def vfree(self, addr: int | None, *, cpu: int = 0) -> None:
        """``vfree()`` -> ``remove_vm_area()`` -> ``free_unmap_vmap_area()``.

        Like the model, and stricter than the kernel: an address inside a busy
        area that is not its start, or the start of an area without a
        ``vm_struct``, only warns (the kernel would unlink that area).
        """
        if not addr:
            return
        self._rcu_tick()
        if addr in self._rcu_pending:
            self.log.append(f"vfree({addr:#x}): queued by kvfree_rcu() (double free)")
            return
        if addr % self.page_size:
            self.log.append(f"Trying to vfree() bad address ({addr:#x})")
            self.log.append(f"Trying to vfree() nonexistent vm area ({addr:#x})")
            return
        if self.overlay is not None and self.overlay.patch != 10:
            if self._free_bump(addr, cpu, None):  # vmap_bump_unlink() first
                return
            area = self._find_busy(addr)
        else:
            area = self.find_vmap_area(addr)
        if area is None or not area.has_vm:
            self.log.append(f"Trying to vfree() nonexistent vm area ({addr:#x})")
            return
        if area.va_start != addr:
            self.log.append(
                f"Trying to vfree() bad address ({addr:#x}): inside vm area "
                f"{area.va_start:#x}-{area.va_end:#x}"
            )
            return
        self._free_vm_area(area, cpu)

    # -- views ---------------------------------------------------------------

    def free_areas(self) -> list[Block]:
        """The global free set, sorted, fully coalesced."""
        return list(self._free)

    def busy_areas(self) -> list[Block]:
        """Every busy area (all nodes), sorted by address."""
        return sorted(va.as_tuple() for busy in self._busy for va in busy.values())

    def overlay_areas(self) -> list[Block]:
        """Every live overlay area, sorted (none without the overlay)."""
        return self.overlay.live_areas() if self.overlay is not None else []

    def overlay_chunks(self) -> list[tuple[int, int, int, int, int]]:
        """Every reserved overlay chunk as ``(start, end, cpu, bump, live)``, sorted."""
        return self.overlay.chunk_states() if self.overlay is not None else []

    def lazy_areas(self) -> list[Block]:
        """Every lazily freed, not yet purged area (all nodes), sorted by address."""
        return sorted(va.as_tuple() for lazy in self._lazy for va in lazy)

    def busy_node(self, addr: int) -> int | None:
        """The node whose busy tree holds the area starting at *addr*."""
        for node, busy in enumerate(self._busy):
            if addr in busy:
                return node
        return None

    def lazy_node(self, addr: int) -> int | None:
        """The node whose lazy tree holds the area starting at *addr*."""
        for node, lazy in enumerate(self._lazy):
            if any(va.va_start == addr for va in lazy):
                return node
        return None

    # == the features test_vmalloc needs (vmap blocks, pcpu, percpu, RCU, vrealloc) ==
    # Written plainly and apart from core/kernel/vmap_block.py, pcpu.py, percpu.py, rcu.py
    # and vrealloc.py: blocks hold a set of mapped page numbers, the pcpu search
    # tries every candidate base from the top, percpu chunks scan a dict.

    #: pages per vmap block, from VMAP_BBMAP_BITS' formula with NR_CPUS = 64
    VB_PAGES = min(1024, max(128, (128 << 30) // 4096 // 64 // 16))
    #: modeled RCU: ticks per entry point, ticks per grace period
    RCU_TICK = 1
    RCU_GP = 128
    #: percpu: 256 KiB units, 2 MiB atoms, 4-byte granule, 32 KiB largest object
    PCPU_UNIT = 256 << 10
    PCPU_ATOM = 2 << 20

    def _init_core_features(self) -> None:
        self.vb_size = self.VB_PAGES * self.page_size
        #: per CPU: the free list of blocks (dicts) and the "xarray" idx -> block
        self._vb_free: list[list[dict]] = [[] for _ in range(self.nr_cpus)]
        self._vb_xa: list[dict[int, dict]] = [{} for _ in range(self.nr_cpus)]
        self.rcu_clock = 0
        self._rcu_queue: list[tuple[int, int]] = []  # (grace period end, addr), FIFO
        self._rcu_pending: set[int] = set()
        self._requested: dict[int, int] = {}  # vmalloc area -> requested_size
        self._nr_pages: dict[int, int] = {}  # vmalloc area -> pages mapped
        upa = self.PCPU_ATOM // self.PCPU_UNIT
        self.pcpu_nr_units = -(-self.nr_cpus // upa) * upa
        self._chunks: list[dict] = []  # {"base", "addr", "objs": {off: size}}

    def _reclaim_and_purge_vmap_areas(self) -> None:
        """``reclaim_and_purge_vmap_areas()``: forced fragmented-block purge, full purge."""
        self.purge_fragmented_blocks_allcpus()
        self._purge_vmap_area_lazy(full_pool_decay=True)

    # -- RCU --------------------------------------------------------------------

    def _rcu_tick(self) -> None:
        self.rcu_clock += self.RCU_TICK
        self._rcu_run_due()

    def _rcu_run_due(self) -> None:
        while self._rcu_queue and self._rcu_queue[0][0] <= self.rcu_clock:
            _, addr = self._rcu_queue.pop(0)
            self._rcu_pending.discard(addr)
            area = self.find_vmap_area(addr)
            assert area is not None and area.va_start == addr
            self._free_vm_area(area)

    def kvfree_rcu(self, addr: int | None, *, cpu: int = 0) -> None:
        """``kvfree_rcu()``: vfree() the area once a grace period has passed."""
        if not addr:
            return
        self._rcu_tick()
        if addr % self.page_size:
            self.log.append(f"Trying to vfree() bad address ({addr:#x})")
            return
        if addr in self._rcu_pending:
            self.log.append(f"kvfree_rcu({addr:#x}): already queued (double free)")
            return
        area = self.find_vmap_area(addr)
        if area is None or not area.has_vm or area.va_start != addr:
            self.log.append(f"Trying to vfree() nonexistent vm area ({addr:#x})")
            return
        self._rcu_queue.append((self.rcu_clock + self.RCU_GP, addr))
        self._rcu_pending.add(addr)

    def synchronize_rcu(self) -> None:
        """``synchronize_rcu()``: one grace period passes."""
        self.rcu_clock += self.RCU_GP
        self._rcu_run_due()

    def rcu_barrier(self) -> None:
        """``rcu_barrier()``: every queued callback runs."""
        if self._rcu_queue:
            self.rcu_clock = max(self.rcu_clock, self._rcu_queue[-1][0])
        self._rcu_run_due()

    def rcu_pending_areas(self) -> list[int]:
        return sorted(self._rcu_pending)

    # -- __vmalloc(gfp), vrealloc --------------------------------------------------

    def vmalloc_gfp(
        self, size: int, *, gfp: int, cpu: int = 0, choose: Chooser | None = None
    ) -> int | None:
        """``__vmalloc(size, gfp)``."""
        self._rcu_tick()
        return self._vmalloc_node_range(size, 1, gfp=gfp, cpu=cpu, choose=choose)

    def vrealloc(
        self, addr: int | None, size: int, *, gfp: int | None = None, cpu: int = 0
    ) -> int | None:
        """``vrealloc()``: a shrink frees whole tail pages (with IO and FS in gfp);
        in place while ``size`` fits the mapped pages; else move."""
        if size == 0:
            self.vfree(addr, cpu=cpu)
            return None
        self._rcu_tick()
        if addr:
            area = self.find_vmap_area(addr)
            if addr in self._rcu_pending or area is None or not area.has_vm:
                self.log.append(f"Trying to vrealloc() nonexistent vm area ({addr:#x})")
                return None
            if area.va_start != addr:
                self.log.append(f"Trying to vrealloc() nonexistent vm area ({addr:#x})")
                return None
            usable = area.size - self.page_size  # get_vm_area_size(): no guard
            if self._requested.get(addr, 0) > usable:
                self.log.append(f"vrealloc() has mismatched area vs requested sizes ({addr:#x})")
                return None
            old = self._requested.get(addr, 0)
            if size <= old:
                pages = -(-size // self.page_size)
                io_fs = 0xC0  # __GFP_IO | __GFP_FS
                if pages < self._nr_pages.get(addr, 0) and (gfp is None or gfp & io_fs == io_fs):
                    self._nr_pages[addr] = pages
                self._requested[addr] = size
                return addr
            if size <= self._nr_pages.get(addr, 0) * self.page_size:
                self._requested[addr] = size
                return addr
        new = self._vmalloc_node_range(size, 1, gfp=gfp, cpu=cpu)
        if new is not None and addr:
            area = self.find_vmap_area(addr)
            assert area is not None
            self._free_vm_area(area)
        return new

    def requested_size(self, addr: int) -> int:
        """The ``vm_struct.requested_size`` of the vmalloc area at *addr*."""
        return self._requested.get(addr, 0)

    def nr_pages(self, addr: int) -> int:
        """The ``vm_struct.nr_pages`` (pages mapped) of the vmalloc area at *addr*."""
        return self._nr_pages.get(addr, 0)

    # -- vm_map_ram and vmap blocks -------------------------------------------------

    def _vb_xa_of(self, addr: int) -> tuple[dict[int, dict], int]:
        """``addr_to_vb_xa()`` and ``addr_to_vb_idx()``."""
        xa = self._vb_xa[(addr // self.vb_size) % self.nr_cpus]
        base = self.vmalloc_start - self.vmalloc_start % self.vb_size
        return xa, (addr - base) // self.vb_size

    def vm_map_ram(self, count: int, *, cpu: int = 0, choose: Chooser | None = None) -> int | None:
        """``vm_map_ram()``: a block mapping for <= 64 pages, else an area of its own."""
        self._rcu_tick()
        if count == 0:
            self._warn_once("vb_alloc: size 0")
            return None
        if count > 64:
            try:
                area = self.alloc_vmap_area(
                    count * self.page_size,
                    self.page_size,
                    self.vmalloc_start,
                    self.vmalloc_end,
                    cpu=cpu,
                    ram=True,
                )
            except VmapError:
                return None
            area.flags |= 0x1  # VMAP_RAM
            return area.va_start
        n = 1
        while n < count:
            n *= 2
        for vb in self._vb_free[cpu]:
            if vb["free"] >= n:
                off = self.VB_PAGES - vb["free"]
                vb["free"] -= n
                vb["mapped"].update(range(off, off + n))
                if vb["free"] == 0:
                    self._vb_free[cpu].remove(vb)
                return vb["va"].va_start + off * self.page_size
        try:
            area = self.alloc_vmap_area(
                self.vb_size,
                self.vb_size,
                self.vmalloc_start,
                self.vmalloc_end,
                cpu=cpu,
                choose=choose,
                ram=True,
            )
        except VmapError:
            return None
        area.flags |= 0x3  # VMAP_RAM | VMAP_BLOCK
        vb = {
            "va": area,
            "cpu": cpu,
            "free": self.VB_PAGES - n,
            "dirty": 0,
            "mapped": set(range(n)),
            "dirty_min": self.VB_PAGES,
            "dirty_max": 0,
        }
        xa, idx = self._vb_xa_of(area.va_start)
        xa[idx] = vb
        self._vb_free[cpu].append(vb)
        return area.va_start

    def vm_unmap_ram(self, addr: int, count: int, *, cpu: int = 0) -> None:
        """``vm_unmap_ram()`` (valid addresses: the model raises for the BUG_ON cases)."""
        self._rcu_tick()
        if count > 64:
            area = self.find_vmap_area(addr)
            if area is None:
                self._warn_once("vm_unmap_ram: no area")
                return
            if (
                area.va_start != addr
                or area.has_vm
                or area.flags & 0x3 != 0x1
                or area.size != count * self.page_size
            ):
                self.log.append(f"vm_unmap_ram({addr:#x}, {count}): not such an area")
                return
            self.free_vmap_area_noflush(area)
            return
        xa, idx = self._vb_xa_of(addr)
        vb = xa[idx]
        n = 1
        while n < count:
            n *= 2
        off = (addr - vb["va"].va_start) // self.page_size
        pages = set(range(off, off + n))
        if off + n > self.VB_PAGES or not pages <= vb["mapped"]:
            self.log.append(f"vm_unmap_ram({addr:#x}, {count}): pages not mapped")
            return
        vb["mapped"] -= pages
        vb["dirty_min"] = min(vb["dirty_min"], off)
        vb["dirty_max"] = max(vb["dirty_max"], off + n)
        vb["dirty"] += n
        if vb["dirty"] == self.VB_PAGES:
            self._free_vb(vb)

    def _free_vb(self, vb: dict) -> None:
        """``free_vmap_block()``: the block's area goes down the lazy path."""
        xa, idx = self._vb_xa_of(vb["va"].va_start)
        del xa[idx]
        self.free_vmap_area_noflush(vb["va"])

    def _purgeable(self, vb: dict, force: bool) -> bool:
        fragmented = vb["free"] + vb["dirty"] == self.VB_PAGES and vb["dirty"] != self.VB_PAGES
        return fragmented and (force or vb["free"] < self.VB_PAGES // 4)

    def _take_for_purge(self, vb: dict) -> None:
        vb["free"], vb["dirty"] = 0, self.VB_PAGES
        vb["dirty_min"], vb["dirty_max"] = 0, self.VB_PAGES
        if vb in self._vb_free[vb["cpu"]]:
            self._vb_free[vb["cpu"]].remove(vb)

    def purge_fragmented_blocks_allcpus(self) -> None:
        """``purge_fragmented_blocks_allcpus()``: forced, CPU by CPU, free-list order."""
        for cpu in range(self.nr_cpus):
            purge = [vb for vb in self._vb_free[cpu] if self._purgeable(vb, True)]
            for vb in purge:
                self._take_for_purge(vb)
            for vb in purge:
                self._free_vb(vb)

    def vm_unmap_aliases(self) -> None:
        """``_vm_unmap_aliases()``: unforced block purge or dirty-range reset, then a purge.

        The flush covers the blocks' dirty ranges, the overlay's areas freed
        since the last call and every lazy area; it happens if any of them
        exists (:attr:`unmap_aliases_flush`: that range, or None)."""
        purge = []
        span: list[Block] = []
        for xa in self._vb_xa:
            for idx in sorted(xa):
                vb = xa[idx]
                if self._purgeable(vb, False):
                    self._take_for_purge(vb)
                    purge.append(vb)
                elif vb["dirty_max"] and vb["dirty"] != self.VB_PAGES:
                    base = vb["va"].va_start
                    span.append(
                        (base + vb["dirty_min"] * self.page_size,
                         base + vb["dirty_max"] * self.page_size)
                    )  # fmt: skip
                    vb["dirty_min"], vb["dirty_max"] = self.VB_PAGES, 0
        for vb in purge:
            self._free_vb(vb)
        if self.overlay is not None:
            dirty = self.overlay.take_dirty_span()
            if dirty is not None:
                span.append(dirty)
        span.extend(self.lazy_areas())
        self.unmap_aliases_flush = (
            (min(s for s, _ in span), max(e for _, e in span)) if span else None
        )
        self._purge_vmap_area_lazy(full_pool_decay=False)

    def vmap_blocks(self) -> list[tuple[int, int, int, int, int, int]]:
        """Every block as ``(va_start, free, dirty, mapped bitmap, dirty_min, dirty_max)``."""
        out = []
        for xa in self._vb_xa:
            for vb in xa.values():
                bitmap = sum(1 << p for p in vb["mapped"])
                out.append(
                    (vb["va"].va_start, vb["free"], vb["dirty"], bitmap, vb["dirty_min"],
                     vb["dirty_max"])
                )  # fmt: skip
        return sorted(out)

    # -- pcpu_get_vm_areas ------------------------------------------------------------

    def _free_block_holding(self, start: int, end: int) -> Block | None:
        i = bisect.bisect_right(self._free, (start, ADDRESS_LIMIT)) - 1
        if i >= 0 and self._free[i][0] <= start and end <= self._free[i][1]:
            return self._free[i]
        return None

    def _pcpu_base(self, offsets: list[int], sizes: list[int], align: int) -> int | None:
        """The highest aligned base putting every area inside one free block,
        between ``ALIGN(VMALLOC_START)`` and ``VMALLOC_END`` aligned down."""
        lo = -(-self.vmalloc_start // align) * align
        hi = self.vmalloc_end // align * align
        last_end = max(o + s for o, s in zip(offsets, sizes, strict=True))
        candidates = set()
        for bstart, bend in self._free:
            top = min(bend // align * align, hi)
            if top <= bstart:
                continue
            for o, s in zip(offsets, sizes, strict=True):
                base = top - (o + s)
                if lo <= base and base + last_end <= hi:
                    candidates.add(base)
        for base in sorted(candidates, reverse=True):
            if all(
                self._free_block_holding(base + o, base + o + s)
                for o, s in zip(offsets, sizes, strict=True)
            ):
                return base
        return None

    def pcpu_get_vm_areas(
        self, offsets: list[int], sizes: list[int], align: int, *, cpu: int = 0
    ) -> list[int] | None:
        """``pcpu_get_vm_areas()``: the areas' addresses, or None."""
        self._rcu_tick()
        return self._pcpu_get_vm_areas(offsets, sizes, align)

    def _pcpu_get_vm_areas(
        self, offsets: list[int], sizes: list[int], align: int
    ) -> list[int] | None:
        lo = -(-self.vmalloc_start // align) * align
        hi = self.vmalloc_end // align * align
        last = max(range(len(offsets)), key=lambda i: offsets[i])
        if hi - lo < offsets[last] + sizes[last]:
            self.log.append("WARNING: pcpu_get_vm_areas: areas larger than the vmalloc space")
            return None
        base = self._pcpu_base(offsets, sizes, align)
        if base is None:
            self._reclaim_and_purge_vmap_areas()
            base = self._pcpu_base(offsets, sizes, align)
            if base is None:
                return None
        addrs = []
        for o, s in zip(offsets, sizes, strict=True):
            self._carve(base + o, base + o + s)
            area = OracleArea(base + o, base + o + s, flags=0, has_vm=True)
            self._busy[self.addr_to_node(area.va_start)][area.va_start] = area
            addrs.append(area.va_start)
        return addrs

    def pcpu_free_vm_areas(self, addrs: list[int]) -> None:
        """``pcpu_free_vm_areas()``: each area freed lazily."""
        self._rcu_tick()
        for addr in addrs:
            area = self._busy[self.addr_to_node(addr)][addr]
            self._unlink_busy(area)
            self._queue_lazy(area)

    # -- the percpu allocator ----------------------------------------------------------

    def alloc_percpu(self, size: int, align: int, *, cpu: int = 0) -> int | None:
        """``__alloc_percpu()``: first fit in the first chunk that has room."""
        self._rcu_tick()
        if not size or size > 32 << 10 or not _is_power_of_2(align) or align > self.page_size:
            self.log.append(f"illegal size ({size}) or align ({align}) for percpu allocation")
            return None
        align = max(align, 4)
        size = -(-size // 4) * 4

        def fit(chunk: dict) -> int | None:
            pos = 0
            for off in [*sorted(chunk["objs"]), self.PCPU_UNIT]:
                cand = -(-pos // align) * align
                if cand + size <= off:
                    return cand
                if off < self.PCPU_UNIT:
                    pos = max(pos, off + chunk["objs"][off])
            return None

        for chunk in self._chunks:
            off = fit(chunk)
            if off is not None:
                break
        else:
            addrs = self._pcpu_get_vm_areas(
                [0], [self.pcpu_nr_units * self.PCPU_UNIT], self.PCPU_ATOM
            )
            if addrs is None:
                self.log.append(f"percpu: allocation failed, size={size} align={align}")
                return None
            chunk = {"base": addrs[0], "addrs": addrs, "objs": {}}
            self._chunks.append(chunk)
            off = fit(chunk)
            assert off is not None
        chunk["objs"][off] = size
        return chunk["base"] + off

    def free_percpu(self, ptr: int | None) -> None:
        """``free_percpu()``; an emptied chunk goes if another empty one exists."""
        if not ptr:
            return
        self._rcu_tick()
        for chunk in self._chunks:
            if chunk["base"] <= ptr < chunk["base"] + self.PCPU_UNIT:
                break
        else:
            raise VmapArgumentError("ptr", "is not a percpu pointer", ptr)
        if chunk["objs"].pop(ptr - chunk["base"], None) is None:
            self.log.append(f"free_percpu({ptr:#x}): double free")
            return
        if not chunk["objs"] and any(not c["objs"] for c in self._chunks if c is not chunk):
            self._chunks.remove(chunk)
            for addr in chunk["addrs"]:
                area = self._busy[self.addr_to_node(addr)][addr]
                self._unlink_busy(area)
                self._queue_lazy(area)

    def percpu_chunks(self) -> list[tuple[int, list[tuple[int, int]]]]:
        """Every chunk as ``(base, sorted (offset, size))``, in creation order."""
        return [(c["base"], sorted(c["objs"].items())) for c in self._chunks]
