"""The ``vmapsim sweep`` subcommand: its options, the plan, the summary.

The run loop and Ctrl-C are :mod:`.runner`'s.  Exit status: 0 every cell
finished, 1 some cell failed, 2 a usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vmapsim.tools.params import parse_params
from vmapsim.tools.sweep.executors import EXECUTORS, make_executor
from vmapsim.tools.sweep.grid import Grid, GridError, load_grid_file, make_grid, parse_int_list
from vmapsim.tools.sweep.runner import Plan, SweepReport, prepare, run_sweep
from vmapsim.tools.sweep.store import FORMATS

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


def _grid_from_args(args: argparse.Namespace) -> Grid:
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


def cmd_sweep(args: argparse.Namespace) -> int:
    """``vmapsim sweep``: expand the grid, run what has not finished, write the table."""
    from vmapsim.framework.registry import get_registry

    grid = _grid_from_args(args)
    formats = _formats(args.format)
    reg = get_registry()
    output = args.output or DEFAULT_OUTPUT
    plan = prepare(grid, output, reg)
    if args.plan:
        return _print_plan(plan, reg, output)
    executor = make_executor(args.executor, jobs=args.jobs, scheduler=args.scheduler)
    report = run_sweep(
        plan, executor, formats=formats, retry_failed=args.retry_failed, announce=sys.stderr
    )
    _print_summary(report)
    if report.interrupted:
        print(
            f"vmapsim: sweep interrupted (Ctrl-C): {len(report.ran)} cells ran and are kept in "
            f"{output}, {report.not_run} did not run; the same command resumes",
            file=sys.stderr,
        )
        return 130
    if report.stopped_by:
        print(
            f"vmapsim: sweep stopped by the {args.executor} executor: {report.stopped_by}; "
            f"{len(report.ran)} cells ran and are kept in {output}, {report.not_run} did not "
            "run; the same command resumes",
            file=sys.stderr,
        )
        return 1
    return 1 if report.failed else 0


def _print_summary(report: SweepReport) -> None:
    plan = report.plan
    results: dict[str, int] = {"pass": 0, "fail": 0, "xfail": 0}
    for row in report.rows:
        results[row["result"]] = results.get(row["result"], 0) + 1
    print(
        f"sweep: {len(plan.cells)} cells: {report.reused} reused, {len(report.ran)} ran, "
        f"{len(report.failed)} failed ({report.where}, {report.elapsed_s:.1f} s)"
    )
    print(
        f"table: {len(report.rows)} rows (cell x subtest): {results['pass']} pass, "
        f"{results['fail']} fail, {results['xfail']} xfail"
    )
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for row in report.rows:
        by_stage.setdefault(row["stage"], []).append(row)
    for stage, rows in by_stage.items():
        cycles = sum(r["cycles_per_loop"] for r in rows) / len(rows)
        warnings = sum(r["log_warnings"] for r in rows)
        print(
            f"  {stage:<10} {len(rows):>5} rows  mean cycles/loop {cycles:12.1f}  "
            f"log warnings {warnings}"
        )
    if report.failed:
        print("failed cells (--retry-failed runs them again):")
        for key, error in report.failed.items():
            note = " (before)" if key in report.skipped else ""
            print(f"  {key}{note} [{plan.cells[key].label()}]: {error}")
    for path in report.written:
        print(f"wrote {path}")


def _print_plan(plan: Plan, reg: Any, output: str) -> int:
    total_rows = 0
    for key, cell in plan.cells.items():
        split = getattr(reg.workload(cell.workload).run, "split_params", None)
        n = len(split(dict(cell.params))) if callable(split) else 1
        total_rows += n
        status = "finished" if key in plan.done else "failed" if key in plan.failed_before else ""
        print(f"{key:<40} {status or 'to run':<8} {n:>2} subtest(s)  {cell.label()}")
    to_run = len(plan.cells) - len(plan.done) - len(plan.failed_before)
    print(
        f"{len(plan.cells)} cells ({total_rows} rows): {len(plan.done)} finished, "
        f"{len(plan.failed_before)} failed, {to_run} to run (results folder {output})"
    )
    return 0
