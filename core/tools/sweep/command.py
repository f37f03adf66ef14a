"""The ``vmapsim sweep`` subcommand: options, the run loop, Ctrl-C, the summary.

Ctrl-C: the first one cancels the cells not started, ends the workers,
keeps every finished cell, writes the tables of what finished, prints the
summary and one line, and exits 130.  A second Ctrl-C while that happens
ends the workers and exits 130 at once.  A finished cell's file is written
with SIGINT held back, so an interrupt never loses a cell that finished.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

from vmapsim import __version__
from vmapsim.tools.params import parse_params
from vmapsim.tools.sweep.cells import Cell, _digest, cell_key, recipe, run_cell
from vmapsim.tools.sweep.executors import EXECUTORS, Outcome, make_executor
from vmapsim.tools.sweep.grid import GridError, load_grid_file, make_grid
from vmapsim.tools.sweep.progress import SweepProgress
from vmapsim.tools.sweep.store import FORMATS, Store

__all__ = ["add_parser", "cmd_sweep"]

#: test_vmalloc's module parameters as sweep options (each takes a list: an axis)
_LIST_PARAMS = (
    ("nr_threads", "workers (simulated CPUs)"),
    ("test_loop_count", "loop iterations per subtest"),
    ("test_repeat_count", "runs of each subtest"),
    ("nr_pages", "pages for fix_size, vm_map_ram and no_block"),
    ("nr_pcpu_objects", "objects of pcpu_alloc_test"),
)
DEFAULT_OUTPUT = "sweep-results"


def add_parser(sub: Any) -> None:
    """Register ``vmapsim sweep`` on the CLI's subparsers."""
    p = sub.add_parser(
        "sweep",
        help="run a grid of stages x subtests x parameters x seeds (locally or on Dask)",
        description="Expand a grid into cells, run each cell once (serially, in a process "
        "pool, or on a Dask cluster), keep every finished cell in the results folder, and "
        "write one tidy table (docs/sweep.md). A rerun reuses finished cells. Exit 0: every "
        "cell finished; 1: some failed; 2: usage error; 130: interrupted.",
    )
    g = p.add_argument_group("grid (a comma list or range A..B is an axis)")
    g.add_argument("--grid", metavar="FILE.toml", help="the grid from a TOML file")
    g.add_argument("--stages", help="stages: 0,7,12; 0..12; all (default: the project stage)")
    g.add_argument("--seeds", help="seeds: 1..3 or 1,2,5 (default 0)")
    g.add_argument("--workload", help="workload (default test_vmalloc)")
    g.add_argument("--mask", help="run_test_mask values, e.g. 7 or 0x1,0x2,0x4")
    g.add_argument("--tests", metavar="NAME,…", help="subtests by name (one selection)")
    g.add_argument("--mode", choices=["smoke", "performance", "stress", "manual"])
    for name, help_ in _LIST_PARAMS:
        g.add_argument("--" + name.replace("_", "-"), metavar="N[,N…]", help=help_)
    g.add_argument(
        "--sequential-test-order",
        action="store_const",
        const=1,
        default=None,
        help="run the subtests in array order (no shuffle)",
    )
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="workload parameter; the same KEY again adds a value to its axis",
    )
    g.add_argument("--nr-cpus", metavar="N[,N…]", help="simulated CPUs (default 1)")
    g.add_argument("--arch", metavar="ARCH[,ARCH]", help="x86_64, arm64 (default x86_64)")
    g.add_argument(
        "--faults",
        action="append",
        default=None,
        metavar="SPEC",
        help="a failslab spec (docs/bisect.md); each --faults is an axis value, 'none' too",
    )
    g.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=None,
        metavar="ROLE=NAME",
        help="component swap for every cell (a grid file can make swaps an axis)",
    )
    r = p.add_argument_group("running")
    r.add_argument("--output", metavar="DIR", help=f"results folder (default {DEFAULT_OUTPUT})")
    r.add_argument(
        "--format",
        default="csv,jsonl",
        help="tables to write: csv, jsonl, parquet (the 'parquet' extra); default csv,jsonl",
    )
    r.add_argument("--executor", choices=EXECUTORS, default="processes")
    r.add_argument("--jobs", type=int, default=None, help="workers (default: the CPU count)")
    r.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786)")
    r.add_argument("--retry-failed", action="store_true", help="run failed cells again")
    r.add_argument("--plan", action="store_true", help="print the cells; run nothing")
    p.set_defaults(func=cmd_sweep)


