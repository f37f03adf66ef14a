"""lockdep: the lock dependency validator of a ``CONFIG_PROVE_LOCKING`` kernel.

Semantics from kernel/locking/lockdep.c (torvalds/linux at baf9c8c1, read
for semantics only): ``__lock_acquire()`` → ``validate_chain()`` →
``check_deadlock()`` (the class is already held: "possible recursive locking
detected") and ``check_prevs_add()`` (a dependency from the innermost held
lock to the new one, refused by ``check_noncircular()`` when the new lock
already leads back to it: "possible circular locking dependency
detected"); ``__lock_release()`` of a lock the task does not hold ("bad
unlock balance detected!"); ``lockdep_assert_held()`` (``WARN_ON`` of
``lock_is_held()``).

The model's lock sites go through
:class:`~vmapsim.kernel.locking.LockingMixin`, which calls this observer
only when the debug kernel is on (one attribute test when it is off).

How the model departs from the kernel, on purpose:

- a lock *class* is the model's class name (``"vmap_node.busy.lock"``) and is
  printed with the name lockdep gives it (:data:`KERNEL_CLASS_NAMES`:
  ``&vn->busy.lock``, the initialiser's argument text); the printed address
  of the lock is the model's instance (node or CPU index);
- the kernel turns lockdep off after its first report (``debug_locks_off()``);
  the model keeps validating and prints each report once per class pair (per
  class and function for the one-lock reports), counting every detection,
  so one run shows every distinct problem;
- the model runs one operation at a time on a CPU: held-lock stacks are per
  CPU (:attr:`Lockdep.cpu` names the running one; the flow has no current
  CPU yet, so it stays 0) and the dependency graph is global;
- a stack trace is the model's Python call chain, function names only.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from typing import TYPE_CHECKING, Any

from attrs import define, field

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import FrameType

__all__ = [
    "KERNEL_CLASS_NAMES",
    "MUTEX_CLASSES",
    "PSEUDO_LOCKS",
    "HeldLock",
    "Lockdep",
    "kernel_class_name",
    "model_stack",
]

#: the model's class name -> the name lockdep prints (``spin_lock_init(&vn->busy.lock)``
#: names the class after its argument; ``DEFINE_SPINLOCK(x)`` after ``x``)
KERNEL_CLASS_NAMES: dict[str, str] = {
    "free_vmap_area_lock": "free_vmap_area_lock",
    "vmap_purge_lock": "vmap_purge_lock",
    "vmap_node.busy.lock": "&vn->busy.lock",
    "vmap_node.lazy.lock": "&vn->lazy.lock",
    "vmap_node.pool_lock": "&vn->pool_lock",
    "vmap_block.lock": "&vb->lock",
    "vmap_block_queue.lock": "&vbq->lock",
    "kfree_rcu_cpu.lock": "krcp->lock",
    "pcpu_alloc_mutex": "pcpu_alloc_mutex",
    "pcpu_lock": "pcpu_lock",
    "vmap_bump_lock": "vmap_bump_lock",
    "vmap_bump_chunks_lock": "vmap_bump_chunks_lock",
    "rcu_read_lock": "rcu_read_lock",
}

#: classes that are mutexes (``DEFINE_MUTEX``): sleeping locks, ``{3:3}``
MUTEX_CLASSES = frozenset({"vmap_purge_lock", "pcpu_alloc_mutex"})

#: held-stack entries that are not locks for the dependency graph: an RCU read
#: section is a recursive read acquisition (never a ``prev``, never recursive
#: locking) and a preempt-disabled section is no lock at all
PSEUDO_LOCKS = frozenset({"rcu_read_lock", "preempt_disable"})

_BANNER_CIRCULAR = "=" * 54
_BANNER_RECURSIVE = "=" * 44
_BANNER_UNLOCK = "=" * 37

#: files whose frames are not a lock's acquiring function: the primitives and the checkers
_HERE = os.path.dirname(os.path.abspath(__file__))
_SKIP_FILES = frozenset(
    {os.path.join(_HERE, f"{name}.py") for name in ("lockdep", "might_sleep", "debug_kernel")}
    | {os.path.join(os.path.dirname(_HERE), "kernel", "locking.py")}
)


def kernel_class_name(name: str) -> str:
    """The name lockdep prints for the model's lock class ``name``."""
    return KERNEL_CLASS_NAMES.get(name, name)


def _skipped(frame: FrameType) -> bool:
    return frame.f_code.co_filename in _SKIP_FILES


def _caller(frame: FrameType | None) -> str:
    """The first function outside the locking primitives and the checkers."""
    while frame is not None and _skipped(frame):
        frame = frame.f_back
    return frame.f_code.co_name if frame is not None else "?"


