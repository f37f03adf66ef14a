"""``vmapsim new-plugin``: a third-party plugin package from a template.

:func:`render_plugin` writes ``DIR/NAME/``: a ``pyproject.toml`` naming
the distribution ``vmapsim-NAME`` and the entry point ``NAME`` in the
``vmapsim`` group, the package ``vmapsim_NAME`` with one working component
(a plain sorted-list implementation of the role, to be replaced by the
author's structure) and tests that run vmapsim's conformance kit on it.  The
package installs as it is and passes the kit unchanged.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

__all__ = ["TEMPLATE_ROLES", "TemplateError", "render_plugin", "reserved_names"]

#: roles the template has a starting component for
TEMPLATE_ROLES = ("free", "occupied", "busy", "lazy")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: template file -> path in the new package ($name substituted)
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "vmapsim_$name/__init__.py",
    "package/plugin.py.tmpl": "vmapsim_$name/plugin.py",
    "tests/conftest.py.tmpl": "tests/conftest.py",
    "tests/test_conformance.py.tmpl": "tests/test_$name.py",
}

_CLASSES = {
    "free": "FreeIndex",
    "occupied": "OccupiedIndex",
    "busy": "BusyIndex",
    "lazy": "LazyQueue",
}
_HOOKS = {
    "free": "vmapsim_index_components",
    "occupied": "vmapsim_index_components",
    "busy": "vmapsim_index_components",
    "lazy": "vmapsim_lazy_purge_components",
}
#: the factory's arguments (the occupied template honours failslab)
_ARGS = {"occupied": "ctx.counters, ctx.warn, ctx.faults"}
#: the template component's own counters (``Component.counters``)
_COUNTERS = {"occupied": '"$name.gaps_scanned",'}
#: the README's run command: a stage that fills the role and the swaps it needs
_RUN = {
    "free": "--stage 0 --with free=$name --with coalesce=generic",
    "occupied": "--stage 2 --with occupied=$name",
    "busy": "--stage 0 --with busy=$name",
    "lazy": "--stage 0 --with lazy=$name",
}


def reserved_names() -> dict[str, str]:
    """Names the built-in plugins own -> what owns them (component, plugin, series)."""
    from vmapsim.framework.registry import get_registry

    reg = get_registry()
    out: dict[str, str] = {}
    for (role, name), offers in reg.offers.items():
        for o in offers:
            if o.builtin:
                out.setdefault(name, f"component {role}={name} of built-in plugin {o.plugin}")
    for rec in reg.plugins:
        if rec.builtin:
            out.setdefault(rec.name, f"built-in plugin {rec.name}")
    for stage in reg.stages.values():
        out.setdefault(stage.series, f"the built-in stage series {stage.series}")
    out.setdefault("vmapsim", "vmapsim itself")
    return out


class TemplateError(ValueError):
    """A bad ``new-plugin`` argument (names the argument and the rule)."""


def render_plugin(name: str, *, role: str = "free", directory: Path | str = ".") -> Path:
    """Write the plugin package ``vmapsim_NAME`` under ``directory/NAME``; return its folder."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise TemplateError(
            f"name: must be lower-case letters, digits and '_', starting with a letter "
            f"(got {name!r})"
        )
    if role not in TEMPLATE_ROLES:
        raise TemplateError(f"role: the template has {', '.join(TEMPLATE_ROLES)} (got {role!r})")
    owner = reserved_names().get(name)
    if owner is not None:
        raise TemplateError(
            f"name: {name!r} is reserved ({owner}); a plugin registering it is rejected, "
            "so choose another name"
        )
    root = Path(directory) / name
    if root.exists():
        raise TemplateError(f"dir: {root} already exists; choose another --dir or name")
    cls = "".join(p.capitalize() for p in name.split("_")) + _CLASSES[role]
    values = {
        "name": name,
        "role": role,
        "cls": cls,
        "hook": _HOOKS[role],
        "module": role,
        "args": _ARGS.get(role, "ctx.counters, ctx.warn"),
        "counters": _COUNTERS.get(role, "").replace("$name", name),
        "run": Template(_RUN[role]).substitute(name=name),
    }
    base = resources.files(__package__) / "plugin"
    files = dict(_FILES)
    files[f"package/{role}.py.tmpl"] = f"vmapsim_$name/{role}.py"
    for src, dest in files.items():
        text = Template((base / src).read_text("utf-8")).substitute(values)
        path = root / Template(dest).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return root
