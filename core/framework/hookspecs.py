"""pluggy hook specifications of vmapsim (project name ``vmapsim``).

Each hook registers descriptors once, when the registry is built; none is
called while an allocator runs.  A plugin module implements any of them with
``@vmapsim.hookimpl`` and is named in the ``vmapsim`` entry-point group.
"""

from __future__ import annotations

import pluggy

from vmapsim.framework.descriptors import Component, Stage, Workload

PROJECT = "vmapsim"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vmapsim_index_components() -> list[Component]:
    """Return index components (roles ``free`` and/or ``busy``)."""


@hookspec
def vmapsim_coalescing_components() -> list[Component]:
    """Return coalescing components (role ``coalesce``)."""


@hookspec
def vmapsim_lazy_purge_components() -> list[Component]:
    """Return lazy-purge queue components (role ``lazy``)."""


@hookspec
def vmapsim_overlay_components() -> list[Component]:
    """Return overlay components (role ``overlay``)."""


@hookspec
def vmapsim_stages() -> list[Stage]:
    """Return stages (a plugin may ship a whole series of its own)."""


@hookspec
def vmapsim_workloads() -> list[Workload]:
    """Return workloads that ``vmapsim run --workload`` can run."""
