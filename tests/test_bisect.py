"""``vmapsim bisect``: the search (against a brute-force answer), the checks on a test-only
series whose answers are known by construction, the expression and --faults parsers, the
trace recorder, and the worked examples of docs/bisect.md against the stage ledger."""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
import sys
import textwrap
from pathlib import Path

import fakeseries
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmapsim
import vmapsim.framework.registry
from vmapsim import PAGE_SIZE
from vmapsim.checking.faultspec import FaultSpecError, parse_faults
from vmapsim.checking.trace import TracingAllocator, first_difference
from vmapsim.tools.bisect import (
    ABORT,
    BAD,
    BISECT_NR_OPS,
    GOOD,
    SKIP,
    Verdict,
    bisect_stages,
    metric_names,
    parse_metric,
    scan_stages,
)
from vmapsim.tools.cli import main
from vmapsim.tools.config import StageSelectionError, select_stages
from vmapsim.tools.expr import ExprError, parse_expr

ROOT = Path(__file__).resolve().parents[1]
FAKE = ["--series", "fake", "--workload", "fake_ops", "--param", "nr_ops=500"]


@pytest.fixture(scope="module")
def fake_reg():
    return fakeseries.fake_registry()


@pytest.fixture
def fake(fake_reg, monkeypatch):
    """The process registry is vmapsim's plus the fake series, for the command line."""
    monkeypatch.setattr(vmapsim.framework.registry, "_DEFAULT", [fake_reg])
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    return fake_reg


def bisect_json(capsys, *argv):
    rc = main(["bisect", *argv, "--json"])
    out, err = capsys.readouterr()
    assert rc in (0, 1, 3), err
    data = json.loads(out)
    return rc, data


