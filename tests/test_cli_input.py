"""One rule per parameter through every entry point, refusals that name their
source, fail-fast output paths, exit codes (issue #24, items 3, 6, 7, 8)."""

from __future__ import annotations

import json
import re

import pytest

from vmapsim.tools.cli import main

TINY = ["--test-loop-count", "5", "--test-repeat-count", "1"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    return tmp_path


def _main(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# -- item 6: module parameters, one rule (an integer > 0) wherever they come from ----

#: (the value, how each entry point writes it)
BAD_VALUES = [
    ("run_test_mask", "0"),
    ("run_test_mask", "-1"),
    ("test_loop_count", "0"),
    ("nr_threads", "-2"),
]


@pytest.mark.parametrize(("key", "value"), BAD_VALUES)
@pytest.mark.parametrize("command", ["run", "compare"])
@pytest.mark.parametrize("entry", ["flag", "param", "keyvalue"])
def test_a_value_not_above_zero_is_refused_through_every_entry_point(
    capsys, workdir, command, entry, key, value
):
    flag = "--mask" if key == "run_test_mask" else "--" + key.replace("_", "-")
    given = {
        "flag": [flag, value],
        "param": ["--param", f"{key}={value}"],
        "keyvalue": [f"{key}={value}"],
    }[entry]
    stage = ["0"] if command == "compare" else []
    rc, out, err = (
        _main(capsys, command, *stage, *given, "--jobs", "1")
        if command == ("compare")
        else _main(capsys, command, *given)
    )
    assert rc == 2
    assert "Traceback" not in err and out == ""
    line = err.strip()
    assert line.startswith("vmapsim: ")
    # the refusal names where the value came from and the rule
    if entry == "keyvalue":
        assert f"{key} {value}" in line and "VALUE an integer > 0" in line
    else:
        assert (f"{flag} {value}" if entry == "flag" else f"--param {key}={value}") in line
        assert "must be > 0" in line


@pytest.mark.parametrize(
    "given",
    [["--mask", "0x4000"], ["--param", "run_test_mask=16384"], ["run_test_mask=0x4000"]],
)
def test_a_mask_that_selects_no_subtest_is_refused(capsys, workdir, given):
    rc, out, err = _main(capsys, "run", *given)
    assert rc == 2 and out == ""
    assert "selects no subtest" in err and "0x1 .. 0x1000" in err


def test_unknown_param_lists_the_valid_ones_without_a_python_message(capsys, workdir):
    rc, _out, err = _main(capsys, "run", "--param", "foo=1")
    assert rc == 2
    assert "unexpected keyword" not in err
    assert "--param foo=1" in err and "test_loop_count" in err and "run_test_mask" in err
    rc, _out, err = _main(capsys, "run", "--workload", "mixed", "--param", "foo=1")
    assert rc == 2
    assert "unexpected keyword" not in err
    assert "--param foo=1" in err and "nr_ops" in err


def test_unknown_key_value_key_lists_the_valid_keys(capsys, workdir):
    rc, _out, err = _main(capsys, "run", "foo=1")
    assert rc == 2
    assert "Error: key or value is not correct: foo 1" in err  # the script's own line
    assert "nr_threads" in err and "run_test_mask" in err


def test_bad_env_stage_names_the_variable(capsys, workdir, monkeypatch):
    monkeypatch.setenv("VMAPSIM_STAGE", "x")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2 and "environment VMAPSIM_STAGE" in err
    monkeypatch.setenv("VMAPSIM_STAGE", "99")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2 and "environment VMAPSIM_STAGE" in err and "maple:12" in err


def test_bad_toml_names_the_file(capsys, workdir):
    (workdir / "vmapsim.toml").write_text("stage = [\n")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2 and "vmapsim.toml: not valid TOML" in err


def test_misspelt_project_key_is_reported_with_the_valid_keys(capsys, workdir):
    (workdir / "vmapsim.toml").write_text("stag = 7\n")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2
    assert "unknown key(s) 'stag'" in err and "did you mean 'stage'?" in err
    (workdir / "vmapsim.toml").unlink()
    (workdir / "pyproject.toml").write_text("[tool.vmapsim]\nstage = 4\nseries = 'x'\n")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2 and "[tool.vmapsim]: unknown key(s) 'series'" in err


def test_unregistered_stage_in_the_project_file_names_the_file(capsys, workdir):
    (workdir / "vmapsim.toml").write_text("stage = 99\n")
    rc, _out, err = _main(capsys, "run", *TINY)
    assert rc == 2 and "vmapsim.toml: stage '99' is not registered" in err


def test_project_file_is_found_in_a_parent_folder(capsys, workdir, monkeypatch):
    (workdir / "vmapsim.toml").write_text("stage = 4\n")
    sub = workdir / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    rc, out, err = _main(capsys, "run", "--mask", "1", *TINY)
    assert rc == 0, err
    assert out.startswith("stage maple:4 (") and "vmapsim.toml" in out.splitlines()[0]


def test_nearest_project_file_wins(capsys, workdir, monkeypatch):
    (workdir / "vmapsim.toml").write_text("stage = 4\n")
    sub = workdir / "a"
    sub.mkdir()
    (sub / "pyproject.toml").write_text("[tool.vmapsim]\nstage = 7\n")
    monkeypatch.chdir(sub)
    rc, out, err = _main(capsys, "run", "--mask", "1", *TINY)
    assert rc == 0, err
    assert out.startswith("stage maple:7 (")


# -- item 3: fail fast, speak early ----------------------------------------------


@pytest.mark.parametrize("option", ["--output", "--plot"])
def test_an_output_into_a_missing_folder_is_refused_before_anything_runs(
    capsys, workdir, option, monkeypatch
):
    ran = []
    import vmapsim.tools.compare as cmp

    monkeypatch.setattr(cmp, "run_task", lambda task: ran.append(task))
    name = "x.png" if option == "--plot" else "x.md"
    pytest.importorskip("matplotlib") if option == "--plot" else None
    rc, _out, err = _main(capsys, "compare", "0", "--mask", "1", option, f"missing/{name}")
    assert rc == 2
    assert "missing" in err and "does not exist" in err
    assert ran == []


def test_header_and_progress_lines_off_a_terminal(capsys, workdir):
    rc, _out, err = _main(
        capsys, "compare", "0", "--mask", "0x3", *TINY, "--reps", "2", "--jobs", "1",
        "--format", "csv",
    )  # fmt: skip
    assert rc == 0, err
    lines = err.splitlines()
    # the header first: columns, parameters, seed, reps
    assert lines[0].startswith("vmapsim: compare 0 upstream rb-tree: test_vmalloc")
    assert "seed 0" in lines[0] and "reps 2" in lines[0]
    done = [line for line in lines if re.search(r": \d+/4 done", line)]
    assert len(done) == 4  # one line per finished run (2 subtests x 2 reps)


class _Stop(Exception):
    pass


def _no_build(*_a, **_k):
    raise _Stop


def test_run_prints_its_header_before_the_run(capsys, workdir, monkeypatch):
    import vmapsim.tools.cli as cli

    monkeypatch.setattr(cli, "build", _no_build)  # the run never starts
    with pytest.raises(_Stop):
        main(["run", "--workload", "mixed", "--param", "nr_ops=50"])
    first, second = capsys.readouterr().out.splitlines()[:2]
    assert first.startswith("stage maple:0 (default): ")
    assert second.startswith("workload mixed: nr_ops=50; seed 0")


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--mask", "1"], "1,000,000 loops"),  # a mask without a mode is the module's run
        (["--mode", "stress", "--nr-cpus", "4"], "stress"),
    ],
)
def test_a_long_run_is_announced_with_how_to_shorten_it(capsys, workdir, monkeypatch, argv, why):
    import vmapsim.tools.cli as cli

    monkeypatch.setattr(cli, "build", _no_build)  # announced before anything is built
    with pytest.raises(_Stop):
        main(["run", *argv])
    err = capsys.readouterr().err
    assert "loop iterations" in err and why in err
    assert "Shorter:" in err and "--test-loop-count" in err


