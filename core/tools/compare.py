"""``vmapsim compare``: the same workload, parameters and seed on several stages.

Each (stage, repetition) is one task: build the stage's allocator, run the
workload, keep its per-subtest results.  A workload whose ``run`` callable
has a ``split_params(params) -> [params, …]`` attribute (test_vmalloc: one
part per selected subtest, each on a fresh allocator) is run as one task per
(stage, repetition, part), so the parts of one stage run in parallel too;
``run.join_params([report params, …])`` puts the parts' parameters back
together.  Tasks run in worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`); a task's counters depend
only on the stage, the workload, its parameters and the seed, so a parallel
run gives exactly the counters of a serial one (wall-clock times differ).

Columns: each token names a stage (``7``, ``maple:7``, a range, ``all``),
optionally with component swaps (``7+free=sorted+coalesce=generic``,
:func:`parse_columns`); naming a stage twice gives two columns.  A column
whose allocator cannot be built is skipped with the reason (as bisect skips).

Timing: the tasks of repetition *r* run in an order shuffled per repetition
(seeded), so no column keeps the same place in the worker pool's queue;
the default is 3 repetitions and the spread is the min-max range.  A first
SIGINT (Ctrl-C) stops the pool's workers (they ignore SIGINT themselves and
are terminated by the parent) and :class:`CompareInterrupted` carries what
finished, rows marked ``partial``.

A workload whose report has ``per_test()`` (test_vmalloc) gives one table
per subtest; any other gives one table for the whole run.  The result is a
plain, JSON-ready dict (:func:`compare`); :mod:`vmapsim.tools.report` renders it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attrs import frozen

from vmapsim.checking.debug_kernel import kernel_reports
from vmapsim.cost.counters import COUNTER_NAMES
from vmapsim.errors import UnknownStageError

if TYPE_CHECKING:
    from vmapsim.framework.registry import Registry
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "DEFAULT_REPS",
    "MAPLE_NODE_BYTES",
    "PER_OP_COUNTERS",
    "WARNING_PREFIXES",
    "ColumnSpec",
    "CompareInterrupted",
    "compare",
    "memory_report",
    "parse_columns",
    "parse_stages",
    "run_task",
    "speedup_pct",
]

#: a maple node's size (docs/metrics.md); the rb-tree's nodes live inside
#: ``struct vmap_area`` and cost no extra bytes
MAPLE_NODE_BYTES = 256
#: the counters the comparison divides by operations (plus every ``lock.*``)
PER_OP_COUNTERS: tuple[str, ...] = (
    "walks",
    "nodes_visited",
    "comparisons",
    "cache_lines",
    "lines_written",
    "line_accesses",
    "mem_misses",
    "coherence_transfers",
    "augment_updates",
    "rotations",
    "stores",
    "node_allocs",
    "list_ops",
)

#: log lines that are a WARN()/WARN_ON_ONCE() splat or a UBSAN report (counted
#: as the run's ``log_warnings``); other lines are printk()s such as warn_alloc()'s
WARNING_PREFIXES = ("WARNING:", "UBSAN:")
#: repetitions by default: enough for a min-max range a reader can weigh
DEFAULT_REPS = 3

_RANGE = re.compile(r"^(?:(?P<series>[a-z0-9][a-z0-9_.-]*):)?(?P<lo>\d+)\.\.(?P<hi>\d+)$")


def memory_report(allocator: VmapAllocator) -> dict[str, int]:
    """What the allocator's index memory is now, from what it exposes.

    ``vmap_area_objects``: live ``struct vmap_area`` objects of
    ``vmap_area_cachep`` (busy, lazy, free blocks, pooled, preloaded), times
    the stage's struct size; ``index_nodes``: maple nodes allocated and not
    freed (``node_allocs - node_frees``), 256 B each (a maple node), or at each
    component's declared ``node_size`` when the counters are split per component
    (``--per-component``); ``overlay_bytes``: what
    a per-CPU overlay holds itself (chunk headers and back-pointer arrays,
    its ``memory_bytes()``), 0 without one.  Index nodes embedded
    in ``vmap_area`` (the rb-tree's ``rb_node``) are inside the struct bytes.
    """
    from vmapsim.framework.api import index_node_bytes

    m = allocator.metrics
    objects = allocator.va_cache.live
    nodes = m.node_allocs - m.node_frees
    size = allocator.struct_vmap_area_size
    overlay = getattr(allocator, "overlay", None)
    overlay_fn = getattr(overlay, "memory_bytes", None)
    overlay_bytes = int(overlay_fn()) if callable(overlay_fn) else 0
    # each component's nodes at its declared node_size when split per component
    node_bytes = index_node_bytes(allocator)
    return {
        "struct_vmap_area_size": size,
        "vmap_area_objects": objects,
        "vmap_area_bytes": objects * size,
        "index_nodes": nodes,
        "index_node_bytes": node_bytes,
        "overlay_bytes": overlay_bytes,
        "total_bytes": objects * size + node_bytes + overlay_bytes,
    }


def parse_stages(tokens: Sequence[str], registry: Registry) -> list[str]:
    """Stage keys for ``A B …``, ``all`` and ranges ``A..B`` (inclusive).

    A range keeps the stages that exist in it (``0..12`` with only stage 0
    registered is ``[maple:0]``) and must hold at least one.  Duplicates are
    dropped; order is kept.
    """
    keys: list[str] = []
    registered = registry.stage_keys()
    for tok in tokens:
        tok = str(tok).strip()
        if tok == "all":
            found = list(registered)
        elif m := _RANGE.match(tok):
            lo, hi = int(m["lo"]), int(m["hi"])
            if lo > hi:
                raise UnknownStageError(f"stages: range {tok!r} runs backwards")
            series = m["series"] or None
            found = [
                k
                for k in registered
                if lo <= registry.stages[k].number <= hi
                and (series is None or registry.stages[k].series == series)
            ]
            if series is None:
                default = registry.stage(lo).series if found else None
                found = [k for k in found if registry.stages[k].series == default]
            if not found:
                raise UnknownStageError(f"stages: no registered stage in {tok!r}")
        else:
            found = [registry.stage(tok).key]
        for k in found:
            if k not in keys:
                keys.append(k)
    if not keys:
        raise UnknownStageError("stages: name at least one stage")
    return keys


@frozen
class ColumnSpec:
    """One column of a comparison: a stage, the component swaps on it, its label."""

    key: str
    swaps: Mapping[str, str]
    label: str


def stage_label(registry: Registry, key: str) -> str:
    """How a column names its stage: the number for the default series, and
    stage 0 as what it is (``0 upstream rb-tree``), not ``maple:0``."""
    st = registry.stages[key]
    text = str(st.number) if st.series == "maple" else key
    if st.number == 0:
        free = st.components.get("free", "")
        what = "rb-tree" if free == "rb" else (free or "baseline")
        text += f" upstream {what}"
    return text


def parse_columns(tokens: Sequence[str], registry: Registry) -> list[ColumnSpec]:
    """The columns ``tokens`` name: each ``STAGES[+ROLE=NAME…]``.

    ``STAGES`` is what :func:`parse_stages` takes (one stage, a range or
    ``all``); each ``+ROLE=NAME`` swaps that role's component in those
    columns (``7+free=sorted+coalesce=generic``).  Tokens are not merged:
    ``0 0`` is two columns (labelled ``0`` and ``0 #2``), so a plugin can
    stand beside the built-in it replaces.
    """
    from vmapsim.framework.roles import ROLES

    out: list[ColumnSpec] = []
    seen: dict[str, int] = {}
    for tok in tokens:
        stage_part, *swap_parts = str(tok).strip().split("+")
        swaps: dict[str, str] = {}
        for item in swap_parts:
            role, sep, name = item.partition("=")
            if not sep or not role or not name:
                raise UnknownStageError(
                    f"column {tok!r}: {item!r} is not ROLE=NAME (roles: {', '.join(ROLES)})"
                )
            if role not in ROLES:
                raise UnknownStageError(
                    f"column {tok!r}: unknown role {role!r} (roles: {', '.join(ROLES)})"
                )
            swaps[role] = name
        for key in parse_stages([stage_part], registry):
            label = stage_label(registry, key)
            if swaps:
                label += "+" + "+".join(f"{r}={n}" for r, n in swaps.items())
            seen[label] = seen.get(label, 0) + 1
            if seen[label] > 1:
                label = f"{label} #{seen[label]}"
            out.append(ColumnSpec(key, swaps, label))
    if not out:
        raise UnknownStageError("stages: name at least one stage")
    return out


def check_roles(
    stage_components: Mapping[str, str],
    components: Mapping[str, Any],
    registry: Registry | None = None,
) -> None:
    """Refuse a set of swaps that names an unregistered component (with
    ``registry``) or leaves a role the flow needs unfilled, saying which role
    and what fills it (a ``free`` index needs a ``coalesce``r)."""
    from vmapsim.framework.roles import ROLES

    if registry is not None:
        for role, name in components.items():
            if isinstance(name, str) and role in ROLES:  # build() names a bad role
                for part in name.split("+"):
                    registry.offer(role, part)
    chosen = dict(stage_components)
    for role, name in components.items():
        if name is None:
            chosen.pop(role, None)
        else:
            chosen[role] = name
    if "free" in chosen and "coalesce" not in chosen:
        raise ValueError(
            f"role 'coalesce' is missing: free={chosen['free']} needs a coalescer, and this "
            "stage has none (its free space is the occupied tree's gaps); add "
            "--with coalesce=generic (the coalescer that works over any free index), "
            "or ROLE=NAME swaps +coalesce=generic in a compare column"
        )


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """One (column, repetition, part): build, run the workload, return its results.

    ``task`` holds plain values only (stage, rep, part, workload, params, seed,
    nr_cpus, arch, components, and optionally ``faults``, a ``--faults`` spec).

    A top-level function, so worker processes can run it."""
    from vmapsim.framework.api import build, component_costs
    from vmapsim.framework.registry import get_registry

    reg = get_registry()
    failslab = None
    if task.get("faults"):
        from vmapsim.checking.faultspec import parse_faults

        failslab = parse_faults(task["faults"], seed=task["seed"])
    per_component = bool(task.get("per_component", False))
    alloc = build(
        task["stage"],
        arch=task["arch"],
        nr_cpus=task["nr_cpus"],
        seed=task["seed"],
        debug=bool(task.get("debug", False)),
        components=task.get("components") or None,
        failslab=failslab,
        component_counters=per_component,
        cache_model=bool(task.get("cache_model", False)),
        lock_sections=bool(task.get("lock_sections", True)),
        debug_kernel=bool(task.get("debug_kernel", False)),
    )
    if task.get("debug") and task.get("debug_full_every"):
        alloc.debug_full_every = task["debug_full_every"]
    workload = reg.workload(task["workload"])
    report = workload.run(alloc, seed=task["seed"], **task["params"])
    metrics = alloc.metrics.snapshot()
    mem = memory_report(alloc)
    per_test_fn: Callable[[], dict[str, dict[str, Any]]] | None = getattr(report, "per_test", None)
    if per_test_fn is not None:
        per_test = per_test_fn()
    else:  # a workload without subtests: the whole run is one table
        per_test = {
            report.name: {
                "passed": 0,
                "failed": 0,
                "xfailed": 0,
                "runs": 1,
                "loops": max(metrics.get("alloc_calls", 0), 1),
                "time_s": report.elapsed_s,
                "counters": {k: v for k, v in metrics.items() if v},
                "peak_vmap_area_objects": mem["vmap_area_objects"],
                "peak_index_nodes": mem["index_nodes"],
                "cycles": 0,
            }
        }
    if len(per_test) == 1:  # a part is one subtest on a fresh allocator
        for t in per_test.values():
            t["overlay_bytes_end"] = mem["overlay_bytes"]
    return {
        "column": task.get("column", 0),
        "stage": alloc.stage.key,
        "rep": task["rep"],
        "part": task.get("part", 0),
        "struct_vmap_area_size": alloc.struct_vmap_area_size,
        "components": {r: _component_name(c) for r, c in sorted(alloc.components.items())},
        "title": alloc.stage.title,
        "number": alloc.stage.number,
        "per_test": per_test,
        "metrics": metrics,
        "component_costs": component_costs(alloc) if per_component else {},
        "memory_end": mem,
        "log_messages": len(alloc.log),
        "log_warnings": sum(1 for line in alloc.log if line.startswith(WARNING_PREFIXES)),
        "kernel_reports": kernel_reports(alloc.log),
        "faults_injected": alloc.faults.failures,
        "elapsed_s": report.elapsed_s,
        "report_params": dict(report.params),
    }


def _component_name(comp: Any) -> str:
    """A role's component name as a stage writes it (``rb+maple`` for a pair)."""
    return "+".join(c.name for c in comp) if isinstance(comp, tuple) else comp.name


def _time_stats(times: list[float]) -> dict[str, Any]:
    """Median, range and (from 4 repetitions) the interquartile range of ``times``."""
    out: dict[str, Any] = {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "reps": times,
    }
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4, method="inclusive")
        out["q1"], out["q3"] = q[0], q[2]
    return out


def _row(
    stage_runs: list[dict[str, Any]], name: str, spec: ColumnSpec, reps: int
) -> dict[str, Any]:
    first = stage_runs[0]
    t = first["per_test"][name]
    size = first["struct_vmap_area_size"]
    counters: dict[str, int] = t["counters"]
    for other in stage_runs[1:]:  # counters are deterministic: every repetition agrees
        if other["per_test"][name]["counters"] != counters:
            raise AssertionError(
                f"{first['stage']} {name}: counters differ between repetitions "
                "(the model is not deterministic)"
            )
    ops = counters.get("alloc_calls", 0) + counters.get("free_calls", 0)
    loops = max(t["loops"], 1)
    per_op = {
        k: counters.get(k, 0) / ops if ops else 0.0
        for k in (*PER_OP_COUNTERS, *sorted(k for k in counters if k.startswith("lock.")))
    }
    times = [r["per_test"][name]["time_s"] / loops * 1e6 for r in stage_runs]
    return {
        "stage": first["stage"],
        "label": spec.label,
        "swaps": dict(spec.swaps),
        "components": first["components"],
        "partial": len(stage_runs) < reps,
        "reps_done": len(stage_runs),
        "passed": t["passed"],
        "failed": t["failed"],
        "xfailed": t["xfailed"],
        "loops": t["loops"],
        "ops": ops,
        "ops_per_loop": ops / loops,
        "time_per_loop_us": _time_stats(times),
        "cycles_per_loop": t["cycles"] / loops,
        "per_op": per_op,
        "lock_sections": _sections_row(t.get("lock_sections"), ops),
        "counters": dict(counters),
        "memory": {
            "struct_vmap_area_size": size,
            "peak_vmap_area_objects": t["peak_vmap_area_objects"],
            "peak_vmap_area_bytes": t["peak_vmap_area_objects"] * size,
            "peak_index_nodes": t["peak_index_nodes"],
            "peak_index_node_bytes": t["peak_index_nodes"] * MAPLE_NODE_BYTES,
            "overlay_bytes_end": t.get("overlay_bytes_end", 0),
        },
    }


def _sections_row(sections: dict[str, Any] | None, ops: int) -> dict[str, Any]:
    """A subtest's lock sections for a comparison row: per lock class the
    acquisitions per operation, the mean work per section and the
    distinct-lines quantiles; the work outside locks per operation."""
    if not sections:
        return {}
    out: dict[str, Any] = {}
    for name, d in sections["locks"].items():
        out[name] = {
            "kind": d["kind"],
            "per_op": d["acquisitions"] / ops if ops else 0.0,
            "mean": d["mean"],
            "lines_p50": d["lines_p50"],
            "lines_p90": d["lines_p90"],
            "lines_max": d["lines_max"],
            "instances": len(d.get("instances", {})),
        }
    total = sections["outside"]["total"]
    out["outside"] = {
        "kind": "outside",
        "per_op": {k: (v / ops if ops else 0.0) for k, v in total.items()},
    }
    return out


def _split_memory(rows: list[dict[str, Any]]) -> None:
    """Split each row's change in ``va bytes (peak)`` against the first row into
    the struct shrink (the first row's objects at this row's struct size) and
    the change in live areas (more or fewer objects, lazily freed ones among
    them, at this row's size): ``Δ = shrink + areas``."""
    base = rows[0]["memory"]
    for row in rows:
        m = row["memory"]
        shrink = base["peak_vmap_area_objects"] * (
            m["struct_vmap_area_size"] - base["struct_vmap_area_size"]
        )
        areas = (m["peak_vmap_area_objects"] - base["peak_vmap_area_objects"]) * m[
            "struct_vmap_area_size"
        ]
        m["delta_bytes_struct_shrink"] = shrink
        m["delta_bytes_areas"] = areas


def speedup_pct(base: float, value: float) -> float | None:
    """The cover letter's "+N %": ``(base / value - 1) * 100`` for a time;
    positive = faster than ``base`` (better), negative = slower."""
    if value <= 0 or base <= 0:
        return None
    return (base / value - 1.0) * 100.0


def within_spread(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Whether two time stats' ranges (min-max) overlap: a difference between
    their medians is then within the noise.  None with a single repetition."""
    if len(a["reps"]) < 2 or len(b["reps"]) < 2:
        return None
    return a["min"] <= b["max"] and b["min"] <= a["max"]


class CompareInterrupted(Exception):
    """SIGINT during :func:`compare`; ``result`` holds what finished (rows
    whose repetitions did not all finish are marked ``partial``), or None."""

    def __init__(self, result: dict[str, Any] | None, done: int, total: int) -> None:
        super().__init__(f"interrupted after {done} of {total} runs")
        self.result = result
        self.done = done
        self.total = total


def _ignore_sigint() -> None:
    """Worker initializer: the parent alone handles SIGINT (a terminal's
    Ctrl-C reaches the whole process group) and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_indexed(item: tuple[int, Mapping[str, Any]]) -> tuple[int, dict[str, Any]]:
    return item[0], run_task(item[1])


def _execute(
    tasks: list[dict[str, Any]],
    n_jobs: int,
    serial: bool,
    progress: Callable[..., None] | None,
) -> tuple[dict[int, dict[str, Any]], bool]:
    """Run the tasks; return {task index: result} and whether SIGINT stopped them."""
    done: dict[int, dict[str, Any]] = {}

    def tick(i: int) -> None:
        if progress:
            t = tasks[i]
            progress(len(done), len(tasks), f"{t['label']} {t['what']} rep {t['rep'] + 1}")

    if serial:
        try:
            for i, task in enumerate(tasks):
                done[i] = run_task(task)
                tick(i)
        except KeyboardInterrupt:
            return done, True
        return done, False
    import multiprocessing

    # a SIGINT while the pool starts its workers is held until the pool exists,
    # so that it can stop every worker it started (none is orphaned)
    held: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda sig, _frame: held.append(sig))
    except ValueError:  # pragma: no cover - not the main thread
        previous = None
    try:
        pool = multiprocessing.get_context().Pool(n_jobs, initializer=_ignore_sigint)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    interrupted = False
    try:
        if held:
            raise KeyboardInterrupt
        for i, res in pool.imap_unordered(_run_indexed, list(enumerate(tasks)), chunksize=1):
            done[i] = res
            tick(i)
    except KeyboardInterrupt:
        from vmapsim.tools.interrupt import exit_on_next_sigint

        exit_on_next_sigint()  # a second Ctrl-C while the workers stop: out at once
        interrupted = True
        pool.terminate()
    else:
        pool.close()
    finally:
        pool.join()
    return done, interrupted


def compare(
    stages: Sequence[str],
    *,
    workload: str = "test_vmalloc",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    nr_cpus: int = 1,
    arch: str = "x86_64",
    reps: int = DEFAULT_REPS,
    jobs: int | None = None,
    components: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    progress: Callable[..., None] | None = None,
    faults: str | None = None,
    debug: bool = False,
    debug_full_every: int | None = None,
    per_component: bool = False,
    cache_model: bool = False,
    debug_kernel: bool = False,
) -> dict[str, Any]:
    """Run ``workload`` on every column ``reps`` times; return the comparison.

    ``stages`` are column tokens (:func:`parse_columns`); ``components`` are
    swaps for every column (``--with``), a column's own swaps win.

    ``per_component`` adds each stage's counters per component
    (``component_costs``, :func:`vmapsim.framework.api.component_costs`; the
    runs get slower, the totals do not change).

    ``jobs`` worker processes (default ``os.cpu_count()``; 1 runs in this
    process).  ``faults`` is a ``--faults`` spec applied to every run;
    ``debug`` checks invariants as ``vmapsim run --debug`` does (the full
    check every ``debug_full_every`` operations; None: after every one);
    ``debug_kernel`` runs each as a debug kernel (lockdep, might_sleep: each
    column's ``kernel_reports`` lists the reports' first lines).  The result:
    the run's settings, the columns, the columns skipped (and why), and per
    subtest a row per column with time per loop of the simulator's wall
    clock (median, min, max over repetitions, in µs), the modelled cycles
    per loop and the change versus the first column (:func:`speedup_pct`),
    operations, counters per operation and memory peaks.  Counters are
    deterministic; a repetition that disagrees raises.  ``progress(done,
    total, what)`` is called after each finished run.  A SIGINT raises
    :class:`CompareInterrupted` carrying what finished.
    """
    from vmapsim.framework.api import build
    from vmapsim.framework.registry import get_registry

    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 1:
        raise ValueError(f"reps: must be an int >= 1 (got {reps!r})")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"jobs: must be an int >= 1 (got {jobs!r})")
    reg = registry or get_registry()
    specs = parse_columns(stages, reg)
    wl = reg.workload(workload)
    split = getattr(wl.run, "split_params", None)
    parts = split(dict(params or {})) if callable(split) else [dict(params or {})]
    if not parts:
        raise ValueError("params: the run selects no subtest")
    if faults:
        from vmapsim.checking.faultspec import parse_faults

        parse_faults(faults, seed=seed)  # a bad spec is refused before anything runs
    # a column whose allocator cannot be built is skipped, with the reason
    columns: list[tuple[int, ColumnSpec, dict[str, str]]] = []
    skipped: list[dict[str, str]] = []
    for spec in specs:
        comps = {**dict(components or {}), **dict(spec.swaps)}
        try:
            check_roles(reg.stages[spec.key].components, comps, reg)
            build(
                spec.key,
                arch=arch,
                nr_cpus=nr_cpus,
                seed=seed,
                components=comps or None,
                registry=registry,
            )
        except Exception as exc:
            reason = exc.args[0] if isinstance(exc, LookupError) and exc.args else str(exc)
            skipped.append({"column": spec.label, "stage": spec.key, "reason": str(reason)})
            continue
        columns.append((len(columns), spec, comps))
    if not columns:
        raise ValueError(
            "compare: no column can be built: "
            + "; ".join(f"{s['column']}: {s['reason']}" for s in skipped)
        )
    # interleaved: each repetition runs its (column, part) pairs in a seeded order
    # of its own, so no column sits at the same queue position every time
    tasks: list[dict[str, Any]] = []
    for r in range(reps):
        order = [(c, i) for c in range(len(columns)) for i in range(len(parts))]
        random.Random(f"compare:{seed}:{r}").shuffle(order)
        for c, i in order:
            idx, spec, comps = columns[c]
            tasks.append(
                {
                    "column": idx,
                    "label": spec.label,
                    "what": _part_name(parts[i], i),
                    "stage": spec.key,
                    "rep": r,
                    "part": i,
                    "workload": workload,
                    "params": parts[i],
                    "seed": seed,
                    "nr_cpus": nr_cpus,
                    "arch": arch,
                    "components": comps,
                    "faults": faults,
                    "debug": debug,
                    "debug_full_every": debug_full_every,
                    "per_component": per_component,
                    "cache_model": cache_model,
                    "debug_kernel": debug_kernel,
                }
            )
    n_jobs = min(jobs or os.cpu_count() or 1, len(tasks))
    done, interrupted = _execute(tasks, n_jobs, n_jobs <= 1 or registry is not None, progress)
    result = _assemble(
        tasks,
        done,
        columns,
        len(parts),
        wl,
        reps,
        skipped,
        settings={
            "workload": workload,
            "params": dict(params or {}),
            "seed": seed,
            "nr_cpus": nr_cpus,
            "arch": arch,
            "reps": reps,
            "jobs": n_jobs,
            "faults": faults,
            "debug": debug,
            "cache_model": cache_model,
            "debug_kernel": debug_kernel,
        },
    )
    if interrupted:
        raise CompareInterrupted(result, len(done), len(tasks))
    return result


