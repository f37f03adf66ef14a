"""A sweep's cell: one deterministic run, its key, the function that runs it, its rows.

A cell is a stage, a workload with its parameters, a seed, ``nr_cpus``, an
arch, a fault spec and component swaps.  :func:`run_cell` runs it the way
``vmapsim compare`` runs a stage (:func:`vmapsim.tools.compare.run_task`):
each selected subtest on a fresh allocator, in subtest order, so its
counters are those of ``compare`` and do not depend on where it runs.  It is
a top-level function taking and returning plain data (dicts, strings,
numbers), so a process pool or a Dask worker can run it.

The key (:func:`cell_key`) hashes the cell, the vmapsim version and the
stage's recipe (its components, features and ``struct vmap_area`` layout):
a finished cell is reused only by a sweep that would compute the same thing.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from vmapsim import __version__
from vmapsim.cost.counters import COUNTER_NAMES

__all__ = [
    "ROW_ID_COLUMNS",
    "WALL_COLUMNS",
    "Cell",
    "cell_key",
    "recipe",
    "recipe_digest",
    "run_cell",
]

#: the columns that say which cell and subtest a row is (the rest are results)
ROW_ID_COLUMNS = (
    "key",
    "vmapsim_version",
    "stage",
    "stage_number",
    "workload",
    "seed",
    "nr_cpus",
    "arch",
    "faults",
    "with",
    "run_test_mask",
)
#: the columns that are wall-clock time (differ from run to run; all else is deterministic)
WALL_COLUMNS = ("wall_s", "wall_us_per_loop")


def _plain_params(value: Any) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), v) for k, v in items))


@frozen
class Cell:
    """One run of a sweep, as plain values (what :func:`run_cell` receives)."""

    stage: str
    workload: str
    params: tuple[tuple[str, Any], ...] = field(converter=_plain_params)
    seed: int
    nr_cpus: int
    arch: str
    faults: str | None = None
    components: tuple[tuple[str, str], ...] = field(default=(), converter=_plain_params)

    def as_dict(self) -> dict[str, Any]:
        """The cell as a JSON-ready dict (what is submitted and stored)."""
        return {
            "stage": self.stage,
            "workload": self.workload,
            "params": dict(self.params),
            "seed": self.seed,
            "nr_cpus": self.nr_cpus,
            "arch": self.arch,
            "faults": self.faults,
            "components": dict(self.components),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        """The cell :meth:`as_dict` wrote."""
        return cls(
            stage=data["stage"],
            workload=data["workload"],
            params=data["params"],
            seed=data["seed"],
            nr_cpus=data["nr_cpus"],
            arch=data["arch"],
            faults=data.get("faults"),
            components=data.get("components") or {},
        )

    def label(self) -> str:
        """A short human description (progress lines, failure reports)."""
        bits = [self.stage, f"seed {self.seed}", f"nr_cpus {self.nr_cpus}", self.arch]
        bits += [
            f"{k}={v:#x}" if k == "run_test_mask" and isinstance(v, int) else f"{k}={v}"
            for k, v in self.params
        ]
        if self.faults:
            bits.append(f"faults {self.faults}")
        bits += [f"with {r}={n}" for r, n in self.components]
        return ", ".join(bits)


def recipe(stage_key: str) -> dict[str, Any]:
    """The stage's recipe as plain data: what the stage computes with."""
    from vmapsim.framework.registry import get_registry

    st = get_registry().stages[stage_key]
    return {
        "key": st.key,
        "title": st.title,
        "components": dict(sorted(st.components.items())),
        "features": {k: repr(v) for k, v in sorted(st.features.items())},
        "layout": repr(st.layout),
    }


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def recipe_digest(stage_key: str) -> str:
    """A hash of the stage's recipe (a worker's must match the sweep's)."""
    return _digest(recipe(stage_key))


def cell_key(cell: Cell, version: str = __version__) -> str:
    """The cell's key: ``<series>-<number>-seed<S>-<hash>``, the hash over the
    cell, the vmapsim version and the stage recipe."""
    h = _digest({"cell": cell.as_dict(), "vmapsim": version, "recipe": recipe(cell.stage)})
    return f"{cell.stage.replace(':', '-')}-seed{cell.seed}-{h[:16]}"


