"""Where settings come from: command line > environment > project file > default.

The project file is ``vmapsim.toml`` (top-level keys) or the
``[tool.vmapsim]`` table of ``pyproject.toml``, looked up from the working
directory upward (the nearest folder holding either wins, as ruff and
pytest find theirs); ``vmapsim.toml`` wins when both are in one folder.  A
project file that is not valid TOML, or that holds a key vmapsim does not
know (``stag = 7``), is refused with its path and the valid keys.  The environment variable for the
stage is ``VMAPSIM_STAGE``.  Under pytest the ``vmapsim_stage`` ini option
sits between the environment and the project file (docs/bisect.md, "Stage
selection", is the one place this order is documented).

:func:`select_stages` turns a stage selection (``4``, ``maple:4``, ``all``,
``4..9``, ``0,4,12``) into the registered stages it names; the pytest plugin
and ``vmapsim bisect`` use it.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

if TYPE_CHECKING:
    from vmapsim.framework.descriptors import Stage
    from vmapsim.framework.registry import Registry

__all__ = [
    "DEFAULT_STAGE",
    "ENV_STAGE",
    "PROJECT_KEYS",
    "ConfigError",
    "Setting",
    "StageSelection",
    "StageSelectionError",
    "project_settings",
    "resolve_stage",
    "select_stages",
    "series_names",
]

DEFAULT_STAGE = "0"
ENV_STAGE = "VMAPSIM_STAGE"
DEFAULT_SERIES = "maple"


@frozen
class Setting:
    """A resolved value and where it came from (for ``vmapsim run`` to print)."""

    value: str
    source: str


#: the keys a project file may hold, and what each is
PROJECT_KEYS: dict[str, str] = {"stage": "the stage to use (N or series:N)"}


class ConfigError(ValueError):
    """A project file or environment variable vmapsim refuses (names its source)."""


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from None


def _check_keys(table: Any, source: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: must be a table of settings")
    unknown = sorted(set(table) - set(PROJECT_KEYS))
    if unknown:
        import difflib

        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(PROJECT_KEYS), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        valid = ", ".join(f"{k} ({v})" for k, v in PROJECT_KEYS.items())
        raise ConfigError(f"{source}: unknown key(s) {', '.join(hints)}; valid keys: {valid}")
    return table


def project_settings(cwd: Path | None = None) -> tuple[dict[str, Any], str | None]:
    """The settings table of the project around ``cwd`` and the file it came from.

    Looks in ``cwd``, then each parent folder, for ``vmapsim.toml`` or a
    ``pyproject.toml`` with a ``[tool.vmapsim]`` table; the first found wins.
    Raises :class:`ConfigError` (naming the file) for invalid TOML or an
    unknown key.
    """
    base = (cwd or Path.cwd()).resolve()
    for folder in (base, *base.parents):
        own = folder / "vmapsim.toml"
        if own.is_file():
            return _check_keys(_load_toml(own), str(own)), str(own)
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            table = _load_toml(pyproject).get("tool", {}).get("vmapsim")
            if table is not None:
                source = f"{pyproject} [tool.vmapsim]"
                return _check_keys(table, source), source
    return {}, None


def resolve_stage(cli: str | None, cwd: Path | None = None, *, ini: str | None = None) -> Setting:
    """The stage to use: ``--stage`` > ``VMAPSIM_STAGE`` > ``ini`` > project file > ``0``.

    ``ini`` is pytest's ``vmapsim_stage`` ini option (None outside pytest).
    """
    if cli is not None:
        return Setting(str(cli), "command line")
    env = os.environ.get(ENV_STAGE)
    if env is not None and env.strip():
        return Setting(env.strip(), f"environment {ENV_STAGE}")
    if ini is not None and str(ini).strip():
        return Setting(str(ini).strip(), "ini option vmapsim_stage")
    table, source = project_settings(cwd)
    if "stage" in table:
        value = table["stage"]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(
                f"{source}: stage must be a number or 'series:number' (got {value!r})"
            )
        return Setting(str(value), source or "project file")
    return Setting(DEFAULT_STAGE, "default")


# -- stage selections -----------------------------------------------------------------


class StageSelectionError(ValueError):
    """A stage selection that is malformed or names no registered stage."""


@frozen
class StageSelection:
    """The registered stages a selection names, in stage order.

    ``missing`` holds the keys of stages named by number that are not
    registered (only a lenient selection keeps going past them).
    """

    spec: str
    series: str
    stages: tuple[Stage, ...]
    missing: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.stages)


_ITEM = re.compile(r"^(?:(?P<num>\d+)|(?P<lo>\d*)\.\.(?P<hi>\d*)|(?P<all>all))$")


def series_names(registry: Registry) -> list[str]:
    """The series that have at least one registered stage, sorted."""
    return sorted({s.series for s in registry.stages.values()})


def _numbers(registry: Registry, series: str) -> list[int]:
    return sorted(s.number for s in registry.stages.values() if s.series == series)


def select_stages(
    spec: str | int,
    registry: Registry,
    *,
    series: str | None = None,
    strict: bool = True,
) -> StageSelection:
    """The stages of ``registry`` that ``spec`` names.

    ``spec`` is a comma-separated list of items, each ``N``, ``A..B``
    (inclusive; ``A..`` and ``..B`` are open), or ``all``, optionally
    prefixed ``SERIES:`` (``maple:4``, ``fake:0..3``).  The series is
    ``series`` (``--series``), else the prefix, else ``maple``; naming two
    different series is an error.  A range or ``all`` selects the registered
    stages inside it.  With ``strict`` a number that is not registered, or a
    selection that names no registered stage, raises
    :class:`StageSelectionError`; otherwise it lands in ``missing``.
    """
    text = str(spec).strip()
    if not text:
        raise StageSelectionError("stage: empty selection (use N, A..B, all or a list A,B,C)")
    chosen_series = series
    items: list[str] = []
    for raw in text.split(","):
        item = raw.strip()
        prefix, sep, rest = item.rpartition(":")
        if sep:
            if not prefix:
                raise StageSelectionError(f"stage {text!r}: empty series name before ':'")
            if chosen_series is not None and prefix != chosen_series:
                raise StageSelectionError(
                    f"stage {text!r}: names series {prefix!r}, but the series is {chosen_series!r}"
                )
            chosen_series = prefix
            item = rest.strip()
        items.append(item)
    chosen_series = chosen_series or DEFAULT_SERIES
    known_series = series_names(registry)
    if chosen_series not in known_series:
        raise StageSelectionError(
            f"series {chosen_series!r} has no registered stage; series: "
            f"{', '.join(known_series) or 'none'}"
        )
    numbers = _numbers(registry, chosen_series)
    picked: set[int] = set()
    missing: list[str] = []
    for item in items:
        m = _ITEM.match(item)
        if not m:
            raise StageSelectionError(
                f"stage {text!r}: {item!r} is not N, A..B, A.., ..B or all "
                f"(N a stage number of series {chosen_series!r})"
            )
        if m["all"]:
            picked.update(numbers)
        elif m["num"] is not None:
            n = int(m["num"])
            if n in numbers:
                picked.add(n)
            elif strict:
                raise StageSelectionError(
                    f"stage {chosen_series}:{n} is not registered; stages of series "
                    f"{chosen_series!r}: {', '.join(map(str, numbers))}"
                )
            else:
                missing.append(f"{chosen_series}:{n}")
        else:
            lo = int(m["lo"]) if m["lo"] else 0
            hi = int(m["hi"]) if m["hi"] else max(numbers)
            if lo > hi:
                raise StageSelectionError(f"stage {text!r}: range {item!r} runs backwards")
            inside = [n for n in numbers if lo <= n <= hi]
            if not inside and strict:
                raise StageSelectionError(
                    f"stage {text!r}: no stage of series {chosen_series!r} in {lo}..{hi}; "
                    f"stages: {', '.join(map(str, numbers))}"
                )
            picked.update(inside)
    if not picked and strict:
        raise StageSelectionError(f"stage {text!r}: selects no registered stage")
    stages = tuple(registry.stages[f"{chosen_series}:{n}"] for n in sorted(picked))
    return StageSelection(text, chosen_series, stages, tuple(missing))
