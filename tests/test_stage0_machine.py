"""Stage 0 against the reference allocator, in lockstep (Hypothesis state machine).

Every rule runs one kernel entry point on the model (``vmapsim.build(stage=0,
debug=True)``) and on :class:`vmapsim.checking.oracle.ReferenceAllocator`, then
compares what came back (address, None or errno, warnings) and, after every
step, the free / busy / lazy / pooled sets, ``vmap_lazy_nr`` and the model's
own ``check_invariants()``.

Where the kernel's pruned search leaves the choice open (``align >
PAGE_SIZE`` outside an exact-fit window), the model's choice is first
checked here against the rule docs/rbtree.md states for
``find_vmap_lowest_match`` with ``adjust_search_size``
(:func:`check_pruned_placement`, written from that rule over the oracle's
free set, not from the model or :class:`vmapsim.checking.oracle.PlacementBounds`);
then the oracle checks it against its own bounds and follows it.

From stage 10 the oracle models the per-CPU bump overlay too
(``ReferenceAllocator(overlay=...)``, :mod:`vmapsim.checking.oracle_overlay`, mode
from the stage's features), and after every step the machine also compares
the overlay's live areas and chunks (base, CPU, bump, live count) and the
KASAN reports; the log comparison covers KASAN's lines at stage 11 (a chunk
retired by another CPU's free, then used by its own CPU after the grace
period).  Rules that only matter with the overlay (bursts of eligible
requests, filling a chunk, freeing a chunk's areas from any CPU, occupying
the vmalloc space) are disabled below stage 10.
"""

from __future__ import annotations

import bisect
import errno
import functools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

import vmapsim
from vmapsim.checking.oracle import OracleArea, PlacementBounds, ReferenceAllocator
from vmapsim.errors import VmapError
from vmapsim.kernel.constants import PAGE_SIZE, VMALLOC_END, VMALLOC_START
from vmapsim.kernel.gfp import __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT

P = PAGE_SIZE
VS = VMALLOC_START
VE = VMALLOC_END
ULONG_MAX = (1 << 64) - 1