def bisect_text(capsys, *argv):
    rc = main(["bisect", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


# -- the search, against brute force --------------------------------------------------


def _stages(n):
    return [fakeseries.fake_stage(i) for i in range(n)]


def _probe_from(verdicts, calls=None):
    def probe(stage):
        if calls is not None:
            calls.append(stage.number)
        return Verdict(verdicts[stage.number], f"scripted {verdicts[stage.number]}")

    return probe


@pytest.mark.parametrize("n", [2, 3, 5, 13])
def test_bisect_finds_every_possible_first_bad_stage(n):
    stages = _stages(n)
    for first in range(1, n):
        verdicts = [GOOD] * first + [BAD] * (n - first)
        calls = []
        res = bisect_stages(stages, _probe_from(verdicts, calls))
        assert res.first_bad is stages[first]
        assert res.exit_status == 0
        # the ends once each, then at most ceil(log2(n - 1)) halving steps
        assert calls[:2] == [0, n - 1]
        assert res.steps == len(calls) - 2 <= math.ceil(math.log2(n - 1))
        assert len(set(calls)) == len(calls)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(3, 13),
    data=st.data(),
)
def test_bisect_with_skips_names_the_answer_or_every_candidate(n, data):
    first = data.draw(st.integers(1, n - 1), label="first bad")
    skipped = data.draw(st.sets(st.integers(1, n - 2), max_size=n), label="skipped")
    verdicts = [GOOD] * first + [BAD] * (n - first)
    for i in skipped:
        verdicts[i] = SKIP
    stages = _stages(n)
    res = bisect_stages(stages, _probe_from(verdicts))
    if res.first_bad is not None:
        assert res.first_bad.number == first
    else:
        # ambiguous only because of skips: the candidates are skipped stages then a bad one,
        # and the true answer is among them
        nums = [s.number for s in res.candidates]
        assert first in nums
        assert all(verdicts[i] == SKIP for i in nums[:-1]) and verdicts[nums[-1]] == BAD
        assert res.exit_status == 1
    assert res.steps <= n - 2


def test_bisect_reports_wrong_ends():
    stages = _stages(5)
    res = bisect_stages(stages, _probe_from([BAD] * 5))
    assert res.first_bad is None and res.exit_status == 1
    assert "stage 0 (--good) is bad" in res.notes[0]
    res = bisect_stages(stages, _probe_from([GOOD] * 5))
    assert res.first_bad is None
    assert "stage 4 (--bad) is good" in res.notes[0]
    # --no-verify trusts them, as git bisect does: the search still ends on the bad end
    res = bisect_stages(stages, _probe_from([GOOD] * 5), verify=False)
    assert res.first_bad is stages[4] and res.steps == 2


def test_bisect_invert_finds_where_a_check_stops_holding():
    stages = _stages(8)
    verdicts = [BAD] * 5 + [GOOD] * 3  # "holds" until 4
    res = bisect_stages(stages, _probe_from(verdicts), invert=True)
    assert res.first_bad is stages[5]
    assert all(p.verdict in (GOOD, BAD) for p in res.probes)
    assert res.probes[0].verdict == GOOD  # stage 0 held: good under --invert


def test_bisect_abort_stops_at_once():
    stages = _stages(9)
    verdicts = [GOOD, GOOD, GOOD, GOOD, ABORT, BAD, BAD, BAD, BAD]
    calls = []
    res = bisect_stages(stages, _probe_from(verdicts, calls))
    assert res.aborted and res.exit_status == 3 and res.first_bad is None
    assert calls[-1] == 4


def test_a_probe_that_raises_aborts():
    def probe(stage):
        raise RuntimeError("kaboom")

    res = bisect_stages(_stages(3), probe)
    assert res.aborted and "RuntimeError: kaboom" in res.probes[-1].detail


def test_scan_names_every_transition():
    stages = _stages(13)
    verdicts = [GOOD] * 11 + [BAD] + [GOOD]
    res = scan_stages(stages, _probe_from(verdicts))
    assert [p.stage.number for p in res.probes] == list(range(13))
    assert res.first_bad is stages[11]
    assert res.monotonic is False
    assert [t.describe() for t in res.transitions] == ["good->bad at 10->11", "bad->good at 11->12"]
    assert any("not monotonic" in n and "10->11" in n and "11->12" in n for n in res.notes)
    monotonic = scan_stages(stages, _probe_from([GOOD] * 4 + [BAD] * 9))
    assert monotonic.monotonic is True and monotonic.first_bad is stages[4]
    assert not any("monotonic" in n for n in monotonic.notes)


def test_scan_with_a_skip_inside_the_change_is_ambiguous():
    stages = _stages(6)
    res = scan_stages(stages, _probe_from([GOOD, GOOD, SKIP, BAD, BAD, BAD]))
    assert res.first_bad is None
    assert [s.number for s in res.candidates] == [2, 3]
    assert res.transitions[0].skipped == (2,)


# -- stage selections -------------------------------------------------------------------


def test_select_stages(fake_reg):
    def keys(spec, **kw):
        return [s.number for s in select_stages(spec, fake_reg, **kw).stages]

    assert keys("all", series="fake") == list(range(13))
    assert keys("fake:4") == [4]
    assert keys("4..6", series="fake") == [4, 5, 6]
    assert keys("fake:10..") == [10, 11, 12]
    assert keys("..2", series="fake") == [0, 1, 2]
    assert keys("fake:12,0,4,4") == [0, 4, 12]
    assert keys("0") == [0]  # bare numbers: series maple
    maple = sorted(s.number for s in fake_reg.stages.values() if s.series == "maple")
    assert keys("0..12") == [n for n in maple if n <= 12]
    sel = select_stages("fake:3,20,21", fake_reg, strict=False)
    assert sel.keys == ("fake:3",) and sel.missing == ("fake:20", "fake:21")


@pytest.mark.parametrize(
    ("spec", "series", "message"),
    [
        ("fake:20", None, "fake:20 is not registered"),
        ("6..4", "fake", "runs backwards"),
        ("x", None, "'x' is not N, A..B"),
        ("", None, "empty selection"),
        ("nope:1", None, "series 'nope' has no registered stage; series: fake, maple"),
        ("fake:1", "maple", "names series 'fake', but the series is 'maple'"),
        ("20..30", "fake", "no stage of series 'fake' in 20..30"),
        (":3", None, "empty series name"),
    ],
)
def test_select_stages_errors(fake_reg, spec, series, message):
    with pytest.raises(StageSelectionError) as exc:
        select_stages(spec, fake_reg, series=series)
    assert message in str(exc.value)


# -- expressions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "a < 40",
        "a / b >= 2.5",
        "40 < a <= 72",
        "a + b * 2 == 90 or not b",
        "-(a - b) / 4 != 1 and (a > 1)",
        "a - -b > +3",
        "not a < 3",
    ],
)
def test_expressions_evaluate_as_python_does(source):
    env = {"a": 50, "b": 20}
    expr = parse_expr(source)
    # Python's evaluator is the oracle here, on expressions we wrote ourselves
    expected = eval(compile(ast.parse(source, mode="eval"), "<t>", "eval"), {}, dict(env))
    assert expr.evaluate(env) == expected
    assert set(expr.names) <= {"a", "b"}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__import__('os').system('true') == 0", "function calls are not allowed"),
        ("open('x') < 1", "function calls are not allowed"),
        ("a ** 2 < 1", "'**' is not allowed"),
        ("a // 2 < 1", "'//' is not allowed"),
        ("a[0] < 1", "subscripts are not allowed"),
        ("'x' < a", "only numbers are allowed as constants"),
        ("True == a", "only numbers are allowed as constants"),
        ("(lambda: 1)() < 1", "not allowed"),
        ("a in b", "'in' is not allowed"),
        ("(a + b).real < 1", "attribute access is allowed only on names"),
        ("[x for x in a] < 1", "comprehensions are not allowed"),
        ("a", "must be a comparison"),
        ("a <", "not a valid expression"),
        ("", "non-empty"),
    ],
)
def test_expressions_reject_everything_else(source, message):
    with pytest.raises(ExprError) as exc:
        parse_expr(source)
    assert message in str(exc.value)


