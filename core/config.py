"""Where settings come from: command line > environment > project file > default.

The project file is ``vmapsim.toml`` (top-level keys) or the
``[tool.vmapsim]`` table of ``pyproject.toml``, in the working directory;
``vmapsim.toml`` wins when both exist.  The environment variable for the
stage is ``VMAPSIM_STAGE``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from attrs import frozen

__all__ = ["DEFAULT_STAGE", "Setting", "project_settings", "resolve_stage"]

DEFAULT_STAGE = "0"
ENV_STAGE = "VMAPSIM_STAGE"


@frozen
class Setting:
    """A resolved value and where it came from (for ``vmapsim run`` to print)."""

    value: str
    source: str


def project_settings(cwd: Path | None = None) -> tuple[dict[str, Any], str | None]:
    """The settings table of the project in ``cwd`` and the file it came from."""
    base = cwd or Path.cwd()
    own = base / "vmapsim.toml"
    if own.is_file():
        with own.open("rb") as fh:
            return tomllib.load(fh), str(own)
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        with pyproject.open("rb") as fh:
            data = tomllib.load(fh)
        table = data.get("tool", {}).get("vmapsim")
        if isinstance(table, dict):
            return table, f"{pyproject} [tool.vmapsim]"
    return {}, None


def resolve_stage(cli: str | None, cwd: Path | None = None) -> Setting:
    """The stage to use: ``--stage`` > ``VMAPSIM_STAGE`` > project file > ``0``."""
    if cli is not None:
        return Setting(str(cli), "command line")
    env = os.environ.get(ENV_STAGE)
    if env:
        return Setting(env, f"environment {ENV_STAGE}")
    table, source = project_settings(cwd)
    if "stage" in table:
        return Setting(str(table["stage"]), source or "project file")
    return Setting(DEFAULT_STAGE, "default")
