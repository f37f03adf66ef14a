"""vmapsim's conformance kit: the tests a component must pass, for plugin authors.

Opt in from a test module (or the root ``conftest.py``)::

    pytest_plugins = ["vmapsim.testing"]

    import vmapsim.testing

    class TestSorted(vmapsim.testing.suite("free")):
        component = "sorted"            # or "myplugin:sorted"

``suite(role)`` combines three levels, each also usable on its own:

* the role's contract (:data:`CONTRACTS`: :class:`FreeIndexContract`,
  :class:`OccupiedIndexContract`, :class:`BusyIndexContract`,
  :class:`LazyQueueContract`,
  :class:`CoalescerContract`, :class:`OverlayContract`), the component built
  on its own and checked rule by rule against a plain model;
* :class:`SmokeTests`: registered, builds at every stage of its role, runs a
  short workload with invariants after every operation;
* :class:`AllocatorConformance`: at every registered stage where the role
  can be swapped (:func:`vmapsim.testing.stages.kit_stages`), a Hypothesis
  state machine runs ``vmapsim.build(stage, components={role: name})``
  against the reference allocator with invariants after every step, and the
  allocation trace (align <= PAGE_SIZE) must equal the stage's own
  component's.

Runtime: the ``quick`` profile by default; ``VMAPSIM_CONFORMANCE=thorough``
for many more examples.  The kit needs pytest and Hypothesis (vmapsim's
``test`` extra).  As a pytest plugin it only adds a report-header line
naming the profile; the base classes carry their own fixtures.
"""

from __future__ import annotations

from typing import Any

from .contracts import (
    CONTRACTS,
    OVERLAP_WARNING_RE,
    BusyIndexContract,
    CoalescerContract,
    FreeIndexContract,
    LazyQueueContract,
    OccupiedIndexContract,
    OverlayContract,
    RoleContract,
    role_contract,
)
from .faults import inject_faults
from .harness import Built, flow_call, kit_offer, make_component
from .machine import allocator_machine
from .profiles import PROFILE_ENV, PROFILES, kit_settings, profile_name
from .stages import default_with, kit_stages
from .suite import AllocatorConformance, SmokeTests, suite
from .trace import TRACE_OPS, check_trace

__all__ = [
    "CONTRACTS",
    "OVERLAP_WARNING_RE",
    "PROFILES",
    "PROFILE_ENV",
    "TRACE_OPS",
    "AllocatorConformance",
    "Built",
    "BusyIndexContract",
    "CoalescerContract",
    "FreeIndexContract",
    "LazyQueueContract",
    "OccupiedIndexContract",
    "OverlayContract",
    "RoleContract",
    "SmokeTests",
    "allocator_machine",
    "check_trace",
    "default_with",
    "flow_call",
    "inject_faults",
    "kit_offer",
    "kit_settings",
    "kit_stages",
    "make_component",
    "profile_name",
    "role_contract",
    "suite",
]


def pytest_report_header(config: Any) -> str:
    """pytest hook: say which conformance profile is in force."""
    return f"vmapsim.testing: profile {profile_name()} (set {PROFILE_ENV}=thorough for more)"
