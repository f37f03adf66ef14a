"""The stage-0 lockstep machine (model against the oracle) on stages 8 and 9.

Stages 8 and 9 change how lazy areas are queued and how vfree unlinks, not
what is handed out: the same machine that holds stage 0 to the reference
allocator must hold them too.  (Stages 10-12 place eligible requests in
per-CPU chunks, which the oracle does not model: they are checked against
stage 9 in tests/test_stages_8_12.py instead.)
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize

import vmapsim
from test_stage0_machine import Stage0Machine
from vmapsim.oracle import ReferenceAllocator


def _machine(stage: int) -> type:
    class StageMachine(Stage0Machine):
        @initialize(nr_cpus=st.sampled_from([1, 2, 4]))
        def setup(self, nr_cpus: int) -> None:
            self.nr_cpus = nr_cpus
            self.model = vmapsim.build(stage=stage, nr_cpus=nr_cpus, debug=True)
            self.oracle = ReferenceAllocator(nr_cpus=nr_cpus)
            event(f"nr_cpus={nr_cpus}")

    StageMachine.__name__ = f"Stage{stage}Machine"
    return StageMachine


@pytest.mark.parametrize("stage", [8, 9])
def test_stage_machine_against_the_oracle(stage: int) -> None:
    machine = _machine(stage)
    machine.TestCase.settings = settings(
        max_examples=12,
        stateful_step_count=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    machine.TestCase("runTest").runTest()
