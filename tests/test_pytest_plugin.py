"""The pytest plugin (``vmapsim.pytest_plugin``): stage options, precedence, the marker,
the fixtures and their ids, usage errors; run with pytester on the fake series of
tests/fakeseries.py. The last tests use the plugin's fixtures themselves, on every stage
they are given (``pytest --stage all`` runs them on every registered stage)."""

from __future__ import annotations

import importlib.metadata
import itertools
import tomllib
from pathlib import Path

import pytest

import vmapsim
from vmapsim import PAGE_SIZE

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

CONFTEST = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import fakeseries

def pytest_vmapsim_registry(config):
    return fakeseries.fake_registry()
"""

PROBE = """
import pytest

def test_stage(stage):
    print("STAGE", stage.key)

def test_alloc(vmap_allocator, stage):
    assert vmap_allocator.stage is stage
    assert vmap_allocator.debug is True

def test_plain():
    pass
"""


@pytest.fixture
def pt(pytester, monkeypatch):
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    pytester.makeconftest(CONFTEST)
    return pytester


def collected(result) -> list[str]:
    return [
        line.strip()
        for line in result.outlines
        if "::" in line and not line.startswith(("ERROR", "FAILED"))
    ]


def ids(pt, *args) -> list[str]:
    result = pt.runpytest("--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str()
    return collected(result)


def test_entry_point_is_installed():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["entry-points"]["pytest11"] == {"vmapsim": "vmapsim.pytest_plugin"}
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert eps.get("vmapsim") == "vmapsim.pytest_plugin", "stale install? pip install -e ."


def test_fixture_tests_are_parametrised_with_stage_ids(pt):
    pt.makepyfile(test_probe=PROBE)
    got = ids(pt, "--series", "fake", "--stage", "2..4")
    assert got == [
        *(f"test_probe.py::test_stage[fake:{n}]" for n in (2, 3, 4)),
        *(f"test_probe.py::test_alloc[fake:{n}]" for n in (2, 3, 4)),
        "test_probe.py::test_plain",
    ]
    assert ids(pt, "--stage", "fake:all")[:13] == [
        f"test_probe.py::test_stage[fake:{n}]" for n in range(13)
    ]
    assert ids(pt, "--stage", "fake:12,0,4")[:3] == [
        f"test_probe.py::test_stage[fake:{n}]" for n in (0, 4, 12)
    ]


def test_tests_run_on_each_stage(pt):
    pt.makepyfile(test_probe=PROBE)
    result = pt.runpytest("-s", "--stage", "fake:5..6")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*STAGE fake:5*", "*STAGE fake:6*"])
    result.stdout.fnmatch_lines(["vmapsim: stages fake:5, fake:6 (from command line)*"])


def test_each_case_gets_a_fresh_allocator(pt):
    pt.makepyfile(
        """
        seen = []

        def test_a(vmap_allocator):
            seen.append(vmap_allocator)
            assert vmap_allocator.vmalloc(4096)

        def test_b(vmap_allocator):
            assert all(a is not vmap_allocator for a in seen)
            assert not list(vmap_allocator.busy_areas())
        """
    )
    pt.runpytest("-p", "no:randomly", "--stage", "fake:0,1").assert_outcomes(passed=4)


# -- where the stage comes from ------------------------------------------------------------


def _stage_of(pt, *args) -> list[str]:
    return [i.split("[", 1)[1].rstrip("]") for i in ids(pt, *args) if "test_stage[" in i]


def test_default_is_stage_0(pt):
    pt.makepyfile(test_probe=PROBE)
    assert _stage_of(pt) == ["maple:0"]


def test_precedence_command_line_env_ini_project_default(pt, monkeypatch):
    pt.makepyfile(test_probe=PROBE)
    pt.path.joinpath("vmapsim.toml").write_text('stage = "fake:1"\n')
    assert _stage_of(pt) == ["fake:1"]  # project file beats the default
    pt.makeini("[pytest]\nvmapsim_stage = fake:2\n")
    assert _stage_of(pt) == ["fake:2"]  # ini option beats the project file
    monkeypatch.setenv("VMAPSIM_STAGE", "fake:3")
    assert _stage_of(pt) == ["fake:3"]  # environment beats the ini option
    assert _stage_of(pt, "--stage", "fake:4") == ["fake:4"]  # command line beats everything


def test_pyproject_tool_vmapsim_stage(pt):
    pt.makepyfile(test_probe=PROBE)
    pt.makepyprojecttoml('[tool.vmapsim]\nstage = "fake:7"\n')
    assert _stage_of(pt) == ["fake:7"]


def test_series_option_names_the_series_of_bare_numbers(pt):
    pt.makepyfile(test_probe=PROBE)
    assert _stage_of(pt, "--series", "fake", "--stage", "9") == ["fake:9"]
    assert _stage_of(pt, "--series", "fake") == ["fake:0"]


# -- the marker -----------------------------------------------------------------------------

MARKED = """
import pytest

