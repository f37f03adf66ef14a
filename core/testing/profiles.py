"""How hard the conformance kit tries: the ``quick`` and ``thorough`` profiles.

``quick`` (the default) keeps a full run of the kit on one component to
seconds; ``thorough`` runs many more and longer examples.  Choose with
``VMAPSIM_CONFORMANCE=thorough`` (read when each test runs, so it works with
any way of starting pytest).  Settings derive from the current Hypothesis
profile, so a project's own profile (``derandomize`` in CI, say) still
applies.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["PROFILES", "PROFILE_ENV", "kit_settings", "profile_name"]

PROFILE_ENV = "VMAPSIM_CONFORMANCE"

#: profile -> (role-level examples, state-machine examples, steps per machine run)
PROFILES: dict[str, tuple[int, int, int]] = {
    "quick": (30, 5, 20),
    "thorough": (400, 150, 80),
}


def profile_name() -> str:
    """The profile in force: ``$VMAPSIM_CONFORMANCE`` or ``quick``."""
    name = os.environ.get(PROFILE_ENV, "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}: must be one of {sorted(PROFILES)} (got {name!r})")
    return name


def kit_settings(kind: str = "unit") -> settings:
    """Hypothesis settings for a role-level test (``unit``) or a state machine (``machine``)."""
    unit, machines, steps = PROFILES[profile_name()]
    base = settings(
        settings(),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    if kind == "machine":
        return settings(base, max_examples=machines, stateful_step_count=steps)
    return settings(base, max_examples=unit)
