"""The ``module_load`` workload: insmod / rmmod cycles through finit_module.

One insmod, as ``finit_module()`` -> ``kernel_read_file()`` ->
``load_module()`` does it:

1. ``kernel_read_file()`` vmallocs a buffer of the file's size and fills it
   page by page.  Pages are not modelled; each page's copy is modelled as one
   ``find_vmap_area()`` of the page's address (what
   ``CONFIG_HARDENED_USERCOPY``'s ``check_heap_object()`` does for a
   vmalloc address), so the fill resolves every page of the buffer.
2. ``load_module()`` allocates the module's memory (its ``SHF_ALLOC``
   sections) with ``execmem_alloc()``: ``alloc_vmap_area()`` of the page-
   rounded size plus a guard page in the module window (x86_64
   ``[MODULES_VADDR, MODULES_END)``; arm64 the 2 GiB below
   ``VMALLOC_START``), which is not the default vmalloc window.
3. The read buffer is vfree()d once the module is laid out.

An rmmod frees a loaded module's memory (``free_vmap_area_noflush()``).
Each cycle is an rmmod of a random loaded module when ``max_loaded`` are
loaded or with probability 0.45, else an insmod, on a random CPU.

Sizes: the ``.ko`` file size is log-normal with median 16 KiB and
``sigma = 1.0`` (``exp(N(ln 16384, 1))``), clipped to [1 KiB, 8 MiB]: every
buffer is within patches 10-12's 32 MiB eligibility limit;
the module's memory is a uniform 40-90% of the file (the rest is symbols,
strings and debug sections ``load_module()`` does not keep).  Deterministic
for a seed.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from vmapsim import PAGE_SIZE, VmapArea, VmapError, Workload, WorkloadReport

__all__ = ["WORKLOADS", "module_load", "module_window"]

P = PAGE_SIZE
#: x86_64: MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB), MODULES_END
X86_64_MODULES = (0xFFFFFFFFC0000000, 0xFFFFFFFFFF000000)
MEDIAN_KO = 16 << 10
SIGMA_KO = 1.0


def module_window(allocator: Any) -> tuple[int, int]:
    """``[MODULES_VADDR, MODULES_END)`` of the allocator's architecture."""
    if allocator.arch.name == "x86_64":
        return X86_64_MODULES
    return allocator.vmalloc_start - (2 << 30), allocator.vmalloc_start


def ko_size(rng: random.Random) -> int:
    """A ``.ko`` file size in bytes (the documented log-normal distribution)."""
    size = int(math.exp(rng.gauss(math.log(MEDIAN_KO), SIGMA_KO)))
    return min(max(size, 1 << 10), 8 << 20)


def module_load(
    allocator: Any, *, seed: int = 0, nr_cycles: int = 6000, max_loaded: int = 64
) -> WorkloadReport:
    """insmod / rmmod cycles (module docstring); returns a WorkloadReport."""
    rng = random.Random(seed)
    lo, hi = module_window(allocator)
    loaded: list[VmapArea] = []
    ops = {"insmod": 0, "rmmod": 0, "buffer_pages_filled": 0, "failed": 0}
    nr_cpus = allocator.nr_cpus
    t0 = time.perf_counter()
    for _ in range(nr_cycles):
        cpu = rng.randrange(nr_cpus)
        if loaded and (len(loaded) >= max_loaded or rng.random() < 0.45):
            i = rng.randrange(len(loaded))
            loaded[i], loaded[-1] = loaded[-1], loaded[i]
            allocator.free_vmap_area_noflush(loaded.pop())
            ops["rmmod"] += 1
            continue
        file_size = ko_size(rng)
        buf = allocator.vmalloc(file_size, cpu=cpu)  # kernel_read_file()
        if buf is None:
            ops["failed"] += 1
            continue
        for page in range((file_size + P - 1) // P):  # filled page by page
            allocator.find_vmap_area(buf + page * P)
            ops["buffer_pages_filled"] += 1
        mod_size = ((int(file_size * rng.uniform(0.4, 0.9)) + P - 1) // P) * P + P
        try:
            va = allocator.alloc_vmap_area(mod_size, P, lo, hi, cpu=cpu)  # execmem_alloc()
        except VmapError:
            ops["failed"] += 1
        else:
            loaded.append(va)
            ops["insmod"] += 1
        allocator.vfree(buf, cpu=cpu)
    for va in loaded:
        allocator.free_vmap_area_noflush(va)
        ops["rmmod"] += 1
    elapsed = time.perf_counter() - t0
    params = {"seed": seed, "nr_cycles": nr_cycles, "max_loaded": max_loaded}
    return WorkloadReport("module_load", params, ops, elapsed)


WORKLOADS = [
    Workload(
        "module_load",
        "insmod/rmmod cycles: kernel_read_file buffer filled page by page, module memory",
        module_load,
    )
]
