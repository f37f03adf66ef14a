"""The package layout (docs/architecture.md): the public API, and what may import what.

The import graph is read from the sources (``ast``), counting only the imports
that run: those under ``if TYPE_CHECKING:`` are type hints and are left out.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import vmapsim

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
PLUGINS = {
    "vmapsim_rbtree": ROOT / "plugins" / "rbtree",
    "vmapsim_mapletree": ROOT / "plugins" / "mapletree",
    "vmapsim_listhead": ROOT / "plugins" / "listhead",
    "vmapsim_pcpu_overlay": ROOT / "plugins" / "pcpu_overlay",
    "vmapsim_test_vmalloc": ROOT / "plugins" / "test_vmalloc",
}

#: the five concerns, each a subpackage of ``vmapsim``
CONCERNS = ("kernel", "framework", "cost", "checking", "tools")

#: every import path and name the README and docs/ document
PUBLIC = {
    "vmapsim": [
        "build",
        "VmapAllocator",
        "Counters",
        "COUNTER_NAMES",
        "PAGE_SIZE",
        "PAGE_SHIFT",
        "ULONG_MAX",
        "VMALLOC_START",
        "VMALLOC_END",
        "ARCHES",
        "Arch",
        "VmapArea",
        "VmStruct",
        "VmapError",
        "VmapArgumentError",
        "VmapTypeError",
        "InvariantError",
        "ComponentError",
        "PluginError",
        "PluginWarning",
        "UnknownComponentError",
        "UnknownStageError",
        "hookimpl",
        "Component",
        "ComponentContext",
        "Stage",
        "Workload",
        "WorkloadReport",
        "FreeIndex",
        "BusyIndex",
        "LazyQueue",
        "Coalescer",
        "Overlay",
        "OccupiedIndex",
        "RESERVED",
        "OVERLAP_WARNING",
        "FailslabConfig",
        "FaultInjector",
        "StructLayout",
        "Member",
        "Union",
        "GFP_KERNEL",
        "GFP_ATOMIC",
        "GFP_NOWAIT",
        "__version__",
    ],
    "vmapsim.gfp": ["GFP_KERNEL", "GFP_NOWAIT", "GFP_ATOMIC", "__GFP_ZERO"],
    "vmapsim.testing": [],
    "vmapsim.pytest_plugin": [],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_documented_name_imports(module: str) -> None:
    mod = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert hasattr(mod, name), f"{module}.{name} is documented but does not import"
    if module == "vmapsim":
        for name in vmapsim.__all__:
            assert hasattr(vmapsim, name), f"vmapsim.__all__ names {name}, which is missing"


def test_the_package_folders_are_the_five_concerns() -> None:
    subpackages = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").exists())
    assert subpackages == sorted((*CONCERNS, "testing"))
    loose = sorted(p.name for p in CORE.glob("*.py"))
    # the public API, ``python -m vmapsim``, the shared errors and the pytest plugin
    assert loose == ["__init__.py", "__main__.py", "errors.py", "pytest_plugin.py"]


def _module_name(path: Path, root: Path, package: str) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [package, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(path: Path, module: str) -> set[str]:
    """The modules ``module`` imports when it runs (type-hint imports left out)."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    out.update(a.name for a in sub.names)
                elif isinstance(sub, ast.ImportFrom):
                    if sub.level:
                        base = module.split(".")
                        base = base[: len(base) - sub.level + (1 if is_pkg else 0)]
                        target = ".".join([*base, *([sub.module] if sub.module else [])])
                    else:
                        target = sub.module or ""
                    out.add(target)
                    # ``from pkg import mod`` imports the submodule
                    out.update(f"{target}.{a.name}" for a in sub.names)

    visit(tree.body)
    return out


def _graph() -> dict[str, set[str]]:
    files: dict[str, Path] = {}
    for path in CORE.rglob("*.py"):
        files[_module_name(path, CORE, "vmapsim")] = path
    for package, root in PLUGINS.items():
        for path in root.rglob("*.py"):
            files[_module_name(path, root, package)] = path
    return {
        mod: {m for m in _runtime_imports(path, mod) if m in files} for mod, path in files.items()
    }


