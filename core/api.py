"""``vmapsim.build()``: an allocator for a stage."""

from __future__ import annotations

from collections.abc import Mapping

from .allocator import VmapAllocator
from .constants import arch_by_name
from .descriptors import Component
from .errors import VmapArgumentError, VmapTypeError
from .faults import FailslabConfig, FaultInjector
from .mirror import MIRRORS
from .plugins import Registry, get_registry
from .roles import ROLES
from .validate import check_int

__all__ = ["build"]


def build(
    stage: int | str = 0,
    *,
    arch: str = "x86_64",
    nr_cpus: int = 1,
    seed: int = 0,
    debug: bool = False,
    components: Mapping[str, str] | None = None,
    failslab: FailslabConfig | None = None,
    registry: Registry | None = None,
    init: bool = True,
) -> VmapAllocator:
    """Build the allocator of ``stage`` (``7``, ``"7"`` or ``"series:7"``).

    ``components`` maps a role (``free``, ``busy``, ``lazy``, ``coalesce``,
    ``overlay``) to a registered component name, overriding the stage's
    choice.  ``debug`` runs :meth:`~VmapAllocator.check_invariants` after
    every operation (like CONFIG_DEBUG_VM).  ``failslab`` configures fault
    injection for ``maple_node`` and ``vmap_area`` allocations.  Everything
    is deterministic for a given ``seed``.  ``init=False`` returns the
    allocator before ``vmalloc_init()`` (early boot: areas can be registered
    with ``vm_area_register_early()``; call ``vmalloc_init()`` to bring it up).
    A component name ``"A+B"`` fills the role with ``A`` and keeps ``B`` as its
    shadow (:mod:`vmapsim.mirror`).
    """
    reg = registry or get_registry()
    st = reg.stage(stage)
    arch_obj = arch_by_name(arch)
    check_int("nr_cpus", nr_cpus)
    if not 1 <= nr_cpus <= 8192:
        raise VmapArgumentError("nr_cpus", "must be in [1, 8192]", nr_cpus)
    check_int("seed", seed)
    if not isinstance(debug, bool):
        raise VmapTypeError("debug", "a bool", debug)
    chosen = dict(st.components)
    for role, name in (components or {}).items():
        if role not in ROLES:
            raise VmapArgumentError(
                "components", f"unknown role {role!r}; roles are {sorted(ROLES)}"
            )
        if name is None:
            chosen.pop(role, None)
        else:
            chosen[role] = name
    resolved = {role: _resolve(reg, role, name) for role, name in chosen.items()}
    fs = failslab or FailslabConfig(seed=seed)
    return VmapAllocator(
        st,
        resolved,
        arch=arch_obj,
        nr_cpus=nr_cpus,
        seed=seed,
        debug=debug,
        faults=FaultInjector(fs),
        init=init,
    )


def _resolve(reg: Registry, role: str, name: str) -> Component | tuple[Component, ...]:
    """One component, or ``"A+B"`` as the (primary, shadow) pair."""
    if "+" not in name:
        return reg.component(role, name)
    if role not in MIRRORS:
        raise VmapArgumentError(
            "components", f"role {role!r} cannot have a shadow ('+'): only {sorted(MIRRORS)}"
        )
    parts = name.split("+")
    if len(parts) != 2 or not all(parts):
        raise VmapArgumentError("components", "a shadowed component is 'PRIMARY+SHADOW'", name)
    return tuple(reg.component(role, part) for part in parts)
