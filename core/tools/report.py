"""Rendering a comparison (:func:`vmapsim.tools.compare.compare`): terminal, Markdown,
JSON, CSV and a plot; and the progress bar the command line shows.

Every format is built from the same columns (:func:`columns`), so the
numbers agree between them: Markdown and the terminal print them rounded,
CSV and JSON keep them exact.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from attrs import frozen

__all__ = [
    "FORMATS",
    "Column",
    "LazyProgress",
    "columns",
    "plot",
    "render",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_summary",
    "to_terminal",
]

FORMATS = ("terminal", "markdown", "summary", "json", "csv")

#: short names for lock classes in column headers
_LOCK_SHORT = {
    "free_vmap_area_lock": "free_va_lock",
    "vmap_node.busy.lock": "busy.lock",
    "vmap_node.lazy.lock": "lazy.lock",
    "vmap_node.pool_lock": "pool_lock",
    "vmap_purge_lock": "purge_lock",
}
_PER_OP_HEADERS = {
    "walks": "walks/op",
    "nodes_visited": "nodes/op",
    "comparisons": "cmp/op",
    "cache_lines": "lines/op",
    "augment_updates": "augment/op",
    "rotations": "rot/op",
    "stores": "stores/op",
    "node_allocs": "node allocs/op",
    "list_ops": "list ops/op",
}


@frozen
class Column:
    """One column: a key (CSV header), a title, a getter and a formatter."""

    key: str
    title: str
    get: Callable[[dict[str, Any]], Any]
    fmt: Callable[[Any], str]


def _f(digits: int) -> Callable[[Any], str]:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:,.{digits}f}"

    return fmt


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:+.1f} %"


def _int(v: Any) -> str:
    return f"{v:,}"


def columns(table: dict[str, Any]) -> list[Column]:
    """The columns of one subtest's table (lock columns: every lock any stage took)."""
    rows = table["rows"]
    per_op_keys: list[str] = []
    for row in rows:
        for k in row["per_op"]:
            if k not in per_op_keys:
                per_op_keys.append(k)
    cols = [
        Column("stage", "stage", lambda r: r["stage"], str),
        Column(
            "result",
            "P/F/X",
            lambda r: f"{r['passed']}/{r['failed']}/{r['xfailed']}",
            str,
        ),
        Column(
            "time_per_loop_us",
            "µs/loop",
            lambda r: r["time_per_loop_us"]["median"],
            _f(3),
        ),
        Column(
            "time_spread_us",
            "spread µs",
            lambda r: r["time_per_loop_us"]["max"] - r["time_per_loop_us"]["min"],
            _f(3),
        ),
        Column("change_pct", "vs first", lambda r: r["change_pct"], _pct),
        Column("ops_per_loop", "ops/loop", lambda r: r["ops_per_loop"], _f(2)),
    ]
    for k in per_op_keys:
        if k.startswith("lock."):
            name = k[len("lock.") :]
            title = f"{_LOCK_SHORT.get(name, name)}/op"
        else:
            title = _PER_OP_HEADERS.get(k, f"{k}/op")
        cols.append(Column(f"per_op.{k}", title, lambda r, k=k: r["per_op"].get(k, 0.0), _f(2)))
    cols += [
        Column(
            "memory.struct_vmap_area_size",
            "va B",
            lambda r: r["memory"]["struct_vmap_area_size"],
            _int,
        ),
        Column(
            "memory.peak_vmap_area_bytes",
            "va bytes (peak)",
            lambda r: r["memory"]["peak_vmap_area_bytes"],
            _int,
        ),
        Column(
            "memory.peak_index_node_bytes",
            "index node bytes (peak)",
            lambda r: r["memory"]["peak_index_node_bytes"],
            _int,
        ),
    ]
    return cols


