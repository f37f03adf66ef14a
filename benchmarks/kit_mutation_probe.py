"""Mutation probe for the conformance kit itself: which kit test catches which fault?

Writes a correct ``occupied`` plugin with ``vmapsim new-plugin``'s template
(a sorted list of in-use ranges), injects one fault of :data:`FAULTS` at a
time (an exact ``old -> new`` text replacement in the generated
``occupied.py``), runs the whole kit on it (``vmapsim.testing.suite
("occupied")``) in a fresh pytest process, and prints a Markdown table:
fault, caught or not, and the kit tests that failed.  The unmutated plugin
runs first and must pass.  Hypothesis is derandomized with no example
database, so a table is reproducible.  Everything happens in a temporary
directory; the working tree is never edited.

    python benchmarks/kit_mutation_probe.py              # every fault (~3 min)
    python benchmarks/kit_mutation_probe.py -k prev_gap  # names containing prev_gap
    python benchmarks/kit_mutation_probe.py --list

docs/plugins.md keeps the table ("What the kit catches").  A fault whose old
text is not found exactly once is reported as "not applied" (the template
moved on: fix the entry), never as caught.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NAME = "kitprobe"


@dataclass(frozen=True)
class Fault:
    """One fault: its name, what it breaks, and the edits that inject it."""

    name: str
    what: str
    edits: tuple[tuple[str, str], ...]


FAULTS: tuple[Fault, ...] = (
    Fault(
        "prev_gap_unclipped",
        "prev_gap returns the whole gap, not clipped to `below`",
        (("best = (s, min(e, below))", "best = (s, e)"),),
    ),
    Fault(
        "enomem_leaves_change",
        "occupy links the range, then reports -ENOMEM",
        (
            (
                '        if self.faults.should_fail(can_block, "kitprobe"):\n'
                "            return -errno.ENOMEM\n"
                "        i = bisect_left(self.starts, start)\n"
                "        self.starts.insert(i, start)\n"
                "        self.ranges.insert(i, (start, end, RESERVED))\n",
                "        i = bisect_left(self.starts, start)\n"
                "        self.starts.insert(i, start)\n"
                "        self.ranges.insert(i, (start, end, RESERVED))\n"
                '        if self.faults.should_fail(can_block, "kitprobe"):\n'
                "            return -errno.ENOMEM\n",
            ),
        ),
    ),
    Fault(
        "stale_after_partial_release",
        "releasing the tail of a range leaves the whole range in use",
        (("if e <= start or s >= end:", "if e <= start or s >= end or s < start:"),),
    ),
    Fault(
        "release_drops_tail",
        "releasing the head of a range frees its tail too",
        (("            if e > end:\n", "            if e > end and False:\n"),),
    ),
    Fault(
        "search_counts_nothing",
        "find_lowest_fit moves no counter",
        (
            ("        c = self.counters\n        c.walks += 1\n", "        c = Counters()\n"),
            ("            self.counters.nodes_visited += 1\n", ""),
        ),
    ),
    Fault(
        "no_overask",
        "the adjusted search asks for size, not size + align - 1",
        (("hi - lo >= size + align - 1", "hi - lo >= size"),),
    ),
    Fault(
        "search_ignores_vend",
        "the exact search checks the gap's end, not the window's",
        (("            if nva + size <= hi:\n", "            if nva + size <= ge:\n"),),
    ),
    Fault(
        "search_ignores_align",
        "the search does not align the start",
        (("nva = (lo + align - 1) // align * align", "nva = lo"),),
    ),
    Fault(
        "overlap_not_warned",
        "an overlapping occupy is refused silently",
        (("            self.warn(OVERLAP_WARNING % (start, end, other[0], other[1]))\n", ""),),
    ),
    Fault(
        "touching_refused",
        "occupy refuses a range touching one in use",
        (("self.ranges[i - 1][1] > start", "self.ranges[i - 1][1] >= start"),),
    ),
    Fault(
        "entry_not_reserved",
        "occupy stores None instead of RESERVED",
        (
            (
                "        self.ranges.insert(i, (start, end, RESERVED))\n        self.counters.stores",
                "        self.ranges.insert(i, (start, end, None))\n        self.counters.stores",
            ),
        ),
    ),
    Fault(
        "gap_enclosing_clipped",
        "gap_enclosing returns the gap from addr on, not the whole gap",
        (
            (
                "return (s, e) if s <= addr < e else None",
                "return (addr, e) if s <= addr < e else None",
            ),
        ),
    ),
)

TEST_FILE = """
import vmapsim.testing