GRAPH = _graph()


def test_no_runtime_import_cycles() -> None:
    """Every import that runs points one way; circles are type hints only."""
    # ``vmapsim`` itself (the public API) re-exports from every concern; only
    # the tools import it back (for ``__version__``), above everything else.
    graph = {m: {d for d in deps if d != "vmapsim"} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if not state.get(d):
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if not state.get(m):
            dfs(m)


def _concern(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "vmapsim" and len(parts) > 1 else None


#: the framework's assembly: what builds a stage out of plugins
ASSEMBLY = {
    "vmapsim.framework.api",
    "vmapsim.framework.registry",
    "vmapsim.framework.series",
    "vmapsim.framework.builtin",
    "vmapsim.framework.workloads",
}


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("vmapsim.")))
def test_what_each_concern_may_import(module: str) -> None:
    deps = GRAPH[module]
    concern = _concern(module)
    for dep in deps:
        assert not dep.startswith("vmapsim_"), f"{module} imports the plugin {dep}"
        if concern in ("kernel", "cost", "checking"):
            assert _concern(dep) != "tools", f"{module} (model) imports the tool {dep}"
            assert dep not in ASSEMBLY, f"{module} (model) imports the assembly {dep}"
            assert not dep.startswith("vmapsim.testing"), f"{module} imports the kit"
        if concern == "framework":
            assert _concern(dep) != "tools", f"{module} (framework) imports the tool {dep}"
            assert not dep.startswith("vmapsim.testing"), f"{module} imports the kit"
        if concern in ("kernel", "framework", "cost", "checking"):
            assert dep != "vmapsim", f"{module} imports the public API back"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("vmapsim_")))
def test_plugins_import_only_the_public_api(module: str) -> None:
    package = module.split(".")[0]
    for dep in GRAPH[module]:
        if dep.startswith("vmapsim_"):
            assert dep.split(".")[0] == package, f"{module} imports another plugin: {dep}"
        else:
            assert dep in ("vmapsim", "vmapsim.testing") or dep.startswith("vmapsim.testing."), (
                f"{module} reaches into {dep}: plugins use vmapsim's public API"
            )


@pytest.mark.parametrize("old", sorted(vmapsim.MOVED_MODULES))
def test_old_module_paths_still_import_as_the_same_module(old: str) -> None:
    """``import vmapsim.plugins``, ``from vmapsim.gfp import GFP_KERNEL``, ... (the
    paths documented before the split) name the module at its new home."""
    new = importlib.import_module(vmapsim.MOVED_MODULES[old])
    assert importlib.import_module(f"vmapsim.{old}") is new
    assert getattr(vmapsim, old) is new
    assert new.__spec__.name == new.__name__ == vmapsim.MOVED_MODULES[old]


def test_documented_calls_through_old_paths() -> None:
    from vmapsim.gfp import GFP_KERNEL
    from vmapsim.oracle import ReferenceAllocator
    from vmapsim.plugins import get_registry

    assert GFP_KERNEL == vmapsim.GFP_KERNEL
    assert (
        ReferenceAllocator is importlib.import_module("vmapsim.checking.oracle").ReferenceAllocator
    )
    assert get_registry().workload("mixed") is not None


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        vmapsim.no_such_thing  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vmapsim.no_such_module")


def test_every_subpackage_is_installed() -> None:
    """``pip install .`` (the README's first command) installs what
    ``[tool.setuptools] packages`` lists: every folder of ``core/`` with an
    ``__init__.py`` must be there, or a fresh install cannot import it."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    for init in CORE.rglob("__init__.py"):
        rel = init.parent.relative_to(CORE)
        name = ".".join(("vmapsim", *rel.parts))
        assert name in listed, f"{name} is not in pyproject.toml's [tool.setuptools] packages"