def test_division_by_zero_is_an_expression_error():
    with pytest.raises(ExprError, match="division by zero"):
        parse_expr("a / b < 1").evaluate({"a": 1, "b": 0})


def test_metric_names():
    for name in (
        "struct_vmap_area_size",
        "cache_lines_per_op",
        "rotations",
        "lock.vmap_purge_lock",
        "lock.free_vmap_area_lock_per_op",
        "workload.failed",
        "ops",
    ):
        assert parse_metric(f"{name} >= 0").names == (name,)
    with pytest.raises(ExprError) as exc:
        parse_metric("cache_line_per_op < 40")
    text = str(exc.value)
    assert "unknown name 'cache_line_per_op'" in text
    for listed in ("cache_lines_per_op", "struct_vmap_area_size", "lock.NAME", "workload.OP"):
        assert listed in text
    assert "cache_lines_per_op" in metric_names()


# -- --faults ----------------------------------------------------------------------------


def test_faults_spec():
    cfg = parse_faults("maple_node:probability=5", seed=9)
    assert (cfg.probability, cfg.cache_filter, cfg.ignore_gfp_wait, cfg.seed) == (
        5,
        frozenset({"maple_node"}),
        True,
        9,
    )
    cfg = parse_faults("maple_node,vmap_area:any:probability=100:interval=3:times=2:seed=4")
    assert cfg.cache_filter == {"maple_node", "vmap_area"} and not cfg.ignore_gfp_wait
    assert (cfg.interval, cfg.times, cfg.seed) == (3, 2, 4)
    assert parse_faults("all:nowait:probability=1").cache_filter is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("maple_node:probability=0.05", "percentage"),
        ("slab:probability=5", "unknown cache(s) slab"),
        ("maple_node", "give probability=P"),
        ("maple_node:probability=101", "probability"),
        ("maple_node:often:probability=5", "'often' is not nowait, any or KEY=VALUE"),
        (":probability=5", "must start with the cache"),
    ],
)
def test_faults_spec_errors(spec, message):
    with pytest.raises(FaultSpecError) as exc:
        parse_faults(spec)
    assert message in str(exc.value)


def test_faults_reach_the_allocator():
    # a vmap_area failure on every non-blocking request: the NE-fit preload path is
    # non-blocking in the kernel; blocking requests must never fail with 'nowait'
    cfg = parse_faults("vmap_area:nowait:probability=100")
    a = vmapsim.build(0, failslab=cfg)
    assert a.faults.config is cfg
    assert a.faults.should_fail(True, "vmap_area") is False
    assert a.faults.should_fail(False, "maple_node") is False
    assert a.faults.should_fail(False, "vmap_area") is True


# -- traces --------------------------------------------------------------------------------


def test_tracing_proxy_records_what_the_allocator_answers():
    traced = TracingAllocator(vmapsim.build(0, nr_cpus=2))
    plain = vmapsim.build(0, nr_cpus=2)
    script = [
        ("vmalloc", (3 * PAGE_SIZE,), {"cpu": 1}),
        ("vmalloc_node", (PAGE_SIZE, 8 * PAGE_SIZE), {}),
    ]
    answers = []
    for op, args, kwargs in script:
        answers.append(getattr(plain, op)(*args, **kwargs))
        getattr(traced, op)(*args, **kwargs)
    traced.vfree(answers[0], cpu=1)
    va = traced.alloc_vmap_area(PAGE_SIZE, PAGE_SIZE, plain.vmalloc_start, plain.vmalloc_end)
    traced.free_vmap_area_noflush(va)
    assert [t.op for t in traced.trace] == [
        "vmalloc",
        "vmalloc_node",
        "vfree",
        "alloc_vmap_area",
        "free_vmap_area_noflush",
    ]
    assert [t.result for t in traced.trace[:2]] == answers
    assert traced.trace[0].kwargs == (("cpu", 1),)
    assert traced.trace[3].result == (va.va_start, va.va_end)
    assert traced.trace[4].args == ((va.va_start, va.va_end),)
    # everything else passes straight through; nothing else is recorded
    assert traced.nr_cpus == 2 and traced.struct_vmap_area_size == 72
    traced.check_invariants()
    assert len(traced.trace) == 5


