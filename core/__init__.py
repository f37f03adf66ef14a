"""vmapsim: a model of the Linux kernel's vmalloc allocator.

The allocator flow of mm/vmalloc.c, with the index data structures behind
it as pluggable components, stage by stage through the series that moves
vmalloc from augmented rb-trees to maple trees.

The package is laid out by concern (docs/architecture.md):

- ``vmapsim.kernel``: the model of mm/vmalloc.c, its state and flow;
- ``vmapsim.framework``: roles, descriptors, hook specs, the registry, the
  series and the built-in registrations, ``build()``;
- ``vmapsim.cost``: the cost model (counters, cache-line tables);
- ``vmapsim.checking``: the reference allocator, invariants, argument
  validation, fault injection, traces;
- ``vmapsim.tools``: the command line, compare, bisect, reports, config;
- ``vmapsim.testing`` (the conformance kit) and ``vmapsim.pytest_plugin``.

This module is the public API: plugins and users import from here (and from
``vmapsim.testing``); the subpackages are the implementation.

    >>> import vmapsim
    >>> a = vmapsim.build(stage=0)
    >>> addr = a.vmalloc(8192)
    >>> a.vfree(addr)
"""

from __future__ import annotations

import importlib as _importlib
import sys as _sys
import types as _types
from importlib import abc as _abc
from importlib import machinery as _machinery

from vmapsim.checking.faults import FailPageAllocConfig, FailslabConfig, FaultInjector
from vmapsim.cost.cache import CacheConfig, CacheModel
from vmapsim.cost.cachemodel import (
    CACHE_LINE,
    MAPLE_NODE_LINES,
    field_blocks_table,
    field_lines_table,
)
from vmapsim.cost.counters import COUNTER_NAMES, POPCOUNT4, Counters
from vmapsim.cost.memory import AddressSpace, SlabCache
from vmapsim.cost.timing import CostTable, cost_table, modelled_ns
from vmapsim.errors import (
    ComponentError,
    InvariantError,
    PluginError,
    PluginWarning,
    UnknownComponentError,
    UnknownStageError,
    VmapArgumentError,
    VmapError,
    VmapTypeError,
)
from vmapsim.framework.api import build
from vmapsim.framework.derive import derive_series
from vmapsim.framework.descriptors import Component, ComponentContext, Stage, Workload
from vmapsim.framework.hookspecs import hookimpl
from vmapsim.framework.roles import (
    OVERLAP_WARNING,
    RESERVED,
    BusyIndex,
    Coalescer,
    FreeIndex,
    LazyQueue,
    OccupiedIndex,
    Overlay,
)
from vmapsim.framework.workloads import WorkloadReport
from vmapsim.kernel.alloc import is_within_this_va
from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.area import VmapArea, VmStruct
from vmapsim.kernel.constants import (
    ARCHES,
    PAGE_SHIFT,
    PAGE_SIZE,
    SHRINK_EMPTY,
    SHRINK_STOP,
    ULONG_MAX,
    VMALLOC_END,
    VMALLOC_START,
    Arch,
)
from vmapsim.kernel.gfp import (
    __GFP_NOFAIL,
    __GFP_NOWARN,
    __GFP_ZERO,
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_KERNEL_ACCOUNT,
    GFP_NOFS,
    GFP_NOIO,
    GFP_NOWAIT,
    Gfp,
)
from vmapsim.kernel.layout import VMAP_AREA_MAPLE, VMAP_AREA_RB, Member, StructLayout, Union
from vmapsim.kernel.locking import CountingLocks
from vmapsim.kernel.percpu import PcpuChunk, PercpuAllocator
from vmapsim.kernel.rcu import RCU_GP_TICKS, RCU_TICK_COST
from vmapsim.kernel.vmap_block import (
    VMAP_BBMAP_BITS,
    VMAP_BLOCK_SIZE,
    VMAP_MAX_ALLOC,
    VMAP_PURGE_THRESHOLD,
    VmapBlock,
)

