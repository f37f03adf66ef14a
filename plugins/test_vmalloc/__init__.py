"""vmapsim_test_vmalloc: the kernel's test_vmalloc suite as a vmapsim workload.

lib/test_vmalloc.c's subtests (``subtests``), its module parameters and
test_vmalloc.sh's modes (``params``), its driver with workers interleaved by
a seeded scheduler (``driver``) and modeled cycles (``cycles``).  Registered
as workload ``test_vmalloc`` through the ``vmapsim_workloads`` hook
(``plugin``); uses only vmapsim's public API.
"""

from __future__ import annotations

from .driver import TestVmallocReport, WorkerResult, run_test_vmalloc, shuffle_array
from .params import DEFAULTS, MODES, ModuleParams, ScriptArgumentError, resolve_params
from .subtests import TESTS, THREAD_ALIGN, VmallocTestCase, VmallocTestContext, subtest_names

__all__ = [
    "DEFAULTS",
    "MODES",
    "TESTS",
    "THREAD_ALIGN",
    "ModuleParams",
    "ScriptArgumentError",
    "TestVmallocReport",
    "VmallocTestCase",
    "VmallocTestContext",
    "WorkerResult",
    "resolve_params",
    "run_test_vmalloc",
    "shuffle_array",
    "subtest_names",
]
