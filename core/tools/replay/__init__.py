"""``vmapsim replay``: bring a real machine's vmalloc state and allocation
stream into the model.

One module per job: :mod:`.textfile` reads an input file (and refuses an
empty, binary or truncated one), :mod:`.vmallocinfo` parses
``/proc/vmallocinfo``, :mod:`.ftrace` parses ``trace-cmd report`` / ftrace
text of the vmalloc tracepoints, :mod:`.builder` rebuilds a parsed
snapshot on an allocator through the kernel model's own paths,
:mod:`.printer` writes an allocator's state back in ``/proc/vmallocinfo``'s
format, :mod:`.trace_replay` replays a trace as an operation stream,
:mod:`.command` is the command line, :mod:`.generate` writes larger sample
files.  The formats and what is modelled: docs/replay.md.
"""

from __future__ import annotations

from vmapsim.tools.replay.builder import BuildResult, infer_arch, plan_snapshot, rebuild
from vmapsim.tools.replay.ftrace import TraceEvent, parse_trace
from vmapsim.tools.replay.printer import format_vmallocinfo
from vmapsim.tools.replay.textfile import InputError, read_text
from vmapsim.tools.replay.trace_replay import TraceResult, replay_trace
from vmapsim.tools.replay.vmallocinfo import VmallocinfoRecord, parse_vmallocinfo

__all__ = [
    "BuildResult",
    "InputError",
    "TraceEvent",
    "TraceResult",
    "VmallocinfoRecord",
    "format_vmallocinfo",
    "infer_arch",
    "parse_trace",
    "parse_vmallocinfo",
    "plan_snapshot",
    "read_text",
    "rebuild",
    "replay_trace",
]
