"""vmapsim: a model of the Linux kernel's vmalloc allocator.

The allocator flow of mm/vmalloc.c, with the index data structures behind
it as pluggable components, stage by stage through the series that moves
vmalloc from augmented rb-trees to maple trees.

    >>> import vmapsim
    >>> a = vmapsim.build(stage=0)
    >>> addr = a.vmalloc(8192)
    >>> a.vfree(addr)
"""

from __future__ import annotations

from .allocator import VmapAllocator
from .api import build
from .area import VmapArea, VmStruct
from .constants import (
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
from .counters import Counters
from .descriptors import Component, ComponentContext, Stage, Workload
from .errors import (
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
from .faults import FailslabConfig, FaultInjector
from .hookspecs import hookimpl
from .layout import Member, StructLayout, Union
from .percpu import PcpuChunk, PercpuAllocator
from .rcu import RCU_GP_TICKS, RCU_TICK_COST
from .roles import BusyIndex, Coalescer, FreeIndex, LazyQueue, Overlay
from .vmap_block import (
    VMAP_BBMAP_BITS,
    VMAP_BLOCK_SIZE,
    VMAP_MAX_ALLOC,
    VMAP_PURGE_THRESHOLD,
    VmapBlock,
)

__version__ = "0.1.0"

__all__ = [
    "ARCHES",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "RCU_GP_TICKS",
    "RCU_TICK_COST",
    "SHRINK_EMPTY",
    "SHRINK_STOP",
    "ULONG_MAX",
    "VMALLOC_END",
    "VMALLOC_START",
    "VMAP_BBMAP_BITS",
    "VMAP_BLOCK_SIZE",
    "VMAP_MAX_ALLOC",
    "VMAP_PURGE_THRESHOLD",
    "Arch",
    "BusyIndex",
    "Coalescer",
    "Component",
    "ComponentContext",
    "ComponentError",
    "Counters",
    "FailslabConfig",
    "FaultInjector",
    "FreeIndex",
    "InvariantError",
    "LazyQueue",
    "Member",
    "Overlay",
    "PcpuChunk",
    "PercpuAllocator",
    "PluginError",
    "PluginWarning",
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
    "__version__",
    "build",
    "hookimpl",
]
