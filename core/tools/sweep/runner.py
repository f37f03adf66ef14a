"""The run loop of a sweep: what is left to run, running it, keeping every result.

:func:`prepare` keys the grid's cells and reads what the results folder
already holds; :func:`run_sweep` hands the rest to an executor and writes
each outcome to the folder the moment it arrives (a finished cell, or a
failed one with its error), then the tables.

Ctrl-C: the first one cancels the cells not started, ends the workers
(leaving the executor's ``with`` block), keeps every finished cell and
writes the tables of what finished (:attr:`SweepReport.interrupted`).  A
second Ctrl-C while that happens ends the worker processes and exits 130 at
once.  A finished cell's file is written with SIGINT held back, so an
interrupt never loses a cell that finished.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from attrs import define, field

from vmapsim import __version__
from vmapsim.tools.sweep.cells import Cell, cell_key, recipe_digest, run_cell
from vmapsim.tools.sweep.executors import CellFn, Executor, Outcome
from vmapsim.tools.sweep.progress import SweepProgress
from vmapsim.tools.sweep.store import Store

if TYPE_CHECKING:
    from vmapsim.framework.registry import Registry
    from vmapsim.tools.sweep.grid import Grid

__all__ = ["Plan", "SweepReport", "prepare", "run_sweep"]


@define
class Plan:
    """The grid's cells by key, and what the results folder holds of them."""

    grid: Grid
    store: Store
    cells: dict[str, Cell]
    done: set[str]
    failed_before: set[str]


@define
class SweepReport:
    """What a sweep did (the summary prints it)."""

    plan: Plan
    where: str
    ran: list[str] = field(factory=list)
    failed: dict[str, str] = field(factory=dict)
    skipped: set[str] = field(factory=set)
    todo: int = 0
    rows: list[dict[str, Any]] = field(factory=list)
    written: list[Path] = field(factory=list)
    interrupted: bool = False
    #: the executor's own error that ended the sweep early (not a cell's)
    stopped_by: str | None = None
    elapsed_s: float = 0.0

    @property
    def reused(self) -> int:
        """Cells finished by an earlier sweep."""
        return len(self.plan.done)

    @property
    def not_run(self) -> int:
        """Cells this sweep meant to run and did not reach (interrupted, stopped)."""
        return self.todo - len(self.ran) - len(self.failed.keys() - self.skipped)


def prepare(grid: Grid, output: str | Path, registry: Registry) -> Plan:
    """Key the grid's cells and look up what ``output`` holds (writes nothing)."""
    cells: dict[str, Cell] = {}
    for cell in grid.cells(registry):
        cells.setdefault(cell_key(cell), cell)
    store = Store(output)
    done = {k for k in cells if store.finished(k) is not None}
    failed = {k for k in cells if k not in done and store.failure(k) is not None}
    return Plan(grid, store, cells, done, failed)


class _Interrupts:
    """SIGINT while the sweep runs: the first raises KeyboardInterrupt (held back
    while a finished cell is being written), a second ends the workers and exits.
    Only in the main thread (elsewhere Python delivers no signals)."""

    def __init__(self) -> None:
        self.hits = 0
        self._critical = 0
        self._pending = False
        self._old: Any = None
        self._installed = False

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *_: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._old)

    def _handler(self, _sig: int, _frame: FrameType | None) -> None:
        self.hits += 1
        if self.hits > 1:
            for child in multiprocessing.active_children():
                child.kill()
            os.write(2, b"vmapsim: sweep interrupted twice: stopped at once\n")
            os._exit(130)
        if self._critical:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextmanager
    def critical(self) -> Iterator[None]:
        """SIGINT waits until the block has finished."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
        if self._pending and not self._critical:
            self._pending = False
            raise KeyboardInterrupt


def _keep(store: Store, outcome: Outcome, cell: Cell, digest: str) -> str | None:
    """Write the outcome to the store; return the cell's error, or None."""
    error = outcome.error
    res = outcome.result
    if error is None and res is not None:
        if res.get("vmapsim_version") != __version__:
            error = (
                f"the worker runs vmapsim {res.get('vmapsim_version')} (this sweep: "
                f"{__version__}); results never mix versions: install the same vmapsim "
                "on every worker"
            )
        elif res.get("recipe_digest") != digest:
            error = (
                f"the worker builds stage {cell.stage} from another recipe (other "
                "plugins installed?): install the same packages on every worker"
            )
    if error is None and res is not None:
        store.save(outcome.key, cell.as_dict(), res)
        return None
    error = error or "no result"
    store.save_failure(outcome.key, cell.as_dict(), error)
    return error


def run_sweep(
    plan: Plan,
    executor: Executor,
    *,
    formats: Sequence[str] = ("csv", "jsonl"),
    retry_failed: bool = False,
    fn: CellFn = run_cell,
    announce: IO[str] | None = None,
    progress_stream: IO[str] | None = None,
) -> SweepReport:
    """Run the plan's unfinished cells on ``executor``; keep each outcome at once;
    write the tables of every finished cell of the grid.

    ``fn`` is the cell function (:func:`run_cell`; tests substitute one);
    ``announce`` gets one line saying what will run; progress goes to
    ``progress_stream`` (default stderr)."""
    store = plan.store
    report = SweepReport(plan, executor.describe())
    report.skipped = set() if retry_failed else set(plan.failed_before)
    todo = [
        (k, c.as_dict())
        for k, c in plan.cells.items()
        if k not in plan.done and k not in report.skipped
    ]
    report.todo = len(todo)
    if todo:
        executor.start()
    try:
        store.open(plan.grid.describe())
    except BaseException:
        executor.stop()
        raise
    digests = {st: recipe_digest(st) for st in {c.stage for c in plan.cells.values()}}
    if announce is not None:
        skipped = (
            f", {len(report.skipped)} failed before (--retry-failed runs them)"
            if report.skipped
            else ""
        )
        print(
            f"vmapsim sweep: {len(plan.cells)} cells: {len(plan.done)} finished before, "
            f"{len(todo)} to run on {executor.describe()}{skipped}",
            file=announce,
            flush=True,
        )
    t0 = time.perf_counter()
    with _Interrupts() as guard:
        try:
            with executor, SweepProgress(len(todo), "sweep", stream=progress_stream) as progress:
                for outcome in executor.run(fn, todo):
                    cell = plan.cells[outcome.key]
                    with guard.critical():
                        error = _keep(store, outcome, cell, digests[cell.stage])
                        if error is None:
                            report.ran.append(outcome.key)
                        else:
                            report.failed[outcome.key] = error
                    wall = outcome.result.get("wall_s") if outcome.result else None
                    progress.finished(outcome.key, cell.label(), error, wall)
        except KeyboardInterrupt:
            report.interrupted = True
        except Exception as exc:  # the engine itself failed (a lost scheduler, ...)
            report.stopped_by = f"{type(exc).__name__}: {exc}"
        with guard.critical():
            report.rows = store.rows(list(plan.cells))
            report.written = store.write_tables(report.rows, formats)
    report.elapsed_s = time.perf_counter() - t0
    for k in report.skipped:
        report.failed.setdefault(k, (store.failure(k) or {}).get("error", "failed before"))
    return report
