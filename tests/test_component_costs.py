"""Costs per component (issue #25 item 4): counters split per role/component, a
component's node size, its own counters and its parameters."""

from __future__ import annotations

import json

import pytest

import vmapsim
import vmapsim.testing
from vmapsim import PAGE_SIZE as P
from vmapsim.cost.counters import COUNTER_NAMES, Counters
from vmapsim.framework.api import component_costs, split_options
from vmapsim.framework.registry import get_registry, load_registry
from vmapsim.tools.cli import main
from vmapsim_rbtree.free import RbFreeIndex


def _run(stage, **kw):
    a = vmapsim.build(stage, nr_cpus=2, **kw)
    get_registry().workload("mixed").run(a, seed=3, nr_ops=1500, max_live=300)
    a.purge_vmap_area_lazy()
    return a


@pytest.mark.parametrize("stage", [0, 3, 7, 12])
def test_per_component_counting_keeps_the_totals(stage):
    """Splitting per component changes no total, and the parts plus the flow's own
    counts add up to each total."""
    plain = _run(stage)
    split = _run(stage, component_counters=True)
    assert split.metrics.snapshot() == plain.metrics.snapshot()
    # attribute reads are the totals too (test_vmalloc's driver reads them so)
    assert all(getattr(split.metrics, n) == getattr(plain.metrics, n) for n in COUNTER_NAMES)
    costs = component_costs(split)
    flow = costs.pop("flow")["counters"]
    for name in COUNTER_NAMES:
        parts = sum(c["counters"].get(name, 0) for c in costs.values())
        assert parts + flow.get(name, 0) == plain.metrics[name], name
    # every role the stage fills has a part, named role=component
    for role, comp in split.stage.components.items():
        for member in comp.split("+"):
            assert f"{role}={member}" in costs
    # index work is the components', the operation counts the flow's
    assert flow.get("walks", 0) == 0 and flow["alloc_calls"] == plain.metrics.alloc_calls


def test_reset_clears_the_parts():
    a = _run(7, component_counters=True)
    a.metrics.reset()
    assert not any(a.metrics.values())
    assert all(not any(c["counters"].values()) for c in component_costs(a).values())


def test_without_the_split_there_are_no_parts():
    assert component_costs(_run(0)) == {}


class CountingFree(RbFreeIndex):
    """The rb free index, with an own counter and a parameter."""

    def __init__(self, counters, warn, step):
        super().__init__(counters, warn)
        self.step = step

    def find_vmap_lowest_match(self, size, align, vstart, adjust_search_size):
        self.counters.add("counting.searches", self.step)
        return super().find_vmap_lowest_match(size, align, vstart, adjust_search_size)


class Plugin:
    @vmapsim.hookimpl
    def vmapsim_index_components(self):
        return [
            vmapsim.Component(
                "counting",
                {"free"},
                lambda ctx: CountingFree(ctx.counters, ctx.warn, ctx.options["step"]),
                params={"step": 1},
                node_size=64,
                counters=("counting.searches",),
            ),
            vmapsim.Component(
                "small-nodes",
                {"occupied"},
                lambda ctx: get_registry().component("occupied", "maple").factory(ctx),
                node_size=100,
            ),
        ]


@pytest.fixture
def reg():
    return load_registry(plugins=[("counting", Plugin())])


def test_own_counters_params_and_node_size(reg):
    comps = {"free": "counting:step=5", "coalesce": "generic"}
    a = vmapsim.build(0, components=comps, registry=reg, component_counters=True)
    addrs = [a.vmalloc(P) for _ in range(10)]
    assert all(addrs)
    # ten searches, five each (the parameter reached the factory)
    assert a.metrics["counting.searches"] == 50
    costs = component_costs(a)
    mine = costs["free=counting"]
    assert mine["counters"]["counting.searches"] == 50
    assert mine["own_counters"] == ["counting.searches"] and mine["node_size"] == 64
    # the rb-tree embeds its nodes in the areas: none allocated, 0 B at any size
    assert mine["index_node_bytes"] == 0
    # without the split the own counter is in the totals as well
    b = vmapsim.build(0, components=comps, registry=reg)
    b.vmalloc(P)
    assert b.metrics["counting.searches"] == 5 and "counting.searches" in dict(b.metrics)


def test_node_size_prices_the_nodes():
    a = _run(7, component_counters=True)
    occ = component_costs(a)["occupied=maple"]
    part = a.metrics.parts["occupied=maple"]
    assert occ["node_size"] == 256
    assert occ["index_node_bytes"] == (part.node_allocs - part.node_frees) * 256 > 0


