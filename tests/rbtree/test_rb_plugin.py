"""The plugin's hook implementations and factories."""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import (
    BusyIndex,
    Coalescer,
    Component,
    ComponentContext,
    ComponentError,
    Counters,
    FaultInjector,
    FreeIndex,
    LazyQueue,
    VmapArea,
)
from vmapsim.kernel.layout import VMAP_AREA_RB
from vmapsim_rbtree import plugin


def _ctx(role: str, shared: dict, node_id: int | None = None, **params) -> ComponentContext:
    return ComponentContext(
        role=role,
        node_id=node_id,
        counters=Counters(),
        warn=print,
        nr_vmap_nodes=1,
        params=params,
        faults=FaultInjector(),
        shared=shared,
    )


def _components() -> dict[tuple[str, str], Component]:
    out = {}
    for hook in (
        plugin.vmapsim_index_components,
        plugin.vmapsim_lazy_purge_components,
        plugin.vmapsim_coalescing_components,
    ):
        for comp in hook():
            assert isinstance(comp, Component)
            for role in comp.roles:
                out[(role, comp.name)] = comp
    return out


def test_registers_stage0_components() -> None:
    comps = _components()
    assert set(comps) == {
        ("free", "rb"),
        ("busy", "rb"),
        ("lazy", "rb"),
        ("coalesce", "list-neighbour"),
    }


def test_factories_fill_their_roles() -> None:
    comps = _components()
    shared: dict = {}
    free = comps[("free", "rb")].factory(_ctx("free", shared, layout=VMAP_AREA_RB))
    assert isinstance(free, FreeIndex) and shared["free"] is free
    co = comps[("coalesce", "list-neighbour")].factory(_ctx("coalesce", shared))
    assert isinstance(co, Coalescer) and co.free is free
    busy = comps[("busy", "rb")].factory(_ctx("busy", shared, node_id=3))
    lazy = comps[("lazy", "rb")].factory(_ctx("lazy", shared, node_id=3))
    assert isinstance(busy, BusyIndex) and isinstance(lazy, LazyQueue)
    assert busy is not comps[("busy", "rb")].factory(_ctx("busy", shared, node_id=4))
    co.merge_or_add(VmapArea(0x1000, 0x2000))
    assert len(free) == 1


def test_coalescer_needs_the_free_index() -> None:
    with pytest.raises(ComponentError, match="free=rb"):
        plugin.make_coalescer(_ctx("coalesce", {}))


def test_hookimpls_are_marked() -> None:
    for fn in (
        plugin.vmapsim_index_components,
        plugin.vmapsim_lazy_purge_components,
        plugin.vmapsim_coalescing_components,
    ):
        assert hasattr(fn, "vmapsim_impl")
    assert vmapsim.hookimpl


def test_hooks_through_pluggy() -> None:
    import pluggy

    from vmapsim.framework import hookspecs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    names = {
        (role, c.name)
        for res in (
            pm.hook.vmapsim_index_components(),
            pm.hook.vmapsim_lazy_purge_components(),
            pm.hook.vmapsim_coalescing_components(),
        )
        for comps in res
        for c in comps
        for role in c.roles
    }
    assert names == {("free", "rb"), ("busy", "rb"), ("lazy", "rb"), ("coalesce", "list-neighbour")}
