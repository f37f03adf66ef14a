"""Lock, RCU and preemption primitives as the flow takes them.

Every lock the modelled kernel takes goes through these methods, in the
order the kernel code takes and releases it, so that what is held around
which work is known (the cost model's lock sections, the debug checks).
A lock is named by its kernel class (``"free_vmap_area_lock"``,
``"vmap_node.busy.lock"``, ``"vmap_purge_lock"``, ...) and an instance
(the vmap node's or CPU's index; 0 for a global lock).

An acquisition is counted under its class name in ``metrics.locks`` (the
cost model's ``lock.<name>`` counters), the lock word's line is touched (a
write: the atomic that takes it, and the store that releases it), the held
set is kept as a stack, and with lock-section accounting on
(``metrics.sections``, :mod:`vmapsim.cost.sections`) the work between
acquire and release is attributed to the lock instance.  RCU read sections
and preempt-disabled sections are recorded as their own kinds and touch no
line (``CONFIG_PREEMPT_NONE``: no counter is written).

Components (plugins) take the allocator's locks through the same calls,
handed to them as ``ComponentContext.locking`` (this object).

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

__all__ = ["PREEMPT_DISABLED", "RCU_READ_LOCK", "CountingLocks", "LockingMixin"]

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
    #: (class name, instance) -> the lock word's 256-B block and line mask
    _lock_lines: dict[tuple[str, int], tuple[int, int]]
    #: the debug kernel's observer (lockdep, might_sleep); None: a production kernel
    _lockdep: DebugKernel | None

    def _locking_init(self) -> None:
        self.held_locks = []
        self._lock_lines = {}
        self._lockdep = None

    def lock_address(self, name: str, instance: int = 0) -> int:
        """The modelled address of lock ``name[instance]``'s word.

        Each lock instance gets a line of its own in static data, in the
        order locks are first taken (the kernel's placement inside
        ``struct vmap_node`` or .data is not modelled: docs/cost-model.md)."""
        key = (name, instance)
        entry = self._lock_lines.get(key)
        if entry is None:
            addr = self.metrics.mem.static(64, 64)
            line = addr >> 6
            entry = self._lock_lines[key] = (line >> 2, 1 << (line & 3))
        return (entry[0] << 8) + ((entry[1].bit_length() - 1) << 6)

    def _lock_touch(self, key: tuple[str, int]) -> None:
        entry = self._lock_lines.get(key)
        if entry is None:
            self.lock_address(*key)
            entry = self._lock_lines[key]
        m = self.metrics
        wr = m.wr
        b = entry[0]
        wr[b] = wr.get(b, 0) | entry[1]
        m.line_accesses += 1

    def spin_lock(self, name: str, instance: int = 0) -> None:
        """``spin_lock(&lock)``: count the acquisition, touch the lock word, hold it."""
        if self._lockdep is not None:
            self._lockdep.acquire(name, instance)
        m = self.metrics
        m.locks[name] += 1
        key = (name, instance)
        sections = m.sections
        if sections is not None:
            sections.acquire(name, instance)
        entry = self._lock_lines.get(key)
        if entry is None:
            self._lock_touch(key)
        else:  # _lock_touch(), inline
            wr = m.wr
            wr[entry[0]] = wr.get(entry[0], 0) | entry[1]
            m.line_accesses += 1
        self.held_locks.append(key)

    def spin_unlock(self, name: str, instance: int = 0) -> None:
        """``spin_unlock(&lock)``: the innermost matching lock is released
        (with the debug kernel, an unheld one is lockdep's report, not an error)."""
        if self._lockdep is not None and not self._lockdep.release(name, instance):
            return
        key = (name, instance)
        m = self.metrics
        entry = self._lock_lines.get(key)
        if entry is None:
            self._lock_touch(key)
        else:  # _lock_touch(), inline
            wr = m.wr
            wr[entry[0]] = wr.get(entry[0], 0) | entry[1]
            m.line_accesses += 1
        held = self.held_locks
        if m.sections is None and held and held[-1] == key:
            held.pop()  # the common case of _release()
            return
        self._release(key)

    def _release(self, key: tuple[str, int]) -> None:
        held = self.held_locks
        found = False
        if held and held[-1] == key:
            held.pop()
            found = True
        else:
            # out-of-order release is legal for spinlocks; find it
            for i in range(len(held) - 1, -1, -1):
                if held[i] == key:
                    del held[i]
                    found = True
                    break
        if not found:
            raise AssertionError(f"spin_unlock({key[0]}[{key[1]}]) of a lock not held")
        sections = self.metrics.sections
        if sections is not None:
            sections.release(*key)

    def mutex_lock(self, name: str, instance: int = 0) -> None:
        """``mutex_lock(&lock)``: may sleep (``might_sleep()``), then as ``spin_lock``."""
        if self._lockdep is not None:
            self._lockdep.might_sleep(f"mutex_lock({name})", "kernel/locking/mutex.c")
        self.spin_lock(name, instance)

    mutex_unlock = spin_unlock

    def rcu_read_lock(self) -> None:
        """``rcu_read_lock()``: an RCU read-side section (counted as
        ``lock.rcu_read_lock``; it touches no line)."""
        if self._lockdep is not None:
            self._lockdep.acquire(RCU_READ_LOCK, 0)
        self.metrics.locks[RCU_READ_LOCK] += 1
        sections = self.metrics.sections
        if sections is not None:
            sections.acquire(RCU_READ_LOCK, 0)
        self.held_locks.append((RCU_READ_LOCK, 0))

    def rcu_read_unlock(self) -> None:
        """``rcu_read_unlock()``."""
        if self._lockdep is not None and not self._lockdep.release(RCU_READ_LOCK, 0):
            return
        self._release((RCU_READ_LOCK, 0))

    def preempt_disable(self, cpu: int = 0) -> None:
        """``preempt_disable()``: a preempt-disabled section on ``cpu``
        (counted as ``lock.preempt_disable``; it touches no line)."""
        if self._lockdep is not None:
            self._lockdep.acquire(PREEMPT_DISABLED, cpu)
        self.metrics.locks[PREEMPT_DISABLED] += 1
        sections = self.metrics.sections
        if sections is not None:
            sections.acquire(PREEMPT_DISABLED, cpu)
        self.held_locks.append((PREEMPT_DISABLED, cpu))

    def preempt_enable(self, cpu: int = 0) -> None:
        """``preempt_enable()``."""
        if self._lockdep is not None and not self._lockdep.release(PREEMPT_DISABLED, cpu):
            return
        self._release((PREEMPT_DISABLED, cpu))

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


class CountingLocks:
    """The lock calls for a component built on its own (no allocator): each
    acquisition is counted in ``counters.locks`` and nothing else happens.
    :class:`vmapsim.ComponentContext` hands components the allocator
    instead when there is one."""

    __slots__ = ("counters",)

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def spin_lock(self, name: str, instance: int = 0) -> None:
        """Count one acquisition of ``name``."""
        self.counters.locks[name] += 1

    def spin_unlock(self, name: str, instance: int = 0) -> None:
        """Nothing to do."""

    mutex_lock = spin_lock
    mutex_unlock = spin_unlock

    def rcu_read_lock(self) -> None:
        """Count one RCU read section."""
        self.counters.locks[RCU_READ_LOCK] += 1

    def rcu_read_unlock(self) -> None:
        """Nothing to do."""

    def preempt_disable(self, cpu: int = 0) -> None:
        """Count one preempt-disabled section."""
        self.counters.locks[PREEMPT_DISABLED] += 1

    def preempt_enable(self, cpu: int = 0) -> None:
        """Nothing to do."""
