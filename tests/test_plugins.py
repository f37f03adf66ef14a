"""The plugin registry: hooks stay off the hot path, one plugin's failure stays
its own, third-party components plug in, and names resolve (or fail) clearly."""

from __future__ import annotations

import importlib.metadata

import attrs
import pluggy
import pytest

import vmapsim
import vmapsim.framework.builtin
import vmapsim.framework.registry
from vmapsim import Component, Stage, Workload
from vmapsim.framework.registry import load_registry

PAGE = vmapsim.PAGE_SIZE


def _factory(_ctx):  # a valid callable for descriptors that are never built
    raise AssertionError("never built")


def _record(reg, name):
    found = [r for r in reg.plugins if r.name == name]
    assert len(found) == 1, f"expected one record for {name!r}: {reg.plugins}"
    return found[0]


# -- hooks are not on the per-operation path ----------------------------------


def test_hook_call_counter_counts_registry_builds():
    before = vmapsim.framework.registry.HOOK_CALLS[0]
    load_registry()
    after = vmapsim.framework.registry.HOOK_CALLS[0]
    assert after > 0
    # each implemented hook of each plugin is called once (pluggy marks them)
    modules = [vmapsim.framework.builtin] + [
        ep.load() for ep in importlib.metadata.entry_points(group="vmapsim")
    ]
    impls = sum(hasattr(getattr(m, n), "vmapsim_impl") for m in modules for n in dir(m))
    assert impls >= 3 + 3 + 2  # vmapsim's own, rbtree's, mapletree's at least
    assert after - before == impls


def test_no_hook_call_per_vmalloc_or_vfree(monkeypatch):
    # Count every pluggy hook call independently of HOOK_CALLS, too.
    calls = []
    original = pluggy.HookCaller.__call__

    def counting_call(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pluggy.HookCaller, "__call__", counting_call)
    load_registry()
    assert calls, "the pluggy call monitor does not see registry builds"
    assert vmapsim.framework.registry.HOOK_CALLS[0] > 0

    a = vmapsim.build(stage=0)
    calls.clear()
    before = vmapsim.framework.registry.HOOK_CALLS[0]
    for _ in range(10_000):
        addr = a.vmalloc(4096)
        assert addr is not None
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    assert vmapsim.framework.registry.HOOK_CALLS[0] == before
    assert calls == []
    a.check_invariants()


# -- one plugin's failure is its own ------------------------------------------


class RaisingPlugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        raise RuntimeError("index hook exploded")


class NotAComponentPlugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        return [{"name": "dict-index", "roles": ["free"]}]


class BareNonComponentPlugin:
    @vmapsim.hookimpl
    def vmapsim_lazy_purge_components(self):
        return 42


class DuplicatePlugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        # "fine" is valid on its own and is kept; only the reserved name is rejected
        return [
            Component("fine", {"busy"}, _factory),
            Component("rb", {"free"}, _factory),
        ]


class WrongRolePlugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        return [Component("sneaky", {"lazy"}, _factory)]


class MisspelledHookPlugin:
    @vmapsim.hookimpl
    def vmapsim_index_component(self):  # no such hook
        return []


class GoodPlugin:
    @vmapsim.hookimpl
    def vmapsim_lazy_purge_components(self):
        return [Component("good-lazy", {"lazy"}, _factory)]


BAD = {
    "raising": (RaisingPlugin, ["RuntimeError", "index hook exploded"]),
    "notcomp": (NotAComponentPlugin, ["vmapsim_index_components", "not a vmapsim.Component"]),
    "bare": (BareNonComponentPlugin, ["vmapsim_lazy_purge_components", "42", "Component"]),
    "dup": (DuplicatePlugin, ["free=rb", "reserved", "rbtree", "distribution vmapsim"]),
    "wrongrole": (WrongRolePlugin, ["vmapsim_index_components", "sneaky", "lazy"]),
    "misspelled": (MisspelledHookPlugin, ["vmapsim_index_component"]),
}


