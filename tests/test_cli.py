"""The ``vmapsim`` command line, run in-process (plus one real console-script call)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sysconfig
from pathlib import Path

import pytest

import vmapsim
import vmapsim.framework.registry
from vmapsim.framework.registry import load_registry
from vmapsim.tools.cli import main

SMALL = ["--workload", "mixed", "--param", "nr_ops=300"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory and no VMAPSIM_STAGE: the stage source is ours to set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    return tmp_path


def _run(capsys, *argv):
    rc = main(["run", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _source(out):
    """The stage source printed in ``stage maple:0 (SOURCE): title``."""
    m = re.match(r"stage (\S+) \((.*)\): ", out.splitlines()[0])
    assert m, out
    assert m.group(1) == "maple:0"
    return m.group(2)


# -- --version, stages, plugins -----------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.strip() == f"vmapsim {vmapsim.__version__}"
    # the version printed is the installed distribution's
    assert vmapsim.__version__ == importlib.metadata.version("vmapsim")


def test_console_script_version():
    script = Path(sysconfig.get_path("scripts")) / "vmapsim"
    assert script.exists(), f"console script not installed at {script}"
    proc = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"vmapsim {vmapsim.__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "run" in capsys.readouterr().out


def test_stages(capsys):
    assert main(["stages"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("maple:0 "))
    assert "upstream vmalloc before the series" in lines[first]
    detail = lines[first + 1]
    for comp in ("free=rb", "busy=rb", "lazy=rb", "coalesce=list-neighbour"):
        assert comp in detail
    assert "struct vmap_area 72 B" in detail


def _plugin_lines(out):
    """{name: (status, distribution)} from ``vmapsim plugins``."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"(ok|FAILED)\s+(\S+)\s+from (\S+)", line)
        if m:
            found[m.group(2)] = (m.group(1), m.group(3))
    return found


def test_plugins(capsys):
    rc = main(["plugins"])
    out = capsys.readouterr().out
    assert rc == 0, out
    found = _plugin_lines(out)
    assert found["rbtree"] == ("ok", "vmapsim")
    assert found["mapletree"] == ("ok", "vmapsim")
    assert "free=rb" in out
    assert "FAILED" not in out


def test_plugins_reports_a_broken_plugin(capsys, monkeypatch):
    class Exploding:
        @vmapsim.hookimpl
        def vmapsim_index_components(self):
            raise RuntimeError("kaboom in the index hook")

    reg = load_registry(plugins=[("exploding", Exploding())])
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [reg])
    rc = main(["plugins"])
    out = capsys.readouterr().out
    assert rc == 1
    found = _plugin_lines(out)
    assert found["exploding"][0] == "FAILED"
    assert found["rbtree"] == ("ok", "vmapsim")
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("FAILED"))
    assert "RuntimeError: kaboom in the index hook" in lines[i + 1]


# -- run ------------------------------------------------------------------------


def test_run_text(capsys, workdir):
    rc, out, err = _run(capsys, "--stage", "0", *SMALL)
    assert rc == 0, err
    assert _source(out) == "command line"
    assert "upstream vmalloc before the series" in out.splitlines()[0]
    assert "struct vmap_area 72 B" in out
    assert "workload mixed:" in out and "nr_ops=300" in out

    ops = dict(re.findall(r"^  (vmalloc|vmalloc_node|vfree|failed)\s+(\d+)$", out, re.M))
    assert set(ops) == {"vmalloc", "vmalloc_node", "vfree", "failed"}
    assert "counters:" in out and "log:" in out
    counters = out.split("counters:", 1)[1].split("log:", 1)[0]
    counts = dict(re.findall(r"^  (\S+)\s+(\d+)\s", counters, re.M))
    # the counters agree with what the workload says it did
    assert int(counts["alloc_calls"]) == int(ops["vmalloc"]) + int(ops["vmalloc_node"])
    assert int(counts["free_calls"]) == int(ops["vfree"])
    assert int(ops["vfree"]) > 0
    assert re.search(r"^log: \d+ message\(s\)$", out, re.M)


