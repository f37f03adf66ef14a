"""Broken and clashing third-party plugins, installed for the test as real distributions.

Each test writes a small distribution into a temporary folder on ``sys.path``
(a ``*.dist-info`` with ``METADATA`` and ``entry_points.txt`` naming a module
in the ``vmapsim`` group, and the module itself) -- what ``pip install``
leaves behind -- so the loader finds it through ``importlib.metadata`` with
its distribution name and version, exactly as it finds the built-ins.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import textwrap
import warnings

import pytest

import vmapsim
import vmapsim.framework.registry
from vmapsim import PAGE_SIZE as P
from vmapsim.framework.registry import load_registry
from vmapsim.tools.cli import main

_SEQ = itertools.count()

HEADER = "import vmapsim\nfrom vmapsim import Component, hookimpl\n"

#: a working free index to build broken ones from (the rbtree plugin's, by name)
RB_FREE = "vmapsim.framework.registry.get_registry().component('free', 'rb').factory"


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(body, dist=..., ep=...)``: a distribution with one plugin module."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [])  # get_registry() reloads
    monkeypatch.delenv(vmapsim.framework.registry.STRICT_ENV, raising=False)
    monkeypatch.delenv(vmapsim.framework.registry.DISABLE_ENV, raising=False)

    def add(body: str, *, dist: str | None = None, ep: str | None = None, version="1.2.3"):
        n = next(_SEQ)
        module = f"vmapsim_fake{n}_{tmp_path.name[-6:].replace('-', '_')}"
        ep = ep or f"fake{n}"
        dist = dist or f"vmapsim-fake{n}"
        (site / f"{module}.py").write_text(HEADER + textwrap.dedent(body))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[vmapsim]\n{ep} = {module}\n")
        return ep

    return add


def record(reg, name):
    found = [r for r in reg.plugins if r.name == name]
    assert len(found) == 1, reg.plugins
    return found[0]


def builtins_intact(reg):
    assert record(reg, "rbtree").ok and record(reg, "mapletree").ok
    for key in [("free", "rb"), ("busy", "rb"), ("lazy", "rb"), ("coalesce", "list-neighbour")]:
        assert reg.component_origin[key] == "rbtree", key
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", vmapsim.PluginWarning)  # tested on its own below
        a = vmapsim.build(0, registry=reg, debug=True)
    addr = a.vmalloc(3 * P)
    a.vfree(addr)
    a.purge_vmap_area_lazy()
    a.check_invariants()


def quiet_registry():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_registry()


# -- name conflicts --------------------------------------------------------------


@pytest.mark.parametrize("ep", ["aaa", "zzz"])  # before and after "rbtree": same result
def test_third_party_reusing_a_builtin_name_is_the_one_rejected(install, ep):
    install(
        """
        def make(ctx):
            raise AssertionError("never built")

        @hookimpl
        def vmapsim_index_components():
            return [Component("rb", {"free"}, make), Component("mine", {"busy"}, make)]
        """,
        ep=ep,
        dist="dupe-dist",
    )
    reg = quiet_registry()
    rec = record(reg, ep)
    assert rec.distribution == "dupe-dist" and rec.version == "1.2.3"
    assert rec.status == "partial"
    assert rec.components == ("busy=mine",)  # nothing else of it is dropped
    (reason,) = rec.problems
    assert "free=rb" in reason and "reserved by built-in plugin rbtree" in reason
    assert "distribution vmapsim" in reason
    builtins_intact(reg)


def test_builtin_stage_and_workload_names_are_reserved(install):
    ep = install(
        """
        @hookimpl
        def vmapsim_stages():
            st = vmapsim.framework.registry.get_registry().stage(0)
            return [vmapsim.Stage(0, "mine", dict(st.components), st.layout)]

        @hookimpl
        def vmapsim_workloads():
            return [vmapsim.Workload("mixed", "mine", lambda a, **k: None)]
        """
    )
    reg = quiet_registry()
    rec = record(reg, ep)
    assert len(rec.problems) == 2
    assert any("stage maple:0: reserved by built-in plugin vmapsim" in p for p in rec.problems)
    assert any("workload mixed: reserved" in p for p in rec.problems)
    assert reg.stage(0).title.startswith("upstream")


TWIN = """
from vmapsim_rbtree.free import RbFreeIndex

