"""RCU grace periods on a modeled clock: ``kvfree_rcu()``, ``synchronize_rcu()``,
``rcu_barrier()``.

Mixed into :class:`vmapsim.kernel.allocator.VmapAllocator`.

The clock
    ``rcu_clock`` counts ticks.  Every *vmalloc-layer entry point* costs
    :data:`RCU_TICK_COST` tick, charged when it is entered: ``vmalloc()``,
    ``__vmalloc_node()``, ``__vmalloc()`` (``vmalloc_gfp``), ``vfree()``,
    ``vrealloc()``, ``vm_map_ram()``, ``vm_unmap_ram()``,
    ``pcpu_get_vm_areas()``, ``pcpu_free_vm_areas()``, ``__alloc_percpu()``,
    ``free_percpu()`` and ``kvfree_rcu()``.  The low-level calls
    (``alloc_vmap_area()``, ``free_vmap_area_noflush()``, the purge and
    shrinker calls, ``vm_unmap_aliases()``) do not tick: they are what the
    entry points are made of.

Grace periods
    A ``kvfree_rcu(ptr)`` queued at tick *t* has its grace period end at
    ``t + RCU_GP_TICKS``.  At every tick, callbacks whose grace period has
    ended run in the order they were queued, before the entry point does
    its own work (as softirq callbacks run between a CPU's other work).
    A call that returns at once for NULL (``vfree(NULL)``,
    ``kvfree_rcu(NULL)``, ``free_percpu(NULL)``) costs nothing.
    Until then the area stays busy: its address range is not reusable.
    ``synchronize_rcu()`` waits one full grace period (the clock moves on by
    ``RCU_GP_TICKS``, so every callback queued before it runs);
    ``rcu_barrier()`` moves the clock to the end of the last pending grace
    period and runs every callback.  Everything is deterministic.

The callback is ``kvfree()`` of a vmalloc address, i.e. ``vfree()``.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from attrs import define

from vmapsim.checking.validate import check_cpu, check_ulong
from vmapsim.kernel.area import VmapArea, VmStruct
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["RCU_GP_TICKS", "RCU_TICK_COST", "RcuCallback", "RcuMixin"]

#: ticks one vmalloc-layer entry point costs on the modeled clock
RCU_TICK_COST = 1
#: length of a grace period, in ticks (a kvfree_rcu()'d area stays busy this long)
RCU_GP_TICKS = 128


@define(slots=True, eq=False, weakref_slot=False)
class RcuCallback:
    """One queued ``kvfree_rcu()``: the area's address and ``vm_struct``, and the
    tick at which its grace period ends."""

    expires: int
    addr: int
    vm: VmStruct
    cpu: int


class RcuMixin:
    """The modeled RCU clock and ``kvfree_rcu()``."""

    def _rcu_init(self: VmapAllocator) -> None:
        self.rcu_clock = 0
        self.rcu_gp_ticks = RCU_GP_TICKS
        #: queued callbacks, oldest first (grace periods end in queue order)
        self._rcu_cbs: deque[RcuCallback] = deque()
        #: address -> callback, for the areas waiting for their grace period
        self._rcu_pending: dict[int, RcuCallback] = {}

    # -- the clock -------------------------------------------------------------
    def _rcu_tick(self: VmapAllocator) -> None:
        """Charge one entry point to the clock; run the callbacks now due."""
        self.rcu_clock += RCU_TICK_COST
        cbs = self._rcu_cbs
        if cbs and cbs[0].expires <= self.rcu_clock:
            self._rcu_do_batch()

    def _rcu_do_batch(self: VmapAllocator) -> None:
        """``rcu_do_batch()``: invoke every callback whose grace period has ended."""
        cbs = self._rcu_cbs
        now = self.rcu_clock
        ran = False
        while cbs and cbs[0].expires <= now:
            cb = cbs.popleft()
            del self._rcu_pending[cb.addr]
            self.metrics.free_calls += 1
            # kvfree() -> vfree(): the area has been busy all along (vfree and
            # vrealloc refuse an address with a pending callback).
            if self.remove_vm_area(cb.addr) is not cb.vm:  # pragma: no cover - model bug
                raise AssertionError(f"kvfree_rcu callback lost its area {cb.addr:#x}")
            ran = True
        if ran:
            self._debug_check()

    def _rcu_owns(self: VmapAllocator, addr: int, what: str) -> bool:
        """True (with a warning logged) if ``addr`` waits for a grace period, so
        that ``what`` must not touch it: that would be a double free."""
        if addr in self._rcu_pending:
            self._printk(
                f"WARNING: {what}({addr:#x}): area is queued by kvfree_rcu() and not yet "
                f"freed (double free)"
            )
            return True
        return False

    # -- public API ---------------------------------------------------------------
    def kvfree_rcu(self: VmapAllocator, addr: int | None, *, cpu: int = 0) -> None:
        """``kvfree_rcu()`` / ``kvfree_rcu_mightsleep()`` of a vmalloc address.

        The area is freed (``vfree()``) once a grace period has passed
        (``RCU_GP_TICKS`` ticks of the modeled clock); until then it stays
        busy.  NULL does nothing.  An address that is no vmalloc area, or
        one already queued, logs ``vfree()``'s warning now and is dropped.
        """
        if addr is not None:
            check_ulong("addr", addr)
        check_cpu(cpu, self.nr_cpus)
        if not addr:
            return
        self._rcu_tick()
        if addr & (PAGE_SIZE - 1):
            self._printk(f"WARNING: Trying to vfree() bad address ({addr:#x})")
            return
        if self._rcu_owns(addr, "kvfree_rcu"):
            return
        va = self.find_vmap_area(addr)
        if va is None or va.vm is None or va.va_start != addr:
            self._printk(f"WARNING: Trying to vfree() nonexistent vm area ({addr:#x})")
            return
        self.spin_lock("kfree_rcu_cpu.lock", cpu)
        cb = RcuCallback(self.rcu_clock + self.rcu_gp_ticks, addr, va.vm, cpu)
        self._rcu_cbs.append(cb)
        self._rcu_pending[addr] = cb
        self.spin_unlock("kfree_rcu_cpu.lock", cpu)
        self._debug_check()

    def synchronize_rcu(self: VmapAllocator) -> None:
        """``synchronize_rcu()``: wait one full grace period.  Every callback
        queued before the call has its grace period end, and runs."""
        self.rcu_clock += self.rcu_gp_ticks
        if self._rcu_cbs:
            self._rcu_do_batch()

    def rcu_barrier(self: VmapAllocator) -> None:
        """``rcu_barrier()``: wait until every queued callback has run (the
        clock moves to the end of the last pending grace period)."""
        if self._rcu_cbs:
            self.rcu_clock = max(self.rcu_clock, self._rcu_cbs[-1].expires)
            self._rcu_do_batch()

    def rcu_pending_areas(self: VmapAllocator) -> list[int]:
        """Addresses queued by ``kvfree_rcu()`` whose grace period has not ended."""
        return sorted(self._rcu_pending)

    def _check_rcu(self: VmapAllocator, busy: dict[int, VmapArea]) -> None:
        """Invariant: every area waiting for its grace period is still busy
        (``busy`` maps ``va_start`` to every busy area), with the
        ``vm_struct`` it had when queued; expiries are in queue order."""
        from vmapsim.errors import InvariantError

        last = -1
        for cb in self._rcu_cbs:
            if cb.expires < last:
                raise InvariantError("kvfree_rcu callbacks are not in grace-period order")
            last = cb.expires
            if self._rcu_pending.get(cb.addr) is not cb:
                raise InvariantError(f"kvfree_rcu callback {cb.addr:#x} is not indexed")
            va = busy.get(cb.addr)
            if va is None or va.vm is not cb.vm:
                raise InvariantError(
                    f"area {cb.addr:#x} waits for its grace period but is not busy"
                )
        if len(self._rcu_pending) != len(self._rcu_cbs):
            raise InvariantError("kvfree_rcu pending index and queue differ in length")
        if self.rcu_clock > ULONG_MAX:  # pragma: no cover - 2**64 ticks
            raise InvariantError("rcu_clock overflowed")