class TestKit(vmapsim.testing.suite("occupied")):
    component = "{name}:{name}"
"""

CONFTEST = """
import importlib.util
import sys

import pytest
from hypothesis import Phase, settings

from vmapsim.framework import registry as _registry

settings.register_profile(
    "kitprobe", database=None, derandomize=True, phases=[Phase.explicit, Phase.generate]
)
settings.load_profile("kitprobe")

spec = importlib.util.spec_from_file_location(
    "vmapsim_{name}", "{pkg}/__init__.py", submodule_search_locations=["{pkg}"]
)
module = importlib.util.module_from_spec(spec)
sys.modules["vmapsim_{name}"] = module
spec.loader.exec_module(module)
from vmapsim_{name} import plugin  # noqa: E402

_load = _registry.load_registry


def load_registry(**kw):
    kw.setdefault("plugins", [("{name}", plugin)])
    return _load(**kw)


# the kit loads its registry (and its stage list) through load_registry()
for mod in ("vmapsim.testing.contracts", "vmapsim.testing.suite"):
    __import__(mod)
    sys.modules[mod].load_registry = load_registry
"""


def _setup(tmp: Path) -> Path:
    """Render the template plugin and a kit test for it; return the occupied.py path."""
    from vmapsim.tools.templates import render_plugin

    root = render_plugin(NAME, role="occupied", directory=tmp)
    pkg = root / f"vmapsim_{NAME}"
    tests = tmp / "kit"
    tests.mkdir()
    (tests / "conftest.py").write_text(CONFTEST.format(name=NAME, pkg=pkg))
    (tests / "test_kit.py").write_text(TEST_FILE.format(name=NAME))
    return pkg / "occupied.py"


def run_kit(tmp: Path, select: str | None = None, timeout: int = 600) -> tuple[str, list[str]]:
    """Run the kit in ``tmp/kit``: ("passed" | "caught" | "error", failing tests)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "kit"]
    if select:
        cmd += ["-k", select]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run(
            cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return "timeout", []
    failed = sorted(set(re.findall(r"^FAILED kit/test_kit.py::TestKit::(\S+)", proc.stdout, re.M)))
    if proc.returncode == 0:
        return "passed", []
    if proc.returncode == 1 and failed:
        return "caught", failed
    return "error", [proc.stdout[-400:] + proc.stderr[-400:]]


def probe(
    faults: list[Fault], select: str | None = None, *, baseline: bool = True
) -> list[tuple[Fault, str, list[str]]]:
    """Inject each fault in turn into a fresh template plugin and run the kit
    (first, with ``baseline``, the unmutated plugin, which must pass)."""
    out = []
    with tempfile.TemporaryDirectory(prefix="kitprobe-") as d:
        tmp = Path(d)
        path = _setup(tmp)
        clean = path.read_text()
        status, failed = run_kit(tmp, select) if baseline else ("passed", [])
        if status != "passed":
            raise SystemExit(f"the unmutated template plugin does not pass the kit: {failed}")
        for fault in faults:
            text = clean
            applied = True
            for old, new in fault.edits:
                if text.count(old) != 1:
                    applied = False
                    break
                text = text.replace(old, new)
            if not applied:
                out.append((fault, "not applied", []))
                continue
            path.write_text(text)
            status, failed = run_kit(tmp, select)
            out.append((fault, status, failed))
            path.write_text(clean)
    return out


def table(rows: list[tuple[Fault, str, list[str]]]) -> str:
    lines = ["| fault injected | caught | kit test(s) that fail |", "|---|---|---|"]
    for fault, status, failed in rows:
        tests = ", ".join(f"`{t}`" for t in failed) if status == "caught" else ""
        lines.append(f"| {fault.what} (`{fault.name}`) | {status} | {tests} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="names", default="", help="only faults whose name contains this")
    ap.add_argument("--select", default=None, help="pytest -k expression for the kit's tests")
    ap.add_argument("--list", action="store_true", help="list the faults, run nothing")
    args = ap.parse_args(argv)
    faults = [f for f in FAULTS if args.names in f.name]
    if args.list:
        for f in faults:
            print(f"{f.name:<30} {f.what}")
        return 0
    rows = probe(faults, args.select)
    print(table(rows))
    missed = [f.name for f, status, _ in rows if status != "caught"]
    print(
        f"\n{len(rows) - len(missed)} of {len(rows)} faults caught"
        + (f"; missed: {missed}" if missed else "")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