class Twin(RbFreeIndex):
    TAG = {tag!r}

def make(ctx):
    return Twin(ctx.counters, ctx.warn)

@hookimpl
def vmapsim_index_components():
    return [Component("twin", {{"free"}}, make)]
"""


def test_two_third_party_plugins_with_one_name(install, capsys):
    install(TWIN.format(tag="one"), ep="alpha", dist="alpha-dist")
    install(TWIN.format(tag="two"), ep="beta", dist="beta-dist")
    reg = load_registry()
    assert record(reg, "alpha").ok and record(reg, "beta").ok
    with pytest.raises(vmapsim.UnknownComponentError) as err:
        vmapsim.build(0, components={"free": "twin", "coalesce": "generic"}, registry=reg)
    msg = str(err.value)
    assert isinstance(err.value, vmapsim.errors.AmbiguousComponentError)
    assert (
        "alpha:twin (distribution alpha-dist" in msg and "beta:twin (distribution beta-dist" in msg
    )
    assert "--with free=PLUGIN:twin" in msg
    for plugin, tag in (("alpha", "one"), ("beta", "two")):
        a = vmapsim.build(
            0, components={"free": f"{plugin}:twin", "coalesce": "generic"}, registry=reg
        )
        assert tag == a.free.TAG
        a.vfree(a.vmalloc(P))
    # the same from the command line
    rc = main(
        [
            "run",
            "--workload",
            "mixed",
            "--with",
            "free=beta:twin",
            "--with",
            "coalesce=generic",
            "--param",
            "nr_ops=50",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "free=twin" in out
    assert main(["run", "--with", "free=twin", "--with", "coalesce=generic"]) == 2
    assert "alpha:twin" in capsys.readouterr().err


# -- failures, each contained and explained ---------------------------------------------

BROKEN = {
    "import error": (
        "import no_such_module_for_vmapsim\n",
        ["import failed: ModuleNotFoundError", "no_such_module_for_vmapsim"],
    ),
    "raising hook": (
        """
        @hookimpl
        def vmapsim_index_components():
            raise RuntimeError("index hook exploded")

        @hookimpl
        def vmapsim_workloads():
            return [vmapsim.Workload("still-here", "kept", lambda a, **k: None)]
        """,
        ["hook vmapsim_index_components raised RuntimeError: index hook exploded"],
    ),
    "hook returning None": (
        """
        @hookimpl
        def vmapsim_lazy_purge_components():
            pass
        """,
        ["hook vmapsim_lazy_purge_components returned None", "[] for none"],
    ),
    "hook returning a non-list": (
        """
        @hookimpl
        def vmapsim_lazy_purge_components():
            return 42
        """,
        ["returned 42 (int), not a list of vmapsim.Component"],
    ),
    "hook returning non-components": (
        """
        @hookimpl
        def vmapsim_index_components():
            return [{"name": "x", "roles": ["free"]}]
        """,
        ["returned {'name': 'x', 'roles': ['free']} (dict), not a vmapsim.Component"],
    ),
    "wrong role": (
        """
        @hookimpl
        def vmapsim_index_components():
            return [Component("sneaky", {"lazy"}, lambda ctx: None)]
        """,
        ["component 'sneaky' for role(s) ['lazy']", "register lazy: vmapsim_lazy_purge_components"],
    ),
    "duplicate within the plugin": (
        """
        @hookimpl
        def vmapsim_index_components():
            return [Component("twice", {"busy"}, lambda c: 1), Component("twice", {"busy"}, lambda c: 2)]
        """,
        ["busy=twice: registered twice by this plugin"],
    ),
    "misspelled hook": (
        """
        @hookimpl
        def vmapsim_index_component():
            return []
        """,
        ["vmapsim_index_component is not a vmapsim hook", "did you mean vmapsim_index_components?"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_is_reported_by_plugin_and_distribution(install, case, capsys):
    body, words = BROKEN[case]
    ep = install(body, dist="broken-dist", version="0.0.7")
    reg = quiet_registry()
    rec = record(reg, ep)
    assert not rec.ok and rec.distribution == "broken-dist" and rec.version == "0.0.7"
    text = " ".join(rec.reasons())
    for word in words:
        assert word in text, (case, text)
    builtins_intact(reg)
    if case == "raising hook":  # the plugin's other registrations are kept
        assert rec.workloads == ("still-here",) and rec.status == "partial"

    # `vmapsim plugins` lists it with the reason; exit status 1
    assert main(["plugins"]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if re.match(rf"(FAILED|PARTIAL)\s+{ep}\s", ln))
    assert "from broken-dist 0.0.7 (third-party" in line
    assert words[0] in out
    assert main(["plugins", "--json"]) == 1
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert data[ep]["distribution"] == "broken-dist" and data[ep]["version"] == "0.0.7"
    assert any(words[0] in f for f in data[ep]["failures"])
    assert data["rbtree"]["components"]["free"] == ["rb"]

    # `vmapsim run` still runs, and says once that plugins failed
    assert main(["run", "--workload", "mixed", "--param", "nr_ops=50"]) == 0
    err = capsys.readouterr().err
    assert err.count("vmapsim: warning:") == 1, err
    assert ep in err and "vmapsim plugins" in err


def test_build_warns_once_per_registry(install):
    install(BROKEN["import error"][0])
    reg = quiet_registry()
    with pytest.warns(vmapsim.PluginWarning, match="import failed") as caught:
        vmapsim.build(0, registry=reg)
        vmapsim.build(0, registry=reg)
    assert len([w for w in caught if issubclass(w.category, vmapsim.PluginWarning)]) == 1


FACTORIES = """
from vmapsim_rbtree.free import RbFreeIndex