def test_a_short_run_is_not_announced(capsys, workdir):
    rc, _out, err = _main(capsys, "run", "--mask", "1", *TINY)
    assert rc == 0
    assert "loop iterations" not in err


# -- item 7: exit codes, --faults, compare --json -------------------------------


def test_run_exits_1_when_a_non_xfail_subtest_fails(capsys, workdir, monkeypatch):
    import attrs

    import vmapsim.tools.cli as cli
    from vmapsim.framework.registry import get_registry

    reg = get_registry()
    real = reg.workload("test_vmalloc")

    def failing(alloc, **params):  # a report with one failed (non-xfail) subtest run
        rep = real.run(alloc, **params)
        return attrs.evolve(rep, ops={**rep.ops, "failed": 1})

    class OneFailing:
        def workload(self, name):
            return attrs.evolve(real, run=failing) if name == real.name else reg.workload(name)

        def __getattr__(self, name):
            return getattr(reg, name)

    monkeypatch.setattr(cli, "get_registry", lambda strict=False: OneFailing())
    rc, _out, err = _main(capsys, "run", "--mask", "1", *TINY)
    assert rc == 1
    assert "non-xfail subtest run(s) failed" in err
    monkeypatch.undo()
    rc, _out, _err = _main(capsys, "run", "--mask", "1", *TINY)
    assert rc == 0