def test_bad_plugins_are_recorded_and_the_rest_works():
    reg = load_registry(
        plugins=[(name, cls()) for name, (cls, _) in BAD.items()] + [("good", GoodPlugin())]
    )
    for name, (_, words) in BAD.items():
        rec = _record(reg, name)
        assert not rec.ok, rec
        assert rec.distribution == "(local)"
        text = " ".join(rec.reasons())
        for word in words:
            assert word in text, (name, text)
        if name != "dup":
            assert rec.components == ()

    # only the rejected registration is dropped: the duplicate plugin's valid one stays
    assert _record(reg, "dup").components == ("busy=fine",)
    assert reg.component_origin[("busy", "fine")] == "dup"
    # the built-in rb free index is still rbtree's
    assert reg.component_origin[("free", "rb")] == "rbtree"
    # nothing from the failed plugins leaked in
    assert ("lazy", "sneaky") not in reg.components

    for name in ("vmapsim", "rbtree", "mapletree", "good"):
        assert _record(reg, name).ok
    assert reg.component("lazy", "good-lazy").name == "good-lazy"

    with pytest.warns(vmapsim.PluginWarning, match=r"6 plugin\(s\) failed.*vmapsim plugins"):
        a = vmapsim.build(0, registry=reg)
    addr = a.vmalloc(3 * PAGE)
    assert addr is not None
    a.vfree(addr)
    a.purge_vmap_area_lazy()
    a.check_invariants()


def test_entry_point_that_fails_to_import(monkeypatch):
    real = importlib.metadata.entry_points
    bogus = importlib.metadata.EntryPoint(
        name="broken", value="no_such_module_xyz", group="vmapsim"
    )

    def fake_entry_points(**kwargs):
        eps = list(real(**kwargs))
        if kwargs.get("group") == "vmapsim":
            eps.append(bogus)
        return eps

    # vmapsim.framework.registry calls ``md.entry_points(group=...)`` on importlib.metadata
    monkeypatch.setattr(vmapsim.framework.registry.md, "entry_points", fake_entry_points)
    reg = load_registry()
    rec = _record(reg, "broken")
    assert not rec.ok
    assert rec.error.startswith("import failed: ModuleNotFoundError")
    assert "no_such_module_xyz" in rec.error
    assert rec.module == "no_such_module_xyz"
    assert _record(reg, "rbtree").ok
    assert _record(reg, "mapletree").ok
    with pytest.warns(vmapsim.PluginWarning, match=r"broken"):
        a = vmapsim.build(0, registry=reg)
    assert a.vmalloc(PAGE) is not None


def test_plugin_can_ship_its_own_stage_and_workload():
    base = load_registry(entry_points=True)
    stage0 = base.stage(0)

    def tiny(allocator, **_params):
        addr = allocator.vmalloc(PAGE)
        allocator.vfree(addr)
        return addr

    class SeriesPlugin:
        @vmapsim.hookimpl
        def vmapsim_stages(self):
            return [Stage(3, "my stage", dict(stage0.components), stage0.layout, series="mine")]

        @vmapsim.hookimpl
        def vmapsim_workloads(self):
            return [Workload("tiny", "one vmalloc", tiny)]

    class ClashingSeriesPlugin:
        @vmapsim.hookimpl
        def vmapsim_stages(self):
            return [Stage(0, "clash", dict(stage0.components), stage0.layout)]

    reg = load_registry(plugins=[("series", SeriesPlugin()), ("clash", ClashingSeriesPlugin())])
    assert _record(reg, "series").ok
    clash = _record(reg, "clash")
    assert not clash.ok and "maple:0" in " ".join(clash.reasons())
    assert "reserved by built-in plugin vmapsim" in clash.reasons()[0]
    assert reg.stage(0).title == stage0.title  # not replaced by the clashing plugin
    with pytest.warns(vmapsim.PluginWarning, match="clash"):
        a = vmapsim.build("mine:3", registry=reg)
    assert a.stage.title == "my stage"
    assert reg.workload("tiny").run(a) is not None


