"""A plugin's own stage series derived from the built-in one
(``vmapsim.derive_series``, docs/plugins.md "A series of your own"), and
benchmarks/bench_stages.py taking compare's column spec and listing each
stage once when such a series is installed (issue #25 item 3)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

import vmapsim
from vmapsim.framework.registry import load_registry
from vmapsim.framework.series import STAGES

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_stages.py"
P = vmapsim.PAGE_SIZE
#: examples/sortedfree's free index, with the coalescer any free index takes
SORTED = {"free": "sorted", "coalesce": "generic"}


class SortedSeriesPlugin:
    """What a third-party plugin writes to ship the series with its index."""

    @vmapsim.hookimpl
    def vmapsim_stages(self):
        return vmapsim.derive_series("sortedfree", SORTED)


@pytest.fixture(scope="module")
def registry():
    return load_registry(plugins=[("sortedfree-series", SortedSeriesPlugin())])


def test_derive_swaps_only_where_the_stage_fills_the_role():
    got = vmapsim.derive_series("bp", {"occupied": "bptree"})
    assert [s.number for s in got] == [s.number for s in STAGES]
    for new, old in zip(got, STAGES, strict=True):
        assert new.series == "bp" and new.key == f"bp:{old.number}"
        assert new.layout == old.layout and dict(new.features) == dict(old.features)
        if "occupied" in old.components:
            assert new.components["occupied"] == "bptree"
            assert new.title == f"{old.title} [occupied=bptree]"
        else:  # stages 0-1 have no occupied index: as they are
            assert dict(new.components) == dict(old.components) and new.title == old.title
    kept = vmapsim.derive_series("bp", {"occupied": "bptree"}, skip_unchanged=True)
    assert [s.number for s in kept] == [s.number for s in STAGES if "occupied" in s.components]


def test_derive_stage_filter_removal_added_roles_and_callables():
    got = vmapsim.derive_series("noov", {"overlay": None}, stages=range(9, 13))
    assert [s.number for s in got] == [9, 10, 11, 12]
    assert all("overlay" not in s.components for s in got)
    assert got[1].title.endswith("[-overlay]") and not got[0].title.endswith("]")
    added = vmapsim.derive_series("ov", {"overlay": "pcpu-bump"}, only_where_filled=False)
    assert all(s.components["overlay"] == "pcpu-bump" for s in added)
    per = vmapsim.derive_series(
        "per", lambda st: SORTED if st.number < 3 else {}, stages=[0, 1, 2, 3]
    )
    assert [s.components["free"] for s in per] == ["sorted"] * 3 + [STAGES[3].components["free"]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"swaps": {"tree": "x"}}, ValueError, "unknown role 'tree'"),
        ({"swaps": ["free"]}, TypeError, "swaps: must be a mapping"),
        ({"swaps": {"free": "x"}, "stages": [99]}, ValueError, "no stage left"),
        ({"swaps": {"free": "sorted"}}, ValueError, "must fill 'coalesce'"),
    ],
)
def test_derive_refusals(kwargs, error, message):
    swaps = kwargs.pop("swaps")
    base = [s for s in STAGES if s.number == 0] if "must fill" in message else None
    with pytest.raises(error, match=message):
        if base is not None:  # a free index without a coalescer at stage 0
            vmapsim.derive_series("x", swaps, base=[_without_coalesce(base[0])], **kwargs)
        else:
            vmapsim.derive_series("x", swaps, **kwargs)


def _without_coalesce(stage):
    import attrs

    comps = {k: v for k, v in stage.components.items() if k != "coalesce"}
    return attrs.evolve(stage, components={**comps, "occupied": "maple"})


def test_the_derived_series_registers_builds_and_runs(registry):
    assert "sortedfree:3" in registry.stage_keys() and "maple:3" in registry.stage_keys()
    a = vmapsim.build("sortedfree:3", registry=registry, debug=True)
    assert a.stage.components["free"] == "sorted"
    addrs = [a.vmalloc(3 * P) for _ in range(20)]
    assert None not in addrs
    for x in addrs:
        a.vfree(x)
    a.check_invariants()


def test_bench_stages_lists_each_stage_once_with_a_plugin_series(registry):
    bench = runpy.run_path(str(BENCH))
    cols = bench["parse_stages"]("all", registry)
    assert [c.key for c in cols] == [f"maple:{s.number}" for s in STAGES]
    cols = bench["parse_stages"]("0,4 0 sortedfree:0..1 7+free=sorted+coalesce=generic", registry)
    assert [(c.key, dict(c.swaps)) for c in cols] == [
        ("maple:0", {}),
        ("maple:4", {}),
        ("sortedfree:0", {}),
        ("sortedfree:1", {}),
        ("maple:7", SORTED),
    ]
    assert cols[-1].label == "7+free=sorted+coalesce=generic"


def test_bench_stages_runs_a_column_spec(registry, capsys):
    bench = runpy.run_path(str(BENCH))
    argv = ["0", "0+free=sorted+coalesce=generic", "sortedfree:2", "--sizes", "50"]
    res = bench["main"]([*argv, "--pairs", "20", "--repeat", "1", "--patterns", "pairs"], registry)
    out = capsys.readouterr().out
    labels = ["0 upstream rb-tree", "0 upstream rb-tree+free=sorted+coalesce=generic"]
    labels.append("sortedfree:2")
    assert res["stages"] == labels
    assert [r["stage"] for r in res["rows"]] == labels
    assert all(label in out for label in labels)
    # the rb-tree and the sorted list count their own walks: the columns differ
    rows = {r["stage"]: r for r in res["rows"]}
    assert rows[labels[0]]["augment_updates"] > 0 == rows[labels[1]]["augment_updates"]
