"""Mutation probe: does the test suite catch small wrong changes to the source?

Applies each mutation of :data:`MUTATIONS` (exact ``old -> new`` text
replacements in one file) to a temporary copy of the project, runs that
mutation's tests there with ``pytest -x -q``, and prints a Markdown table:
mutation, kind, caught or not, and the test(s) that failed (with ``-x``, the
first).  "caught" means pytest reported failures; a run that passes is
"survived"; a hang past ``--timeout`` or a pytest error (exit code other
than 0 or 1) is reported as such and never counted as caught.  The working
tree is never edited: the copy lives in a temporary directory, its packages
are put first on ``PYTHONPATH`` (ahead of the editable install), and each
mutation is undone in the copy before the next is applied.

    python benchmarks/mutation_probe.py            # every mutation
    python benchmarks/mutation_probe.py -k rb      # names containing "rb"
    python benchmarks/mutation_probe.py --list     # the list, nothing run

Hypothesis runs with the project's ``ci`` profile (``CI=1``: derandomized,
no example database), so a table is reproducible.  A mutation whose old
text is not found exactly once is reported as "not applied" (the source
moved on; fix the entry), never as caught.  Before the mutations, the union
of their tests runs once unmutated; if that fails the probe stops.

The list is data: add a :class:`Mutation` with its file, edits and tests.
Not collected by pytest (this directory is not under ``testpaths``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RB = "plugins/rbtree/rbtree.py"
RB_FREE = "plugins/rbtree/free.py"
RB_COALESCE = "plugins/rbtree/coalesce.py"
MAPLE_WRITE = "plugins/mapletree/write.py"
ALLOC = "core/kernel/alloc.py"
PURGE = "core/kernel/purge.py"

RB_TESTS = ("tests/rbtree",)
MAPLE_TESTS = ("tests/mapletree",)
#: quick rule tests first, the lockstep state machine last (-x stops at the first failure)
CORE_TESTS = (
    "tests/test_mutation_catches.py",
    "tests/test_alloc_rules.py",
    "tests/test_oracle.py",
    "tests/test_generic_coalesce.py",
    "tests/test_bad_input.py",
    "tests/test_stage0_machine.py",
)


@dataclass(frozen=True)
class Mutation:
    """One source mutation: exact replacements in ``file``, and the tests to run."""

    name: str
    kind: str  # "counter" (only a cost counter changes) or "behaviour"
    file: str
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]
    note: str = ""  # shown in the table (e.g. which branch's tests should catch it)


MUTATIONS: tuple[Mutation, ...] = (
    # -- rb-tree counters ------------------------------------------------------
    Mutation(
        "rb insert does not count augment_updates (rotate callbacks)",
        "counter",
        RB,
        (
            (
                "            c.rotations += rot\n            if upd:\n"
                "                c.augment_updates += upd\n",
                "            c.rotations += rot\n",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb insert rotation does not count rotations",
        "counter",
        RB,
        (
            (
                "            c = self.counters\n            c.rotations += rot\n            if upd:",
                "            c = self.counters\n            if upd:",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb erase rotation does not count rotations",
        "counter",
        RB,
        (
            (
                "            c.rotations += rot\n            c.augment_updates += upd + ",
                "            c.augment_updates += upd + ",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb erase does not count its rotate callbacks",
        "counter",
        RB,
        (("c.augment_updates += upd + (rot if aug else 0)", "c.augment_updates += upd"),),
        RB_TESTS,
    ),
    Mutation(
        "rb erase does not count its propagate steps",
        "counter",
        RB,
        (
            (
                "c.augment_updates += upd + (rot if aug else 0)",
                "c.augment_updates += rot if aug else 0",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb propagate stops counting one step early (the unchanged step)",
        "counter",
        RB,
        (
            (
                "            upd += 1\n            lines += tbl[node.slab_pos]\n"
                "            self._recompute_read(node)\n"
                "            if node.subtree_max_size == m:\n                break\n",
                "            self._recompute_read(node)\n"
                "            if node.subtree_max_size == m:\n                break\n"
                "            upd += 1\n            lines += tbl[node.slab_pos]\n",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb erase propagate steps not in nodes_visited",
        "counter",
        RB,
        (("c.nodes_visited += visited + upd", "c.nodes_visited += visited"),),
        RB_TESTS,
    ),
    Mutation(
        "rb successor search charged the link-search lines",
        "counter",
        RB,
        (("tbl = self.lines_successor", "tbl = self.lines_lookup"),),
        RB_TESTS,
    ),
    Mutation(
        "rb link search: one comparison per step",
        "counter",
        RB,
        (
            (
                "c.comparisons += visited + visited - lefts\n        c.line_accesses += lines\n"
                "        return res",
                "c.comparisons += visited\n        c.line_accesses += lines\n        return res",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb merge_or_add counts no sibling reads",
        "counter",
        RB_COALESCE,
        (("free.counters.list_ops += 2", "free.counters.list_ops += 0"),),
        RB_TESTS,
    ),
    # -- rb-tree behaviour -----------------------------------------------------
    Mutation(
        "rb propagate stops one step early (never updates the root)",
        "behaviour",
        RB,
        (
            (
                "        node: VmapArea | None = va\n        while node is not None:\n",
                "        node: VmapArea | None = va\n"
                "        while node is not None and node.rb_parent is not None:\n",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb lowest match goes left although vstart >= va_start",
        "behaviour",
        RB_FREE,
        (
            (
                "(left.subtree_max_size if left is not None else 0) >= length and vstart < s:",
                "(left.subtree_max_size if left is not None else 0) >= length:",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb lowest match prunes by size, not size + align - 1",
        "behaviour",
        RB_FREE,
        (
            (
                "length = size + align - 1 if adjust_search_size else size",
                "length = size",
            ),
        ),
        RB_TESTS,
    ),
    # -- maple-tree counters (caught once the maple write-path cost tests land) --
    Mutation(
        "maple exact-fit store charges one cache line too few",
        "counter",
        MAPLE_WRITE,
        (
            (
                "c.line_accesses += 1 + _LEAF_SCAN_LINES[len(slots) - 1]",
                "c.line_accesses += _LEAF_SCAN_LINES[len(slots) - 1]",
            ),
        ),
        MAPLE_TESTS,
    ),
    Mutation(
        "maple erase fast path does not count its store",
        "counter",
        "plugins/mapletree/tree.py",
        (
            (
                "            c.comparisons += off + 1\n            c.stores += 1\n",
                "            c.comparisons += off + 1\n",
            ),
        ),
        MAPLE_TESTS,
    ),
    Mutation(
        "maple rebalance does not count the nodes it frees",
        "counter",
        MAPLE_WRITE,
        (
            (
                "    tree.counters.rebalances += 1\n",
                "    tree.counters.rebalances += 1\n    tree.counters.node_frees -= 2\n",
            ),
        ),
        MAPLE_TESTS,
    ),
    Mutation(
        "maple gap propagation reads no cache lines",
        "counter",
        "plugins/mapletree/gap.py",
        (("        c.line_accesses += updates\n", ""),),
        MAPLE_TESTS,
    ),
    # -- distinct lines (issue #20): the new charges ---------------------------------
    Mutation(
        "maple node store writes 2 lines, not the whole node (non-RCU memcpy)",
        "counter",
        MAPLE_WRITE,
        (
            (
                "    else:  # WR_NODE_STORE\n        wmask = NODE_MASK",
                "    else:  # WR_NODE_STORE\n        wmask = write_mask(MAPLE_LEAF64, o1, o2, False)",
            ),
        ),
        MAPLE_TESTS,
    ),
    Mutation(
        "maple lookup reads the data end (mtree_load charged as mtree_range_walk)",
        "counter",
        "plugins/mapletree/walk.py",
        (("    m = _LEAF_LOAD[len(piv)][off]\n", "    m = _LEAF_MASK[len(piv)][off]\n"),),
        MAPLE_TESTS,
    ),
    Mutation(
        "maple lookup step reads every scanned slot, not the one it follows",
        "counter",
        "plugins/mapletree/node.py",
        (("    if not data_end:  # the lookup walk follows one slot\n", "    if False:\n"),),
        MAPLE_TESTS,
    ),
    Mutation(
        "rb list_add does not write the neighbours' list_heads",
        "counter",
        RB,
        (
            (
                "        prev.list_next = va\n        self._wlist(prev, va, nxt)\n",
                "        prev.list_next = va\n",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "rb propagate does not write subtree_max_size",
        "counter",
        RB,
        (
            (
                "            node.subtree_max_size = m\n"
                "            _touch(self.counters.wr, node, self.blocks_subtree)\n",
                "            node.subtree_max_size = m\n",
            ),
        ),
        RB_TESTS,
    ),
    Mutation(
        "spin_lock does not touch the lock word",
        "counter",
        "core/kernel/locking.py",
        (
            (
                "        else:  # _lock_touch(), inline\n            wr = m.wr\n"
                "            wr[entry[0]] = wr.get(entry[0], 0) | entry[1]\n"
                "            m.line_accesses += 1\n        self.held_locks.append(key)",
                "        self.held_locks.append(key)",
            ),
        ),
        ("tests/test_cost_sections.py",),
    ),
    Mutation(
        "lock sections: work outside locks counted inside the enclosing section too",
        "counter",
        "core/cost/sections.py",
        (("            if not self._locked:\n", "            if True:\n"),),
        ("tests/test_cost_sections.py",),
    ),
    Mutation(
        "the cache model sees reads only",
        "counter",
        "core/cost/counters.py",
        (
            (
                "                        access(cpu, (b << 2) | i, True)\n",
                "                        access(cpu, (b << 2) | i, False)\n",
            ),
        ),
        ("tests/test_cost_sections.py",),
    ),
    Mutation(
        "maple insert over an occupied range keeps its reservation",
        "counter",
        "plugins/mapletree/state.py",
        (
            (
                "            self.tree.allocator.unreserve(more)\n        self.status = _ERROR",
                "            pass\n        self.status = _ERROR",
            ),
        ),
        MAPLE_TESTS,
    ),
    # -- core behaviour ----------------------------------------------------------
    Mutation(
        "adjust_search_size also on for an exact-fit window",
        "behaviour",
        ALLOC,
        (
            (
                "adjust_search_size = not (align <= PAGE_SIZE or vend - vstart == size)",
                "adjust_search_size = not (align <= PAGE_SIZE)",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "adjust_search_size never on",
        "behaviour",
        ALLOC,
        (
            (
                "adjust_search_size = not (align <= PAGE_SIZE or vend - vstart == size)",
                "adjust_search_size = False",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "adjust_search_size also on for align == PAGE_SIZE",
        "behaviour",
        ALLOC,
        (
            (
                "adjust_search_size = not (align <= PAGE_SIZE or vend - vstart == size)",
                "adjust_search_size = not (align < PAGE_SIZE or vend - vstart == size)",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "lazy threshold off by one (>= lazy_max_pages)",
        "behaviour",
        PURGE,
        (("if nr_lazy > self._lazy_max:", "if nr_lazy >= self._lazy_max:"),),
        CORE_TESTS,
    ),
    Mutation(
        "pool decay full instead of 1/4 on a threshold drain",
        "behaviour",
        PURGE,
        (
            (
                "n_decay = len(pool) if full_decay else len(pool) >> 2",
                "n_decay = len(pool)",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "NE fit preload not consumed",
        "behaviour",
        ALLOC,
        (
            (
                "            lva = self.ne_fit_preload_node[cpu]\n"
                "            self.ne_fit_preload_node[cpu] = None\n",
                "            lva = self.ne_fit_preload_node[cpu]\n",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "purge does not widen the TLB range to the last lazy area",
        "behaviour",
        PURGE,
        (
            (
                "            if purge[-1].va_end > end:\n                end = purge[-1].va_end\n",
                "",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "classify_va_fit_type: LE and RE swapped",
        "behaviour",
        ALLOC,
        (
            (
                "return FL_FIT_TYPE if end == nva_start_addr + size else LE_FIT_TYPE",
                "return FL_FIT_TYPE if end == nva_start_addr + size else RE_FIT_TYPE",
            ),
            (
                "    if end == nva_start_addr + size:\n        return RE_FIT_TYPE\n",
                "    if end == nva_start_addr + size:\n        return LE_FIT_TYPE\n",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "va_alloc: -ERANGE when the area ends exactly at vend",
        "behaviour",
        ALLOC,
        (
            (
                "if (nva_start_addr + size) & ULONG_MAX > vend:",
                "if (nva_start_addr + size) & ULONG_MAX >= vend:",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "full purge still populates the pools (skip_populate lost)",
        "behaviour",
        PURGE,
        (("vn.skip_populate = full_pool_decay", "vn.skip_populate = False"),),
        CORE_TESTS,
    ),
    Mutation(
        "lazy_max_pages uses nr_cpus instead of fls(nr_cpus)",
        "behaviour",
        PURGE,
        (
            (
                "return self.nr_cpus.bit_length() * ((32 << 20) >> PAGE_SHIFT)",
                "return self.nr_cpus * ((32 << 20) >> PAGE_SHIFT)",
            ),
        ),
        CORE_TESTS,
    ),
    Mutation(
        "node_pool_del_va takes a misaligned pool head",
        "behaviour",
        ALLOC,
        (("if va.va_start & (align - 1) == 0:", "if True:"),),
        CORE_TESTS,
    ),
)


# -- running -----------------------------------------------------------------------


@dataclass
class Outcome:
    status: str  # "caught", "survived", "not applied", "error", "timeout"
    tests: list[str]
    seconds: float


def _copy_tree(dest: Path) -> Path:
    """Copy the project to ``dest/tree`` and link its packages under ``dest/pkgs``."""
    tree = dest / "tree"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "__pycache__",
            ".hypothesis",
            ".pytest_cache",
            ".ruff_cache",
            "*.egg-info",
        ),
    )
    pkgs = dest / "pkgs"
    pkgs.mkdir()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for name, where in meta["tool"]["setuptools"]["package-dir"].items():
        (pkgs / name).symlink_to(tree / where, target_is_directory=True)
    return tree


def _env(pkgs: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pkgs) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["CI"] = "1"  # the derandomized Hypothesis profile (tests/conftest.py)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _check_isolated(tree: Path, env: dict[str, str]) -> None:
    """The copy's packages, not the editable install's, must be the ones imported."""
    code = (
        "import vmapsim, vmapsim_rbtree, vmapsim_mapletree\n"
        "for m in (vmapsim, vmapsim_rbtree, vmapsim_mapletree): print(m.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    pkgs = str(tree.parent / "pkgs")
    stray = [p for p in out if not p.startswith(pkgs)]
    if stray:
        raise SystemExit(f"mutation_probe: the copy is not what gets imported: {stray}")


def _pytest(tree: Path, env: dict[str, str], tests: tuple[str, ...], timeout: float) -> Outcome:
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        proc = subprocess.run(
            cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Outcome("timeout", [], time.monotonic() - t0)
    failed = [
        line.split()[1]
        for line in proc.stdout.splitlines()
        if line.startswith(("FAILED ", "ERROR ")) and len(line.split()) > 1
    ]
    seconds = time.monotonic() - t0
    if proc.returncode == 0:
        return Outcome("survived", [], seconds)
    if proc.returncode == 1:
        return Outcome("caught", failed, seconds)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    return Outcome("error", failed or tail, seconds)


def _apply(tree: Path, m: Mutation) -> str | None:
    """Apply ``m`` in the copy; return the original text, or None if it does not apply."""
    path = tree / m.file
    original = path.read_text()
    text = original
    for old, new in m.edits:
        if text.count(old) != 1:
            return None
        text = text.replace(old, new)
    path.write_text(text)
    return original


def run(
    mutations: list[Mutation], timeout: float, baseline: bool
) -> list[tuple[Mutation, Outcome]]:
    results: list[tuple[Mutation, Outcome]] = []
    with tempfile.TemporaryDirectory(prefix="vmapsim-mutants-") as tmp:
        tree = _copy_tree(Path(tmp))
        env = _env(Path(tmp) / "pkgs")
        _check_isolated(tree, env)
        if baseline:
            union = tuple(dict.fromkeys(t for m in mutations for t in m.tests))
            print(f"baseline: {' '.join(union)}", file=sys.stderr, flush=True)
            base = _pytest(tree, env, union, timeout * 2)
            if base.status != "survived":
                raise SystemExit(f"mutation_probe: the unmutated tests fail: {base}")
        for i, m in enumerate(mutations, 1):
            original = _apply(tree, m)
            if original is None:
                out = Outcome("not applied", [], 0.0)
            else:
                try:
                    out = _pytest(tree, env, m.tests, timeout)
                finally:
                    (tree / m.file).write_text(original)
            print(f"[{i}/{len(mutations)}] {out.status:11s} {m.name}", file=sys.stderr, flush=True)
            results.append((m, out))
    return results


def table(results: list[tuple[Mutation, Outcome]]) -> str:
    rows = [
        "| # | mutation | kind | file | caught? | by | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (m, out) in enumerate(results, 1):
        by = "<br>".join(f"`{t}`" for t in out.tests) if out.tests else "—"
        status = {"caught": "yes", "survived": "**no**"}.get(out.status, f"**{out.status}**")
        rows.append(f"| {i} | {m.name} | {m.kind} | `{m.file}` | {status} | {by} | {m.note} |")
    caught = sum(1 for _, o in results if o.status == "caught")
    rows.append("")
    rows.append(f"{caught} of {len(results)} mutations caught.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", dest="select", default="", help="only mutations whose name contains this")
    ap.add_argument("--list", action="store_true", help="print the mutations, run nothing")
    ap.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds per pytest run (a hang is not a catch)",
    )
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: the running pytest is killed and the copy removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    chosen = [m for m in MUTATIONS if args.select.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"{m.kind:9s} {m.file:28s} {m.name}  [{' '.join(m.tests)}]")
        return 0
    results = run(chosen, args.timeout, not args.no_baseline)
    print(table(results))
    return 0 if all(o.status == "caught" for _, o in results) else 1


if __name__ == "__main__":
    sys.exit(main())
