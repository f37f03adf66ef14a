"""Checking: what a correct allocator does, and the means to provoke it.

- ``oracle``, ``oracle_constants``, ``oracle_overlay``: the reference
  allocator, written from the kernel's rules independently of the flow (it
  imports nothing of the model: tests/test_oracle_overlay.py checks it);
- ``invariants``: ``check_invariants()`` (``CONFIG_DEBUG_VM``-style checks);
- ``validate``: argument checks for the public entry points;
- ``faults``, ``faultspec``: failslab-style fault injection and its specs;
- ``trace``: allocation traces and their first difference;
- ``lockdep``, ``might_sleep``, ``debug_kernel``: the debug kernel (lock
  dependency validation, sleeping in atomic context, the profile's counts).
"""
