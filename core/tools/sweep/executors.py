"""Where a sweep's cells run: ``serial``, ``processes`` and ``dask``, one interface.

An executor takes ``(key, cell dict)`` jobs and the importable function
:func:`vmapsim.tools.sweep.cells.run_cell`, and yields an :class:`Outcome`
per job as each one finishes (completion order, not submission order).  A
cell that raises is an outcome with ``error`` set, never an exception out of
:meth:`Executor.run`; a worker that dies fails the cells it held (and, for the
process pool, the cells still queued: the standard library's pool cannot
go on once a worker died).  :meth:`Executor.stop` cancels what has not
started and ends the workers (Ctrl-C); leaving the ``with`` block does too.

- ``serial``: in this process, one cell after another (the reference);
- ``processes``: :class:`concurrent.futures.ProcessPoolExecutor` with
  ``jobs`` workers (they ignore SIGINT: the sweep handles Ctrl-C and ends them);
- ``dask``: a ``distributed`` client on ``scheduler`` (an existing cluster),
  or on a :class:`distributed.LocalCluster` of ``jobs`` workers when no
  address is given.  Needs the ``dask`` extra.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType
from typing import Any

from attrs import frozen

__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "ExecutorError",
    "Outcome",
    "ProcessesExecutor",
    "SerialExecutor",
    "make_executor",
]

EXECUTORS = ("serial", "processes", "dask")
Job = tuple[str, dict[str, Any]]
CellFn = Callable[[dict[str, Any], str], dict[str, Any]]


class ExecutorError(RuntimeError):
    """An executor that cannot start (a missing extra, an unreachable scheduler)."""


@frozen
class Outcome:
    """What became of one job: its result, or the error that ended it."""

    key: str
    result: dict[str, Any] | None = None
    error: str | None = None


def _error_text(exc: BaseException) -> str:
    """``Type: message`` and the innermost frame (where the cell raised)."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Executor:
    """The interface: ``with make_executor(...) as ex: for o in ex.run(fn, jobs): ...``."""

    name = "executor"

    def describe(self) -> str:
        """What runs the cells, for the progress header."""
        return self.name

    def start(self) -> None:
        """Connect to or start the engine (before anything is written): an
        :class:`ExecutorError` here is a usage error."""

    def run(self, fn: CellFn, jobs: Sequence[Job]) -> Iterator[Outcome]:  # pragma: no cover
        """Submit every job; yield its :class:`Outcome` as it completes."""
        raise NotImplementedError

    def stop(self) -> None:
        """Cancel the jobs not started and end the workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SerialExecutor(Executor):
    """One cell after another in this process: the reference."""

    name = "serial"

    def run(self, fn: CellFn, jobs: Sequence[Job]) -> Iterator[Outcome]:
        for key, cell in jobs:
            try:
                result = fn(cell, key)
            except Exception as exc:
                yield Outcome(key, error=_error_text(exc))
            else:
                yield Outcome(key, result=result)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the sweep, which stops them itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ProcessesExecutor(Executor):
    """A standard-library process pool of ``jobs`` workers (default: the CPU count)."""

    name = "processes"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = jobs or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def describe(self) -> str:
        return f"processes ({self.jobs} workers)"

    def run(self, fn: CellFn, jobs: Sequence[Job]) -> Iterator[Outcome]:
        if not jobs:
            return
        self._pool = ProcessPoolExecutor(
            max_workers=min(self.jobs, len(jobs)), initializer=_ignore_sigint
        )
        pending: dict[Future[dict[str, Any]], str] = {
            self._pool.submit(fn, cell, key): key for key, cell in jobs
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key = pending.pop(fut)
                exc = fut.exception()
                if exc is None:
                    yield Outcome(key, result=fut.result())
                elif isinstance(exc, BrokenProcessPool):
                    yield Outcome(
                        key,
                        error="BrokenProcessPool: a worker process died while this cell "
                        "was running or queued (killed, or out of memory)",
                    )
                else:
                    yield Outcome(key, error=_error_text(exc))

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # the standard pool has no public way to end running workers before
        # Python 3.14 (terminate_workers()); its process table is the one handle
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - a worker that ignores SIGTERM
                p.kill()
                p.join(timeout=5)
        pool.shutdown(wait=True)


class DaskExecutor(Executor):
    """A ``distributed`` client: on ``scheduler`` if given, else on a LocalCluster.

    ``processes=False`` runs the LocalCluster's workers as threads of this
    process (the tests: no network, no subprocesses)."""

    name = "dask"

    def __init__(
        self, jobs: int | None = None, scheduler: str | None = None, *, processes: bool = True
    ) -> None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ExecutorError(
                "--executor dask needs dask's distributed: install the 'dask' extra "
                "(pip install 'vmapsim[dask]')"
            ) from None
        self.jobs = jobs or os.cpu_count() or 1
        self.scheduler = scheduler
        self.processes = processes
        self._cluster: Any = None
        self._client: Any = None
        self._futures: list[Any] = []

    def describe(self) -> str:
        if self.scheduler:
            return f"dask (scheduler {self.scheduler})"
        kind = "processes" if self.processes else "threads"
        return f"dask (LocalCluster, {self.jobs} workers, {kind})"

    def start(self) -> None:
        if self._client is None:
            self._connect()

    def _connect(self) -> Any:
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                self._client = Client(self.scheduler, timeout="10s")
            except OSError as exc:
                raise ExecutorError(
                    f"--scheduler {self.scheduler}: cannot reach the Dask scheduler: {exc}"
                ) from None
        else:
            self._cluster = LocalCluster(
                n_workers=self.jobs,
                threads_per_worker=1,
                processes=self.processes,
                dashboard_address=":0",  # any free port: never "8787 is already in use"
                silence_logs=logging.ERROR,  # not its INFO/WARNING chatter about cancelled tasks
            )
            self._client = Client(self._cluster)
        return self._client

    def run(self, fn: CellFn, jobs: Sequence[Job]) -> Iterator[Outcome]:
        if not jobs:
            return
        from distributed import as_completed

        client = self._client or self._connect()
        by_future: dict[str, str] = {}
        for key, cell in jobs:
            # the Dask key names the cell, so the dashboard shows which one runs
            fut = client.submit(fn, cell, key, key=f"vmapsim-cell-{key}", pure=False)
            self._futures.append(fut)
            by_future[fut.key] = key
        for fut in as_completed(self._futures):
            key = by_future[fut.key]
            if fut.status == "finished":
                yield Outcome(key, result=fut.result())
            elif fut.status == "cancelled":
                yield Outcome(key, error="CancelledError: the cell was cancelled")
            else:
                exc = fut.exception()
                yield Outcome(key, error=_error_text(exc))
            fut.release()

    def stop(self) -> None:
        client, self._client = self._client, None
        cluster, self._cluster = self._cluster, None
        if client is not None:
            if self._futures:
                with contextlib.suppress(Exception):  # a scheduler already gone
                    client.cancel(self._futures, force=True)
            self._futures = []
            client.close()
        if cluster is not None:
            cluster.close()


def make_executor(
    name: str, *, jobs: int | None = None, scheduler: str | None = None, processes: bool = True
) -> Executor:
    """The executor called ``name`` (one of :data:`EXECUTORS`)."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ExecutorError(f"--jobs: must be an integer >= 1 (got {jobs!r})")
    if scheduler and name != "dask":
        raise ExecutorError("--scheduler: only with --executor dask")
    if name == "serial":
        return SerialExecutor()
    if name == "processes":
        return ProcessesExecutor(jobs)
    if name == "dask":
        return DaskExecutor(jobs, scheduler, processes=processes)
    raise ExecutorError(f"--executor {name!r}: one of {', '.join(EXECUTORS)}")