def _grid_from_args(args: argparse.Namespace) -> Any:
    spec: dict[str, Any] = load_grid_file(args.grid) if args.grid else {}
    params: dict[str, Any] = dict(spec.pop("params", {}) or {})
    if args.stages is not None:
        spec["stages"] = args.stages
    if "stages" not in spec:
        from vmapsim.tools.config import resolve_stage

        spec["stages"] = resolve_stage(None).value
    for opt, key in (
        ("seeds", "seeds"),
        ("workload", "workload"),
        ("mask", "masks"),
        ("tests", "tests"),
        ("nr_cpus", "nr_cpus"),
        ("arch", "arch"),
        ("faults", "faults"),
    ):
        value = getattr(args, opt)
        if value is not None:
            spec[key] = value
    if args.mask is not None:
        spec.pop("tests", None)
    if args.tests is not None:
        spec.pop("masks", None)
    if args.with_ is not None:
        swaps: dict[str, str] = {}
        for item in args.with_:
            role, sep, name = item.partition("=")
            if not sep or not role or not name:
                raise GridError(f"--with {item!r}: expected ROLE=NAME")
            swaps[role] = name
        spec["with_"] = [swaps]
    if args.mode is not None:
        params["mode"] = args.mode
    for name, _ in _LIST_PARAMS:
        value = getattr(args, name)
        if value is not None:
            from vmapsim.tools.sweep.grid import parse_int_list

            params[name] = parse_int_list(value, "--" + name.replace("_", "-"), minimum=1)
    if args.sequential_test_order is not None:
        params["sequential_test_order"] = 1
    given: dict[str, list[Any]] = {}
    for item in args.param:
        for k, v in parse_params([item], GridError).items():
            given.setdefault(k, []).append(v)
    params.update(given)
    return make_grid(**spec, params=params)


def _formats(text: str) -> list[str]:
    out = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise GridError(f"--format {text!r}: a comma list of {', '.join(FORMATS)}")
    if "parquet" in out:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise GridError(
                "--format parquet needs pyarrow: install the 'parquet' extra "
                "(pip install 'vmapsim[parquet]')"
            ) from None
    return out


class _Interrupts:
    """SIGINT while the sweep runs: the first raises KeyboardInterrupt (held back
    while a finished cell is being written), a second ends the workers and exits."""

    def __init__(self) -> None:
        self.hits = 0
        self._critical = 0
        self._pending = False
        self._old: Any = None

    def __enter__(self) -> _Interrupts:
        self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *_: Any) -> None:
        signal.signal(signal.SIGINT, self._old)

    def _handler(self, _sig: int, _frame: FrameType | None) -> None:
        self.hits += 1
        if self.hits > 1:
            _kill_children()
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


def _kill_children() -> None:
    for child in multiprocessing.active_children():
        child.kill()