def boom(ctx):
    return 1 // 0

class Hollow:
    def insert(self, va, near=None):
        return True

class Corrupting(RbFreeIndex):
    armed = None

    def find_vmap_lowest_match(self, size, align, vstart, adjust):
        va = super().find_vmap_lowest_match(size, align, vstart, adjust)
        if va is not None and self.armed == "lose":
            va.va_end -= 4096  # a page of free space vanishes
        return va

    def check(self):
        super().check()
        if self.armed == "self":
            raise vmapsim.InvariantError("corrupting: node order broken")

def corrupting(ctx):
    return Corrupting(ctx.counters, ctx.warn)

@hookimpl
def vmapsim_index_components():
    return [
        Component("boom", {"free"}, boom),
        Component("hollow", {"free"}, lambda ctx: Hollow()),
        Component("corrupting", {"free"}, corrupting),
    ]
"""


def test_factory_that_raises_names_plugin_and_component(install, capsys):
    ep = install(FACTORIES, dist="factories-dist")
    reg = load_registry()
    with pytest.raises(vmapsim.ComponentError) as err:
        vmapsim.build(0, components={"free": "boom", "coalesce": "generic"}, registry=reg)
    msg = str(err.value)
    assert f"free=boom (plugin {ep}, distribution factories-dist 1.2.3)" in msg
    assert "failed to build: ZeroDivisionError" in msg
    assert isinstance(err.value.__cause__, ZeroDivisionError)
    rc = main(["run", "--with", "free=boom", "--with", "coalesce=generic"])
    err_text = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err_text
    assert err_text.startswith(f"vmapsim: component free=boom (plugin {ep}")


def test_component_missing_methods_names_them(install):
    ep = install(FACTORIES)
    reg = load_registry()
    with pytest.raises(vmapsim.ComponentError) as err:
        vmapsim.build(0, components={"free": "hollow", "coalesce": "generic"}, registry=reg)
    msg = str(err.value)
    assert f"plugin {ep}" in msg and "Hollow" in msg and "FreeIndex" in msg
    for name in ("find_vmap_lowest_match", "unlink", "propagate", "find_enclosing", "__len__"):
        assert name in msg
    assert "insert," not in msg and " insert" not in msg.split("method(s)")[1]


def test_invariant_error_names_the_component(install):
    ep = install(FACTORIES, dist="factories-dist")
    reg = load_registry()
    a = vmapsim.build(
        0, components={"free": "corrupting", "coalesce": "generic"}, registry=reg, debug=True
    )
    a.vmalloc(P)
    a.free.armed = "self"  # the component's own check() fails
    with pytest.raises(vmapsim.InvariantError) as err:
        a.vmalloc(P)
    assert str(err.value) == (
        f"component free=corrupting (plugin {ep}, distribution factories-dist 1.2.3): "
        "corrupting: node order broken"
    )
    a = vmapsim.build(
        0, components={"free": "corrupting", "coalesce": "generic"}, registry=reg, debug=True
    )
    a.free.armed = "lose"  # a rule across components (the partition) breaks
    with pytest.raises(vmapsim.InvariantError) as err:
        a.vmalloc(P)
    msg = str(err.value)
    assert "is lost (in no structure)" in msg
    assert f"[components: free=corrupting (plugin {ep}, distribution factories-dist 1.2.3);" in msg


WRAPPED = """
class Wrapped:
    # any FreeIndex that is not the rbtree plugin's own (delegates to one)

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __iter__(self):
        return iter(self.inner)

    def __len__(self):
        return len(self.inner)

