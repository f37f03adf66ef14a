"""The grid of a sweep: its axes, from options and a TOML file, expanded into cells.

An axis is a list of values; the cells are every combination, in a fixed
order (stage, component swaps, faults, arch, nr_cpus, workload parameters in
name order, mask, seed), so the same grid always expands to the same cells.

A TOML grid file (``vmapsim sweep --grid FILE``) names the same axes; an
option given on the command line replaces the file's value::

    workload = "test_vmalloc"
    stages = "0,7,12"            # or [0, 7, 12]; ranges "0..12"; "all"
    seeds = "1..3"               # or [1, 2, 3]
    masks = [7, 0x40]            # run_test_mask values (each one an axis value)
    tests = "fix_size,full_fit"  # or subtests by name (one selection)
    nr_cpus = [1, 8]
    arch = ["x86_64", "arm64"]
    faults = ["none", "maple_node:probability=5"]
    with = [{}, {free = "sorted", coalesce = "generic"}]

    [params]                     # the workload's parameters; a list is an axis
    mode = "smoke"
    nr_threads = [1, 2]
    test_loop_count = 1000
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from vmapsim.checking.faultspec import FaultSpecError, parse_faults
from vmapsim.framework.roles import ROLES
from vmapsim.kernel.constants import ARCHES
from vmapsim.tools.sweep.cells import Cell

if TYPE_CHECKING:
    from vmapsim.framework.registry import Registry

__all__ = ["Grid", "GridError", "load_grid_file", "parse_int_list"]

#: the keys a grid file may hold
FILE_KEYS = (
    "workload",
    "stages",
    "seeds",
    "masks",
    "mask",
    "tests",
    "nr_cpus",
    "arch",
    "faults",
    "with",
    "params",
)
_RANGE = re.compile(r"^\s*(-?\w+)\s*\.\.\s*(-?\w+)\s*$")
_PLAIN = (bool, int, float, str)


class GridError(ValueError):
    """A grid that cannot be expanded (names the option or file key and the rule)."""


def parse_int_list(text: str | int | Sequence[Any], what: str, *, minimum: int = 0) -> list[int]:
    """``1..3,5`` (or a list of ints / such strings) as ``[1, 2, 3, 5]``: inclusive
    ranges, C notation (``0x40``), duplicates dropped, order kept."""
    items: list[Any] = list(text) if isinstance(text, list | tuple) else [text]
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise GridError(f"{what}: {item!r} is not an integer")
        if isinstance(item, int):
            values = [item]
        else:
            values = []
            for tok in str(item).split(","):
                tok = tok.strip()
                if not tok:
                    continue
                m = _RANGE.match(tok)
                try:
                    lo, hi = (int(m[1], 0), int(m[2], 0)) if m else (int(tok, 0),) * 2
                except ValueError:
                    raise GridError(f"{what}: {tok!r} is not an integer or a range A..B") from None
                if lo > hi:
                    raise GridError(f"{what}: range {tok!r} runs backwards")
                values += range(lo, hi + 1)
        for v in values:
            if v < minimum:
                raise GridError(f"{what}: {v} is below {minimum}")
            if v not in out:
                out.append(v)
    if not out:
        raise GridError(f"{what}: give at least one value")
    return out


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _faults_axis(values: Iterable[str | None]) -> tuple[str | None, ...]:
    out: list[str | None] = []
    for v in values:
        spec = None if v in (None, "", "none") else str(v)
        if spec is not None:
            try:
                parse_faults(spec)
            except FaultSpecError as exc:
                raise GridError(str(exc)) from None
        if spec not in out:
            out.append(spec)
    return tuple(out) or (None,)


def _with_axis(values: Iterable[Mapping[str, str]]) -> tuple[tuple[tuple[str, str], ...], ...]:
    out: list[tuple[tuple[str, str], ...]] = []
    for swaps in values:
        if not isinstance(swaps, Mapping):
            raise GridError(f"with: each entry is a table ROLE = NAME (got {swaps!r})")
        for role, name in swaps.items():
            if role not in ROLES:
                raise GridError(f"with: unknown role {role!r} (roles: {', '.join(ROLES)})")
            if not isinstance(name, str) or not name:
                raise GridError(f"with: {role} = {name!r}: the component name is a string")
        item = tuple(sorted(swaps.items()))
        if item not in out:
            out.append(item)
    return tuple(out) or ((),)


def _params_axes(params: Mapping[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    axes = []
    for name in sorted(params):
        values = _as_list(params[name])
        if not values:
            raise GridError(f"params.{name}: give at least one value")
        for v in values:
            if not isinstance(v, _PLAIN):
                raise GridError(f"params.{name}: {v!r} is not a number, string or boolean")
        axes.append((name, tuple(dict.fromkeys(values))))
    return tuple(axes)


@frozen
class Grid:
    """A sweep's axes (validated); :meth:`cells` expands them."""

    stages: tuple[str, ...] = field(converter=tuple)
    seeds: tuple[int, ...] = field(default=(0,), converter=tuple)
    workload: str = "test_vmalloc"
    masks: tuple[int | None, ...] = field(default=(None,), converter=tuple)
    tests: str | None = None
    params: tuple[tuple[str, tuple[Any, ...]], ...] = field(default=(), converter=tuple)
    nr_cpus: tuple[int, ...] = field(default=(1,), converter=tuple)
    arch: tuple[str, ...] = field(default=("x86_64",), converter=tuple)
    faults: tuple[str | None, ...] = field(default=(None,), converter=tuple)
    with_: tuple[tuple[tuple[str, str], ...], ...] = field(default=((),), converter=tuple)

    def __attrs_post_init__(self) -> None:
        if not self.stages:
            raise GridError("stages: name at least one stage (0,7,12; 0..12; all)")
        for n in self.nr_cpus:
            if not isinstance(n, int) or n < 1:
                raise GridError(f"nr_cpus: {n!r} must be an integer >= 1")
        for a in self.arch:
            if a not in ARCHES:
                raise GridError(f"arch: {a!r} is not one of {', '.join(ARCHES)}")
        if self.tests is not None and self.masks != (None,):
            raise GridError("tests, mask: give subtests by name or masks, not both")
        names = {n for n, _ in self.params}
        clash = names & {"run_test_mask", "tests", "seed"}
        if clash:
            raise GridError(
                f"params: {', '.join(sorted(clash))} are axes of their own "
                "(--mask/masks, --tests/tests, --seeds/seeds)"
            )

    def cells(self, registry: Registry) -> list[Cell]:
        """Every cell, in the grid's order; each cell's parameters are checked by
        the workload (an unknown parameter or value is a :class:`GridError`)."""
        from vmapsim.tools.compare import parse_stages

        try:
            stage_keys = parse_stages(self.stages, registry)
            wl = registry.workload(self.workload)
        except LookupError as exc:
            raise GridError(str(exc.args[0] if exc.args else exc)) from None
        split = getattr(wl.run, "split_params", None)
        names = [n for n, _ in self.params]
        out: list[Cell] = []
        checked: set[tuple[Any, ...]] = set()
        for stage, swaps, faults, arch, nr_cpus, values, mask, seed in itertools.product(
            stage_keys,
            self.with_,
            self.faults,
            self.arch,
            self.nr_cpus,
            itertools.product(*(v for _, v in self.params)),
            self.masks,
            self.seeds,
        ):
            params: dict[str, Any] = dict(zip(names, values, strict=True))
            if mask is not None:
                params["run_test_mask"] = mask
            if self.tests is not None:
                params["tests"] = self.tests
            sig = (tuple(sorted(params.items())), swaps)
            if sig not in checked:
                checked.add(sig)
                self._check(stage, registry, params, swaps, split)
            out.append(
                Cell(
                    stage=stage,
                    workload=wl.name,
                    params=tuple(sorted(params.items())),
                    seed=seed,
                    nr_cpus=nr_cpus,
                    arch=arch,
                    faults=faults,
                    components=swaps,
                )
            )
        return out

    def _check(
        self,
        stage: str,
        registry: Registry,
        params: dict[str, Any],
        swaps: tuple[tuple[str, str], ...],
        split: Any,
    ) -> None:
        for role, name in swaps:
            try:
                registry.component(role, name)
            except LookupError as exc:
                raise GridError(f"with: {exc.args[0] if exc.args else exc}") from None
        if callable(split):
            try:
                parts = split(params)
            except (TypeError, ValueError, LookupError) as exc:
                shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
                raise GridError(f"params ({shown}): {exc}") from None
            if not parts:
                raise GridError("mask/tests: the cell selects no subtest")

    def describe(self) -> dict[str, Any]:
        """The grid as plain data (the results folder's ``sweep.json``)."""
        return {
            "workload": self.workload,
            "stages": list(self.stages),
            "seeds": list(self.seeds),
            "masks": list(self.masks),
            "tests": self.tests,
            "params": {n: list(v) for n, v in self.params},
            "nr_cpus": list(self.nr_cpus),
            "arch": list(self.arch),
            "faults": list(self.faults),
            "with": [dict(w) for w in self.with_],
        }


