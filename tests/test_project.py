"""Project rules: CI runs the README's command, lint is clean, core never
imports a plugin, plugins import only vmapsim, no kernel licence text, and
every plugin folder is an entry point."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".tox",
    ".nox",
    "node_modules",
}

# -- README <-> CI --------------------------------------------------------------

FENCE = re.compile(r"^```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def shell_blocks(markdown: str) -> list[str]:
    """The bodies of the fenced ```sh / ```bash / ```shell blocks, in order."""
    return [
        body for lang, body in FENCE.findall(markdown) if lang.lower() in {"sh", "bash", "shell"}
    ]


def readme_test_command(markdown: str) -> str:
    """The first ``python3 -m venv`` line of the second fenced shell block."""
    blocks = shell_blocks(markdown)
    assert len(blocks) >= 2, "README.md needs two fenced shell blocks (run, then test)"
    for line in blocks[1].splitlines():
        line = line.strip().removeprefix("$ ").strip()
        if line.startswith("python3 -m venv"):
            return line
    raise AssertionError(f"no 'python3 -m venv' line in README's second shell block:\n{blocks[1]}")


def ci_command(script: str) -> str:
    """The last command of .ci/run (comments, blank lines and ``rm -rf .venv`` aside)."""
    lines = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert lines, ".ci/run has no commands"
    assert "rm -rf .venv" in lines[:-1], ".ci/run must start from a fresh .venv"
    return lines[-1]


def test_readme_parser_examples():
    md = (
        "intro\n\n```sh\npython3 -m venv .venv && .venv/bin/pip install -q . && run\n```\n\n"
        "```python\npython3 -m venv nope\n```\n\n"
        "```bash\n$ python3 -m venv .venv && .venv/bin/python -m pytest -q\n```\n"
    )
    assert readme_test_command(md) == "python3 -m venv .venv && .venv/bin/python -m pytest -q"
    with pytest.raises(AssertionError):
        readme_test_command("```sh\npython3 -m venv .venv\n```\n")
    ci = "#!/bin/sh\n# c\nset -e\nrm -rf .venv\npython3 -m venv .venv && x\n# trailing\n"
    assert ci_command(ci) == "python3 -m venv .venv && x"
    with pytest.raises(AssertionError):
        ci_command("#!/bin/sh\npython3 -m venv .venv && x\n")


def test_ci_runs_exactly_the_readme_test_command():
    readme = ROOT / "README.md"
    ci = ROOT / ".ci" / "run"
    assert readme.is_file(), "README.md is missing"
    assert ci.is_file(), ".ci/run is missing"
    assert readme_test_command(readme.read_text()) == ci_command(ci.read_text())


def example_plugins() -> list[Path]:
    """Every example plugin package (a folder under examples/ with a pyproject.toml)."""
    return sorted(p.parent for p in (ROOT / "examples").glob("*/pyproject.toml"))


def test_ci_installs_and_tests_every_example_plugin():
    """The test command installs each example plugin, and pytest collects its tests."""
    command = readme_test_command((ROOT / "README.md").read_text())
    testpaths = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]["testpaths"]
    examples = example_plugins()
    assert examples, "no example plugin under examples/"
    for folder in examples:
        rel = folder.relative_to(ROOT).as_posix()
        assert f"-e ./{rel}" in command, f"the test command does not install {rel}"
        assert f"{rel}/tests" in testpaths, f"pytest's testpaths miss {rel}/tests"
        data = tomllib.loads((folder / "pyproject.toml").read_text())
        assert data["project"]["entry-points"]["vmapsim"], f"{rel}: no vmapsim entry point"


def test_readme_first_block_installs_and_runs():
    blocks = shell_blocks((ROOT / "README.md").read_text())
    assert blocks, "README.md has no fenced shell block"
    assert any(line.strip().startswith("python3 -m venv") for line in blocks[0].splitlines())


# -- lint -------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- import boundaries ------------------------------------------------------------


def imported_modules(source: str) -> set[str]:
    """Absolute module names a Python source imports (``import_module("x")`` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return found


STDLIB = set(sys.stdlib_module_names) | {"__future__"}
PLUGIN_MAY_IMPORT = {"vmapsim", "attrs", "attr", "pluggy"}


def core_violations(source: str) -> list[str]:
    return sorted(m for m in imported_modules(source) if m.split(".")[0].startswith("vmapsim_"))


def plugin_violations(source: str, own: str) -> list[str]:
    bad = []
    for mod in imported_modules(source):
        top = mod.split(".")[0]
        if top == own or top in PLUGIN_MAY_IMPORT or top in STDLIB:
            continue
        bad.append(mod)
    return sorted(bad)


def test_import_scanners_catch_violations():
    src = "import os\nfrom vmapsim import Component\nfrom . import x\n"
    assert core_violations(src) == []
    assert plugin_violations(src, "vmapsim_a") == []
    assert core_violations("import vmapsim_rbtree.plugin\n") == ["vmapsim_rbtree.plugin"]
    assert core_violations("from vmapsim_mapletree import x\n") == ["vmapsim_mapletree"]
    assert core_violations("import importlib\nimportlib.import_module('vmapsim_rbtree')\n") == [
        "vmapsim_rbtree"
    ]
    assert plugin_violations("from vmapsim_b.x import y\n", "vmapsim_a") == ["vmapsim_b.x"]
    assert plugin_violations("import numpy\n", "vmapsim_a") == ["numpy"]
    assert plugin_violations("from vmapsim_a.x import y\n", "vmapsim_a") == []


def _py_files(base: Path):
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(ROOT).parts
        if SKIP_DIRS.intersection(rel) or any(p.endswith(".egg-info") for p in rel):
            continue
        yield path


def plugin_folders() -> list[Path]:
    """Every folder under plugins/ (each is a plugin package)."""
    return sorted(
        p for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
    )


def test_core_never_imports_a_plugin():
    files = list(_py_files(ROOT / "core"))
    assert files
    bad = {
        str(f.relative_to(ROOT)): v for f in files if (v := core_violations(f.read_text("utf-8")))
    }
    assert bad == {}


def test_plugins_import_only_vmapsim_and_stdlib():
    folders = plugin_folders()
    assert folders
    bad = {}
    for folder in folders:
        own = f"vmapsim_{folder.name}"
        for f in _py_files(folder):
            if v := plugin_violations(f.read_text("utf-8"), own):
                bad[str(f.relative_to(ROOT))] = v
    assert bad == {}


# -- no kernel licence text or author credits in our sources ------------------------

# split so this file does not match itself
KERNEL_TEXT = [
    re.compile("SPDX-License-" + r"Identifier:\s*GPL", re.I),
    re.compile(r"Copyright\s*(\(C\)|©)" + r"[^\n]*Oracle", re.I),
    re.compile("Liam R. " + "Howlett", re.I),
    re.compile("Uladzislau " + "Rezki", re.I),
]


def kernel_text(source: str) -> list[str]:
    return [p.pattern for p in KERNEL_TEXT if p.search(source)]


def test_kernel_text_scanner():
    assert kernel_text("# SPDX-License-" + "Identifier: GPL-2.0-only\n")
    assert kernel_text(" * Copy" + "right (C) 2024 Oracle Corporation\n")
    assert kernel_text("Author: Liam R. " + "Howlett <x@y>\n")
    assert kernel_text("Uladzislau " + "Rezki (Sony)\n")
    assert kernel_text("OracleMismatch; the oracle allocator\n# SPDX-License-Identifier: MIT") == []


def test_no_kernel_licence_or_author_lines():
    bad = {
        str(f.relative_to(ROOT)): hits
        for f in _py_files(ROOT)
        if (hits := kernel_text(f.read_text("utf-8", errors="replace")))
    }
    assert bad == {}


# -- entry points -----------------------------------------------------------------


def test_every_plugin_folder_is_an_entry_point():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    eps = data["project"]["entry-points"]["vmapsim"]
    package_dir = data["tool"]["setuptools"]["package-dir"]
    packages = set(data["tool"]["setuptools"]["packages"])
    ep_packages = {value.split(":")[0].split(".")[0] for value in eps.values()}
    for folder in plugin_folders():
        pkg = f"vmapsim_{folder.name}"
        assert pkg in ep_packages, f"plugins/{folder.name}: no [project.entry-points.vmapsim]"
        assert package_dir.get(pkg) == f"plugins/{folder.name}", pkg
        assert pkg in packages, pkg
    # and no entry point names a package that has no folder
    assert ep_packages == {f"vmapsim_{f.name}" for f in plugin_folders()}


def test_entry_points_are_installed():
    """The installed metadata matches pyproject (catches a stale editable install)."""
    import importlib.metadata

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = data["project"]["entry-points"]["vmapsim"]
    installed = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group="vmapsim")
        if ep.dist is not None and ep.dist.name == "vmapsim"
    }
    assert installed == declared, "stale install? run: pip install -e '.[test]'"
