"""``vmapsim bisect``: the first stage of a series where a check turns bad, like ``git bisect run``.

The stages between ``--good G`` and ``--bad B`` (the registered stages of one
series, in number order) are searched by halving: each probe runs the check
against one stage and gives a verdict, ``good``, ``bad``, ``skip`` (cannot be
tested: the range narrows around it, as ``git bisect skip`` does) or
``abort``.  Unless ``--no-verify``, both ends are probed first, so a
wrongly chosen end is reported instead of silently giving a wrong answer.
``--all`` probes every stage instead and reports where the verdicts change,
saying so when they change more than once (bisect's assumption broken).

Checks (see docs/bisect.md for the worked examples):

- :class:`TraceCheck` (``--trace WORKLOAD``): bad where the allocation trace
  differs from the good stage's (:mod:`vmapsim.checking.trace`);
- :class:`MetricCheck` (``--metric EXPR``): bad where an expression over the
  run's counters and properties holds (:mod:`vmapsim.tools.expr`);
- :class:`LogCheck` (``--log PATTERN``): bad where the allocator log matches;
- :class:`PytestCheck` (``--pytest NODEID``): bad where the test fails when
  run with ``--stage N`` (a subprocess);
- :class:`RunCheck` (``--run COMMAND``): a shell command with
  ``VMAPSIM_STAGE`` set; exit 0 good, 125 skip, 1..127 bad, >= 128 abort.

The search itself (:func:`bisect_stages`, :func:`scan_stages`) knows only
stages and a ``probe(stage) -> Verdict`` callable, so it works on any series.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field, frozen

from vmapsim.checking.faults import FailslabConfig
from vmapsim.checking.faultspec import FaultSpecError, format_faults, parse_faults
from vmapsim.checking.trace import TracingAllocator, first_difference
from vmapsim.cost.counters import COUNTER_NAMES
from vmapsim.errors import PluginError, UnknownComponentError, UnknownStageError
from vmapsim.framework.api import build
from vmapsim.framework.descriptors import Stage
from vmapsim.framework.registry import DEFAULT_SERIES, Registry, get_registry
from vmapsim.framework.roles import ROLES
from vmapsim.tools.config import StageSelectionError, select_stages
from vmapsim.tools.expr import Expr, ExprError, parse_expr
from vmapsim.tools.params import parse_params, parse_with

__all__ = [
    "BISECT_NR_OPS",
    "BisectResult",
    "BisectUsageError",
    "LogCheck",
    "MetricCheck",
    "Probe",
    "PytestCheck",
    "RunCheck",
    "TraceCheck",
    "Verdict",
    "WorkloadRunner",
    "add_arguments",
    "bisect_stages",
    "metric_names",
    "run",
    "scan_stages",
]

#: the workload size bisect uses unless ``--param nr_ops=...`` says otherwise
#: (a 4-probe bisect with a --metric or --log check stays within seconds)
BISECT_NR_OPS = 5000

GOOD, BAD, SKIP, ABORT = "good", "bad", "skip", "abort"

#: exit statuses of ``vmapsim bisect``
EXIT_FOUND, EXIT_NONE, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3


class BisectUsageError(ValueError):
    """A bisect argument that cannot be used (exit status 2)."""


@frozen
class Verdict:
    """What one probe of a check says about one stage, and why."""

    verdict: str
    detail: str


@frozen
class Probe:
    """One probe: the stage, its verdict and why; ``role`` is ``good end``, ``bad end``, ``step N`` or ``scan``."""

    stage: Stage
    verdict: str
    detail: str
    role: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.number,
            "verdict": self.verdict,
            "detail": self.detail,
            "role": self.role,
        }


@frozen
class Transition:
    """Consecutive tested stages whose verdicts differ (skipped stages between them listed)."""

    before: Probe
    after: Probe
    skipped: tuple[int, ...] = ()

    def describe(self) -> str:
        gap = f" ({', '.join(map(str, self.skipped))} skipped)" if self.skipped else ""
        return (
            f"{self.before.verdict}->{self.after.verdict} at "
            f"{self.before.stage.number}->{self.after.stage.number}{gap}"
        )


@define
class BisectResult:
    """The outcome of a bisect or a scan."""

    stages: tuple[Stage, ...]
    probes: list[Probe] = field(factory=list)
    first_bad: Stage | None = None
    #: when skipped stages leave the answer open: every stage that may be the first bad one
    candidates: tuple[Stage, ...] = ()
    steps: int = 0
    aborted: bool = False
    notes: list[str] = field(factory=list)
    transitions: list[Transition] | None = None

    @property
    def monotonic(self) -> bool | None:
        """Whether the tested verdicts read good..good bad..bad (None: not a scan)."""
        if self.transitions is None:
            return None
        return (
            all(t.before.verdict == GOOD and t.after.verdict == BAD for t in self.transitions)
            and len(self.transitions) <= 1
        )

    @property
    def exit_status(self) -> int:
        if self.aborted:
            return EXIT_ABORTED
        return EXIT_FOUND if self.first_bad is not None else EXIT_NONE


ProbeFn = Callable[[Stage], Verdict]
OnProbe = Callable[[Probe], None]


def _flip(v: Verdict, invert: bool) -> Verdict:
    if not invert or v.verdict not in (GOOD, BAD):
        return v
    return Verdict(BAD if v.verdict == GOOD else GOOD, v.detail)


def _probe(
    result: BisectResult, probe: ProbeFn, stage: Stage, role: str, invert: bool, on_probe: OnProbe
) -> Probe:
    try:
        v = _flip(probe(stage), invert)
    except Exception as exc:  # a check that cannot run at all ends the bisect, as git's does
        v = Verdict(ABORT, f"{type(exc).__name__}: {exc}")
    p = Probe(stage, v.verdict, v.detail, role)
    result.probes.append(p)
    on_probe(p)
    return p


def bisect_stages(
    stages: Sequence[Stage],
    probe: ProbeFn,
    *,
    verify: bool = True,
    invert: bool = False,
    on_probe: OnProbe = lambda _p: None,
    good_verdict: Verdict | None = None,
) -> BisectResult:
    """Binary search for the first bad stage; ``stages[0]`` is good, ``stages[-1]`` bad.

    ``probe`` gives a stage's verdict; ``invert`` swaps good and bad (find
    where something stops).  With ``verify`` the two ends are probed first;
    ``good_verdict`` stands in for the good end's probe when the check has
    already run it (a trace's reference run).  Skipped stages are stepped
    around (the untested stage nearest the middle is probed next, lower
    first); when they leave the answer open, ``candidates`` lists every stage
    that may be the first bad one and ``first_bad`` is None.
    """
    seq = tuple(stages)
    if len(seq) < 2:
        raise BisectUsageError("bisect: needs a good and a bad stage (at least two stages)")
    result = BisectResult(seq)
    if good_verdict is not None:
        p = Probe(seq[0], good_verdict.verdict, good_verdict.detail, "good end")
        result.probes.append(p)
        on_probe(p)
        if p.verdict == ABORT:
            result.aborted = True
            return result
    if verify:
        ends = (
            [(seq[-1], "bad end")]
            if good_verdict is not None
            else [
                (seq[0], "good end"),
                (seq[-1], "bad end"),
            ]
        )
        for stage, role in ends:
            p = _probe(result, probe, stage, role, invert, on_probe)
            want = GOOD if role == "good end" else BAD
            if p.verdict == ABORT:
                result.aborted = True
                return result
            if p.verdict == SKIP:
                result.notes.append(
                    f"stage {stage.number} ({role}) cannot be tested; taken as {want} as given"
                )
            elif p.verdict != want:
                flag = "--good" if role == "good end" else "--bad"
                result.notes.append(
                    f"stage {stage.number} ({flag}) is {p.verdict} by this check: nothing to "
                    + (
                        "bisect; pick a good stage below it, or --invert to find where the "
                        "check stops holding"
                        if role == "good end"
                        else "bisect: the check does not change between these stages "
                        "(--all shows every stage)"
                    )
                )
                return result
    lo, hi = 0, len(seq) - 1
    skipped: set[int] = set()
    while True:
        untested = [i for i in range(lo + 1, hi) if i not in skipped]
        if not untested:
            break
        mid = (lo + hi) // 2
        i = min(untested, key=lambda j: (abs(j - mid), j))
        result.steps += 1
        p = _probe(result, probe, seq[i], f"step {result.steps}", invert, on_probe)
        if p.verdict == GOOD:
            lo = i
        elif p.verdict == BAD:
            hi = i
        elif p.verdict == SKIP:
            skipped.add(i)
        else:
            result.aborted = True
            return result
    between = [i for i in range(lo + 1, hi) if i in skipped]
    if between:
        result.candidates = tuple(seq[i] for i in (*between, hi))
        result.notes.append(
            "skipped stages leave the answer open: the first bad stage is one of "
            + ", ".join(str(s.number) for s in result.candidates)
        )
    else:
        result.first_bad = seq[hi]
    return result


def scan_stages(
    stages: Sequence[Stage],
    probe: ProbeFn,
    *,
    invert: bool = False,
    on_probe: OnProbe = lambda _p: None,
    good_verdict: Verdict | None = None,
) -> BisectResult:
    """Probe every stage (``--all``); report every change of verdict.

    ``first_bad`` is the stage after the first good->bad change (None when
    skipped stages sit inside that change: ``candidates`` then lists them and
    the bad stage).  ``monotonic`` is False when the verdicts change in any
    other way than once from good to bad.
    """
    seq = tuple(stages)
    result = BisectResult(seq, transitions=[])
    for n, stage in enumerate(seq):
        if n == 0 and good_verdict is not None:
            p = Probe(stage, good_verdict.verdict, good_verdict.detail, "scan")
            result.probes.append(p)
            on_probe(p)
        else:
            p = _probe(result, probe, stage, "scan", invert, on_probe)
        if p.verdict == ABORT:
            result.aborted = True
            return result
    tested = [p for p in result.probes if p.verdict in (GOOD, BAD)]
    assert result.transitions is not None
    for before, after in itertools.pairwise(tested):
        if before.verdict != after.verdict:
            gap = tuple(
                p.stage.number
                for p in result.probes
                if p.verdict == SKIP and before.stage.number < p.stage.number < after.stage.number
            )
            result.transitions.append(Transition(before, after, gap))
    first = next(
        (t for t in result.transitions if t.before.verdict == GOOD and t.after.verdict == BAD),
        None,
    )
    if first is not None:
        if first.skipped:
            result.candidates = tuple(
                s for s in seq if first.before.stage.number < s.number <= first.after.stage.number
            )
            result.notes.append(
                "skipped stages leave the answer open: the first bad stage is one of "
                + ", ".join(str(s.number) for s in result.candidates)
            )
        else:
            result.first_bad = first.after.stage
    if tested and tested[0].verdict == BAD:
        result.notes.append(f"stage {tested[0].stage.number}, the first tested, is already bad")
    if not result.monotonic:
        result.notes.append(
            "verdicts are not monotonic (bisect assumes good..good bad..bad): "
            + ", ".join(t.describe() for t in result.transitions)
            + "; a bisect across them may name any of these changes"
        )
    return result


# -- running a workload against a stage ---------------------------------------------------


@frozen
class WorkloadRun:
    """A finished workload run: the allocator, the report, and the trace if one was recorded."""

    allocator: Any
    report: Any
    trace: list[Any] | None
    failures_injected: int


class _CannotBuild(Exception):
    """The stage's allocator cannot be built here (a component is not installed): skip it."""


@define
class WorkloadRunner:
    """Builds a stage's allocator and runs one workload on it, the same way for every stage."""

    registry: Registry
    workload: str = "mixed"
    params: Mapping[str, Any] = field(factory=dict)
    nr_cpus: int = 1
    seed: int = 0
    arch: str = "x86_64"
    debug: bool = False
    #: ``--debug-kernel``: lockdep and might_sleep on every stage probed
    debug_kernel: bool = False
    failslab: FailslabConfig | None = None
    #: ``--with ROLE=NAME``: the same component swap on every stage probed
    components: Mapping[str, str] = field(factory=dict)

    def effective_params(self) -> dict[str, Any]:
        """``seed``, bisect's ``nr_ops`` default (if the workload takes one), then ``--param``."""
        wl = self.registry.workload(self.workload)
        out: dict[str, Any] = {"seed": self.seed}
        try:
            accepted = inspect.signature(wl.run).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            accepted = {}
        if "nr_ops" in accepted:
            out["nr_ops"] = BISECT_NR_OPS
        out.update(self.params)
        return out

    def run(self, stage: Stage, *, trace: bool = False, workload: bool = True) -> WorkloadRun:
        """Build ``stage``'s allocator and run the workload on it (``workload=False``: build only)."""
        wl = self.registry.workload(self.workload)
        try:
            alloc = build(
                stage.key,
                arch=self.arch,
                nr_cpus=self.nr_cpus,
                seed=self.seed,
                debug=self.debug,
                failslab=self.failslab,
                registry=self.registry,
                components=dict(self.components) or None,
                debug_kernel=self.debug_kernel,
            )
        except (UnknownComponentError, PluginError) as exc:
            raise _CannotBuild(str(exc.args[0] if exc.args else exc)) from exc
        target = TracingAllocator(alloc) if trace else alloc
        if not workload:
            return WorkloadRun(alloc, None, None, 0)
        report = wl.run(target, **self.effective_params())
        return WorkloadRun(
            alloc,
            report,
            target.trace if trace else None,
            alloc.faults.failures,
        )

    def describe(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.effective_params().items())
        extra = f", faults {_faults_text(self.failslab)}" if self.failslab else ""
        if self.components:
            extra += ", with " + " ".join(f"{r}={n}" for r, n in self.components.items())
        if self.debug_kernel:
            extra += ", debug kernel"
        return f"workload {self.workload} ({params}), nr_cpus {self.nr_cpus}{extra}"


def _faults_text(cfg: FailslabConfig | None) -> str:
    return format_faults(cfg)


def _guarded(fn: Callable[[Stage], Verdict]) -> Callable[[Stage], Verdict]:
    """A probe that skips a stage that cannot be built and aborts on any other error."""

    def probe(stage: Stage) -> Verdict:
        try:
            return fn(stage)
        except _CannotBuild as exc:
            return Verdict(SKIP, f"cannot build stage {stage.key}: {exc}")
        except Exception as exc:  # the model raised: stop, as git bisect run does on a crash
            return Verdict(ABORT, f"{type(exc).__name__} at stage {stage.key}: {exc}")

    return probe


# -- metric names ----------------------------------------------------------------------------

#: properties of a run that --metric can read besides the counters
PROPERTIES: dict[str, str] = {
    "ops": "alloc_calls + free_calls",
    "struct_vmap_area_size": "sizeof(struct vmap_area) at the stage, from its field layout",
    "stage": "the stage number",
    "nr_cpus": "simulated CPUs",
    "nr_vmap_nodes": "vmap nodes (clamp(nr_cpus, 1, 128))",
    "lazy_max_pages": "lazy_max_pages()",
    "vmap_lazy_nr": "lazily freed pages not yet purged, after the run",
    "log_messages": "messages in the allocator log",
    "faults_injected": "allocations failed by --faults",
    "nr_free_areas": "free blocks of the free index after the run",
    "nr_busy_areas": "busy areas after the run",
    "nr_lazy_areas": "lazily freed areas after the run",
    "nr_pooled_areas": "areas in the per-node pools after the run",
}
#: properties fixed when the allocator is built: an expression reading only these
#: does not need the workload run
STATIC_PROPERTIES = frozenset(
    {"struct_vmap_area_size", "stage", "nr_cpus", "nr_vmap_nodes", "lazy_max_pages"}
)
_LOCK = re.compile(r"^lock\.[A-Za-z_][A-Za-z0-9_]*$")
_WORKLOAD = re.compile(r"^workload\.[A-Za-z_][A-Za-z0-9_]*$")


def metric_names() -> list[str]:
    """Every name --metric accepts (``lock.NAME`` and ``workload.OP`` stand for families)."""
    names = list(COUNTER_NAMES) + [f"{c}_per_op" for c in COUNTER_NAMES] + list(PROPERTIES)
    return [*sorted(names), "lock.NAME", "lock.NAME_per_op", "workload.OP"]


def _known_metric(name: str) -> bool:
    base = name.removesuffix("_per_op")
    if base in COUNTER_NAMES or name in PROPERTIES:
        return True
    return bool(_LOCK.match(base) or _WORKLOAD.match(name))


def parse_metric(source: str) -> Expr:
    """Parse a --metric expression; unknown names are an error listing the available ones."""
    return parse_expr(source, known=_known_metric, listing=metric_names())


def _count(it: Any) -> int:
    return sum(1 for _ in it)


def metric_value(run: WorkloadRun, name: str) -> float:
    """The value of ``name`` (see :func:`metric_names`) for a finished run."""
    a = run.allocator
    m = a.metrics
    ops = m["alloc_calls"] + m["free_calls"]
    if name.endswith("_per_op"):
        return metric_value(run, name.removesuffix("_per_op")) / max(ops, 1)
    if name in COUNTER_NAMES:
        return m[name]
    if name.startswith("lock."):
        return m.locks.get(name[len("lock.") :], 0)
    if name.startswith("workload."):
        key = name[len("workload.") :]
        if key not in run.report.ops:
            raise ExprError(
                f"{name!r}: workload {run.report.name} reports no {key!r}; it reports "
                f"{', '.join(f'workload.{k}' for k in run.report.ops)}"
            )
        return run.report.ops[key]
    getters: dict[str, Callable[[], float]] = {
        "ops": lambda: ops,
        "struct_vmap_area_size": lambda: a.struct_vmap_area_size,
        "stage": lambda: a.stage.number,
        "nr_cpus": lambda: a.nr_cpus,
        "nr_vmap_nodes": lambda: a.nr_vmap_nodes,
        "lazy_max_pages": lambda: a.lazy_max_pages(),
        "vmap_lazy_nr": lambda: a.vmap_lazy_nr,
        "log_messages": lambda: len(a.log),
        "faults_injected": lambda: run.failures_injected,
        "nr_free_areas": lambda: _count(a.free_areas()),
        "nr_busy_areas": lambda: _count(a.busy_areas()),
        "nr_lazy_areas": lambda: _count(a.lazy_areas()),
        "nr_pooled_areas": lambda: _count(a.pooled_areas()),
    }
    return getters[name]()


def _num(value: float) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


# -- checks -------------------------------------------------------------------------------


@define
class MetricCheck:
    """``--metric EXPR``: bad where ``EXPR`` holds for the stage's workload run."""

    expr: Expr
    runner: WorkloadRunner

    def describe(self) -> str:
        if not self.needs_run:
            return (
                f"metric {self.expr.source!r} (properties of the built allocator: no workload run)"
            )
        return f"metric {self.expr.source!r} on {self.runner.describe()}"

    @property
    def needs_run(self) -> bool:
        return not set(self.expr.names) <= STATIC_PROPERTIES

    def _probe(self, stage: Stage) -> Verdict:
        run = self.runner.run(stage, workload=self.needs_run)
        values: dict[str, float] = {}

        def get(name: str) -> float:
            if name not in values:
                values[name] = metric_value(run, name)
            return values[name]

        holds = bool(self.expr.evaluate(get))
        shown = " ".join(f"{n}={_num(values[n])}" for n in self.expr.names if n in values)
        return Verdict(BAD if holds else GOOD, f"{shown}: {'holds' if holds else 'does not hold'}")

    def probe(self, stage: Stage) -> Verdict:
        return _guarded(self._probe)(stage)


@define
class LogCheck:
    """``--log PATTERN``: bad where a line of the allocator log matches the regex."""

    pattern: re.Pattern[str]
    runner: WorkloadRunner

    def describe(self) -> str:
        return f"log matches {self.pattern.pattern!r} on {self.runner.describe()}"

    def _probe(self, stage: Stage) -> Verdict:
        run = self.runner.run(stage)
        log = run.allocator.log
        hits = [line for line in log if self.pattern.search(line)]
        if not hits:
            return Verdict(GOOD, f"no match in {len(log)} log line(s)")
        first = hits[0] if len(hits[0]) <= 160 else hits[0][:157] + "..."
        return Verdict(BAD, f"{len(hits)} matching line(s), first: {first}")

    def probe(self, stage: Stage) -> Verdict:
        return _guarded(self._probe)(stage)


@define
class TraceCheck:
    """``--trace WORKLOAD``: bad where the allocation trace differs from the good stage's."""

    runner: WorkloadRunner
    reference: list[Any] | None = None
    reference_stage: Stage | None = None

    def describe(self) -> str:
        return f"allocation trace of {self.runner.describe()}"

    def record_reference(self, stage: Stage) -> Verdict:
        """Run the good stage once; its trace is what every probe is compared with."""

        def ref(st: Stage) -> Verdict:
            run = self.runner.run(st, trace=True)
            self.reference = run.trace
            self.reference_stage = st
            return Verdict(GOOD, f"reference trace: {len(run.trace or [])} operations")

        v = _guarded(ref)(stage)
        return Verdict(ABORT, v.detail) if v.verdict == SKIP else v

    def _probe(self, stage: Stage) -> Verdict:
        assert self.reference is not None and self.reference_stage is not None
        run = self.runner.run(stage, trace=True)
        trace = run.trace or []
        diff = first_difference(self.reference, trace)
        if diff is None:
            return Verdict(GOOD, f"same trace ({len(trace)} operations)")
        return Verdict(
            BAD, diff.describe(f"stage {self.reference_stage.number}", f"at stage {stage.number}")
        )

    def probe(self, stage: Stage) -> Verdict:
        return _guarded(self._probe)(stage)


def _stage_env_value(stage: Stage) -> str:
    return str(stage.number) if stage.series == DEFAULT_SERIES else stage.key


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:]) if kept else ""