def test_tracing_records_errors_and_reraises():
    traced = TracingAllocator(vmapsim.build(0))
    with pytest.raises(vmapsim.VmapError):
        traced.alloc_vmap_area(PAGE_SIZE, PAGE_SIZE, traced.vmalloc_start, traced.vmalloc_start)
    assert traced.trace[-1].result[0] == "error"


def test_untraced_runs_use_the_allocator_itself(fake_reg):
    from vmapsim.tools.bisect import WorkloadRunner

    runner = WorkloadRunner(fake_reg, "fake_ops", {"nr_ops": 50})
    run = runner.run(fake_reg.stage("fake:0"))
    assert type(run.allocator) is vmapsim.VmapAllocator and run.trace is None
    assert runner.effective_params() == {"seed": 0, "nr_ops": 50}
    assert WorkloadRunner(fake_reg, "fake_ops").effective_params()["nr_ops"] == BISECT_NR_OPS


def test_first_difference():
    a = TracingAllocator(vmapsim.build(0))
    b = TracingAllocator(vmapsim.build(0))
    for t in (a, b):
        t.vmalloc(PAGE_SIZE)
        t.vmalloc(2 * PAGE_SIZE)
    assert first_difference(a.trace, b.trace) is None
    b.vmalloc(PAGE_SIZE)
    d = first_difference(a.trace, b.trace)
    assert d.index == 2 and d.expected is None and "ended after 2 ops" in d.describe()
    a.vmalloc(4 * PAGE_SIZE)  # a different request at op 2
    d = first_difference(a.trace, b.trace)
    assert d.index == 2 and "vmalloc(16384)" in d.describe() and "vmalloc(4096)" in d.describe()


# -- the checks, on the fake series (answers known by construction) ------------------------


def test_metric_struct_shrink_on_fake(capsys, fake):
    rc, data = bisect_json(capsys, *FAKE, "--metric", "struct_vmap_area_size < 72")
    assert rc == 0
    assert data["first_bad"] == fakeseries.SHRINKS_AT
    assert data["first_bad_title"] == f"fake: patch {fakeseries.SHRINKS_AT}"
    assert data["steps"] <= 4 and data["good"] == 0 and data["bad"] == 12
    roles = [p["role"] for p in data["probes"]]
    assert roles[:2] == ["good end", "bad end"] and len(roles) == data["steps"] + 2
    for p in data["probes"]:
        size = 48 if p["stage"] >= fakeseries.SHRINKS_AT else 72
        assert p["detail"].startswith(f"struct_vmap_area_size={size}:")
        assert p["verdict"] == (BAD if size < 72 else GOOD)


def test_metric_over_counters_on_fake(capsys, fake):
    # the rb busy/lazy trees never allocate maple nodes; maple ones do (from stage 6)
    rc, data = bisect_json(capsys, *FAKE, "--metric", "ops > 100 and node_allocs_per_op > 0")
    assert rc == 0 and data["first_bad"] == fakeseries.MAPLE_NODES_FROM
    assert "on workload fake_ops (seed=0 nr_ops=500)" in data["check"]
    assert all(re.search(r"ops=\d{3,}", p["detail"]) for p in data["probes"])


def test_log_with_faults_on_fake(capsys, fake):
    common = [*FAKE, "--log", "nonexistent vm area", "--faults", "maple_node:probability=5"]
    rc, data = bisect_json(capsys, "--good", "0", "--bad", "4", *common)
    assert rc == 0 and data["first_bad"] == fakeseries.LOSS_FROM
    rc, data = bisect_json(capsys, "--good", "1", "--bad", "12", "--invert", *common)
    assert rc == 0 and data["first_bad"] == fakeseries.LOSS_UNTIL + 1
    assert data["invert"] is True
    bad_end = data["probes"][1]
    assert bad_end["verdict"] == BAD and bad_end["detail"].startswith("no match")
    # without --faults the fake never loses anything: the bad end is good
    rc, out, _err = bisect_text(capsys, "--good", "0", "--bad", "4", *FAKE, "--log", "nonexistent")
    assert rc == 1
    assert "stage 4 (--bad) is good by this check" in out


