"""Replay a vmalloc trace as an operation stream on an allocator.

Each ``alloc_vmap_area()`` call of the trace (its attempts: zero or more
``failed=1`` events of one task with the same arguments, then a
``failed=0`` one, or none when the call gave up) becomes one call of the
model's ``alloc_vmap_area()`` with the recorded size, align and window,
made where its first attempt is, on the recorded CPU; the model purges and
retries inside that call as the kernel does.  The address it returns is
checked against the recorded one.  Each ``free_vmap_area_noflush`` event
frees the model's area that answers the recorded address
(``free_vmap_area_noflush()``): after a divergence the model's own area of
that allocation, so the replay goes on; an area allocated before the trace
began is found among the busy areas (a snapshot replayed first) or the
free is counted as unknown.  A ``purge_vmap_area_lazy`` event that purged
areas makes the model purge what it holds lazily then
(``drain_vmap_area_work()``), so both stay in step; the model also purges
on its own schedule (at once when a free passes ``lazy_max_pages()``, where
the kernel schedules the drain work, which runs a little later, and inside
a call that finds no space).
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import Sequence

from attrs import define, evolve, field, frozen

from vmapsim.errors import VmapArgumentError, VmapError
from vmapsim.kernel.allocator import VmapAllocator
from vmapsim.kernel.area import VmapArea
from vmapsim.kernel.constants import Arch
from vmapsim.kernel.gfp import GFP_KERNEL
from vmapsim.tools.replay.ftrace import TraceEvent
from vmapsim.tools.replay.textfile import Problem

__all__ = [
    "Divergence",
    "TraceResult",
    "nr_cpus_from_lazy_max",
    "rebase_events",
    "replay_trace",
    "trace_window",
]

_GFP_KERNEL = int(GFP_KERNEL)


@frozen
class Divergence:
    """An allocation whose address (or failure) differs: line, expected, got."""

    line: int
    expected: str
    got: str
    request: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.request}: expected {self.expected}, got {self.got}"


@define
class TraceResult:
    """What a replay found."""

    stage: str
    allocs: int = 0
    matched: int = 0
    failed_both: int = 0
    diverged: int = 0
    retried: int = 0
    frees: int = 0
    frees_unknown: int = 0
    frees_of_diverged: int = 0
    trace_purges: int = 0
    trace_purged_areas: int = 0
    model_purges: int = 0
    driven_purges: int = 0
    lazy_nr_mismatches: int = 0
    divergences: list[Divergence] = field(factory=list)
    problems: list[Problem] = field(factory=list)
    notes: list[str] = field(factory=list)

    @property
    def first(self) -> Divergence | None:
        return self.divergences[0] if self.divergences else None

    def lines(self) -> list[str]:
        """The summary as ``vmapsim replay trace`` prints it."""
        out = [
            f"allocations: {self.allocs}, matched {self.matched} "
            f"(of which {self.failed_both} failed in both), diverged {self.diverged}",
            f"frees: {self.frees} applied, {self.frees_of_diverged} of diverged allocations, "
            f"{self.frees_unknown} unknown (allocated before the trace)",
            f"purges: {self.trace_purges} in the trace ({self.trace_purged_areas} areas), "
            f"{self.model_purges} in the model ({self.driven_purges} made at the trace's)",
        ]
        first = self.first
        out.append(f"first divergence: {first}" if first else "first divergence: none")
        return out

    def as_dict(self) -> dict:
        return {
            "stage": self.stage,
            "allocs": self.allocs,
            "matched": self.matched,
            "failed_both": self.failed_both,
            "diverged": self.diverged,
            "retried": self.retried,
            "frees": self.frees,
            "frees_unknown": self.frees_unknown,
            "frees_of_diverged": self.frees_of_diverged,
            "trace_purges": self.trace_purges,
            "trace_purged_areas": self.trace_purged_areas,
            "model_purges": self.model_purges,
            "driven_purges": self.driven_purges,
            "lazy_nr_mismatches": self.lazy_nr_mismatches,
            "first_divergence": None
            if self.first is None
            else {
                "line": self.first.line,
                "expected": self.first.expected,
                "got": self.first.got,
                "request": self.first.request,
            },
            "divergences_shown": [str(d) for d in self.divergences],
            "problems": [str(p) for p in self.problems],
            "notes": self.notes,
        }


@define
class _Call:
    params: tuple[int, int, int, int]
    line: int
    va: VmapArea | None
    error: str
    attempts: int = 1


def trace_window(events: Sequence[TraceEvent], arch: Arch) -> tuple[int, int] | None:
    """The machine's ``[VMALLOC_START, VMALLOC_END]`` as its requests show it: the
    arch's window itself, or the most used window of the same size (a KASLR
    kernel's, moved); None if no request uses either."""
    windows = Counter(
        (e.fields["vstart"], e.fields["vend"]) for e in events if e.name == "alloc_vmap_area"
    )
    own = (arch.vmalloc_start, arch.vmalloc_end)
    if own in windows:
        return own
    size = arch.vmalloc_end - arch.vmalloc_start
    same = [(n, w) for w, n in windows.items() if w[1] - w[0] == size]
    return max(same)[1] if same else None


def rebase_events(events: Sequence[TraceEvent], delta: int, lo: int, hi: int) -> list[TraceEvent]:
    """``events`` with every address in ``[lo, hi]`` (the machine's window) moved by
    ``delta`` into the model's (failed attempts' values, and purge bounds outside
    the window, stay as they are)."""
    if not delta:
        return list(events)
    keys = {
        "alloc_vmap_area": ("addr", "vstart", "vend"),
        "free_vmap_area_noflush": ("va_start",),
        "purge_vmap_area_lazy": ("start", "end"),
    }
    out = []
    for e in events:
        f = dict(e.fields)
        for k in keys[e.name]:
            if lo <= f[k] <= hi and not (k == "addr" and f["failed"]):
                f[k] += delta
        out.append(evolve(e, fields=f))
    return out


