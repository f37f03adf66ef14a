"""Fault injection for every allocation the model makes: ``failslab`` and
``fail_page_alloc``.

Models the kernel's fault-injection framework
(Documentation/fault-injection/fault-injection.rst; mm/failslab.c,
mm/fail_page_alloc.c and lib/fault-inject.c's ``should_fail_ex()``).  Each
injector has the common knobs: ``probability`` (percent), ``interval`` (only
every N-th eligible call may fail), ``times`` (how many failures at most; -1
= unlimited).  On top of them:

- **failslab** (slab objects: ``vmap_area``, ``maple_node``, the
  ``kmalloc-<size>`` caches): ``ignore-gfp-wait`` (default Y: requests that
  may reclaim never fail) and ``cache-filter`` (only the caches named fail;
  the kernel marks them with ``/sys/kernel/slab/<cache>/failslab``);
- **fail_page_alloc** (the page allocator: a ``kmalloc`` above
  ``KMALLOC_MAX_CACHE_SIZE``, e.g. the order-6 ``kvzalloc`` of patch 11's
  chunk descriptor, and vmalloc's own pages): ``min-order`` (default 1: order-0
  pages never fail), ``ignore-gfp-wait`` (default Y) and ``ignore-gfp-highmem``
  (default Y: vmalloc asks for its pages with ``__GFP_HIGHMEM``, so they fail
  only with ``ignore-gfp-highmem=N``).

``__GFP_NOFAIL`` requests never fail (both injectors).  Decisions come from a
private seeded RNG per injector, so a run is reproducible.  The
``FAULT_INJECTION: forcing a failure`` dump (``verbose``) is not logged: the
failure shows as the caller's own warning, as with ``verbose=0``.
"""

from __future__ import annotations

import random

from attrs import field, frozen, validators

from vmapsim.kernel.gfp import Gfp

__all__ = ["FailPageAllocConfig", "FailslabConfig", "FaultInjector"]

_RECLAIM = int(Gfp.DIRECT_RECLAIM)
_NOFAIL = int(Gfp.NOFAIL)
_HIGHMEM = int(Gfp.HIGHMEM)
#: gfp of the legacy ``should_fail(can_block, cache)`` entry point
_CAN_BLOCK = _RECLAIM | int(Gfp.KSWAPD_RECLAIM)
_NO_BLOCK = int(Gfp.KSWAPD_RECLAIM)


@frozen
class FailPageAllocConfig:
    """Settings of the ``fail_page_alloc`` injector (defaults: the kernel's)."""

    probability: int = field(default=0, validator=[validators.ge(0), validators.le(100)])
    interval: int = field(default=1, validator=validators.ge(1))
    times: int = field(default=-1, validator=validators.ge(-1))
    ignore_gfp_wait: bool = True
    ignore_gfp_highmem: bool = True
    #: ``min-order``: allocations of a lower order never fail
    min_order: int = field(default=1, validator=[validators.ge(0), validators.le(10)])
    seed: int = 0


def _frozen_caches(v: object) -> frozenset[str] | None:
    return None if v is None else frozenset(v)  # type: ignore[arg-type]


@frozen
class FailslabConfig:
    """Settings of the ``failslab`` injector, and optionally of
    ``fail_page_alloc`` (``fail_page_alloc``; None = never fails pages)."""

    probability: int = field(default=0, validator=[validators.ge(0), validators.le(100)])
    interval: int = field(default=1, validator=validators.ge(1))
    times: int = field(default=-1, validator=validators.ge(-1))
    ignore_gfp_wait: bool = True
    #: failslab's ``cache-filter``: only these caches fail (None = every cache);
    #: ``kmalloc`` names every ``kmalloc-<size>`` cache
    cache_filter: frozenset[str] | None = field(default=None, converter=_frozen_caches)
    seed: int = 0
    fail_page_alloc: FailPageAllocConfig | None = None