@pytest.mark.vmapsim_stages("fake:0..2")
def test_range(stage):
    pass

@pytest.mark.vmapsim_stages("fake:3,40")
def test_future(stage):
    pass

def test_unmarked(stage):
    pass
"""


def test_marker_chooses_the_stages_and_skips_unregistered_ones(pt):
    pt.makepyfile(test_marked=MARKED)
    got = ids(pt)
    assert got == [
        "test_marked.py::test_range[fake:0]",
        "test_marked.py::test_range[fake:1]",
        "test_marked.py::test_range[fake:2]",
        "test_marked.py::test_future[fake:3]",
        "test_marked.py::test_future[fake:40]",
        "test_marked.py::test_unmarked[maple:0]",
    ]
    result = pt.runpytest("-rs")
    result.assert_outcomes(passed=5, skipped=1)
    result.stdout.fnmatch_lines(["*stage fake:40 is not registered*"])


def test_command_line_narrows_marked_tests(pt):
    pt.makepyfile(test_marked=MARKED)
    got = ids(pt, "--stage", "fake:1..3")
    assert got == [
        "test_marked.py::test_range[fake:1]",
        "test_marked.py::test_range[fake:2]",
        "test_marked.py::test_future[fake:3]",
        *(f"test_marked.py::test_unmarked[fake:{n}]" for n in (1, 2, 3)),
    ]
    # nothing in common: skipped, saying why
    result = pt.runpytest("-rs", "--stage", "fake:9")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*has no stage in common with this test's vmapsim_stages*"])


def test_environment_narrows_but_the_project_file_does_not(pt, monkeypatch):
    pt.makepyfile(test_marked=MARKED)
    pt.makeini("[pytest]\nvmapsim_stage = fake:1\n")
    got = ids(pt)
    assert "test_marked.py::test_range[fake:0]" in got  # the ini default does not narrow
    assert "test_marked.py::test_unmarked[fake:1]" in got
    monkeypatch.setenv("VMAPSIM_STAGE", "fake:1")
    got = ids(pt)
    assert [g for g in got if "test_range" in g] == ["test_marked.py::test_range[fake:1]"]


def test_own_parametrisation_and_own_fixture_are_left_alone(pt):
    pt.makepyfile(
        test_own="""
        import pytest

        @pytest.mark.parametrize("stage", [5, 6])
        def test_param(stage):
            assert stage in (5, 6)
        """
    )
    pt.mkdir("sub").joinpath("conftest.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef stage():\n    return 'mine'\n"
    )
    pt.path.joinpath("sub", "test_sub.py").write_text(
        "def test_mine(stage):\n    assert stage == 'mine'\n"
    )
    result = pt.runpytest("--stage", "fake:all")
    result.assert_outcomes(passed=3)


# -- usage errors and --stage list -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stage", "fake:99"], "stage fake:99 is not registered; stages of series 'fake': 0, 1*"),
        (["--stage", "nope"], "*'nope' is not N, A..B*"),
        (["--series", "nope"], "series 'nope' has no registered stage; series: fake, maple*"),
        (["--stage", "fake:5..2"], "*runs backwards*"),
    ],
)
def test_usage_errors(pt, args, message):
    pt.makepyfile(test_probe=PROBE)
    result = pt.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: vmapsim: {message}"])


def test_unknown_stage_from_environment_names_its_source(pt, monkeypatch):
    pt.makepyfile(test_probe=PROBE)
    monkeypatch.setenv("VMAPSIM_STAGE", "fake:77")
    result = pt.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fake:77 is not registered*(from environment VMAPSIM_STAGE)"])


def test_bad_marker_is_a_collection_error(pt):
    pt.makepyfile(
        'import pytest\n\n@pytest.mark.vmapsim_stages("0..x")\ndef test_x(stage):\n    pass\n'
    )
    result = pt.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*vmapsim_stages('0..x')*is not N, A..B*"])


def test_stage_list(pt):
    result = pt.runpytest("--stage", "list", "--series", "fake")
    assert result.ret == 0
    assert [line.split()[0] for line in result.outlines if line.strip()] == [
        f"fake:{n}" for n in range(13)
    ]
    result.stdout.fnmatch_lines(["fake:4     fake: patch 4"])


# -- the fixtures, used here: kernel semantics on every stage they run on ---------------------


@pytest.mark.vmapsim_stages("all")
def test_vmalloc_gives_page_aligned_disjoint_areas_in_the_window(vmap_allocator):
    a = vmap_allocator
    sizes = [PAGE_SIZE, 3 * PAGE_SIZE, 17 * PAGE_SIZE - 100, 2 * PAGE_SIZE]
    addrs = [a.vmalloc(size) for size in sizes]
    assert all(addr is not None and addr % PAGE_SIZE == 0 for addr in addrs)
    assert all(a.vmalloc_start <= addr < a.vmalloc_end for addr in addrs)
    spans = sorted(
        (addr, addr + -(-size // PAGE_SIZE) * PAGE_SIZE)
        for addr, size in zip(addrs, sizes, strict=True)
    )
    assert all(end <= nxt for (_s, end), (nxt, _e) in itertools.pairwise(spans))  # no overlap
    for addr in addrs:
        a.vfree(addr)
    a.purge_vmap_area_lazy()
    a.check_invariants()


@pytest.mark.vmapsim_stages("all")
def test_vfree_of_no_area_warns_and_changes_nothing(vmap_allocator, stage):
    a = vmap_allocator
    keep = a.vmalloc(2 * PAGE_SIZE)
    before = [(v.va_start, v.va_end) for v in a.busy_areas()]
    a.vfree(a.vmalloc_end - 64 * PAGE_SIZE)
    assert any("nonexistent vm area" in line for line in a.log)
    assert [(v.va_start, v.va_end) for v in a.busy_areas()] == before
    assert a.stage is stage
    a.vfree(keep)


@pytest.mark.vmapsim_stages("all")
def test_vmalloc_zero_returns_null_with_a_warning(vmap_allocator):
    assert vmap_allocator.vmalloc(0) is None
    assert any("zero-size" in line for line in vmap_allocator.log)


def test_stage_fixture_is_a_stage_descriptor(stage):
    assert isinstance(stage, vmapsim.Stage)
    assert stage.key == f"{stage.series}:{stage.number}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('stage = "fake:1\n', "*vmapsim.toml: not valid TOML*"),
        ('stag = "fake:1"\n', "*vmapsim.toml: unknown key(s)*"),
    ],
)
def test_bad_project_file_is_a_usage_error(pt, text, message):
    """A vmapsim.toml that tools.config refuses (ConfigError) is a pytest
    usage error naming the file, not an INTERNALERROR traceback."""
    pt.makepyfile(test_probe=PROBE)
    pt.path.joinpath("vmapsim.toml").write_text(text)
    result = pt.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: vmapsim: {message}"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
