"""``KEY=VALUE`` workload parameters from the command line (``--param``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MODULE_PARAMS",
    "SUITE_OPTIONS",
    "check_module_param",
    "check_param_keys",
    "flag_name",
    "parse_params",
    "parse_with",
    "workload_keys",
]


def parse_params(items: Sequence[str], error: type[Exception] = ValueError) -> dict[str, Any]:
    """Each ``KEY=VALUE`` as ``{key: value}``: VALUE as JSON when it parses
    (``5``, ``true``, ``[1, 2]``), else the string; ``error`` for a malformed item."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise error(f"--param {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def parse_with(
    items: Sequence[str], roles: Sequence[str], error: type[Exception] = ValueError
) -> dict[str, str]:
    """Each ``--with ROLE=NAME`` as ``{role: name}`` (the last one wins)."""
    out: dict[str, str] = {}
    for item in items:
        role, sep, name = item.partition("=")
        if not sep or not role or not name:
            raise error(f"--with {item!r}: expected ROLE=NAME (roles: {', '.join(roles)})")
        out[role] = name
    return out


#: test_vmalloc's module parameters as the command line takes them: each an
#: integer > 0 through every entry point (test_vmalloc.sh's rule for its
#: ``key=value`` pairs, applied to ``--mask``/``--nr-threads``/... and to
#: ``--param`` too), so ``--mask 0`` is refused as ``run_test_mask=0`` is
MODULE_PARAMS: tuple[str, ...] = (
    "nr_threads",
    "sequential_test_order",
    "test_repeat_count",
    "test_loop_count",
    "nr_pages",
    "use_huge",
    "run_test_mask",
    "nr_pcpu_objects",
)

#: how the command line spells each module parameter as an option
_FLAG = {"run_test_mask": "--mask"}


def flag_name(key: str) -> str:
    """The option that sets ``key`` (``run_test_mask`` is ``--mask``)."""
    return _FLAG.get(key, "--" + key.replace("_", "-"))


def check_module_param(key: str, value: Any, source: str, error: type[Exception]) -> None:
    """One rule for a module parameter from any entry point: an int > 0.

    ``source`` is how the user gave it (``--mask 0``, ``--param nr_pages=0``);
    the refusal names it and the rule."""
    if key not in MODULE_PARAMS:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise error(f"{source}: {key} must be an integer > 0 (got {value!r})")
    if value <= 0:
        hint = ""
        if key == "run_test_mask":
            hint = "; bit 1<<i selects subtest i (7 = the module default, 0xFFF = the series' base)"
        elif key == "test_loop_count":
            hint = "; the module would turn it into 1 silently, the script refuses it"
        raise error(
            f"{source}: {key} must be > 0 (test_vmalloc.sh's rule for every module "
            f"parameter; got {value}){hint}"
        )


def workload_keys(fn: Any) -> tuple[list[str], bool]:
    """The keyword parameters a workload's ``run`` takes, and whether it takes any
    (``**kwargs``).  The allocator, ``seed``, ``progress`` and ``args`` are not
    user parameters and are left out."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return [], True
    params = list(sig.parameters.values())[1:]  # the allocator
    names = [
        p.name
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name not in ("seed", "progress", "args")
    ]
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def check_param_keys(workload: str, fn: Any, given: dict[str, str], error: type[Exception]) -> None:
    """Refuse a ``--param`` key the workload does not take, listing the valid ones.

    ``given`` maps each key to how the user wrote it (``--param foo=1``)."""
    names, takes_any = workload_keys(fn)
    # a workload that splits its run by module parameters (test_vmalloc) takes
    # those through **kwargs; any other **kwargs workload checks its own keys
    module_style = callable(getattr(fn, "split_params", None))
    if takes_any and not module_style:
        return
    valid = [*names, *(MODULE_PARAMS if module_style else ())]
    for key, source in given.items():
        if key not in valid:
            raise error(
                f"{source}: workload {workload!r} takes no parameter {key!r}; "
                f"parameters: {', '.join(valid) or 'none'}"
            )


#: the `vmapsim run` options handed to a workload as keyword parameters
#: (test_vmalloc's module parameters and selectors), only when given; `run`,
#: `compare` and `replay` read the same ones
SUITE_OPTIONS: tuple[str, ...] = (
    "mode",
    "tests",
    "run_test_mask",
    "nr_threads",
    "test_loop_count",
    "test_repeat_count",
    "sequential_test_order",
    "nr_pages",
    "nr_pcpu_objects",
    "use_huge",
    "pin_workers",
)
