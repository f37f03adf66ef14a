"""Loading plugins and keeping what they register.

Plugins are modules named in the ``vmapsim`` entry-point group.  Each is
loaded behind its own boundary, and every registration (one component, stage
or workload) is accepted or rejected on its own:

* a plugin that fails to import is recorded as failed;
* a hook that raises, returns None or returns something that is not a list
  of descriptors, a hook implementation whose name is not a vmapsim hook
  (pluggy's validation), a component for a role its hook does not register,
  and a name the plugin may not take, are recorded as problems of that
  plugin, and everything else it registered is kept.

**Names.**  Names registered by the built-in plugins (those of distribution
``vmapsim``: its own registrations, ``rbtree`` and ``mapletree``) are
reserved: a third-party plugin registering one is the one rejected.  Two
third-party plugins may ship the same component name for a role; both are
kept, the plain name is then ambiguous (an error lists both) and the
qualified form ``PLUGIN:NAME`` chooses one.  A stage or workload two
third-party plugins both register is unusable until one is disabled.
None of this depends on the order in which entry points are found.

``VMAPSIM_DISABLE_PLUGINS=a,b`` skips the named plugins (entry-point or
distribution names) before they are imported.  Strict mode
(``VMAPSIM_STRICT_PLUGINS=1`` or ``load_registry(strict=True)``; the CLI's
``--strict-plugins``) turns any plugin problem into a :class:`PluginError`.

Hooks are called here, once per plugin, when the registry is built; nothing
calls a hook while an allocator runs (:data:`HOOK_CALLS` counts every hook
call made, so a test can prove it).
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import os
import re
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import pluggy
from attrs import define, field, frozen

from vmapsim.errors import (
    AmbiguousComponentError,
    PluginError,
    PluginWarning,
    UnknownComponentError,
    UnknownStageError,
)
from vmapsim.framework import hookspecs
from vmapsim.framework.descriptors import Component, Stage, Workload
from vmapsim.framework.roles import ROLES

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "HOOK_CALLS",
    "STRICT_ENV",
    "Offer",
    "PluginRecord",
    "Registry",
    "get_registry",
    "load_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "vmapsim"
DEFAULT_SERIES = "maple"
#: the distribution whose plugins are built in (their names are reserved)
BUILTIN_DISTRIBUTION = "vmapsim"
DISABLE_ENV = "VMAPSIM_DISABLE_PLUGINS"
STRICT_ENV = "VMAPSIM_STRICT_PLUGINS"
#: where every "not registered" error sends the reader
SEE_PLUGINS = "run `vmapsim plugins` to see what loaded and what failed"

#: number of pluggy hook calls made by any registry, ever (see module doc)
HOOK_CALLS = [0]

_DESCRIPTOR_HOOKS = ("vmapsim_stages", "vmapsim_workloads")


def component_hooks() -> dict[str, frozenset[str]]:
    """Hook name -> the roles it registers, from :data:`vmapsim.framework.roles.ROLES`."""
    out: dict[str, set[str]] = {}
    for role, hook in ROLES.items():
        out.setdefault(hook, set()).add(role)
    return {hook: frozenset(roles) for hook, roles in out.items()}


def _norm(dist: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", dist).lower()


@frozen
class Offer:
    """One component one plugin registered for one role."""

    role: str
    plugin: str
    distribution: str
    version: str
    builtin: bool
    component: Component

    @property
    def qualified(self) -> str:
        """``plugin:name``: the unambiguous spelling (``--with ROLE=plugin:name``)."""
        return f"{self.plugin}:{self.component.name}"

    def describe(self) -> str:
        """``free=sorted (plugin sortedfree, distribution vmapsim-sortedfree 0.1.0)``."""
        version = f" {self.version}" if self.version else ""
        return (
            f"{self.role}={self.component.name} (plugin {self.plugin}, "
            f"distribution {self.distribution}{version})"
        )


@frozen
class PluginRecord:
    """What happened to one plugin: where it came from, what it gave, what went wrong.

    ``error`` is set when nothing of the plugin could be registered (it did
    not import); ``problems`` lists registrations that were rejected, each
    with its reason, while the rest of the plugin was kept.
    """

    name: str
    distribution: str
    module: str
    error: str | None = None
    components: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()
    version: str = ""
    builtin: bool = False
    problems: tuple[str, ...] = ()
    disabled: bool = False

    @property
    def ok(self) -> bool:
        """Loaded with nothing rejected (a disabled plugin is not a failure)."""
        return self.error is None and not self.problems

    @property
    def status(self) -> str:
        """``ok``, ``partial`` (some registrations rejected), ``failed`` or ``disabled``."""
        if self.disabled:
            return "disabled"
        if self.error is not None:
            return "failed"
        if not self.problems:
            return "ok"
        registered = self.components or self.stages or self.workloads
        return "partial" if registered else "failed"

    def reasons(self) -> list[str]:
        """Every failure of this plugin, one line each."""
        return ([self.error] if self.error else []) + list(self.problems)

    def as_dict(self) -> dict[str, Any]:
        by_role: dict[str, list[str]] = {}
        for item in self.components:
            role, _, name = item.partition("=")
            by_role.setdefault(role, []).append(name)
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "builtin": self.builtin,
            "status": self.status,
            "components": by_role,
            "stages": list(self.stages),
            "workloads": list(self.workloads),
            "failures": self.reasons(),
        }


@define
class _Loaded:
    """A plugin between import and registration."""

    name: str
    distribution: str
    version: str
    module: str
    builtin: bool
    found: dict[str, list[Any]] = field(factory=dict)
    problems: list[str] = field(factory=list)


@define
class Registry:
    """Components keyed by (role, name), stages by ``series:number``, workloads by name."""

    offers: dict[tuple[str, str], list[Offer]] = field(factory=dict)
    stages: dict[str, Stage] = field(factory=dict)
    workloads: dict[str, Workload] = field(factory=dict)
    plugins: list[PluginRecord] = field(factory=list)
    #: stage keys / workload names two third-party plugins both registered -> plugins
    contested_stages: dict[str, list[str]] = field(factory=dict)
    contested_workloads: dict[str, list[str]] = field(factory=dict)
    _warned: bool = False
    _named_owner: dict[tuple[str, str], tuple[str, str, bool]] = field(factory=dict)

    # -- views -------------------------------------------------------------
    @property
    def components(self) -> dict[tuple[str, str], Component]:
        """Every (role, name) that resolves without qualification."""
        return {k: v[0].component for k, v in self.offers.items() if len(v) == 1}

    @property
    def component_origin(self) -> dict[tuple[str, str], str]:
        """(role, name) -> the plugin that registered it (unambiguous names only)."""
        return {k: v[0].plugin for k, v in self.offers.items() if len(v) == 1}

    def failures(self) -> list[PluginRecord]:
        """Records of plugins that failed or had registrations rejected."""
        return [r for r in self.plugins if not r.ok]

    def failure_summary(self) -> str | None:
        """One line naming every plugin that failed to load, or None."""
        bad = self.failures()
        if not bad:
            return None
        names = ", ".join(f"{r.name} ({r.distribution}): {r.reasons()[0]}" for r in bad)
        return (
            f"{len(bad)} plugin(s) failed to load or were partly rejected: {names}; {SEE_PLUGINS}"
        )

    def warn_failures_once(self) -> None:
        """``warnings.warn`` the failure summary, the first time only (per registry)."""
        if self._warned:
            return
        self._warned = True
        summary = self.failure_summary()
        if summary:
            warnings.warn(summary, PluginWarning, stacklevel=3)

    def names(self, role: str) -> list[str]:
        """Every spelling that selects a component for ``role`` (plain or qualified)."""
        out = []
        for (r, name), offers in sorted(self.offers.items()):
            if r != role:
                continue
            if len(offers) == 1:
                out.append(name)
            else:
                out.extend(o.qualified for o in offers)
        return out

    # -- lookups ---------------------------------------------------------
    def offer(self, role: str, spec: str) -> Offer:
        """The registration ``spec`` (``name`` or ``plugin:name``) selects for ``role``."""
        if role not in ROLES:
            raise UnknownComponentError(f"role {role!r}: unknown; roles are {sorted(ROLES)}")
        if not isinstance(spec, str):
            raise UnknownComponentError(
                f"component for role {role!r}: must be a name or 'plugin:name' (got {spec!r})"
            )
        plugin, sep, name = spec.partition(":")
        if not sep:
            plugin, name = "", spec
        offers = self.offers.get((role, name), [])
        if plugin:
            offers = [o for o in offers if o.plugin == plugin]
        if len(offers) == 1:
            return offers[0]
        if len(offers) > 1:
            choices = ", ".join(
                f"{o.qualified} (distribution {o.distribution} {o.version})" for o in offers
            )
            raise AmbiguousComponentError(
                f"component {name!r} for role {role!r} is registered by more than one plugin: "
                f"{choices}; choose one with --with {role}=PLUGIN:{name} "
                f"(build(components={{{role!r}: 'PLUGIN:{name}'}}))"
            )
        raise UnknownComponentError(self._not_registered(role, spec))

    def component(self, role: str, spec: str) -> Component:
        """The component ``spec`` (``name`` or ``plugin:name``) selects for ``role``."""
        return self.offer(role, spec).component

    def _not_registered(self, role: str, spec: str) -> str:
        known = self.names(role)
        msg = (
            f"component {spec!r} is not registered for role {role!r}; "
            f"registered: {', '.join(known) or 'none'}"
        )
        close = difflib.get_close_matches(spec, known, n=1)
        if close:
            msg += f" (did you mean {close[0]!r}?)"
        bad = [r for r in self.plugins if r.status in ("failed", "partial", "disabled")]
        if bad:
            msg += "; not loaded: " + ", ".join(f"{r.name} ({r.status})" for r in bad)
        return f"{msg}; {SEE_PLUGINS}"

    def stage(self, spec: int | str) -> Stage:
        """Resolve ``7``, ``"7"`` or ``"maple:7"`` to a stage."""
        key = self.stage_key(spec)
        if key in self.contested_stages:
            raise UnknownStageError(
                f"stage {key} is registered by more than one plugin "
                f"({', '.join(self.contested_stages[key])}); disable all but one with "
                f"{DISABLE_ENV}=NAME"
            )
        try:
            return self.stages[key]
        except KeyError:
            raise UnknownStageError(
                f"stage {spec!r} is not registered; stages: {', '.join(self.stage_keys())}; "
                f"{SEE_PLUGINS}"
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

    def stages_with_role(self, role: str) -> list[Stage]:
        """Every registered stage that fills ``role``, in series and number order."""
        return [self.stages[k] for k in self.stage_keys() if role in self.stages[k].components]

    def workload(self, name: str) -> Workload:
        if name in self.contested_workloads:
            raise LookupError(
                f"workload {name!r} is registered by more than one plugin "
                f"({', '.join(self.contested_workloads[name])}); disable all but one with "
                f"{DISABLE_ENV}=NAME"
            )
        try:
            return self.workloads[name]
        except KeyError:
            raise LookupError(
                f"workload {name!r} is not registered; workloads: "
                f"{', '.join(sorted(self.workloads))}; {SEE_PLUGINS}"
            ) from None

    # -- registration ------------------------------------------------------
    def add_plugin(
        self,
        name: str,
        distribution: str,
        plugin: ModuleType | object,
        *,
        version: str = "",
        builtin: bool = False,
    ) -> PluginRecord:
        """Call ``plugin``'s hooks and register what they return (one plugin at a time)."""
        loaded = _load_hooks(name, distribution, version, plugin, builtin)
        return self._register([loaded])[0]

    def _register(self, batch: list[_Loaded]) -> list[PluginRecord]:
        """Register a batch: built-in plugins first, so their names are reserved."""
        records: dict[int, PluginRecord] = {}
        ordered = sorted(enumerate(batch), key=lambda p: (not p[1].builtin, p[1].name))
        for idx, lp in ordered:
            records[idx] = self._register_one(lp)
        out = [records[i] for i in range(len(batch))]
        self.plugins.extend(out)
        return out

    def _owner(self, key: tuple[str, str]) -> Offer | None:
        return next((o for o in self.offers.get(key, []) if o.builtin), None)

    def _register_one(self, lp: _Loaded) -> PluginRecord:
        problems = list(lp.problems)
        comps: list[str] = []
        for hook, allowed in component_hooks().items():
            for comp in lp.found.get(hook, []):
                if not isinstance(comp, Component):
                    problems.append(
                        f"hook {hook} returned {comp!r} ({type(comp).__name__}), "
                        "not a vmapsim.Component"
                    )
                    continue
                if not comp.roles <= allowed:
                    wrong = sorted(comp.roles - allowed)
                    where = ", ".join(f"{r}: {ROLES[r]}" for r in wrong)
                    problems.append(
                        f"hook {hook} returned component {comp.name!r} for role(s) {wrong}; "
                        f"this hook registers {sorted(allowed)} (register {where})"
                    )
                    continue
                for role in sorted(comp.roles):
                    key = (role, comp.name)
                    owner = self._owner(key)
                    if any(o.plugin == lp.name for o in self.offers.get(key, [])):
                        problems.append(
                            f"{role}={comp.name}: registered twice by this plugin "
                            "(the second is rejected)"
                        )
                        continue
                    if owner is not None:
                        problems.append(
                            f"{role}={comp.name}: the name is reserved by built-in plugin "
                            f"{owner.plugin} (distribution {owner.distribution}); "
                            "choose another name"
                        )
                        continue
                    offer = Offer(role, lp.name, lp.distribution, lp.version, lp.builtin, comp)
                    self.offers.setdefault(key, []).append(offer)
                    comps.append(f"{role}={comp.name}")
        stages = self._register_named(
            lp, problems, "vmapsim_stages", Stage, self.stages, self.contested_stages, "key"
        )
        workloads = self._register_named(
            lp, problems, "vmapsim_workloads", Workload, self.workloads, self.contested_workloads
        )
        return PluginRecord(
            lp.name,
            lp.distribution,
            lp.module,
            components=tuple(comps),
            stages=tuple(stages),
            workloads=tuple(workloads),
            version=lp.version,
            builtin=lp.builtin,
            problems=tuple(problems),
        )

    def _register_named(
        self,
        lp: _Loaded,
        problems: list[str],
        hook: str,
        kind: type,
        table: dict[str, Any],
        contested: dict[str, list[str]],
        attr: str = "name",
    ) -> list[str]:
        """Register stages or workloads: built-in keys reserved, third-party clashes contested."""
        what = kind.__name__.lower()
        accepted: list[str] = []
        for item in lp.found.get(hook, []):
            if not isinstance(item, kind):
                problems.append(
                    f"hook {hook} returned {item!r} ({type(item).__name__}), "
                    f"not a vmapsim.{kind.__name__}"
                )
                continue
            key = getattr(item, attr)
            if key in accepted:
                problems.append(f"{what} {key}: registered twice by this plugin")
                continue
            holder = self._named_owner.get((what, key))
            if holder is not None:
                h_name, h_dist, h_builtin = holder
                if h_builtin:
                    problems.append(
                        f"{what} {key}: reserved by built-in plugin {h_name} "
                        f"(distribution {h_dist}); choose another "
                        + ("series name" if what == "stage" else "name")
                    )
                    continue
                # two third-party plugins: neither wins by load order
                contested.setdefault(key, [h_name]).append(lp.name)
                table.pop(key, None)
                accepted.append(key)
                continue
            self._named_owner[(what, key)] = (lp.name, lp.distribution, lp.builtin)
            table[key] = item
            accepted.append(key)
        return accepted