def nr_cpus_from_lazy_max(nr_lazy_max: int, page_shift: int = 12) -> int | None:
    """The smallest CPU count whose ``lazy_max_pages()`` is ``nr_lazy_max``
    (``fls(num_online_cpus()) * 32 MiB / PAGE_SIZE``), or None if none is."""
    per = (32 << 20) >> page_shift
    if nr_lazy_max <= 0 or nr_lazy_max % per:
        return None
    return 1 << (nr_lazy_max // per - 1)


def replay_trace(
    alloc: VmapAllocator, events: Sequence[TraceEvent], *, keep: int = 10
) -> TraceResult:
    """Replay ``events`` on ``alloc``; ``keep`` divergences are kept (all are counted)."""
    res = TraceResult(alloc.stage.key)
    areas: dict[int, VmapArea] = {}  # recorded address -> the model's area
    diverged_addrs: set[int] = set()
    open_calls: dict[int, _Call] = {}
    purges0 = alloc.metrics.purges
    lazy_max = alloc.lazy_max_pages()
    noted_max = False

    def close(call: _Call, kernel_addr: int | None) -> None:
        res.allocs += 1
        res.retried += call.attempts > 1
        size, align, vstart, vend = call.params
        request = f"alloc_vmap_area(size={size}, align={align}, [{vstart:#x}, {vend:#x}))"
        got = call.error if call.va is None else f"{call.va.va_start:#x}"
        expected = "failure" if kernel_addr is None else f"{kernel_addr:#x}"
        if kernel_addr is None and call.va is None:
            res.matched += 1
            res.failed_both += 1
            return
        if kernel_addr is not None and call.va is not None and call.va.va_start == kernel_addr:
            res.matched += 1
            areas[kernel_addr] = call.va
            return
        res.diverged += 1
        if len(res.divergences) < keep:
            res.divergences.append(Divergence(call.line, expected, got, request))
        if kernel_addr is not None:
            if call.va is not None:
                areas[kernel_addr] = call.va  # its free frees the model's own area
            else:
                diverged_addrs.add(kernel_addr)

    def start(e: TraceEvent) -> _Call | None:
        f = e.fields
        params = (f["size"], f["align"], f["vstart"], f["vend"])
        try:
            va = alloc.alloc_vmap_area(
                f["size"],
                f["align"],
                f["vstart"],
                f["vend"],
                gfp=_GFP_KERNEL,
                cpu=e.cpu % alloc.nr_cpus,
            )
            return _Call(params, e.line, va, "")
        except VmapArgumentError as exc:
            res.problems.append(Problem(e.line, f"alloc_vmap_area: the model refuses it: {exc}"))
            return None
        except VmapError as exc:
            if exc.errno == errno.EINVAL:  # returned before the tracepoint: no such event
                res.problems.append(
                    Problem(e.line, f"alloc_vmap_area: the kernel returns -EINVAL first: {exc}")
                )
                return None
            return _Call(params, e.line, None, f"failure ({exc})")

    for e in events:
        f = e.fields
        if e.name == "alloc_vmap_area":
            params = (f["size"], f["align"], f["vstart"], f["vend"])
            call = open_calls.pop(e.pid, None)
            if call is not None and call.params == params:
                call.attempts += 1
            else:
                if call is not None:
                    close(call, None)
                call = start(e)
                if call is None:
                    continue
            if f["failed"]:
                open_calls[e.pid] = call
            else:
                close(call, f["addr"])
        elif e.name == "free_vmap_area_noflush":
            call = open_calls.pop(e.pid, None)
            if call is not None:
                close(call, None)
            addr = f["va_start"]
            if not noted_max and f["nr_lazy_max"] != lazy_max:
                noted_max = True
                res.notes.append(
                    f"line {e.line}: the kernel's lazy_max_pages() was {f['nr_lazy_max']}, the "
                    f"model's is {lazy_max} (nr_cpus {alloc.nr_cpus}): purges come at other "
                    f"times (--nr-cpus sets it)"
                )
            va = areas.pop(addr, None)
            if va is None:
                if addr in diverged_addrs:
                    diverged_addrs.discard(addr)
                    res.frees_of_diverged += 1
                    continue
                found = alloc.find_vmap_area(addr)
                if found is None or found.va_start != addr:
                    res.frees_unknown += 1
                    continue
                va = found
            alloc.free_vmap_area_noflush(va)
            res.frees += 1
            if alloc.vmap_lazy_nr != f["nr_lazy"]:
                res.lazy_nr_mismatches += 1
        else:  # purge_vmap_area_lazy
            res.trace_purges += 1
            res.trace_purged_areas += f["npurged"]
            if f["npurged"] and alloc.vmap_lazy_nr:
                # the kernel purged what was lazy then; so does the model (unless
                # its own threshold drain or a failing call's purge already did)
                alloc.drain_vmap_area_work()
                res.driven_purges += 1
    for call in open_calls.values():
        close(call, None)
    res.model_purges = alloc.metrics.purges - purges0
    if res.lazy_nr_mismatches:
        res.notes.append(
            f"nr_lazy differed from the model's vmap_lazy_nr after {res.lazy_nr_mismatches} "
            f"frees (lazily freed pages from before the trace, or purges at other times)"
        )
    return res