def _part_name(part: Mapping[str, Any], i: int) -> str:
    mask = part.get("run_test_mask")
    return f"mask {mask:#x}" if isinstance(mask, int) else f"part {i}"


def _assemble(
    tasks: list[dict[str, Any]],
    done: dict[int, dict[str, Any]],
    columns: list[tuple[int, ColumnSpec, dict[str, str]]],
    nr_parts: int,
    wl: Any,
    reps: int,
    skipped: list[dict[str, str]],
    settings: dict[str, Any],
) -> dict[str, Any] | None:
    """The comparison from the finished tasks (all of them, or what finished
    before a SIGINT: a subtest with no finished run on a column has no row
    for it, one with fewer repetitions than asked is ``partial``)."""
    # (column, rep) -> {part: result}
    groups: dict[tuple[int, int], dict[int, dict[str, Any]]] = {}
    for i, res in done.items():
        t = tasks[i]
        groups.setdefault((t["column"], t["rep"]), {})[t["part"]] = res
    if not groups:
        return None
    join = getattr(wl.run, "join_params", None)
    by_col: dict[int, list[dict[str, Any]]] = {idx: [] for idx, _s, _c in columns}
    for (col, _rep), got in sorted(groups.items()):
        ordered = [got[p] for p in sorted(got)]
        by_col[col].append(_join(ordered, nr_parts, join))
    specs = {idx: spec for idx, spec, _c in columns}
    test_names: list[str] = []
    for idx in by_col:
        for res in by_col[idx]:
            for name in res["per_test"]:
                if name not in test_names:
                    test_names.append(name)
    order = {n: i for i, n in enumerate(_canonical_order(by_col))}
    test_names.sort(key=lambda n: order.get(n, len(order)))
    tables = []
    for name in test_names:
        rows = []
        for idx in by_col:
            runs = [r for r in by_col[idx] if name in r["per_test"]]
            if runs:
                rows.append(_row(runs, name, specs[idx], reps))
        if not rows:
            continue
        base = rows[0]
        for row in rows:
            row["change_pct"] = speedup_pct(base["cycles_per_loop"], row["cycles_per_loop"])
            row["sim_change_pct"] = speedup_pct(
                base["time_per_loop_us"]["median"], row["time_per_loop_us"]["median"]
            )
            row["base"] = row is base
            row["within_spread"] = (
                None
                if row is base
                else within_spread(base["time_per_loop_us"], row["time_per_loop_us"])
            )
        _split_memory(rows)
        tables.append({"test": name, "rows": rows, "partial": any(r["partial"] for r in rows)})
    firsts = {idx: runs[0] for idx, runs in by_col.items() if runs}
    first_any = next(iter(firsts.values()))
    return {
        **settings,
        "report_params": first_any["report_params"],
        "partial": len(done) < len(tasks),
        "runs_done": len(done),
        "runs_total": len(tasks),
        "stages": [
            {
                "key": firsts[idx]["stage"],
                "label": specs[idx].label,
                "swaps": dict(specs[idx].swaps),
                "number": firsts[idx]["number"],
                "title": firsts[idx]["title"],
                "components": firsts[idx]["components"],
                "struct_vmap_area_size": firsts[idx]["struct_vmap_area_size"],
                "metrics": firsts[idx]["metrics"],
                "memory_end": firsts[idx]["memory_end"],
                "log_messages": firsts[idx]["log_messages"],
                "kernel_reports": firsts[idx].get("kernel_reports", []),
                "component_costs": firsts[idx]["component_costs"],
            }
            for idx in by_col
            if idx in firsts
        ],
        "skipped": skipped,
        "tests": tables,
        "counter_names": list(COUNTER_NAMES),
    }


