"""Lock, RCU and preemption primitives as the flow takes them.

Every lock the modelled kernel takes goes through these methods, in the
order the kernel code takes and releases it, so that what is held around
which work is known (the cost model's lock sections, the debug checks).
A lock is named by its kernel class (``"free_vmap_area_lock"``,
``"vmap_node.busy.lock"``, ``"vmap_purge_lock"``, ...) and an instance
(the vmap node's or CPU's index; 0 for a global lock).

Today an acquisition is counted under its class name in
``metrics.locks`` (the cost model's ``lock.<name>`` counters) and the held
set is kept as a stack; releases must match.

The debug kernel (``build(debug_kernel=True)``,
:mod:`vmapsim.checking.debug_kernel`) is one observer, ``_lockdep``: each
primitive calls it only when it is set (one attribute test when it is not);
it validates lock order (lockdep), checks ``lockdep_assert_held()`` and
whether a sleeping call may sleep (``might_sleep()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmapsim.checking.debug_kernel import DebugKernel
    from vmapsim.cost.counters import Counters

__all__ = ["PREEMPT_DISABLED", "RCU_READ_LOCK", "LockingMixin"]

#: the pseudo-lock an RCU read-side section holds
RCU_READ_LOCK = "rcu_read_lock"
#: the pseudo-lock a preempt-disabled section holds
PREEMPT_DISABLED = "preempt_disable"


class LockingMixin:
    """``spin_lock()``/``spin_unlock()``, ``mutex_lock()``, ``rcu_read_lock()``
    and ``preempt_disable()`` for the flow (include/linux/spinlock.h,
    mutex.h, rcupdate.h, preempt.h)."""

    metrics: Counters
    #: (class name, instance) of every lock held now, innermost last
    held_locks: list[tuple[str, int]]
    #: the debug kernel's observer (lockdep, might_sleep); None: a production kernel
    _lockdep: DebugKernel | None

    def _locking_init(self) -> None:
        self.held_locks = []
        self._lockdep = None

    def spin_lock(self, name: str, instance: int = 0) -> None:
        """``spin_lock(&lock)``: count the acquisition and hold it."""
        if self._lockdep is not None:
            self._lockdep.acquire(name, instance)
        self.metrics.locks[name] += 1
        self.held_locks.append((name, instance))

    def spin_unlock(self, name: str, instance: int = 0) -> None:
        """``spin_unlock(&lock)``: the innermost matching lock is released
        (with the debug kernel, an unheld one is lockdep's report, not an error)."""
        if self._lockdep is not None and not self._lockdep.release(name, instance):
            return
        held = self.held_locks
        key = (name, instance)
        if held and held[-1] == key:
            held.pop()
            return
        # out-of-order release is legal for spinlocks; find it
        for i in range(len(held) - 1, -1, -1):
            if held[i] == key:
                del held[i]
                return
        raise AssertionError(f"spin_unlock({name}[{instance}]) of a lock not held")

    def mutex_lock(self, name: str, instance: int = 0) -> None:
        """``mutex_lock(&lock)``: may sleep (``might_sleep()``), then as ``spin_lock``."""
        if self._lockdep is not None:
            self._lockdep.might_sleep(f"mutex_lock({name})", "kernel/locking/mutex.c")
        self.spin_lock(name, instance)

    mutex_unlock = spin_unlock

    def rcu_read_lock(self) -> None:
        """``rcu_read_lock()``: an RCU read-side section (not counted as a lock)."""
        if self._lockdep is not None:
            self._lockdep.acquire(RCU_READ_LOCK, 0)
        self.held_locks.append((RCU_READ_LOCK, 0))

    def rcu_read_unlock(self) -> None:
        """``rcu_read_unlock()``."""
        self.spin_unlock(RCU_READ_LOCK, 0)

    def preempt_disable(self) -> None:
        """``preempt_disable()``: a preempt-disabled section (not counted as a lock)."""
        if self._lockdep is not None:
            self._lockdep.acquire(PREEMPT_DISABLED, 0)
        self.held_locks.append((PREEMPT_DISABLED, 0))

    def preempt_enable(self) -> None:
        """``preempt_enable()``."""
        self.spin_unlock(PREEMPT_DISABLED, 0)

    def lockdep_assert_held(self, name: str, instance: int = 0) -> None:
        """``lockdep_assert_held(&lock)``: with the debug kernel, lockdep's
        warning when the running task does not hold the lock; else nothing."""
        if self._lockdep is not None:
            self._lockdep.assert_held(name, instance)

    def might_alloc(self, can_block: bool, what: str = "kmem_cache_alloc") -> None:
        """``might_alloc(gfp)`` (``slab_pre_alloc_hook()``): a blocking
        allocation may sleep; the debug kernel reports it in atomic context.
        Call sites test ``self._lockdep is not None`` first (free when off)."""
        if can_block and self._lockdep is not None:
            self._lockdep.might_sleep(what)