def _header(result: dict[str, Any]) -> str:
    stages = ", ".join(s["key"] for s in result["stages"])
    p = result.get("report_params") or result["params"]
    params = " ".join(f"{k}={v}" for k, v in p.items() if k != "seed")
    return (
        f"workload {result['workload']} on {stages}: {params}; seed {result['seed']}, "
        f"nr_cpus {result['nr_cpus']}, {result['arch']}, reps {result['reps']}"
    )


_LEGEND = (
    "µs/loop: wall clock per loop iteration, median over repetitions (spread: max - min); "
    "vs first: (t_first / t - 1) x 100, the cover letter's '+N %' — positive is faster "
    "than the first stage. Per-op counters are deterministic (per alloc_vmap_area() or "
    "vfree call). Memory: struct vmap_area objects at the subtest's peak x struct size; "
    "maple nodes at the peak x 256 B. See docs/cost-model.md."
)


def _metric_rows(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A subtest's table turned round: one row per column, one column per stage."""
    cols = columns(table)
    stages = [cols[0].get(r) for r in table["rows"]]
    body = [[c.title, *(c.fmt(c.get(r)) for r in table["rows"])] for c in cols[1:]]
    return stages, body


def to_markdown(result: dict[str, Any]) -> str:
    """One Markdown table per subtest: a row per metric, a column per stage."""
    out = [f"**{_header(result)}**", ""]
    for table in result["tests"]:
        stages, body = _metric_rows(table)
        out.append(f"### {table['test']}")
        out.append("")
        out.append("| metric | " + " | ".join(stages) + " |")
        out.append("|---|" + "---:|" * len(stages))
        for row in body:
            out.append("| " + " | ".join(row) + " |")
        out.append("")
    out.append(_LEGEND)
    return "\n".join(out) + "\n"


#: the columns of the one-table summary (by Column key; lock columns are summed)
_SUMMARY_KEYS = (
    "result",
    "time_per_loop_us",
    "change_pct",
    "per_op.nodes_visited",
    "per_op.cache_lines",
    "per_op.augment_updates",
    "per_op.node_allocs",
    "memory.struct_vmap_area_size",
    "memory.peak_vmap_area_bytes",
    "memory.peak_index_node_bytes",
)


def to_summary(result: dict[str, Any]) -> str:
    """One Markdown table: a row per (subtest, stage), the headline columns."""
    out = [f"**{_header(result)}**", ""]
    header: list[str] | None = None
    for table in result["tests"]:
        by_key = {c.key: c for c in columns(table)}
        cols = [by_key[k] for k in _SUMMARY_KEYS if k in by_key]
        if header is None:
            header = ["subtest", "stage", *(c.title for c in cols[:7]), "locks/op"]
            header += [c.title for c in cols[7:]]
            out.append("| " + " | ".join(header) + " |")
            out.append("|---|---|" + "---:|" * (len(header) - 2))
        for i, row in enumerate(table["rows"]):
            locks = sum(v for k, v in row["per_op"].items() if k.startswith("lock."))
            cells = [table["test"] if i == 0 else "", row["stage"]]
            cells += [c.fmt(c.get(row)) for c in cols[:7]]
            cells.append(f"{locks:.2f}")
            cells += [c.fmt(c.get(row)) for c in cols[7:]]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(_LEGEND)
    return "\n".join(out) + "\n"


def to_csv(result: dict[str, Any]) -> str:
    """One row per (subtest, stage), exact values; lock columns are the union."""
    keys: list[str] = ["test"]
    rows: list[dict[str, Any]] = []
    for table in result["tests"]:
        for col in columns(table):
            if col.key not in keys:
                keys.append(col.key)
    for table in result["tests"]:
        cols = columns(table)
        for row in table["rows"]:
            rec: dict[str, Any] = {"test": table["test"]}
            for col in cols:
                rec[col.key] = col.get(row)
            rows.append(rec)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, restval="", lineterminator="\n")
    w.writeheader()
    for rec in rows:
        w.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return buf.getvalue()