def _load_hooks(
    name: str, distribution: str, version: str, plugin: ModuleType | object, builtin: bool
) -> _Loaded:
    """Call each hook of one plugin, through a plugin manager of its own."""
    module = getattr(plugin, "__name__", type(plugin).__name__)
    lp = _Loaded(name, distribution, version, module, builtin)
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)

    def _count(_name: str, _impls: object, _kwargs: object) -> None:
        HOOK_CALLS[0] += 1

    pm.add_hookcall_monitoring(_count, lambda *_: None)
    try:
        pm.register(plugin)
    except Exception as exc:  # pluggy.PluginValidationError: bad hook signature
        lp.problems.append(f"{type(exc).__name__}: {exc}")
        return lp
    known = sorted(n for n in dir(hookspecs) if n.startswith("vmapsim_"))
    for hook_name in sorted(vars(pm.hook)):
        caller = getattr(pm.hook, hook_name)
        if caller.spec is None and caller.get_hookimpls():
            hint = difflib.get_close_matches(hook_name, known, n=1)
            mean = f" (did you mean {hint[0]}?)" if hint else ""
            lp.problems.append(
                f"hook implementation {hook_name} is not a vmapsim hook{mean}; "
                f"hooks: {', '.join(known)}"
            )
    for hook in (*component_hooks(), *_DESCRIPTOR_HOOKS):
        caller = getattr(pm.hook, hook)
        if not caller.get_hookimpls():
            continue
        try:
            results = caller()
        except Exception as exc:
            lp.problems.append(f"hook {hook} raised {type(exc).__name__}: {exc}")
            continue
        if not results:  # pluggy drops None results
            lp.problems.append(
                f"hook {hook} returned None; return a list of descriptors ([] for none)"
            )
            continue
        items: list[Any] = []
        for r in results:
            if isinstance(r, list | tuple):
                items.extend(r)
            else:
                lp.problems.append(
                    f"hook {hook} returned {r!r} ({type(r).__name__}), not a list of "
                    + ("vmapsim.Component" if hook in component_hooks() else "descriptors")
                )
        lp.found[hook] = items
    return lp


