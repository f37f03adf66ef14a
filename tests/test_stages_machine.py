"""The stage-0 lockstep machine (model against the reference allocator) on
every later stage of the series: 1-12.

Each stage runs the same rules (vmalloc, __vmalloc_node, alloc_vmap_area in
windows, vfree, free_vmap_area_noflush, purges, vm_unmap_aliases, the
shrinker, on 1, 2 or 4 CPUs) with invariants after every step.  Above
PAGE_SIZE the oracle checks each placement against the documented rule
(``PlacementBounds``) for the rb-tree's pruned walk; on a stage with an
occupied tree the oracle places by the over-ask itself
(``ReferenceAllocator(placement="gaps")``).  From stage 10 the oracle models
the per-CPU bump overlay (``ReferenceAllocator(overlay=...)``: "lookup" at
10, "patch11" at 11 with the cross-CPU retire and its KASAN report, "patch12" at 12), and
the machine adds overlay rules and compares the overlay's areas and chunks
and KASAN's reports.  A longer run of each stage is marked ``soak``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from test_stage0_machine import machine_for_stage

_QUICK = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_SOAK = settings(
    max_examples=600,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.vmapsim_stages("1..12")
def test_stage_against_the_oracle(stage) -> None:  # type: ignore[no-untyped-def]
    machine = machine_for_stage(stage.number)
    machine.TestCase.settings = _QUICK
    machine.TestCase("runTest").runTest()


@pytest.mark.soak
@pytest.mark.vmapsim_stages("1..12")
def test_stage_against_the_oracle_soak(stage) -> None:  # type: ignore[no-untyped-def]
    machine = machine_for_stage(stage.number)
    machine.TestCase.settings = _SOAK
    machine.TestCase("runTest").runTest()