def load_grid_file(path: str | Path) -> dict[str, Any]:
    """A grid file's axes as keyword arguments of :func:`make_grid` (see the
    module docstring); an unknown key or a malformed file is a :class:`GridError`."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise GridError(f"--grid {p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"--grid {p}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise GridError(
            f"--grid {p}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(FILE_KEYS)})"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "mask":
            key, value = "masks", _as_list(value)
        if key == "params" and not isinstance(value, Mapping):
            raise GridError(f"--grid {p}: params must be a table ([params])")
        if key == "with":
            key, value = "with_", [value] if isinstance(value, Mapping) else value
        out[key] = value
    return out


def make_grid(
    *,
    stages: str | int | Sequence[Any],
    seeds: str | int | Sequence[Any] = 0,
    workload: str = "test_vmalloc",
    masks: str | int | Sequence[Any] | None = None,
    tests: str | None = None,
    params: Mapping[str, Any] | None = None,
    nr_cpus: str | int | Sequence[Any] = 1,
    arch: str | Sequence[str] = "x86_64",
    faults: str | Sequence[str | None] | None = None,
    with_: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
) -> Grid:
    """A :class:`Grid` from loosely written axes (strings such as ``"1..3"`` and
    ``"0,7,12"``, lists, single values), as the options and grid files give them."""
    stage_tokens: list[str] = []
    for item in _as_list(stages):
        stage_tokens += [t.strip() for t in str(item).split(",") if t.strip()]
    arch_list = [t.strip() for a in _as_list(arch) for t in str(a).split(",") if t.strip()]
    if isinstance(with_, Mapping):
        with_ = [with_]
    return Grid(
        stages=stage_tokens,
        seeds=parse_int_list(seeds, "seeds"),
        workload=str(workload),
        masks=(None,) if masks is None else parse_int_list(masks, "mask", minimum=1),
        tests=tests,
        params=_params_axes(params or {}),
        nr_cpus=parse_int_list(nr_cpus, "nr_cpus", minimum=1),
        arch=arch_list,
        faults=_faults_axis(_as_list(faults) if faults is not None else [None]),
        with_=_with_axis(with_ or [{}]),
    )
