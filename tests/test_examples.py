"""The examples run and still show what they claim."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_busy_index_costs_example(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["busy_index_costs.py", "--nr-ops", "1500", "--nr-cpus", "2"])
    runpy.run_path(str(EXAMPLES / "busy_index_costs.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert out.startswith("same trace of ")
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    rb_rot, maple_rot = map(float, rows["rotations"])
    assert rb_rot > maple_rot  # only the free tree still rotates with maple busy/lazy
