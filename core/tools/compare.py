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

A workload whose report has ``per_test()`` (test_vmalloc) gives one table
per subtest; any other gives one table for the whole run.  The result is a
plain, JSON-ready dict (:func:`compare`); :mod:`vmapsim.tools.report` renders it.
"""

from __future__ import annotations

import os
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

from vmapsim.cost.counters import COUNTER_NAMES
from vmapsim.errors import UnknownStageError

if TYPE_CHECKING:
    from vmapsim.framework.registry import Registry
    from vmapsim.kernel.allocator import VmapAllocator

__all__ = [
    "MAPLE_NODE_BYTES",
    "PER_OP_COUNTERS",
    "compare",
    "memory_report",
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
    "augment_updates",
    "rotations",
    "stores",
    "node_allocs",
    "list_ops",
)

_RANGE = re.compile(r"^(?:(?P<series>[a-z0-9][a-z0-9_.-]*):)?(?P<lo>\d+)\.\.(?P<hi>\d+)$")


def memory_report(allocator: VmapAllocator) -> dict[str, int]:
    """What the allocator's index memory is now, from what it exposes.

    ``vmap_area_objects``: live ``struct vmap_area`` objects of
    ``vmap_area_cachep`` (busy, lazy, free blocks, pooled, preloaded), times
    the stage's struct size; ``index_nodes``: index nodes allocated and not
    freed (``node_allocs - node_frees``), 256 B each (a maple node), or at
    each component's declared ``node_size`` when the counters are split per
    component (``--per-component``).  Index nodes embedded
    in ``vmap_area`` (the rb-tree's ``rb_node``) are inside the struct bytes.
    """
    from vmapsim.framework.api import index_node_bytes

    m = allocator.metrics
    objects = allocator.va_cache.live
    nodes = m.node_allocs - m.node_frees
    size = allocator.struct_vmap_area_size
    # each component's nodes at its declared node_size when split per component
    node_bytes = index_node_bytes(allocator)
    return {
        "struct_vmap_area_size": size,
        "vmap_area_objects": objects,
        "vmap_area_bytes": objects * size,
        "index_nodes": nodes,
        "index_node_bytes": node_bytes,
        "total_bytes": objects * size + node_bytes,
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


def run_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """One (stage, repetition): build, run the workload, return its results.

    A top-level function, so worker processes can run it."""
    from vmapsim.framework.api import build, component_costs
    from vmapsim.framework.registry import get_registry

    reg = get_registry()
    per_component = bool(task.get("per_component", False))
    alloc = build(
        task["stage"],
        arch=task["arch"],
        nr_cpus=task["nr_cpus"],
        seed=task["seed"],
        components=task.get("components") or None,
        component_counters=per_component,
    )
    workload = reg.workload(task["workload"])
    report = workload.run(alloc, seed=task["seed"], **task["params"])
    metrics = alloc.metrics.snapshot()
    per_test_fn: Callable[[], dict[str, dict[str, Any]]] | None = getattr(report, "per_test", None)
    if per_test_fn is not None:
        per_test = per_test_fn()
    else:  # a workload without subtests: the whole run is one table
        mem = memory_report(alloc)
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
    return {
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
        "memory_end": memory_report(alloc),
        "log_messages": len(alloc.log),
        "elapsed_s": report.elapsed_s,
        "report_params": dict(report.params),
    }


def _component_name(comp: Any) -> str:
    """A role's component name as a stage writes it (``rb+maple`` for a pair)."""
    return "+".join(c.name for c in comp) if isinstance(comp, tuple) else comp.name


def _row(stage_runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
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
        "passed": t["passed"],
        "failed": t["failed"],
        "xfailed": t["xfailed"],
        "loops": t["loops"],
        "ops": ops,
        "ops_per_loop": ops / loops,
        "time_per_loop_us": {
            "median": statistics.median(times),
            "min": min(times),
            "max": max(times),
            "reps": times,
        },
        "cycles_per_loop": t["cycles"] / loops,
        "per_op": per_op,
        "counters": dict(counters),
        "memory": {
            "struct_vmap_area_size": size,
            "peak_vmap_area_objects": t["peak_vmap_area_objects"],
            "peak_vmap_area_bytes": t["peak_vmap_area_objects"] * size,
            "peak_index_nodes": t["peak_index_nodes"],
            "peak_index_node_bytes": t["peak_index_nodes"] * MAPLE_NODE_BYTES,
        },
    }


def _join_parts(
    raw: list[dict[str, Any]], nr_parts: int, join: Callable[..., dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """One result per (stage, repetition) from its parts (tasks come in part order)."""
    out = []
    for i in range(0, len(raw), nr_parts):
        group = raw[i : i + nr_parts]
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
            first["memory_end"] = group[-1]["memory_end"]
            if callable(join):
                first["report_params"] = join([g["report_params"] for g in group])
        out.append(first)
    return out


def speedup_pct(base: float, value: float) -> float | None:
    """The cover letter's "+N %": ``(base / value - 1) * 100`` for a time;
    positive = faster than ``base`` (better), negative = slower."""
    if value <= 0 or base <= 0:
        return None
    return (base / value - 1.0) * 100.0


def compare(
    stages: Sequence[str],
    *,
    workload: str = "test_vmalloc",
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    nr_cpus: int = 1,
    arch: str = "x86_64",
    reps: int = 1,
    jobs: int | None = None,
    components: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    progress: Callable[[int, int], None] | None = None,
    per_component: bool = False,
) -> dict[str, Any]:
    """Run ``workload`` on every stage ``reps`` times; return the comparison.

    ``per_component`` adds each stage's counters per component
    (``component_costs``, :func:`vmapsim.framework.api.component_costs`; the
    runs get slower, the totals do not change).

    ``jobs`` worker processes (default ``os.cpu_count()``; 1 runs in this
    process).  The result: the run's settings, the stages, and per subtest a
    row per stage with time per loop (median, min, max over repetitions, in
    µs of wall clock), the change in time versus the first stage
    (:func:`speedup_pct`), operations, counters per operation and memory
    peaks.  Counters are deterministic; a repetition that disagrees raises.
    """
    from vmapsim.framework.registry import get_registry

    if not isinstance(reps, int) or isinstance(reps, bool) or reps < 1:
        raise ValueError(f"reps: must be an int >= 1 (got {reps!r})")
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"jobs: must be an int >= 1 (got {jobs!r})")
    reg = registry or get_registry()
    keys = parse_stages(stages, reg)
    wl = reg.workload(workload)
    split = getattr(wl.run, "split_params", None)
    parts = split(dict(params or {})) if callable(split) else [dict(params or {})]
    if not parts:
        raise ValueError("params: the run selects no subtest")
    tasks = [
        {
            "stage": k,
            "rep": r,
            "part": i,
            "workload": workload,
            "params": part,
            "seed": seed,
            "nr_cpus": nr_cpus,
            "arch": arch,
            "components": dict(components or {}),
            "per_component": per_component,
        }
        for r in range(reps)
        for k in keys
        for i, part in enumerate(parts)
    ]
    n_jobs = min(jobs or os.cpu_count() or 1, len(tasks))
    raw: list[dict[str, Any]] = []
    if n_jobs <= 1 or registry is not None:
        for i, task in enumerate(tasks):
            raw.append(run_task(task))
            if progress:
                progress(i + 1, len(tasks))
    else:
        with ProcessPoolExecutor(max_workers=n_jobs) as pool:
            futures = [pool.submit(run_task, t) for t in tasks]
            for i, fut in enumerate(futures):
                raw.append(fut.result())
                if progress:
                    progress(i + 1, len(tasks))
    results = _join_parts(raw, len(parts), getattr(wl.run, "join_params", None))
    by_stage: dict[str, list[dict[str, Any]]] = {k: [] for k in keys}
    for res in results:
        by_stage[res["stage"]].append(res)
    test_names = list(by_stage[keys[0]][0]["per_test"])
    tables = []
    for name in test_names:
        rows = [_row(by_stage[k], name) for k in keys]
        base = rows[0]["time_per_loop_us"]["median"]
        for row in rows:
            row["change_pct"] = speedup_pct(base, row["time_per_loop_us"]["median"])
        tables.append({"test": name, "rows": rows})
    first = {k: by_stage[k][0] for k in keys}
    return {
        "workload": workload,
        "params": dict(params or {}),
        "report_params": first[keys[0]]["report_params"],
        "seed": seed,
        "nr_cpus": nr_cpus,
        "arch": arch,
        "reps": reps,
        "jobs": n_jobs,
        "stages": [
            {
                "key": k,
                "number": first[k]["number"],
                "title": first[k]["title"],
                "components": first[k]["components"],
                "struct_vmap_area_size": first[k]["struct_vmap_area_size"],
                "metrics": first[k]["metrics"],
                "component_costs": first[k]["component_costs"],
                "memory_end": first[k]["memory_end"],
                "log_messages": first[k]["log_messages"],
            }
            for k in keys
        ],
        "tests": tables,
        "counter_names": list(COUNTER_NAMES),
    }
