"""Progress of a ``--debug`` run on stderr.

A debug run checks every invariant after every operation, which makes a
default workload take about a minute.  :func:`debug_progress` counts those
checks (it wraps the allocator's ``check_invariants``, which the flow calls
once per operation in debug mode) and shows them: a rich progress line on
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
    check = alloc.check_invariants

    def counted() -> None:
        count[0] += 1
        check()

    alloc.check_invariants = counted  # type: ignore[method-assign]
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

                def ticking() -> None:
                    counted()
                    if count[0] % 64 == 0:
                        bar.update(task, completed=count[0])

                alloc.check_invariants = ticking  # type: ignore[method-assign]
                yield count
        else:
            print(
                f"vmapsim: {what}: checking invariants after every operation (--debug) ...",
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
        alloc.check_invariants = check  # type: ignore[method-assign]