def test_run_json(capsys, workdir):
    rc, out, err = _run(capsys, "--json", "--seed", "3", "--nr-cpus", "2", *SMALL)
    assert rc == 0, err
    data = json.loads(out)
    assert data["stage"] == "maple:0"
    assert data["stage_source"] == "default"
    assert data["params"]["nr_ops"] == 300  # --param values are parsed as JSON
    assert data["params"]["seed"] == 3
    m = data["metrics"]
    assert m["alloc_calls"] == data["ops"]["vmalloc"] + data["ops"]["vmalloc_node"]
    assert m["free_calls"] == data["ops"]["vfree"]
    assert data["components"]["free"] == "rb"
    assert data["struct_vmap_area_size"] == 72
    assert isinstance(data["log"], list)


def test_run_json_is_deterministic(capsys, workdir):
    outs = []
    for _ in range(2):
        rc, out, err = _run(capsys, "--json", "--seed", "7", *SMALL)
        assert rc == 0, err
        outs.append(json.loads(out)["metrics"])
    assert outs[0] == outs[1]


def test_run_debug_checks_invariants(capsys, workdir):
    rc, out, err = _run(capsys, "--debug", "--workload", "mixed", "--param", "nr_ops=100")
    assert rc == 0, err
    assert "check_invariants: ok" in out


def test_run_with_unknown_component(capsys, workdir):
    rc, _out, err = _run(capsys, "--with", "free=nope", *SMALL)
    assert rc == 2
    assert "nope" in err and "rb" in err
    assert "Traceback" not in err


def test_run_with_unknown_role(capsys, workdir):
    rc, _out, err = _run(capsys, "--with", "nope=rb", *SMALL)
    assert rc == 2
    assert "components" in err and "nope" in err


def test_run_unknown_workload(capsys, workdir):
    rc, _out, err = _run(capsys, "--workload", "nope")
    assert rc == 2
    assert "nope" in err and "mixed" in err


# -- where the stage comes from -------------------------------------------------


def test_stage_default(capsys, workdir):
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    assert _source(out) == "default"


def test_stage_from_vmapsim_toml(capsys, workdir):
    (workdir / "vmapsim.toml").write_text("stage = 0\n")
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    assert _source(out) == str(workdir / "vmapsim.toml")


def test_stage_from_pyproject(capsys, workdir):
    (workdir / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.vmapsim]\nstage = 0\n')
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    source = _source(out)
    assert str(workdir / "pyproject.toml") in source
    assert "tool.vmapsim" in source


def test_pyproject_without_vmapsim_table_is_default(capsys, workdir):
    (workdir / "pyproject.toml").write_text('[project]\nname = "x"\n')
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    assert _source(out) == "default"


def test_vmapsim_toml_beats_pyproject(capsys, workdir):
    (workdir / "vmapsim.toml").write_text("stage = 0\n")
    (workdir / "pyproject.toml").write_text("[tool.vmapsim]\nstage = 42\n")
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    assert _source(out) == str(workdir / "vmapsim.toml")


def test_project_file_stage_is_used(capsys, workdir):
    # an unknown stage in the file proves the file's value is the one resolved
    (workdir / "vmapsim.toml").write_text("stage = 42\n")
    rc, _out, err = _run(capsys, *SMALL)
    assert rc == 2
    assert "42" in err and "maple:0" in err


def test_env_beats_project_file(capsys, workdir, monkeypatch):
    (workdir / "vmapsim.toml").write_text("stage = 42\n")
    monkeypatch.setenv("VMAPSIM_STAGE", "0")
    rc, out, err = _run(capsys, *SMALL)
    assert rc == 0, err
    assert _source(out) == "environment VMAPSIM_STAGE"


def test_command_line_beats_env(capsys, workdir, monkeypatch):
    (workdir / "vmapsim.toml").write_text("stage = 42\n")
    monkeypatch.setenv("VMAPSIM_STAGE", "42")
    rc, out, err = _run(capsys, "--stage", "maple:0", *SMALL)
    assert rc == 0, err
    assert _source(out) == "command line"


def test_unknown_stage_from_env(capsys, workdir, monkeypatch):
    monkeypatch.setenv("VMAPSIM_STAGE", "42")
    rc, _out, err = _run(capsys, *SMALL)
    assert rc == 2
    assert "42" in err
    assert "maple:0" in err  # lists the registered stages
    assert "Traceback" not in err


@pytest.mark.parametrize("spec", ["99", "abc", "x:1"])
def test_unknown_stage_from_command_line(capsys, workdir, spec):
    rc, _out, err = _run(capsys, "--stage", spec, *SMALL)
    assert rc == 2
    assert spec in err
