"""pytest plugin ``vmapsim.pytest_plugin``: run tests against the stages of a series.

Installed with the package (the ``pytest11`` entry point ``vmapsim``), so any
test suite in an environment that has vmapsim gets:

- ``--stage N|SERIES:N|A..B|all|A,B,C|list`` and ``--series NAME``, and the
  ``vmapsim_stage`` ini option;
- the fixtures ``stage`` (the :class:`vmapsim.Stage` descriptor) and
  ``vmap_allocator`` (a fresh ``vmapsim.build(stage, debug=True)``), plus the
  session fixture ``vmapsim_registry``.  A test that uses either fixture is
  parametrised over the chosen stages, with ids naming them (``[maple:4]``);
- the marker ``@pytest.mark.vmapsim_stages("0..7")`` for a test that is about
  particular stages.

Which stages (documented once, in docs/bisect.md "Stage selection"):

1. a test without the marker runs on the resolved selection: ``--stage`` >
   ``$VMAPSIM_STAGE`` > the ``vmapsim_stage`` ini option > ``stage`` in
   vmapsim.toml / ``[tool.vmapsim]`` of pyproject.toml (in the rootdir) > 0;
2. a test with the marker runs on the marker's stages that are registered;
   a stage it names by number that is not registered is a skipped case
   (so ledger tests wait for their stage to land);
3. an explicit selection (``--stage`` or ``$VMAPSIM_STAGE``) narrows a marked
   test to the stages in both; with none in common the test is skipped.
   The project file's stage does not narrow a marked test.

A conftest can hand the plugin another registry (one with a series of its
own) by implementing ``pytest_vmapsim_registry(config)``.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmapsim.framework.descriptors import Stage
from vmapsim.tools.config import (
    ConfigError,
    StageSelection,
    StageSelectionError,
    resolve_stage,
    select_stages,
)

__all__ = ["vmap_allocator", "vmapsim_registry"]

MARKER = "vmapsim_stages"
_EXPLICIT = ("command line", "environment")
_SELECTION = pytest.StashKey["_Session"]()


class _Hooks:
    """Hooks this plugin adds."""

    @pytest.hookspec(firstresult=True)
    def pytest_vmapsim_registry(self, config: pytest.Config) -> Any:
        """Return the :class:`vmapsim.framework.registry.Registry` the stage options resolve against
        (default: ``vmapsim.framework.registry.get_registry()``, the installed plugins)."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vmapsim", "vmapsim stages")
    group.addoption(
        "--stage",
        dest="vmapsim_stage",
        default=None,
        metavar="N|A..B|all|list",
        help="stage(s) the vmapsim fixtures run on: N, SERIES:N, A..B, A,B,C, all; "
        "'list' prints the registered stages. Default: $VMAPSIM_STAGE, the vmapsim_stage "
        "ini option, [tool.vmapsim] stage, 0.",
    )
    group.addoption(
        "--series",
        dest="vmapsim_series",
        default=None,
        metavar="NAME",
        help="the series whose stages --stage names (default: maple)",
    )
    parser.addini(
        "vmapsim_stage",
        "default stage selection of the vmapsim fixtures (below --stage and $VMAPSIM_STAGE)",
        default=None,
    )


