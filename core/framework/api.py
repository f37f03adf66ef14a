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

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
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

__all__ = [
    "ADDABLE_ROLES",
    "blame",
    "build",
    "check_options",
    "component_costs",
    "index_node_bytes",
    "missing_methods",
    "protocol_methods",
    "split_options",
]

#: the index-agnostic coalescer the coalescing hint points to
GENERIC_COALESCER = "generic"
#: roles a ``components`` override may add to a stage that lacks them: those
#: that do not change which index answers a search.  An overlay sits in front
#: of the flow; a free index (with its coalescer) added beside an occupied tree
#: is kept in step as stages 2-6 keep theirs while the occupied tree answers
#: (``--stage 7 --with free=NAME --with coalesce=generic``, docs/plugins.md).
#: Adding an occupied, busy or lazy role would change what answers: refused.
ADDABLE_ROLES = frozenset({"overlay", "free", "coalesce"})


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


def _guarded(
    role: str,
    offer: Offer,
    hint: str | None,
    options: Mapping[str, Any] | None = None,
    built_by: dict[int, Offer] | None = None,
    per_component: bool = False,
) -> Callable[[ComponentContext], object]:
    """``offer``'s factory behind the build-time boundary (see the module doc),
    with the component's parameters (its declared defaults, then ``options``)
    in ``ctx.options``; each object built is recorded in ``built_by``; with
    ``per_component`` it counts into a part of its own (``role=name``)."""
    factory = offer.component.factory
    opts = MappingProxyType({**offer.component.params, **(options or {})})

    def build_component(ctx: ComponentContext) -> object:
        ctx.options = opts
        if per_component:
            ctx.counters = ctx.counters.attach(f"{role}={offer.component.name}")
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
        if built_by is not None:
            built_by.setdefault(id(obj), offer)
        return obj

    return build_component


def split_options(role: str, spec: str) -> tuple[str, dict[str, Any]]:
    """``[PLUGIN:]NAME[:KEY=VALUE[,KEY=VALUE...]]`` -> (``[PLUGIN:]NAME``, parameters).

    Values parse as JSON when they can (``16``, ``true``, ``0.5``), ``0x``
    hexadecimal as an int, else stay strings.
    """
    if not isinstance(spec, str):
        return spec, {}
    parts = spec.split(":")
    cut = next((i for i, p in enumerate(parts) if "=" in p), len(parts))
    name = ":".join(parts[:cut])
    if not name or "=" in name:
        raise VmapArgumentError(
            "components", f"{role}: expected [PLUGIN:]NAME[:KEY=VALUE,...]", spec
        )
    out: dict[str, Any] = {}
    for item in ":".join(parts[cut:]).split(",") if cut < len(parts) else []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise VmapArgumentError(
                "components", f"{role}={name}: parameter {item!r} is not KEY=VALUE", spec
            )
        out[key.strip()] = _option_value(raw.strip())
    return name, out


def _option_value(raw: str) -> Any:
    if raw.lower().startswith(("0x", "-0x")):
        try:
            return int(raw, 16)
        except ValueError:
            return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def check_options(offer: Offer, opts: Mapping[str, Any]) -> None:
    """Refuse parameters ``offer``'s component does not declare (naming the valid ones)."""
    declared = offer.component.params
    unknown = sorted(set(opts) - set(declared))
    if unknown:
        valid = ", ".join(f"{k} (default {v!r})" for k, v in declared.items()) or "none"
        raise VmapArgumentError(
            "components",
            f"{offer.describe()} has no parameter(s) {', '.join(unknown)}; its parameters: {valid}",
        )


