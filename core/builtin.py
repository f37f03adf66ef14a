"""vmapsim's own registrations: the ``maple`` series' stages, the built-in workloads
and the index-agnostic ``generic`` coalescer.

Registered by the registry like any plugin (named ``vmapsim``), through the
same hooks; it names components but imports no plugin.
"""

from __future__ import annotations

from .coalesce import make_generic_coalescer
from .descriptors import Component, Stage, Workload
from .hookspecs import hookimpl
from .series import STAGES
from .workloads import WORKLOADS


@hookimpl
def vmapsim_stages() -> list[Stage]:
    return list(STAGES)


@hookimpl
def vmapsim_workloads() -> list[Workload]:
    return list(WORKLOADS)


@hookimpl
def vmapsim_coalescing_components() -> list[Component]:
    return [
        Component(
            "generic",
            {"coalesce"},
            make_generic_coalescer,
            "merge with touching neighbours found through any FreeIndex's find_enclosing",
        )
    ]
