"""`vmapsim compare`: stage lists, parallel = serial counters, the formats agree."""

from __future__ import annotations

import csv
import io
import json
import re
import sys

import pytest

import vmapsim
from vmapsim import PAGE_SIZE
from vmapsim.errors import UnknownStageError
from vmapsim.framework.registry import get_registry
from vmapsim.tools.cli import main
from vmapsim.tools.compare import compare, memory_report, parse_stages, speedup_pct
from vmapsim.tools.report import columns, plot, render

SMALL = {"run_test_mask": 0b1001, "test_loop_count": 40, "test_repeat_count": 2}


@pytest.fixture(scope="module")
def result():
    return compare(["0"], params=SMALL, reps=2, jobs=1)


def test_parse_stages_lists_ranges_and_all():
    reg = get_registry()
    keys = reg.stage_keys()
    assert parse_stages(["0"], reg) == ["maple:0"]
    assert parse_stages(["all"], reg) == list(keys)
    in_range = [k for k in keys if 0 <= reg.stages[k].number <= 12 and k.startswith("maple:")]
    assert parse_stages(["0..12"], reg) == in_range
    assert parse_stages(["0", "maple:0", "0..0"], reg) == ["maple:0"]  # duplicates dropped
    with pytest.raises(UnknownStageError, match="backwards"):
        parse_stages(["3..1"], reg)
    with pytest.raises(UnknownStageError):
        parse_stages(["999"], reg)
    with pytest.raises(UnknownStageError, match="no registered stage"):
        parse_stages(["900..999"], reg)


def test_speedup_convention():
    assert speedup_pct(2.0, 1.0) == pytest.approx(100.0)  # twice as fast: +100 %
    assert speedup_pct(1.0, 2.0) == pytest.approx(-50.0)  # slower: negative
    assert speedup_pct(1.0, 0.0) is None


def test_memory_report_counts_objects_and_nodes():
    a = vmapsim.build(0)
    for _ in range(10):
        a.vmalloc(PAGE_SIZE)
    m = memory_report(a)
    live = a.metrics["va_allocs"] - a.metrics["va_frees"]
    assert m["vmap_area_objects"] == live >= 11  # 10 busy + the free block
    assert m["vmap_area_bytes"] == live * 72
    assert m["index_nodes"] == 0 and m["index_node_bytes"] == 0  # rb nodes are embedded
    b = vmapsim.build(0, components={"busy": "maple", "lazy": "maple"})
    for _ in range(40):
        b.vmalloc(PAGE_SIZE)
    mb = memory_report(b)
    assert mb["index_nodes"] == b.metrics["node_allocs"] - b.metrics["node_frees"] > 0
    assert mb["index_node_bytes"] == 256 * mb["index_nodes"]


def test_rows_per_subtest_and_stage(result):
    assert [t["test"] for t in result["tests"]] == ["fix_size_alloc_test", "random_size_alloc_test"]
    for t in result["tests"]:
        (row,) = t["rows"]
        assert row["stage"] == "maple:0"
        assert row["passed"] == 2 and row["failed"] == 0
        assert row["loops"] == 2 * 40
        assert row["ops"] == row["counters"]["alloc_calls"] + row["counters"]["free_calls"]
        assert row["ops_per_loop"] == 2.0  # one vmalloc + one vfree per loop
        assert len(row["time_per_loop_us"]["reps"]) == 2
        assert row["change_pct"] == pytest.approx(0.0)
        per_op = row["per_op"]
        assert per_op["nodes_visited"] == row["counters"]["nodes_visited"] / row["ops"]
        assert any(k.startswith("lock.") for k in per_op)
        assert row["memory"]["peak_vmap_area_bytes"] == 72 * row["memory"]["peak_vmap_area_objects"]


def _counters(res):
    return [[r["counters"] for r in t["rows"]] for t in res["tests"]]