@define
class RunCheck:
    """``--run COMMAND``: a shell command with ``VMAPSIM_STAGE`` set, judged by its exit status.

    As ``git bisect run``: 0 good, 125 skip, 1..127 (but 125) bad, 128 and
    above (or killed by a signal) aborts the bisect.
    """

    command: str
    cwd: Path | None = None

    def describe(self) -> str:
        return f"command {self.command!r} (VMAPSIM_STAGE set to each stage)"

    def probe(self, stage: Stage) -> Verdict:
        env = {**os.environ, "VMAPSIM_STAGE": _stage_env_value(stage)}
        proc = subprocess.run(
            self.command,
            shell=True,
            env=env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        rc = proc.returncode
        last = _tail(proc.stdout + "\n" + proc.stderr)
        why = f"exit {rc}" + (f": {last}" if last else "")
        if rc == 0:
            return Verdict(GOOD, why)
        if rc == 125:
            return Verdict(SKIP, why)
        if 0 < rc < 128:
            return Verdict(BAD, why)
        return Verdict(
            ABORT, why + " (exit status >= 128 or a signal aborts, as in git bisect run)"
        )


@define
class PytestCheck:
    """``--pytest NODEID``: bad where the test fails when pytest runs it with ``--stage N``.

    pytest runs in a subprocess (``python -m pytest -p no:cacheprovider
    --stage KEY NODEID``, plus ``VMAPSIM_STAGE``); its JUnit XML report gives
    the counts.  A failure or error is bad; a pass is good; nothing run (all
    skipped, or no test collected at this stage) is a skip; a usage or
    internal error of pytest aborts.  ``NODEID`` is split like a shell
    command line, so it may carry more pytest arguments (``-k``, ``-x``).
    """

    nodeid: str
    cwd: Path | None = None
    python: str = sys.executable

    def describe(self) -> str:
        return f"pytest {self.nodeid} --stage N"

    def probe(self, stage: Stage) -> Verdict:
        with tempfile.TemporaryDirectory(prefix="vmapsim-bisect-") as tmp:
            xml = Path(tmp) / "junit.xml"
            cmd = [
                self.python,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml}",
                "--stage",
                stage.key,
                *shlex.split(self.nodeid),
            ]
            env = {**os.environ, "VMAPSIM_STAGE": stage.key}
            proc = subprocess.run(
                cmd, env=env, cwd=self.cwd, capture_output=True, text=True, check=False
            )
            counts, first_failure, skip_reason = _junit(xml) if xml.is_file() else (None, "", "")
        rc = proc.returncode
        if rc in (0, 1) and counts is not None:
            tests, failed, skipped = counts
            if failed:
                return Verdict(BAD, f"{failed} of {tests} failed: {first_failure}")
            if tests - skipped > 0:
                return Verdict(
                    GOOD, f"{tests - skipped} passed" + (f", {skipped} skipped" if skipped else "")
                )
            return Verdict(
                SKIP, f"nothing ran ({skipped} skipped{': ' + skip_reason if skip_reason else ''})"
            )
        if rc == 5:
            return Verdict(SKIP, "no test collected at this stage")
        return Verdict(ABORT, f"pytest exited {rc}: {_tail(proc.stdout + proc.stderr, 3)}")


