"""Argument checks shared by the public entry points.

Each check raises :class:`~vmapsim.VmapArgumentError` or
:class:`~vmapsim.VmapTypeError` naming the argument and the rule; none
changes any state.
"""

from __future__ import annotations

from .constants import PAGE_SIZE, ULONG_MAX
from .errors import VmapArgumentError, VmapTypeError


def check_int(name: str, value: object) -> int:
    """``value`` must be an int (bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise VmapTypeError(name, "an int", value)
    return value


def check_ulong(name: str, value: object) -> int:
    """``value`` must be an unsigned long: an int in [0, 2**64 - 1]."""
    v = check_int(name, value)
    if v < 0 or v > ULONG_MAX:
        raise VmapArgumentError(name, "must be in [0, 2**64 - 1]", v)
    return v


def check_size(name: str, value: object, *, page_aligned: bool) -> int:
    """A non-zero size; page-aligned where the kernel requires it."""
    v = check_ulong(name, value)
    if v == 0:
        raise VmapArgumentError(name, "must be > 0")
    if page_aligned and v % PAGE_SIZE:
        raise VmapArgumentError(name, f"must be a multiple of PAGE_SIZE ({PAGE_SIZE})", v)
    return v


def check_align(name: str, value: object) -> int:
    """An alignment: a power of two."""
    v = check_ulong(name, value)
    if v == 0 or v & (v - 1):
        raise VmapArgumentError(name, "must be a power of two", v)
    return v


def check_window(vstart: object, vend: object) -> tuple[int, int]:
    """``[vstart, vend)`` inside the address space, ``vstart < vend``."""
    s = check_ulong("vstart", vstart)
    e = check_ulong("vend", vend)
    if s >= e:
        raise VmapArgumentError("vstart", f"must be below vend ({e:#x})", s)
    return s, e


def check_cpu(value: object, nr_cpus: int) -> int:
    """A CPU id of this allocator."""
    v = check_int("cpu", value)
    if not 0 <= v < nr_cpus:
        raise VmapArgumentError("cpu", f"must be in [0, {nr_cpus - 1}] (nr_cpus={nr_cpus})", v)
    return v