def _env_names(value: str | None) -> set[str]:
    return {n.strip() for n in (value or "").split(",") if n.strip()}


def _env_strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _vmapsim_version() -> str:
    try:
        return md.version(BUILTIN_DISTRIBUTION)
    except md.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "?"


def load_registry(
    *,
    entry_points: bool | Iterable[md.EntryPoint] = True,
    plugins: Iterable[tuple[str, object]] = (),
    disabled: Iterable[str] | None = None,
    strict: bool | None = None,
) -> Registry:
    """Build a registry: vmapsim's own registrations, entry-point plugins, then ``plugins``.

    ``entry_points`` is True (the installed ``vmapsim`` group), False, or an
    explicit list of :class:`importlib.metadata.EntryPoint` (tests).
    ``plugins`` are extra ``(name, module_or_object)`` pairs (tests,
    notebooks), treated as third-party, distribution ``(local)``.
    ``disabled`` (default: ``$VMAPSIM_DISABLE_PLUGINS``) names plugins or
    distributions to skip before import.  ``strict`` (default:
    ``$VMAPSIM_STRICT_PLUGINS``) raises :class:`PluginError` listing every
    failure instead of recording them.
    """
    from . import builtin as builtin_module

    off = set(disabled) if disabled is not None else _env_names(os.environ.get(DISABLE_ENV))
    strict = _env_strict() if strict is None else strict
    reg = Registry()
    batch = [
        _load_hooks(
            "vmapsim", BUILTIN_DISTRIBUTION, _vmapsim_version(), builtin_module, builtin=True
        )
    ]
    skipped: list[PluginRecord] = []
    if entry_points is True:
        eps: list[md.EntryPoint] = list(md.entry_points(group=ENTRY_POINT_GROUP))
    elif entry_points is False:
        eps = []
    else:
        eps = list(entry_points)  # type: ignore[arg-type]
    for ep in sorted(eps, key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "(unknown)"
        version = ep.dist.version if ep.dist is not None else "?"
        is_builtin = _norm(dist) == BUILTIN_DISTRIBUTION
        if ep.name in off or dist in off or _norm(dist) in {_norm(n) for n in off}:
            skipped.append(
                PluginRecord(
                    ep.name,
                    dist,
                    ep.value,
                    version=version,
                    builtin=is_builtin,
                    disabled=True,
                )
            )
            continue
        try:
            module = ep.load()
        except Exception as exc:
            skipped.append(
                PluginRecord(
                    ep.name,
                    dist,
                    ep.value,
                    error=f"import failed: {type(exc).__name__}: {exc}",
                    version=version,
                    builtin=is_builtin,
                )
            )
            continue
        batch.append(_load_hooks(ep.name, dist, version, module, is_builtin))
    for name, module in plugins:
        if name in off:
            skipped.append(
                PluginRecord(name, "(local)", getattr(module, "__name__", "?"), disabled=True)
            )
            continue
        batch.append(_load_hooks(name, "(local)", "", module, builtin=False))
    reg._register(batch)
    reg.plugins.extend(skipped)
    if strict and reg.failures():
        lines = [
            f"  {r.name} ({r.distribution} {r.version}): {reason}"
            for r in reg.failures()
            for reason in r.reasons()
        ]
        raise PluginError(
            "strict plugin mode: plugin problems found:\n"
            + "\n".join(lines)
            + f"\n(unset {STRICT_ENV} or drop --strict-plugins to load the rest)"
        )
    return reg


_DEFAULT: list[Registry] = []


def get_registry(*, strict: bool | None = None) -> Registry:
    """The process-wide registry of installed plugins, built on first use.

    ``strict=True`` rebuilds it in strict mode (the CLI's ``--strict-plugins``).
    """
    if strict:
        _DEFAULT.clear()
        _DEFAULT.append(load_registry(strict=True))
    if not _DEFAULT:
        _DEFAULT.append(load_registry())
    return _DEFAULT[0]


def reset_registry() -> None:
    """Forget the process-wide registry (the next :func:`get_registry` reloads)."""
    _DEFAULT.clear()