#: Module paths from before the package was split by concern
#: (docs/architecture.md), documented in earlier releases: ``import
#: vmapsim.plugins``, ``from vmapsim.gfp import GFP_KERNEL``,
#: ``vmapsim.oracle.ReferenceAllocator`` keep working and name the same module
#: objects as their new homes.  New code imports the public names above.
MOVED_MODULES: dict[str, str] = {
    "alloc": "vmapsim.kernel.alloc",
    "allocator": "vmapsim.kernel.allocator",
    "api": "vmapsim.framework.api",
    "area": "vmapsim.kernel.area",
    "bisect": "vmapsim.tools.bisect",
    "builtin": "vmapsim.framework.builtin",
    "cachemodel": "vmapsim.cost.cachemodel",
    "cli": "vmapsim.tools.cli",
    "coalesce": "vmapsim.kernel.coalesce",
    "compare": "vmapsim.tools.compare",
    "config": "vmapsim.tools.config",
    "constants": "vmapsim.kernel.constants",
    "counters": "vmapsim.cost.counters",
    "descriptors": "vmapsim.framework.descriptors",
    "expr": "vmapsim.tools.expr",
    "faults": "vmapsim.checking.faults",
    "faultspec": "vmapsim.checking.faultspec",
    "gfp": "vmapsim.kernel.gfp",
    "hookspecs": "vmapsim.framework.hookspecs",
    "invariants": "vmapsim.checking.invariants",
    "layout": "vmapsim.kernel.layout",
    "mirror": "vmapsim.framework.mirror",
    "oracle": "vmapsim.checking.oracle",
    "oracle_constants": "vmapsim.checking.oracle_constants",
    "oracle_overlay": "vmapsim.checking.oracle_overlay",
    "params": "vmapsim.tools.params",
    "pcpu": "vmapsim.kernel.pcpu",
    "percpu": "vmapsim.kernel.percpu",
    "plugins": "vmapsim.framework.registry",
    "progress": "vmapsim.tools.progress",
    "purge": "vmapsim.kernel.purge",
    "rcu": "vmapsim.kernel.rcu",
    "report": "vmapsim.tools.report",
    "roles": "vmapsim.framework.roles",
    "series": "vmapsim.framework.series",
    "slab": "vmapsim.kernel.slab",
    "templates": "vmapsim.tools.templates",
    "trace": "vmapsim.checking.trace",
    "validate": "vmapsim.checking.validate",
    "vmalloc": "vmapsim.kernel.vmalloc",
    "vmap_block": "vmapsim.kernel.vmap_block",
    "vmap_node": "vmapsim.kernel.vmap_node",
    "vrealloc": "vmapsim.kernel.vrealloc",
    "workloads": "vmapsim.framework.workloads",
}


class _MovedModuleLoader(_abc.Loader):
    """Loads an old module path as the module at its new home (the same object)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: _machinery.ModuleSpec | None = None

    def create_module(self, spec: _machinery.ModuleSpec) -> _types.ModuleType:
        module = _importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: _types.ModuleType) -> None:
        """Nothing to run (the module at the new home is loaded already); the
        import system stamped the alias's spec on it: give it its own back."""
        module.__spec__ = self.spec


class _MovedModuleFinder(_abc.MetaPathFinder):
    """Finds ``vmapsim.<old name>`` for every entry of :data:`MOVED_MODULES`."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> _machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in MOVED_MODULES:
            return None
        return _machinery.ModuleSpec(fullname, _MovedModuleLoader(MOVED_MODULES[name]))


if not any(isinstance(f, _MovedModuleFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str) -> _types.ModuleType:
    """``vmapsim.plugins`` and the other old module paths as attributes."""
    if name in MOVED_MODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

__all__ = [
    "ARCHES",
    "CACHE_LINE",
    "COUNTER_NAMES",
    "GFP_ATOMIC",
    "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT",
    "GFP_NOFS",
    "GFP_NOIO",
    "GFP_NOWAIT",
    "MAPLE_NODE_LINES",
    "MOVED_MODULES",
    "OVERLAP_WARNING",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "POPCOUNT4",
    "RCU_GP_TICKS",
    "RCU_TICK_COST",
    "RESERVED",
    "SHRINK_EMPTY",
    "SHRINK_STOP",
    "ULONG_MAX",
    "VMALLOC_END",
    "VMALLOC_START",
    "VMAP_AREA_MAPLE",
    "VMAP_AREA_RB",
    "VMAP_BBMAP_BITS",
    "VMAP_BLOCK_SIZE",
    "VMAP_MAX_ALLOC",
    "VMAP_PURGE_THRESHOLD",
    "__GFP_NOFAIL",
    "__GFP_NOWARN",
    "__GFP_ZERO",
    "AddressSpace",
    "Arch",
    "BusyIndex",
    "CacheConfig",
    "CacheModel",
    "Coalescer",
    "Component",
    "ComponentContext",
    "ComponentError",
    "CostTable",
    "Counters",
    "CountingLocks",
    "FailPageAllocConfig",
    "FailslabConfig",
    "FaultInjector",
    "FreeIndex",
    "Gfp",
    "InvariantError",
    "LazyQueue",
    "Member",
    "OccupiedIndex",
    "Overlay",
    "PcpuChunk",
    "PercpuAllocator",
    "PluginError",
    "PluginWarning",
    "SlabCache",
    "Stage",
    "StructLayout",
    "Union",
    "UnknownComponentError",
    "UnknownStageError",
    "VmStruct",
    "VmapAllocator",
    "VmapArea",
    "VmapArgumentError",
    "VmapBlock",
    "VmapError",
    "VmapTypeError",
    "Workload",
    "WorkloadReport",
    "__version__",
    "build",
    "cost_table",
    "derive_series",
    "field_blocks_table",
    "field_lines_table",
    "hookimpl",
    "is_within_this_va",
    "modelled_ns",
]
