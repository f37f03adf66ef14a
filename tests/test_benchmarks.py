"""The benchmark scripts run, check themselves, and count what the issue asks.

Only tiny sizes here: the scripts' timings are not asserted (numbers go in
the notes), but their counted costs are the cost model's and are exact.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench_maple() -> dict:
    return runpy.run_path(str(BENCH / "bench_mapletree.py"))


@pytest.mark.parametrize("subject", ["MapleSubject", "MapleRangeSubject"])
def test_maple_lookups_visit_height_nodes(bench_maple, subject):
    """A walk visits exactly ``height`` nodes: a lowest fit that follows the
    gaps straight down, and each of the two walks of an exact-fit pair,
    which changes no node's shape."""
    make = bench_maple[subject]
    s = make(600)
    h = s.height()
    assert h >= 3
    c = s.counters
    if make.fits:
        c.reset()
        assert s.fit(2 * bench_maple["BLOCK"], 0) == bench_maple["hole_start"](599)
        assert c["nodes_visited"] == h
    picks = list(range(0, 598, 7))
    pair = s.prepare_pair(picks)
    c.reset()
    pair()
    assert c["nodes_visited"] == 2 * h * len(picks)
    assert sum(c[m] for m in bench_maple["SHAPE_METRICS"]) == 0
    assert s.height() == h


def test_bench_mapletree_cli(bench_maple, capsys):
    assert (
        bench_maple["main"](
            ["--sizes", "200,600", "--repeat", "1", "--ops", "20", "--range-tree", "--floor"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "maple-rng" in out and "rbtree" in out
    floor = out[out.index("floor:") :].splitlines()[3:5]
    assert [row.split()[0] for row in floor] == ["200", "600"]
    # the layer table ran (its uncounted reference fit agreed with the search)
    layers = out[out.index("layers:") :].splitlines()[4:6]
    assert [row.split()[0] for row in layers] == ["200", "600"]


def test_bench_node_layouts_descents_agree(capsys):
    """The layout benchmark checks every layout against a bisect first."""
    mod = runpy.run_path(str(BENCH / "bench_node_layouts.py"))
    assert mod["main"](["--sizes", "300,5000", "--repeat", "1", "--ops", "300"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[0] for r in rows[1:3]] == ["300", "5,000"]


def test_bench_stage0_runs_without_hook_calls(monkeypatch, capsys):
    monkeypatch.setattr(
        sys, "argv", ["bench_stage0.py", "--sizes", "200", "--pairs", "300", "--repeat", "1"]
    )
    runpy.run_path(str(BENCH / "bench_stage0.py"), run_name="__main__")
    row = capsys.readouterr().out.splitlines()[2].split()
    assert row[0] == "200"
    assert row[3] == "0"  # pluggy hook calls on the hot path
