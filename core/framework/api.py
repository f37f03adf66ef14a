"""``vmapsim.build()``: an allocator for a stage.

Each component is resolved through the registry (``name`` or
``plugin:name``) and its factory is called behind a boundary: a factory that
raises, or returns an object lacking methods of its role's protocol, fails
the build with a :class:`~vmapsim.ComponentError` naming the role, the
component, its plugin and distribution (and the missing methods).  An
:class:`~vmapsim.InvariantError` raised by ``check_invariants()`` names the
component whose own ``check()`` failed, or, for a rule spanning components
(partition, coalescing, node placement), lists the components bound in.

Coalescing: a stage's own coalescer may need the stage's own free index
(stage 0's ``list-neighbour`` edits the rb-tree).  When it cannot serve the
free index chosen in ``components``, the build fails with an error telling
to add ``coalesce=generic``; it never swaps a component silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from vmapsim.checking.faults import FailslabConfig, FaultInjector
from vmapsim.checking.validate import check_int
from vmapsim.errors import ComponentError, InvariantError, VmapArgumentError, VmapTypeError
from vmapsim.framework.descriptors import Component, ComponentContext
from vmapsim.framework.mirror import MIRRORS
from vmapsim.framework.registry import Offer, Registry, get_registry
from vmapsim.framework.roles import ROLE_PROTOCOLS, ROLES
from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.constants import arch_by_name

__all__ = ["build", "missing_methods", "protocol_methods"]

#: the index-agnostic coalescer the coalescing hint points to
GENERIC_COALESCER = "generic"


def protocol_methods(proto: type) -> list[str]:
    """The methods a role's :class:`typing.Protocol` requires, sorted."""
    names: set[str] = set()
    for klass in proto.__mro__:
        if klass in (object,) or klass.__module__ == "typing":
            continue
        for name, value in vars(klass).items():
            if callable(value) and (not name.startswith("_") or name in ("__iter__", "__len__")):
                names.add(name)
    return sorted(names)


def missing_methods(obj: object, role: str) -> list[str]:
    """The methods of ``role``'s protocol that ``obj`` lacks (empty when it fills the role)."""
    return [
        m for m in protocol_methods(ROLE_PROTOCOLS[role]) if not callable(getattr(obj, m, None))
    ]


def _guarded(role: str, offer: Offer, hint: str | None) -> Callable[[ComponentContext], object]:
    """``offer``'s factory behind the build-time boundary (see the module doc)."""
    factory = offer.component.factory

    def build_component(ctx: ComponentContext) -> object:
        try:
            obj = factory(ctx)
        except Exception as exc:
            msg = f"component {offer.describe()} failed to build: {type(exc).__name__}: {exc}"
            if hint:
                msg += f"; {hint}"
            raise ComponentError(msg) from exc
        missing = missing_methods(obj, role)
        if missing:
            raise ComponentError(
                f"component {offer.describe()} built {type(obj).__name__}, which lacks "
                f"the {ROLE_PROTOCOLS[role].__name__} method(s) {', '.join(missing)}"
            )
        return obj

    return build_component


def _describe(offers: tuple[Offer, ...]) -> str:
    return " + ".join(o.describe() for o in offers)


def _blaming(alloc: VmapAllocator, offers: Mapping[str, tuple[Offer, ...]]) -> Callable[[], None]:
    """``alloc.check_invariants`` whose InvariantError names the component at fault."""
    check = alloc.check_invariants

    def check_invariants() -> None:
        try:
            check()
        except InvariantError as exc:
            culprit = _culprit(alloc, offers)
            if culprit is not None:
                raise InvariantError(f"component {culprit}: {exc}") from exc
            bound = "; ".join(_describe(o) for o in offers.values())
            raise InvariantError(f"{exc} [components: {bound}]") from exc

    check_invariants.__doc__ = check.__doc__
    return check_invariants


def _culprit(alloc: VmapAllocator, offers: Mapping[str, tuple[Offer, ...]]) -> str | None:
    """Run each component's own ``check()``; describe the first that fails."""
    objs: list[tuple[str, Any]] = [
        (role, obj) for role in ("free", "occupied") if (obj := getattr(alloc, role)) is not None
    ]
    for vn in alloc.vmap_nodes:
        objs += [("busy", vn.busy), ("lazy", vn.lazy)]
    if alloc.overlay is not None:
        objs.append(("overlay", alloc.overlay))
    for role, obj in objs:
        try:
            obj.check()
        except InvariantError:
            return _describe(offers[role]) if role in offers else role
    return None


