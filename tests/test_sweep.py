"""`vmapsim sweep`: the grid, the three executors give one table, resume, failures, Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vmapsim import __version__
from vmapsim.framework.registry import get_registry
from vmapsim.tools.cli import main
from vmapsim.tools.compare import compare
from vmapsim.tools.sweep.cells import WALL_COLUMNS, Cell, cell_key, run_cell
from vmapsim.tools.sweep.executors import (
    DaskExecutor,
    ExecutorError,
    ProcessesExecutor,
    SerialExecutor,
    make_executor,
)
from vmapsim.tools.sweep.grid import GridError, load_grid_file, make_grid
from vmapsim.tools.sweep.runner import prepare, run_sweep
from vmapsim.tools.sweep.store import Store, StoreError

#: fix_size_alloc_test (bit 0) and align_shift_alloc_test (bit 6): a pass and an xfail
MASK = 0x41
SMALL = {"test_loop_count": 20, "test_repeat_count": 1}


def small_grid(seeds: str = "1..2"):
    return make_grid(stages="0,12", seeds=seeds, masks=MASK, params=SMALL)


def deterministic(rows):
    """The rows without their wall-clock columns (everything else is deterministic)."""
    return [{k: v for k, v in r.items() if k not in WALL_COLUMNS} for r in rows]


def sweep(tmp: Path, executor, grid=None, **kw):
    plan = prepare(grid or small_grid(), tmp, get_registry())
    return run_sweep(plan, executor, progress_stream=io.StringIO(), **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small grid run serially: the reference table."""
    report = sweep(tmp_path_factory.mktemp("serial"), SerialExecutor())
    assert not report.failed and not report.interrupted
    return report


# -- the grid ------------------------------------------------------------------


def test_grid_expands_every_combination_in_a_fixed_order():
    grid = make_grid(stages="0,12", seeds="1..3", nr_cpus="1,2", params={"nr_threads": [1, 2]})
    cells = grid.cells(get_registry())
    assert len(cells) == 2 * 3 * 2 * 2
    assert [c.seed for c in cells[:3]] == [1, 2, 3]  # seed is the innermost axis
    assert {c.stage for c in cells[:12]} == {"maple:0"}
    assert len({cell_key(c) for c in cells}) == len(cells)
    assert [cell_key(c) for c in cells] == [cell_key(c) for c in grid.cells(get_registry())]


def test_the_key_changes_with_the_parameters_and_the_version():
    cell = Cell("maple:0", "test_vmalloc", {"run_test_mask": 1}, 1, 1, "x86_64")
    assert cell_key(cell) == cell_key(Cell.from_dict(cell.as_dict()))
    assert cell_key(cell) != cell_key(cell, version="999.0")
    other = Cell("maple:0", "test_vmalloc", {"run_test_mask": 1}, 2, 1, "x86_64")
    assert cell_key(cell) != cell_key(other)
    assert cell_key(cell).startswith("maple-0-seed1-")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seeds": "3..1"}, "seeds: range '3..1' runs backwards"),
        ({"seeds": "x"}, "seeds: 'x' is not an integer"),
        ({"arch": "sparc"}, "arch: 'sparc' is not one of"),
        ({"nr_cpus": "0"}, "nr_cpus: 0 is below 1"),
        ({"faults": ["bogus:probability=5"]}, "unknown cache"),
        ({"with_": {"nosuchrole": "x"}}, "with: unknown role 'nosuchrole'"),
        ({"params": {"no_such": 1}}, "params (no_such=1): no_such: not a test_vmalloc module"),
        ({"params": {"seed": 3}}, "axes of their own"),
    ],
)
def test_a_bad_grid_names_the_axis_and_the_rule(kwargs, message):
    with pytest.raises(GridError, match=re.escape(message)):
        make_grid(**{"stages": "0", **kwargs}).cells(get_registry())