def model_stack(limit: int = 8, frame: FrameType | None = None) -> list[str]:
    """The model's call chain, innermost first: function names of ``vmapsim``
    code and plugins, outside the locking primitives (a ``stack backtrace``)."""
    f = frame if frame is not None else sys._getframe(1)
    out: list[str] = []
    while f is not None and len(out) < limit:
        path = f.f_code.co_filename
        if not _skipped(f) and ("/core/" in path or "/plugins/" in path or "vmapsim" in path):
            out.append(f.f_code.co_name)
        f = f.f_back
    return out


@define(slots=True, eq=False, weakref_slot=False)
class HeldLock:
    """``struct held_lock``: a class, its instance and where it was taken."""

    name: str
    instance: int
    where: str

    def describe(self) -> str:
        """``print_lock()``: ``(class){usage}-{wait types}, at: function``."""
        return f"inst{self.instance} {_class_desc(self.name)}, at: {self.where}"


def _class_desc(name: str) -> str:
    kind = "{3:3}" if name in MUTEX_CLASSES else "{1:2}" if name == "rcu_read_lock" else "{2:2}"
    usage = "{....}" if name == "rcu_read_lock" else "{+.+.}"
    return f"({kernel_class_name(name)}){usage}-{kind}"


@define(slots=True, eq=False, weakref_slot=False)
class Lockdep:
    """The lock dependency validator, one per allocator (the debug kernel's).

    ``printk`` receives each report line; ``ident`` is the kernel-ident line
    (``print_kernel_ident()``).  :attr:`counts` holds every detection by
    kind, :attr:`reports` the reports printed.
    """

    printk: Callable[[str], None]
    ident: str = "vmapsim #1 Not tainted"
    #: the CPU whose task runs now (held stacks are per CPU)
    cpu: int = 0
    #: CPU -> its task's held locks, innermost last
    held: dict[int, list[HeldLock]] = field(factory=dict)
    #: class -> {class taken while holding it: function that took it}
    graph: dict[str, dict[str, str]] = field(factory=dict)
    #: detections by kind: circular, recursive, bad_unlock, assert_held, might_sleep
    counts: dict[str, int] = field(
        factory=lambda: dict.fromkeys(
            ("circular", "recursive", "bad_unlock", "assert_held", "might_sleep"), 0
        )
    )
    #: reports printed (each distinct problem once)
    reports: int = 0
    _reported: set[tuple[Any, ...]] = field(factory=set)

    # -- the task ---------------------------------------------------------------
    def stack(self) -> list[HeldLock]:
        """The running task's held locks (``current->held_locks``)."""
        st = self.held.get(self.cpu)
        if st is None:
            st = self.held[self.cpu] = []
        return st

    def task(self) -> str:
        """``comm/pid`` of the running task, as lockdep prints it."""
        return f"vmapsim/{self.cpu + 1}"

    # -- acquire / release ---------------------------------------------------------
    def acquire(self, name: str, instance: int) -> None:
        """``lock_acquire()``: validate, then hold ``(name, instance)``."""
        where = _caller(sys._getframe(1))
        st = self.stack()
        if name not in PSEUDO_LOCKS:
            prev = None
            for h in st:
                if h.name == name:
                    self._recursive(h, name, instance, where)
                    break
            for h in reversed(st):
                if h.name not in PSEUDO_LOCKS:
                    prev = h
                    break
            if prev is not None and prev.name != name:
                self._add_dependency(prev, name, instance, where)
        st.append(HeldLock(name, instance, where))

    def release(self, name: str, instance: int) -> bool:
        """``lock_release()``: False (and a report) when the task does not hold it."""
        st = self.stack()
        for i in range(len(st) - 1, -1, -1):
            h = st[i]
            if h.name == name and h.instance == instance:
                del st[i]
                return True
        self._bad_unlock(name, instance, _caller(sys._getframe(1)))
        return False

    def is_held(self, name: str, instance: int) -> bool:
        """``lock_is_held()``: does the running task hold this lock instance?"""
        return any(h.name == name and h.instance == instance for h in self.stack())

    def assert_held(self, name: str, instance: int) -> None:
        """``lockdep_assert_held()``: ``WARN_ON`` when the lock is not held."""
        if self.is_held(name, instance):
            return
        self.counts["assert_held"] += 1
        where = _caller(sys._getframe(1))
        if not self._first(("assert_held", name, where)):
            return
        self._emit(
            [
                f"WARNING: CPU: {self.cpu} PID: {self.cpu + 1} at mm/vmalloc.c {where}",
                f"lockdep_assert_held({kernel_class_name(name)}) failed: instance {instance} "
                "not held",
                *self._held_lines(),
                "Call Trace:",
                *(f" {fn}" for fn in model_stack(frame=sys._getframe(1))),
            ]
        )

    # -- the checks -------------------------------------------------------------------
    def _first(self, key: tuple[Any, ...]) -> bool:
        if key in self._reported:
            return False
        self._reported.add(key)
        self.reports += 1
        return True

    def _emit(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.printk(line)

    def _held_lines(self) -> list[str]:
        """``lockdep_print_held_locks()``."""
        st = self.stack()
        if not st:
            return [f"no locks held by {self.task()}."]
        n = len(st)
        return [f"{n} lock{'s' if n > 1 else ''} held by {self.task()}:"] + [
            f" #{i}: {h.describe()}" for i, h in enumerate(st)
        ]

    def _recursive(self, held: HeldLock, name: str, instance: int, where: str) -> None:
        """``check_deadlock()`` → ``print_deadlock_bug()``."""
        self.counts["recursive"] += 1
        if not self._first(("recursive", name, where)):
            return
        cls = kernel_class_name(name)
        self._emit(
            [
                _BANNER_RECURSIVE,
                "WARNING: possible recursive locking detected",
                self.ident,
                "-" * len(_BANNER_RECURSIVE),
                f"{self.task()} is trying to acquire lock:",
                HeldLock(name, instance, where).describe(),
                "",
                "but task is already holding lock:",
                held.describe(),
                "",
                "other info that might help us debug this:",
                " Possible unsafe locking scenario:",
                "",
                "       CPU0",
                "       ----",
                f"  lock({cls});",
                f"  lock({cls});",
                "",
                " *** DEADLOCK ***",
                "",
                " May be due to missing lock nesting notation",
                "",
                *self._held_lines(),
                "",
                "stack backtrace:",
                *(f" {fn}" for fn in model_stack(frame=sys._getframe(1))),
            ]
        )

    def _add_dependency(self, prev: HeldLock, name: str, instance: int, where: str) -> None:
        """``check_prev_add()``: record ``prev → name`` unless ``name`` already
        leads to ``prev`` (``check_noncircular()``: a breadth-first search)."""
        after = self.graph.get(prev.name)
        if after is not None and name in after:
            return
        path = self._path(name, prev.name)
        if path is not None:
            self._circular(prev, name, instance, where, path)
            return
        self.graph.setdefault(prev.name, {})[name] = where

    def _path(self, src: str, target: str) -> list[str] | None:
        """The classes from ``src`` to ``target`` along recorded dependencies."""
        parent: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            c = queue.popleft()
            if c == target:
                path = [c]
                p = parent[c]
                while p is not None:
                    path.append(p)
                    p = parent[p]
                return path[::-1]
            for nxt in self.graph.get(c, ()):
                if nxt not in parent:
                    parent[nxt] = c
                    queue.append(nxt)
        return None

    def _circular(
        self, prev: HeldLock, name: str, instance: int, where: str, path: list[str]
    ) -> None:
        """``print_circular_bug()``: the held ``prev`` and the new lock ``name``
        close a cycle; ``path`` runs from ``name`` to ``prev`` over recorded
        dependencies."""
        self.counts["circular"] += 1
        if not self._first(("circular", prev.name, name)):
            return
        source, target = kernel_class_name(name), kernel_class_name(prev.name)
        chain: list[str] = []
        depth = len(path) - 1
        for i in range(depth, 0, -1):
            taken_at = self.graph[path[i - 1]][path[i]]
            chain += [f"-> #{i} {_class_desc(path[i])}:", f"       {taken_at}", ""]
        chain += [f"-> #0 {_class_desc(name)}:", f"       {where}", ""]
        parent = kernel_class_name(path[-2]) if len(path) > 1 else source
        scenario: list[str] = []
        if parent != source:
            scenario += [" Chain exists of:", f"   {source} --> {parent} --> {target}", ""]
        scenario += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({target});",
            f"                               lock({parent});",
            f"                               lock({target});",
            f"  lock({source});",
            "",
            " *** DEADLOCK ***",
            "",
        ]
        self._emit(
            [
                _BANNER_CIRCULAR,
                "WARNING: possible circular locking dependency detected",
                self.ident,
                "-" * len(_BANNER_CIRCULAR),
                f"{self.task()} is trying to acquire lock:",
                HeldLock(name, instance, where).describe(),
                "",
                "but task is already holding lock:",
                prev.describe(),
                "",
                "which lock already depends on the new lock.",
                "",
                "",
                "the existing dependency chain (in reverse order) is:",
                "",
                *chain,
                "other info that might help us debug this:",
                "",
                *scenario,
                *self._held_lines(),
                "",
                "stack backtrace:",
                *(f" {fn}" for fn in model_stack(frame=sys._getframe(1))),
            ]
        )

    def _bad_unlock(self, name: str, instance: int, where: str) -> None:
        """``print_unlock_imbalance_bug()``."""
        self.counts["bad_unlock"] += 1
        if not self._first(("bad_unlock", name, where)):
            return
        self._emit(
            [
                _BANNER_UNLOCK,
                "WARNING: bad unlock balance detected!",
                self.ident,
                "-" * len(_BANNER_UNLOCK),
                f"{self.task()} is trying to release lock ({kernel_class_name(name)}) at:",
                f"inst{instance} {where}",
                "but there are no more locks to release!",
                "",
                "other info that might help us debug this:",
                *self._held_lines(),
                "",
                "stack backtrace:",
                *(f" {fn}" for fn in model_stack(frame=sys._getframe(1))),
            ]
        )
