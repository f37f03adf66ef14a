"""Allocator-level conformance and smoke tests, for a component of any role.

* :class:`SmokeTests`: the component is registered, builds at every stage
  that fills its role, and runs a short workload with invariants checked
  after every operation.  The ``vmapsim new-plugin`` template passes them.
* :class:`AllocatorConformance`: per stage that fills the role (from the
  registry, so new stages are picked up), the state machine against the
  reference allocator (:mod:`vmapsim.testing.machine`) and the
  allocation-trace rule against the stage's own component
  (:mod:`vmapsim.testing.trace`).
* :func:`suite`: the role's contract class and :class:`AllocatorConformance`
  in one base class -- everything the kit checks::

      class TestSorted(vmapsim.testing.suite("free")):
          component = "sorted"
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from hypothesis import example, given
from hypothesis.stateful import run_state_machine_as_test

from vmapsim.framework.api import build
from vmapsim.framework.registry import Registry, load_registry
from vmapsim.kernel.allocator import component_name

from .contracts import CONTRACTS, RoleContract
from .harness import flow_call, kit_offer
from .machine import allocator_machine
from .profiles import kit_settings
from .stages import default_with, kit_stages
from .trace import HOLES_OPS, TRACE_OPS, check_trace

__all__ = ["AllocatorConformance", "SmokeTests", "suite"]


class _PerStage(RoleContract):
    """Parametrizes ``kit_stage_key`` with every registered stage that fills the role."""

    #: stages to run on (default: every registered stage where the role can be
    #: swapped, :func:`vmapsim.testing.stages.kit_stages`)
    stages: ClassVar[tuple[int | str, ...] | None] = None
    #: other roles to swap in beside the component (default: ``coalesce=generic``
    #: for a free index, which any FreeIndex can be coalesced by; the component
    #: itself as ``occupied`` for a busy index that lives in it)
    with_components: ClassVar[dict[str, str] | None] = None
    #: how the state machine's oracle places requests above PAGE_SIZE: None
    #: (``gaps``, the over-ask, at stages with an occupied index; else the
    #: rb-tree's ``pruned`` bounds) or either name, for a free index that
    #: follows the over-ask itself
    placement: ClassVar[str | None] = None

    def pytest_generate_tests(self, metafunc: Any) -> None:
        if "kit_stage_key" not in metafunc.fixturenames:
            return
        reg = load_registry()
        if self.stages is not None:
            keys = [reg.stage(s).key for s in self.stages]
        else:
            keys = kit_stages(reg, self.role, self.component)
        metafunc.parametrize("kit_stage_key", keys or [None])

    def kit_components(self, spec: str, registry: Registry | None = None) -> dict[str, str]:
        extra = self.with_components
        if extra is None:
            extra = default_with(registry or load_registry(), self.role, spec)
        return {**extra, self.role: spec}

    @staticmethod
    def _need(key: str | None, role: str) -> str:
        if key is None:
            pytest.skip(f"no registered stage fills role {role!r}")
        return key


class SmokeTests(_PerStage):
    """The component loads, builds at each stage of its role and runs a workload."""

    def test_plugin_loaded_cleanly(
        self, vmapsim_registry: Registry, vmapsim_component: str
    ) -> None:
        offer = kit_offer(vmapsim_registry, self.role, vmapsim_component)
        rec = next(r for r in vmapsim_registry.plugins if r.name == offer.plugin)
        assert rec.ok, f"plugin {rec.name} ({rec.distribution}) had problems: {rec.reasons()}"

    def test_builds(
        self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage_key: str | None
    ) -> None:
        key = self._need(kit_stage_key, self.role)
        comps = self.kit_components(vmapsim_component, vmapsim_registry)
        a = build(key, components=comps, nr_cpus=2, debug=True, registry=vmapsim_registry)
        offer = kit_offer(vmapsim_registry, self.role, vmapsim_component)
        assert component_name(a.components[self.role]) == offer.component.name
        a.check_invariants()

    def test_short_workload(
        self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage_key: str | None
    ) -> None:
        key = self._need(kit_stage_key, self.role)
        comps = self.kit_components(vmapsim_component, vmapsim_registry)
        a = build(key, components=comps, nr_cpus=2, debug=True, registry=vmapsim_registry)
        report = flow_call(
            f"the mixed workload at stage {key}",
            comps,
            lambda: vmapsim_registry.workload("mixed").run(a, seed=1, nr_ops=150, max_live=40),
        )
        assert sum(report.ops.values()) > 0
        flow_call(f"purge_vmap_area_lazy() at stage {key}", comps, a.purge_vmap_area_lazy)
        a.check_invariants()
        ref = build(key, nr_cpus=2, registry=vmapsim_registry)
        vmapsim_registry.workload("mixed").run(ref, seed=1, nr_ops=150, max_live=40)
        ref.purge_vmap_area_lazy()
        # stages 10-12: the overlay's chunks stay reserved, as patches 10-12 keep
        # them (a current or forgotten chunk is never given back)
        ov = a.overlay
        busy = [v for v in a.busy_areas() if ov is None or not ov.owns(v)]
        assert not busy and not list(a.lazy_areas())
        assert sum(v.va_end - v.va_start for v in a.free_areas()) == sum(
            v.va_end - v.va_start for v in ref.free_areas()
        ), "after freeing everything, the free space differs from the stage's own"


class AllocatorConformance(_PerStage):
    """The state machine against the oracle and the trace rule, at every stage of the role."""

    def test_state_machine_against_oracle(
        self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage_key: str | None
    ) -> None:
        key = self._need(kit_stage_key, self.role)
        machine = allocator_machine(
            key,
            self.kit_components(vmapsim_component, vmapsim_registry),
            vmapsim_registry,
            placement=self.placement,
        )
        run_state_machine_as_test(machine, settings=kit_settings("machine"))

    def test_trace_matches_the_stage_component(
        self, vmapsim_registry: Registry, vmapsim_component: str, kit_stage_key: str | None
    ) -> None:
        key = self._need(kit_stage_key, self.role)
        comps = self.kit_components(vmapsim_component, vmapsim_registry)

        def check(ops: list[tuple[str, int, int, int, int]]) -> None:
            check_trace(key, comps, vmapsim_registry, ops)

        kit_settings("machine")(example(HOLES_OPS)(given(TRACE_OPS)(check)))()


_SUITES: dict[str, type] = {}


def suite(role: str) -> type:
    """Base class with every kit test for a component of ``role``."""
    if role not in CONTRACTS:
        raise ValueError(f"role: no contract for {role!r}; roles with one: {sorted(CONTRACTS)}")
    if role not in _SUITES:
        contract = CONTRACTS[role]
        _SUITES[role] = type(
            f"{contract.__name__.removesuffix('Contract')}Suite",
            (contract, SmokeTests, AllocatorConformance),
            {"__doc__": f"Every vmapsim.testing check for a {role!r} component.", "role": role},
        )
    return _SUITES[role]