def _canonical_order(by_col: Mapping[int, list[dict[str, Any]]]) -> list[str]:
    """Subtest names in the order a complete run lists them (the part order)."""
    best: list[str] = []
    for runs in by_col.values():
        for r in runs:
            names = list(r["per_test"])
            if len(names) > len(best):
                best = names
    return best


def _join(
    group: list[dict[str, Any]], nr_parts: int, join: Callable[..., dict[str, Any]] | None
) -> dict[str, Any]:
    """One result per (column, repetition) from its parts (in part order)."""
    first = dict(group[0])
    if nr_parts > 1:
        first["per_test"] = {k: v for g in group for k, v in g["per_test"].items()}
        metrics: dict[str, int] = {}
        for g in group:
            for k, v in g["metrics"].items():
                metrics[k] = metrics.get(k, 0) + v
        first["metrics"] = metrics
        first["elapsed_s"] = sum(g["elapsed_s"] for g in group)
        first["log_messages"] = sum(g["log_messages"] for g in group)
        first["kernel_reports"] = [r for g in group for r in g.get("kernel_reports", [])]
        first["memory_end"] = group[-1]["memory_end"]
        if first.get("component_costs"):
            costs: dict[str, dict[str, Any]] = {}
            for g in group:  # each part's counters per component, added up
                for label, cost in g.get("component_costs", {}).items():
                    into = costs.setdefault(label, {**cost, "counters": {}})
                    for k, v in cost["counters"].items():
                        into["counters"][k] = into["counters"].get(k, 0) + v
            first["component_costs"] = costs
        if callable(join):
            first["report_params"] = join([g["report_params"] for g in group])
    return first