def make(ctx):
    inner = vmapsim.framework.registry.get_registry().component("free", "rb").factory(ctx)
    return Wrapped(inner)

@hookimpl
def vmapsim_index_components():
    return [Component("twin", {"free"}, make)]
"""


def test_stage_coalescer_that_cannot_serve_the_free_index_says_use_generic(install, capsys):
    install(WRAPPED, ep="solo")
    reg = load_registry()
    with pytest.raises(vmapsim.ComponentError) as err:
        vmapsim.build(0, components={"free": "twin"}, registry=reg)
    msg = str(err.value)
    assert "coalesce=list-neighbour (plugin rbtree" in msg
    assert "--with coalesce=generic" in msg and "cannot serve free=twin" in msg
    a = vmapsim.build(0, components={"free": "twin", "coalesce": "generic"}, registry=reg)
    a.vfree(a.vmalloc(P))


def test_not_registered_lists_what_exists_and_points_to_plugins(install, capsys):
    ep = install(BROKEN["import error"][0])
    reg = quiet_registry()
    with pytest.raises(vmapsim.UnknownComponentError) as err, pytest.warns(vmapsim.PluginWarning):
        vmapsim.build(0, components={"busy": "rbb"}, registry=reg)
    msg = str(err.value)
    assert re.search(r"registered: (\S+, )*rb[;, (]", msg) and "did you mean 'rb'" in msg
    assert f"not loaded: {ep} (failed)" in msg and "vmapsim plugins" in msg
    assert main(["run", "--workload", "nope"]) == 2
    assert "vmapsim plugins" in capsys.readouterr().err


# -- disabling and strict mode -----------------------------------------------------------

SIDE_EFFECT = """
import os
open(os.environ["VMAPSIM_TEST_MARKER"], "w").close()
raise ImportError("should never be imported")
"""


def test_disable_skips_before_import(install, monkeypatch, tmp_path, capsys):
    marker = tmp_path / "imported"
    monkeypatch.setenv("VMAPSIM_TEST_MARKER", str(marker))
    ep = install(SIDE_EFFECT, dist="noisy-dist")
    monkeypatch.setenv(vmapsim.framework.registry.DISABLE_ENV, f"{ep},mapletree")
    reg = load_registry()
    assert not marker.exists()
    assert record(reg, ep).status == "disabled" and record(reg, "mapletree").status == "disabled"
    assert not reg.failures()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # disabled plugins are not failures: no warning
        vmapsim.build(0, registry=reg)
    with pytest.raises(vmapsim.UnknownComponentError, match=r"mapletree \(disabled\)"):
        vmapsim.build(0, components={"busy": "maple"}, registry=reg)
    monkeypatch.setenv(vmapsim.framework.registry.DISABLE_ENV, "noisy-dist")  # by distribution too
    assert record(load_registry(), ep).status == "disabled"
    assert not marker.exists()


def test_strict_mode_turns_problems_into_errors(install, monkeypatch, capsys):
    ep = install(BROKEN["hook returning None"][0], dist="sloppy-dist")
    with pytest.raises(vmapsim.PluginError, match=rf"(?s)strict.*{ep} \(sloppy-dist 1.2.3\).*None"):
        load_registry(strict=True)
    assert main(["--strict-plugins", "run", "--param", "nr_ops=10"]) == 2
    assert f"{ep} (sloppy-dist" in capsys.readouterr().err
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [])
    monkeypatch.setenv(vmapsim.framework.registry.STRICT_ENV, "1")
    assert main(["plugins"]) == 2
    assert "strict plugin mode" in capsys.readouterr().err
    monkeypatch.setenv(
        vmapsim.framework.registry.DISABLE_ENV, ep
    )  # strict and clean once it is off
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [])
    assert main(["plugins"]) == 0


# -- --debug shows progress ----------------------------------------------------------------


def test_debug_run_reports_progress_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [])
    assert main(["run", "--workload", "mixed", "--debug", "--param", "nr_ops=120"]) == 0
    captured = capsys.readouterr()
    assert "checking invariants after every operation" in captured.err
    done = re.search(r"(\d+) operations checked", captured.err)
    assert done and int(done.group(1)) >= 120
    assert "operations checked" not in captured.out


class _FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_debug_progress_on_a_terminal_is_a_rich_line():
    from vmapsim.tools.progress import debug_progress

    a = vmapsim.build(0, debug=True)
    check = a.check_invariants
    out = _FakeTerminal()
    with debug_progress(a, "mixed on maple:0", stream=out) as count:
        for _ in range(200):
            a.vfree(a.vmalloc(P))
    assert count[0] >= 400  # one check per vmalloc and per vfree
    assert a.check_invariants is check  # unwrapped again
    assert "mixed on maple:0" in out.getvalue()


# -- errors inside an operation, roles a stage lacks (issue #25 item 5) -------------

BOOM_OCCUPIED = """
def maple(ctx):
    return vmapsim.framework.registry.get_registry().component("occupied", "maple").factory(ctx)


