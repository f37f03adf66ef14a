"""Built-in workloads.

A workload is a seeded driver of an allocator's public API.  It returns a
:class:`WorkloadReport`; the allocator's counters and log say the rest.
The test_vmalloc suite lands as its own module.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from vmapsim.errors import VmapArgumentError
from vmapsim.framework.descriptors import Workload
from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.kernel.gfp import GFP_NOWAIT

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["WORKLOADS", "WorkloadReport", "mixed"]

_GFP_NOWAIT = int(GFP_NOWAIT)


@frozen
class WorkloadReport:
    """What a workload did: operation counts and wall-clock time."""

    name: str
    params: dict[str, Any] = field(factory=dict)
    ops: dict[str, int] = field(factory=dict)
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        out = [f"workload {self.name}: {params}"]
        out += [f"  {k:<24} {v}" for k, v in self.ops.items()]
        out.append(f"  {'elapsed':<24} {self.elapsed_s:.3f} s")
        return out


def _size_pages(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.70:
        return rng.randint(1, 4)
    if r < 0.95:
        return rng.randint(5, 256)
    return rng.randint(257, 2048)


def mixed(
    allocator: VmapAllocator,
    *,
    seed: int = 0,
    nr_ops: int = 20000,
    max_live: int = 2000,
    nowait_pct: int = 0,
    aligned_pct: int = 10,
) -> WorkloadReport:
    """A seeded mix of vmalloc, __vmalloc_node (aligned) and vfree on every CPU.

    70% of sizes are 1-4 pages, 25% 5-256 pages (pool sizes), 5% larger;
    ``aligned_pct`` percent (default 10) ask for an alignment of 2..64 pages.  Up to
    ``max_live`` areas stay live; frees pick a random live area.
    ``nowait_pct`` percent of the requests are ``__vmalloc_node(size,
    PAGE_SIZE, GFP_NOWAIT)`` (non-blocking; 0, the default, draws nothing
    extra, so the mix is unchanged).
    """
    for name, pct in (("nowait_pct", nowait_pct), ("aligned_pct", aligned_pct)):
        if type(pct) is not int or not 0 <= pct <= 100:
            raise VmapArgumentError(name, "must be an integer percentage in [0, 100]", pct)
    rng = random.Random(seed)
    live: list[int] = []
    ops = {"vmalloc": 0, "vmalloc_node": 0, "vfree": 0, "failed": 0}
    nr_cpus = allocator.nr_cpus
    t0 = time.perf_counter()
    for _ in range(nr_ops):
        cpu = rng.randrange(nr_cpus)
        if live and (len(live) >= max_live or rng.random() < 0.45):
            i = rng.randrange(len(live))
            live[i], live[-1] = live[-1], live[i]
            allocator.vfree(live.pop(), cpu=cpu)
            ops["vfree"] += 1
            continue
        size = _size_pages(rng) * PAGE_SIZE - rng.choice((0, 0, 0, 100))
        if nowait_pct and rng.randrange(100) < nowait_pct:
            addr = allocator.vmalloc_node(size, PAGE_SIZE, gfp=_GFP_NOWAIT, cpu=cpu)
            ops["vmalloc_nowait"] = ops.get("vmalloc_nowait", 0) + 1
        elif rng.random() < aligned_pct / 100:
            align = PAGE_SIZE << rng.randint(1, 6)
            addr = allocator.vmalloc_node(size, align, cpu=cpu)
            ops["vmalloc_node"] += 1
        else:
            addr = allocator.vmalloc(size, cpu=cpu)
            ops["vmalloc"] += 1
        if addr is None:
            ops["failed"] += 1
        else:
            live.append(addr)
    for addr in live:
        allocator.vfree(addr)
        ops["vfree"] += 1
    elapsed = time.perf_counter() - t0
    params = {"seed": seed, "nr_ops": nr_ops, "max_live": max_live}
    if nowait_pct:
        params["nowait_pct"] = nowait_pct
    if aligned_pct != 10:
        params["aligned_pct"] = aligned_pct
    return WorkloadReport("mixed", params, ops, elapsed)


WORKLOADS: list[Workload] = [
    Workload(
        "mixed",
        "seeded mix of vmalloc / __vmalloc_node / vfree over all CPUs",
        mixed,
    ),
]