def test_log_ubsan_appears_and_goes_on_fake(capsys, fake):
    rc, data = bisect_json(capsys, *FAKE, "--good", "0", "--bad", "11", "--log", "UBSAN")
    assert rc == 0 and data["first_bad"] == fakeseries.UBSAN_AT
    rc, data = bisect_json(
        capsys, *FAKE, "--good", "11", "--bad", "12", "--invert", "--log", "UBSAN"
    )
    assert rc == 0 and data["first_bad"] == fakeseries.UBSAN_AT + 1 and data["steps"] == 0


def test_all_reports_non_monotonic_verdicts_on_fake(capsys, fake):
    rc, out, _err = bisect_text(capsys, *FAKE, "--all", "--log", "UBSAN")
    assert rc == 0
    rows = re.findall(r"^\s+(\d+)\s+(good|bad)\s", out, re.M)
    assert [int(n) for n, _v in rows] == list(range(13))
    assert [v for _n, v in rows] == [GOOD] * 11 + [BAD, GOOD]
    assert "not monotonic" in out and "good->bad at 10->11" in out and "bad->good at 11->12" in out
    assert "first bad stage: 11  fake: patch 11" in out
    rc, data = bisect_json(capsys, *FAKE, "--all", "--log", "UBSAN")
    assert data["monotonic"] is False and data["mode"] == "all" and data["first_bad"] == 11
    assert [(t["from"], t["to"], t["change"]) for t in data["transitions"]] == [
        (10, 11, "good->bad"),
        (11, 12, "bad->good"),
    ]


def test_trace_on_fake(capsys, fake):
    rc, out, _err = bisect_text(
        capsys, "--series", "fake", "--trace", "fake_ops", "--param", "nr_ops=500"
    )
    assert rc == 0
    assert f"first bad stage: {fakeseries.TRACE_PARTS_AT}  fake: patch 10" in out
    assert "reference trace:" in out
    # the detail is the extra vmalloc the fake workload makes at op EXTRA_AT
    assert re.search(rf"op {fakeseries.EXTRA_AT}: vmalloc\(4096\) -> 0x[0-9a-f]+ at stage 10", out)
    assert "same trace" in out


def test_text_output_names_each_probe_and_the_answer(capsys, fake):
    rc, out, _err = bisect_text(capsys, *FAKE, "--metric", "struct_vmap_area_size < 72")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("bisect fake:0..12 (13 stages), check: metric")
    # the struct size is a property of the built allocator: no workload runs for it
    assert "(properties of the built allocator: no workload run)" in lines[0]
    probes = re.findall(r"^  stage\s+(\d+)\s+(good|bad|skip)\s+\[(.+?)\]\s+(.*)$", out, re.M)
    assert probes and all(title == f"fake: patch {n}" for n, _v, _r, title in probes)
    assert lines[-2] == "first bad stage: 4  fake: patch 4"


