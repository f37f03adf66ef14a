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

from attrs import define, evolve, field, frozen

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
    "kaslr_rebase",
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
    """The records to place (busy first, then lazy) and the lines left out.

    ``rebase`` is what was added to the addresses of the areas in the
    vmalloc region (0: none; see :func:`kaslr_rebase`)."""

    arch: Arch
    arch_reason: str
    busy: tuple[VmallocinfoRecord, ...]
    lazy: tuple[VmallocinfoRecord, ...]
    problems: tuple[Problem, ...]
    outside_kept: int = 0
    rebase: int = 0
    rebase_reason: str = ""


#: x86_64 KASLR places vmalloc_base on a PUD (1 GiB) boundary
_REBASE_ALIGN = 1 << 30


def kaslr_rebase(records: Sequence[VmallocinfoRecord], arch: Arch) -> tuple[int, str]:
    """The shift that moves a KASLR kernel's vmalloc areas into the model's window.

    x86_64's ``CONFIG_RANDOMIZE_MEMORY`` moves ``vmalloc_base`` (to a 1 GiB
    boundary); the model's window is the unrandomized one.  When the areas
    outside the arch's module range do not all fit the window, but do once
    the 1 GiB-aligned base below the lowest of them is moved to
    ``VMALLOC_START``, that shift (a multiple of 1 GiB, so every alignment
    is kept) and why; else ``(0, "")``."""
    lo_mod, hi_mod = MODULE_RANGES[arch.name]
    region = [r for r in records if not (lo_mod <= r.start and r.end <= hi_mod)]
    lo, hi = arch.vmalloc_start, arch.vmalloc_end
    if not region or all(lo <= r.start and r.end <= hi for r in region):
        return 0, ""
    base = min(r.start for r in region) & -_REBASE_ALIGN
    delta = lo - base
    if not all(lo <= r.start + delta and r.end + delta <= hi for r in region):
        return 0, ""
    top = max(r.end for r in region)
    return delta, (
        f"the areas lie in [{base:#x}, {top:#x}), outside the model's window: a KASLR "
        f"vmalloc_base, moved to VMALLOC_START {lo:#x} (--print moves them back)"
    )


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

    An area in one arch's module range decides (x86_64's modules sit at
    fixed addresses above arm64's window even under KASLR; arm64's below its
    own window, where x86_64 has nothing).  Otherwise each arch scores the
    areas inside its vmalloc window; the higher score wins (x86_64's window
    lies inside arm64's, so a tie - every area in x86_64's window - goes to
    x86_64)."""
    for name in ("x86_64", "arm64"):
        lo, hi = MODULE_RANGES[name]
        n = sum(1 for r in records if lo <= r.start and r.end <= hi)
        if n:
            return ARCHES[name], f"inferred from the addresses: {n} areas in its module range"
    scores: dict[str, int] = {}
    for name, arch in ARCHES.items():
        scores[name] = sum(
            1 for r in records if arch.vmalloc_start <= r.start and r.end <= arch.vmalloc_end
        )
    best = max(scores, key=lambda n: (scores[n], n == "x86_64"))
    others = ", ".join(f"{n} {s}" for n, s in sorted(scores.items()) if n != best)
    tie = any(s == scores[best] for n, s in scores.items() if n != best)
    return ARCHES[best], (
        f"inferred from the addresses: {scores[best]} of {len(records)} areas in its "
        f"vmalloc window ({others}"
        + ("; x86_64's window lies inside arm64's, so a tie goes to x86_64" if tie else "")
        + ")"
    )


def plan_snapshot(
    records: Sequence[VmallocinfoRecord],
    arch: Arch,
    *,
    arch_reason: str = "given",
    keep_outside: bool = False,
    rebase: bool = True,
    delta: int | None = None,
) -> Plan:
    """Check every record against ``arch``'s window and against the others.

    An area outside ``[VMALLOC_START, VMALLOC_END)`` is left out (placed
    anyway with ``keep_outside``: the kernel's free space is one tree over
    the whole address space, so module and BPF areas shape it too); an area
    overlapping one on an earlier line is left out.  With ``rebase``, the
    areas of a KASLR kernel are first moved into the window
    (:func:`kaslr_rebase`, or by ``delta`` when it is known; the problems
    then show the moved addresses)."""
    problems: list[Problem] = []
    kept: list[VmallocinfoRecord] = []
    outside_kept = 0
    lo, hi = arch.vmalloc_start, arch.vmalloc_end
    if delta is not None:  # known exactly (a trace's window)
        rebase_reason = f"moved with the trace's window by {delta:#x}" if delta else ""
    else:
        delta, rebase_reason = kaslr_rebase(records, arch) if rebase else (0, "")
    if delta:
        lo_mod, hi_mod = MODULE_RANGES[arch.name]
        records = [
            r
            if lo_mod <= r.start and r.end <= hi_mod
            else evolve(r, start=r.start + delta, end=r.end + delta)
            for r in records
        ]
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
    return Plan(arch, arch_reason, busy, lazy, tuple(problems), outside_kept, delta, rebase_reason)


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