def cmd_sweep(args: argparse.Namespace) -> int:
    """``vmapsim sweep``: expand the grid, run what has not finished, write the table."""
    from vmapsim.framework.registry import get_registry

    grid = _grid_from_args(args)
    formats = _formats(args.format)
    reg = get_registry()
    cells = grid.cells(reg)
    keyed: dict[str, Cell] = {}
    for cell in cells:
        keyed.setdefault(cell_key(cell), cell)
    output = args.output or DEFAULT_OUTPUT
    store = Store(output)
    done = {k for k in keyed if store.finished(k) is not None}
    failed_before = {k for k in keyed if k not in done and store.failure(k) is not None}
    if args.plan:
        return _print_plan(keyed, done, failed_before, reg, args)
    skipped = set() if args.retry_failed else failed_before
    todo = [(k, c.as_dict()) for k, c in keyed.items() if k not in done and k not in skipped]
    executor = make_executor(args.executor, jobs=args.jobs, scheduler=args.scheduler)
    store.open(grid.describe())
    digests = {st: _digest(recipe(st)) for st in {c.stage for c in keyed.values()}}
    ran: list[str] = []
    failed: dict[str, str] = {}
    interrupted = False
    t0 = time.perf_counter()
    print(
        f"vmapsim sweep: {len(keyed)} cells: {len(done)} finished before, "
        f"{len(todo)} to run on {executor.describe()}"
        + (f", {len(skipped)} failed before (--retry-failed runs them)" if skipped else ""),
        file=sys.stderr,
        flush=True,
    )
    with _Interrupts() as guard:
        try:
            with executor, SweepProgress(len(todo), "sweep") as progress:
                for outcome in executor.run(run_cell, todo):
                    cell = keyed[outcome.key]
                    with guard.critical():
                        error = _keep(store, outcome, cell, digests[cell.stage])
                    if error is None:
                        ran.append(outcome.key)
                    else:
                        failed[outcome.key] = error
                    wall = outcome.result.get("wall_s") if outcome.result else None
                    progress.finished(outcome.key, cell.label(), error, wall)
        except KeyboardInterrupt:
            interrupted = True
        with guard.critical():
            rows = store.rows(list(keyed))
            written = store.write_tables(rows, formats)
    elapsed = time.perf_counter() - t0
    for k in skipped:
        failed.setdefault(k, (store.failure(k) or {}).get("error", "failed before"))
    _print_summary(keyed, done, ran, failed, skipped, rows, written, executor.describe(), elapsed)
    if interrupted:
        left = len(todo) - len(ran) - len(failed.keys() - skipped)
        print(
            f"vmapsim: sweep interrupted (Ctrl-C): {len(ran)} cells ran and are kept in "
            f"{output}, {left} did not run; the same command resumes",
            file=sys.stderr,
        )
        return 130
    return 1 if failed else 0


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
                f"the worker's stage {cell.stage} is built from another recipe (other "
                "plugins installed?): install the same packages on every worker"
            )
    if error is None and res is not None:
        store.save(outcome.key, cell.as_dict(), res)
        return None
    store.save_failure(outcome.key, cell.as_dict(), error or "no result")
    return error or "no result"


def _print_summary(
    keyed: dict[str, Cell],
    done: set[str],
    ran: list[str],
    failed: dict[str, str],
    skipped: set[str],
    rows: list[dict[str, Any]],
    written: Sequence[Any],
    where: str,
    elapsed: float,
) -> None:
    results: dict[str, int] = {"pass": 0, "fail": 0, "xfail": 0}
    for row in rows:
        results[row["result"]] = results.get(row["result"], 0) + 1
    print(
        f"sweep: {len(keyed)} cells: {len(done)} reused, {len(ran)} ran, {len(failed)} failed "
        f"({where}, {elapsed:.1f} s)"
    )
    print(
        f"table: {len(rows)} rows (cell x subtest): {results['pass']} pass, "
        f"{results['fail']} fail, {results['xfail']} xfail"
    )
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row)
    for stage, srows in by_stage.items():
        cyc = sum(r["cycles_per_loop"] for r in srows) / len(srows)
        warn = sum(r["log_warnings"] for r in srows)
        print(f"  {stage:<10} {len(srows):>5} rows  mean cycles/loop {cyc:12.1f}  warnings {warn}")
    if failed:
        print("failed cells" + (" (--retry-failed runs them again):" if failed else ":"))
        for key, error in failed.items():
            note = " (before)" if key in skipped else ""
            print(f"  {key}{note} [{keyed[key].label()}]: {error}")
    for path in written:
        print(f"wrote {path}")


def _print_plan(
    keyed: dict[str, Cell],
    done: set[str],
    failed: set[str],
    reg: Any,
    args: argparse.Namespace,
) -> int:
    rows = []
    for key, cell in keyed.items():
        wl = reg.workload(cell.workload)
        split = getattr(wl.run, "split_params", None)
        n = len(split(dict(cell.params))) if callable(split) else 1
        status = "finished" if key in done else "failed" if key in failed else "to run"
        rows.append({"key": key, "status": status, "subtests": n, **cell.as_dict()})
    for r in rows:
        cell = keyed[r["key"]]
        print(f"{r['key']:<40} {r['status']:<8} {r['subtests']:>2} subtest(s)  {cell.label()}")
    to_run = sum(1 for r in rows if r["status"] == "to run")
    total_rows = sum(r["subtests"] for r in rows)
    print(
        f"{len(rows)} cells ({total_rows} rows): {len(done)} finished, {len(failed)} failed, "
        f"{to_run} to run (results folder {args.output or DEFAULT_OUTPUT})"
    )
    return 0