def test_run_check_exit_codes(capsys, fake, tmp_path):
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            n = int(os.environ["VMAPSIM_STAGE"].rpartition(":")[2])
            codes = {int(k): int(v) for k, v in (i.split("=") for i in sys.argv[1:])}
            sys.exit(codes.get(n, 0 if n < 7 else 1))
            """
        )
    )
    cmd = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    rc, data = bisect_json(capsys, "--series", "fake", "--run", cmd)
    assert rc == 0 and data["first_bad"] == 7
    assert all(p["detail"].startswith("exit ") for p in data["probes"])
    # 125 is a skip; next to the change it leaves the answer open
    rc, data = bisect_json(capsys, "--series", "fake", "--run", f"{cmd} 6=125")
    assert rc == 1 and data["first_bad"] is None and data["candidates"] == [6, 7]
    # other bad codes are bad; >= 128 aborts
    rc, data = bisect_json(capsys, "--series", "fake", "--run", f"{cmd} 9=127 8=2")
    assert rc == 0 and data["first_bad"] == 7
    rc, data = bisect_json(capsys, "--series", "fake", "--run", f"{cmd} 6=128")
    assert rc == 3 and data["aborted"] and data["probes"][-1]["verdict"] == ABORT


def test_pytest_check_on_fake(capsys, fake, tmp_path, monkeypatch):
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import fakeseries

            def pytest_vmapsim_registry(config):
                return fakeseries.fake_registry()
            """
        )
    )
    (tmp_path / "test_probe.py").write_text(
        "def test_probe(stage):\n    assert stage.number < 7, 'broken from 7'\n"
    )
    monkeypatch.chdir(tmp_path)
    rc, data = bisect_json(
        capsys,
        *("--series", "fake", "--good", "5", "--bad", "8", "--no-verify"),
        *("--pytest", "test_probe.py"),
    )
    assert rc == 0 and data["first_bad"] == 7
    assert [p["stage"] for p in data["probes"]] == [6, 7]
    bad = [p for p in data["probes"] if p["verdict"] == BAD]
    assert bad and all("broken from 7" in p["detail"] for p in bad)
    assert any("1 passed" in p["detail"] for p in data["probes"])
    # a marked test outside the probed stage is skipped there: the probe is a skip
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.vmapsim_stages('fake:0..5')\n"
        "def test_marked(stage):\n    pass\n"
    )
    from vmapsim.tools.bisect import PytestCheck

    v = PytestCheck("test_marked.py").probe(fake.stage("fake:7"))
    assert v.verdict == SKIP and "no stage in common" in v.detail


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metric", "nope < 1"], "unknown name 'nope'"),
        (["--metric", "open('x') < 1"], "function calls are not allowed"),
        (["--log", "("], "not a valid regular expression"),
        (["--good", "3", "--bad", "3", "--log", "x"], "must be a lower stage than --bad"),
        (["--good", "20", "--log", "x"], "fake:20 is not registered"),
        (["--good", "0..3", "--log", "x"], "must name one stage"),
        (["--series", "nope", "--log", "x"], "series 'nope' has no registered stage"),
        (["--workload", "nope", "--log", "x"], "workload 'nope' is not registered"),
        (["--faults", "slab:probability=1", "--log", "x"], "unknown cache(s) slab"),
        (["--run", "true", "--seed", "3"], "--seed: apply to --trace, --metric and --log only"),
        (["--trace", "mixed", "--workload", "fake_ops"], "name the workload once"),
    ],
)
def test_usage_errors_exit_2(capsys, fake, argv, message):
    argv = argv if "--series" in argv else ["--series", "fake", *argv]
    rc = main(["bisect", *argv])
    _out, err = capsys.readouterr()
    assert rc == 2, err
    assert message in err and "Traceback" not in err


def test_a_single_stage_series_has_nothing_to_bisect(capsys, monkeypatch):
    monkeypatch.setattr(
        vmapsim.framework.registry, "_DEFAULT", [vmapsim.framework.registry.load_registry()]
    )
    reg = vmapsim.framework.registry.get_registry()
    if len(select_stages("all", reg).stages) > 1:
        pytest.skip("series maple has more than one stage now")
    rc = main(["bisect", "--log", "x"])
    assert rc == 2
    assert "only stage 0 registered" in capsys.readouterr().err


# -- the worked examples of docs/bisect.md, against the ledger ------------------------------

#: what the ledger (docs/stages.md, and ../shared/stages.md) says each example must find
LEDGER = {
    "struct_vmap_area_size < 72": 4,  # row 4: struct vmap_area 72 -> 48 B
    "nonexistent vm area": 5,  # row 5: stages 1-4 lose an area under injected failure
    "--good 0 --bad 11 --log": 11,  # row 11: cross-CPU retire, KASAN use-after-free
    "--good 11 --bad 12 --invert --log": 12,  # row 12: owner_cpu: no use-after-free
    "--all --good 0 --bad 12 --log": 11,
    "--trace mixed": 10,  # stages 0-9 share the trace (align <= PAGE_SIZE); 10's overlay changes it
    # row 11: vmap_bump_refill()'s kvzalloc falls back to vmalloc when its order-6
    # kmalloc fails, and that vmalloc refills again: a kernel stack overflow
    "stack guard page": 11,
}


def doc_examples() -> list[tuple[str, int]]:
    """(command, answer) for each ``vmapsim bisect`` line of docs/bisect.md's worked examples
    that is followed by ``# first bad stage: N``."""
    text = (ROOT / "docs" / "bisect.md").read_text()
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"^(vmapsim bisect [^\n]+)\n# first bad stage: (\d+)", section, re.M)
    return [(cmd, int(n)) for cmd, n in found]


