"""A component inside a full allocator, against the reference allocator.

:func:`allocator_machine` returns a Hypothesis state machine that builds
``vmapsim.build(stage, components=..., debug=True)`` and
:class:`vmapsim.checking.oracle.ReferenceAllocator`, runs every kernel entry point on
both in lockstep, and after every step checks ``check_invariants()`` and
that the free, busy, lazy and pooled sets and ``vmap_lazy_nr`` are the
oracle's.  Where the kernel's pruned search leaves the choice open
(``align > PAGE_SIZE`` outside an exact-fit window) the oracle checks the
model's choice against the documented bounds (:class:`~vmapsim.checking.oracle.
PlacementBounds`) and follows it.

Stages with an overlay hand out addresses the oracle does not model; there
the machine checks invariants and the overall partition only.  At stages
whose free space is searched in an ``occupied`` index (the maple series from
stage 2), a request with ``align > PAGE_SIZE`` follows the gap search's
over-ask inside the window: the oracle places those with its ``gaps``
policy (exact too).  An exception other than a kernel error raised from
inside the allocator fails the step with a message naming the call and the
components under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from vmapsim.checking.oracle import OracleArea, PlacementBounds, ReferenceAllocator
from vmapsim.errors import VmapError
from vmapsim.framework.api import build
from vmapsim.framework.registry import Registry
from vmapsim.kernel.constants import PAGE_SIZE, SHRINK_EMPTY, VMALLOC_END, VMALLOC_START
from vmapsim.kernel.gfp import __GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT

from .harness import flow_call

__all__ = ["allocator_machine", "blocks"]

P = PAGE_SIZE
VS = VMALLOC_START
VE = VMALLOC_END

VMALLOC_SIZES = st.one_of(
    st.integers(1, 3 * P),
    st.sampled_from([P, 2 * P, 5 * P - 1]),
    st.integers(1, 256).map(lambda n: n * P),
    st.integers(257, 4096).map(lambda n: n * P - P // 2),
)
CHURN_SIZES = st.integers(2048, 8192).map(lambda n: n * P)
VA_SIZES = st.one_of(
    st.integers(1, 8).map(lambda n: n * P), st.integers(1, 512).map(lambda n: n * P)
)
ALIGNS = st.sampled_from([1, P] + [P << k for k in range(1, 7)])
GFPS = st.sampled_from([GFP_KERNEL, GFP_KERNEL, GFP_KERNEL | __GFP_NOWARN, GFP_NOWAIT, GFP_ATOMIC])
CPUS = st.integers(0, 7)
PICK = st.integers(0, 1 << 16)


def blocks(items: Any) -> list[tuple[int, int]]:
    """Areas as sorted ``(va_start, va_end)`` tuples."""
    return sorted((va.va_start, va.va_end) for va in items)


def _chooser(result: int | None, purged: bool) -> Callable[[PlacementBounds, int], int | None]:
    """Tell the oracle which allowed outcome the model took on each placement attempt."""
    attempts = 0

    def choose(_bounds: PlacementBounds, _vend: int) -> int | None:
        nonlocal attempts
        attempts += 1
        if attempts == 1 and purged:
            return None
        return result

    return choose


def allocator_machine(
    stage: str,
    components: Mapping[str, str],
    registry: Registry,
    *,
    nr_cpus: tuple[int, ...] = (1, 2, 4),
    placement: str | None = None,
) -> type[RuleBasedStateMachine]:
    """A state machine running ``stage`` with ``components`` against the oracle.

    ``placement``: how the oracle places requests above PAGE_SIZE (default
    ``gaps``, the over-ask, where an occupied index searches; else
    ``pruned``, the rb-tree's bounds)."""
    roles = {**registry.stage(stage).components, **components}
    with_oracle = "overlay" not in roles
    if placement is None:
        placement = "gaps" if "occupied" in roles else "pruned"

    class AllocatorMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model: Any = None
            self.oracle = ReferenceAllocator(placement=placement)
            self.vm_live: list[int] = []
            self.va_live: list[tuple[Any, OracleArea]] = []
            self.freed: list[int] = []

        @initialize(n=st.sampled_from(nr_cpus))
        def setup(self, n: int) -> None:
            self.nr_cpus = n
            self.model = build(
                stage, nr_cpus=n, debug=True, components=dict(components), registry=registry
            )
            self.oracle = ReferenceAllocator(nr_cpus=n, placement=placement)

        def _call(self, what: str, fn: Callable[[], Any]) -> Any:
            """Run one model operation; a non-kernel exception names the call and the
            components under test instead of surfacing raw from the flow."""
            return flow_call(f"{what} at stage {stage}", components, fn)

        # -- helpers --------------------------------------------------------
        def _pending(self) -> bool:
            return bool(self.oracle.lazy_areas() or self.oracle.pooled_areas())

        def _purged(self, pending: bool) -> bool:
            m = self.model
            return pending and not (any(True for _ in m.lazy_areas()) or blocks(m.pooled_areas()))

        def _log_mark(self) -> tuple[int, int]:
            return len(self.model.log), len(self.oracle.log)

        def _check_log(self, mark: tuple[int, int], what: str) -> None:
            if not with_oracle:
                return
            new_m, new_o = self.model.log[mark[0] :], self.oracle.log[mark[1] :]
            assert len(new_m) == len(new_o), f"{what}: model logged {new_m}, oracle {new_o}"
            for got, want in zip(new_m, new_o, strict=True):
                assert want in got, f"{what}: model logged {got!r}, kernel text is {want!r}"

        def _vmalloc(self, size: int, align: int | None, cpu: int) -> int | None:
            pending = self._pending()
            mark = self._log_mark()
            m = self.model
            got = self._call(
                f"vmalloc({size:#x}, align={align}, cpu={cpu})",
                lambda: (
                    m.vmalloc(size, cpu=cpu)
                    if align is None
                    else m.vmalloc_node(size, align, cpu=cpu)
                ),
            )
            if with_oracle:
                choose = _chooser(got, self._purged(pending))
                o = self.oracle
                want = (
                    o.vmalloc(size, cpu=cpu, choose=choose)
                    if align is None
                    else o.vmalloc_node(size, align, cpu=cpu, choose=choose)
                )
                assert got == want, f"vmalloc({size:#x}, align={align}, cpu={cpu}): {got} != {want}"
                if size:
                    self._check_log(mark, "vmalloc")
            if got is not None:
                self.vm_live.append(got)
            return got

        def _vfree(self, addr: int | None, cpu: int = 0) -> None:
            mark = self._log_mark()
            area = self.oracle.find_vmap_area(addr) if addr else None
            self._call(f"vfree({addr})", lambda: self.model.vfree(addr, cpu=cpu))
            if with_oracle:
                self.oracle.vfree(addr, cpu=cpu)
                if area is None or area.va_start == addr:
                    self._check_log(mark, "vfree")
            if addr in self.vm_live:
                self.vm_live.remove(addr)
                self.freed.append(addr)

        # -- rules ----------------------------------------------------------
        @rule(size=VMALLOC_SIZES, cpu=CPUS)
        def vmalloc(self, size: int, cpu: int) -> None:
            self._vmalloc(size, None, cpu % self.nr_cpus)

        @rule(size=VMALLOC_SIZES, align=ALIGNS, cpu=CPUS)
        def vmalloc_node(self, size: int, align: int, cpu: int) -> None:
            self._vmalloc(size, align, cpu % self.nr_cpus)

        @rule(size=st.sampled_from([P, 2 * P, 5 * P - 1]), n=st.integers(2, 16), cpu=CPUS)
        def vmalloc_batch(self, size: int, n: int, cpu: int) -> None:
            for _ in range(n):
                self._vmalloc(size, None, cpu % self.nr_cpus)

        @rule(size=CHURN_SIZES, n=st.integers(1, 6), cpu=CPUS)
        def vmalloc_then_vfree(self, size: int, n: int, cpu: int) -> None:
            for _ in range(n):
                addr = self._vmalloc(size, None, cpu % self.nr_cpus)
                self._vfree(addr, cpu % self.nr_cpus)

        @rule(n=st.integers(4, 12), size=st.sampled_from([P, 2 * P, 3 * P]), cpu=CPUS)
        def make_holes(self, n: int, size: int, cpu: int) -> None:
            """Allocate ``n`` areas, free every other one and purge: free holes
            below the rest of the space, where only the lowest fit is right."""
            addrs = [self._vmalloc(size, None, cpu % self.nr_cpus) for _ in range(n)]
            for addr in addrs[::2]:
                if addr is not None:
                    self._vfree(addr, cpu % self.nr_cpus)
            self.purge_vmap_area_lazy()

        @precondition(lambda self: self.vm_live)
        @rule(pick=PICK, cpu=CPUS)
        def vfree(self, pick: int, cpu: int) -> None:
            self._vfree(self.vm_live[pick % len(self.vm_live)], cpu % self.nr_cpus)

        @precondition(lambda self: self.vm_live)
        @rule(n=st.integers(2, 24), stride=st.integers(1, 3))
        def vfree_batch(self, n: int, stride: int) -> None:
            for addr in list(self.vm_live)[: n * stride : stride]:
                self._vfree(addr)

        @rule(kind=st.sampled_from(["freed", "never", "unaligned"]), pick=PICK)
        def vfree_junk(self, kind: str, pick: int) -> None:
            if kind == "freed" and self.freed:
                addr = self.freed[pick % len(self.freed)]
            elif kind == "unaligned" and self.vm_live:
                addr = self.vm_live[pick % len(self.vm_live)] + 1 + pick % (P - 1)
            else:
                addr = VS + (1 << 40) + pick * P
            hit = self.oracle.find_vmap_area(addr)
            if hit is not None and (not hit.has_vm or addr in self.vm_live):
                return
            self._vfree(addr)

        @rule(size=VA_SIZES, align=ALIGNS, gfp=GFPS, cpu=CPUS, data=st.data())
        def alloc_vmap_area(self, size: int, align: int, gfp: int, cpu: int, data: Any) -> None:
            cpu %= self.nr_cpus
            edges = sorted(s for s, _ in self.oracle.free_areas() if VS <= s < VE) or [VS]
            vstart = data.draw(
                st.one_of(
                    st.just(VS),
                    st.sampled_from(edges),
                    st.integers(0, 60000).map(lambda k: VS + k * P),
                ),
                label="vstart",
            )
            vend = data.draw(
                st.one_of(
                    st.just(VE),
                    st.just(vstart + size),
                    st.integers(0, 4096).map(lambda k: vstart + size + k * P),
                    st.just(vstart + max(size // 2, P)),
                ),
                label="vend",
            )
            pending = self._pending()
            mark = self._log_mark()
            call = f"alloc_vmap_area({size:#x}, {align:#x}, {vstart:#x}, {vend:#x}, cpu={cpu})"
            try:
                got = self._call(
                    call,
                    lambda: self.model.alloc_vmap_area(size, align, vstart, vend, gfp=gfp, cpu=cpu),
                )
                got_err = None
            except VmapError as exc:
                got, got_err = None, exc.errno
            if not with_oracle:
                if got is not None:
                    self.model.free_vmap_area_noflush(got)
                return
            choose = _chooser(got.va_start if got is not None else None, self._purged(pending))
            try:
                want = self.oracle.alloc_vmap_area(
                    size, align, vstart, vend, gfp=gfp, cpu=cpu, choose=choose
                )
                want_err = None
            except VmapError as exc:
                want, want_err = None, exc.errno
            assert got_err == want_err, f"{call}: errno {got_err} != {want_err}"
            if want is not None:
                assert got is not None and (got.va_start, got.va_end) == want.as_tuple(), call
                self.va_live.append((got, want))
            self._check_log(mark, call)

        @precondition(lambda self: self.va_live)
        @rule(pick=PICK)
        def free_vmap_area_noflush(self, pick: int) -> None:
            got, want = self.va_live.pop(pick % len(self.va_live))
            mark = self._log_mark()
            self.model.free_vmap_area_noflush(got)
            self.oracle.free_vmap_area_noflush(want)
            self._check_log(mark, "free_vmap_area_noflush")

        @rule()
        def purge_vmap_area_lazy(self) -> None:
            mark = self._log_mark()
            self.model.purge_vmap_area_lazy()
            if with_oracle:
                self.oracle.purge_vmap_area_lazy()
            self._check_log(mark, "purge_vmap_area_lazy")

        @rule()
        def vmap_node_shrink_scan(self) -> None:
            if with_oracle:
                pooled = len(self.oracle.pooled_areas())
                assert self.model.vmap_node_shrink_count() == (pooled or SHRINK_EMPTY)
                self.oracle.vmap_node_shrink_scan()
            self.model.vmap_node_shrink_scan()

        @rule(pick=PICK)
        def find_vmap_area(self, pick: int) -> None:
            if not with_oracle:
                return
            pool = self.oracle.busy_areas() or [(VS, VS + (1 << 32))]
            start, end = pool[pick % len(pool)]
            span = min(end - start, 1 << 32)
            addr = start + [0, span - 1, pick % span, span][pick % 4]
            got = self.model.find_vmap_area(addr)
            want = self.oracle.find_vmap_area(addr)
            got_t = None if got is None else (got.va_start, got.va_end)
            want_t = None if want is None else want.as_tuple()
            assert got_t == want_t, f"find_vmap_area({addr:#x}): {got_t} != {want_t}"

        @invariant()
        def compare(self) -> None:
            if self.model is None:
                return
            m = self.model
            m.check_invariants()
            if not with_oracle:
                return
            o = self.oracle
            assert blocks(m.busy_areas()) == o.busy_areas(), "busy areas differ from the oracle's"
            assert blocks(m.lazy_areas()) == o.lazy_areas(), "lazy areas differ from the oracle's"
            assert blocks(m.pooled_areas()) == o.pooled_areas(), "pooled areas differ"
            assert blocks(m.free_areas()) == o.free_areas(), "free areas differ from the oracle's"
            assert m.vmap_lazy_nr == o.vmap_lazy_nr, "vmap_lazy_nr differs from the oracle's"

    AllocatorMachine.__name__ = f"AllocatorMachine[{stage}]"
    return AllocatorMachine
