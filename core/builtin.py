"""vmapsim's own registrations: the ``maple`` series' stages and the built-in workloads.

Registered by the registry like any plugin (named ``vmapsim``), through the
same hooks; it names components but imports no plugin.
"""

from __future__ import annotations

from .descriptors import Stage, Workload
from .hookspecs import hookimpl
from .series import STAGES
from .workloads import WORKLOADS


@hookimpl
def vmapsim_stages() -> list[Stage]:
    return list(STAGES)


@hookimpl
def vmapsim_workloads() -> list[Workload]:
    return list(WORKLOADS)