def blame(exc: BaseException) -> str | None:
    """``TYPE: message`` raised inside an operation, with the component it came from.

    Walks ``exc``'s traceback for the innermost frame running a method of a
    component bound by :func:`build` and returns ``"TYPE in component ROLE=NAME
    (plugin P, distribution D V): message"``; None when no component was on
    the stack (the flow's own errors keep their message).
    """
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    offers: dict[int, Offer] = {}
    for frame in frames:
        owner = frame.f_locals.get("self")
        table = getattr(owner, "component_offers", None)
        if isinstance(table, dict):
            offers.update(table)
    if not offers:
        return None
    for frame in reversed(frames):
        offer = offers.get(id(frame.f_locals.get("self")))
        if offer is not None:
            return f"{type(exc).__name__} in component {offer.describe()}: {exc}"
    return None


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
    component_counters: bool = False,
    cache_model: bool = False,
    lock_sections: bool = False,
    debug_kernel: bool = False,
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
    keeps ``B`` as its shadow (:mod:`vmapsim.framework.mirror`).  A name may
    carry the component's parameters, ``"NAME:key=value,key=value"``
    (declared in ``Component.params``; an unknown key is refused).  A role
    the stage does not fill is refused (naming the stage's roles), except
    ``overlay``.  ``component_counters`` splits the counters per component
    (:func:`component_costs`); the totals stay exact, the flow's own counter
    writes get slower.  ``cache_model`` attaches the cache and coherence
    model (:class:`vmapsim.cost.cache.CacheModel`, the arch's default
    :class:`~vmapsim.cost.cache.CacheConfig`, one private hierarchy per CPU):
    the counters then carry hits per level, memory misses and coherence
    transfers (docs/cost-model.md); off by default (it costs time).
    ``lock_sections`` records the work inside each lock instance's critical
    sections and outside locks (:class:`vmapsim.cost.sections.LockSections`,
    ``alloc.metrics.sections``); ``vmapsim run`` and ``compare`` turn it on.
    writes get slower.  ``debug_kernel`` runs it as a debug kernel does
    (lockdep, might_sleep, with KASAN and UBSAN: :mod:`vmapsim.checking.debug_kernel`);
    the reports go to the log.
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
    if not isinstance(component_counters, bool):
        raise VmapTypeError("component_counters", "a bool", component_counters)
    if not isinstance(cache_model, bool):
        raise VmapTypeError("cache_model", "a bool", cache_model)
    if not isinstance(lock_sections, bool):
        raise VmapTypeError("lock_sections", "a bool", lock_sections)
    if not isinstance(debug_kernel, bool):
        raise VmapTypeError("debug_kernel", "a bool", debug_kernel)
    chosen: dict[str, str] = dict(st.components)
    overridden: set[str] = set()
    options: dict[str, dict[str, Any]] = {}
    for role, spec in (components or {}).items():
        if role not in ROLES:
            raise VmapArgumentError(
                "components", f"unknown role {role!r}; roles are {sorted(ROLES)}"
            )
        if spec is None:
            chosen.pop(role, None)
            continue
        if role not in st.components and role not in ADDABLE_ROLES:
            raise VmapArgumentError(
                "components",
                f"stage {st.key} has no {role!r} role to fill with {spec!r}; its roles are "
                f"{', '.join(sorted(st.components))} (`vmapsim stages` lists each stage's; "
                f"only {', '.join(sorted(ADDABLE_ROLES))} can be added to a stage)",
            )
        name, opts = split_options(role, spec)
        chosen[role] = name
        options[role] = opts
        overridden.add(role)
    offers = {role: _resolve(reg, role, name) for role, name in chosen.items()}
    for role, opts in options.items():
        for offer in offers[role]:
            check_options(offer, opts)
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
    built_by: dict[int, Offer] = {}
    for role, pair in offers.items():
        guarded = tuple(
            attrs.evolve(
                o.component,
                factory=_guarded(
                    role, o, hints.get(role), options.get(role), built_by, component_counters
                ),
            )
            for o in pair
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
        debug_kernel=debug_kernel,
    )
    if lock_sections:
        from vmapsim.cost.sections import LockSections

        alloc.metrics.sections = LockSections(alloc.metrics)
    if cache_model:
        from vmapsim.cost.cache import CacheConfig, CacheModel

        alloc.metrics.set_cache(CacheModel(nr_cpus, CacheConfig.for_arch(arch)))
    alloc.check_invariants = _blaming(alloc, offers)  # type: ignore[method-assign]
    #: id(component object) -> its registration, for :func:`blame`
    alloc.component_offers = built_by  # type: ignore[attr-defined]
    #: ``role=name`` -> registration, for :func:`component_costs`
    alloc.component_labels = {  # type: ignore[attr-defined]
        f"{role}={o.component.name}": o for role, pair in offers.items() for o in pair
    }
    return alloc


#: bytes per index node when a component does not declare ``node_size``
#: (a maple node, docs/metrics.md)
DEFAULT_NODE_SIZE = 256


def index_node_bytes(alloc: VmapAllocator) -> int:
    """Bytes of the index nodes allocated and not freed: each component's at its
    declared ``node_size`` when the counters are split per component
    (``component_counters=True``), else every node at 256 B (a maple node)."""
    m = alloc.metrics
    if not m.parts:
        return (m.node_allocs - m.node_frees) * DEFAULT_NODE_SIZE
    costs = component_costs(alloc)
    flow = costs.pop("flow", {}).get("counters", {})
    own = (flow.get("node_allocs", 0) - flow.get("node_frees", 0)) * DEFAULT_NODE_SIZE
    return own + sum(c["index_node_bytes"] for c in costs.values())


def component_costs(alloc: VmapAllocator) -> dict[str, dict[str, Any]]:
    """Per component (``role=name``): its non-zero counters and its index nodes' bytes.

    Needs an allocator built with ``component_counters=True`` (empty otherwise).
    A component that lives inside another's structure (``busy=maple-occupied``
    in the occupied tree) has that structure's work counted under the owner.
    ``flow`` holds what the allocator flow counted itself.  Index node bytes
    are ``(node_allocs - node_frees) * node_size`` (``Component.node_size``,
    default 256 B).
    """
    metrics = alloc.metrics
    labels: dict[str, Offer] = getattr(alloc, "component_labels", {})
    out: dict[str, dict[str, Any]] = {}
    for label, part in metrics.parts.items():
        counts = {k: v for k, v in part.items() if v}
        offer = labels.get(label)
        size = (offer.component.node_size if offer else None) or DEFAULT_NODE_SIZE
        nodes = part.node_allocs - part.node_frees
        out[label] = {
            "counters": counts,
            "node_size": size,
            "index_node_bytes": nodes * size,
            "own_counters": list(offer.component.counters) if offer else [],
        }
    if metrics.parts:
        own = metrics.own() if hasattr(metrics, "own") else {}
        out["flow"] = {"counters": {k: v for k, v in own.items() if v}}
    return out


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