def test_docs_examples_agree_with_the_ledger():
    examples = doc_examples()
    assert len(examples) == len(LEDGER)
    for cmd, answer in examples:
        keys = [k for k in LEDGER if k in cmd]
        assert len(keys) == 1, cmd
        assert LEDGER[keys[0]] == answer, cmd


def _needs(cmd: str) -> list[str]:
    """Stages (and workloads) of series maple the example needs that are not registered."""
    reg = vmapsim.framework.registry.get_registry()
    argv = shlex.split(cmd)
    good = int(argv[argv.index("--good") + 1]) if "--good" in argv else 0
    bad = int(argv[argv.index("--bad") + 1]) if "--bad" in argv else 12
    missing = [f"maple:{n}" for n in range(good, bad + 1) if f"maple:{n}" not in reg.stages]
    if "--workload" in argv:
        wl = argv[argv.index("--workload") + 1]
        if wl not in reg.workloads:
            missing.append(f"workload {wl}")
    return missing


@pytest.mark.parametrize(("cmd", "answer"), doc_examples(), ids=lambda v: str(v)[:60])
def test_worked_example(capsys, monkeypatch, cmd, answer):
    missing = _needs(cmd)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not registered yet)")
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    rc, data = bisect_json(capsys, *shlex.split(cmd)[2:])
    assert rc == 0, data["notes"]
    assert data["first_bad"] == answer
    if "--all" in cmd:
        assert data["monotonic"] is False
        assert [(t["from"], t["to"]) for t in data["transitions"]] == [(10, 11), (11, 12)]


def _top(good: int) -> int:
    """The highest stage n of maple with every stage good..n registered."""
    reg = vmapsim.framework.registry.get_registry()
    n = good
    while f"maple:{n + 1}" in reg.stages:
        n += 1
    return n


@pytest.mark.parametrize(("cmd", "answer"), doc_examples(), ids=lambda v: str(v)[:60])
def test_worked_example_on_the_stages_registered_now(capsys, monkeypatch, cmd, answer):
    """The same command with --bad cut to the stages that exist: the ledger's answer if it
    is among them, else no change at all (every example's check is steady below its answer)."""
    argv = shlex.split(cmd)[2:]
    good = int(argv[argv.index("--good") + 1])
    bad = int(argv[argv.index("--bad") + 1])
    top = min(bad, _top(good))
    reg = vmapsim.framework.registry.get_registry()
    if "--workload" in argv and argv[argv.index("--workload") + 1] not in reg.workloads:
        pytest.skip(f"needs workload {argv[argv.index('--workload') + 1]}")
    if top <= good or (top < answer and "--all" in argv):
        pytest.skip(f"needs maple:{good + 1}..{answer} (registered up to maple:{top})")
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    argv[argv.index("--bad") + 1] = str(top)
    rc, data = bisect_json(capsys, *argv)
    if top >= answer:
        assert rc == 0 and data["first_bad"] == answer, data["notes"]
    else:
        assert rc == 1 and data["first_bad"] is None
        assert any(f"stage {top} (--bad) is good" in n for n in data["notes"]), data["notes"]


def test_mixed_workload_parameters():
    from vmapsim.framework.workloads import mixed

    def trace(**params):
        t = TracingAllocator(vmapsim.build(0))
        report = mixed(t, nr_ops=400, **params)
        return t.trace, report

    default, rep = trace()
    assert all(op.same(o) for op, o in zip(default, trace(aligned_pct=10)[0], strict=True))
    assert any(op.op == "vmalloc_node" for op in default) and "aligned_pct" not in rep.params
    plain, rep = trace(aligned_pct=0)
    assert not any(op.op == "vmalloc_node" for op in plain)
    nowait, rep = trace(nowait_pct=50, aligned_pct=0)
    calls = [op for op in nowait if op.op == "vmalloc_node"]
    assert calls and rep.ops["vmalloc_nowait"] == len(calls)
    assert all(dict(op.kwargs)["gfp"] == int(vmapsim.kernel.gfp.GFP_NOWAIT) for op in calls)
    assert all(op.args[1] == PAGE_SIZE for op in calls)
    for bad in ({"nowait_pct": 101}, {"aligned_pct": -1}, {"nowait_pct": 0.5}):
        with pytest.raises(vmapsim.VmapArgumentError, match="percentage"):
            mixed(vmapsim.build(0), nr_ops=10, **bad)


