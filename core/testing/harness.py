"""Building one component on its own, as the allocator would.

:func:`make_component` resolves a name (``name`` or ``plugin:name``) through
a registry and calls its factory with a :class:`~vmapsim.ComponentContext`
like the one :func:`vmapsim.build` passes (fresh counters, a log, the
stage's parameters), behind the same boundary: a factory that raises or an
object missing protocol methods fails with a
:class:`~vmapsim.ComponentError` naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from attrs import define, field

from vmapsim.checking.faults import FailslabConfig, FaultInjector
from vmapsim.cost.counters import Counters
from vmapsim.errors import VmapError
from vmapsim.framework.api import _guarded, blame, check_options, split_options
from vmapsim.framework.descriptors import ComponentContext, Stage
from vmapsim.framework.registry import Offer, Registry
from vmapsim.kernel.constants import arch_by_name

__all__ = ["Built", "flow_call", "kit_offer", "make_component", "stage_params"]


@define
class Built:
    """A component built on its own: the object, its counters and its log."""

    obj: Any
    counters: Counters
    log: list[str] = field(factory=list)
    ctx: ComponentContext | None = None


def stage_params(stage: Stage, arch: str = "x86_64") -> dict[str, Any]:
    """The ``ctx.params`` a stage's allocator gives its components."""
    return {
        **stage.features,
        "layout": stage.layout,
        "arch": arch_by_name(arch),
        "vmap_zone_size": 1,  # one vmap node
    }


def kit_offer(registry: Registry, role: str, spec: str) -> Offer:
    """The registration ``spec`` (``[PLUGIN:]NAME[:KEY=VALUE,...]``) selects for ``role``."""
    name, opts = split_options(role, spec)
    offer = registry.offer(role, name)
    check_options(offer, opts)
    return offer


def make_component(
    registry: Registry,
    role: str,
    spec: str,
    *,
    stage: Stage,
    node_id: int | None = None,
    shared: dict[str, Any] | None = None,
    counters: Counters | None = None,
    log: list[str] | None = None,
) -> Built:
    """Build ``spec`` (``[PLUGIN:]NAME[:KEY=VALUE,...]``) for ``role`` with the
    context ``stage``'s allocator would give it."""
    name, opts = split_options(role, spec)
    offer = registry.offer(role, name)
    check_options(offer, opts)
    counters = counters if counters is not None else Counters()
    log = log if log is not None else []
    ctx = ComponentContext(
        role=role,
        node_id=node_id,
        counters=counters,
        warn=log.append,
        nr_vmap_nodes=1,
        params=stage_params(stage),
        faults=FaultInjector(FailslabConfig(seed=0)),
        shared=shared if shared is not None else {},
    )
    obj = _guarded(role, offer, None, opts)(ctx)
    return Built(obj, counters, log, ctx)


T = TypeVar("T")


def flow_call(what: str, components: Mapping[str, str], fn: Callable[[], T]) -> T:
    """Run ``fn`` (allocator operations); an exception other than a kernel error
    fails with a message naming the call, the components under test and, when a
    component raised it, that component -- not as a raw error from the flow."""
    try:
        return fn()
    except VmapError:
        raise
    except Exception as exc:
        swapped = ", ".join(f"{r}={n}" for r, n in sorted(components.items()))
        where = blame(exc)
        cause = (
            f"{where}"
            if where
            else f"the flow raised {type(exc).__name__}: {exc} (a component answered "
            "something the flow cannot use: see the role's contract tests)"
        )
        raise AssertionError(f"{what} with {swapped}: {cause}") from exc