class Boom:
    def __init__(self, inner, exc):
        self.inner = inner
        self.exc = exc

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __iter__(self):
        return iter(self.inner)

    def occupy(self, start, end, can_block):
        raise self.exc("bptree occupy blew up")


@hookimpl
def vmapsim_index_components():
    return [
        Component("boom", {"occupied"}, lambda ctx: Boom(maple(ctx), RuntimeError)),
        Component("zero", {"occupied"}, lambda ctx: Boom(maple(ctx), ZeroDivisionError)),
    ]
"""


@pytest.mark.parametrize(("name", "exc"), [("boom", "RuntimeError"), ("zero", "ZeroDivisionError")])
def test_an_exception_inside_an_operation_names_the_component(install, capsys, name, exc):
    ep = install(BOOM_OCCUPIED, dist="vmapsim-bptree", version="0.3.0")
    argv = ["run", "--stage", "4", "--with", f"occupied={name}", "--workload", "mixed"]
    assert main([*argv, "--param", "nr_ops=50"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"vmapsim: {exc} in component occupied={name} (plugin {ep}, distribution "
        "vmapsim-bptree 0.3.0): bptree occupy blew up"
    ), err
    assert "Traceback" not in err


def test_an_error_of_the_flow_itself_keeps_its_message():
    from vmapsim.framework.api import blame

    a = vmapsim.build(4)
    with pytest.raises(vmapsim.VmapError) as info:
        a.alloc_vmap_area(0, P, a.vmalloc_start, a.vmalloc_end)  # size 0: the flow refuses
    assert blame(info.value) is None


@pytest.mark.parametrize(("stage", "role"), [(0, "occupied"), (1, "occupied")])
def test_a_role_the_stage_lacks_is_refused(capsys, stage, role):
    name = {"occupied": "maple", "free": "rb", "coalesce": "generic"}[role]
    with pytest.raises(vmapsim.VmapArgumentError, match=f"has no {role!r} role") as info:
        vmapsim.build(stage, components={role: name})
    roles = ", ".join(sorted(vmapsim.build(stage).stage.components))
    assert f"its roles are {roles}" in str(info.value)
    assert main(["run", "--stage", str(stage), "--with", f"{role}={name}"]) == 2
    assert f"its roles are {roles}" in capsys.readouterr().err


def test_a_free_index_can_be_added_beside_the_occupied_tree():
    """design.md's ``--stage 7 --with free=NAME``: the free index is kept in step
    beside the occupied tree, which still answers the search (ADDABLE_ROLES)."""
    a = vmapsim.build(7, components={"free": "rb", "coalesce": "generic"})
    assert a.occupied is not None and a.free is not None
    ref = vmapsim.build(7)
    for alloc in (a, ref):
        alloc.vmalloc(3 * P)
        alloc.vfree(alloc.vmalloc(P))
    assert [va.va_start for va in a.busy_areas()] == [va.va_start for va in ref.busy_areas()]


def test_an_overlay_can_still_be_added():
    assert vmapsim.build(9, components={"overlay": "pcpu-bump"}).overlay is not None