def test_the_same_examples_on_the_fake_series(capsys, fake):
    """Every worked example's flags, on the fake series: the machinery answers what it was
    built to answer, whatever stages of maple exist."""
    known = {
        "struct_vmap_area_size < 72": fakeseries.SHRINKS_AT,
        "nonexistent vm area": fakeseries.LOSS_UNTIL + 1,
        "--good 0 --bad 11 --log": fakeseries.UBSAN_AT,
        "--good 11 --bad 12 --invert --log": fakeseries.UBSAN_AT + 1,
        "--all --good 0 --bad 12 --log": fakeseries.UBSAN_AT,
        "--trace mixed": fakeseries.TRACE_PARTS_AT,
    }
    for cmd, _answer in doc_examples():
        argv = shlex.split(cmd)[2:]
        if "--workload" in argv:
            argv[argv.index("--workload") + 1] = "fake_ops"
        elif "--trace" in argv:
            argv[argv.index("--trace") + 1] = "fake_ops"
        else:
            argv += ["--workload", "fake_ops"]
        keys = [k for k in known if k in cmd]
        if not keys:
            # the stack-guard-page example needs the overlay's kvzalloc'd
            # descriptor, which no fake stage has: nothing to answer there
            assert "stack guard page" in cmd
            continue
        rc, data = bisect_json(capsys, "--series", "fake", "--param", "nr_ops=500", *argv)
        (key,) = keys
        assert rc == 0 and data["first_bad"] == known[key], (cmd, data["notes"])


def test_bench_bisect_runs(capsys):
    import runpy

    bench = runpy.run_path(str(ROOT / "benchmarks" / "bench_bisect.py"))
    assert bench["main"](["--repeat", "1", "--nr-ops", "200", "--series", "bench"]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^(metric|log)\s.*first bad: (\d+)$", out, re.M))
    assert rows == {"metric": "4", "log": "12"}


def test_with_swaps_a_component_on_every_probe(capsys) -> None:
    """--with ROLE=NAME builds every probed stage with that component: with the
    rb busy/lazy trees kept, stage 4 still rotates, so 'rotations == 0' never
    turns bad (exit 1); without it, stage 4 is the first stage with no rb work."""
    check = ["--metric", "rotations == 0", "--param", "nr_ops=300"]
    assert main(["bisect", "--good", "0", "--bad", "4", *check]) == 0
    assert "first bad stage: 4" in capsys.readouterr().out
    rc = main(
        ["bisect", "--good", "0", "--bad", "4", *check, "--with", "busy=rb", "--with", "lazy=rb"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "with busy=rb lazy=rb" in out
    assert main(["bisect", "--good", "0", "--bad", "4", "--run", "true", "--with", "busy=rb"]) == 2
    assert "--with" in capsys.readouterr().err


# -- patches 10-12 as posted (issue #19): more behaviour changes bisect finds ------------------


def test_first_stage_whose_bump_areas_skip_the_busy_tree(capsys, monkeypatch):
    """Patch 11 drops patch 10's vmap_bump_lock and busy.mt insert: the bump runs
    under preempt_disable() only (VA_FROM_BUMP_CHUNK areas are in no busy tree).
    The first stage that takes preempt_disable is 11; the first with the overlay
    at all (vmap_bump_lock) is 10."""
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    ops = ["--param", "nr_ops=600"]
    rc, data = bisect_json(
        capsys, "--good", "0", "--bad", "12", *ops, "--metric", "lock.preempt_disable > 0"
    )
    assert rc == 0 and data["first_bad"] == 11, data["notes"]
    rc, data = bisect_json(
        capsys, "--good", "0", "--bad", "10", *ops, "--metric", "lock.vmap_bump_lock > 0"
    )
    assert rc == 0 and data["first_bad"] == 10, data["notes"]


def test_first_stage_with_a_use_after_free_under_a_stress_run(capsys, monkeypatch):
    """Patch 11's cross-CPU retirement, found by bisect on a stress-sized mixed
    run with frees on random CPUs; patch 12 fixes it (--invert from 11)."""
    monkeypatch.delenv("VMAPSIM_STAGE", raising=False)
    common = ["--log", "KASAN: use-after-free", "--workload", "mixed", "--nr-cpus", "8"]
    rc, data = bisect_json(capsys, "--good", "0", "--bad", "11", *common)
    assert rc == 0 and data["first_bad"] == 11, data["notes"]
    rc, data = bisect_json(capsys, "--good", "11", "--bad", "12", "--invert", *common)
    assert rc == 0 and data["first_bad"] == 12, data["notes"]