#: A few sizes used again and again (2, 3 and 6 pages with the guard): pool hits.
REPEATED_SIZES = st.sampled_from([P, 2 * P, 5 * P - 1])
#: vmalloc() byte sizes: sub-page, repeated, pool-sized (<= 256 pages), big.
VMALLOC_SIZES = st.one_of(
    st.integers(1, 3 * P),
    REPEATED_SIZES,
    st.integers(1, 256).map(lambda n: n * P),
    st.integers(257, 4096).map(lambda n: n * P - P // 2),
)
#: Big short-lived vmalloc()s, the fastest way past lazy_max_pages().
CHURN_SIZES = st.integers(2048, 8192).map(lambda n: n * P)
#: alloc_vmap_area() sizes (page multiples, guard already included by callers).
VA_SIZES = st.one_of(
    st.integers(1, 8).map(lambda n: n * P),
    st.sampled_from([2 * P, 3 * P]),
    st.integers(1, 512).map(lambda n: n * P),
)
ALIGNS = st.sampled_from([1, P] + [P << k for k in range(1, 7)])
GFPS = st.sampled_from(
    [GFP_KERNEL, GFP_KERNEL, GFP_KERNEL, GFP_KERNEL | __GFP_NOWARN, GFP_NOWAIT, GFP_ATOMIC]
)
CPUS = st.integers(0, 7)
PICK = st.integers(0, 1 << 16)
GFP_KERNEL_NOWARN = GFP_KERNEL | __GFP_NOWARN


def blocks(areas: object) -> list[tuple[int, int]]:
    """The model's iterator of areas as sorted ``(va_start, va_end)`` tuples."""
    return sorted((va.va_start, va.va_end) for va in areas)  # type: ignore[attr-defined]


def _fits(block: tuple[int, int], size: int, align: int, vstart: int) -> int | None:
    """``is_within_this_va`` (docs/rbtree.md): the aligned start in *block*, or None.

    64-bit unsigned: ``nva = ALIGN(max(va_start, vstart), align)`` modulo
    2**64; no fit if ``nva + size`` reaches 2**64, if ``nva < vstart`` (the
    ALIGN wrapped), or if ``nva + size > va_end``.
    """
    nva = -(-max(block[0], vstart) // align) * align % (ULONG_MAX + 1)
    if nva + size > ULONG_MAX or nva < vstart or nva + size > block[1]:
        return None
    return nva


def check_pruned_placement(
    free: list[tuple[int, int]],
    size: int,
    align: int,
    vstart: int,
    vend: int,
    result: int | None,
) -> None:
    """Assert one ``__alloc_vmap_area`` outcome obeys the pruned-search rule.

    The rule (docs/rbtree.md, ``find_vmap_lowest_match``, with adjust): the
    search prunes subtrees by ``size + align - 1``, so the block it returns
    fits (``is_within_this_va``) and no free block *below* it both fits and
    is at least ``size + align - 1`` long; it returns nothing only when no
    such block exists.  ``va_alloc`` then places the request at that block's
    aligned start and fails with -ERANGE if it crosses ``vend``.  So a
    result is a multiple of ``align``, at or above ``vstart``, ending at or
    below ``vend``, at the aligned start of a free block that holds it, with
    no big fitting block below; a failure means the lowest big fitting
    block (if any) crosses ``vend``.  *free* is the free set before the
    attempt, sorted.
    """
    what = f"size {size:#x} align {align:#x} in [{vstart:#x}, {vend:#x})"
    length = size + align - 1
    lowest_big = next(
        (b for b in free if b[1] - b[0] >= length and _fits(b, size, align, vstart) is not None),
        None,
    )
    if result is None:
        if lowest_big is not None:
            nva = _fits(lowest_big, size, align, vstart)
            assert nva is not None and nva + size > vend, (
                f"{what}: failed, but free block {lowest_big} holds size + align - 1 "
                f"and places at {nva:#x} below vend"
            )
        return
    assert result % align == 0, f"{what}: {result:#x} is not aligned"
    assert vstart <= result and result + size <= vend, f"{what}: {result:#x} outside the window"
    i = bisect.bisect_right(free, (result, ULONG_MAX + 1)) - 1  # the block starting at or below
    block = free[i] if i >= 0 else (0, 0)
    assert block[0] <= result and result + size <= block[1], (
        f"{what}: [{result:#x}, {result + size:#x}) is not inside one free block"
    )
    assert _fits(block, size, align, vstart) == result, (
        f"{what}: {result:#x} is not the aligned start of free block {block}"
    )
    assert lowest_big is None or lowest_big[0] >= block[0], (
        f"{what}: took block {block}, but free block {lowest_big} below it fits and "
        f"holds size + align - 1"
    )


def chooser(
    result: int | None, purged: bool, free_now: Callable[[], list[tuple[int, int]]]
) -> Callable[[PlacementBounds, int], int | None]:
    """Tell the oracle which allowed outcome the model took on each placement attempt.

    The model shows only its final result; whether its first attempt failed
    shows in the purge it then ran (lazy and pooled areas all gone).  Each
    outcome is checked with :func:`check_pruned_placement` against the
    oracle's free set at that attempt before the oracle takes it.
    """
    attempts = 0

    def choose(bounds: PlacementBounds, vend: int) -> int | None:
        nonlocal attempts
        attempts += 1
        outcome = None if attempts == 1 and purged else result
        check_pruned_placement(free_now(), bounds.size, bounds.align, bounds.vstart, vend, outcome)
        event("pruned placement checked")
        if outcome is None:
            return None
        lowest = bounds.lowest_fit
        if result is not None and lowest is not None and result != bounds.nva(lowest):
            event("pruned search skipped the lowest fit")
        return result

    return choose


# -- the pruned-search rule itself ----------------------------------------------------


def test_pruned_placement_rule_by_hand() -> None:
    """check_pruned_placement accepts what the rule allows and nothing else.

    Free: a 2-page hole at 0x1000 (fits one page aligned to 0x2000 at
    0x2000, but is shorter than size + align - 1 = 0x2fff), a big block at
    0x10000 and another at 0x40000.
    """
    free = [(0x1000, 0x3000), (0x10000, 0x20000), (0x40000, 0x80000)]
    ok = [0x2000, 0x10000]  # the small hole (the search may reach it) or the lowest big
    for addr in ok:
        check_pruned_placement(free, P, 2 * P, 0, 1 << 40, addr)
    check_pruned_placement(free, P, 2 * P, 0, 0x10000, None)  # the big block crosses vend
    bad = [
        0x40000,  # skips the big block at 0x10000
        0x12000,  # inside a free block, aligned, but not at its aligned start
        0x3000,  # not inside a free block
        0x10800,  # not aligned
        None,  # fails although 0x10000 fits below vend
    ]
    for addr in bad:
        with pytest.raises(AssertionError):
            check_pruned_placement(free, P, 2 * P, 0, 1 << 40, addr)
    with pytest.raises(AssertionError, match="outside the window"):
        check_pruned_placement(free, P, 2 * P, 0x11000, 1 << 40, 0x10000)
    # vstart inside the big block: its part above vstart still fits
    check_pruned_placement(free, P, 2 * P, 0x1F000, 1 << 40, 0x40000)
    with pytest.raises(AssertionError):
        check_pruned_placement(free, P, 2 * P, 0x1E000, 1 << 40, 0x40000)


class Stage0Machine(RuleBasedStateMachine):
    """``vmapsim.build(stage=STAGE)`` and the oracle, driven in lockstep.

    ``STAGE`` is 0 here; :func:`machine_for_stage` makes the same machine for
    any stage that hands out what stage 0 does (tests/test_stages_machine.py)."""

    STAGE = 0

    def __init__(self) -> None:
        super().__init__()
        self.model: object = None
        self.oracle: ReferenceAllocator = ReferenceAllocator()
        self.vm_live: list[int] = []
        self.va_live: list[tuple[object, OracleArea]] = []
        self.freed: list[int] = []
        self._pools_before: dict[tuple[int, int], list[tuple[int, int]]] = {}

    @initialize(nr_cpus=st.sampled_from([1, 2, 4]))
    def setup(self, nr_cpus: int) -> None:
        self.nr_cpus = nr_cpus
        mode = overlay_mode(self.STAGE)
        # debug=True checks invariants inside every call (a KASAN report at
        # stage 11 goes to the log: it does not raise)
        self.model = vmapsim.build(stage=self.STAGE, nr_cpus=nr_cpus, debug=True)
        # a stage whose occupied tree finds free space places by the over-ask
        placement = "gaps" if self.model.occupied is not None else "pruned"
        self.oracle = ReferenceAllocator(nr_cpus=nr_cpus, placement=placement, overlay=mode)
        event(f"nr_cpus={nr_cpus}")

    # -- helpers -------------------------------------------------------------

    @property
    def m(self) -> Any:
        """The model allocator (whatever ``vmapsim.build`` returns)."""
        return self.model

    def _log_mark(self) -> tuple[int, int]:
        return len(self.m.log), len(self.oracle.log)

    def _check_log(self, mark: tuple[int, int], what: str) -> None:
        """Each new oracle message appears in the matching new model message."""
        new_m, new_o = self.m.log[mark[0] :], self.oracle.log[mark[1] :]
        assert len(new_m) == len(new_o), f"{what}: model logged {new_m}, oracle {new_o}"
        for got, want in zip(new_m, new_o, strict=True):
            assert want in got, f"{what}: model logged {got!r}, kernel text is {want!r}"

    def _something_pending(self) -> bool:
        return bool(self.oracle.lazy_areas() or self.oracle.pooled_areas())

    def _model_purged(self, pending_before: bool) -> bool:
        return pending_before and not (any(True for _ in self.m.lazy_areas()) or self._pooled_m())

    def _pooled_m(self) -> list[tuple[int, int]]:
        return blocks(self.m.pooled_areas())

    def _note_pool(self, pooled_before: list[tuple[int, int]]) -> None:
        after = self.oracle.pooled_areas()
        if len(after) < len(pooled_before):
            event("pool hit")
        elif after != pooled_before or self.oracle.pools() != self._pools_before:
            event("pool rotate")

    def _note_drain(self, lazy_nr_before: int, pages: int) -> None:
        if self.oracle.vmap_lazy_nr < lazy_nr_before + pages:
            event("lazy_max_pages drain")

    def _vmalloc_both(self, size: int, align: int | None, cpu: int, gfp: int) -> int | None:
        pending = self._something_pending()
        pooled = self.oracle.pooled_areas()
        chunks = self.oracle.overlay_chunks()
        ubsan = self._kasan_reports()
        self._pools_before = self.oracle.pools()
        mark = self._log_mark()
        if align is None:
            got = self.m.vmalloc(size, cpu=cpu)
        else:
            got = self.m.vmalloc_node(size, align, gfp=gfp, cpu=cpu)
        choose = chooser(got, self._model_purged(pending), self.oracle.free_areas)
        if align is None:
            want = self.oracle.vmalloc(size, cpu=cpu, choose=choose)
        else:
            want = self.oracle.vmalloc_node(size, align, gfp=gfp, cpu=cpu, choose=choose)
        assert got == want, f"vmalloc({size:#x}, align={align}, cpu={cpu}): {got} != {want}"
        if size == 0:  # WARN_ON_ONCE(!size): a backtrace, no fixed text
            new_m, new_o = self.m.log[mark[0] :], self.oracle.log[mark[1] :]
            assert len(new_m) == len(new_o), f"vmalloc(0): model logged {new_m}, oracle {new_o}"
        else:
            self._check_log(mark, "vmalloc")
        self._note_pool(pooled)
        self._note_overlay(chunks, ubsan)
        overlay = self.oracle.overlay
        if overlay is not None and got is not None:
            pages = -(-size // P) + 1
            if overlay.eligible(pages * P, align or 1, VS, VE):
                inside = (got, got + pages * P) in self.oracle.overlay_areas()
                event("overlay alloc" if inside else "overlay fallback")
        if got is not None:
            self.vm_live.append(got)
        return got

    def _kasan_reports(self) -> int:
        return self.oracle.overlay.kasan_reports if self.oracle.overlay is not None else 0

    def _note_overlay(self, chunks_before: list, kasan_before: int) -> None:
        if self.oracle.overlay is None:
            return
        after = self.oracle.overlay_chunks()
        if len({c[0] for c in after} - {c[0] for c in chunks_before}):
            event("overlay chunk reserved")
        if len({c[0] for c in chunks_before} - {c[0] for c in after}):
            event("overlay chunk given back")
        if self._kasan_reports() > kasan_before:
            event("KASAN report")

    def _vfree_both(self, addr: int | None, cpu: int = 0) -> None:
        lazy_nr = self.oracle.vmap_lazy_nr
        chunks = self.oracle.overlay_chunks()
        area = self.oracle.find_vmap_area(addr) if addr else None
        in_overlay = area is not None and area.as_tuple() in self.oracle.overlay_areas()
        mark = self._log_mark()
        self.m.vfree(addr, cpu=cpu)
        self.oracle.vfree(addr, cpu=cpu)
        if area is not None and area.va_start == addr and area.has_vm:
            self._check_log(mark, "vfree")
            if in_overlay:
                event("vfree of an overlay area")
            else:
                self._note_drain(lazy_nr, area.size // P)
            self.vm_live.remove(addr)
            self.freed.append(addr)
            self._note_overlay(chunks, self._kasan_reports())
        elif area is not None and area.has_vm:
            # inside a busy area, not its start: the model warns and changes nothing
            new = self.m.log[mark[0] :]
            assert any(f"{addr:#x}" in line for line in new), f"vfree({addr:#x}) did not warn"
        else:
            self._check_log(mark, "vfree")

    # -- rules ---------------------------------------------------------------

    @rule(size=VMALLOC_SIZES | st.just(0), cpu=CPUS)
    def vmalloc(self, size: int, cpu: int) -> None:
        self._vmalloc_both(size, None, cpu % self.nr_cpus, GFP_KERNEL)

    @rule(size=REPEATED_SIZES | VMALLOC_SIZES, align=ALIGNS, cpu=CPUS)
    def vmalloc_node(self, size: int, align: int, cpu: int) -> None:
        self._vmalloc_both(size, align, cpu % self.nr_cpus, GFP_KERNEL)

    @precondition(lambda self: self.oracle.pooled_areas())
    @rule(pick=PICK, align=ALIGNS, via_vmalloc=st.booleans())
    def alloc_pooled_size(self, pick: int, align: int, via_vmalloc: bool) -> None:
        """Ask a pool's node for its size: a hit, or a rotation if the head is misaligned."""
        node, idx = sorted(self.oracle.pools())[pick % len(self.oracle.pools())]
        cpu = node  # nr_vmap_nodes == nr_cpus here: CPU n uses node n
        if via_vmalloc and idx > 0:
            self._vmalloc_both(idx * P, align, cpu, GFP_KERNEL)  # + guard: idx + 1 pages
        else:
            self._alloc_vmap_area_both((idx + 1) * P, align, VS, VE, GFP_KERNEL, cpu)

    @rule(size=REPEATED_SIZES, n=st.integers(2, 24), cpu=CPUS)
    def vmalloc_batch(self, size: int, n: int, cpu: int) -> None:
        """Many equal areas from one CPU (test_vmalloc's full_fit pattern)."""
        for _ in range(n):
            self._vmalloc_both(size, None, cpu % self.nr_cpus, GFP_KERNEL)
            self.compare()

    @rule(size=REPEATED_SIZES, k=st.integers(1, 16), cpu=CPUS)
    def full_fit(self, size: int, k: int, cpu: int) -> None:
        """test_vmalloc's full_fit pattern, scaled down: holes, a drain, then reuse.

        Interleave k kept and k junk areas, free the junk, push vmap_lazy_nr
        past lazy_max_pages() with one big lazy area, then allocate and free
        k times: each is a pool hit (several nodes) or an exact hole fit.
        """
        cpu %= self.nr_cpus
        junk = []
        for _ in range(k):
            self._vmalloc_both(size, None, cpu, GFP_KERNEL)
            junk.append(self._vmalloc_both(size, None, cpu, GFP_KERNEL))
            self.compare()
        for addr in junk:
            self._vfree_both(addr, cpu)
        big = self._vmalloc_both(self.oracle.lazy_max_pages() * P, None, cpu, GFP_KERNEL)
        self._vfree_both(big, cpu)
        self.compare()
        for _ in range(k):
            addr = self._vmalloc_both(size, None, cpu, GFP_KERNEL)
            self._vfree_both(addr, cpu)
            self.compare()

    @precondition(lambda self: self.vm_live)
    @rule(n=st.integers(2, 24), stride=st.integers(1, 3), newest=st.booleans())
    def vfree_batch(self, n: int, stride: int, newest: bool) -> None:
        """Free every stride-th of the newest (or oldest) live areas."""
        live = self.vm_live[::-1] if newest else list(self.vm_live)
        for addr in live[: n * stride : stride]:
            self._vfree_both(addr)
            self.compare()

    @rule(size=CHURN_SIZES | REPEATED_SIZES, n=st.integers(1, 8), cpu=CPUS)
    def vmalloc_then_vfree(self, size: int, n: int, cpu: int) -> None:
        """test_vmalloc's fix_size loop: allocate and free at once, n times."""
        for _ in range(n):
            addr = self._vmalloc_both(size, None, cpu % self.nr_cpus, GFP_KERNEL)
            self.compare()
            self._vfree_both(addr, cpu % self.nr_cpus)
            self.compare()

    @rule(size=VA_SIZES, align=ALIGNS, gfp=GFPS, cpu=CPUS, data=st.data())
    def alloc_vmap_area(
        self, size: int, align: int, gfp: int, cpu: int, data: st.DataObject
    ) -> None:
        vstart, vend = data.draw(self.windows(size), label="window")
        self._alloc_vmap_area_both(size, align, vstart, vend, gfp, cpu % self.nr_cpus)

    def _alloc_vmap_area_both(
        self, size: int, align: int, vstart: int, vend: int, gfp: int, cpu: int
    ) -> None:
        pending = self._something_pending()
        pooled = self.oracle.pooled_areas()
        self._pools_before = self.oracle.pools()
        mark = self._log_mark()
        call = f"alloc_vmap_area({size:#x}, {align:#x}, {vstart:#x}, {vend:#x}, cpu={cpu})"
        try:
            got = self.m.alloc_vmap_area(size, align, vstart, vend, gfp=gfp, cpu=cpu)
        except VmapError as exc:
            got_err: int | None = exc.errno
            got = None
        else:
            got_err = None
        purged = self._model_purged(pending)
        choose = chooser(got.va_start if got is not None else None, purged, self.oracle.free_areas)
        try:
            want = self.oracle.alloc_vmap_area(
                size, align, vstart, vend, gfp=gfp, cpu=cpu, choose=choose
            )
        except VmapError as exc:
            want_err: int | None = exc.errno
            want = None
        else:
            want_err = None
        assert got_err == want_err, f"{call}: errno {got_err} != {want_err}"
        if want is not None:
            assert got is not None
            assert (got.va_start, got.va_end) == want.as_tuple(), f"{call}: {got} != {want}"
            self.va_live.append((got, want))
            event("alloc_vmap_area ok")
        else:
            event(f"alloc_vmap_area {errno.errorcode[want_err or 0]}")
        if purged:
            event("alloc_vmap_area purged")
        self._check_log(mark, call)
        self._note_pool(pooled)

    @precondition(lambda self: self.vm_live)
    @rule(pick=PICK, cpu=CPUS)
    def vfree(self, pick: int, cpu: int) -> None:
        self._vfree_both(self.vm_live[pick % len(self.vm_live)], cpu % self.nr_cpus)

    @rule(kind=st.sampled_from(["unaligned", "inside", "freed", "never", "null"]), pick=PICK)
    def vfree_junk(self, kind: str, pick: int) -> None:
        addr: int | None
        if kind == "unaligned" and self.vm_live:
            addr = self.vm_live[pick % len(self.vm_live)] + 1 + pick % (P - 1)
        elif kind == "inside" and self.vm_live:
            base = self.vm_live[pick % len(self.vm_live)]
            area = self.oracle.find_vmap_area(base)
            if area is None:  # stage 11: handed out of a chunk another CPU retired
                assert self.oracle.overlay is not None and self.oracle.overlay.patch == 11
                return
            addr = base + P * (1 + pick % (area.size // P - 1))
        elif kind == "freed" and self.freed:
            addr = self.freed[pick % len(self.freed)]
        elif kind == "null":
            addr = None if pick % 2 else 0
        else:
            addr = VS + (1 << 40) + pick * P
        hit = self.oracle.find_vmap_area(addr) if addr else None
        if hit is not None and not hit.has_vm:
            return  # an alloc_vmap_area() area: vfree() is not its free path
        event(f"vfree junk {kind}")
        self._vfree_both(addr)

    @precondition(lambda self: self.va_live)
    @rule(pick=PICK)
    def free_vmap_area_noflush(self, pick: int) -> None:
        got, want = self.va_live.pop(pick % len(self.va_live))
        lazy_nr = self.oracle.vmap_lazy_nr
        mark = self._log_mark()
        self.m.free_vmap_area_noflush(got)
        self.oracle.free_vmap_area_noflush(want)
        self._check_log(mark, "free_vmap_area_noflush")
        self._note_drain(lazy_nr, want.size // P)

    @rule()
    def purge_vmap_area_lazy(self) -> None:
        mark = self._log_mark()
        self.m.purge_vmap_area_lazy()
        self.oracle.purge_vmap_area_lazy()
        self._check_log(mark, "purge_vmap_area_lazy")

    @rule()
    def vmap_node_shrink_scan(self) -> None:
        mark = self._log_mark()
        objects = self.oracle.shrinkable_objects()
        count = self.m.vmap_node_shrink_count()
        assert count == (objects or vmapsim.SHRINK_EMPTY), "shrink_count differs"
        assert self.m.vmap_node_shrink_scan() == vmapsim.SHRINK_STOP
        self.oracle.vmap_node_shrink_scan()
        self._check_log(mark, "vmap_node_shrink_scan")

    @rule()
    def vm_unmap_aliases(self) -> None:
        """The flush covers every lazy area and (stage 10 on) the overlay areas
        freed since the last call; there is none if neither exists."""
        mark = self._log_mark()
        flushes = self.m.metrics.tlb_flushes
        self.m.vm_unmap_aliases()
        self.oracle.vm_unmap_aliases()
        self._check_log(mark, "vm_unmap_aliases")
        want = self.oracle.unmap_aliases_flush
        if want is None:
            assert self.m.metrics.tlb_flushes == flushes, "vm_unmap_aliases flushed nothing dirty"
        else:
            assert self.m.metrics.tlb_flushes > flushes, f"vm_unmap_aliases: no flush of {want}"
            assert self.m.last_tlb_flush == want, (
                f"vm_unmap_aliases flushed {self.m.last_tlb_flush}, want {want}"
            )
            event("vm_unmap_aliases flush")

    # -- the overlay (stage 10 on) --------------------------------------------------

    @precondition(lambda self: self.oracle.overlay is not None)
    @rule(pages=st.lists(st.integers(1, 15), min_size=8, max_size=64), cpu=CPUS)
    def overlay_burst(self, pages: list[int], cpu: int) -> None:
        """Many eligible vmalloc()s on one CPU: chunks fill, retire, get replaced."""
        for n in pages:
            self._vmalloc_both(n * P - P // 2, None, cpu % self.nr_cpus, GFP_KERNEL)
            self.compare()

    @precondition(lambda self: self.oracle.overlay is not None)
    @rule(cpu=CPUS, short=st.integers(0, 2), empty_it=st.booleans(), other=st.booleans())
    def overlay_fill_chunk(self, cpu: int, short: int, empty_it: bool, other: bool) -> None:
        """Eligible requests up to (or ``short`` pages short of) the end of the
        CPU's 64 MiB chunk, in requests of up to 4096 pages.  With
        ``empty_it``, then vfree() all of the chunk's areas (on the next CPU
        if ``other``: at 11 that retires another CPU's current chunk) and ask
        for one page more."""
        cpu %= self.nr_cpus
        overlay = self.oracle.overlay
        assert overlay is not None
        for _ in range(8):
            chunk = overlay.current[cpu]
            if chunk is not None and chunk.retired:
                break
            left = (chunk.end - chunk.bump) // P - short if chunk is not None else 16
            if left < 2:  # no room for a page and its guard
                break
            pages = min(left, 4096)
            self._vmalloc_both((pages - 1) * P, None, cpu, GFP_KERNEL)
            self.compare()
            if pages == left:
                break
        chunk = overlay.current[cpu]
        if empty_it and chunk is not None:
            by = (cpu + 1) % self.nr_cpus if other else cpu
            for addr in list(chunk.live):
                if addr in self.vm_live:
                    self._vfree_both(addr, by)
                    self.compare()
            self._vmalloc_both(P, None, cpu, GFP_KERNEL)

    @precondition(lambda self: self.oracle.overlay_chunks())
    @rule(pick=PICK, cpu=CPUS)
    def overlay_free_chunk(self, pick: int, cpu: int) -> None:
        """vfree() every live area of one chunk from one CPU (a drained chunk
        that is not that CPU's / its owner's current one is retired)."""
        chunks = self.oracle.overlay_chunks()
        start, end = chunks[pick % len(chunks)][:2]
        for addr, _ in self.oracle.overlay_areas():
            if start <= addr < end and addr in self.vm_live:
                self._vfree_both(addr, cpu % self.nr_cpus)
                self.compare()

    @precondition(lambda self: self.oracle.overlay is not None)
    @rule()
    def overlay_grace_period(self) -> None:
        """synchronize_rcu(): every kvfree_rcu'd chunk descriptor is freed."""
        mark = self._log_mark()
        self.m.synchronize_rcu()
        self.oracle.synchronize_rcu()
        self._check_log(mark, "synchronize_rcu")

    @precondition(lambda self: self.oracle.overlay is not None)
    @rule(gfp=st.sampled_from([GFP_KERNEL, GFP_KERNEL_NOWARN]), cpu=CPUS)
    def occupy_vmalloc_space(self, gfp: int, cpu: int) -> None:
        """alloc_vmap_area() every free range of the vmalloc space (exact-fit
        windows): later chunk reservations fail and eligible requests fall
        back, until these areas are freed."""
        for start, end in self.oracle.free_areas():
            s, e = max(start, VS), min(end, VE)
            s = -(-s // P) * P
            e = e // P * P
            if s < e:
                self._alloc_vmap_area_both(e - s, P, s, e, gfp, cpu % self.nr_cpus)
        event("vmalloc space occupied")

    @rule(where=st.sampled_from(["busy", "lazy", "free", "random"]), pick=PICK)
    def find_vmap_area(self, where: str, pick: int) -> None:
        pools = {
            "busy": self.oracle.busy_areas(),
            "lazy": self.oracle.lazy_areas(),
            "free": self.oracle.free_areas(),
        }.get(where) or [(VS, VS + (1 << 32))]
        start, end = pools[pick % len(pools)]
        span = min(end - start, 1 << 32)
        addr = start + [0, span - 1, pick % span, span][pick % 4]
        got = self.m.find_vmap_area(addr)
        want = self.oracle.find_vmap_area(addr)
        got_t = None if got is None else (got.va_start, got.va_end)
        want_t = None if want is None else want.as_tuple()
        assert got_t == want_t, f"find_vmap_area({addr:#x}): {got_t} != {want_t}"

    # -- windows ---------------------------------------------------------------

    def windows(self, size: int) -> st.SearchStrategy[tuple[int, int]]:
        """``[vstart, vend)`` windows inside and around the vmalloc range."""
        # page offsets covering the part of the vmalloc range the machine uses
        low = st.integers(0, 60000).map(lambda k: VS + k * P)
        below = st.integers(1, 1 << 19).map(lambda k: VS - k * P)
        slack = st.sampled_from([0, 0, P, 2 * P, 64 * P]) | st.integers(0, 4096).map(
            lambda k: k * P
        )
        # the edges of the current free, lazy and busy areas in the vmalloc range
        edges = sorted(
            s
            for s, _ in self.oracle.free_areas()
            + self.oracle.lazy_areas()
            + self.oracle.busy_areas()
            if VS <= s < VE
        ) or [VS]
        at_edge = st.sampled_from(edges)

        def ending(vstart: int) -> st.SearchStrategy[tuple[int, int]]:
            return st.one_of(
                st.just((vstart, vstart + size)),  # exact fit
                slack.map(lambda s: (vstart, vstart + size + s)),
                st.just((vstart, VE)),
                st.just((vstart, vstart + max(size // 2, 1))),  # too small
            )

        top = ULONG_MAX + 1 - P

        return st.one_of(
            st.just((VS, VE)),
            low.flatmap(ending),
            at_edge.flatmap(ending),
            below.flatmap(ending),
            st.just((top - size, ULONG_MAX)),  # the last fitting range
            st.just((top - size // 2 // P * P, ULONG_MAX)),  # overflows: -ENOENT
        )

    # -- comparison ------------------------------------------------------------

    @invariant()
    def compare(self) -> None:
        if self.model is None:
            return
        self.m.check_invariants()
        o = self.oracle
        assert blocks(self.m.busy_areas()) == o.busy_areas(), "busy areas differ"
        assert blocks(self.m.lazy_areas()) == o.lazy_areas(), "lazy areas differ"
        assert self._pooled_m() == o.pooled_areas(), "pooled areas differ"
        assert blocks(self.m.free_areas()) == o.free_areas(), "free areas differ"
        assert self.m.vmap_lazy_nr == o.vmap_lazy_nr, "vmap_lazy_nr differs"
        assert self.m.lazy_max_pages() == o.lazy_max_pages()
        overlay = self.m.overlay
        if overlay is None:
            assert o.overlay is None, "the oracle models an overlay the model lacks"
            return
        assert blocks(overlay.areas()) == o.overlay_areas(), "overlay areas differ"
        chunks = sorted(
            (ch.base, ch.limit, ch.cpu, ch.bump, len(overlay.live_areas(ch)))
            for ch in overlay.chunks()
        )
        assert chunks == o.overlay_chunks(), (
            f"overlay chunks differ: {chunks} != {o.overlay_chunks()}"
        )
        assert overlay.kasan_reports == o.overlay.kasan_reports, "KASAN reports differ"


Stage0Machine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestStage0Machine = Stage0Machine.TestCase


@functools.cache
def overlay_mode(stage: int) -> str:
    """The oracle's overlay mode for a stage of the series, from the stage's
    components and features (what ``vmapsim.build`` resolved)."""
    desc = vmapsim.build(stage=stage).stage
    if desc.components.get("overlay") is None:
        return "off"
    return f"patch{desc.features.get('pcpu_bump', 10)}"


def machine_for_stage(stage: int) -> type[Stage0Machine]:
    """The lockstep machine on another stage of the series."""
    return type(f"Stage{stage}Machine", (Stage0Machine,), {"STAGE": stage})


@pytest.mark.soak
class TestStage0MachineSoak(Stage0Machine.TestCase):
    settings = settings(
        max_examples=3000,
        stateful_step_count=100,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
