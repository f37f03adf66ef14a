"""What plugins register: components, stages and workloads.

These are frozen, validated data objects.  A plugin returns lists of them
from its hook implementations (:mod:`vmapsim.framework.hookspecs`); the registry
(:mod:`vmapsim.framework.registry`) checks them and keys them by name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from attrs import define, field, frozen, validators

from vmapsim.checking.faults import FaultInjector
from vmapsim.framework.roles import FREE_SPACE_ROLES, ROLES
from vmapsim.kernel.layout import StructLayout

if TYPE_CHECKING:
    from vmapsim.cost.counters import Counters

__all__ = ["Component", "ComponentContext", "Stage", "Workload"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def _valid_name(_inst: object, attr: Any, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValueError(
            f"{attr.name}: must be lower-case letters, digits, '_', '-' or '.', "
            f"starting with a letter or digit (got {value!r})"
        )


def _valid_roles(_inst: object, attr: Any, value: frozenset[str]) -> None:
    if not value:
        raise ValueError(f"{attr.name}: must name at least one role")
    unknown = set(value) - set(ROLES)
    if unknown:
        raise ValueError(
            f"{attr.name}: unknown role(s) {sorted(unknown)}; roles are {sorted(ROLES)}"
        )


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@define(slots=True, eq=False)
class ComponentContext:
    """What a component factory receives when an allocator is built.

    ``shared`` is one dict per allocator, so a plugin whose component fills
    several roles (or every vmap node) can hand out one object.
    """

    role: str
    node_id: int | None
    counters: Counters
    warn: Callable[[str], None]
    nr_vmap_nodes: int
    params: Mapping[str, Any]
    faults: FaultInjector
    shared: dict[str, Any]
    #: the component's own parameters: its declared :attr:`Component.params`
    #: defaults, overridden by ``--with ROLE=NAME:key=value`` /
    #: ``build(components={role: "NAME:key=value"})``
    options: Mapping[str, Any] = field(factory=dict)
    #: the allocator's lock calls (``spin_lock(name, instance)`` /
    #: ``spin_unlock``, ``rcu_read_lock``/``rcu_read_unlock``,
    #: ``preempt_disable(cpu)``/``preempt_enable(cpu)``;
    #: ``vmapsim.kernel.locking.LockingMixin``): a component takes the
    #: kernel's locks through them so that lock sections see the work inside.
    #: None when a component is built on its own (the kit, unit tests).
    locking: Any = None
    #: the debug kernel's ``might_alloc(can_block, what)`` for a component's own
    #: blocking allocations (``mas_alloc_nodes``); None when it is off
    might_alloc: Callable[[bool, str], None] | None = None


def _valid_node_size(_inst: object, attr: Any, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(f"{attr.name}: must be None or a positive int of bytes (got {value!r})")


def _valid_counter_names(_inst: object, attr: Any, value: tuple[str, ...]) -> None:
    from vmapsim.cost.counters import COUNTER_NAMES, LOCK_PREFIX

    for name in value:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"{attr.name}: {name!r} must be lower-case letters, digits, '_', '-' or '.'"
            )
        if name in COUNTER_NAMES or name.startswith(LOCK_PREFIX):
            raise ValueError(
                f"{attr.name}: {name!r} is one of vmapsim's own counters; a component's "
                "own counters need names of their own (prefix them with the component's)"
            )


@frozen
class Component:
    """A named factory that fills one or more roles.

    ``params``: the component's parameters and their defaults (the factory
    reads ``ctx.options``; ``--with ROLE=NAME:key=value`` sets them, an
    undeclared key is refused).  ``node_size``: bytes per index node the
    component allocates (counted by ``node_allocs - node_frees``; None: the
    maple node's 256 B).  ``counters``: names of the component's own
    counters, added to with ``ctx.counters.add(name, n)`` and reported beside
    vmapsim's.
    """

    name: str = field(validator=_valid_name)
    roles: frozenset[str] = field(converter=frozenset, validator=_valid_roles)
    factory: Callable[[ComponentContext], object] = field(validator=validators.is_callable())
    summary: str = ""
    params: Mapping[str, Any] = field(factory=dict, converter=_frozen_mapping, kw_only=True)
    node_size: int | None = field(default=None, validator=_valid_node_size, kw_only=True)
    counters: tuple[str, ...] = field(
        default=(), converter=tuple, validator=_valid_counter_names, kw_only=True
    )


@frozen
class Stage:
    """One stage of a series: the tree after patch ``number`` (0 = before the series).

    ``components`` maps each role to a component name (``"A+B"``: ``A``
    answers, ``B`` is a shadow kept in step, :mod:`vmapsim.framework.mirror`); ``layout`` is the
    stage's ``struct vmap_area``; ``features`` are flow parameters the stage
    switches on.
    """

    number: int = field(validator=validators.ge(0))
    title: str = field(validator=validators.min_len(1))
    components: Mapping[str, str] = field(converter=_frozen_mapping)
    layout: StructLayout = field(validator=validators.instance_of(StructLayout))
    features: Mapping[str, Any] = field(factory=dict, converter=_frozen_mapping)
    series: str = field(default="maple", validator=_valid_name)
    summary: str = ""

    @components.validator
    def _check_components(self, _attr: Any, value: Mapping[str, str]) -> None:
        unknown = set(value) - set(ROLES)
        if unknown:
            raise ValueError(f"components: unknown role(s) {sorted(unknown)}")
        missing = {"busy", "lazy"} - set(value)
        if missing:
            raise ValueError(f"components: stage must fill role(s) {sorted(missing)}")
        if not FREE_SPACE_ROLES & set(value):
            raise ValueError("components: stage must fill 'free', 'occupied' or both")
        if "free" in value and "coalesce" not in value:
            raise ValueError("components: a stage with a 'free' index must fill 'coalesce'")

    @property
    def key(self) -> str:
        """``series:number``, the stage's unique name."""
        return f"{self.series}:{self.number}"


@frozen
class Workload:
    """A named, seeded workload: ``run(allocator, **params)`` returns a report."""

    name: str = field(validator=_valid_name)
    summary: str
    run: Callable[..., Any] = field(validator=validators.is_callable())