def build(
    stage: int | str = 0,
    *,
    arch: str = "x86_64",
    nr_cpus: int = 1,
    seed: int = 0,
    debug: bool = False,
    components: Mapping[str, str | None] | None = None,
    failslab: FailslabConfig | None = None,
    registry: Registry | None = None,
    init: bool = True,
) -> VmapAllocator:
    """Build the allocator of ``stage`` (``7``, ``"7"`` or ``"series:7"``).

    ``components`` maps a role (``free``, ``busy``, ``lazy``, ``coalesce``,
    ``overlay``, ...) to a registered component, ``name`` or
    ``plugin:name`` (the qualified form chooses between two plugins shipping
    the same name), overriding the stage's choice; None removes an optional
    role.  ``debug`` runs :meth:`~VmapAllocator.check_invariants` after
    every operation (like CONFIG_DEBUG_VM).  ``failslab`` configures fault
    injection for ``maple_node`` and ``vmap_area`` allocations.  Everything
    is deterministic for a given ``seed``.  If plugins failed to load, the
    first build warns once (:class:`~vmapsim.PluginWarning`).  ``init=False``
    returns the allocator before ``vmalloc_init()`` (early boot: areas can be
    registered with ``vm_area_register_early()``; call ``vmalloc_init()`` to
    bring it up).  A component name ``"A+B"`` fills the role with ``A`` and
    keeps ``B`` as its shadow (:mod:`vmapsim.framework.mirror`).
    """
    reg = registry or get_registry()
    reg.warn_failures_once()
    st = reg.stage(stage)
    arch_obj = arch_by_name(arch)
    check_int("nr_cpus", nr_cpus)
    if not 1 <= nr_cpus <= 8192:
        raise VmapArgumentError("nr_cpus", "must be in [1, 8192]", nr_cpus)
    check_int("seed", seed)
    if not isinstance(debug, bool):
        raise VmapTypeError("debug", "a bool", debug)
    chosen: dict[str, str] = dict(st.components)
    overridden: set[str] = set()
    for role, name in (components or {}).items():
        if role not in ROLES:
            raise VmapArgumentError(
                "components", f"unknown role {role!r}; roles are {sorted(ROLES)}"
            )
        if name is None:
            chosen.pop(role, None)
        else:
            chosen[role] = name
            overridden.add(role)
    offers = {role: _resolve(reg, role, name) for role, name in chosen.items()}
    hints: dict[str, str] = {}
    if (
        "coalesce" in offers
        and "coalesce" not in overridden
        and "free" in overridden
        and chosen["free"] != st.components.get("free")
        and offers["coalesce"][0].component.name != GENERIC_COALESCER
    ):
        hints["coalesce"] = (
            f"stage {st.key}'s coalescer {chosen['coalesce']!r} cannot serve "
            f"free={chosen['free']}: add --with coalesce={GENERIC_COALESCER} "
            f"(build(components={{'coalesce': '{GENERIC_COALESCER}'}})), the coalescer "
            "that works over any FreeIndex"
        )
    resolved: dict[str, Component | tuple[Component, ...]] = {}
    for role, pair in offers.items():
        guarded = tuple(
            attrs.evolve(o.component, factory=_guarded(role, o, hints.get(role))) for o in pair
        )
        resolved[role] = guarded if len(guarded) > 1 else guarded[0]
    fs = failslab or FailslabConfig(seed=seed)
    alloc = VmapAllocator(
        st,
        resolved,
        arch=arch_obj,
        nr_cpus=nr_cpus,
        seed=seed,
        debug=debug,
        faults=FaultInjector(fs),
        init=init,
    )
    alloc.check_invariants = _blaming(alloc, offers)  # type: ignore[method-assign]
    return alloc


def _resolve(reg: Registry, role: str, name: str) -> tuple[Offer, ...]:
    """One registration, or ``"A+B"`` as the (primary, shadow) pair."""
    if not isinstance(name, str) or "+" not in name:
        return (reg.offer(role, name),)
    if role not in MIRRORS:
        raise VmapArgumentError(
            "components", f"role {role!r} cannot have a shadow ('+'): only {sorted(MIRRORS)}"
        )
    parts = name.split("+")
    if len(parts) != 2 or not all(parts):
        raise VmapArgumentError("components", "a shadowed component is 'PRIMARY+SHADOW'", name)
    return tuple(reg.offer(role, part) for part in parts)
