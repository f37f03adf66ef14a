"""Fault injection in the kit: run a block of a test with the kernel's
failslab / fail_page_alloc armed, from the same spec as ``--faults``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from vmapsim.checking.faults import FailslabConfig
from vmapsim.checking.faultspec import parse_faults

__all__ = ["inject_faults"]


@contextmanager
def inject_faults(target: Any, spec: str | FailslabConfig, *, seed: int = 0) -> Iterator[Any]:
    """Arm ``target``'s injectors (a :class:`~vmapsim.VmapAllocator`, a
    ``Built`` of the kit, or a :class:`~vmapsim.FaultInjector`) with ``spec``
    -- a ``--faults`` string (``"maple_node:probability=100"``,
    ``"page:probability=100:min-order=6"``) or a :class:`~vmapsim.FailslabConfig`
    -- for the ``with`` block, as writing the debugfs knobs of a running
    kernel does; disarm them after it.  Yields the injector (its
    ``failures``, ``slab_failures``, ``page_failures`` say what was failed)."""
    faults = getattr(target, "faults", None)
    if faults is None:
        ctx = getattr(target, "ctx", None)
        faults = getattr(ctx, "faults", None) if ctx is not None else None
    if faults is None:
        faults = target
    if not callable(getattr(faults, "configure", None)):
        raise TypeError(
            f"target: must be an allocator, a kit Built or a FaultInjector "
            f"(got {type(target).__name__})"
        )
    cfg = parse_faults(spec, seed=seed) if isinstance(spec, str) else spec
    faults.configure(cfg)
    try:
        yield faults
    finally:
        faults.configure(FailslabConfig(seed=seed))
