"""might_sleep: "BUG: sleeping function called from invalid context".

Semantics from kernel/sched/core.c ``__might_resched()`` and
include/linux/sched/mm.h ``might_alloc()`` (torvalds/linux at baf9c8c1,
read for semantics only): a function that may sleep (a blocking slab
allocation — ``gfpflags_allow_blocking()`` — which ``slab_pre_alloc_hook()``
checks through ``might_alloc()``; ``mutex_lock()``; the maple tree's
``mas_alloc_nodes()`` with a blocking gfp) called with a spinlock held or
preemption disabled (``preempt_count() != 0``, i.e. ``in_atomic()``), or
inside an RCU read-side section (``rcu_preempt_depth() != 0`` with
``CONFIG_PREEMPT_RCU``), prints the report below with the held locks.

The kernel rate-limits the report to once a second; the model prints it
once per (site, function) and counts every detection in
``Lockdep.counts["might_sleep"]``.
"""

from __future__ import annotations

import sys

from vmapsim.checking.lockdep import MUTEX_CLASSES, PSEUDO_LOCKS, Lockdep, model_stack
from vmapsim.kernel.locking import PREEMPT_DISABLED, RCU_READ_LOCK

__all__ = ["SITE_MUTEX", "SITE_SLAB", "atomic_context", "might_sleep"]

#: where the might-sleep check sits for an allocation (``slab_pre_alloc_hook()``)
SITE_SLAB = "mm/slub.c"
#: where it sits for a mutex (``mutex_lock()`` → ``might_sleep()``)
SITE_MUTEX = "kernel/locking/mutex.c"


def atomic_context(lockdep: Lockdep) -> tuple[int, int]:
    """``(preempt_count(), rcu_preempt_depth())`` of the running task: each
    spinlock held and each ``preempt_disable()`` adds one to the first, each
    ``rcu_read_lock()`` one to the second; a held mutex adds nothing."""
    preempt = rcu = 0
    for h in lockdep.stack():
        if h.name == RCU_READ_LOCK:
            rcu += 1
        elif h.name == PREEMPT_DISABLED or (
            h.name not in MUTEX_CLASSES and h.name not in PSEUDO_LOCKS
        ):
            preempt += 1
    return preempt, rcu


def might_sleep(lockdep: Lockdep, site: str, what: str) -> bool:
    """``__might_sleep()``: report when the running task may not sleep here.

    ``site`` is the kernel file of the check (:data:`SITE_SLAB`,
    :data:`SITE_MUTEX`), ``what`` the sleeping call (``"kmem_cache_alloc"``,
    ``"mutex_lock(vmap_purge_lock)"``, ``"mas_alloc_nodes"``).  True when the
    context was invalid (reported or counted)."""
    preempt, rcu = atomic_context(lockdep)
    if not preempt and not rcu:
        return False
    lockdep.counts["might_sleep"] += 1
    frame = sys._getframe(1)
    stack = model_stack(frame=frame)
    where = stack[0] if stack else frame.f_code.co_name
    if not lockdep._first(("might_sleep", site, what, where)):
        return True
    disabled_at = next(
        (h.where for h in reversed(lockdep.stack()) if h.name != RCU_READ_LOCK), None
    )
    task = lockdep.task()
    pid = lockdep.cpu + 1
    lines = [
        f"BUG: sleeping function called from invalid context at {site}",
        f"in_atomic(): {int(preempt > 0)}, irqs_disabled(): 0, non_block: 0, pid: {pid}, "
        f"name: {task.split('/')[0]}",
        f"preempt_count: {preempt:x}, expected: 0",
        f"RCU nest depth: {rcu}, expected: 0",
        *lockdep._held_lines(),
    ]
    if disabled_at is not None and preempt:
        lines += ["Preemption disabled at:", f" {disabled_at}"]
    lines += [
        f"CPU: {lockdep.cpu} PID: {pid} Comm: {task} {lockdep.ident}",
        "Call Trace:",
        f" {what}",
        *(f" {fn}" for fn in stack),
    ]
    lockdep._emit(lines)
    return True
