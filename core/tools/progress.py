"""Progress of a ``--debug`` run on stderr.

A debug run checks after every operation what the operation touched, and
every invariant every ``debug_full_every`` operations
(core/checking/invariants.py).  :func:`debug_progress` counts those checks
(it wraps the allocator's ``_debug_check``, which the flow calls once per
operation in debug mode) and shows them: a rich progress line on
stderr when stderr is a terminal, otherwise one line when the run starts and
one when it ends.  Nothing is shown without ``--debug``; stdout is untouched.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = ["debug_progress"]


@contextmanager
def debug_progress(
    alloc: VmapAllocator, what: str, *, stream: IO[str] | None = None, total: int | None = None
) -> Iterator[list[int]]:
    """Show how many operations ``alloc`` has checked while the block runs.

    Yields a one-item list holding the count of invariant checks so far.
    """
    out = stream if stream is not None else sys.stderr
    count = [0]
    check = alloc._debug_check

    def counted(*touched: int) -> None:
        count[0] += 1
        check(*touched)

    alloc._debug_check = counted  # type: ignore[method-assign]
    t0 = time.perf_counter()
    try:
        if out.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            columns = [SpinnerColumn(), TextColumn("{task.description}")]
            if total:
                columns += [BarColumn(), MofNCompleteColumn()]
            else:
                columns += [TextColumn("{task.completed} operations checked")]
            columns.append(TimeElapsedColumn())
            with Progress(*columns, console=Console(file=out), transient=True) as bar:
                task = bar.add_task(what, total=total)

                def ticking(*touched: int) -> None:
                    counted(*touched)
                    if count[0] % 64 == 0:
                        bar.update(task, completed=count[0])

                alloc._debug_check = ticking  # type: ignore[method-assign]
                yield count
        else:
            print(
                f"vmapsim: {what}: checking invariants after every operation (--debug: what "
                f"each one touched; everything every {getattr(alloc, 'debug_full_every', 1)} "
                "operations) ...",
                file=out,
                flush=True,
            )
            yield count
            print(
                f"vmapsim: {what}: {count[0]} operations checked in "
                f"{time.perf_counter() - t0:.1f} s",
                file=out,
                flush=True,
            )
    finally:
        alloc._debug_check = check  # type: ignore[method-assign]
