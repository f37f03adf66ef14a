"""The built-in components pass vmapsim's conformance kit, run the way an author runs it.

Each class below is what a plugin author writes: a base class from
``vmapsim.testing`` and the component's name.  The kit finds the stages that
fill each role in the registry, so new stages are covered as they land.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import settings

import vmapsim.framework.roles
import vmapsim.testing
from vmapsim.tools.cli import main
from vmapsim.tools.templates import TEMPLATE_ROLES, render_plugin

pytest_plugins = ["pytester"]


class TestRbFree(vmapsim.testing.suite("free")):
    component = "rb"
    with_components: dict[str, str] = {}  # the stage's own list-neighbour coalescer


class TestRbFreeGenericCoalesce(vmapsim.testing.AllocatorConformance):
    role = "free"
    component = "rbtree:rb"  # the qualified form resolves too
    stages = (0,)


class TestRbBusy(vmapsim.testing.suite("busy")):
    component = "rb"


class TestMapleBusy(vmapsim.testing.suite("busy")):
    component = "maple"


class TestRbLazy(vmapsim.testing.suite("lazy")):
    component = "rb"


class TestMapleLazy(vmapsim.testing.suite("lazy")):
    component = "maple"


class TestListNeighbourCoalescer(vmapsim.testing.suite("coalesce")):
    component = "list-neighbour"
    stages = (0, 1, 2)  # it merges in the rb-tree: the stages that still have one


class TestGenericCoalescer(vmapsim.testing.suite("coalesce")):
    component = "generic"


class TestMapleFree(vmapsim.testing.suite("free")):
    component = "maple"
    with_components = {"coalesce": "generic"}  # list-neighbour needs the rb-tree
    # above PAGE_SIZE free=maple places by the over-ask (docs/stages.md), which the
    # oracle's `gaps` placement models, not within the rb-tree's pruning bounds
    placement = "gaps"

    def test_state_machine_against_oracle(
        self, request, vmapsim_registry, vmapsim_component, kit_stage_key
    ) -> None:
        if kit_stage_key in ("maple:0", "maple:1"):
            # swapped into the rb-tree stages (where its own search answers), a
            # windowed request above PAGE_SIZE can fail (-EBUSY) where the over-ask's
            # exact fallback finds room; at 2-6 the occupied tree answers the search
            request.applymarker(
                pytest.mark.xfail(
                    reason="free=maple above PAGE_SIZE in a narrow window at stages 0-1: "
                    "-EBUSY where a fit exists (known gap, found by the kit's make_holes rule)",
                    strict=False,
                )
            )
        super().test_state_machine_against_oracle(
            vmapsim_registry, vmapsim_component, kit_stage_key
        )

    @pytest.mark.skip(
        reason="above PAGE_SIZE free=maple places by the occupied tree's over-ask, not within "
        "the rb-tree's pruning bounds (docs/stages.md, 'Alignment above PAGE_SIZE'); "
        "tests/mapletree/test_vmap_free.py checks the over-ask rule"
    )
    def test_lowest_match_adjusted_bounds(self) -> None: ...


class TestMapleOccupiedBusy(vmapsim.testing.suite("busy")):
    # a per-node view of the occupied tree (`occupies`): the contract builds the
    # occupied index first; the allocator-level checks run where the stage's own
    # busy index occupies (7-12), with occupied=maple-occupied swapped in too
    component = "maple-occupied"


class TestListheadLazy(vmapsim.testing.suite("lazy")):
    component = "listhead"


class TestPcpuOverlay(vmapsim.testing.suite("overlay")):
    component = "pcpu-bump"


# -- the kit catches a wrong component ---------------------------------------------

BROKEN_FREE = '''
import pytest

import vmapsim
import vmapsim.testing
from vmapsim.framework.registry import load_registry
from vmapsim_rbtree.free import RbFreeIndex, is_within_this_va


class HighestFit(RbFreeIndex):
    """Returns the highest fitting block: a valid block, but not the kernel's choice."""

    def find_vmap_lowest_match(self, size, align, vstart, adjust_search_size):
        fits = [va for va in self if is_within_this_va(va, size, align, vstart)]
        return fits[-1] if fits else None


class Plugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        return [vmapsim.Component("highest", {"free"},
                                  lambda ctx: HighestFit(ctx.counters, ctx.warn))]


class TestHighest(vmapsim.testing.suite("free")):
    component = "highest"

    @pytest.fixture(scope="class")
    @classmethod
    def vmapsim_registry(cls):
        # a component not installed: a registry with the plugin object added
        return load_registry(plugins=[("broken", Plugin())])
