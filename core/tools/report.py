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
    "allocator_lines",
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
    "lines_written": "lines written/op",
    "line_accesses": "line accesses/op",
    "mem_misses": "mem misses/op",
    "coherence_transfers": "transfers/op",
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


def _sint(v: Any) -> str:
    return "-" if v is None else f"{v:+,}"


def _label(r: dict[str, Any]) -> str:
    """A row's column label, marked when not every repetition finished."""
    label = r.get("label") or r["stage"]
    if r.get("partial"):
        label += f" (partial: {r.get('reps_done', 0)} rep)"
    return label


def _range(r: dict[str, Any]) -> str:
    """The simulator's time range over repetitions; a single one has none."""
    t = r["time_per_loop_us"]
    if len(t["reps"]) < 2:
        return "1 rep: none"
    return f"{t['min']:,.3f}-{t['max']:,.3f}"


def _sim_change(r: dict[str, Any]) -> str:
    """The simulator's change vs the first column, ``~`` when within the spread."""
    v = r.get("sim_change_pct")
    if v is None:
        return "-"
    mark = "" if r.get("base") else {True: " ~", None: " ?"}.get(r.get("within_spread"), "")
    return f"{v:+.1f} %{mark}"


def columns(table: dict[str, Any]) -> list[Column]:
    """The columns of one subtest's table (lock columns: every lock any stage took)."""
    rows = table["rows"]
    per_op_keys: list[str] = []
    for row in rows:
        for k in row["per_op"]:
            if k not in per_op_keys:
                per_op_keys.append(k)
    cols = [
        Column("column", "stage", _label, str),
        Column(
            "result",
            "P/F/X",
            lambda r: f"{r['passed']}/{r['failed']}/{r['xfailed']}",
            str,
        ),
        Column("cycles_per_loop", "model cycles/loop", lambda r: r["cycles_per_loop"], _f(0)),
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
    cols += _section_columns(rows)
    cols += [
        Column(
            "memory.struct_vmap_area_size",
            "va B",
            lambda r: r["memory"]["struct_vmap_area_size"],
            _int,
        ),
        Column(
            "memory.peak_vmap_area_objects",
            "va objects (peak)",
            lambda r: r["memory"]["peak_vmap_area_objects"],
            _int,
        ),
        Column(
            "memory.peak_vmap_area_bytes",
            "va bytes (peak)",
            lambda r: r["memory"]["peak_vmap_area_bytes"],
            _int,
        ),
        Column(
            "memory.delta_bytes_struct_shrink",
            "Δ va bytes: struct size",
            lambda r: r["memory"].get("delta_bytes_struct_shrink"),
            _sint,
        ),
        Column(
            "memory.delta_bytes_areas",
            "Δ va bytes: areas",
            lambda r: r["memory"].get("delta_bytes_areas"),
            _sint,
        ),
        Column(
            "memory.peak_index_node_bytes",
            "index node bytes (peak)",
            lambda r: r["memory"]["peak_index_node_bytes"],
            _int,
        ),
        Column(
            "memory.overlay_bytes_end",
            "overlay bytes (end)",
            lambda r: r["memory"].get("overlay_bytes_end", 0),
            _int,
        ),
        # the simulator's own clock, last: Python's time, not the kernel's
        Column(
            "time_per_loop_us",
            "sim µs/loop",
            lambda r: r["time_per_loop_us"]["median"],
            _f(3),
        ),
        Column("time_range_us", "sim range µs", _range, str),
        Column("sim_change_pct", "sim vs first", _sim_change, str),
    ]
    return cols


def _section_columns(rows: list[dict[str, Any]]) -> list[Column]:
    """Lock-section columns: per lock class (in any row) the distinct lines
    per section (mean, and the p90 bucket bound), nodes per section, and,
    with the cache model on, misses and transfers per section; then the
    lines per operation outside any lock."""
    names: list[str] = []
    cache_on = False
    for row in rows:
        for k, v in row.get("lock_sections", {}).items():
            if k != "outside" and k not in names:
                names.append(k)
            if k != "outside" and (
                v["mean"].get("mem_misses") or v["mean"].get("coherence_transfers")
            ):
                cache_on = True
    cols: list[Column] = []

    def sec(r: dict[str, Any], name: str) -> dict[str, Any] | None:
        return r.get("lock_sections", {}).get(name)

    for name in names:
        short = _LOCK_SHORT.get(name, name)
        cols.append(
            Column(
                f"sections.{name}.lines",
                f"{short}: lines/section",
                lambda r, n=name: (sec(r, n) or {}).get("mean", {}).get("lines"),
                _opt(2),
            )
        )
        cols.append(
            Column(
                f"sections.{name}.lines_p90",
                f"{short}: lines p90",
                lambda r, n=name: (sec(r, n) or {}).get("lines_p90"),
                _opt(0),
            )
        )
        cols.append(
            Column(
                f"sections.{name}.nodes",
                f"{short}: nodes/section",
                lambda r, n=name: (sec(r, n) or {}).get("mean", {}).get("nodes_visited"),
                _opt(2),
            )
        )
        if cache_on:
            for field, title in (("mem_misses", "misses"), ("coherence_transfers", "transfers")):
                cols.append(
                    Column(
                        f"sections.{name}.{field}",
                        f"{short}: {title}/section",
                        lambda r, n=name, f=field: (sec(r, n) or {}).get("mean", {}).get(f),
                        _opt(2),
                    )
                )
    if any(r.get("lock_sections") for r in rows):
        cols.append(
            Column(
                "sections.outside.lines",
                "outside locks: lines/op",
                lambda r: (sec(r, "outside") or {}).get("per_op", {}).get("lines"),
                _opt(2),
            )
        )
    return cols


def _opt(digits: int) -> Callable[[Any], str]:
    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    return fmt


def _header(result: dict[str, Any]) -> str:
    stages = ", ".join(s.get("label", s["key"]) for s in result["stages"])
    p = result.get("report_params") or result["params"]
    params = " ".join(f"{k}={v}" for k, v in p.items() if k != "seed")
    extra = ""
    if result.get("faults"):
        extra += f", faults {result['faults']}"
    if result.get("debug"):
        extra += ", --debug"
    text = (
        f"workload {result['workload']} on {stages}: {params}; seed {result['seed']}, "
        f"nr_cpus {result['nr_cpus']}, {result['arch']}, reps {result['reps']}{extra}"
    )
    if result.get("partial"):
        text += (
            f" -- INTERRUPTED: {result.get('runs_done', 0)} of {result.get('runs_total', 0)} "
            "runs finished; rows marked partial"
        )
    return text


def _components(result: dict[str, Any]) -> list[str]:
    """One line per column: its label, stage title and components (and what was skipped)."""
    out = []
    for s in result["stages"]:
        comps = " ".join(f"{r}={n}" for r, n in sorted(s["components"].items()))
        out.append(f"{s.get('label', s['key'])}: {s['key']} {comps} ({s['title']})")
    for sk in result.get("skipped", ()):
        out.append(f"{sk['column']}: SKIPPED: {sk['reason']}")
    return out


_LEGEND = (
    "model cycles/loop: cycles modelled from the counters (docs/cost-model.md), "
    "deterministic; vs first: (c_first / c - 1) x 100, the cover letter's '+N %' "
    "on modelled cycles — positive is cheaper than the first column. Per-op counters "
    "are deterministic (per alloc_vmap_area() or vfree call). Memory: struct vmap_area "
    "objects at the subtest's peak x struct size; the change vs the first column split "
    "into the struct size (the first column's objects at this size) and areas (more or "
    "fewer live objects, lazily freed ones included); maple nodes at the peak x 256 B; "
    "the overlay's chunk headers and back-pointer arrays at the end. sim: the "
    "simulator's (Python's) wall clock, not the kernel's: median over repetitions run "
    "in an interleaved order, range min-max; '~' marks a difference within the range, "
    "'?' one that a single repetition cannot weigh. See docs/cost-model.md."
)


def _metric_rows(table: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """A subtest's table turned round: one row per column, one column per stage."""
    cols = columns(table)
    stages = [cols[0].fmt(cols[0].get(r)) for r in table["rows"]]
    body = [[c.title, *(c.fmt(c.get(r)) for r in table["rows"])] for c in cols[1:]]
    return stages, body


def to_markdown(result: dict[str, Any]) -> str:
    """One Markdown table per subtest: a row per metric, a column per stage."""
    out = [f"**{_header(result)}**", ""]
    out += [f"- {line}" for line in _components(result)]
    out.append("")
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
    "cycles_per_loop",
    "change_pct",
    "per_op.nodes_visited",
    "per_op.cache_lines",
    "per_op.augment_updates",
    "per_op.node_allocs",
    "memory.struct_vmap_area_size",
    "memory.peak_vmap_area_bytes",
    "memory.delta_bytes_struct_shrink",
    "memory.delta_bytes_areas",
    "memory.peak_index_node_bytes",
    "memory.overlay_bytes_end",
    "time_per_loop_us",
    "time_range_us",
    "sim_change_pct",
)


def to_summary(result: dict[str, Any]) -> str:
    """One Markdown table: a row per (subtest, stage), the headline columns."""
    out = [f"**{_header(result)}**", ""]
    out += [f"- {line}" for line in _components(result)]
    out.append("")
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
            cells = [table["test"] if i == 0 else "", _label(row)]
            cells += [c.fmt(c.get(row)) for c in cols[:7]]
            cells.append(f"{locks:.2f}")
            cells += [c.fmt(c.get(row)) for c in cols[7:]]
            out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(_LEGEND)
    return "\n".join(out) + "\n"


def to_csv(result: dict[str, Any]) -> str:
    """One row per (subtest, stage), exact values; lock columns are the union."""
    keys: list[str] = ["test", "stage", "components"]
    rows: list[dict[str, Any]] = []
    for table in result["tests"]:
        for col in columns(table):
            if col.key not in keys:
                keys.append(col.key)
    for table in result["tests"]:
        cols = columns(table)
        for row in table["rows"]:
            rec: dict[str, Any] = {
                "test": table["test"],
                "stage": row["stage"],
                "components": " ".join(f"{r}={n}" for r, n in sorted(row["components"].items())),
            }
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


def _fit(widths: list[int], room: int) -> list[list[int]]:
    """Indexes of stage columns split into groups whose widths fit in ``room``."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, w in enumerate(widths):
        if groups[-1] and used + w > room:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += w
    return groups


def to_terminal(result: dict[str, Any], *, file: Any = None, width: int | None = None) -> None:
    """rich tables, one per subtest: a row per metric, a column per stage.

    No cell is ever cut: when the stages do not fit the terminal's width
    (``width``, else the console's), a subtest's table is split into parts
    of as many stage columns as fit, each repeating the metric names."""
    from rich.console import Console
    from rich.table import Table

    if width is None and file is not None:
        width = 160
    console = Console(file=file or sys.stdout, width=width)
    room_total = console.width
    console.print(_header(result))
    for line in _components(result):
        console.print(line, highlight=False)
    for table in result["tests"]:
        stages, body = _metric_rows(table)
        metric_w = max(len("metric"), *(len(r[0]) for r in body)) + 3
        widths = [
            max(len(stage), *(len(r[i + 1]) for r in body)) + 3 for i, stage in enumerate(stages)
        ]
        groups = _fit(widths, max(room_total - metric_w - 2, 1))
        for gi, group in enumerate(groups):
            title = table["test"]
            if len(groups) > 1:
                title += f" ({gi + 1}/{len(groups)}: {stages[group[0]]} .. {stages[group[-1]]})"
            t = Table(title=title, title_justify="left")
            t.add_column("metric", justify="left", no_wrap=True, min_width=metric_w - 3)
            for i in group:
                t.add_column(stages[i], justify="right", no_wrap=True, min_width=widths[i] - 3)
            for row in body:
                t.add_row(row[0], *(row[i + 1] for i in group))
            console.print(t, overflow="ignore", crop=False)
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
    ("model cycles/loop", lambda r: r["cycles_per_loop"]),
    ("nodes visited/op", lambda r: r["per_op"].get("nodes_visited", 0.0)),
    ("cache lines/op", lambda r: r["per_op"].get("cache_lines", 0.0)),
    ("augment updates/op", lambda r: r["per_op"].get("augment_updates", 0.0)),
    ("node allocs/op", lambda r: r["per_op"].get("node_allocs", 0.0)),
    (
        "lock acquisitions/op",
        lambda r: sum(v for k, v in r["per_op"].items() if k.startswith("lock.")),
    ),
    ("sim µs/loop (simulator's clock)", lambda r: r["time_per_loop_us"]["median"]),
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
    stages = [s.get("label", s["key"]) for s in result["stages"]]
    n = len(PLOT_METRICS)
    fig, axes = plt.subplots(n, 1, figsize=(max(8, 1.1 * len(tests) + 3), 2.6 * n), sharex=True)
    width = 0.8 / max(len(stages), 1)
    for ax, (title, get) in zip(axes, PLOT_METRICS, strict=True):
        for si, stage in enumerate(stages):
            vals = [get(t["rows"][si]) if si < len(t["rows"]) else 0.0 for t in result["tests"]]
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
    """Progress on stderr: on a terminal, a rich bar that appears only once a
    run has taken ``delay`` seconds; off a terminal (CI, a pipe), plain lines
    so a long run is not silent: one per finished unit when ``per_unit``
    (compare: a unit is one run of one column), else, once ``delay`` has
    passed, one per tenth of the total.

    Call it as ``progress(done, total[, what])``; :meth:`close` removes the bar.
    """

    def __init__(
        self,
        description: str,
        *,
        delay: float = 2.0,
        stream: Any = None,
        per_unit: bool = False,
    ) -> None:
        self.description = description
        self.delay = delay
        self.stream = stream or sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.per_unit = per_unit
        self.t0 = time.monotonic()
        self._progress: Any = None
        self._task: Any = None
        self._tenth = 0

    def _line(self, done: int, total: int, what: str | None) -> None:
        if not self.per_unit:
            if time.monotonic() - self.t0 < self.delay:
                return  # a short run stays silent, as on a terminal
            tenth = done * 10 // max(total, 1)
            if tenth <= self._tenth:
                return
            self._tenth = tenth
        elapsed = time.monotonic() - self.t0
        tail = f" ({what})" if what else ""
        print(
            f"vmapsim: {self.description}: {done}/{total} done{tail}, {elapsed:.1f} s",
            file=self.stream,
            flush=True,
        )

    def __call__(self, done: int, total: int, what: str | None = None) -> None:
        if not self.enabled:
            self._line(done, total, what)
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


def allocator_lines(alloc: Any) -> list[str]:
    """What an allocator is (``run`` and ``replay`` print it under the stage
    line): its components, then arch, CPUs and vmap nodes, seed, struct size."""
    from vmapsim.kernel.allocator import component_name

    comps = " ".join(f"{r}={component_name(c)}" for r, c in sorted(alloc.components.items()))
    return [
        f"components: {comps}",
        f"arch {alloc.arch.name}, nr_cpus {alloc.nr_cpus} ({alloc.nr_vmap_nodes} vmap nodes), "
        f"seed {alloc.seed}, struct vmap_area {alloc.struct_vmap_area_size} B",
    ]
