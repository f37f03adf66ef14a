"""vm_map_ram, pcpu_get_vm_areas, percpu, kvfree_rcu, __vmalloc(gfp) and vrealloc
on stage 0 (the soak: stages 0-1), against the reference allocator, in lockstep (Hypothesis state machine).

Every rule runs one entry point on the model (``debug=True``: invariants after
every operation) and on :class:`vmapsim.checking.oracle.ReferenceAllocator`, then
compares the results; after every step the free / busy / lazy / pooled sets,
``vmap_lazy_nr``, the vmap blocks (free, dirty, bitmap, dirty range), the
RCU clock and pending areas, the percpu chunks, the ``requested_size`` of live
vmalloc areas and the number of log lines must agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import vmapsim
from vmapsim.checking.oracle import PlacementBounds, ReferenceAllocator
from vmapsim.framework.registry import get_registry
from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.kernel.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, Gfp
from vmapsim.kernel.vmap_block import VMAP_BLOCK_SIZE

P = PAGE_SIZE
PICK = st.integers(0, 1 << 16)
CPUS = st.integers(0, 3)
#: vm_map_ram() page counts: block sizes (with the 3 -> 4 rounding) and big ones
COUNTS = st.one_of(st.integers(1, 8), st.sampled_from([16, 31, 32, 64]), st.integers(65, 300))
#: pcpu_get_vm_areas() layouts: (offsets, sizes) in units of ``align``
LAYOUTS = st.sampled_from(
    [([0], [1]), ([0], [4]), ([0, 2], [1, 1]), ([0, 3, 8], [2, 1, 2]), ([4, 0], [1, 2])]
)
PCPU_ALIGNS = st.sampled_from([P, 16 * P, 512 * P])
#: vrealloc() gfp: GFP_KERNEL, GFP_NOFS (a shrink keeps its pages), GFP_ATOMIC
VREALLOC_GFPS = st.sampled_from([int(GFP_KERNEL), int(GFP_KERNEL & ~Gfp.FS), int(GFP_ATOMIC)])


def blocks(areas: Any) -> list[tuple[int, int]]:
    return sorted((va.va_start, va.va_end) for va in areas)


class CoreFeaturesMachine(RuleBasedStateMachine):
    """``vmapsim.build(stage=0)`` and the oracle, driven in lockstep."""

    def __init__(self) -> None:
        super().__init__()
        self.vm_live: list[int] = []
        self.maps: list[tuple[int, int]] = []
        self.pcpu: list[tuple[list[Any], list[int]]] = []
        self.percpu: list[int] = []

    #: the stages a run picks from (the soak: every registered stage)
    STAGES: tuple[str, ...] = ("0",)

    @initialize(nr_cpus=st.sampled_from([1, 2, 4]), pick=PICK)
    def setup(self, nr_cpus: int, pick: int) -> None:
        self.nr_cpus = nr_cpus
        stage = self.STAGES[pick % len(self.STAGES)]
        self.m = vmapsim.build(stage=stage, nr_cpus=nr_cpus, debug=True)
        self.o = ReferenceAllocator(nr_cpus=nr_cpus)

    def _cpu(self, cpu: int) -> int:
        return cpu % self.nr_cpus

    # -- vmalloc / vfree / churn ---------------------------------------------------
    @rule(size=st.integers(1, 40 * P), cpu=CPUS)
    def vmalloc(self, size: int, cpu: int) -> None:
        cpu = self._cpu(cpu)
        got = self.m.vmalloc(size, cpu=cpu)
        assert self.o.vmalloc(size, cpu=cpu) == got
        if got is not None:
            self.vm_live.append(got)

    @precondition(lambda self: self.vm_live)
    @rule(pick=PICK)
    def vfree(self, pick: int) -> None:
        addr = self.vm_live.pop(pick % len(self.vm_live))
        self.m.vfree(addr)
        self.o.vfree(addr)

    @rule(pages=st.integers(2048, 8192))
    def churn(self, pages: int) -> None:
        """A big short-lived vmalloc: the way past lazy_max_pages()."""
        addr = self.m.vmalloc(pages * P)
        assert self.o.vmalloc(pages * P) == addr
        self.m.vfree(addr)
        self.o.vfree(addr)

    @rule(size=st.integers(1, 8 * P), gfp=st.sampled_from([GFP_KERNEL, GFP_ATOMIC, GFP_NOWAIT]))
    def vmalloc_gfp(self, size: int, gfp: int) -> None:
        got = self.m.vmalloc_gfp(size, gfp=int(gfp))
        assert self.o.vmalloc_gfp(size, gfp=int(gfp)) == got
        if got is not None:
            self.vm_live.append(got)

    @rule(pick=PICK, size=st.integers(0, 12 * P), fresh=st.booleans(), gfp=VREALLOC_GFPS)
    def vrealloc(self, pick: int, size: int, fresh: bool, gfp: int) -> None:
        if fresh or not self.vm_live:
            addr = None
        else:
            addr = self.vm_live.pop(pick % len(self.vm_live))
        got = self.m.vrealloc(addr, size, gfp=gfp)
        assert self.o.vrealloc(addr, size, gfp=gfp) == got
        if got is not None:
            self.vm_live.append(got)
        elif addr is not None and size:
            self.vm_live.append(addr)  # a failed move keeps the old area

    @precondition(lambda self: self.vm_live)
    @rule(pick=PICK)
    def kvfree_rcu(self, pick: int) -> None:
        addr = self.vm_live.pop(pick % len(self.vm_live))
        self.m.kvfree_rcu(addr)
        self.o.kvfree_rcu(addr)

    @rule(barrier=st.booleans())
    def rcu_wait(self, barrier: bool) -> None:
        if barrier:
            self.m.rcu_barrier()
            self.o.rcu_barrier()
        else:
            self.m.synchronize_rcu()
            self.o.synchronize_rcu()

    # -- vm_map_ram -------------------------------------------------------------------
    @rule(count=COUNTS, cpu=CPUS)
    def vm_map_ram(self, count: int, cpu: int) -> None:
        cpu = self._cpu(cpu)
        got = self.m.vm_map_ram(count, cpu=cpu)

        def choose(bounds: PlacementBounds, vend: int) -> int | None:
            return None if got is None else got & ~(VMAP_BLOCK_SIZE - 1)

        assert self.o.vm_map_ram(count, cpu=cpu, choose=choose) == got
        if got is not None:
            self.maps.append((got, count))

    @rule(n=st.integers(4, 15), cpu=CPUS, keep=st.integers(0, 3))
    def vm_map_ram_burst(self, n: int, cpu: int, keep: int) -> None:
        """Fill most of a block with 64-page mappings and unmap all but ``keep``:
        fragmented blocks with fewer or more than VMAP_PURGE_THRESHOLD pages free."""
        cpu = self._cpu(cpu)
        got = []
        for _ in range(n):
            self.vm_map_ram(64, cpu)
            if self.maps and self.maps[-1][1] == 64:
                got.append(self.maps.pop())
        for addr, count in got[keep:]:
            self.m.vm_unmap_ram(addr, count, cpu=cpu)
            self.o.vm_unmap_ram(addr, count)
        self.maps.extend(got[:keep])

    @precondition(lambda self: self.maps)
    @rule(pick=PICK, cpu=CPUS)
    def vm_unmap_ram(self, pick: int, cpu: int) -> None:
        addr, count = self.maps.pop(pick % len(self.maps))
        self.m.vm_unmap_ram(addr, count, cpu=self._cpu(cpu))
        self.o.vm_unmap_ram(addr, count)

    @rule()
    def vm_unmap_aliases(self) -> None:
        self.m.vm_unmap_aliases()
        self.o.vm_unmap_aliases()

    @rule()
    def purge(self) -> None:
        self.m.purge_vmap_area_lazy()
        self.o.purge_vmap_area_lazy()

    # -- pcpu_get_vm_areas and percpu ----------------------------------------------------
    @rule(layout=LAYOUTS, align=PCPU_ALIGNS, cpu=CPUS)
    def pcpu_get_vm_areas(self, layout: tuple[list[int], list[int]], align: int, cpu: int) -> None:
        offsets = [o * align for o in layout[0]]
        sizes = [s * align for s in layout[1]]
        vms = self.m.pcpu_get_vm_areas(offsets, sizes, align, cpu=self._cpu(cpu))
        want = self.o.pcpu_get_vm_areas(offsets, sizes, align)
        assert (None if vms is None else [vm.addr for vm in vms]) == want
        if vms is not None:
            assert [vm.size for vm in vms] == sizes
            assert len({vm.addr - off for vm, off in zip(vms, offsets, strict=True)}) == 1
            self.pcpu.append((vms, want))

    @precondition(lambda self: self.pcpu)
    @rule(pick=PICK)
    def pcpu_free_vm_areas(self, pick: int) -> None:
        vms, addrs = self.pcpu.pop(pick % len(self.pcpu))
        self.m.pcpu_free_vm_areas(vms)
        self.o.pcpu_free_vm_areas(addrs)

    @rule(size=st.integers(1, 2048), shift=st.integers(0, 11))
    def alloc_percpu(self, size: int, shift: int) -> None:
        got = self.m.alloc_percpu(size, 1 << shift)
        assert self.o.alloc_percpu(size, 1 << shift) == got
        if got is not None:
            self.percpu.append(got)

    @precondition(lambda self: self.percpu)
    @rule(pick=PICK)
    def free_percpu(self, pick: int) -> None:
        ptr = self.percpu.pop(pick % len(self.percpu))
        self.m.free_percpu(ptr)
        self.o.free_percpu(ptr)

    # -- lockstep ---------------------------------------------------------------------------
    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "m"):
            return
        m, o = self.m, self.o
        assert blocks(m.free_areas()) == o.free_areas()
        assert blocks(m.busy_areas()) == o.busy_areas()
        assert blocks(m.lazy_areas()) == o.lazy_areas()
        assert blocks(m.pooled_areas()) == o.pooled_areas()
        assert m.vmap_lazy_nr == o.vmap_lazy_nr
        assert [
            (vb.va.va_start, vb.free, vb.dirty, vb.used_map, vb.dirty_min, vb.dirty_max)
            for vb in m.vmap_blocks()
        ] == o.vmap_blocks()
        assert m.rcu_clock == o.rcu_clock
        assert m.rcu_pending_areas() == o.rcu_pending_areas()
        assert [
            (c.base_addr, [(off, c.sizes[off]) for off in c.starts]) for c in m.percpu.chunks
        ] == o.percpu_chunks()
        for addr in self.vm_live:
            va = m.find_vmap_area(addr)
            assert va is not None and va.vm is not None
            assert va.vm.requested_size == o.requested_size(addr)
            assert va.vm.nr_pages == o.nr_pages(addr)
        assert len(m.log) == len(o.log), (m.log[-3:], o.log[-3:])


_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much]
CoreFeaturesMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=50, deadline=None, suppress_health_check=_HEALTH
)
TestCoreFeaturesMachine = CoreFeaturesMachine.TestCase


def _oracle_placed_stages() -> tuple[str, ...]:
    """The stages whose placements above PAGE_SIZE the oracle's bounds describe
    (the pruned rb-tree search); with an occupied index (stage 2 on) a 4 MiB
    vmap block goes to the lowest gap holding size + align - 1 inside the
    window, which those bounds do not cover.  tests/test_core_features_components.py
    runs the features on every stage."""
    reg = get_registry()
    return tuple(k for k in reg.stage_keys() if "occupied" not in reg.stage(k).components)


class CoreFeaturesSoak(CoreFeaturesMachine):
    """The same machine, longer, on the stages the oracle places for (``-m soak``)."""

    STAGES = _oracle_placed_stages()


CoreFeaturesSoak.TestCase.settings = settings(
    max_examples=600, stateful_step_count=100, deadline=None, suppress_health_check=_HEALTH
)
TestCoreFeaturesSoak = pytest.mark.soak(CoreFeaturesSoak.TestCase)