'''


def test_the_kit_fails_a_wrong_free_index(pytester):
    """A free index returning the highest fit fails the exact search, the trace and the oracle."""
    pytester.makepyfile(test_broken=BROKEN_FREE)
    # find the failures, skip shrinking them (minutes); the profile is put back after
    pytester.makeconftest(
        "from hypothesis import Phase, settings\n"
        "settings.register_profile('kit-noshrink', database=None, derandomize=True,\n"
        "    phases=[Phase.explicit, Phase.generate])\n"
    )
    previous = settings.get_current_profile_name()
    try:
        result = pytester.runpytest_inprocess(
            "-q",
            "-p",
            "no:cacheprovider",
            "--hypothesis-profile=kit-noshrink",
            "-k",
            "lowest_match_exact or trace or oracle",
        )
    finally:
        settings.load_profile(previous)
    out = result.stdout.str()
    for test in (
        "test_lowest_match_exact",
        "test_trace_matches_the_stage_component[maple:0]",
        "test_state_machine_against_oracle[maple:0]",
    ):
        assert f"FAILED test_broken.py::TestHighest::{test}" in out, out[-3000:]


# -- the new-plugin template passes the kit unchanged ------------------------------


def _fake_install(site, name, root):
    """What `pip install -e` leaves for the loader: a dist-info naming the entry point."""
    info = site / f"vmapsim_{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vmapsim-{name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[vmapsim]\n{name} = vmapsim_{name}.plugin\n")
    return info


@pytest.mark.parametrize("role", TEMPLATE_ROLES)
def test_new_plugin_template_passes_the_kit(pytester, tmp_path, monkeypatch, role):
    name = f"tmpl_{role}"
    root = render_plugin(name, role=role, directory=tmp_path)
    _fake_install(tmp_path / "site", name, root)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    # the whole kit for the free and occupied indexes; the smoke tests and the role
    # contract for the others
    full = role in ("free", "occupied")
    select = [] if full else ["-k", "not state_machine and not trace"]
    result = pytester.runpytest_inprocess(
        str(root / "tests"), "-v", "-p", "no:cacheprovider", *select
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 9 and "failed" not in outcomes, result.stdout.str()[-3000:]
    expect = [
        "vmapsim.testing: profile *",  # the conftest's pytest_plugins = ["vmapsim.testing"]
        "*::TestConformance::test_registered PASSED*",
    ]
    first = "maple:2" if role == "occupied" else "maple:0"
    if full:
        expect += [
            f"*::TestConformance::test_state_machine_against_oracle?{first}? PASSED*",
            f"*::TestConformance::test_trace_matches_the_stage_component?{first}? PASSED*",
        ]
    expect.append(f"*::TestConformance::test_short_workload?{first}? PASSED*")
    result.stdout.fnmatch_lines(expect, consecutive=False)


def test_new_plugin_command(tmp_path, capsys):
    assert main(["new-plugin", "mine", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "mine" / "vmapsim_mine" / "free.py").is_file()
    data = tomllib.loads((tmp_path / "mine" / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["vmapsim"] == {"mine": "vmapsim_mine.plugin"}
    assert "created" in capsys.readouterr().out
    assert main(["new-plugin", "mine", "--dir", str(tmp_path)]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main(["new-plugin", "Bad-Name", "--dir", str(tmp_path)]) == 2
    assert "name:" in capsys.readouterr().err
    assert main(["new-plugin", "x", "--role", "coalesce", "--dir", str(tmp_path)]) == 2
    assert "role:" in capsys.readouterr().err


class TestMapleOccupied(vmapsim.testing.suite("occupied")):
    component = "maple"


@pytest.mark.soak
def test_new_plugin_installs_into_a_fresh_venv_and_passes(tmp_path):
    """The real thing: `pip install` vmapsim and the generated package, then its tests."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    root = render_plugin("venvcheck", role="free", directory=tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", f"{repo}[test]", "-e", f"{root}[test]"], check=True)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    listing = subprocess.run(
        [str(venv / "bin" / "vmapsim"), "plugins"], capture_output=True, text=True, check=False
    )
    assert "venvcheck" in listing.stdout and "free=venvcheck" in listing.stdout


# -- the plugin path, honestly (issue #24 item 8, #25 items 1, 2, 5) -----------------


@pytest.mark.parametrize("name", ["rb", "maple", "generic", "listhead", "mapletree", "vmapsim"])
def test_new_plugin_refuses_reserved_names(tmp_path, capsys, name):
    assert main(["new-plugin", name, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"name: {name!r} is reserved" in err and "choose another name" in err
    assert not (tmp_path / name).exists()


MASQUERADE = """
import pytest

import vmapsim
import vmapsim.testing
from vmapsim.framework.registry import load_registry


def make(ctx):
    raise RuntimeError("my constructor is broken")


class Plugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        return [vmapsim.Component("rb", {"free"}, make)]


class TestRb(vmapsim.testing.suite("free")):
    component = "rb"   # what `new-plugin rb` used to generate

    @pytest.fixture(scope="class")
    @classmethod
    def vmapsim_registry(cls):
        return load_registry(plugins=[("rbclone", Plugin())])
"""


def test_the_kit_fails_when_the_name_is_a_builtin(pytester):
    """A plugin whose component took a reserved name was rejected; the kit must
    not quietly test the built-in in its place."""
    pytester.makepyfile(test_masquerade=MASQUERADE)
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "-k", "not machine")
    outcomes = result.parseoutcomes()
    assert "passed" not in outcomes, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*is the built-in free=rb (plugin rbtree*not your plugin's*"])


def _fake_install_and_load(tmp_path, monkeypatch, name, role):
    import vmapsim.framework.registry as registry

    root = render_plugin(name, role=role, directory=tmp_path)
    _fake_install(tmp_path / "site", name, root)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(registry, "_DEFAULT", [])
    importlib.invalidate_caches()
    return root


@pytest.mark.parametrize("role", TEMPLATE_ROLES)
def test_the_generated_readme_run_command_works(tmp_path, monkeypatch, capsys, role):
    """The README's `vmapsim run ...` line, as written (plus a short workload, so
    the test takes seconds), builds and runs; the occupied template's own
    counter shows up per component."""
    name = f"readme_{role}"
    root = _fake_install_and_load(tmp_path, monkeypatch, name, role)
    lines = [
        ln.split("#")[0].split()
        for ln in (root / "README.md").read_text().splitlines()
        if ln.startswith("vmapsim run ")
    ]
    assert lines, "the README has no run command"
    short = ["--workload", "mixed", "--param", "nr_ops=300", "--json"]
    for argv in lines:
        assert main([*argv[1:], *short]) == 0, capsys.readouterr().err
        out = json.loads(capsys.readouterr().out)
        assert out["components"][role] == name
    if role == "occupied":
        costs = out["component_costs"]
        assert costs[f"occupied={name}"]["own_counters"] == [f"{name}.gaps_scanned"]
        assert costs[f"occupied={name}"]["counters"][f"{name}.gaps_scanned"] > 0
        assert out["metrics"][f"{name}.gaps_scanned"] > 0


def test_run_help_lists_every_role(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for role in vmapsim.framework.roles.ROLES:
        assert role in text.split("--with ROLE=NAME use component NAME for ROLE (")[1][:80]


def test_kit_stages_are_where_the_role_can_be_swapped():
    from vmapsim.framework.registry import get_registry
    from vmapsim.testing.stages import default_with, kit_stages

    reg = get_registry()
    # a stand-alone occupied index: not where the busy index lives in the stage's own
    assert kit_stages(reg, "occupied", "maple") == [f"maple:{n}" for n in range(2, 7)]
    # a busy index that lives in its own occupied index: where the stage's does
    assert kit_stages(reg, "busy", "maple-occupied") == [f"maple:{n}" for n in range(7, 13)]
    assert default_with(reg, "busy", "maple-occupied") == {"occupied": "maple-occupied"}
    assert kit_stages(reg, "busy", "rb") == [f"maple:{n}" for n in range(13)]
    assert default_with(reg, "free", "x") == {"coalesce": "generic"}


def test_the_kit_mutation_probe_catches_its_faults(monkeypatch):
    """A small part of benchmarks/kit_mutation_probe.py: two of the faults the kit
    used to miss, each against the kit tests that must catch it."""
    spec = importlib.util.spec_from_file_location(
        "kit_mutation_probe",
        Path(__file__).resolve().parents[1] / "benchmarks/kit_mutation_probe.py",
    )
    probe = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, probe)  # dataclasses look the module up
    spec.loader.exec_module(probe)
    faults = [f for f in probe.FAULTS if f.name in ("prev_gap_unclipped", "enomem_leaves_change")]
    # the unmutated template passing the kit is test_new_plugin_template_passes_the_kit
    rows = probe.probe(faults, select="prev_gap or enomem", baseline=False)
    got = {f.name: (status, failed) for f, status, failed in rows}
    assert got == {
        "prev_gap_unclipped": ("caught", ["test_prev_gap"]),
        "enomem_leaves_change": ("caught", ["test_enomem_changes_nothing"]),
    }
