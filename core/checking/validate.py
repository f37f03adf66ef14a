"""Argument checks shared by the public entry points.

The ``check_*`` functions refuse what the kernel cannot receive (a wrong
Python type, a value outside its C type, a CPU that does not exist) or what
the model refuses on purpose: each raises :class:`~vmapsim.VmapArgumentError`
or :class:`~vmapsim.VmapTypeError` naming the argument and the rule.
:func:`alloc_vmap_area_einval` is different: it is the kernel's own check,
the values ``alloc_vmap_area()`` receives and rejects with ``-EINVAL``.
None of them changes any state.
"""

from __future__ import annotations

from vmapsim.errors import VmapArgumentError, VmapTypeError
from vmapsim.kernel.constants import PAGE_SIZE, ULONG_MAX

#: ``gfp_t`` is an ``unsigned int``.
GFP_T_MAX = (1 << 32) - 1


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


def check_gfp(value: object) -> int:
    """A ``gfp_t``: an int in [0, 2**32 - 1]."""
    v = check_int("gfp", value)
    if not 0 <= v <= GFP_T_MAX:
        raise VmapArgumentError("gfp", "must be in [0, 2**32 - 1] (a gfp_t)", v)
    return int(v)


def alloc_vmap_area_einval(size: int, align: int) -> str | None:
    """The rule of ``alloc_vmap_area()``'s ``-EINVAL`` check that ``size`` and
    ``align`` (unsigned longs) break, or None: size 0, a size that is not a
    multiple of PAGE_SIZE, an align that is not a power of two (0 included)."""
    if size == 0:
        return "size: must be > 0"
    if size % PAGE_SIZE:
        return f"size: must be a multiple of PAGE_SIZE ({PAGE_SIZE}) (got {size})"
    if align == 0 or align & (align - 1):
        return f"align: must be a power of two (got {align})"
    return None


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
