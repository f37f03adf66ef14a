"""The ``vmapsim`` command line."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmapsim import __version__
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
from vmapsim.tools.config import resolve_stage
from vmapsim.tools.params import parse_params, parse_with

__all__ = ["main"]


class UsageError(Exception):
    """A malformed command-line value (exit status 2, like argparse's own errors)."""


def _parse_with(items: Sequence[str]) -> dict[str, str]:
    return parse_with(items, list(ROLES), UsageError)


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    return parse_params(items, UsageError)


def cmd_stages(_args: argparse.Namespace) -> int:
    reg = get_registry()
    for key in reg.stage_keys():
        st = reg.stages[key]
        comps = " ".join(f"{r}={n}" for r, n in sorted(st.components.items()))
        print(f"{st.key:<10} {st.title}")
        print(f"{'':<10} {comps}  struct vmap_area {st.layout.size} B")
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


#: `vmapsim run` options handed to the workload as keyword parameters
#: (test_vmalloc's module parameters and selectors), only when given
_SUITE_OPTIONS = (
    "mode",
    "tests",
    "run_test_mask",
    "nr_threads",
    "test_loop_count",
    "test_repeat_count",
    "sequential_test_order",
    "nr_pages",
    "nr_pcpu_objects",
    "use_huge",
)


def _int0(text: str) -> int:
    """An int in C notation (decimal, 0x hex, 0o octal), for --mask and friends."""
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def _suite_params(args: argparse.Namespace, workload_name: str, fn: Any) -> dict[str, Any]:
    """The workload options given on the command line, checked against what
    the workload's function takes."""
    out: dict[str, Any] = {}
    for key in _SUITE_OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
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
            flag = {"args": "KEY=VALUE", "run_test_mask": "--mask"}.get(
                key, "--" + key.replace("_", "-")
            )
            raise UsageError(f"{flag}: workload {workload_name!r} takes no such parameter")
    return out


def cmd_run(args: argparse.Namespace) -> int:
    stage = resolve_stage(args.stage)
    reg = get_registry()
    workload = reg.workload(args.workload)
    suite = _suite_params(args, workload.name, workload.run)
    alloc = build(
        stage.value,
        arch=args.arch,
        nr_cpus=args.nr_cpus,
        seed=args.seed,
        debug=args.debug,
        components=_parse_with(args.with_),
        component_counters=args.per_component,
    )
    params = {"seed": args.seed, **_parse_params(args.param), **suite}
    try:
        takes_progress = "progress" in inspect.signature(workload.run).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        takes_progress = False
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
    metrics = alloc.metrics.snapshot()
    if args.json:
        extra = getattr(report, "json_extra", None)
        print(
            json.dumps(
                {
                    "stage": alloc.stage.key,
                    "stage_source": stage.source,
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
                },
                indent=2,
            )
        )
        return 0
    st = alloc.stage
    print(f"stage {st.key} ({stage.source}): {st.title}")
    print(
        "components: "
        + " ".join(f"{r}={component_name(c)}" for r, c in sorted(alloc.components.items()))
    )
    print(
        f"arch {alloc.arch.name}, nr_cpus {alloc.nr_cpus} ({alloc.nr_vmap_nodes} vmap nodes), "
        f"seed {alloc.seed}, struct vmap_area {alloc.struct_vmap_area_size} B"
    )
    print()
    for line in report.lines():
        print(line)
    print()
    print("counters:")
    ops = max(metrics.get("alloc_calls", 0) + metrics.get("free_calls", 0), 1)
    for name, value in metrics.items():
        if value:
            print(f"  {name:<32} {value:>14}   {value / ops:10.2f}/op")
    if args.per_component:
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
    return 0


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

    p = sub.add_parser("stages", help="list the stages: number, patch title, components")
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
    p.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        metavar="ROLE=NAME",
        help=_WITH_HELP,
    )
    p.add_argument(
        "--per-component",
        action="store_true",
        help="also report the counters of each component (slower: the totals are summed per write)",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="workload parameter"
    )
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    p.add_argument("--nr-cpus", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="check invariants after every operation")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--log-all", action="store_true", help="print the whole allocator log")
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
    return parser


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


def cmd_compare(args: argparse.Namespace) -> int:
    from vmapsim.tools.compare import compare
    from vmapsim.tools.report import FORMATS, LazyProgress, plot, render, to_terminal

    reg = get_registry()
    workload = reg.workload(args.workload)
    # KEY=VALUE words among the stages are test_vmalloc.sh-style parameters
    args.script_args = [s for s in args.stages if "=" in s]
    args.stages = [s for s in args.stages if "=" not in s]
    if not args.stages:
        raise UsageError("compare: name at least one stage (A B …, A..B or all)")
    params = {**_parse_params(args.param), **_suite_params(args, workload.name, workload.run)}
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
    with LazyProgress(f"compare {' '.join(args.stages)}") as bar:
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
            per_component=args.per_component,
        )
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(render(result, fmt))
        print(f"wrote {args.output} ({fmt})", file=sys.stderr)
    elif fmt == "terminal":
        to_terminal(result)
    else:
        sys.stdout.write(render(result, fmt))
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


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
        "exist), or all; KEY=VALUE words are test_vmalloc.sh-style parameters",
    )
    p.add_argument("--workload", default="test_vmalloc", help="workload (default test_vmalloc)")
    p.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: the CPU count)"
    )
    p.add_argument("--reps", type=int, default=1, help="repetitions per stage (time: median)")
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
    p.add_argument(
        "--with", dest="with_", action="append", default=[], metavar="ROLE=NAME", help=_WITH_HELP
    )
    p.add_argument(
        "--per-component",
        action="store_true",
        help="add each stage's counters per component to the results (JSON: component_costs)",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="workload parameter"
    )
    p.add_argument("--arch", default="x86_64", choices=["x86_64", "arm64"])
    p.add_argument("--nr-cpus", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
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
            raise
        print(f"vmapsim: {culprit}", file=sys.stderr)
        return 2


def _show_warning(message: Any, category: type, *_args: Any, **_kwargs: Any) -> None:
    """Plugin warnings as one ``vmapsim: warning:`` line on stderr."""
    if issubclass(category, PluginWarning):
        print(f"vmapsim: warning: {message}", file=sys.stderr)
    else:
        print(f"vmapsim: {category.__name__}: {message}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
