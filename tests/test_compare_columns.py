"""compare's columns, tables and timings (issue #24, items 2, 4, 8, 9)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

import vmapsim
from vmapsim.errors import UnknownStageError
from vmapsim.framework.registry import get_registry
from vmapsim.tools.cli import main
from vmapsim.tools.compare import compare, parse_columns, within_spread
from vmapsim.tools.report import render, to_terminal

TINY = {"run_test_mask": 1, "test_loop_count": 5, "test_repeat_count": 1}


@pytest.fixture(scope="module")
def thirteen():
    """Every stage (13 columns), one tiny subtest, two repetitions."""
    return compare(["all"], params=TINY, reps=2, jobs=1)


@pytest.fixture(scope="module")
def swapped():
    """The plugin beside the built-in it replaces, and a stage twice."""
    return compare(
        ["0", "0", "4+free=sorted", "7+free=skiplist", "7+free=sorted+coalesce=generic"],
        params=TINY,
        reps=1,
        jobs=1,
    )


# -- item 4: never a cut number, stage 0 named for what it is ----------------------


def test_a_13_stage_table_at_80_columns_cuts_no_cell(thirteen):
    buf = io.StringIO()
    to_terminal(thirteen, file=buf, width=80)
    text = buf.getvalue()
    assert "…" not in text  # rich's ellipsis: a truncated cell
    assert max(len(line) for line in text.splitlines() if line.startswith(("┃", "│"))) <= 80
    # every cell of every column is printed whole, in a part of the split table
    from vmapsim.tools.report import _metric_rows

    for table in thirteen["tests"]:
        stages, body = _metric_rows(table)
        for label in stages:
            assert re.search(rf"┃ *{re.escape(label)} *┃", text), label
        for row in body:
            for cell in row[1:]:
                assert f" {cell} " in text, cell
    assert "(1/" in text and "maple:0" not in text.split("\n", 1)[1].split("fix_size")[1]


def test_stage_0_is_labelled_upstream_rb_tree_in_every_format(thirteen):
    assert thirteen["stages"][0]["label"] == "0 upstream rb-tree"
    for fmt in ("terminal", "markdown", "summary", "csv"):
        assert "0 upstream rb-tree" in render(thirteen, fmt), fmt


def test_stages_lists_what_tells_stages_apart(capsys):
    assert main(["stages", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["stages"]
    assert [r["key"] for r in rows] == get_registry().stage_keys()
    assert rows[0]["label"] == "0 upstream rb-tree"
    for group in ((4, 5, 6), (8, 9), (10, 11, 12)):
        picked = [r for r in rows if r["series"] == "maple" and r["number"] in group]
        shown = {
            (r["title"], r["summary"], json.dumps(r["components"]), json.dumps(r["features"]))
            for r in picked
        }
        assert len(shown) == len(group), group
    assert main(["stages"]) == 0
    text = capsys.readouterr().out
    blocks = re.split(r"^(?=maple:)", text, flags=re.M)
    by_key = {b.split()[0]: b for b in blocks if b.strip()}
    for group in ((4, 5, 6), (8, 9), (10, 11, 12)):
        body = [by_key[f"maple:{n}"].split("\n", 1)[1] for n in group]
        assert len(set(body)) == len(group), group  # the lines under the titles differ


# -- item 2: the simulator's clock, measured fairly, shown honestly -------------------


def test_timings_are_the_simulators_last_and_ranged(thirteen):
    from vmapsim.tools.report import columns

    cols = [c.title for c in columns(thirteen["tests"][0])]
    assert cols[-3:] == ["sim µs/loop", "sim range µs", "sim vs first"]
    assert cols[2] == "model cycles/loop"  # the modelled time is the headline
    row = thirteen["tests"][0]["rows"][1]
    t = row["time_per_loop_us"]
    assert len(t["reps"]) == 2 and t["min"] <= t["median"] <= t["max"]


def test_one_repetition_shows_no_spread_and_no_verdict(swapped):
    text = render(swapped, "markdown")
    assert "1 rep: none" in text
    assert "spread µs | 0.000" not in text and "| 0.000 |" not in text.split("sim range")[0]
    row = swapped["tests"][0]["rows"][1]
    assert row["within_spread"] is None
    assert "%  ?" in text or "% ?" in text


def test_within_spread_is_range_overlap():
    a = {"reps": [1.0, 2.0], "min": 1.0, "max": 2.0}
    assert within_spread(a, {"reps": [1.5, 3.0], "min": 1.5, "max": 3.0}) is True
    assert within_spread(a, {"reps": [2.5, 3.0], "min": 2.5, "max": 3.0}) is False
    assert within_spread(a, {"reps": [9.0], "min": 9.0, "max": 9.0}) is None


def test_the_default_is_several_repetitions_in_an_interleaved_order(monkeypatch):
    import vmapsim.tools.compare as cmp

    order = []
    real = cmp.run_task

    def spy(task):
        order.append((task["rep"], task["label"], task["part"]))
        return real(task)

    monkeypatch.setattr(cmp, "run_task", spy)
    res = cmp.compare(["0", "4", "7"], params={**TINY, "run_test_mask": 9}, jobs=1)
    assert res["reps"] == cmp.DEFAULT_REPS >= 3
    per_rep = [[(lab, p) for r, lab, p in order if r == rep] for rep in range(res["reps"])]
    # each repetition runs every (column, subtest) once, in an order of its own
    assert all(sorted(x) == sorted(per_rep[0]) for x in per_rep)
    assert len({tuple(x) for x in per_rep}) > 1
    # no column is always first
    assert len({x[0][0] for x in per_rep}) > 1 or len({tuple(x) for x in per_rep}) == len(per_rep)


# -- item 8: columns with swaps ---------------------------------------------------------


def test_parse_columns():
    reg = get_registry()
    cols = parse_columns(["0", "0", "7+free=sorted+coalesce=generic", "10..11+overlay=x"], reg)
    assert [c.label for c in cols] == [
        "0 upstream rb-tree",
        "0 upstream rb-tree #2",
        "7+free=sorted+coalesce=generic",
        "10+overlay=x",
        "11+overlay=x",
    ]
    assert cols[2].swaps == {"free": "sorted", "coalesce": "generic"}
    with pytest.raises(UnknownStageError, match="unknown role 'fre'"):
        parse_columns(["7+fre=sorted"], reg)
    with pytest.raises(UnknownStageError, match="not ROLE=NAME"):
        parse_columns(["7+free"], reg)


def test_swapped_columns_side_by_side_and_skipped_ones_with_the_reason(swapped):
    labels = [s["label"] for s in swapped["stages"]]
    assert labels == [
        "0 upstream rb-tree",
        "0 upstream rb-tree #2",
        "4+free=sorted",
        "7+free=sorted+coalesce=generic",
    ]
    rows = swapped["tests"][0]["rows"]
    assert rows[0]["counters"] == rows[1]["counters"]  # 0 0: two columns, same counters
    assert rows[2]["components"]["free"] == "sorted" and rows[0]["components"]["free"] == "rb"
    assert rows[3]["components"]["coalesce"] == "generic"
    (skip,) = swapped["skipped"]
    assert skip["column"] == "7+free=skiplist"
    assert "'skiplist' is not registered" in skip["reason"]


@pytest.mark.parametrize("fmt", ["terminal", "markdown", "summary", "csv", "json"])
def test_labels_and_components_in_every_format(swapped, fmt):
    text = render(swapped, fmt)
    assert "4+free=sorted" in text
    if fmt == "json":
        doc = json.loads(text)
        comps = {s["label"]: s["components"] for s in doc["stages"]}
        assert comps["4+free=sorted"]["free"] == "sorted"
        assert comps["0 upstream rb-tree"]["free"] == "rb"
        return
    assert "free=sorted" in text and "free=rb" in text
    if fmt != "json":
        assert "7+free=skiplist" in text if fmt != "csv" else True
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        comps = {r["column"]: r["components"] for r in rows}
        assert "free=sorted" in comps["4+free=sorted"]
        assert "free=rb" in comps["0 upstream rb-tree"]


def test_cli_compare_columns_and_missing_role(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["compare", "0", "7+free=sorted", "--mask", "1", "--test-loop-count", "5"]
    rc = main([*argv, "--reps", "1", "--jobs", "1", "--format", "csv"])
    _out, err = capsys.readouterr()
    assert rc == 0
    assert "skipped column 7+free=sorted: role 'coalesce' is missing" in err
    assert "--with coalesce=generic" in err
    rc = main(["compare", "7+free=nope", "--mask", "1", "--reps", "1", "--jobs", "1"])
    _out, err = capsys.readouterr()
    assert rc == 2 and "no column can be built" in err


# -- item 9: memory rows --------------------------------------------------------------


def test_memory_rows_split_the_struct_shrink_from_the_areas(thirteen):
    for table in thirteen["tests"]:
        base = table["rows"][0]["memory"]
        for row in table["rows"]:
            m = row["memory"]
            delta = m["peak_vmap_area_bytes"] - base["peak_vmap_area_bytes"]
            assert m["delta_bytes_struct_shrink"] + m["delta_bytes_areas"] == delta
            want = base["peak_vmap_area_objects"] * (
                m["struct_vmap_area_size"] - base["struct_vmap_area_size"]
            )
            assert m["delta_bytes_struct_shrink"] == want
        by_stage = {r["stage"]: r["memory"] for r in table["rows"]}
        assert by_stage["maple:4"]["delta_bytes_struct_shrink"] < 0  # 72 -> 48 B


def test_overlay_back_pointer_arrays_are_in_the_memory_rows():
    res = compare(["10", "11"], params=TINY, reps=1, jobs=1)
    (table,) = res["tests"]
    ten, eleven = (r["memory"]["overlay_bytes_end"] for r in table["rows"])
    # patch 10: per CPU only {base, limit, bump}, three unsigned longs (one CPU here)
    assert ten == 3 * 8
    # patch 11: each live chunk's kvzalloc'd descriptor, its page_va[] array of one
    # pointer per page of the 64 MiB chunk plus 64 B of fields
    descriptor = 8 * ((64 << 20) // vmapsim.PAGE_SIZE) + 64
    assert eleven > 0 and eleven % descriptor == 0
    assert "overlay bytes (end)" in render(res, "markdown")
