"""The shared cost-model counters.

One :class:`Counters` object is shared by the allocator flow and every
component bound into it.  Components add to its attributes directly
(``counters.nodes_visited += depth``): attribute increments on a slotted
object are the cheapest bookkeeping Python offers, and no hook or callback
runs per operation.  The object also reads as a mapping of counter name to
int (``metrics["rotations"]``, ``metrics["lock.free_vmap_area_lock"]``).

Every counter is documented in docs/metrics.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping

#: Counter names, in the order reports print them.
COUNTER_NAMES: tuple[str, ...] = (
    # operations seen by the flow
    "alloc_calls",
    "free_calls",
    # index work (every index component)
    "walks",
    "stores",
    "nodes_visited",
    "comparisons",
    "cache_lines",
    "list_ops",
    # augmented rb-tree
    "augment_updates",
    "rotations",
    # node-based trees (maple): nodes allocated / freed, structural changes
    "node_allocs",
    "node_frees",
    "splits",
    "merges",
    "rebalances",
    "gap_updates",
    # struct vmap_area objects from vmap_area_cachep
    "va_allocs",
    "va_frees",
    # lazy freeing and purging
    "lazy_frees",
    "purges",
    "tlb_flushes",
    "pool_hits",
    "pool_misses",
    "alloc_failures",
    "alloc_retries",
    # busy publish that could not get its index nodes (stages 1-4 lose the
    # area; stage 5 on parks it on the retry queue and publishes it later)
    "publish_lost",
    "publish_deferred",
    "publish_retried",
    # the per-CPU bump overlay (stage 10 on)
    "overlay_allocs",
    "overlay_frees",
    "overlay_fallbacks",
    "overlay_chunk_reserves",
    "overlay_chunk_releases",
    "overlay_lookups",
    "overlay_fast_rejects",
    # out-of-range array indexes caught by the model's UBSAN bounds check
    "ubsan_reports",
)

LOCK_PREFIX = "lock."


class Counters(Mapping[str, int]):
    """Cost-model counters shared by a flow and its components.

    Fixed counters are slots (see :data:`COUNTER_NAMES`); lock acquisitions
    are kept per lock name in :attr:`locks` and appear in the mapping as
    ``lock.<name>``.
    """

    __slots__ = (*COUNTER_NAMES, "locks")

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        #: lock name -> acquisitions; hot paths do ``locks[name] += 1`` directly
        self.locks: defaultdict[str, int] = defaultdict(int)

    def lock(self, name: str) -> None:
        """Count one acquisition of the lock *name* (spin_lock / mutex_lock)."""
        self.locks[name] += 1

    def reset(self) -> None:
        """Set every counter back to zero (lock names are forgotten).

        The ``locks`` dict is cleared in place, so references to it stay valid."""
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        self.locks.clear()

    def snapshot(self) -> dict[str, int]:
        """A plain dict copy of every counter, locks included."""
        return dict(self.items())

    def __getitem__(self, key: str) -> int:
        if key.startswith(LOCK_PREFIX):
            name = key[len(LOCK_PREFIX) :]
            if self.locks.get(name):
                return self.locks[name]
            raise KeyError(key)
        if key in COUNTER_NAMES:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from COUNTER_NAMES
        for name in sorted(self.locks):
            if self.locks[name]:
                yield LOCK_PREFIX + name

    def __len__(self) -> int:
        return len(COUNTER_NAMES) + sum(1 for v in self.locks.values() if v)

    def __repr__(self) -> str:
        nonzero = {k: v for k, v in self.items() if v}
        return f"Counters({nonzero})"
