"""Rebuild a parsed ``/proc/vmallocinfo`` on an allocator.

Every area is placed through the kernel model's own entry points, each
with a window exactly the area's size, so the lowest fit is the recorded
address:

* a ``vm_struct`` area (vmalloc, vmap, ioremap, per-CPU chunks, no flags):
  ``__get_vm_area_caller(size - guard, flags, start, end, caller)``
  (:meth:`~vmapsim.kernel.allocator.VmapAllocator.get_vm_area_caller`),
  then its ``nr_pages`` is set from ``pages=`` as ``__vmalloc_area_node()``
  sets it.  Per-CPU chunks (``pcpu_get_vm_areas``) and one-page areas carry
  no guard page (``VM_NO_GUARD``);
* a ``vm_map_ram`` area: ``alloc_vmap_area(size, PAGE_SIZE, start, end,
  VMAP_RAM)``, as ``vm_map_ram()`` of more than ``VMAP_MAX_ALLOC`` pages
  makes it (a 4 MiB block of the per-CPU vmap block allocator is placed the
  same way: its bitmap is not in the file);
* an ``unpurged vm_area``: ``alloc_vmap_area()`` then
  ``free_vmap_area_noflush()``, after every busy area is placed.

Before anything is placed the whole plan is checked (:func:`plan_snapshot`):
areas outside the arch's vmalloc window and areas overlapping an earlier
line are reported by line number and left out, so a placement cannot fail
half-way.  ``phys=``, ``vpages`` and ``N<node>=`` are not modelled; they
are kept beside the state (:attr:`BuildResult.annotations`) for the printer.
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Sequence

from attrs import define, field, frozen

from vmapsim.errors import VmapError
from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.area import VM_ALLOC, VM_IOREMAP, VM_MAP, VM_NO_GUARD, VM_SPARSE, VMAP_RAM
from vmapsim.kernel.constants import ARCHES, PAGE_SIZE, Arch
from vmapsim.kernel.gfp import GFP_KERNEL, Gfp
from vmapsim.tools.replay.textfile import Problem
from vmapsim.tools.replay.vmallocinfo import KIND_LAZY, KIND_RAM, VmallocinfoRecord

__all__ = [
    "MODULE_RANGES",
    "Annotation",
    "BuildResult",
    "Plan",
    "infer_arch",
    "plan_snapshot",
    "rebuild",
]

#: where each arch keeps its modules (x86_64: MODULES_VADDR..MODULES_END with
#: 4-level paging, no KASLR; arm64: _PAGE_END(48) + 2 GiB) - evidence for the
#: arch inference only: module areas are outside the vmalloc window
MODULE_RANGES: dict[str, tuple[int, int]] = {
    "x86_64": (0xFFFFFFFFA0000000, 0xFFFFFFFFFF000000),
    "arm64": (0xFFFF800000000000, 0xFFFF800080000000),
}

#: placements never warn, and may block (maple nodes are always to be had)
_GFP = int(GFP_KERNEL) | int(Gfp.NOWARN)


@frozen
class Annotation:
    """What a line says that the model does not keep: ``phys=``, ``vpages``, ``N<node>=``."""

    phys: int = 0
    vpages: bool = False
    numa: tuple[tuple[int, int], ...] = ()


@frozen
class Plan:
    """The records to place (busy first, then lazy) and the lines left out."""

    arch: Arch
    arch_reason: str
    busy: tuple[VmallocinfoRecord, ...]
    lazy: tuple[VmallocinfoRecord, ...]
    problems: tuple[Problem, ...]
    outside_kept: int = 0


@define
class BuildResult:
    """What :func:`rebuild` placed, by kind, and what it could not."""

    placed: Counter = field(factory=Counter)
    problems: list[Problem] = field(factory=list)
    annotations: dict[int, Annotation] = field(factory=dict)
    #: lazily freed pages at the end (the model may have purged: see ``notes``)
    notes: list[str] = field(factory=list)

    @property
    def nr_placed(self) -> int:
        return sum(self.placed.values())


def infer_arch(records: Sequence[VmallocinfoRecord]) -> tuple[Arch, str]:
    """The arch whose address space the records come from, and why.

    Each arch scores the areas inside its vmalloc window or its module
    range; the higher score wins (x86_64's window lies inside arm64's, so a
    tie - every area in x86_64's window - goes to x86_64)."""
    scores: dict[str, int] = {}
    for name, arch in ARCHES.items():
        lo, hi = MODULE_RANGES[name]
        scores[name] = sum(
            1
            for r in records
            if (arch.vmalloc_start <= r.start and r.end <= arch.vmalloc_end)
            or (lo <= r.start and r.end <= hi)
        )
    best = max(scores, key=lambda n: (scores[n], n == "x86_64"))
    others = ", ".join(f"{n} {s}" for n, s in sorted(scores.items()) if n != best)
    tie = any(s == scores[best] for n, s in scores.items() if n != best)
    return ARCHES[best], (
        f"inferred from the addresses: {scores[best]} of {len(records)} areas in its "
        f"vmalloc window or module range ({others}"
        + ("; x86_64's window lies inside arm64's, so a tie goes to x86_64" if tie else "")
        + ")"
    )


def plan_snapshot(
    records: Sequence[VmallocinfoRecord],
    arch: Arch,
    *,
    arch_reason: str = "given",
    keep_outside: bool = False,
) -> Plan:
    """Check every record against ``arch``'s window and against the others.

    An area outside ``[VMALLOC_START, VMALLOC_END)`` is left out (placed
    anyway with ``keep_outside``: the kernel's free space is one tree over
    the whole address space, so module and BPF areas shape it too); an area
    overlapping one on an earlier line is left out."""
    problems: list[Problem] = []
    kept: list[VmallocinfoRecord] = []
    outside_kept = 0
    lo, hi = arch.vmalloc_start, arch.vmalloc_end
    for r in records:
        if not (lo <= r.start and r.end <= hi):
            if not keep_outside:
                problems.append(
                    Problem(
                        r.line,
                        f"{r.start:#x}-{r.end:#x} is outside {arch.name}'s vmalloc window "
                        f"[{lo:#x}, {hi:#x}) (--keep-outside places it)",
                    )
                )
                continue
            outside_kept += 1
        kept.append(r)
    # overlaps: the earlier line wins
    by_start = sorted(kept, key=lambda r: (r.start, r.line))
    dropped: set[int] = set()
    last: VmallocinfoRecord | None = None
    for r in by_start:
        if last is not None and r.start < last.end:
            first, second = (last, r) if last.line < r.line else (r, last)
            dropped.add(second.line)
            problems.append(
                Problem(
                    second.line,
                    f"{second.start:#x}-{second.end:#x} overlaps line {first.line} "
                    f"({first.start:#x}-{first.end:#x})",
                )
            )
            if second is last:
                last = r
            continue
        last = r
    kept = [r for r in kept if r.line not in dropped]
    problems.sort(key=lambda p: p.line)
    busy = tuple(sorted((r for r in kept if r.kind != KIND_LAZY), key=_start))
    lazy = tuple(sorted((r for r in kept if r.kind == KIND_LAZY), key=_start))
    return Plan(arch, arch_reason, busy, lazy, tuple(problems), outside_kept)


def _start(r: VmallocinfoRecord) -> int:
    return r.start


def kind_of(r: VmallocinfoRecord) -> str:
    """A record's kind for the counts: ioremap, sparse, vmalloc, vmap, percpu, vm (no
    such flag), vm_map_ram, unpurged."""
    if r.kind != "vm":
        return r.kind
    if r.is_percpu:
        return "percpu"
    for bit, name in (
        (VM_IOREMAP, "ioremap"),
        (VM_SPARSE, "sparse"),
        (VM_ALLOC, "vmalloc"),
        (VM_MAP, "vmap"),
    ):
        if r.flags & bit:
            return name
    return "vm"


def rebuild(alloc: VmapAllocator, plan: Plan, *, cpu: int = 0) -> BuildResult:
    """Place the plan's areas on ``alloc`` (busy areas, then the lazy ones)."""
    result = BuildResult()
    for r in plan.busy:
        if _place_busy(alloc, r, cpu):
            result.placed[kind_of(r)] += 1
            if r.phys or r.vpages or r.numa:
                result.annotations[r.start] = Annotation(r.phys, r.vpages, r.numa)
        else:
            reason = "the model could not place it at its address"
            if r.flags & VM_IOREMAP:
                reason += " (__get_vm_area_node() aligns an ioremap area by its size)"
            result.problems.append(Problem(r.line, reason))
    lazy_max = alloc.lazy_max_pages()
    for r in plan.lazy:
        purges = alloc.metrics.purges
        try:
            va = alloc.alloc_vmap_area(
                r.size, PAGE_SIZE, r.start, r.end, gfp=_GFP, cpu=cpu, va_flags=0
            )
        except VmapError:
            result.problems.append(Problem(r.line, "the model could not place it at its address"))
            continue
        alloc.free_vmap_area_noflush(va)
        result.placed[KIND_LAZY] += 1
        if alloc.metrics.purges != purges:
            result.notes.append(
                f"line {r.line}: the lazily freed pages passed lazy_max_pages() = {lazy_max} "
                f"(nr_cpus {alloc.nr_cpus}), so the model purged them all, as the kernel's "
                f"drain work would; a larger --nr-cpus keeps them"
            )
    result.problems.sort(key=lambda p: p.line)
    return result


def _place_busy(alloc: VmapAllocator, r: VmallocinfoRecord, cpu: int) -> bool:
    if r.kind == KIND_RAM:
        try:
            alloc.alloc_vmap_area(
                r.size, PAGE_SIZE, r.start, r.end, gfp=_GFP, cpu=cpu, va_flags=VMAP_RAM
            )
        except VmapError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOMEM):  # pragma: no cover - a bug
                raise
            return False
        return True
    flags = r.flags
    size = r.size
    if r.is_percpu or size == PAGE_SIZE:
        flags |= VM_NO_GUARD
    else:
        size -= PAGE_SIZE  # __get_vm_area_node() adds the guard page back
    vm = alloc.get_vm_area_caller(size, flags, r.start, r.end, r.caller, gfp=_GFP, cpu=cpu)
    if vm is None:
        return False
    if vm.addr != r.start:  # pragma: no cover - the window allows no other fit
        raise AssertionError(f"line {r.line}: placed at {vm.addr:#x}, not {r.start:#x}")
    vm.nr_pages = r.pages  # what __vmalloc_area_node() mapped
    return True
