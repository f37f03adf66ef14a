"""What a sweep shows on stderr while it runs.

On a terminal, a rich progress bar: cells done/total, failures, elapsed and
ETA.  Otherwise (a log file, CI) one line per finished cell, so the log
says which cell ran where and how long it took.  stdout is left to the
summary.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, Any

__all__ = ["SweepProgress"]


class SweepProgress:
    """``with SweepProgress(total, what) as p: p.finished(key, label, error, wall)``."""

    def __init__(self, total: int, what: str, *, stream: IO[str] | None = None) -> None:
        self.out = stream if stream is not None else sys.stderr
        self.total = total
        self.what = what
        self.done = 0
        self.failed = 0
        self.t0 = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.total and self.out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("cells, {task.fields[failed]} failed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=self.out),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.what, total=self.total, failed=0)
        return self

    def finished(self, key: str, label: str, error: str | None, wall_s: float | None) -> None:
        """One cell has finished (``error`` set when it failed)."""
        self.done += 1
        if error is not None:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, failed=self.failed)
            if error is not None:
                self._bar.console.print(f"[red]FAILED[/red] {key}: {error}", markup=True)
            return
        width = len(str(self.total))
        head = f"vmapsim sweep: [{self.done:>{width}}/{self.total}]"
        if error is not None:
            print(f"{head} FAILED {key} ({label}): {error}", file=self.out, flush=True)
        else:
            took = f" in {wall_s:.2f} s" if wall_s is not None else ""
            print(f"{head} ran {key} ({label}){took}", file=self.out, flush=True)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.__exit__(exc_type, exc, tb)
