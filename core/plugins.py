"""Loading plugins and keeping what they register.

Plugins are modules named in the ``vmapsim`` entry-point group.  Each is
loaded behind its own boundary: a plugin that fails to import, raises from a
hook, or registers something invalid or already taken is recorded (with the
reason) and left out, and every other plugin still works.  Hooks are called
here, once per plugin, when the registry is built; nothing calls a hook while
an allocator runs (:data:`HOOK_CALLS` counts every hook call made, so a test
can prove it).
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy
from attrs import define, field, frozen

from . import hookspecs
from .descriptors import Component, Stage, Workload
from .errors import PluginError, UnknownComponentError, UnknownStageError
from .roles import ROLES

__all__ = ["HOOK_CALLS", "PluginRecord", "Registry", "get_registry", "load_registry"]

ENTRY_POINT_GROUP = "vmapsim"
DEFAULT_SERIES = "maple"

#: number of pluggy hook calls made by any registry, ever (see module doc)
HOOK_CALLS = [0]

_COMPONENT_HOOKS = {
    "vmapsim_index_components": frozenset({"free", "occupied", "busy"}),
    "vmapsim_coalescing_components": frozenset({"coalesce"}),
    "vmapsim_lazy_purge_components": frozenset({"lazy"}),
    "vmapsim_overlay_components": frozenset({"overlay"}),
}


@frozen
class PluginRecord:
    """What happened to one plugin: where it came from, what it gave, or why it failed."""

    name: str
    distribution: str
    module: str
    error: str | None = None
    components: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@define
class Registry:
    """Components keyed by (role, name), stages by ``series:number``, workloads by name."""

    components: dict[tuple[str, str], Component] = field(factory=dict)
    component_origin: dict[tuple[str, str], str] = field(factory=dict)
    stages: dict[str, Stage] = field(factory=dict)
    workloads: dict[str, Workload] = field(factory=dict)
    plugins: list[PluginRecord] = field(factory=list)

    # -- lookups ---------------------------------------------------------
    def component(self, role: str, name: str) -> Component:
        """The component ``name`` registered for ``role``."""
        if role not in ROLES:
            raise UnknownComponentError(f"role {role!r}: unknown; roles are {sorted(ROLES)}")
        try:
            return self.components[(role, name)]
        except KeyError:
            known = sorted(n for r, n in self.components if r == role)
            raise UnknownComponentError(
                f"component {name!r} is not registered for role {role!r}; "
                f"registered: {', '.join(known) or 'none'}"
            ) from None

    def stage(self, spec: int | str) -> Stage:
        """Resolve ``7``, ``"7"`` or ``"maple:7"`` to a stage."""
        key = self.stage_key(spec)
        try:
            return self.stages[key]
        except KeyError:
            raise UnknownStageError(
                f"stage {spec!r} is not registered; stages: {', '.join(self.stage_keys())}"
            ) from None

    @staticmethod
    def stage_key(spec: int | str) -> str:
        if isinstance(spec, bool) or not isinstance(spec, int | str):
            raise UnknownStageError(f"stage: must be an int or 'series:number' (got {spec!r})")
        text = str(spec).strip()
        series, _, number = text.rpartition(":")
        series = series or DEFAULT_SERIES
        if not number.isdigit():
            raise UnknownStageError(f"stage: must be a number or 'series:number' (got {spec!r})")
        return f"{series}:{int(number)}"

    def stage_keys(self) -> list[str]:
        return [s.key for s in sorted(self.stages.values(), key=lambda s: (s.series, s.number))]

    def workload(self, name: str) -> Workload:
        try:
            return self.workloads[name]
        except KeyError:
            raise LookupError(
                f"workload {name!r} is not registered; workloads: {', '.join(sorted(self.workloads))}"
            ) from None

    # -- registration ------------------------------------------------------
    def add_plugin(self, name: str, distribution: str, plugin: ModuleType | object) -> PluginRecord:
        """Call ``plugin``'s hooks and register what they return, all or nothing."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        try:
            found = _collect(plugin)
            comps, stages, workloads = self._validate(found)
        except Exception as exc:
            record = PluginRecord(name, distribution, module, error=f"{type(exc).__name__}: {exc}")
            self.plugins.append(record)
            return record
        for comp in comps:
            for role in comp.roles:
                self.components[(role, comp.name)] = comp
                self.component_origin[(role, comp.name)] = name
        for st in stages:
            self.stages[st.key] = st
        for wl in workloads:
            self.workloads[wl.name] = wl
        record = PluginRecord(
            name,
            distribution,
            module,
            components=tuple(f"{r}={c.name}" for c in comps for r in sorted(c.roles)),
            stages=tuple(s.key for s in stages),
            workloads=tuple(w.name for w in workloads),
        )
        self.plugins.append(record)
        return record

    def _validate(
        self, found: dict[str, list[Any]]
    ) -> tuple[list[Component], list[Stage], list[Workload]]:
        comps: list[Component] = []
        seen: set[tuple[str, str]] = set()
        for hook, allowed in _COMPONENT_HOOKS.items():
            for comp in found.get(hook, []):
                if not isinstance(comp, Component):
                    raise PluginError(f"{hook} returned {comp!r}, not a vmapsim.Component")
                if not comp.roles <= allowed:
                    raise PluginError(
                        f"{hook} returned component {comp.name!r} for role(s) "
                        f"{sorted(comp.roles - allowed)}; this hook registers {sorted(allowed)}"
                    )
                for role in comp.roles:
                    key = (role, comp.name)
                    if key in self.components or key in seen:
                        owner = self.component_origin.get(key, "this plugin")
                        raise PluginError(
                            f"duplicate component {comp.name!r} for role {role!r} "
                            f"(already registered by {owner})"
                        )
                    seen.add(key)
                comps.append(comp)
        stages: list[Stage] = []
        for st in found.get("vmapsim_stages", []):
            if not isinstance(st, Stage):
                raise PluginError(f"vmapsim_stages returned {st!r}, not a vmapsim.Stage")
            if st.key in self.stages or any(s.key == st.key for s in stages):
                raise PluginError(f"duplicate stage {st.key}")
            stages.append(st)
        workloads: list[Workload] = []
        for wl in found.get("vmapsim_workloads", []):
            if not isinstance(wl, Workload):
                raise PluginError(f"vmapsim_workloads returned {wl!r}, not a vmapsim.Workload")
            if wl.name in self.workloads or any(w.name == wl.name for w in workloads):
                raise PluginError(f"duplicate workload {wl.name!r}")
            workloads.append(wl)
        return comps, stages, workloads


