"""The ``vmapsim`` command line."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmapsim import __version__
from vmapsim.checking.debug_kernel import KERNEL_REPORT as _KERNEL_REPORT
from vmapsim.checking.debug_kernel import debug_kernel_counts
from vmapsim.checking.invariants import DEBUG_FULL_EVERY
from vmapsim.errors import (
    InvariantError,
    PluginError,
    PluginWarning,
    UnknownComponentError,
    UnknownStageError,
    VmapError,
)
from vmapsim.framework.api import blame, build, component_costs
from vmapsim.framework.registry import get_registry
from vmapsim.framework.roles import ROLES
from vmapsim.kernel.allocator import component_name
from vmapsim.tools.compare import DEFAULT_REPS
from vmapsim.tools.config import resolve_stage
from vmapsim.tools.params import (
    MODULE_PARAMS,
    SUITE_OPTIONS,
    check_module_param,
    check_param_keys,
    flag_name,
    parse_params,
    parse_with,
)

__all__ = ["main"]


class UsageError(Exception):
    """A malformed command-line value (exit status 2, like argparse's own errors)."""


def _parse_with(items: Sequence[str]) -> dict[str, str]:
    return parse_with(items, list(ROLES), UsageError)


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    return parse_params(items, UsageError)


def _stage_rows() -> list[dict[str, Any]]:
    """Each registered stage: key, label, title, summary, components, features
    (and the ones new at this stage), struct size."""
    from vmapsim.tools.compare import stage_label

    reg = get_registry()
    out: list[dict[str, Any]] = []
    prev: dict[str, dict[str, Any]] = {}
    for key in reg.stage_keys():
        st = reg.stages[key]
        feats = dict(st.features)
        before = prev.get(st.series, {})
        new = {k: v for k, v in feats.items() if before.get(k) != v}
        prev[st.series] = feats
        out.append(
            {
                "key": st.key,
                "series": st.series,
                "number": st.number,
                "label": stage_label(reg, key),
                "title": st.title,
                "summary": st.summary,
                "components": dict(sorted(st.components.items())),
                "features": feats,
                "new_features": new,
                "struct_vmap_area_size": st.layout.size,
            }
        )
    return out


def cmd_stages(args: argparse.Namespace) -> int:
    """``vmapsim stages``: number, patch title, what changes, components, features."""
    rows = _stage_rows()
    if getattr(args, "json", False):
        print(json.dumps({"stages": rows}, indent=2))
        return 0
    for row in rows:
        comps = " ".join(f"{r}={n}" for r, n in row["components"].items())
        print(f"{row['key']:<10} {row['title']}")
        print(f"{'':<10} {comps}  struct vmap_area {row['struct_vmap_area_size']} B")
        if row["summary"]:
            print(f"{'':<10} what: {row['summary']}")
        if row["new_features"]:
            feats = " ".join(f"+{k}={v}" for k, v in row["new_features"].items())
            print(f"{'':<10} new flow features: {feats}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """``vmapsim plugins``: each plugin's distribution, components by role, failures."""
    reg = get_registry()
    status = 1 if reg.failures() else 0
    if args.json:
        print(json.dumps({"plugins": [r.as_dict() for r in reg.plugins]}, indent=2))
        return status
    for rec in reg.plugins:
        d = rec.as_dict()
        kind = "built-in" if rec.builtin else "third-party"
        version = f" {rec.version}" if rec.version else ""
        shown = rec.status if rec.status in ("ok", "disabled") else rec.status.upper()
        print(f"{shown:<9} {rec.name:<14} from {rec.distribution}{version} ({kind}, {rec.module})")
        by_role = [f"{r}={n}" for r, names in sorted(d["components"].items()) for n in names]
        for label, items in (
            ("components", by_role),
            ("stages", rec.stages),
            ("workloads", rec.workloads),
        ):
            if items:
                print(f"          {label + ':':<11} {', '.join(items)}")
        for reason in rec.reasons():
            print(f"          FAILED    {reason}")
    return status


#: the `--with` help of run and compare: every role, the name's forms
_WITH_HELP = (
    f"use component NAME for ROLE ({', '.join(ROLES)}); NAME may be PLUGIN:NAME and carry "
    "the component's parameters, NAME:key=value,key=value; only roles the stage fills "
    "(vmapsim stages), plus overlay"
)


def cmd_new_plugin(args: argparse.Namespace) -> int:
    """``vmapsim new-plugin NAME``: a plugin package that passes the kit's smoke tests."""
    from vmapsim.tools.templates import TemplateError, render_plugin

    try:
        root = render_plugin(args.name, role=args.role, directory=Path(args.dir))
    except TemplateError as exc:
        raise UsageError(str(exc)) from None
    print(f"created {root}")
    print(f"  cd {root} && pip install -e '.[test]' && python -m pytest -q")
    return 0


_SUITE_OPTIONS = SUITE_OPTIONS


def _int0(text: str) -> int:
    """An int in C notation (decimal, 0x hex, 0o octal), for --mask and friends."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _suite_params(args: argparse.Namespace, workload_name: str, fn: Any) -> dict[str, Any]:
    """The workload options given on the command line, checked against what
    the workload's function takes and by the one rule for module parameters."""
    out: dict[str, Any] = {}
    for key in _SUITE_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
            if key not in ("mode", "tests"):
                shown = f"{value:#x}" if key == "run_test_mask" and value > 0 else value
                check_module_param(key, value, f"{flag_name(key)} {shown}", UsageError)
    if args.script_args:
        out["args"] = list(args.script_args)
    if not out:
        return out
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return out
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for key in out:
        if key not in sig.parameters and not (takes_any and key != "args"):
            flag = "KEY=VALUE" if key == "args" else flag_name(key)
            raise UsageError(f"{flag}: workload {workload_name!r} takes no such parameter")
    return out


def _workload_params(args: argparse.Namespace, workload: Any) -> tuple[dict[str, Any], list]:
    """Every workload parameter of ``run``/``compare`` (options, KEY=VALUE words,
    ``--param``), each checked by one rule whatever its entry point; and the
    run split into its parts (one per subtest) when the workload splits.

    Refusals name the entry point (``--mask 0``, ``--param nr_pages=0``,
    ``run_test_mask=0x4000``) and the valid values."""
    given = {item.partition("=")[0]: f"--param {item}" for item in args.param}
    params = _parse_params(args.param)
    check_param_keys(workload.name, workload.run, given, UsageError)
    for key, value in params.items():
        check_module_param(key, value, given[key], UsageError)
    suite = _suite_params(args, workload.name, workload.run)
    both = sorted(set(params) & set(suite))
    if both:
        raise UsageError(f"{given[both[0]]}: {both[0]} is also given as {flag_name(both[0])}")
    merged = {**params, **suite}
    split = getattr(workload.run, "split_params", None)
    if not callable(split):
        return merged, [merged]
    try:
        parts = split(dict(merged))
    except (ValueError, TypeError) as exc:
        text = str(exc)
        if text.startswith("Error: key or value is not correct"):
            text += f" (KEY=VALUE: KEY one of {', '.join(MODULE_PARAMS)}, VALUE an integer > 0)"
        raise UsageError(text) from None
    if not parts:
        source = "the mask"
        if args.run_test_mask is not None:
            source = f"--mask {args.run_test_mask:#x}"
        elif "run_test_mask" in given:
            source = given["run_test_mask"]
        else:
            source = next((a for a in args.script_args if a.startswith("run_test_mask=")), source)
        every = split({"run_test_mask": (1 << 31) - 1})
        top = max(int(p["run_test_mask"]) for p in every) if every else 1
        raise UsageError(
            f"{source}: selects no subtest; subtest i is bit 1<<i, 0x1 .. {top:#x} "
            "(7 = the module default, 0xFFF = the series' base); --tests NAME,... names them"
        )
    return merged, parts


def _check_output_paths(*paths: str | None) -> None:
    """Refuse an output file that cannot be written, before anything runs."""
    for path in paths:
        if not path:
            continue
        target = Path(path)
        parent = target.parent if str(target.parent) else Path(".")
        if target.is_dir():
            raise UsageError(f"{path}: is a folder; give a file name")
        if not parent.is_dir():
            raise UsageError(f"{path}: folder {str(parent)!r} does not exist (create it first)")
        if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
            raise UsageError(f"{path}: cannot write there (permission denied)")


#: a kernel report in the allocator's log (what --fail-on-reports looks for)
KERNEL_REPORT = _KERNEL_REPORT


def _stage_for(setting: Any) -> Any:
    """The registered stage a setting names; a refusal names where it came from."""
    try:
        return get_registry().stage(setting.value)
    except UnknownStageError as exc:
        text = exc.args[0] if exc.args else str(exc)
        if setting.source == "command line":
            raise
        raise UnknownStageError(f"{setting.source}: {text}") from None


def _failslab(args: argparse.Namespace) -> Any:
    if not getattr(args, "faults", None):
        return None
    from vmapsim.checking.faultspec import parse_faults

    return parse_faults(args.faults, seed=args.seed)


def cmd_run(args: argparse.Namespace) -> int:
    setting = resolve_stage(args.stage)
    stage = _stage_for(setting)
    reg = get_registry()
    workload = reg.workload(args.workload)
    comps = _parse_with(args.with_)
    from vmapsim.tools.compare import check_roles

    check_roles(stage.components, comps, reg)
    failslab = _failslab(args)
    params, parts = _workload_params(args, workload)
    # speak early: what runs, before it runs (stdout unless --json, then stderr)
    head = sys.stderr if args.json else sys.stdout
    given = " ".join(f"{k}={v}" for k, v in params.items() if k != "args")
    given = " ".join(x for x in (given, *params.get("args", ())) if x) or "(defaults)"
    print(f"stage {stage.key} ({setting.source}): {stage.title}", file=head)
    print(
        f"workload {workload.name}: {given}; seed {args.seed}, nr_cpus {args.nr_cpus}, "
        f"{args.arch}" + (f", faults {args.faults}" if args.faults else ""),
        file=head,
        flush=True,
    )
    if callable(getattr(workload.run, "split_params", None)):
        from vmapsim.tools.estimate import long_run_notice

        notice = long_run_notice(parts, args.nr_cpus)
        if notice:
            print(notice, file=sys.stderr, flush=True)
    # boot allocations that fault injection fails WARN and go on (as in the
    # kernel: vmalloc_init, vmap_init_free_space), so building cannot assert
    alloc = build(
        stage.key,
        arch=args.arch,
        nr_cpus=args.nr_cpus,
        seed=args.seed,
        debug=args.debug,
        components=comps,
        failslab=failslab,
        component_counters=args.per_component,
        cache_model=args.cache,
        lock_sections=True,
        debug_kernel=args.debug_kernel,
    )
    if args.debug:
        alloc.debug_full_every = args.debug_full_every
    params = {"seed": args.seed, **params}
    try:
        takes_progress = "progress" in inspect.signature(workload.run).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        takes_progress = False
    try:
        if args.debug:
            from vmapsim.tools.progress import debug_progress

            with debug_progress(alloc, f"{workload.name} on {alloc.stage.key}"):
                report = workload.run(alloc, **params)
        elif takes_progress:
            from vmapsim.tools.report import LazyProgress

            with LazyProgress(f"{workload.name} on {alloc.stage.key}") as bar:
                report = workload.run(alloc, progress=bar, **params)
        else:
            report = workload.run(alloc, **params)
    except KeyboardInterrupt:
        _ignore_further_sigint()
        _print_partial_counters(alloc)
        raise
    metrics = alloc.metrics.snapshot()
    # test_vmalloc's convention: a non-xfail subtest that failed fails the run (a
    # workload without subtests counts failed allocations as "failed": not a failure)
    has_subtests = callable(getattr(report, "per_test", None))
    failed = int(report.ops.get("failed", 0)) if has_subtests else 0
    reports = [line for line in alloc.log if KERNEL_REPORT.search(line)]
    status = 1 if failed else 0
    if args.fail_on_reports and reports:
        status = 1
    if args.json:
        extra = getattr(report, "json_extra", None)
        print(
            json.dumps(
                {
                    "stage": alloc.stage.key,
                    "stage_source": setting.source,
                    "components": {r: component_name(c) for r, c in alloc.components.items()},
                    "workload": report.name,
                    "params": report.params,
                    "ops": report.ops,
                    "elapsed_s": report.elapsed_s,
                    **(extra() if callable(extra) else {}),
                    "metrics": metrics,
                    **({"component_costs": component_costs(alloc)} if args.per_component else {}),
                    "struct_vmap_area_size": alloc.struct_vmap_area_size,
                    "log": alloc.log,
                    "kernel_reports": reports,
                    **({"debug_kernel": debug_kernel_counts(alloc)} if args.debug_kernel else {}),
                    "faults": args.faults,
                    "exit_status": status,
                },
                indent=2,
            )
        )
        _say_status(failed, reports, args.fail_on_reports)
        return status
    from vmapsim.tools.report import allocator_lines

    for line in allocator_lines(alloc):
        print(line)
    print()
    for line in report.lines():
        print(line)
    print()
    _print_counters(metrics)
    if args.per_component:
        ops = max(metrics.get("alloc_calls", 0) + metrics.get("free_calls", 0), 1)
        print()
        print("counters per component:")
        for label, cost in component_costs(alloc).items():
            nodes = cost.get("index_node_bytes")
            extra = f"  (index nodes {nodes} B at {cost['node_size']} B)" if nodes else ""
            print(f"  {label}{extra}")
            for name, value in cost["counters"].items():
                print(f"    {name:<30} {value:>14}   {value / ops:10.2f}/op")
    print()
    print(f"log: {len(alloc.log)} message(s)")
    shown = alloc.log if args.log_all else alloc.log[-20:]
    if len(shown) < len(alloc.log):
        print(f"  ... {len(alloc.log) - len(shown)} earlier message(s) (--log-all shows them)")
    for line in shown:
        print(f"  {line}")
    if args.debug:
        alloc.check_invariants()
        print("check_invariants: ok")
    if args.debug_kernel:
        counts = debug_kernel_counts(alloc)
        print(
            "debug kernel: "
            + ", ".join(f"{k} {v}" for k, v in counts.items() if k != "reports")
            + f"; {counts['reports']} report(s) in the log"
        )
    _say_status(failed, reports, args.fail_on_reports)
    return status


def _say_status(failed: int, reports: list[str], fail_on_reports: bool) -> None:
    """Why the exit status is not 0 (stderr), test_vmalloc's convention."""
    if failed:
        print(
            f"vmapsim: {failed} non-xfail subtest run(s) failed (exit 1, as test_vmalloc "
            "reports failed: N)",
            file=sys.stderr,
        )
    if reports:
        what = "exit 1" if fail_on_reports else "--fail-on-reports makes this exit 1"
        print(f"vmapsim: {len(reports)} kernel report(s) in the log ({what})", file=sys.stderr)


def _print_counters(metrics: dict[str, int]) -> None:
    print("counters:")
    ops = max(metrics.get("alloc_calls", 0) + metrics.get("free_calls", 0), 1)
    for name, value in metrics.items():
        if value:
            print(f"  {name:<32} {value:>14}   {value / ops:10.2f}/op")


def _print_partial_counters(alloc: Any) -> None:
    """What an interrupted run had done: its counters so far, marked partial."""
    print()
    print("interrupted: the counters so far (partial run):")
    _print_counters(alloc.metrics.snapshot())
    sys.stdout.flush()


def _ignore_further_sigint() -> None:
    """After the first SIGINT, a second one exits at once (130) and stops any
    worker process this one started (core/tools/interrupt.py)."""
    from vmapsim.tools.interrupt import exit_on_next_sigint

    exit_on_next_sigint()


def cmd_bisect(args: argparse.Namespace) -> int:
    """``vmapsim bisect``: the first stage where a check turns bad (core/tools/bisect.py)."""
    from . import bisect

    try:
        return bisect.run(args)
    except bisect.BisectUsageError as exc:
        raise UsageError(str(exc)) from None


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmapsim",
        description="A model of the Linux kernel's vmalloc allocator, stage by stage "
        "through the rb-tree to maple-tree series.",
    )
    parser.add_argument("--version", action="version", version=f"vmapsim {__version__}")
    parser.add_argument(
        "--strict-plugins",
        action="store_true",
        help="any plugin problem is an error (also: VMAPSIM_STRICT_PLUGINS=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "stages", help="list the stages: number, patch title, what changes, components"
    )
    p.add_argument("--json", action="store_true", help="print the stages as JSON")
    p.set_defaults(func=cmd_stages)
    p = sub.add_parser("plugins", help="list the plugins: what loaded, from where, what failed")
    p.add_argument("--json", action="store_true", help="print the plugins as JSON")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser(
        "new-plugin", help="create a plugin package from the template (passes the kit)"
    )
    p.add_argument("name", help="plugin name: lower-case letters, digits and '_'")
    p.add_argument("--role", default="free", help="role of the template component (default free)")
    p.add_argument("--dir", default=".", help="parent folder of the new package (default .)")
    p.set_defaults(func=cmd_new_plugin)

    p = sub.add_parser("run", help="run a workload against a stage")
    p.add_argument(
        "--stage",
        default=None,
        help="stage number or series:number (default: $VMAPSIM_STAGE, then the project "
        "file's stage, then 0)",
    )
    p.add_argument(
        "--workload",
        default="test_vmalloc",
        help="workload name (default: test_vmalloc; also mixed)",
    )
    _add_suite_options(p)
    _add_build_options(
        p,
        per_component_help="also report the counters of each component "
        "(slower: the totals are summed per write)",
        nr_cpus=8,
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--log-all", action="store_true", help="print the whole allocator log")
    p.add_argument(
        "--fail-on-reports",
        action="store_true",
        help="exit 1 when the log holds a kernel report (UBSAN:, KASAN:, BUG:, WARNING: lines)",
    )
    p.set_defaults(func=cmd_run)

    from vmapsim.tools.bisect import add_arguments as add_bisect_arguments

    p = sub.add_parser(
        "bisect",
        help="find the first stage where a check turns bad (like git bisect run)",
        description="Binary search over the stages of a series for the first stage where "
        "a check turns bad (docs/bisect.md). Exit 0: found; 1: none; 2: usage error; "
        "3: aborted.",
    )
    add_bisect_arguments(p)
    p.set_defaults(func=cmd_bisect)
    _add_compare_parser(sub)
    from vmapsim.tools.replay.command import add_parser as add_replay_parser

    add_replay_parser(
        sub,
        add_suite_options=_add_suite_options,
        suite_params=_suite_params,
        usage_error=UsageError,
    )
    from vmapsim.tools.sweep.command import add_parser as add_sweep_parser

    add_sweep_parser(sub)
    return parser


def _debug_every(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def _add_check_options(p: argparse.ArgumentParser) -> None:
    """--debug, its full-check period, and --faults (`run` and `compare`, as bisect)."""
    p.add_argument(
        "--debug",
        action="store_true",
        help="check invariants as CONFIG_DEBUG_VM would: what each operation touched, "
        "and everything every --debug-full-every operations",
    )
    p.add_argument(
        "--debug-full-every",
        type=_debug_every,
        default=DEBUG_FULL_EVERY,
        metavar="N",
        help=f"with --debug: the full check every N operations (default {DEBUG_FULL_EVERY}; "
        "1 = after every operation)",
    )
    p.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="fault injection as bisect takes it (docs/bisect.md): failslab per cache, "
        "e.g. maple_node:probability=5, and fail_page_alloc, e.g. "
        "page:probability=100:min-order=6; join both with +",
    )
    p.add_argument(
        "--debug-kernel",
        action="store_true",
        help="run as a debug kernel: lockdep, might_sleep, KASAN and UBSAN reports to the "
        "log, counted (docs/debug-kernel.md)",
    )


def _add_build_options(
    p: argparse.ArgumentParser, *, per_component_help: str, nr_cpus: int = 1
) -> None:
    """What builds the allocator (`run` and `compare`): component swaps, the
    per-component split, workload parameters, arch, CPUs, seed, checks."""
    p.add_argument(
        "--with", dest="with_", action="append", default=[], metavar="ROLE=NAME", help=_WITH_HELP
    )
    p.add_argument("--per-component", action="store_true", help=per_component_help)
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="workload parameter"
    )
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    p.add_argument(
        "--nr-cpus",
        type=int,
        default=nr_cpus,
        help=f"simulated CPUs (default {nr_cpus})",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache",
        action="store_true",
        help="attach the cache and coherence model: hits per level, memory misses and "
        "coherence transfers per operation and per lock section (slower)",
    )
    _add_check_options(p)


def _add_suite_options(p: argparse.ArgumentParser, *, positional: bool = True) -> None:
    """test_vmalloc's selectors and module parameters (`run` and `compare`)."""
    g = p.add_argument_group(
        "test_vmalloc",
        "lib/test_vmalloc.c's parameters; with none of them and no --mode, "
        "the run is test_vmalloc.sh's smoke mode",
    )
    if positional:
        g.add_argument(
            "script_args",
            nargs="*",
            metavar="KEY=VALUE",
            help="module parameters as test_vmalloc.sh takes them (each value > 0)",
        )
    g.add_argument(
        "--mode",
        choices=["smoke", "performance", "stress", "manual"],
        default=None,
        help="test_vmalloc.sh's templates; manual = the module's defaults "
        "(test_loop_count=1000000) plus the parameters given",
    )
    g.add_argument(
        "--mask",
        dest="run_test_mask",
        type=_int0,
        default=None,
        help="run_test_mask: bit 1<<i selects subtest i (default 7; 0xFFF = the series' "
        "base, 0x1FFF with vrealloc_test)",
    )
    g.add_argument("--tests", default=None, metavar="NAME,…", help="subtests by name")
    for name, help_ in (
        ("nr_threads", "workers (simulated CPUs; clamped to [1, 65535])"),
        ("test_loop_count", "loop iterations per subtest (module default 1000000)"),
        ("test_repeat_count", "runs of each subtest (default 1)"),
        ("nr_pages", "pages for fix_size, vm_map_ram and no_block (default 1)"),
        ("nr_pcpu_objects", "objects of pcpu_alloc_test (default 35000)"),
    ):
        g.add_argument("--" + name.replace("_", "-"), type=_int0, default=None, help=help_)
    g.add_argument(
        "--sequential-test-order",
        action="store_const",
        const=1,
        default=None,
        help="run the subtests in array order (no shuffle)",
    )
    g.add_argument(
        "--use-huge",
        action="store_const",
        const=1,
        default=None,
        help="vmalloc_huge in fix_size (not modelled: refused)",
    )
    g.add_argument(
        "--pin-workers",
        dest="pin_workers",
        action="store_const",
        const=True,
        default=None,
        help="keep each worker on its first CPU (default: workers are unbound kthreads "
        "and migrate, seeded, so areas are freed from other CPUs)",
    )


def cmd_compare(args: argparse.Namespace) -> int:
    from vmapsim.tools.compare import CompareInterrupted, compare, parse_columns
    from vmapsim.tools.report import FORMATS, LazyProgress, plot, render, to_terminal

    reg = get_registry()
    workload = reg.workload(args.workload)
    # KEY=VALUE words among the stages are test_vmalloc.sh-style parameters;
    # a column's swaps (7+free=sorted) carry '=' after a '+'
    args.script_args = [s for s in args.stages if "=" in s and "+" not in s]
    args.stages = [s for s in args.stages if "=" not in s or "+" in s]
    if not args.stages:
        raise UsageError("compare: name at least one stage (A B …, A..B, all, A+ROLE=NAME)")
    if args.json:
        if args.format not in (None, "json"):
            raise UsageError(f"--json and --format {args.format}: give one of them")
        args.format = "json"
    fmt = args.format
    if fmt is None:
        fmt = "terminal"
        if args.output:
            suffix = args.output.rsplit(".", 1)[-1].lower()
            fmt = {"md": "markdown", "json": "json", "csv": "csv"}.get(suffix, "terminal")
    if fmt not in FORMATS:  # pragma: no cover - argparse choices
        raise UsageError(f"--format: one of {', '.join(FORMATS)}")
    if args.plot:
        if not args.plot.lower().endswith((".png", ".svg")):
            raise UsageError(f"--plot {args.plot!r}: the file must end in .png or .svg")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError(
                "--plot needs matplotlib: install the 'plot' extra (pip install 'vmapsim[plot]')"
            ) from None
    _check_output_paths(args.output, args.plot)
    if args.reps < 1:
        raise UsageError(f"--reps {args.reps}: must be >= 1")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be >= 1")
    specs = parse_columns(args.stages, reg)
    _failslab(args)  # a bad --faults spec is refused before anything runs
    params, parts = _workload_params(args, workload)
    # speak early: what runs, on stderr (stdout is the table)
    given = " ".join(f"{k}={v}" for k, v in params.items() if k != "args")
    given = " ".join(x for x in (given, *params.get("args", ())) if x) or "(defaults)"
    print(
        f"vmapsim: compare {', '.join(s.label for s in specs)}: {workload.name} {given}; "
        f"seed {args.seed}, reps {args.reps}, {len(parts)} part(s) per column",
        file=sys.stderr,
        flush=True,
    )
    if callable(getattr(workload.run, "split_params", None)):
        from vmapsim.tools.estimate import long_run_notice

        notice = long_run_notice(parts, args.nr_cpus, columns=len(specs) * args.reps)
        if notice:
            print(notice, file=sys.stderr, flush=True)
    status = 0
    stopped = ""
    try:
        with LazyProgress(f"compare {' '.join(args.stages)}", per_unit=True) as bar:
            result = compare(
                args.stages,
                workload=workload.name,
                params=params,
                seed=args.seed,
                nr_cpus=args.nr_cpus,
                arch=args.arch,
                reps=args.reps,
                jobs=args.jobs,
                components=_parse_with(args.with_),
                progress=bar,
                faults=args.faults,
                debug=args.debug,
                debug_full_every=args.debug_full_every,
                per_component=args.per_component,
                cache_model=args.cache,
                debug_kernel=args.debug_kernel,
            )
    except CompareInterrupted as exc:
        _ignore_further_sigint()
        if exc.result is None:
            raise KeyboardInterrupt from None
        result = exc.result
        status = 130
        stopped = f"{exc.done} of {exc.total}"
    for sk in result.get("skipped", ()):
        print(f"vmapsim: skipped column {sk['column']}: {sk['reason']}", file=sys.stderr)
    for col in result.get("stages", ()):
        reports = col.get("kernel_reports") or []
        if reports:
            kinds = sorted(set(reports))
            print(
                f"vmapsim: column {col['label']}: {len(reports)} kernel report(s) in the log: "
                + "; ".join(kinds[:4])
                + (f"; ... ({len(kinds) - 4} more kinds)" if len(kinds) > 4 else ""),
                file=sys.stderr,
            )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(render(result, fmt))
        print(f"wrote {args.output} ({fmt})", file=sys.stderr)
    elif fmt == "terminal":
        to_terminal(result)
    else:
        sys.stdout.write(render(result, fmt))
    if args.plot and status == 0:
        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    if status == 130:
        sys.stdout.flush()
        print(
            f"vmapsim: interrupted: {stopped} runs finished (rows marked partial)",
            file=sys.stderr,
        )
    return status


def _add_compare_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare",
        help="run the same workload on several stages and tabulate time, counters, memory",
    )
    p.add_argument(
        "stages",
        nargs="+",
        metavar="STAGE",
        help="stage numbers, series:number, ranges A..B (inclusive, the stages that "
        "exist), or all, each optionally with component swaps (7+free=sorted+coalesce=generic; "
        "0 0 is two columns); KEY=VALUE words are test_vmalloc.sh-style parameters",
    )
    p.add_argument("--workload", default="test_vmalloc", help="workload (default test_vmalloc)")
    p.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: the CPU count)"
    )
    p.add_argument(
        "--reps",
        type=int,
        default=DEFAULT_REPS,
        help=f"repetitions per column, run interleaved (default {DEFAULT_REPS}; the "
        "simulator's time: median and min-max range)",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument(
        "--format",
        choices=["terminal", "markdown", "summary", "json", "csv"],
        default=None,
        help="summary = one Markdown table, a row per subtest and stage",
    )
    p.add_argument(
        "--output", default=None, metavar="FILE", help="write there (format from .md/.json/.csv)"
    )
    p.add_argument("--plot", default=None, metavar="FILE.png|svg", help="grouped bar chart")
    _add_build_options(
        p,
        per_component_help="add each stage's counters per component to the results "
        "(JSON: component_costs)",
    )
    _add_suite_options(p, positional=False)
    p.set_defaults(func=cmd_compare)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vmapsim`` command."""
    parser = make_parser()
    args, extra = parser.parse_known_args(argv)
    # words after options (`compare 0 --mask 1 2 nr_pages=2`, `run --mask 1 nr_pages=2`)
    # belong to the command's positional list; anything else is an error
    target = {"compare": "stages", "run": "script_args"}.get(args.command or "")
    if extra and target and not any(e.startswith("-") for e in extra):
        setattr(args, target, [*getattr(args, target), *extra])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.strict_plugins:
                get_registry(strict=True)
            return int(args.func(args) or 0)
    except BrokenPipeError:  # `vmapsim run --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        # first SIGINT: what finished was printed; one line, exit 130 (128 + SIGINT)
        _ignore_further_sigint()
        print("vmapsim: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"vmapsim: {exc}", file=sys.stderr)
        return 2
    except (UnknownStageError, UnknownComponentError, PluginError, LookupError) as exc:
        print(f"vmapsim: {blame(exc) or (exc.args[0] if exc.args else exc)}", file=sys.stderr)
        return 2
    except (VmapError, TypeError, ValueError, RuntimeError) as exc:
        print(f"vmapsim: {blame(exc) or exc}", file=sys.stderr)
        return 2
    except InvariantError as exc:
        print(f"vmapsim: invariant broken: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # raised inside a component: name it, not a traceback
        culprit = blame(exc)
        if culprit is None:
            internal = _internal_error(exc)
            if internal is None:
                raise
            print(internal, file=sys.stderr)
            return EXIT_INTERNAL
        print(f"vmapsim: {culprit}", file=sys.stderr)
        return 2


#: exit status of an internal error of the model (sysexits' EX_SOFTWARE)
EXIT_INTERNAL = 70


def _internal_error(exc: BaseException) -> str | None:
    """One line for an ``AssertionError`` the flow itself raised (a model bug,
    not a component's): the stage, the operation the workload called and the
    function that asserted; None for anything else."""
    if not isinstance(exc, AssertionError):
        return None
    from vmapsim.kernel.allocator import VmapAllocator

    outer = inner = None
    stage = "?"
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if isinstance(frame.f_locals.get("self"), VmapAllocator):
            name = frame.f_code.co_name
            if outer is None:
                outer = name
                stage = frame.f_locals["self"].stage.key
            inner = name
        tb = tb.tb_next
    where = f"in {outer}()" if outer else "outside the allocator"
    if inner and inner != outer:
        where += f" (asserted in {inner}())"
    text = str(exc) or "assertion failed"
    return (
        f"vmapsim: internal error: AssertionError {where} at stage {stage}: {text}; "
        f"this is a bug of the model, please report it (exit {EXIT_INTERNAL})"
    )


def _show_warning(message: Any, category: type, *_args: Any, **_kwargs: Any) -> None:
    """Plugin warnings as one ``vmapsim: warning:`` line on stderr."""
    if issubclass(category, PluginWarning):
        print(f"vmapsim: warning: {message}", file=sys.stderr)
    else:
        print(f"vmapsim: {category.__name__}: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
