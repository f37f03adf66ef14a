"""Parse ``trace-cmd report`` / ftrace text output of the vmalloc tracepoints.

include/trace/events/vmalloc.h (read at torvalds/linux c183e6c3) defines
three events; their ``TP_printk`` formats are:

* ``alloc_vmap_area``: ``va_start: %lu size=%lu align=%lu vstart=0x%lx
  vend=0x%lx failed=%d`` - one per attempt inside ``alloc_vmap_area()``
  (the address in decimal; a failed attempt prints the error value as an
  unsigned long - ``vend`` in older kernels - and ``failed=1``, and a
  blocking call purges and tries again);
* ``purge_vmap_area_lazy``: ``start=0x%lx end=0x%lx num_purged=%u`` - at
  the end of every ``__purge_vmap_area_lazy()``;
* ``free_vmap_area_noflush``: ``va_start=0x%lx nr_lazy=%lu
  nr_lazy_max=%lu`` - after an area joins its node's lazy list.

Each event line is ``TASK-PID [CPU] [FLAGS] TIMESTAMP: EVENT: FIELDS``
(ftrace's ``trace`` file adds the latency flags and may show the tgid in
parentheses; ``trace-cmd report`` leaves the flags out unless ``-l``).
Header lines (``# ...``, ``cpus=N``, ``version = N``, ``CPU N is empty``)
are skipped, and the CPU count they give is kept; other events are counted
and skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from vmapsim.kernel.constants import ULONG_MAX
from vmapsim.tools.replay.textfile import Problem

__all__ = ["EVENTS", "ParsedTrace", "TraceEvent", "parse_trace"]

EVENTS = ("alloc_vmap_area", "purge_vmap_area_lazy", "free_vmap_area_noflush")

_LINE = re.compile(
    r"\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s:]{4,6})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[\w:]+):\s*(?P<body>.*)\Z"
)
_BODY = {
    "alloc_vmap_area": re.compile(
        r"va_start: (?P<addr>\d+) size=(?P<size>\d+) align=(?P<align>\d+) "
        r"vstart=0x(?P<vstart>[0-9a-fA-F]+) vend=0x(?P<vend>[0-9a-fA-F]+) "
        r"failed=(?P<failed>-?\d+)\Z"
    ),
    "purge_vmap_area_lazy": re.compile(
        r"start=0x(?P<start>[0-9a-fA-F]+) end=0x(?P<end>[0-9a-fA-F]+) "
        r"num_purged=(?P<npurged>\d+)\Z"
    ),
    "free_vmap_area_noflush": re.compile(
        r"va_start=0x(?P<va_start>[0-9a-fA-F]+) nr_lazy=(?P<nr_lazy>\d+) "
        r"nr_lazy_max=(?P<nr_lazy_max>\d+)\Z"
    ),
}
_HEADER = re.compile(r"\s*(?:#.*|cpus=\d+|version = .*|CPU \d+ is empty|CPU:\d+ \[.*\])?\Z")
_CPUS = re.compile(r"(?:^cpus=(\d+)$|#P:(\d+))")
_VMALLOCINFO = re.compile(r"0x[0-9a-fA-F]+-0x[0-9a-fA-F]+\s+\d+")


@frozen
class TraceEvent:
    """One vmalloc event: its line, task, pid, CPU, timestamp, name and fields."""

    line: int
    task: str
    pid: int
    cpu: int
    ts: float
    name: str
    fields: dict[str, int]


@frozen
class ParsedTrace:
    """A parsed trace: its vmalloc events in file order, the lines not used."""

    events: tuple[TraceEvent, ...]
    problems: tuple[Problem, ...]
    nr_lines: int
    other_events: int = 0
    #: the CPU count a header gave (``cpus=N``, ``#P:N``), else None
    nr_cpus: int | None = None
    #: lines that look like /proc/vmallocinfo (to name a file of the wrong kind)
    vmallocinfo_like: int = 0


def parse_trace(lines: Sequence[str]) -> ParsedTrace:
    """Parse the lines of a trace (line 1 is ``lines[0]``)."""
    events: list[TraceEvent] = []
    problems: list[Problem] = []
    other = like = 0
    nr_cpus: int | None = None
    for no, raw in enumerate(lines, 1):
        text = raw.rstrip()
        if _HEADER.match(text):
            m = _CPUS.search(text)
            if m is not None and nr_cpus is None:
                nr_cpus = int(m.group(1) or m.group(2))
            continue
        m = _LINE.match(text)
        if m is None:
            if _VMALLOCINFO.match(text):
                like += 1
            problems.append(
                Problem(no, "not a trace event line (TASK-PID [CPU] TIME: EVENT:)", text)
            )
            continue
        name = m.group("event").rpartition(":")[2]
        if name not in _BODY:
            other += 1
            continue
        b = _BODY[name].match(m.group("body").strip())
        if b is None:
            problems.append(
                Problem(no, f"{name}: the fields do not match its TP_printk format", text)
            )
            continue
        fields = {
            k: int(v, 16) if k in ("vstart", "vend", "start", "end", "va_start") else int(v)
            for k, v in b.groupdict().items()
        }
        bad = [k for k, v in fields.items() if not -(1 << 31) <= v <= ULONG_MAX]
        if bad:
            problems.append(Problem(no, f"{name}: {bad[0]} does not fit an unsigned long", text))
            continue
        events.append(
            TraceEvent(
                no,
                m.group("task"),
                int(m.group("pid")),
                int(m.group("cpu")),
                float(m.group("ts")),
                name,
                fields,
            )
        )
    return ParsedTrace(tuple(events), tuple(problems), len(lines), other, nr_cpus, like)