def test_align_shift_xfail_does_not_fail_the_run(capsys, workdir):
    rc, out, err = _main(capsys, "run", "--tests", "align_shift", *TINY)
    assert rc == 0, err
    assert "xfailed: 1" in out


def test_fail_on_reports_turns_a_kasan_line_into_exit_1(capsys, workdir):
    # patch 11's cross-CPU retire: vmap_bump_unlink() on one CPU retires the chunk
    # that is another CPU's current one, whose next bump reads the freed
    # descriptor (KASAN); frees on random CPUs (the mixed workload) reach it
    argv = ["run", "--workload", "mixed", "--nr-cpus", "4", "--log-all"]
    rc, out, err = _main(capsys, *argv, "--stage", "11")
    assert "BUG: KASAN: use-after-free in vmap_bump_alloc" in out
    assert rc == 0  # failed allocations of a workload without subtests are no failure
    assert "kernel report(s) in the log" in err and "--fail-on-reports" in err
    rc, _out, err = _main(capsys, *argv, "--stage", "11", "--fail-on-reports")
    assert rc == 1
    rc, out, err = _main(capsys, *argv, "--stage", "12", "--fail-on-reports")
    assert rc == 0, err  # owner_cpu (patch 12): no retire of another CPU's chunk
    assert "KASAN" not in out


def test_faults_on_run_and_compare(capsys, workdir):
    spec = "all:any:probability=10:times=3"
    seven = ["--stage", "7", "--mask", "1", *TINY, "--json"]
    rc, out, err = _main(capsys, "run", *seven, "--faults", spec)
    data = json.loads(out)
    assert data["faults"] == spec
    assert data["exit_status"] == rc
    # the spec reached the allocator: an allocation failed, so did the subtest (exit 1)
    assert data["metrics"]["alloc_failures"] >= 1 and rc == 1
    clean = json.loads(_main(capsys, "run", *seven)[1])
    assert clean["metrics"]["alloc_failures"] == 0 and clean["exit_status"] == 0
    rc, out, err = _main(
        capsys, "compare", "7", "--mask", "1", *TINY, "--reps", "1", "--jobs", "1",
        "--faults", spec, "--json",
    )  # fmt: skip
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["faults"] == spec
    row = doc["tests"][0]["rows"][0]
    # the same failures as the run: the bisect probe, replayed in a comparison
    assert row["failed"] == data["ops"]["failed"] == 1
    assert row["counters"]["alloc_failures"] == data["metrics"]["alloc_failures"]
    # armed at boot, failslab fails vmalloc_init()'s GFP_NOWAIT vmap_area
    # allocations: the kernel WARNs (vmap_init_free_space) and runs on with no
    # free space, so every vmalloc fails (tests/test_kvmalloc_faults.py)
    rc, out, err = _main(
        capsys, "run", "--mask", "1", *TINY, "--faults", "vmap_area:any:probability=100"
    )
    assert rc == 1 and "Traceback" not in err
    assert "mm/vmalloc.c vmap_init_free_space" in out and "failed: 1" in out
    rc, _out, err = _main(capsys, "run", "--faults", "bogus:probability=5", *TINY)
    assert rc == 2 and "--faults" in err and "unknown cache" in err


def test_compare_json_is_format_json(capsys, workdir):
    base = ["compare", "0", "--mask", "1", *TINY, "--reps", "1", "--jobs", "1"]
    rc, out, err = _main(capsys, *base, "--json")
    assert rc == 0, err
    assert json.loads(out)["tests"][0]["test"] == "fix_size_alloc_test"
    rc, _out, err = _main(capsys, *base, "--json", "--format", "csv")
    assert rc == 2 and "--json" in err


# -- item 8: missing roles named --------------------------------------------------


def test_a_free_swap_on_a_stage_without_a_coalescer_names_the_missing_role(capsys, workdir):
    rc, _out, err = _main(capsys, "run", "--stage", "7", "--with", "free=sorted", *TINY)
    assert rc == 2
    assert "role 'coalesce' is missing" in err and "--with coalesce=generic" in err
    rc, _out, err = _main(capsys, "run", "--stage", "7", "--with", "free=skiplist", *TINY)
    assert rc == 2 and "'skiplist' is not registered for role 'free'" in err
    rc, _out, err = _main(
        capsys, "run", "--stage", "7", "--with", "free=sorted", "--with", "coalesce=generic",
        "--mask", "1", *TINY,
    )  # fmt: skip
    assert rc == 0, err
