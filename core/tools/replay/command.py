"""``vmapsim replay vmallocinfo FILE`` and ``vmapsim replay trace FILE``.

Exit status: 0 everything in the file was applied (a trace: every
allocation matched); 1 done, but lines were skipped (each reported with its
number and reason) or a trace diverged; 2 a usage error; 3 the input cannot
be used at all (unreadable, empty, binary, truncated, of the wrong kind, or
``--strict`` stopped at a bad line) and nothing was replayed.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from vmapsim.framework.api import build
from vmapsim.framework.registry import get_registry
from vmapsim.framework.roles import ROLES
from vmapsim.kernel.allocator import VmapAllocator, component_name
from vmapsim.kernel.constants import ARCHES, PAGE_SHIFT, Arch, arch_by_name
from vmapsim.tools.config import StageSelectionError, resolve_stage, select_stages
from vmapsim.tools.params import SUITE_OPTIONS, parse_params, parse_with
from vmapsim.tools.replay.builder import BuildResult, Plan, infer_arch, plan_snapshot, rebuild
from vmapsim.tools.replay.ftrace import parse_trace
from vmapsim.tools.replay.printer import format_vmallocinfo
from vmapsim.tools.replay.textfile import InputError, Problem, read_text
from vmapsim.tools.replay.trace_replay import (
    nr_cpus_from_lazy_max,
    rebase_events,
    replay_trace,
    trace_window,
)
from vmapsim.tools.replay.vmallocinfo import parse_vmallocinfo

__all__ = ["EXIT_INPUT", "EXIT_OK", "EXIT_SKIPPED", "add_parser"]

EXIT_OK = 0
EXIT_SKIPPED = 1
EXIT_INPUT = 3
_SHOWN = 20
_VMALLOCINFO = "/proc/vmallocinfo"
_TRACE = "a vmalloc trace (trace-cmd report / ftrace text)"


class _Stop(Exception):
    """The input cannot be used (exit 3); the message says why."""


def add_parser(
    sub: Any,
    *,
    add_suite_options: Callable[[argparse.ArgumentParser], None],
    suite_params: Callable[[argparse.Namespace, str, Any], dict[str, Any]],
    usage_error: type[Exception],
) -> None:
    """Register ``replay`` with ``vmapsim``'s subcommands; ``add_suite_options``
    and ``suite_params`` are ``vmapsim run``'s own (test_vmalloc's options)."""
    hooks = {"suite_params": suite_params, "usage_error": usage_error}
    p = sub.add_parser(
        "replay",
        help="rebuild a real /proc/vmallocinfo, or replay a vmalloc trace, on a stage",
        description="Bring a real machine into the model (docs/replay.md). Exit 0: all "
        "applied/matched; 1: lines skipped or the trace diverged; 2: usage error; "
        "3: the input cannot be used (nothing replayed).",
    )
    kinds = p.add_subparsers(dest="replay_kind", metavar="KIND")
    p.set_defaults(func=lambda _args: (p.print_help(), 2)[1])

    v = kinds.add_parser(
        "vmallocinfo",
        help="rebuild the address space of a /proc/vmallocinfo, then run a workload on it",
        description="Rebuild a /proc/vmallocinfo snapshot (FILE, or - for stdin) on a stage, "
        "optionally run a workload on top, and report as `vmapsim run` does.",
    )
    v.add_argument("file", metavar="FILE", help="the snapshot (- reads standard input)")
    _common(v)
    v.add_argument(
        "--keep-outside",
        action="store_true",
        help="also place areas outside the vmalloc window (modules, BPF)",
    )
    v.add_argument(
        "--no-rebase",
        action="store_true",
        help="do not move a KASLR kernel's vmalloc areas into the model's window",
    )
    v.add_argument(
        "--print",
        dest="print_",
        action="store_true",
        help="write the model's own /proc/vmallocinfo (after the workload, if any)",
    )
    v.add_argument(
        "--workload",
        default=None,
        help="run this workload on the rebuilt state (test_vmalloc, mixed, ...; default: "
        "none, or test_vmalloc when a test_vmalloc option is given)",
    )
    v.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="workload parameter"
    )
    v.add_argument("--log-all", action="store_true", help="print the whole allocator log")
    add_suite_options(v)
    v.set_defaults(func=lambda args: _run(cmd_vmallocinfo, args, hooks))

    t = kinds.add_parser(
        "trace",
        help="replay a vmalloc trace (trace-cmd report / ftrace text) and check its addresses",
        description="Replay the alloc_vmap_area / free_vmap_area_noflush / "
        "purge_vmap_area_lazy events of FILE (or - for stdin) on each selected stage and "
        "check every allocation's address against the recorded one.",
    )
    t.add_argument("file", metavar="FILE", help="the trace text (- reads standard input)")
    _common(t, stages=True)
    t.add_argument(
        "--snapshot",
        default=None,
        metavar="VMALLOCINFO",
        help="rebuild this /proc/vmallocinfo first (the state the trace started from)",
    )
    t.add_argument(
        "--divergences", type=int, default=10, metavar="N", help="divergences to list (10)"
    )
    t.set_defaults(func=lambda args: _run(cmd_trace, args, hooks))


def _common(p: argparse.ArgumentParser, *, stages: bool = False) -> None:
    p.add_argument(
        "--stage",
        default=None,
        help="stage selection: N, A..B, all, a list (default as `vmapsim run`)"
        if stages
        else "stage number or series:number (default as `vmapsim run`)",
    )
    p.add_argument(
        "--arch",
        default=None,
        choices=sorted(ARCHES),
        help="the machine's arch (default: inferred from the addresses)",
    )
    p.add_argument(
        "--nr-cpus",
        type=int,
        default=None,
        help="simulated CPUs (default 1; a trace: the CPU count its header gives)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--with", dest="with_", action="append", default=[], metavar="ROLE=NAME")
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad line (nothing replayed)"
    )
    p.add_argument("--debug", action="store_true", help="check invariants after every operation")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _run(fn: Callable[..., int], args: argparse.Namespace, hooks: dict[str, Any]) -> int:
    try:
        return fn(args, hooks)
    except (_Stop, InputError) as exc:
        print(f"vmapsim: {exc}", file=sys.stderr)
        return EXIT_INPUT


# -- shared steps ------------------------------------------------------------------
def _check_strict(problems: Sequence[Problem], name: str, strict: bool) -> None:
    if strict and problems:
        raise _Stop(f"{name}: {problems[0]} (--strict: nothing was replayed)")


def _snapshot_plan(
    path: str,
    arch_name: str | None,
    strict: bool,
    keep_outside: bool,
    rebase: bool = True,
    delta: int | None = None,
) -> tuple:
    """Read, parse and plan a snapshot: (plan, parse problems, input name, line count)."""
    text = read_text(path, _VMALLOCINFO)
    snap = parse_vmallocinfo(text.lines)
    if not snap.records:
        if snap.hidden:
            raise _Stop(
                f"{text.name}: every address is zero: %pK hid them (kptr_restrict=2, or a "
                f"reader without CAP_SYSLOG); read the file as root with kptr_restrict 0 or 1"
            )
        if snap.trace_like:
            raise _Stop(
                f"{text.name}: this looks like a trace, not /proc/vmallocinfo: use "
                f"`vmapsim replay trace {path}`"
            )
        raise _Stop(
            f"{text.name}: not a /proc/vmallocinfo: no line has the form "
            f"0x<start>-0x<end> <size> ... ({snap.problems[0] if snap.problems else 'no lines'})"
        )
    _check_strict(snap.problems, text.name, strict)
    if arch_name is None:
        arch, reason = infer_arch(snap.records)
    else:
        arch, reason = arch_by_name(arch_name), "given (--arch)"
    plan = plan_snapshot(
        snap.records,
        arch,
        arch_reason=reason,
        keep_outside=keep_outside,
        rebase=rebase,
        delta=delta,
    )
    _check_strict(plan.problems, text.name, strict)
    return plan, list(snap.problems), text.name, snap.nr_lines


def _build(
    args: argparse.Namespace, stage: str, arch: Arch, nr_cpus: int, usage_error: type[Exception]
) -> VmapAllocator:
    return build(
        stage,
        arch=arch.name,
        nr_cpus=nr_cpus,
        seed=args.seed,
        debug=args.debug,
        components=parse_with(args.with_, list(ROLES), usage_error),
    )


def _print_problems(problems: Sequence[Problem], title: str) -> None:
    if not problems:
        return
    print(f"{title}: {len(problems)} line(s) skipped")
    for p in problems[:_SHOWN]:
        print(f"  {p}")
    if len(problems) > _SHOWN:
        print(f"  ... {len(problems) - _SHOWN} more (--json lists them all)")


# -- replay vmallocinfo ----------------------------------------------------------------
def cmd_vmallocinfo(args: argparse.Namespace, hooks: dict[str, Any]) -> int:
    plan, problems, name, nr_lines = _snapshot_plan(
        args.file, args.arch, args.strict, args.keep_outside, not args.no_rebase
    )
    stage = resolve_stage(args.stage)
    reg = get_registry()
    workload = None
    suite: dict[str, Any] = {}
    if args.workload is not None or _any_suite_option(args):
        workload = reg.workload(args.workload or "test_vmalloc")
        suite = hooks["suite_params"](args, workload.name, workload.run)
    params = parse_params(args.param, hooks["usage_error"])
    if params and workload is None:
        raise hooks["usage_error"]("--param: give a --workload to take it")
    alloc = _build(
        args,
        stage.value,
        plan.arch,
        1 if args.nr_cpus is None else args.nr_cpus,
        hooks["usage_error"],
    )
    built = rebuild(alloc, plan)
    problems = sorted([*problems, *plan.problems, *built.problems], key=lambda p: p.line)
    build_metrics = alloc.metrics.snapshot()
    rebuilt = _state_lines(alloc, "rebuilt state")
    report = None
    if workload is not None:
        alloc.metrics.reset()  # the counters of the workload alone, as `vmapsim run` shows
        report = _run_workload(alloc, workload, {"seed": args.seed, **params, **suite})
    status = EXIT_SKIPPED if problems else EXIT_OK
    if args.print_:
        sys.stdout.write(format_vmallocinfo(alloc, built.annotations, rebase=plan.rebase))
        for p in problems:
            print(f"vmapsim: {name}: {p}", file=sys.stderr)
        return status
    if args.json:
        print(
            json.dumps(
                _json(alloc, stage, plan, built, problems, name, nr_lines, build_metrics, report),
                indent=2,
            )
        )
        return status
    _print_header(alloc, stage)
    print(f"replayed {name}: {nr_lines} lines, arch {plan.arch.name} ({plan.arch_reason})")
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(built.placed.items()))
    print(f"placed {built.nr_placed} areas: {kinds or 'none'}")
    if plan.rebase:
        print(f"  rebased by {plan.rebase:#x}: {plan.rebase_reason}")
    if plan.outside_kept:
        print(f"  {plan.outside_kept} of them outside the vmalloc window (--keep-outside)")
    for note in built.notes:
        print(f"  note: {note}")
    _print_problems(problems, "skipped")
    print()
    for line in rebuilt:
        print(line)
    if report is None:
        print()
        _print_counters("counters (the rebuild)", build_metrics)
    else:
        print()
        for line in report.lines():
            print(line)
        print()
        for line in _state_lines(alloc, "after the workload"):
            print(line)
        print()
        _print_counters("counters (the workload)", alloc.metrics.snapshot())
    print()
    print(f"log: {len(alloc.log)} message(s)")
    shown = alloc.log if args.log_all else alloc.log[-_SHOWN:]
    if len(shown) < len(alloc.log):
        print(f"  ... {len(alloc.log) - len(shown)} earlier message(s) (--log-all shows them)")
    for line in shown:
        print(f"  {line}")
    if args.debug:
        alloc.check_invariants()
        print("check_invariants: ok")
    return status


_SUITE_KEYS = SUITE_OPTIONS


def _any_suite_option(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "script_args", None)) or any(
        getattr(args, k, None) is not None for k in _SUITE_KEYS
    )


def _run_workload(alloc: VmapAllocator, workload: Any, params: dict[str, Any]) -> Any:
    try:
        takes_progress = "progress" in inspect.signature(workload.run).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        takes_progress = False
    if alloc.debug:
        from vmapsim.tools.progress import debug_progress

        with debug_progress(alloc, f"{workload.name} on {alloc.stage.key}"):
            return workload.run(alloc, **params)
    if takes_progress:
        from vmapsim.tools.report import LazyProgress

        with LazyProgress(f"{workload.name} on {alloc.stage.key}") as bar:
            return workload.run(alloc, progress=bar, **params)
    return workload.run(alloc, **params)


def _print_header(alloc: VmapAllocator, stage: Any) -> None:
    st = alloc.stage
    print(f"stage {st.key} ({stage.source}): {st.title}")
    from vmapsim.tools.report import allocator_lines

    for line in allocator_lines(alloc):
        print(line)


def _state_lines(alloc: VmapAllocator, title: str) -> list[str]:
    busy = sum(1 for _ in alloc.busy_areas())
    lazy = sum(1 for _ in alloc.lazy_areas())
    lo, hi = alloc.vmalloc_start, alloc.vmalloc_end
    blocks = [
        (max(va.va_start, lo), min(va.va_end, hi))
        for va in alloc.free_areas()
        if va.va_end > lo and va.va_start < hi
    ]
    largest = max((e - s for s, e in blocks), default=0)
    return [
        f"{title}: {busy} busy areas, {lazy} lazily freed ({alloc.vmap_lazy_nr} pages, "
        f"lazy_max_pages() {alloc.lazy_max_pages()})",
        f"  vmalloc window [{lo:#x}, {hi:#x}): {len(blocks)} free blocks, the largest "
        f"{largest >> PAGE_SHIFT} pages",
    ]


def _print_counters(title: str, metrics: dict[str, int]) -> None:
    print(f"{title}:")
    ops = max(metrics.get("alloc_calls", 0) + metrics.get("free_calls", 0), 1)
    for name, value in metrics.items():
        if value:
            print(f"  {name:<32} {value:>14}   {value / ops:10.2f}/op")


def _json(
    alloc: VmapAllocator,
    stage: Any,
    plan: Plan,
    built: BuildResult,
    problems: Sequence[Problem],
    name: str,
    nr_lines: int,
    build_metrics: dict[str, int],
    report: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stage": alloc.stage.key,
        "stage_source": stage.source,
        "components": {r: component_name(c) for r, c in alloc.components.items()},
        "file": name,
        "lines": nr_lines,
        "arch": plan.arch.name,
        "arch_reason": plan.arch_reason,
        "rebase": plan.rebase,
        "placed": dict(sorted(built.placed.items())),
        "skipped": [{"line": p.line, "reason": p.reason, "text": p.text} for p in problems],
        "notes": built.notes,
        "busy_areas": sum(1 for _ in alloc.busy_areas()),
        "lazy_areas": sum(1 for _ in alloc.lazy_areas()),
        "vmap_lazy_nr": alloc.vmap_lazy_nr,
        "build_metrics": build_metrics,
    }
    if report is not None:
        extra = getattr(report, "json_extra", None)
        out.update(
            {
                "workload": report.name,
                "params": report.params,
                "ops": report.ops,
                "elapsed_s": report.elapsed_s,
                **(extra() if callable(extra) else {}),
                "metrics": alloc.metrics.snapshot(),
            }
        )
    out["struct_vmap_area_size"] = alloc.struct_vmap_area_size
    out["log"] = alloc.log
    return out


# -- replay trace --------------------------------------------------------------------------
def cmd_trace(args: argparse.Namespace, hooks: dict[str, Any]) -> int:
    if args.divergences < 0:
        raise hooks["usage_error"]("--divergences: must be >= 0")
    text = read_text(args.file, _TRACE)
    parsed = parse_trace(text.lines)
    if not parsed.events:
        if parsed.vmallocinfo_like:
            raise _Stop(
                f"{text.name}: this looks like /proc/vmallocinfo, not a trace: use "
                f"`vmapsim replay vmallocinfo {args.file}`"
            )
        if parsed.other_events:
            raise _Stop(
                f"{text.name}: no vmalloc events among its {parsed.other_events} events: record "
                f"them with `trace-cmd record -e vmalloc` (or echo 1 > "
                f"/sys/kernel/tracing/events/vmalloc/enable)"
            )
        raise _Stop(
            f"{text.name}: not a trace: no line has the form TASK-PID [CPU] TIME: EVENT: ... "
            f"({parsed.problems[0] if parsed.problems else 'only headers'})"
        )
    _check_strict(parsed.problems, text.name, args.strict)
    try:
        spec = args.stage if args.stage is not None else resolve_stage(None).value
        selection = select_stages(spec, get_registry())
    except StageSelectionError as exc:
        raise hooks["usage_error"](str(exc)) from None
    arch, arch_reason, delta, rebase_reason = _trace_arch(args.arch, parsed.events)
    events = parsed.events
    if delta:
        lo = arch.vmalloc_start - delta
        events = rebase_events(events, delta, lo, arch.vmalloc_end - delta)
    nr_cpus, cpus_reason = _trace_cpus(args.nr_cpus, parsed)
    plan = None
    snap_problems: list[Problem] = []
    if args.snapshot is not None:
        plan, snap_problems, _name, _n = _snapshot_plan(
            args.snapshot, arch.name, args.strict, False, delta=delta
        )
        snap_problems = [*snap_problems, *plan.problems]
    results = []
    for st in selection.stages:
        alloc = _build(args, st.key, arch, nr_cpus, hooks["usage_error"])
        if plan is not None:
            rebuild(alloc, plan)
            alloc.metrics.reset()
        res = replay_trace(alloc, events, keep=args.divergences)
        results.append(res)
    problems = sorted([*parsed.problems, *results[0].problems], key=lambda p: p.line)
    status = EXIT_SKIPPED if problems or any(r.diverged for r in results) else EXIT_OK
    if args.json:
        print(
            json.dumps(
                {
                    "file": text.name,
                    "lines": parsed.nr_lines,
                    "events": len(parsed.events),
                    "other_events": parsed.other_events,
                    "arch": arch.name,
                    "arch_reason": arch_reason,
                    "rebase": delta,
                    "nr_cpus": nr_cpus,
                    "nr_cpus_reason": cpus_reason,
                    "skipped": [{"line": p.line, "reason": p.reason} for p in problems],
                    "snapshot_skipped": [str(p) for p in snap_problems],
                    "stages": [r.as_dict() for r in results],
                },
                indent=2,
            )
        )
        return status
    print(
        f"replayed {text.name}: {parsed.nr_lines} lines, {len(parsed.events)} vmalloc events "
        f"({parsed.other_events} other events skipped)"
    )
    print(f"arch {arch.name} ({arch_reason}); nr_cpus {nr_cpus} ({cpus_reason})")
    if delta:
        print(f"rebased by {delta:#x}: {rebase_reason}")
    if args.snapshot is not None:
        print(f"snapshot {args.snapshot}: rebuilt first ({len(snap_problems)} line(s) skipped)")
    _print_problems(problems, "skipped")
    for res in results:
        print()
        print(f"stage {res.stage}:")
        for line in res.lines():
            print(f"  {line}")
        for d in res.divergences[1:]:
            print(f"    then {d}")
        for note in res.notes:
            print(f"  note: {note}")
    return status


def _trace_arch(given: str | None, events: Sequence[Any]) -> tuple[Arch, str, int, str]:
    """The arch, why, and the shift of a KASLR kernel's window into the model's."""
    arches = [arch_by_name(given)] if given is not None else list(ARCHES.values())
    for arch in arches:
        window = trace_window(events, arch)
        if window is None:
            continue
        why = "given (--arch)" if given is not None else "inferred from the requests' window"
        delta = arch.vmalloc_start - window[0]
        if not delta:
            return arch, why, 0, ""
        return (
            arch,
            why,
            delta,
            (
                f"the requests' window [{window[0]:#x}, {window[1]:#x}] is the vmalloc window "
                f"moved by KASLR: addresses in it moved to the model's"
            ),
        )
    if given is not None:
        return arches[0], "given (--arch)", 0, ""
    return ARCHES["x86_64"], "default: no request uses a vmalloc window", 0, ""


def _trace_cpus(given: int | None, parsed: Any) -> tuple[int, str]:
    if given is not None:
        return given, "given (--nr-cpus)"
    if parsed.nr_cpus:
        return parsed.nr_cpus, "from the trace header"
    for e in parsed.events:
        if e.name == "free_vmap_area_noflush":
            n = nr_cpus_from_lazy_max(e.fields["nr_lazy_max"])
            if n:
                return n, f"the fewest with lazy_max_pages() = {e.fields['nr_lazy_max']}"
    return 1, "default"
