"""The built-in components pass vmapsim's conformance kit, run the way an author runs it.

Each class below is what a plugin author writes: a base class from
``vmapsim.testing`` and the component's name.  The kit finds the stages that
fill each role in the registry, so new stages are covered as they land.
"""

from __future__ import annotations

import vmapsim.testing


class TestRbFree(vmapsim.testing.suite("free")):
    component = "rb"
    with_components: dict[str, str] = {}  # the stage's own list-neighbour coalescer


class TestRbFreeGenericCoalesce(vmapsim.testing.AllocatorConformance):
    role = "free"
    component = "rbtree:rb"  # the qualified form resolves too


class TestRbBusy(vmapsim.testing.suite("busy")):
    component = "rb"


class TestMapleBusy(vmapsim.testing.suite("busy")):
    component = "maple"


class TestRbLazy(vmapsim.testing.suite("lazy")):
    component = "rb"


class TestMapleLazy(vmapsim.testing.suite("lazy")):
    component = "maple"


class TestListNeighbourCoalescer(vmapsim.testing.suite("coalesce")):
    component = "list-neighbour"


class TestGenericCoalescer(vmapsim.testing.suite("coalesce")):
    component = "generic"