def to_json(result: dict[str, Any]) -> str:
    """The whole comparison, exact."""
    return json.dumps(result, indent=2) + "\n"


def to_terminal(result: dict[str, Any], *, file: Any = None) -> None:
    """rich tables, one per subtest: a row per metric, a column per stage."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=None if file is None else 160)
    console.print(_header(result))
    for table in result["tests"]:
        stages, body = _metric_rows(table)
        t = Table(title=table["test"], title_justify="left")
        t.add_column("metric", justify="left")
        for stage in stages:
            t.add_column(stage, justify="right")
        for row in body:
            t.add_row(*row)
        console.print(t)
    console.print(_LEGEND, style="dim")


def render(result: dict[str, Any], fmt: str) -> str:
    """The comparison as text in ``fmt`` (``terminal`` renders without colour)."""
    if fmt == "markdown":
        return to_markdown(result)
    if fmt == "summary":
        return to_summary(result)
    if fmt == "json":
        return to_json(result)
    if fmt == "csv":
        return to_csv(result)
    if fmt == "terminal":
        buf = io.StringIO()
        to_terminal(result, file=buf)
        return buf.getvalue()
    raise ValueError(f"format: must be one of {', '.join(FORMATS)} (got {fmt!r})")


#: what a plot shows, per subtest: (title, getter)
PLOT_METRICS: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = (
    ("µs/loop (wall clock)", lambda r: r["time_per_loop_us"]["median"]),
    ("nodes visited/op", lambda r: r["per_op"].get("nodes_visited", 0.0)),
    ("cache lines/op", lambda r: r["per_op"].get("cache_lines", 0.0)),
    ("augment updates/op", lambda r: r["per_op"].get("augment_updates", 0.0)),
    ("node allocs/op", lambda r: r["per_op"].get("node_allocs", 0.0)),
    (
        "lock acquisitions/op",
        lambda r: sum(v for k, v in r["per_op"].items() if k.startswith("lock.")),
    ),
)


def plot(result: dict[str, Any], path: str) -> None:
    """Grouped bars: one panel per metric, a group per subtest, a bar per stage.

    Needs matplotlib (``pip install 'vmapsim[plot]'``); uses the Agg backend.
    """
    if not str(path).lower().endswith((".png", ".svg")):
        raise ValueError(f"plot: the file must end in .png or .svg (got {path!r})")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "plot: matplotlib is not installed; install the 'plot' extra: "
            "pip install 'vmapsim[plot]'"
        ) from None
    tests = [t["test"] for t in result["tests"]]
    stages = [s["key"] for s in result["stages"]]
    n = len(PLOT_METRICS)
    fig, axes = plt.subplots(n, 1, figsize=(max(8, 1.1 * len(tests) + 3), 2.6 * n), sharex=True)
    width = 0.8 / max(len(stages), 1)
    for ax, (title, get) in zip(axes, PLOT_METRICS, strict=True):
        for si, stage in enumerate(stages):
            vals = [get(t["rows"][si]) for t in result["tests"]]
            xs = [i + (si - (len(stages) - 1) / 2) * width for i in range(len(tests))]
            ax.bar(xs, vals, width=width, label=stage)
        ax.set_ylabel(title, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8, ncols=min(len(stages), 6))
    axes[0].set_title(_header(result), fontsize=8)
    axes[-1].set_xticks(range(len(tests)))
    axes[-1].set_xticklabels([t.removesuffix("_test") for t in tests], rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


class LazyProgress:
    """A rich progress bar on stderr that appears only once a run has taken
    ``delay`` seconds, and never when stderr is not a terminal.

    Call it as ``progress(done, total)``; :meth:`close` removes it.
    """

    def __init__(self, description: str, *, delay: float = 2.0, stream: Any = None) -> None:
        self.description = description
        self.delay = delay
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._progress is None:
            if time.monotonic() - self.t0 < self.delay:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=total)
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