def _collect(plugin: ModuleType | object) -> dict[str, list[Any]]:
    """Call each hook of one plugin, through a plugin manager of its own."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)

    def _count(_name: str, _impls: object, _kwargs: object) -> None:
        HOOK_CALLS[0] += 1

    pm.add_hookcall_monitoring(_count, lambda *_: None)
    pm.register(plugin)
    pm.check_pending()  # a misspelled hook name fails the plugin instead of doing nothing
    out: dict[str, list[Any]] = {}
    for hook in (*_COMPONENT_HOOKS, "vmapsim_stages", "vmapsim_workloads"):
        results = getattr(pm.hook, hook)()
        items: list[Any] = []
        for r in results:
            if r is None:
                continue
            if isinstance(r, Component | Stage | Workload):
                items.append(r)
            else:
                items.extend(r if isinstance(r, list | tuple) else [r])
        out[hook] = items
    return out


def load_registry(
    *, entry_points: bool = True, plugins: Iterable[tuple[str, object]] = ()
) -> Registry:
    """Build a registry: vmapsim's own series, the entry-point plugins, then ``plugins``.

    ``plugins`` are extra ``(name, module_or_object)`` pairs (tests, notebooks).
    """
    from . import builtin

    reg = Registry()
    reg.add_plugin("vmapsim", "vmapsim", builtin)
    if entry_points:
        for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                module = ep.load()
            except Exception as exc:
                reg.plugins.append(
                    PluginRecord(ep.name, dist, ep.value, error=f"{type(exc).__name__}: {exc}")
                )
                continue
            reg.add_plugin(ep.name, dist, module)
    for name, module in plugins:
        reg.add_plugin(name, "(local)", module)
    return reg


_DEFAULT: list[Registry] = []


def get_registry() -> Registry:
    """The process-wide registry of installed plugins, built on first use."""
    if not _DEFAULT:
        _DEFAULT.append(load_registry())
    return _DEFAULT[0]