def run_cell(cell: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Run one cell (``Cell.as_dict()``); return its rows, one per subtest.

    Plain arguments in, plain data out: a process pool or a Dask worker runs
    it.  The result also says which vmapsim ran it (``vmapsim_version``,
    ``recipe_digest``), so the sweep can refuse a worker that runs another
    version."""
    from vmapsim.framework.registry import get_registry
    from vmapsim.tools.compare import run_task

    wl = get_registry().workload(cell["workload"])
    params = dict(cell["params"])
    split = getattr(wl.run, "split_params", None)
    parts = split(params) if callable(split) else [params]
    t0 = time.perf_counter()
    results = [
        run_task(
            {
                "stage": cell["stage"],
                "rep": 0,
                "part": i,
                "workload": cell["workload"],
                "params": part,
                "seed": cell["seed"],
                "nr_cpus": cell["nr_cpus"],
                "arch": cell["arch"],
                "components": dict(cell.get("components") or {}),
                "faults": cell.get("faults"),
            }
        )
        for i, part in enumerate(parts)
    ]
    wall = time.perf_counter() - t0
    mask = 0
    for part in parts:
        mask |= int(part.get("run_test_mask", 0))
    rows = [row for res in results for row in _rows(cell, key, res, mask)]
    return {
        "key": key,
        "vmapsim_version": __version__,
        "recipe_digest": recipe_digest(cell["stage"]),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "wall_s": wall,
        "rows": rows,
    }


def _result_word(t: Mapping[str, Any]) -> str:
    if t["failed"]:
        return "fail"
    if t["xfailed"]:
        return "xfail"
    return "pass"


def _rows(
    cell: Mapping[str, Any], key: str, res: Mapping[str, Any], mask: int
) -> list[dict[str, Any]]:
    """The rows of one ``run_task`` result: one per subtest it ran."""
    swaps = cell.get("components") or {}
    resolved = {
        k: v for k, v in res["report_params"].items() if k not in ("seed", "run_test_mask", "args")
    }
    out = []
    for name, t in res["per_test"].items():
        counters: Mapping[str, int] = t["counters"]
        ops = counters.get("alloc_calls", 0) + counters.get("free_calls", 0)
        loops = max(int(t["loops"]), 1)
        row: dict[str, Any] = {
            "key": key,
            "vmapsim_version": __version__,
            "stage": res["stage"],
            "stage_number": res["number"],
            "workload": cell["workload"],
            "seed": cell["seed"],
            "nr_cpus": cell["nr_cpus"],
            "arch": cell["arch"],
            "faults": cell.get("faults") or "",
            "with": ",".join(f"{r}={n}" for r, n in sorted(swaps.items())),
            "run_test_mask": mask,
            **{f"param.{k}": v for k, v in sorted(resolved.items())},
            "subtest": name,
            "result": _result_word(t),
            "passed": t["passed"],
            "failed": t["failed"],
            "xfailed": t["xfailed"],
            "runs": t["runs"],
            "loops": t["loops"],
            "ops": ops,
            "wall_s": t["time_s"],
            "wall_us_per_loop": t["time_s"] / loops * 1e6,
            "cycles": t["cycles"],
            "cycles_per_loop": t["cycles"] / loops,
            "log_messages": res["log_messages"],
            "log_warnings": res.get("log_warnings", 0),
            "faults_injected": res.get("faults_injected", 0),
            "struct_vmap_area_size": res["struct_vmap_area_size"],
            "peak_vmap_area_objects": t["peak_vmap_area_objects"],
            "peak_index_nodes": t["peak_index_nodes"],
        }
        names = [*COUNTER_NAMES, *sorted(k for k in counters if k not in COUNTER_NAMES)]
        for c in names:
            row[f"per_op.{c}"] = counters.get(c, 0) / ops if ops else 0.0
        out.append(row)
    return out