# -- a third-party component, end to end --------------------------------------


FREE_INDEX_METHODS = (
    "find_vmap_lowest_match",
    "insert",
    "unlink",
    "propagate",
    "next_block",
    "prev_block",
    "first",
    "last",
    "find_enclosing",
    "check",
)


class CountingFreeIndex:
    """Delegates every FreeIndex method to an inner index, counting calls."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = dict.fromkeys((*FREE_INDEX_METHODS, "__iter__", "__len__"), 0)

    def _call(self, name, *args, **kwargs):
        self.calls[name] += 1
        return getattr(self.inner, name)(*args, **kwargs)

    def find_vmap_lowest_match(self, size, align, vstart, adjust_search_size):
        return self._call("find_vmap_lowest_match", size, align, vstart, adjust_search_size)

    def insert(self, va, near=None):
        return self._call("insert", va, near)

    def unlink(self, va):
        return self._call("unlink", va)

    def propagate(self, va):
        return self._call("propagate", va)

    def next_block(self, va):
        return self._call("next_block", va)

    def prev_block(self, va):
        return self._call("prev_block", va)

    def first(self):
        return self._call("first")

    def last(self):
        return self._call("last")

    def find_enclosing(self, addr):
        return self._call("find_enclosing", addr)

    def check(self):
        return self._call("check")

    def __iter__(self):
        self.calls["__iter__"] += 1
        return iter(self.inner)

    def __len__(self):
        self.calls["__len__"] += 1
        return len(self.inner)


def _thirdparty_plugin(base):
    """A plugin wrapping the rb free index; ``built`` collects the wrappers."""
    rb_free = base.component("free", "rb")
    rb_coalesce = base.component("coalesce", "list-neighbour")
    built = []

    def make_free(ctx):
        inner = rb_free.factory(ctx)
        ctx.shared["counting.inner"] = inner
        wrapper = CountingFreeIndex(inner)
        built.append(wrapper)
        return wrapper

    def make_coalesce(ctx):
        # list-neighbour edits the rb index's internals, so it gets the inner index
        inner = ctx.shared["counting.inner"]
        return rb_coalesce.factory(attrs.evolve(ctx, shared={**ctx.shared, "free": inner}))

    def make_empty(_ctx):
        return object()

    class ThirdParty:
        @vmapsim.hookimpl
        def vmapsim_index_components(self):
            return [
                Component("counting", {"free"}, make_free, "rb free index, counted"),
                Component("hollow", {"free"}, make_empty, "lacks every FreeIndex method"),
            ]

        @vmapsim.hookimpl
        def vmapsim_coalescing_components(self):
            return [Component("counting", {"coalesce"}, make_coalesce)]

    return ThirdParty(), built


def test_third_party_free_index_is_used_end_to_end():
    plugin, built = _thirdparty_plugin(load_registry())
    reg = load_registry(plugins=[("thirdparty", plugin)])
    rec = _record(reg, "thirdparty")
    assert rec.ok, rec.error
    assert "free=counting" in rec.components

    # The stage-0 coalescer (list-neighbour) needs the rb index itself, so the
    # wrapper ships its own coalesce component alongside.
    a = vmapsim.build(0, components={"free": "counting", "coalesce": "counting"}, registry=reg)
    assert a.components["free"].name == "counting"
    assert len(built) == 1 and a.free is built[0]
    wrapper = built[0]
    assert isinstance(wrapper, vmapsim.FreeIndex)

    live = []
    for i in range(300):
        addr = a.vmalloc((1 + i % 7) * PAGE)
        assert addr is not None
        live.append(addr)
        if i % 3 == 2:
            a.vfree(live.pop(len(live) // 2))
    for addr in live:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    a.check_invariants()

    assert wrapper.calls["find_vmap_lowest_match"] > 0
    assert wrapper.calls["check"] > 0  # check_invariants went through the wrapper
    assert wrapper.calls["insert"] >= 1  # vmap_init_free_space
    # everything was given back: one free block, [1, ULONG_MAX)
    blocks = list(wrapper.inner)
    assert [(b.va_start, b.va_end) for b in blocks] == [(1, vmapsim.ULONG_MAX)]


def test_factory_without_free_index_methods_fails_at_build():
    plugin, _ = _thirdparty_plugin(load_registry())
    reg = load_registry(plugins=[("thirdparty", plugin)])
    with pytest.raises(vmapsim.ComponentError, match=r"hollow.*thirdparty.*FreeIndex"):
        vmapsim.build(0, components={"free": "hollow"}, registry=reg)


# -- resolving names ----------------------------------------------------------


def test_unknown_component_lists_registered_names():
    with pytest.raises(vmapsim.UnknownComponentError) as err:
        vmapsim.build(0, components={"free": "nope"})
    msg = str(err.value)
    assert "nope" in msg and "free" in msg
    assert "rb" in msg.split("registered")[-1]


def test_unknown_role_names_components_argument():
    with pytest.raises(vmapsim.VmapArgumentError) as err:
        vmapsim.build(0, components={"nope": "rb"})
    assert err.value.argument == "components"
    assert "components" in str(err.value) and "nope" in str(err.value)


@pytest.mark.parametrize("spec", [99, "99", "x:1", "maple:99", "abc", "", "maple:", -1, 1.5, True])
def test_unknown_stage(spec):
    with pytest.raises(vmapsim.UnknownStageError):
        vmapsim.build(spec)


def test_unknown_stage_message_lists_stages():
    with pytest.raises(vmapsim.UnknownStageError, match=r"maple:0"):
        vmapsim.build(99)


@pytest.mark.parametrize("spec", [0, "0", "maple:0", " maple:0 ", "maple:00"])
def test_stage_spec_forms_resolve_to_the_same_stage(spec):
    reg = vmapsim.framework.registry.get_registry()
    assert reg.stage(spec) is reg.stage(0)
    assert vmapsim.build(spec).stage is reg.stage(0)
    assert reg.stage(0).key == "maple:0"


# -- descriptor validation ----------------------------------------------------


@pytest.mark.parametrize("name", ["", "Rb", "a b", "-rb", "rb!", 5, None])
def test_component_bad_name(name):
    with pytest.raises(ValueError, match=r"^name:"):
        Component(name, {"free"}, _factory)


@pytest.mark.parametrize("roles", [set(), {"nope"}, {"free", "freee"}])
def test_component_bad_roles(roles):
    with pytest.raises(ValueError, match=r"^roles:"):
        Component("ok", roles, _factory)


def test_component_accepts_good_names_and_roles():
    c = Component("my-index_2.0", ["free", "busy"], _factory)
    assert c.roles == frozenset({"free", "busy"})


def _layout():
    return vmapsim.framework.registry.get_registry().stage(0).layout


FULL = {"free": "rb", "busy": "rb", "lazy": "rb", "coalesce": "list-neighbour"}


@pytest.mark.parametrize("missing", sorted(FULL))
def test_stage_missing_a_role(missing):
    comps = {r: n for r, n in FULL.items() if r != missing}
    with pytest.raises(ValueError, match=rf"components:.*{missing}"):
        Stage(1, "t", comps, _layout())


def test_stage_other_fields_validated():
    with pytest.raises(ValueError, match=r"components:.*nope"):
        Stage(1, "t", {**FULL, "nope": "x"}, _layout())
    with pytest.raises(ValueError, match=r"series:"):
        Stage(1, "t", FULL, _layout(), series="My Series")
    with pytest.raises(ValueError, match=r"number"):
        Stage(-1, "t", FULL, _layout())
    with pytest.raises(ValueError, match=r"title"):
        Stage(1, "", FULL, _layout())
    # overlay is optional; a full stage is accepted
    assert Stage(1, "t", {**FULL, "overlay": "x"}, _layout()).key == "maple:1"


def test_workload_bad_name():
    with pytest.raises(ValueError, match=r"^name:"):
        Workload("Mixed Up", "s", _factory)
