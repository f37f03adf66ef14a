"""A real SIGINT to a running `vmapsim compare` / `vmapsim run` (issue #24, item 1).

The first SIGINT stops the work: compare terminates its worker processes (no
orphans) and prints what finished, rows marked partial; run prints its
counters so far; both exit 130 with one ``vmapsim: interrupted`` line and no
traceback.  A second SIGINT exits at once.  The signal goes to the parent
process alone (what ``kill -INT``, ``timeout -s INT`` and CI cancel send).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

VMAPSIM = [sys.executable, "-m", "vmapsim.tools.cli"]


def _start(*args: str) -> subprocess.Popen[str]:
    # a test runner may start us with SIGINT ignored (a background job); the
    # child gets the default disposition, so Python installs its handler
    return subprocess.Popen(
        [*VMAPSIM, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    if not path.exists():  # pragma: no cover - not Linux
        pytest.skip("needs /proc/PID/task/PID/children")
    return [int(x) for x in path.read_text().split()]


def _wait_for(pred, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[1].startswith("Z"))


def _compare_until_one_done() -> tuple[subprocess.Popen[str], list[int]]:
    # long enough to interrupt: 3 columns x 3 subtests x 2 reps, 2 workers
    p = _start(
        "compare", "0", "4", "7", "--mask", "0x7", "--test-loop-count", "20000",
        "--reps", "2", "--jobs", "2", "--format", "csv",
    )  # fmt: skip
    kids: list[int] = []

    def two_workers() -> bool:
        kids[:] = _children(p.pid)
        return len(kids) >= 2

    _wait_for(two_workers)
    return p, kids


def test_first_sigint_stops_compare_prints_what_finished_and_exits_130():
    p, kids = _compare_until_one_done()
    time.sleep(2.0)  # let some runs finish (or none: then nothing is printed)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1].startswith("vmapsim: interrupted")
    for pid in kids:  # the workers are gone, not orphaned
        _wait_for(lambda pid=pid: not _alive(pid), timeout=10)
    if out:  # what finished, each row marked as the partial result it is
        lines = out.strip().splitlines()
        assert lines[0].startswith("test,stage,components,column")
        assert len(lines) >= 2
        assert all("partial" in line for line in lines[1:])


def test_second_sigint_exits_at_once():
    p, kids = _compare_until_one_done()
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    assert p.returncode == 130
    for pid in kids:
        _wait_for(lambda pid=pid: not _alive(pid), timeout=10)


def test_sigint_to_run_prints_counters_so_far_and_one_line():
    p = _start("run", "--stage", "0", "--mask", "4", "--test-loop-count", "200000")
    # the header comes at once, before the run (also off a terminal)
    first = p.stdout.readline()
    assert first.startswith("stage maple:0 (command line)")
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == "vmapsim: interrupted"
    assert "counters so far (partial run)" in out
    assert "alloc_calls" in out


def test_sigint_to_bisect_says_what_was_probed_and_exits_130(tmp_path):
    marker = tmp_path / "probed"
    # each probe: note the stage, then take long (the good end is probed first)
    cmd = f'echo "$VMAPSIM_STAGE" >> {marker}; sleep 30'
    p = _start("bisect", "--good", "0", "--bad", "12", "--run", cmd)
    _wait_for(marker.exists)
    kids = _children(p.pid)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130
    assert "Traceback" not in err
    assert err.rstrip().splitlines()[-1] == "vmapsim: interrupted"
    assert "bisect interrupted after 0 probe(s): no verdict (partial)" in out
    for pid in kids:  # the probe's command does not outlive the bisect
        _wait_for(lambda pid=pid: not _alive(pid), timeout=10)
