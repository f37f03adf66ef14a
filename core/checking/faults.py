"""Failslab-style fault injection for node and object allocations.

Models the knobs of the kernel's fault-injection framework
(Documentation/fault-injection/fault-injection.rst, ``failslab``):
``probability`` (percent), ``interval`` (only every N-th eligible call may
fail), ``times`` (how many failures at most; -1 = unlimited), and
``ignore_gfp_wait`` (only non-blocking requests fail, failslab's default).
Decisions come from a private seeded RNG, so a run is reproducible.
"""

from __future__ import annotations

import random

from attrs import field, frozen, validators

__all__ = ["FailslabConfig", "FaultInjector"]


@frozen
class FailslabConfig:
    """Settings of one failslab-style injector."""

    probability: int = field(default=0, validator=[validators.ge(0), validators.le(100)])
    interval: int = field(default=1, validator=validators.ge(1))
    times: int = field(default=-1, validator=validators.ge(-1))
    ignore_gfp_wait: bool = True
    #: failslab's ``cache-filter``: only these caches fail (None = every cache)
    cache_filter: frozenset[str] | None = field(
        default=None, converter=lambda v: None if v is None else frozenset(v)
    )
    seed: int = 0


class FaultInjector:
    """Decides, call by call, whether an allocation fails (``should_failslab``)."""

    __slots__ = ("_count", "_rng", "config", "enabled", "failures")

    def __init__(self, config: FailslabConfig | None = None) -> None:
        self.configure(config or FailslabConfig())

    def configure(self, config: FailslabConfig) -> None:
        """Start injecting with ``config`` from now on (counts and RNG start
        afresh), as writing the failslab debugfs knobs of a running kernel
        does: e.g. arm it after bring-up so early allocations are spared."""
        self.config = config
        self._rng = random.Random(config.seed)
        self._count = 0
        self.failures = 0
        self.enabled = config.probability > 0 and config.times != 0

    def should_fail(self, can_block: bool = False, cache: str = "maple_node") -> bool:
        """Return True if this allocation from ``cache`` is to fail (``should_failslab``).

        ``can_block`` says whether the request may sleep (``__GFP_DIRECT_RECLAIM``);
        with ``ignore_gfp_wait`` such requests never fail.  Caches are named as
        the kernel names them: ``maple_node``, ``vmap_area``.
        """
        if not self.enabled:
            return False
        cfg = self.config
        if can_block and cfg.ignore_gfp_wait:
            return False
        if cfg.cache_filter is not None and cache not in cfg.cache_filter:
            return False
        self._count += 1
        if self._count % cfg.interval:
            return False
        if cfg.probability < 100 and self._rng.randrange(100) >= cfg.probability:
            return False
        self.failures += 1
        if cfg.times != -1 and self.failures >= cfg.times:
            self.enabled = False
        return True
