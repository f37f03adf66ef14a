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
    # pages of vmalloc areas (modelled time, vmapsim.cost.timing): mapped by
    # __vmalloc_node_range(), of them zeroed (__GFP_ZERO), freed by vfree()
    "pages_mapped",
    "pages_zeroed",
    "pages_freed",
)

LOCK_PREFIX = "lock."

__all__ = ["COUNTER_NAMES", "LOCK_PREFIX", "Counters", "SummingCounters"]


class Counters(Mapping[str, int]):
    """Cost-model counters shared by a flow and its components.

    Fixed counters are slots (see :data:`COUNTER_NAMES`); lock acquisitions
    are kept per lock name in :attr:`locks` and appear in the mapping as
    ``lock.<name>``; a component's own counters (declared in
    ``Component.counters``) are added with :meth:`add` and appear under
    their names.  With per-component counting (:meth:`attach`) the object
    becomes a :class:`SummingCounters`: each component counts into a part of
    its own and every read of this object is the total.
    """

    __slots__ = (*COUNTER_NAMES, "extra", "locks", "parts")

    def __init__(self) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        #: lock name -> acquisitions; hot paths do ``locks[name] += 1`` directly
        self.locks: defaultdict[str, int] = defaultdict(int)
        #: a component's own counters (``add``)
        self.extra: defaultdict[str, int] = defaultdict(int)
        #: label -> the part a component counts into (empty: no per-component split)
        self.parts: dict[str, Counters] = {}

    def lock(self, name: str) -> None:
        """Count one acquisition of the lock *name* (spin_lock / mutex_lock)."""
        self.locks[name] += 1

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the component's own counter ``name`` (declared in
        ``Component.counters``)."""
        self.extra[name] += n

    def attach(self, label: str) -> Counters:
        """The part ``label`` (``role=name``) counts into, made on first use.

        From the first part on, reads of this object (attributes, mapping,
        :meth:`snapshot`) are the totals over it and its parts; writes through
        it stay exact.  Per-component counting costs time on the flow's own
        counter writes, so :func:`vmapsim.build` does it only when asked."""
        part = self.parts.get(label)
        if part is None:
            part = self.parts[label] = Counters()
            if type(self) is Counters:
                self.__class__ = SummingCounters
        return part

    def reset(self) -> None:
        """Set every counter back to zero (lock names are forgotten).

        The ``locks`` dict is cleared in place, so references to it stay valid."""
        for name in COUNTER_NAMES:
            _SLOTS[name].__set__(self, 0)
        self.locks.clear()
        self.extra.clear()
        for part in self.parts.values():
            part.reset()

    def snapshot(self) -> dict[str, int]:
        """A plain dict copy of every counter, locks included."""
        return dict(self.items())

    def _totals(self, table: str) -> dict[str, int]:
        out = dict(getattr(self, table))
        for part in self.parts.values():
            for k, v in getattr(part, table).items():
                out[k] = out.get(k, 0) + v
        return out

    def __getitem__(self, key: str) -> int:
        if key.startswith(LOCK_PREFIX):
            name = key[len(LOCK_PREFIX) :]
            locks = self._totals("locks") if self.parts else self.locks
            if locks.get(name):
                return locks[name]
            raise KeyError(key)
        if key in COUNTER_NAMES:
            return getattr(self, key)
        extra = self._totals("extra") if self.parts else self.extra
        if extra.get(key):
            return extra[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from COUNTER_NAMES
        extra = self._totals("extra") if self.parts else self.extra
        for name in sorted(extra):
            if extra[name]:
                yield name
        locks = self._totals("locks") if self.parts else self.locks
        for name in sorted(locks):
            if locks[name]:
                yield LOCK_PREFIX + name

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        nonzero = {k: v for k, v in self.items() if v}
        return f"Counters({nonzero})"


#: the slot descriptors of :class:`Counters` (a part's own value, under the totals)
_SLOTS = {name: Counters.__dict__[name] for name in COUNTER_NAMES}


def _summing(name: str) -> property:
    slot = _SLOTS[name]

    def get(self: Counters) -> int:
        total = slot.__get__(self)
        for part in self.parts.values():
            total += slot.__get__(part)
        return total

    def set_(self: Counters, value: int) -> None:
        # ``c.name += n`` reads the total and writes total + n: keep the own share
        slot.__set__(self, value - (get(self) - slot.__get__(self)))

    return property(get, set_, doc=f"``{name}``: this object's own count plus its parts'")


class SummingCounters(Counters):
    """:class:`Counters` whose reads are totals over its parts (:meth:`Counters.attach`)."""

    __slots__ = ()

    def own(self) -> dict[str, int]:
        """The counts made through this object itself (the flow's), without the parts."""
        return {name: _SLOTS[name].__get__(self) for name in COUNTER_NAMES}


for _name in COUNTER_NAMES:
    setattr(SummingCounters, _name, _summing(_name))
del _name