def test_parallel_and_serial_give_the_same_counters(result):
    par = compare(["0"], params=SMALL, reps=2, jobs=2)
    assert par["jobs"] == 2
    assert _counters(par) == _counters(result)
    assert [s["metrics"] for s in par["stages"]] == [s["metrics"] for s in result["stages"]]


def test_json_round_trips(result):
    assert json.loads(render(result, "json")) == json.loads(json.dumps(result))


def test_csv_agrees_with_json(result):
    rows = list(csv.DictReader(io.StringIO(render(result, "csv"))))
    assert len(rows) == sum(len(t["rows"]) for t in result["tests"])
    for rec in rows:
        table = next(t for t in result["tests"] if t["test"] == rec["test"])
        row = next(r for r in table["rows"] if r["stage"] == rec["stage"])
        assert float(rec["time_per_loop_us"]) == row["time_per_loop_us"]["median"]
        for k, v in row["per_op"].items():
            assert float(rec[f"per_op.{k}"]) == v
        assert int(rec["memory.peak_vmap_area_bytes"]) == row["memory"]["peak_vmap_area_bytes"]


def _markdown_tables(text):
    """{test: {metric: [cell per stage]}}, and the stage header per test."""
    out, stages, cur = {}, {}, None
    for line in text.splitlines():
        if line.startswith("### "):
            cur = line[4:]
            out[cur] = {}
        elif cur and line.startswith("| metric |"):
            stages[cur] = [c.strip() for c in line.strip("|").split("|")][1:]
        elif cur and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cur][cells[0]] = cells[1:]
    return out, stages


def _num(cell):
    return float(re.sub(r"[,% +]", "", cell))


def test_markdown_agrees_with_json(result):
    tables, stages = _markdown_tables(render(result, "markdown"))
    assert set(tables) == {t["test"] for t in result["tests"]}
    for t in result["tests"]:
        assert stages[t["test"]] == [r["label"] for r in t["rows"]]
        cols = {c.title: c for c in columns(t)}
        for metric, cells in tables[t["test"]].items():
            col = cols[metric]
            for cell, row in zip(cells, t["rows"], strict=True):
                value = col.get(row)
                if isinstance(value, str):
                    assert cell == value
                else:  # rounded to the digits shown
                    digits = len(cell.split(".")[1].split()[0]) if "." in cell else 0
                    assert _num(cell) == pytest.approx(value, abs=0.51 * 10**-digits)


def test_terminal_names_every_subtest_and_stage(result):
    text = render(result, "terminal")
    for t in result["tests"]:
        assert t["test"] in text
    assert "maple:0" in text and "nodes/op" in text


def test_plot_writes_png_and_svg(result, tmp_path):
    pytest.importorskip("matplotlib")
    png, svg = tmp_path / "c.png", tmp_path / "c.svg"
    plot(result, str(png))
    plot(result, str(svg))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:400]
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot(result, str(tmp_path / "c.pdf"))


def test_plot_without_matplotlib_names_the_extra(result, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"'plot' extra"):
        plot(result, str(tmp_path / "c.png"))
    rc = main(["compare", "0", "--mask", "1", "--plot", str(tmp_path / "c.png")])
    assert rc == 2


