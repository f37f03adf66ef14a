"""vmapsim's own registrations: the ``maple`` series' stages, the built-in workloads
and the index-agnostic ``generic`` coalescer.

Registered by the registry like any plugin (named ``vmapsim``), through the
same hooks; it names components but imports no plugin.
"""

from __future__ import annotations

from vmapsim.framework.descriptors import Component, Stage, Workload
from vmapsim.framework.hookspecs import hookimpl
from vmapsim.framework.series import STAGES
from vmapsim.framework.workloads import WORKLOADS
from vmapsim.kernel.coalesce import make_generic_coalescer


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
