"""How long a test_vmalloc run will be, before it runs (``vmapsim run``/``compare``).

A run's size is predictable from its parameters: loop iterations =
the sum over selected subtests of ``test_loop_count x test_repeat_count x
nr_threads``.  The defaults are lib/test_vmalloc.c's module parameters
(1,000,000 loops, 1 repeat, 1 thread) under test_vmalloc.sh's templates
(smoke: 10,000 loops x 10; performance: 3 repeats; stress: ``NUM_CPUS``
threads x 20 repeats): the numbers ``plugins/test_vmalloc/params.py``
models; the model runs roughly 10 to 100 µs per iteration (README, Comparison).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["LONG_LOOPS", "estimate_loops", "long_run_notice"]

#: above this many loop iterations a run is announced with how to shorten it
#: (the default smoke run, 3 subtests x 10,000 x 10, stays below)
LONG_LOOPS = 500_000
#: what the model takes per loop iteration, fastest and slowest stage (µs)
_US_PER_LOOP = (10.0, 100.0)
_MODULE = {"test_loop_count": 1_000_000, "test_repeat_count": 1, "nr_threads": 1}
_MODES: dict[str, dict[str, Any]] = {
    "smoke": {"test_loop_count": 10_000, "test_repeat_count": 10},
    "performance": {"test_repeat_count": 3},
    "stress": {"nr_threads": "NUM_CPUS", "test_repeat_count": 20},
    "manual": {},
}


def estimate_loops(parts: Sequence[Mapping[str, Any]], nr_cpus: int) -> int:
    """Loop iterations of the run whose per-subtest parameters are ``parts``
    (test_vmalloc's ``split_params()``: one part per subtest, each with its mode)."""
    total = 0
    for part in parts:
        values: dict[str, Any] = dict(_MODULE)
        values.update(_MODES.get(str(part.get("mode") or "manual"), {}))
        for key in _MODULE:
            if key in part:
                values[key] = part[key]
        threads = nr_cpus if values["nr_threads"] == "NUM_CPUS" else int(values["nr_threads"])
        threads = min(max(threads, 1), 0xFFFF)
        total += (
            max(int(values["test_loop_count"]), 1)
            * max(int(values["test_repeat_count"]), 1)
            * threads
        )
    return total


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def long_run_notice(
    parts: Sequence[Mapping[str, Any]], nr_cpus: int, *, columns: int = 1
) -> str | None:
    """A notice for a run the model predicts is long (None for a short one):
    the estimate and how to shorten it."""
    loops = estimate_loops(parts, nr_cpus) * columns
    if loops <= LONG_LOOPS:
        return None
    lo, hi = (loops * us / 1e6 for us in _US_PER_LOOP)
    modes = {str(p.get("mode")) for p in parts}
    why = ""
    if "manual" in modes and not any("test_loop_count" in p for p in parts):
        why = " (parameters without --mode are the module's manual run: 1,000,000 loops)"
    elif "stress" in modes:
        why = " (stress: NUM_CPUS threads x 20 repeats x 1,000,000 loops)"
    shorter = []
    if "smoke" not in modes:
        shorter.append("--mode smoke")
    shorter.append("--test-loop-count 1000 --test-repeat-count 1")
    if columns > 1:
        shorter.append("fewer stages or --reps 1")
    return (
        f"vmapsim: this run is about {loops:,} loop iterations{why}: roughly "
        f"{_duration(lo)} to {_duration(hi)}. Shorter: {', or '.join(shorter)}; "
        "Ctrl-C stops it and prints what finished."
    )
