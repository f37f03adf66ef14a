"""The core features on other components of stage 0's roles (the busy and lazy
maple trees, generic coalescing) and on every registered stage: the same
addresses, free/busy/lazy sets and log as stage 0 with the rb-trees, with
the invariants checked after every operation."""

from __future__ import annotations

import pytest

import vmapsim
from conftest import P
from vmapsim.framework.registry import get_registry

COMPONENTS = [
    None,
    {"busy": "maple", "lazy": "maple"},
    {"coalesce": "generic"},
    {"busy": "maple", "lazy": "maple", "coalesce": "generic"},
]


def scenario(components, stage="0"):
    a = vmapsim.build(stage, nr_cpus=2, debug=True, components=components)
    out = []
    maps = [a.vm_map_ram(n, cpu=n % 2) for n in (1, 3, 64, 100, 7, 2, 64, 64)]
    out += maps
    for addr, n in zip(maps[::2], (1, 64, 7, 64), strict=True):
        a.vm_unmap_ram(addr, n)
    a.vm_unmap_aliases()
    vms = a.pcpu_get_vm_areas([0, 4 * 16 * P], [16 * P, 32 * P], 16 * P)
    out += [vm.addr for vm in vms]
    ptrs = [a.alloc_percpu(8 + 24 * i, 1 << (i % 12)) for i in range(40)]
    out += ptrs
    for p in ptrs[::3]:
        a.free_percpu(p)
    v = [a.vmalloc((i + 1) * P) for i in range(20)]
    for p in v[::2]:
        a.kvfree_rcu(p)
    out.append(a.vrealloc(v[1], 5 * P))
    a.synchronize_rcu()
    a.pcpu_free_vm_areas(vms)
    a.purge_vmap_area_lazy()
    out += [a.vmalloc(3 * P), a.vm_map_ram(5)]
    state = (
        [(x.va_start, x.va_end) for x in a.free_areas()],
        [(x.va_start, x.va_end, x.flags) for x in a.busy_areas()],
        [(x.va_start, x.va_end) for x in a.lazy_areas()],
        a.vmap_lazy_nr,
        a.log,
    )
    return out, state


@pytest.mark.parametrize("components", COMPONENTS[1:])
def test_same_results_on_every_component_set(components):
    assert scenario(components) == scenario(COMPONENTS[0])


# Stages 10-12 place overlay-eligible vmalloc()s from per-CPU chunks by design
# (docs/stages.md, row 10): every other stage gives stage 0's results.
_SAME_AS_0 = [
    k
    for k in get_registry().stage_keys()
    if k != "maple:0" and "overlay" not in get_registry().stages[k].components
]


@pytest.mark.parametrize("stage", _SAME_AS_0)
def test_same_results_on_every_stage(stage):
    assert scenario(None, stage) == scenario(None)