def test_unknown_parameter_is_refused_naming_the_valid_ones(reg):
    with pytest.raises(
        vmapsim.VmapArgumentError, match=r"no parameter\(s\) depth.*step \(default 1\)"
    ):
        vmapsim.build(
            0, components={"free": "counting:depth=2", "coalesce": "generic"}, registry=reg
        )
    with pytest.raises(vmapsim.VmapArgumentError, match="not KEY=VALUE"):
        vmapsim.build(
            0, components={"free": "counting:step=1,oops", "coalesce": "generic"}, registry=reg
        )


def test_split_options_forms():
    assert split_options("free", "rb") == ("rb", {})
    assert split_options("free", "rbtree:rb") == ("rbtree:rb", {})
    assert split_options("occupied", "bpt:order=16,fast=true") == (
        "bpt",
        {"order": 16, "fast": True},
    )
    assert split_options("occupied", "p:bpt:order=0x10,mode=x") == (
        "p:bpt",
        {"order": 16, "mode": "x"},
    )


@pytest.mark.parametrize("name", ["walks", "lock.x", "Bad Name"])
def test_own_counter_names_must_be_new(name):
    with pytest.raises(ValueError, match="counters"):
        vmapsim.Component("x", {"free"}, lambda ctx: None, counters=(name,))


def test_node_size_must_be_positive():
    with pytest.raises(ValueError, match="node_size"):
        vmapsim.Component("x", {"free"}, lambda ctx: None, node_size=0)


def test_counters_add_and_mapping():
    c = Counters()
    c.add("mine.x", 2)
    assert c["mine.x"] == 2 and list(c)[len(COUNTER_NAMES)] == "mine.x"
    part = c.attach("free=y")
    part.add("mine.x")
    part.walks += 4
    c.walks += 1
    assert c["mine.x"] == 3 and c.walks == 5 and c.own()["walks"] == 1


def test_run_reports_per_component(capsys):
    assert (
        main(
            [
                "run",
                "--stage",
                "7",
                "--workload",
                "mixed",
                "--param",
                "nr_ops=300",
                "--per-component",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    costs = out["component_costs"]
    assert {"occupied=maple", "busy=maple-occupied", "lazy=maple", "flow"} <= set(costs)
    total = out["metrics"]["walks"]
    assert sum(c["counters"].get("walks", 0) for c in costs.values()) == total
    assert (
        main(
            [
                "run",
                "--stage",
                "7",
                "--workload",
                "mixed",
                "--param",
                "nr_ops=300",
                "--per-component",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "counters per component:" in text and "occupied=maple  (index nodes" in text


def test_compare_results_carry_per_component_costs():
    from vmapsim.tools.compare import compare

    res = compare(["0", "7"], workload="mixed", params={"nr_ops": 200}, jobs=1, per_component=True)
    by_key = {s["key"]: s for s in res["stages"]}
    assert "free=rb" in by_key["maple:0"]["component_costs"]
    assert "occupied=maple" in by_key["maple:7"]["component_costs"]
    plain = compare(["7"], workload="mixed", params={"nr_ops": 200}, jobs=1)
    assert plain["stages"][0]["component_costs"] == {}
    assert plain["stages"][0]["metrics"] == by_key["maple:7"]["metrics"]


def test_memory_rows_price_each_components_nodes(reg):
    from vmapsim.tools.compare import memory_report

    a = vmapsim.build(
        4, components={"occupied": "small-nodes"}, registry=reg, component_counters=True
    )
    reg.workload("mixed").run(a, seed=2, nr_ops=600, max_live=200)
    parts = a.metrics.parts
    occ = parts["occupied=small-nodes"]
    others = [p for label, p in parts.items() if label != "occupied=small-nodes"]
    want = (occ.node_allocs - occ.node_frees) * 100 + sum(
        (p.node_allocs - p.node_frees) * 256 for p in others
    )
    assert occ.node_allocs > occ.node_frees
    assert memory_report(a)["index_node_bytes"] == want
    # without the split every node is priced at a maple node's 256 B
    b = vmapsim.build(4, components={"occupied": "small-nodes"}, registry=reg)
    reg.workload("mixed").run(b, seed=2, nr_ops=600, max_live=200)
    nodes = b.metrics.node_allocs - b.metrics.node_frees
    assert memory_report(b)["index_node_bytes"] == nodes * 256


class TestKitWithParameters(vmapsim.testing.FreeIndexContract):
    """The kit takes a component with its parameters (``NAME:key=value``)."""

    component = "counting:counting:step=2"

    @pytest.fixture(scope="class")
    @classmethod
    def vmapsim_registry(cls):
        return load_registry(plugins=[("counting", Plugin())])

    def test_the_parameter_reached_the_factory(self, make):
        built = make()
        assert built.ctx.options["step"] == 2 and built.obj.step == 2
