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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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

    def _locking_init(self) -> None:
        self.held_locks = []

    def spin_lock(self, name: str, instance: int = 0) -> None:
        """``spin_lock(&lock)``: count the acquisition and hold it."""
        self.metrics.locks[name] += 1
        self.held_locks.append((name, instance))

    def spin_unlock(self, name: str, instance: int = 0) -> None:
        """``spin_unlock(&lock)``: the innermost matching lock is released."""
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

    mutex_lock = spin_lock
    mutex_unlock = spin_unlock

    def rcu_read_lock(self) -> None:
        """``rcu_read_lock()``: an RCU read-side section (not counted as a lock)."""
        self.held_locks.append((RCU_READ_LOCK, 0))

    def rcu_read_unlock(self) -> None:
        """``rcu_read_unlock()``."""
        self.spin_unlock(RCU_READ_LOCK, 0)

    def preempt_disable(self) -> None:
        """``preempt_disable()``: a preempt-disabled section (not counted as a lock)."""
        self.held_locks.append((PREEMPT_DISABLED, 0))

    def preempt_enable(self) -> None:
        """``preempt_enable()``."""
        self.spin_unlock(PREEMPT_DISABLED, 0)
