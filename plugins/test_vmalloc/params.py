"""test_vmalloc's module parameters, the selftest script's modes and its argument rule.

Models the ``module_param``\\s of lib/test_vmalloc.c (names, defaults and the
clamps ``init_test_configurtion()`` applies) and the templates of
tools/testing/selftests/mm/test_vmalloc.sh (``smoke``, ``performance``,
``stress``, or manual ``key=value`` pairs, each key a module parameter and
each value > 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from attrs import frozen

__all__ = [
    "DEFAULTS",
    "MODES",
    "ModuleParams",
    "ScriptArgumentError",
    "mask_from_names",
    "parse_script_args",
    "resolve_params",
]

#: the module's parameters and their defaults (lib/test_vmalloc.c, 2026)
DEFAULTS: dict[str, int] = {
    "nr_threads": 0,
    "sequential_test_order": 0,
    "test_repeat_count": 1,
    "test_loop_count": 1_000_000,
    "nr_pages": 0,
    "use_huge": 0,
    "run_test_mask": 7,
    "nr_pcpu_objects": 35_000,
}

_BOOLS = frozenset({"sequential_test_order", "use_huge"})
USHRT_MAX = 0xFFFF
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1

#: ``NUM_CPUS`` in a template is the allocator's CPU count (the script counts
#: ``processor`` lines in /proc/cpuinfo).
NUM_CPUS = "NUM_CPUS"

#: test_vmalloc.sh's templates: PERF_PARAM, SMOKE_PARAM, STRESS_PARAM.
#: ``manual`` is the script's manual mode: only the pairs given.
MODES: dict[str, dict[str, int | str]] = {
    "smoke": {"test_loop_count": 10_000, "test_repeat_count": 10},
    "performance": {"sequential_test_order": 1, "test_repeat_count": 3},
    "stress": {"nr_threads": NUM_CPUS, "test_repeat_count": 20},
    "manual": {},
}


class ScriptArgumentError(ValueError):
    """A ``key=value`` pair test_vmalloc.sh refuses (unknown key, or value not > 0)."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"Error: key or value is not correct: {key} {value}")
        self.key = key
        self.value = value


@frozen
class ModuleParams:
    """The module's parameters after ``init_test_configurtion()``'s clamps.

    ``nr_threads`` is clamped to [1, USHRT_MAX]; ``test_repeat_count`` and
    ``test_loop_count`` ≤ 0 become 1.  ``nr_pages`` stays as given (the tests
    use ``max(nr_pages, 1)``), like ``nr_pcpu_objects``.
    """

    nr_threads: int
    sequential_test_order: bool
    test_repeat_count: int
    test_loop_count: int
    nr_pages: int
    use_huge: bool
    run_test_mask: int
    nr_pcpu_objects: int

    @property
    def pages(self) -> int:
        """``nr_pages > 0 ? nr_pages : 1``, as fix_size, vm_map_ram and no_block use it."""
        return self.nr_pages if self.nr_pages > 0 else 1

    def as_dict(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in DEFAULTS}


def _parse_int(key: str, raw: str) -> int:
    """An int as ``kstrtoint(…, 0)`` reads it (decimal, 0x hex, 0 octal)."""
    try:
        return int(raw, 0)
    except ValueError:
        raise ScriptArgumentError(key, raw) from None


def parse_script_args(items: Iterable[str]) -> dict[str, int]:
    """Parse test_vmalloc.sh's manual ``key=value`` pairs by the script's rule:
    the key must be a module parameter and the value an integer > 0."""
    out: dict[str, int] = {}
    for item in items:
        key, _sep, raw = item.partition("=")
        if key not in DEFAULTS:
            raise ScriptArgumentError(key, raw)
        value = _parse_int(key, raw)
        if value <= 0:
            raise ScriptArgumentError(key, raw)
        out[key] = value
    return out


def _check_param(key: str, value: Any) -> int:
    if key not in DEFAULTS:
        raise ValueError(
            f"{key}: not a test_vmalloc module parameter (parameters: {', '.join(DEFAULTS)})"
        )
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"{key}: must be an int (got {value!r})")
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"{key}: must fit in a C int [{INT_MIN}, {INT_MAX}] (got {value})")
    if key in _BOOLS and value not in (0, 1):
        raise ValueError(f"{key}: a bool parameter takes 0 or 1 (got {value})")
    return value


def resolve_params(
    mode: str | None, overrides: Mapping[str, Any], *, num_cpus: int
) -> tuple[str, ModuleParams]:
    """The parameters a run uses: module defaults, then the mode's template,
    then ``overrides``; then the module's clamps.

    ``mode=None`` is ``smoke`` when no parameter is given and ``manual``
    otherwise (the script's manual mode).  Returns the mode used and the
    clamped parameters.  ``use_huge`` is refused: ``vmalloc_huge()`` maps
    huge pages, which the model does not have.
    """
    if mode is None:
        mode = "manual" if overrides else "smoke"
    if mode not in MODES:
        raise ValueError(f"mode: must be one of {', '.join(MODES)} (got {mode!r})")
    raw: dict[str, int] = dict(DEFAULTS)
    for key, value in MODES[mode].items():
        raw[key] = num_cpus if value == NUM_CPUS else int(value)
    for key, value in overrides.items():
        raw[key] = _check_param(key, value)
    if raw["use_huge"]:
        raise ValueError(
            "use_huge: vmalloc_huge() is not modelled (the model maps no pages, so "
            "there are no huge mappings); run without use_huge"
        )
    return mode, ModuleParams(
        nr_threads=min(max(raw["nr_threads"], 1), USHRT_MAX),
        sequential_test_order=bool(raw["sequential_test_order"]),
        test_repeat_count=raw["test_repeat_count"] if raw["test_repeat_count"] > 0 else 1,
        test_loop_count=raw["test_loop_count"] if raw["test_loop_count"] > 0 else 1,
        nr_pages=raw["nr_pages"],
        use_huge=False,
        run_test_mask=raw["run_test_mask"],
        nr_pcpu_objects=raw["nr_pcpu_objects"],
    )


def mask_from_names(names: Iterable[str], known: list[str]) -> int:
    """``run_test_mask`` for subtests named in ``names`` (``fix_size`` or
    ``fix_size_alloc_test``; the bit is ``1 << index``)."""
    mask = 0
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        hits = [i for i, k in enumerate(known) if k in (name, f"{name}_test", f"{name}_alloc_test")]
        if not hits:
            raise ValueError(f"tests: unknown subtest {name!r} (subtests: {', '.join(known)})")
        mask |= 1 << hits[0]
    return mask
