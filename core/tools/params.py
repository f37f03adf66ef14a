"""``KEY=VALUE`` workload parameters from the command line (``--param``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["parse_params", "parse_with"]


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