def test_cli_compare_writes_every_format(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["compare", "0", "--mask", "1", "test_loop_count=20", "--jobs", "1"]
    assert main([*base, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["run_test_mask"] == 1 and doc["params"]["args"] == ["test_loop_count=20"]
    assert doc["tests"][0]["rows"][0]["loops"] == 20
    for name in ("c.md", "c.csv", "c.json"):
        assert main([*base, "--output", name]) == 0
    assert (tmp_path / "c.md").read_text().startswith("**workload test_vmalloc")
    assert (tmp_path / "c.csv").read_text().split(",")[0] == "test"
    json.loads((tmp_path / "c.json").read_text())
    assert main([*base, "bogus=1"]) == 2
    assert "Error: key or value is not correct: bogus 1" in capsys.readouterr().err


def test_summary_has_a_row_per_subtest_and_stage_agreeing_with_json(result):
    text = render(result, "summary")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    body = [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]
    assert len(body) == sum(len(t["rows"]) for t in result["tests"])
    flat = [(t, r) for t in result["tests"] for r in t["rows"]]
    for cells, (_t, row) in zip(body, flat, strict=True):
        rec = dict(zip(header, cells, strict=True))
        assert rec["stage"] == row["label"]
        assert _num(rec["nodes/op"]) == pytest.approx(row["per_op"]["nodes_visited"], abs=0.006)
        assert _num(rec["va bytes (peak)"]) == row["memory"]["peak_vmap_area_bytes"]


def test_benchmark_script_runs_small(tmp_path):
    import runpy
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_test_vmalloc.py"
    mod = runpy.run_path(str(bench))
    out = tmp_path / "b.json"
    assert (
        mod["main"](
            [
                "--skip-cli",
                "--full-mask",
                "0x49",
                "--test-loop-count",
                "5",
                "--test-repeat-count",
                "1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["stages"][0] == "maple:0"
    masks = [s["mask"] for s in doc["sets"]]
    assert masks == ["0x7"] * len(doc["stages"]) + ["0x49"] * len(doc["stages"])
    full = doc["sets"][-1]["tests"]
    assert full["align_shift_alloc_test"]["xfailed"] == 1


def test_compare_runs_each_subtest_as_its_own_part(result):
    from vmapsim_test_vmalloc.driver import split_params

    parts = split_params({**SMALL, "mode": None})
    assert [p["run_test_mask"] for p in parts] == [1, 8]
    assert {p["mode"] for p in parts} == {"manual"}  # the mode the whole run resolves to
    assert split_params({})[0]["mode"] == "smoke"
    assert [p["run_test_mask"] for p in split_params({"args": ["run_test_mask=5"]})] == [1, 4]
    # each part is a fresh allocator running that subtest alone
    reg = get_registry()
    for part, t in zip(parts, result["tests"], strict=True):
        a = vmapsim.build(0)
        rep = reg.workload("test_vmalloc").run(a, seed=0, **part)
        assert rep.per_test()[t["test"]]["counters"] == t["rows"][0]["counters"]
    assert result["report_params"]["run_test_mask"] == SMALL["run_test_mask"]


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_only_after_its_delay():
    from vmapsim.tools.report import LazyProgress

    quiet = io.StringIO()  # off a terminal: plain lines, never a bar
    with LazyProgress("x", delay=0.0, stream=quiet, per_unit=True) as bar:
        bar(1, 2, "maple:0 mask 0x1 rep 1")
        bar(2, 2, "maple:0 mask 0x2 rep 1")
    lines = quiet.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "vmapsim: x: 1/2 done (maple:0 mask 0x1 rep 1)",
        "vmapsim: x: 2/2 done (maple:0 mask 0x2 rep 1)",
    ]
    tenths = io.StringIO()  # not per unit: one line per tenth of the total
    with LazyProgress("y", stream=tenths, delay=0.0) as bar:
        for done in range(0, 1001, 7):
            bar(done, 1000)
    assert len(tenths.getvalue().splitlines()) == 9  # 10 %, 20 %, ... 90 % (1000 not hit)
    short = io.StringIO()  # a run shorter than the delay stays silent
    with LazyProgress("z", stream=short, delay=3600.0) as bar:
        bar(1000, 1000)
    assert short.getvalue() == ""
    tty = _Tty()
    with LazyProgress("late", delay=3600.0, stream=tty) as bar:
        bar(1, 2)  # too early: nothing shown
    assert tty.getvalue() == ""
    tty = _Tty()
    with LazyProgress("shown", delay=0.0, stream=tty) as bar:
        bar(1, 2)
        bar(2, 2)
    assert "shown" in tty.getvalue()
