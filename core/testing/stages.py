"""Where the kit runs a component: the stages at which its role can really be swapped.

A stage fills a role, but swapping that role alone is not always possible:

* ``occupied``: from stage 7 the busy index lives inside the stage's occupied
  index (its busy component carries the documented ``occupies = True``
  marker, ``busy=maple-occupied``), so a stand-alone occupied index cannot
  replace it alone.  Default: the stages that fill ``occupied`` and whose own
  busy index does not occupy (maple series 2-6).
* ``busy``: a stand-alone busy index can replace any stage's (the flow then
  occupies the range itself).  A component that fills both ``busy`` and
  ``occupied`` (its busy index lives in its own occupied index) runs where
  the stage's own busy index occupies (7-12), with the same component
  swapped in as ``occupied`` too (:func:`default_with`).
* every other role: every stage that fills it.

A test class can always name its own ``stages`` and ``with_components``.
"""

from __future__ import annotations

from vmapsim.framework.api import build
from vmapsim.framework.registry import Registry
from vmapsim.framework.roles import ROLES

from .harness import kit_offer

__all__ = ["default_with", "kit_stages", "stage_busy_occupies"]

_OCCUPIES: dict[tuple[int, str], bool] = {}


def stage_busy_occupies(registry: Registry, key: str) -> bool:
    """Does ``key``'s own busy index live in its occupied index (``occupies``)?"""
    cache_key = (id(registry), key)
    if cache_key not in _OCCUPIES:
        stage = registry.stage(key)
        if "occupied" not in stage.components:
            _OCCUPIES[cache_key] = False
        else:
            a = build(key, registry=registry)
            _OCCUPIES[cache_key] = bool(getattr(a.vmap_nodes[0].busy, "occupies", False))
    return _OCCUPIES[cache_key]


def _lives_in_occupied(registry: Registry, role: str, spec: str) -> bool:
    """A busy component that also fills ``occupied`` (its busy index is a view of it)."""
    if role != "busy":
        return False
    try:
        return "occupied" in kit_offer(registry, role, spec).component.roles
    except (LookupError, ValueError):  # not in this registry, or bad parameters
        return False


def kit_stages(registry: Registry, role: str, spec: str) -> list[str]:
    """The stage keys the kit runs ``spec`` for ``role`` at by default (module doc)."""
    if role not in ROLES:
        raise ValueError(f"role: unknown {role!r}; roles are {sorted(ROLES)}")
    keys = [s.key for s in registry.stages_with_role(role)]
    if role == "occupied":
        return [k for k in keys if not stage_busy_occupies(registry, k)]
    if _lives_in_occupied(registry, role, spec):
        return [k for k in keys if stage_busy_occupies(registry, k)]
    return keys


def default_with(registry: Registry, role: str, spec: str) -> dict[str, str]:
    """The other roles the kit swaps in beside ``spec`` by default."""
    if role == "free":
        return {"coalesce": "generic"}
    if _lives_in_occupied(registry, role, spec):
        return {"occupied": spec}
    return {}