def _junit(path: Path) -> tuple[tuple[int, int, int], str, str]:
    """(tests, failed + errors, skipped), the first failure, the first skip reason."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = failed = skipped = 0
    for s in suites:
        tests += int(s.get("tests", 0))
        failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    first_failure = skip_reason = ""
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error") and not first_failure:
                msg = (child.get("message") or "").strip().splitlines()
                first_failure = f"{case.get('name')}: {msg[0] if msg else child.tag}"
            elif child.tag == "skipped" and not skip_reason:
                skip_reason = (child.get("message") or "").strip()
    return (tests, failed, skipped), first_failure, skip_reason


# -- command line ---------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``vmapsim bisect``."""
    p.add_argument("--good", default=None, help="a good stage (default: the series' first)")
    p.add_argument("--bad", default=None, help="a bad stage (default: the series' last)")
    p.add_argument("--series", default=None, help="the series to bisect (default: maple)")
    check = p.add_mutually_exclusive_group(required=True)
    check.add_argument(
        "--trace", metavar="WORKLOAD", help="bad where the allocation trace differs from --good's"
    )
    check.add_argument(
        "--metric",
        metavar="EXPR",
        help="bad where EXPR holds (e.g. 'struct_vmap_area_size < 72', 'cache_lines_per_op < 40')",
    )
    check.add_argument(
        "--log", metavar="PATTERN", help="bad where the allocator log matches PATTERN"
    )
    check.add_argument(
        "--pytest", metavar="NODEID", help="bad where the test fails with --stage N (subprocess)"
    )
    check.add_argument(
        "--run",
        metavar="COMMAND",
        help="shell command run with VMAPSIM_STAGE set: 0 good, 125 skip, 1-127 bad, >=128 abort",
    )
    p.add_argument("--workload", default=None, help="workload of --metric / --log (default: mixed)")
    p.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        metavar="ROLE=[PLUGIN:]NAME",
        help="use component NAME for ROLE on every stage probed (as vmapsim run --with)",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"workload parameter (bisect's default: nr_ops={BISECT_NR_OPS})",
    )
    p.add_argument("--nr-cpus", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--arch", default=None, choices=["x86_64", "arm64"])
    p.add_argument(
        "--faults",
        metavar="SPEC",
        default=None,
        help="fault injection (failslab, fail_page_alloc), e.g. maple_node:probability=5 "
        "or page:probability=100:min-order=6 (docs/bisect.md)",
    )
    p.add_argument("--debug", action="store_true", help="check invariants after every operation")
    p.add_argument(
        "--debug-kernel",
        action="store_true",
        help="run each stage as a debug kernel (lockdep, might_sleep): --log sees their "
        "reports (docs/debug-kernel.md)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="bad where the check does NOT hold (find the stage that fixed something)",
    )
    p.add_argument("--all", action="store_true", help="probe every stage and print the table")
    p.add_argument(
        "--no-verify", action="store_true", help="trust --good and --bad without probing them"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _params(items: Sequence[str]) -> dict[str, Any]:
    return parse_params(items, BisectUsageError)


def _one_stage(flag: str, spec: str, registry: Registry, series: str | None) -> Stage:
    try:
        sel = select_stages(spec, registry, series=series)
    except StageSelectionError as exc:
        raise BisectUsageError(f"{flag}: {exc}") from None
    if len(sel.stages) != 1:
        raise BisectUsageError(f"{flag} {spec!r}: must name one stage (got {', '.join(sel.keys)})")
    return sel.stages[0]


def _range(args: argparse.Namespace, registry: Registry) -> tuple[Stage, ...]:
    series = args.series
    if series is not None:
        try:
            select_stages("all", registry, series=series)
        except StageSelectionError as exc:
            raise BisectUsageError(f"--series: {exc}") from None
    good = _one_stage("--good", args.good, registry, series) if args.good is not None else None
    series = series or (good.series if good else None)
    bad = _one_stage("--bad", args.bad, registry, series) if args.bad is not None else None
    series = series or (bad.series if bad else DEFAULT_SERIES)
    try:
        every = select_stages("all", registry, series=series).stages
    except StageSelectionError as exc:
        raise BisectUsageError(f"--series: {exc}") from None
    if len(every) < 2:
        raise BisectUsageError(
            f"series {series!r} has only stage {every[0].number} registered: nothing to bisect"
        )
    good = good or every[0]
    bad = bad or every[-1]
    if good.series != bad.series:
        raise BisectUsageError(
            f"--good {good.key} and --bad {bad.key}: must be stages of one series"
        )
    if good.number >= bad.number:
        raise BisectUsageError(
            f"--good {good.number} must be a lower stage than --bad {bad.number} "
            f"(series {series!r} has {', '.join(str(s.number) for s in every)}; "
            "to find where something stops, keep good < bad and add --invert)"
        )
    return tuple(s for s in every if good.number <= s.number <= bad.number)


def _make_check(args: argparse.Namespace, registry: Registry) -> Any:
    in_process = args.trace is not None or args.metric is not None or args.log is not None
    if not in_process:
        given = [
            flag
            for flag, value in (
                ("--workload", args.workload),
                ("--param", args.param or None),
                ("--nr-cpus", args.nr_cpus),
                ("--seed", args.seed),
                ("--arch", args.arch),
                ("--faults", args.faults),
                ("--with", args.with_ or None),
            )
            if value is not None
        ]
        if args.debug_kernel:
            given.append("--debug-kernel")
        if given or args.debug:
            flags = ", ".join(given + (["--debug"] if args.debug else []))
            raise BisectUsageError(
                f"{flags}: apply to --trace, --metric and --log only (a --run or --pytest "
                "check runs its own command)"
            )
        if args.pytest is not None:
            if not args.pytest.strip():
                raise BisectUsageError("--pytest: give a test node id")
            return PytestCheck(args.pytest)
        if not args.run.strip():
            raise BisectUsageError("--run: give a command")
        return RunCheck(args.run)
    workload = args.workload
    if args.trace is not None:
        if workload is not None and workload != args.trace:
            raise BisectUsageError(
                f"--trace {args.trace} and --workload {workload}: name the workload once"
            )
        workload = args.trace
    workload = workload or "mixed"
    try:
        registry.workload(workload)
    except LookupError as exc:
        raise BisectUsageError(str(exc.args[0])) from None
    seed = 0 if args.seed is None else args.seed
    nr_cpus = 1 if args.nr_cpus is None else args.nr_cpus
    if not 1 <= nr_cpus <= 8192:
        raise BisectUsageError(f"--nr-cpus: must be in [1, 8192] (got {nr_cpus})")
    try:
        failslab = parse_faults(args.faults, seed=seed) if args.faults else None
    except FaultSpecError as exc:
        raise BisectUsageError(str(exc)) from None
    runner = WorkloadRunner(
        registry,
        workload,
        _params(args.param),
        nr_cpus=nr_cpus,
        seed=seed,
        arch=args.arch or "x86_64",
        debug=args.debug,
        debug_kernel=args.debug_kernel,
        failslab=failslab,
        components=parse_with(args.with_, list(ROLES), BisectUsageError),
    )
    if args.trace is not None:
        return TraceCheck(runner)
    if args.metric is not None:
        try:
            return MetricCheck(parse_metric(args.metric), runner)
        except ExprError as exc:
            raise BisectUsageError(f"--metric: {exc}") from None
    try:
        pattern = re.compile(args.log)
    except re.error as exc:
        raise BisectUsageError(
            f"--log {args.log!r}: not a valid regular expression ({exc})"
        ) from None
    return LogCheck(pattern, runner)


def _title(stage: Stage, width: int | None = None) -> str:
    t = stage.title
    return t if width is None or len(t) <= width else t[: width - 1] + "…"


def _print_probe(p: Probe) -> None:
    print(f"  stage {p.stage.number:>2}  {p.verdict:<5}  {'[' + p.role + ']':<11} {p.stage.title}")
    print(f"            {p.detail}")


def _print_table(result: BisectResult) -> None:
    print(f"  {'stage':>5}  {'verdict':<7}  {'patch':<56}  detail")
    for p in result.probes:
        print(f"  {p.stage.number:>5}  {p.verdict:<7}  {_title(p.stage, 56):<56}  {p.detail}")


def run(args: argparse.Namespace, registry: Registry | None = None) -> int:
    """``vmapsim bisect``: exit 0 when a first bad stage is found, 1 when none, 3 if aborted.

    Usage errors raise :class:`BisectUsageError` (the command line exits 2).
    """
    reg = registry or get_registry()
    try:
        stages = _range(args, reg)
    except (UnknownStageError, StageSelectionError) as exc:
        raise BisectUsageError(str(exc)) from None
    check = _make_check(args, reg)
    good, bad = stages[0], stages[-1]
    quiet = args.json
    if not quiet:
        mode = "scan of every stage" if args.all else "bisect"
        print(
            f"{mode} {good.key}..{bad.number} ({len(stages)} stages), check: {check.describe()}"
            + ("; --invert: bad where the check does not hold" if args.invert else "")
        )
    shown: OnProbe = (lambda _p: None) if quiet or args.all else _print_probe
    done: list[Any] = []

    def on_probe(p: Any) -> None:
        done.append(p)
        shown(p)

    try:
        return _search(args, check, stages, on_probe, quiet)
    except KeyboardInterrupt:
        # what finished: the probes so far (a plain bisect printed each already)
        if quiet:
            print(
                json.dumps(
                    {
                        "interrupted": True,
                        "probes": [
                            {"stage": p.stage.key, "verdict": p.verdict, "detail": p.detail}
                            for p in done
                        ],
                    },
                    indent=2,
                )
            )
        else:
            if args.all:
                for p in done:
                    _print_probe(p)
            print(f"bisect interrupted after {len(done)} probe(s): no verdict (partial)")
        sys.stdout.flush()
        raise


def _search(
    args: argparse.Namespace, check: Any, stages: list[Any], on_probe: OnProbe, quiet: bool
) -> int:
    """The search itself and its report (:func:`run`)."""
    good = stages[0]
    good_verdict = None
    if isinstance(check, TraceCheck):
        good_verdict = check.record_reference(good)
    if args.all:
        result = scan_stages(
            stages, check.probe, invert=args.invert, on_probe=on_probe, good_verdict=good_verdict
        )
    else:
        result = bisect_stages(
            stages,
            check.probe,
            verify=not args.no_verify,
            invert=args.invert,
            on_probe=on_probe,
            good_verdict=good_verdict,
        )
    if quiet:
        print(json.dumps(_as_json(result, check, args), indent=2))
        return result.exit_status
    if args.all:
        _print_table(result)
    for note in result.notes:
        print(f"note: {note}")
    if result.aborted:
        last = result.probes[-1]
        print(f"bisect aborted at stage {last.stage.number}: {last.detail}")
    elif result.first_bad is not None:
        fb = result.first_bad
        print(f"first bad stage: {fb.number}  {fb.title}")
        if not args.all:
            print(f"  ({result.steps} step(s), {len(result.probes)} probe(s))")
    elif not result.candidates:
        print("no first bad stage")
    return result.exit_status


def _as_json(result: BisectResult, check: Any, args: argparse.Namespace) -> dict[str, Any]:
    good, bad = result.stages[0], result.stages[-1]
    fb = result.first_bad
    return {
        "series": good.series,
        "good": good.number,
        "bad": bad.number,
        "check": check.describe(),
        "invert": bool(args.invert),
        "mode": "all" if args.all else "bisect",
        "first_bad": fb.number if fb is not None else None,
        "first_bad_title": fb.title if fb is not None else None,
        "candidates": [s.number for s in result.candidates],
        "probes": [p.as_dict() for p in result.probes],
        "steps": result.steps,
        "aborted": result.aborted,
        "monotonic": result.monotonic,
        "transitions": [
            {
                "from": t.before.stage.number,
                "to": t.after.stage.number,
                "change": f"{t.before.verdict}->{t.after.verdict}",
                "skipped": list(t.skipped),
            }
            for t in (result.transitions or [])
        ],
        "notes": list(result.notes),
    }