class _Session:
    """The resolved selection of one pytest run."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        hook = config.pluginmanager.hook.pytest_vmapsim_registry
        registry = hook(config=config)
        if registry is None:
            from vmapsim.framework.registry import get_registry

            registry = get_registry()
        self.registry = registry
        self.series: str | None = config.getoption("vmapsim_series")
        ini = config.getini("vmapsim_stage") or None
        try:
            self.setting = resolve_stage(
                config.getoption("vmapsim_stage"), config.rootpath, ini=ini
            )
        except ConfigError as exc:  # a bad vmapsim.toml / [tool.vmapsim] / $VMAPSIM_STAGE
            raise pytest.UsageError(f"vmapsim: {exc}") from None
        self.explicit = self.setting.source.startswith(_EXPLICIT)
        if self.series is not None:
            self._select("all", self.series, "--series")
        self.selection: StageSelection = self._select(
            self.setting.value, self.series, self.setting.source
        )

    def _select(self, spec: str, series: str | None, source: str) -> StageSelection:
        try:
            return select_stages(spec, self.registry, series=series)
        except StageSelectionError as exc:
            raise pytest.UsageError(f"vmapsim: {exc} (from {source})") from None

    def for_marker(self, marker: pytest.Mark) -> tuple[list[Any], list[str]]:
        """The params of a marked test, and the ids; see the module docstring."""
        spec = ",".join(str(a) for a in marker.args) if marker.args else "all"
        # bare numbers: the marker's series=, else --series, else the spec's prefix or maple
        series = marker.kwargs.get("series", self.series)
        try:
            sel = select_stages(spec, self.registry, series=series, strict=False)
        except StageSelectionError as exc:
            error = str(exc)
        else:
            error = ""
        if error:
            pytest.fail(f"@pytest.mark.{MARKER}({spec!r}): {error}", pytrace=False)
        stages = list(sel.stages)
        if self.explicit:
            wanted = set(self.selection.keys)
            stages = [s for s in stages if s.key in wanted]
        params: list[Any] = list(stages)
        ids = [s.key for s in stages]
        for key in sel.missing:
            if self.explicit and key not in self.selection.keys:
                continue
            params.append(
                pytest.param(
                    key, marks=pytest.mark.skip(reason=f"stage {key} is not registered"), id=key
                )
            )
            ids.append(key)
        if not params:
            reason = (
                f"--stage {self.setting.value} ({self.setting.source}) has no stage in "
                f"common with this test's {MARKER}({spec!r})"
                if self.explicit
                else f"{MARKER}({spec!r}) selects no registered stage"
            )
            params = [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-stage")]
            ids = ["no-stage"]
        return params, ids


def _session(config: pytest.Config) -> _Session:
    return config.stash[_SELECTION]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(spec, series=None): run this test's vmapsim fixtures on these stages "
        "('0..7', 'all', 4, '0,4,12'); --stage / $VMAPSIM_STAGE narrow it",
    )
    if config.getoption("vmapsim_stage") == "list":
        return
    config.stash[_SELECTION] = _Session(config)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--stage list``: print the registered stages and stop."""
    if config.getoption("vmapsim_stage") != "list":
        return None
    hook = config.pluginmanager.hook.pytest_vmapsim_registry
    registry = hook(config=config)
    if registry is None:
        from vmapsim.framework.registry import get_registry

        registry = get_registry()
    series = config.getoption("vmapsim_series")
    keys = registry.stage_keys()
    if series is not None:
        keys = [k for k in keys if registry.stages[k].series == series]
        if not keys:
            raise pytest.UsageError(f"vmapsim: series {series!r} has no registered stage")
    for key in keys:
        print(f"{key:<10} {registry.stages[key].title}")
    return 0


def pytest_report_header(config: pytest.Config) -> str | None:
    if _SELECTION not in config.stash:
        return None
    s = _session(config)
    return (
        f"vmapsim: stages {', '.join(s.selection.keys)} (from {s.setting.source}); "
        f"tests marked {MARKER} run on their own stages"
        + (", narrowed to these" if s.explicit else "")
    )


def _ours(metafunc: pytest.Metafunc) -> bool:
    """True if the ``stage`` argument of this test is this plugin's fixture, not yet parametrised."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if "stage" in names:
            return False
    defs = getattr(metafunc, "_arg2fixturedefs", {}).get("stage")
    return not defs or getattr(defs[-1], "func", None) is _stage_fixture_func


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stage" not in metafunc.fixturenames or _SELECTION not in metafunc.config.stash:
        return
    if not _ours(metafunc):
        return
    s = _session(metafunc.config)
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is not None:
        params, ids = s.for_marker(marker)
    else:
        params, ids = list(s.selection.stages), list(s.selection.keys)
    metafunc.parametrize("stage", params, ids=ids, indirect=True)


def _stage_fixture_func(request: pytest.FixtureRequest) -> Stage:
    """The stage (a vmapsim.Stage) this test runs on; see --stage and docs/bisect.md."""
    param = getattr(request, "param", None)
    if isinstance(param, Stage):
        return param
    return _session(request.config).selection.stages[0]


stage = pytest.fixture(name="stage")(_stage_fixture_func)


@pytest.fixture(scope="session")
def vmapsim_registry(pytestconfig: pytest.Config) -> Any:
    """The registry the stage options resolve against (installed plugins by default)."""
    return _session(pytestconfig).registry


@pytest.fixture
def vmap_allocator(stage: Any, vmapsim_registry: Any) -> Any:
    """A fresh ``vmapsim.build(stage, debug=True)``: invariants checked after every operation."""
    from vmapsim.framework.api import build

    key = stage.key if isinstance(stage, Stage) else stage
    return build(key, debug=True, registry=vmapsim_registry)
