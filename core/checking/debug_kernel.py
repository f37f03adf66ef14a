"""The debug kernel: lockdep, might_sleep, KASAN and UBSAN reports together.

``build(..., debug_kernel=True)`` / ``vmapsim run --debug-kernel`` puts a
:class:`DebugKernel` on the allocator before ``vmalloc_init()``: the
:class:`~vmapsim.kernel.locking.LockingMixin` primitives then call it
(lockdep, :mod:`~vmapsim.checking.lockdep`) and the allocation sites ask it
whether they may sleep (:mod:`~vmapsim.checking.might_sleep`).  The
KASAN-style lifetime checks of the per-CPU overlay's chunk descriptors and
its UBSAN-style bounds-checked arrays are always on in the model (they cost
nothing measurable); the profile counts their reports beside its own
(:func:`debug_kernel_counts`).

Like a ``CONFIG_PROVE_LOCKING=y CONFIG_DEBUG_ATOMIC_SLEEP=y CONFIG_KASAN=y
CONFIG_UBSAN_BOUNDS=y`` config; ``CONFIG_DEBUG_VM``'s invariant checks stay
the separate ``--debug`` (with it a UBSAN report raises, as
``panic_on_warn`` would).
"""

from __future__ import annotations

import re
from typing import Any

from attrs import define

from vmapsim.checking.lockdep import Lockdep
from vmapsim.checking.might_sleep import SITE_SLAB, might_sleep

__all__ = ["KERNEL_REPORT", "DebugKernel", "debug_kernel_counts", "kernel_reports"]

#: a kernel report's first line in the allocator log (``--fail-on-reports``,
#: ``compare``'s count): sanitizers, ``BUG:``, ``WARNING:`` and ``kernel BUG at``
KERNEL_REPORT = re.compile(r"^(?:UBSAN|KASAN|KFENCE|KMSAN): |^BUG: |^WARNING: |kernel BUG at")


def kernel_reports(log: list[str]) -> list[str]:
    """The lines of ``log`` that open a kernel report."""
    return [line for line in log if KERNEL_REPORT.search(line)]


@define(slots=True, eq=False, weakref_slot=False)
class DebugKernel(Lockdep):
    """lockdep plus ``might_sleep()``: the observer the lock primitives call."""

    def might_sleep(self, what: str, site: str = SITE_SLAB) -> bool:
        """``might_sleep()`` at ``site`` before the sleeping call ``what``."""
        if not self.held.get(self.cpu):
            return False  # nothing held: any context may sleep
        return might_sleep(self, site, what)


def debug_kernel_counts(alloc: Any) -> dict[str, int]:
    """The debug kernel's detections on ``alloc``: lockdep's by kind,
    ``might_sleep``, KASAN's (the overlay's descriptor checks) and UBSAN's
    (``ubsan_reports``), with ``reports``: the reports printed to the log."""
    dk = getattr(alloc, "_lockdep", None)
    out = dict(dk.counts) if dk is not None else {}
    out["kasan"] = int(getattr(alloc.overlay, "kasan_reports", 0) or 0)
    out["ubsan"] = int(alloc.metrics.ubsan_reports)
    out["reports"] = len(kernel_reports(alloc.log))
    return out