def test_a_grid_file_gives_the_axes(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(
        'stages = [0, 12]\nseeds = "1..2"\nmask = 0x41\nfaults = ["none", "vmap_area:probability=5"]\n'
        "[params]\ntest_loop_count = 20\ntest_repeat_count = 1\n"
    )
    cells = make_grid(**load_grid_file(path)).cells(get_registry())
    assert len(cells) == 2 * 2 * 2
    assert {c.faults for c in cells} == {None, "vmap_area:probability=5"}
    path.write_text("stagez = [0]\n")
    with pytest.raises(GridError, match="unknown key"):
        load_grid_file(path)


# -- one table whatever runs it ------------------------------------------------


def test_the_rows_are_the_kernel_suite_s_results(reference):
    rows = reference.rows
    assert len(rows) == 2 * 2 * 2  # stages x seeds x subtests
    for row in rows:
        assert row["vmapsim_version"] == __version__
        if row["subtest"] == "fix_size_alloc_test":
            # one vmalloc and one vfree per loop; from stage 10 the overlay's 64 MiB
            # chunk is reserved by __alloc_vmap_area() under the free lock, not
            # through alloc_vmap_area() (patch 10), so it is no alloc call
            assert row["result"] == "pass" and row["loops"] == 20
            chunks = row["per_op.overlay_chunk_reserves"] * row["ops"]
            assert row["per_op.free_calls"] * row["ops"] == 20
            assert row["per_op.alloc_calls"] * row["ops"] == 20
            assert chunks == (1 if row["stage"] == "maple:12" else 0)
        else:  # align_shift always fails: the alignment passes the window's top
            assert row["subtest"] == "align_shift_alloc_test" and row["result"] == "xfail"
    # the same counters as `vmapsim compare` (the sweep reuses its run function)
    cmp = compare(["0"], params={"run_test_mask": 1, **SMALL}, seed=1, jobs=1)
    want = cmp["tests"][0]["rows"][0]["per_op"]["nodes_visited"]
    got = [
        r
        for r in rows
        if r["stage"] == "maple:0" and r["seed"] == 1 and r["subtest"] == "fix_size_alloc_test"
    ]
    assert got[0]["per_op.nodes_visited"] == want


def test_processes_give_the_serial_table(reference, tmp_path):
    report = sweep(tmp_path, ProcessesExecutor(2))
    assert len(report.ran) == 4 and not report.failed
    assert deterministic(report.rows) == deterministic(reference.rows)
    with (tmp_path / "results.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(reference.rows)


def test_a_dask_local_cluster_gives_the_serial_table(reference, tmp_path):
    pytest.importorskip("distributed")
    executor = DaskExecutor(2, processes=False)  # in-process: no network, no subprocesses
    report = sweep(tmp_path, executor)
    assert len(report.ran) == 4 and not report.failed
    assert deterministic(report.rows) == deterministic(reference.rows)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert deterministic(json.loads(x) for x in lines) == deterministic(reference.rows)


# -- resumable and safe --------------------------------------------------------

_calls = {"n": 0}


def crash_on_third(cell, key):
    """A cell function whose third call is a crash of the sweep (Ctrl-C)."""
    _calls["n"] += 1
    if _calls["n"] == 3:
        raise KeyboardInterrupt
    return run_cell(cell, key)


def test_resume_after_a_crash_runs_only_what_did_not_finish(reference, tmp_path):
    _calls["n"] = 0
    first = sweep(tmp_path, SerialExecutor(), fn=crash_on_third)
    assert first.interrupted and len(first.ran) == 2 and first.not_run == 2
    assert len(list((tmp_path / "cells").glob("*.json"))) == 2
    assert len(first.rows) == 2 * 2  # the table holds what finished
    # a crash while writing left a damaged cell file: it is run again, not trusted
    damaged = tmp_path / "cells" / f"{first.ran[0]}.json"
    damaged.write_text('{"key": ')
    second = sweep(tmp_path, SerialExecutor())
    assert second.reused == 1 and len(second.ran) == 3 and not second.interrupted
    assert deterministic(second.rows) == deterministic(reference.rows)
    third = sweep(tmp_path, SerialExecutor())
    assert third.reused == 4 and third.ran == []


def raise_on_seed_2(cell, key):
    if cell["seed"] == 2:
        raise RuntimeError("injected failure")
    return run_cell(cell, key)


def test_a_cell_that_raises_is_reported_by_key_and_the_rest_are_kept(reference, tmp_path):
    report = sweep(tmp_path, ProcessesExecutor(2), fn=raise_on_seed_2)
    bad = {k for k, c in report.plan.cells.items() if c.seed == 2}
    assert set(report.failed) == bad and len(report.ran) == 2
    for key in bad:
        assert report.failed[key].startswith("RuntimeError: injected failure")
        assert json.loads((tmp_path / "cells" / f"{key}.failed.json").read_text())["key"] == key
    again = sweep(tmp_path, SerialExecutor())  # without --retry-failed: reported, not run
    assert again.ran == [] and again.skipped == bad and set(again.failed) == bad
    retried = sweep(tmp_path, SerialExecutor(), retry_failed=True)
    assert set(retried.ran) == bad and not retried.failed
    assert not list((tmp_path / "cells").glob("*.failed.json"))
    assert deterministic(retried.rows) == deterministic(reference.rows)


def from_another_version(cell, key):
    return {**run_cell(cell, key), "vmapsim_version": "0.0.1"}


def test_results_never_mix_two_versions(tmp_path):
    grid = make_grid(stages="0", seeds="1", masks=1, params=SMALL)
    report = sweep(tmp_path, SerialExecutor(), grid=grid, fn=from_another_version)
    (error,) = report.failed.values()
    assert "the worker runs vmapsim 0.0.1" in error and report.rows == []
    with pytest.raises(StoreError, match="holds results of vmapsim"):
        Store(tmp_path, version="999.0")


# -- the command ---------------------------------------------------------------

ARGS = ["--stages", "0,12", "--mask", "0x41", "--seeds", "1..2", "--test-loop-count", "20"]
ARGS += ["--test-repeat-count", "1"]


def test_plan_prints_the_cells_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", *ARGS, "--output", str(out), "--plan"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and all("to run" in x for x in lines[:4])
    assert lines[-1].startswith("4 cells (8 rows): 0 finished, 0 failed, 4 to run")
    assert not out.exists()


def test_the_command_runs_resumes_and_says_so(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["sweep", *ARGS, "--output", out, "--executor", "serial"]) == 0
    assert "4 cells: 0 reused, 4 ran, 0 failed" in capsys.readouterr().out
    assert main(["sweep", *ARGS, "--seeds", "1..3", "--output", out, "--jobs", "2"]) == 0
    assert "6 cells: 4 reused, 2 ran, 0 failed" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seeds", "3..1"], "seeds: range '3..1' runs backwards"),
        (["--executor", "serial", "--scheduler", "tcp://x:1"], "--scheduler: only with"),
        (["--format", "xlsx"], "--format 'xlsx'"),
        (["--stages", "99"], "99"),
        (["--jobs", "0"], "--jobs: must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    assert main(["sweep", *ARGS, "--output", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vmapsim: ") and message in err and "Traceback" not in err


def test_make_executor_refuses_what_it_does_not_know():
    with pytest.raises(ExecutorError, match="--executor 'threads'"):
        make_executor("threads")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(x) for x in text]
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_keeps_what_finished_stops_the_workers_and_exits_130(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vmapsim", "sweep", "--stages", "0", "--mask", "1"]
    cmd += ["--seeds", "1..200", "--test-loop-count", "3000", "--test-repeat-count", "1"]
    cmd += ["--executor", "processes", "--jobs", "2", "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        while not any("ran maple-0" in x for x in seen):  # one cell has finished
            line = proc.stderr.readline()
            assert line, f"the sweep ended early: {''.join(seen)}"
            seen.append(line)
        workers = _children(proc.pid)
        assert workers
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vmapsim: sweep interrupted (Ctrl-C):") and "resumes" in last
    assert "Traceback" not in stderr
    kept = list((out / "cells").glob("*.json"))
    assert 1 <= len(kept) < 200
    with (out / "results.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(kept)
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers), "a worker outlived the sweep"
    assert f"{len(kept)} reused" not in stdout  # nothing was reused in the first run


def die_on_seed_2(cell, key):
    """A worker killed (SIGKILL) while it runs a cell: the OOM killer's way."""
    if cell["seed"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return run_cell(cell, key)


def test_a_killed_worker_loses_no_finished_cell(reference, tmp_path):
    report = sweep(tmp_path, ProcessesExecutor(2), fn=die_on_seed_2)
    plan = report.plan
    assert set(report.ran) | set(report.failed) == set(plan.cells)
    assert {k for k, c in plan.cells.items() if c.seed == 2} <= set(report.failed)
    assert all("BrokenProcessPool" in e for e in report.failed.values())
    for key in report.ran:  # what finished before the kill is kept
        assert (tmp_path / "cells" / f"{key}.json").is_file()
    retried = sweep(tmp_path, SerialExecutor(), retry_failed=True)
    assert retried.reused == len(report.ran) and not retried.failed
    assert deterministic(retried.rows) == deterministic(reference.rows)


def test_a_fault_spec_is_an_axis_and_its_failures_are_counted(tmp_path):
    grid = make_grid(
        stages="7",
        seeds="1",
        masks=1,
        params={"test_loop_count": 200, "test_repeat_count": 1},
        faults=["none", "maple_node:any:probability=5"],
    )
    report = sweep(tmp_path, SerialExecutor(), grid=grid)
    clean, faulty = sorted(report.rows, key=lambda r: r["faults"])
    assert clean["faults"] == "" and clean["faults_injected"] == 0
    assert clean["per_op.alloc_failures"] == 0 and clean["result"] == "pass"
    assert faulty["faults"] == "maple_node:any:probability=5"
    assert faulty["faults_injected"] >= 1 and faulty["per_op.alloc_failures"] > 0
