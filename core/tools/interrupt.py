"""Ctrl-C for the command line: the first SIGINT stops the work and reports
what finished; after it, a second SIGINT exits at once.

:func:`exit_on_next_sigint` is called where the first SIGINT is handled; the
second one kills the worker processes this process had started then
(``multiprocessing.active_children()``) and exits with status 130 (128 +
SIGINT) without unwinding.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

__all__ = ["EXIT_SIGINT", "exit_on_next_sigint"]

#: the shell's status for a process ended by SIGINT
EXIT_SIGINT = 130


def exit_on_next_sigint() -> None:
    """Make the next SIGINT exit at once (no-op outside the main thread).

    The worker processes alive now are killed by pid from the handler (no
    multiprocessing bookkeeping runs inside it: it may hold the locks the
    interrupted code was using)."""
    import multiprocessing

    pids = [p.pid for p in multiprocessing.active_children() if p.pid]

    def now(_sig: int, _frame: Any) -> None:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        os._exit(EXIT_SIGINT)

    with contextlib.suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, now)
