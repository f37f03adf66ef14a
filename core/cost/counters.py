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
from typing import Any

from vmapsim.cost.cache import CACHE_KEYS
from vmapsim.cost.memory import AddressSpace

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
    # cache lines (docs/cost-model.md): distinct lines per kernel operation,
    # split into lines only read and lines written (dirtied); raw accesses
    "cache_lines",
    "lines_read",
    "lines_written",
    "line_accesses",
    # the cache model (``Counters.cache``; zero while it is off)
    *CACHE_KEYS,
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

#: counters a :meth:`Counters.op_end` computes from the lines touched
LINE_COUNTERS: tuple[str, ...] = ("cache_lines", "lines_read", "lines_written")
#: counters the cache model feeds (``CacheModel.snapshot()`` keys)
CACHE_COUNTERS: tuple[str, ...] = CACHE_KEYS

#: number of lines in a 4-bit line mask of a 256-byte block
POPCOUNT4: tuple[int, ...] = (0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4)

__all__ = [
    "CACHE_COUNTERS",
    "COUNTER_NAMES",
    "LINE_COUNTERS",
    "LOCK_PREFIX",
    "POPCOUNT4",
    "Counters",
    "SummingCounters",
]


class Counters(Mapping[str, int]):
    """Cost-model counters shared by a flow and its components.

    Fixed counters are slots (see :data:`COUNTER_NAMES`); lock acquisitions
    are kept per lock name in :attr:`locks` and appear in the mapping as
    ``lock.<name>``; a component's own counters (declared in
    ``Component.counters``) are added with :meth:`add` and appear under
    their names.  With per-component counting (:meth:`attach`) the object
    becomes a :class:`SummingCounters`: each component counts into a part of
    its own and every read of this object is the total.

    **Lines.**  Work on memory is recorded as touches of 64-byte lines at
    modelled addresses (:mod:`vmapsim.cost.memory`): :meth:`touch` one
    line, :meth:`touch_block` a set of the four lines of a 256-byte block
    (a maple node), :meth:`touch_range` the lines of a byte range.  A touch
    adds to ``line_accesses`` at once; the distinct lines of a kernel
    operation are counted when the operation ends (:meth:`op_end`, called
    by the flow when an entry point returns, and by :meth:`snapshot` and
    the mapping reads): ``cache_lines`` += distinct lines touched,
    ``lines_written`` += those written at least once, ``lines_read`` += the
    others.  Pending touches are kept per 256-byte block as a 4-bit mask of
    its lines (``rd`` / ``wr``: block -> mask), which hot paths may update
    directly (``rd[b] = rd.get(b, 0) | mask``, plus ``line_accesses``).

    **Cache model.**  When :attr:`cache` is set (``CacheModel``), each
    distinct line of a stretch of work between two lock events is fed to
    ``cache.access(cpu, line, write)`` once (written lines as writes), on
    :attr:`cpu`, the CPU the flow runs the operation on.

    **Lock sections.**  When :attr:`sections` is set
    (:class:`vmapsim.cost.sections.LockSections`), the allocator's lock
    calls cut the work into segments and attribute each to the locks held.
    """

    __slots__ = (
        *COUNTER_NAMES,
        "_cache_base",
        "cache",
        "cpu",
        "extra",
        "locks",
        "mem",
        "op_rd",
        "op_wr",
        "parts",
        "rd",
        "sections",
        "wr",
    )

    def __init__(self, mem: AddressSpace | None = None) -> None:
        for name in COUNTER_NAMES:
            setattr(self, name, 0)
        #: lock name -> acquisitions; hot paths do ``locks[name] += 1`` directly
        self.locks: defaultdict[str, int] = defaultdict(int)
        #: a component's own counters (``add``)
        self.extra: defaultdict[str, int] = defaultdict(int)
        #: label -> the part a component counts into (empty: no per-component split)
        self.parts: dict[str, Counters] = {}
        #: the modelled kernel memory (addresses of every object touched)
        self.mem: AddressSpace = mem if mem is not None else AddressSpace()
        #: lines touched since the last segment cut: 256-B block -> line mask
        self.rd: dict[int, int] = {}
        self.wr: dict[int, int] = {}
        #: lines of the current operation's finished segments
        self.op_rd: dict[int, int] = {}
        self.op_wr: dict[int, int] = {}
        #: the cache model (``CacheModel``) or None; :attr:`cpu` is where it runs
        self.cache: Any = None
        self._cache_base: dict[str, int] = {}
        self.cpu = 0
        #: lock-section accounting (:class:`vmapsim.cost.sections.LockSections`) or None
        self.sections: Any = None

    # -- touches -------------------------------------------------------------
    def touch(self, line: int, write: bool = False) -> None:
        """Touch the 64-byte line ``line`` (address // 64); ``write`` dirties it."""
        d = self.wr if write else self.rd
        b = line >> 2
        d[b] = d.get(b, 0) | (1 << (line & 3))
        self.line_accesses += 1

    def touch_block(self, block: int, mask: int, write: bool = False) -> None:
        """Touch lines ``4*block + i`` for every bit ``i`` of ``mask`` (0..15):
        the lines of one 256-byte block (a maple node is exactly one)."""
        d = self.wr if write else self.rd
        d[block] = d.get(block, 0) | mask
        self.line_accesses += POPCOUNT4[mask]

    def touch_range(self, addr: int, size: int, write: bool = False) -> None:
        """Touch every line covering bytes ``[addr, addr + size)``."""
        d = self.wr if write else self.rd
        first = addr >> 6
        last = (addr + size - 1) >> 6
        for line in range(first, last + 1):
            b = line >> 2
            d[b] = d.get(b, 0) | (1 << (line & 3))
        self.line_accesses += last - first + 1

    # -- operation and segment boundaries -------------------------------------
    def cut(self) -> tuple[int, int]:
        """End the current segment (a stretch of work between lock events):
        feed its distinct lines to the cache model, merge them into the
        operation's, and return ``(distinct lines, lines written)`` of the
        segment."""
        rd = self.rd
        wr = self.wr
        if not rd and not wr:
            return 0, 0
        op_rd = self.op_rd
        op_wr = self.op_wr
        written = 0
        for b, m in wr.items():
            written += POPCOUNT4[m]
            op_wr[b] = op_wr.get(b, 0) | m
        lines = written
        for b, m in rd.items():
            w = wr.get(b)
            if w is not None:
                m &= ~w
            lines += POPCOUNT4[m]
            op_rd[b] = op_rd.get(b, 0) | m
        cache = self.cache
        if cache is not None:
            access = cache.access
            cpu = self.cpu
            for b, m in rd.items():
                w = wr.get(b, 0)
                m &= ~w
                for i in range(4):
                    if m >> i & 1:
                        access(cpu, (b << 2) | i, False)
            for b, m in wr.items():
                for i in range(4):
                    if m >> i & 1:
                        access(cpu, (b << 2) | i, True)
        rd.clear()
        wr.clear()
        return lines, written

    def op_end(self) -> None:
        """End the current kernel operation: count its distinct lines.

        ``cache_lines`` += lines touched, ``lines_written`` += lines written
        at least once, ``lines_read`` += the rest; with a cache model, its
        hit/miss/transfer counters are brought up to date."""
        if self.sections is not None:
            self.sections.op_end()
        elif self.cache is not None:
            if self.rd or self.wr:
                self.cut()
        elif not self.op_rd and not self.op_wr:
            # no segment was cut: count the pending touches directly
            rd = self.rd
            wr = self.wr
            written = 0
            for m in wr.values():
                written += POPCOUNT4[m]
            only_read = 0
            for b, m in rd.items():
                w = wr.get(b)
                only_read += POPCOUNT4[m & ~w if w is not None else m]
            self.cache_lines += written + only_read
            self.lines_written += written
            self.lines_read += only_read
            rd.clear()
            wr.clear()
            return
        else:
            self.cut()
        op_rd = self.op_rd
        op_wr = self.op_wr
        if op_rd or op_wr:
            written = 0
            for m in op_wr.values():
                written += POPCOUNT4[m]
            only_read = 0
            for b, m in op_rd.items():
                w = op_wr.get(b)
                if w is not None:
                    m &= ~w
                only_read += POPCOUNT4[m]
            self.cache_lines += written + only_read
            self.lines_written += written
            self.lines_read += only_read
            op_rd.clear()
            op_wr.clear()
        if self.cache is not None:
            self.sync_cache()

    def sync_cache(self) -> None:
        """Copy the cache model's counters (their growth since the model was
        attached or the counters reset) into the cache counters."""
        snap = self.cache.snapshot()
        base = self._cache_base
        for name in CACHE_COUNTERS:
            _SLOTS[name].__set__(self, snap.get(name, 0) - base.get(name, 0))

    def set_cache(self, cache: Any) -> None:
        """Attach a cache model (``CacheModel``), or None to detach it."""
        self.op_end()
        self.cache = cache
        self._cache_base = dict(cache.snapshot()) if cache is not None else {}
        for name in CACHE_COUNTERS:
            _SLOTS[name].__set__(self, 0)

    def checkpoint(self) -> tuple[Any, ...]:
        """Everything a :meth:`restore` puts back (for work that must not
        count, such as the debug checks' own lookups).  Until the restore,
        lock sections and the cache model are suspended: the checks' touches
        and lock calls reach neither."""
        cp = (
            [getattr(self, k) for k in COUNTER_NAMES],
            dict(self.locks),
            dict(self.rd),
            dict(self.wr),
            dict(self.op_rd),
            dict(self.op_wr),
            self.sections,
            self.cache,
        )
        self.sections = None
        self.cache = None
        return cp

    def restore(self, cp: tuple[Any, ...]) -> None:
        """Undo every count made since :meth:`checkpoint` and resume lock
        sections and the cache model."""
        values, locks, rd, wr, op_rd, op_wr, sections, cache = cp
        for k, v in zip(COUNTER_NAMES, values, strict=True):
            setattr(self, k, v)
        self.locks.clear()
        self.locks.update(locks)
        for d, saved in ((self.rd, rd), (self.wr, wr), (self.op_rd, op_rd), (self.op_wr, op_wr)):
            d.clear()
            d.update(saved)
        self.sections = sections
        self.cache = cache

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
            part = self.parts[label] = Counters(self.mem)
            # one line set per operation: a line two components touch is one line
            part.rd = self.rd
            part.wr = self.wr
            if type(self) is Counters:
                self.__class__ = SummingCounters
        return part

    def reset(self) -> None:
        """Set every counter back to zero (lock names are forgotten).

        The ``locks`` dict is cleared in place, so references to it stay
        valid; pending touches are dropped; a cache model keeps its contents
        and its counters restart from zero."""
        self.rd.clear()
        self.wr.clear()
        self.op_rd.clear()
        self.op_wr.clear()
        if self.cache is not None:
            self._cache_base = dict(self.cache.snapshot())
        if self.sections is not None:
            self.sections.reset()
        for name in COUNTER_NAMES:
            _SLOTS[name].__set__(self, 0)
        self.locks.clear()
        self.extra.clear()
        for part in self.parts.values():
            part.reset()

    def snapshot(self) -> dict[str, int]:
        """A plain dict copy of every counter, locks included (ends the
        current operation first: :meth:`op_end`)."""
        self.op_end()
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
            if key in _FOLDED:
                self.op_end()
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


_FOLDED = frozenset(LINE_COUNTERS + CACHE_COUNTERS)

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