class _Attr:
    """``struct fault_attr``'s state: the call count, failures, its RNG."""

    __slots__ = ("count", "failures", "interval", "on", "probability", "rng", "times")

    def __init__(self, probability: int, interval: int, times: int, seed: int | str) -> None:
        self.probability = probability
        self.interval = interval
        self.times = times
        self.rng = random.Random(seed)
        self.count = 0
        self.failures = 0
        self.on = probability > 0 and times != 0

    def should_fail(self) -> bool:
        """``should_fail_ex()``: interval, then probability, then ``times``."""
        self.count += 1
        if self.interval > 1 and self.count % self.interval:
            return False
        if self.probability < 100 and self.rng.randrange(100) >= self.probability:
            return False
        self.failures += 1
        if self.times != -1 and self.failures >= self.times:
            self.on = False
        return True


class FaultInjector:
    """Decides, call by call, whether an allocation fails: ``should_failslab()``
    for slab objects, ``should_fail_alloc_page()`` for pages."""

    __slots__ = ("_page", "_slab", "config", "enabled", "page_config")

    def __init__(self, config: FailslabConfig | None = None) -> None:
        self.configure(config or FailslabConfig())

    def configure(self, config: FailslabConfig) -> None:
        """Start injecting with ``config`` from now on (counts and RNGs start
        afresh), as writing the debugfs knobs of a running kernel does: e.g.
        arm it after bring-up so early allocations are spared.  Its
        ``fail_page_alloc`` (None: pages never fail) configures the page
        injector too."""
        self.config = config
        self._slab = _Attr(config.probability, config.interval, config.times, config.seed)
        page = config.fail_page_alloc
        self.page_config = page
        if page is None:
            self._page = _Attr(0, 1, 0, 0)
        else:
            self._page = _Attr(page.probability, page.interval, page.times, f"page:{page.seed}")
        self._update()

    def configure_page_alloc(self, config: FailPageAllocConfig | None) -> None:
        """Re-arm ``fail_page_alloc`` alone (failslab keeps its state)."""
        self.page_config = config
        if config is None:
            self._page = _Attr(0, 1, 0, 0)
        else:
            self._page = _Attr(
                config.probability, config.interval, config.times, f"page:{config.seed}"
            )
        self._update()

    def _update(self) -> None:
        #: False when no injector can fail anything (the hot paths test this first)
        self.enabled = self._slab.on or self._page.on

    @property
    def failures(self) -> int:
        """Allocations failed so far, both injectors."""
        return self._slab.failures + self._page.failures

    @property
    def slab_failures(self) -> int:
        return self._slab.failures

    @property
    def page_failures(self) -> int:
        return self._page.failures

    def should_failslab(self, cache: str, gfp: int) -> bool:
        """``should_failslab(s, gfpflags)``: True if this allocation from
        ``cache`` (``maple_node``, ``vmap_area``, ``kmalloc-256`` ...) is to fail."""
        a = self._slab
        if not a.on or gfp & _NOFAIL:
            return False
        cfg = self.config
        if cfg.ignore_gfp_wait and gfp & _RECLAIM:
            return False
        flt = cfg.cache_filter
        if (
            flt is not None
            and cache not in flt
            and not (cache.startswith("kmalloc-") and "kmalloc" in flt)
        ):
            return False
        hit = a.should_fail()
        if not a.on:
            self._update()
        return hit

    def should_fail(self, can_block: bool = False, cache: str = "maple_node") -> bool:
        """``should_failslab()`` for a request that may sleep (``can_block``:
        ``GFP_KERNEL``-like) or not (``GFP_NOWAIT``-like)."""
        return self.should_failslab(cache, _CAN_BLOCK if can_block else _NO_BLOCK)

    def should_fail_alloc_page(self, gfp: int, order: int) -> bool:
        """``should_fail_alloc_page(gfp_mask, order)``: True if this page
        allocation of ``2**order`` pages is to fail."""
        a = self._page
        if not a.on:
            return False
        cfg = self.page_config
        assert cfg is not None
        if order < cfg.min_order or gfp & _NOFAIL:
            return False
        if cfg.ignore_gfp_highmem and gfp & _HIGHMEM:
            return False
        if cfg.ignore_gfp_wait and gfp & _RECLAIM:
            return False
        hit = a.should_fail()
        if not a.on:
            self._update()
        return hit
