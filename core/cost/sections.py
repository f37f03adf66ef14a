"""Lock sections: the work done while each lock is held, and outside locks.

The allocator's lock calls (:class:`vmapsim.kernel.locking.LockingMixin`)
cut the work of an operation into *segments* at every acquire and release.
A segment's work (:data:`WORK_FIELDS`: distinct lines, lines written, raw
line accesses, tree nodes visited, comparisons, stores, node and
``vmap_area`` allocations, and the cache model's hits, misses and
transfers) is added to every section open at that moment; when a section is
released its total is one sample of its lock instance (class name,
instance).  A segment during which no spinlock or mutex is held is work
*outside* locks (an RCU read section or a preempt-disabled section does not
make work "inside a lock": they are their own kinds, recorded beside the
locks, and serialise no other CPU).

Per lock instance: acquisitions, the sum of each work field, and a
histogram of the distinct lines per section (power-of-two buckets).  Work
outside locks is summed per operation (one sample per kernel operation,
``op_end``).

A recorder (:meth:`LockSections.start_recording` / :meth:`take`) keeps the
ordered segments for the contention model: each entry is a
:class:`Segment`, ``kind`` "outside" or "section"; a section entry is
emitted when the lock is released (nested sections: the inner one first),
outside entries as they are cut.  ``vmapsim_test_vmalloc``'s driver takes
them per loop when asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attrs import define, field

if TYPE_CHECKING:
    from vmapsim.cost.counters import Counters

__all__ = ["HIST_BUCKETS", "KINDS", "WORK_FIELDS", "LockSections", "SectionStats", "Segment"]

#: the counters a segment's work is made of (``lines`` and ``lines_written``
#: are distinct within the segment; the rest are counter deltas)
WORK_FIELDS: tuple[str, ...] = (
    "lines",
    "lines_written",
    "line_accesses",
    "nodes_visited",
    "comparisons",
    "stores",
    "node_allocs",
    "va_allocs",
    "l1_hits",
    "l2_hits",
    "llc_hits",
    "mem_misses",
    "coherence_transfers",
)
_DELTA_FIELDS = WORK_FIELDS[2:8]
_CACHE_FIELDS = WORK_FIELDS[8:]
_NW = len(WORK_FIELDS)

#: section kinds by class name; anything else is a "spinlock"
KINDS: dict[str, str] = {
    "vmap_purge_lock": "mutex",
    "pcpu_alloc_mutex": "mutex",
    "rcu_read_lock": "rcu",
    "preempt_disable": "preempt",
}
#: histogram buckets of distinct lines per section: 0, 1, 2-3, 4-7, ... >= 2**(HIST_BUCKETS-2)
HIST_BUCKETS = 12


@define(slots=True, eq=False, weakref_slot=False)
class SectionStats:
    """What one lock instance (or the outside) did: acquisitions, summed
    work, the distinct-lines histogram and maximum."""

    kind: str
    acquisitions: int = 0
    work: list[int] = field(factory=lambda: [0] * _NW)
    hist: list[int] = field(factory=lambda: [0] * HIST_BUCKETS)
    max_lines: int = 0

    def add(self, work: list[int]) -> None:
        """One section (or one operation's outside work)."""
        self.acquisitions += 1
        acc = self.work
        for i in range(_NW):
            acc[i] += work[i]
        lines = work[0]
        b = lines.bit_length()
        self.hist[b if b < HIST_BUCKETS else HIST_BUCKETS - 1] += 1
        if lines > self.max_lines:
            self.max_lines = lines

    def quantile(self, q: float) -> int:
        """Upper bound of the histogram bucket holding quantile ``q`` of lines."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile q must be in [0, 1], got {q}")
        n = self.acquisitions
        if not n:
            return 0
        target = q * n
        seen = 0
        for b, k in enumerate(self.hist):
            seen += k
            if seen >= target and k:
                return 0 if b == 0 else min((1 << b) - 1, self.max_lines)
        return self.max_lines

    def to_dict(self) -> dict[str, Any]:
        """Totals, means per section, the histogram and quantiles (JSON-ready)."""
        n = self.acquisitions
        return {
            "kind": self.kind,
            "acquisitions": n,
            "total": dict(zip(WORK_FIELDS, self.work, strict=True)),
            "mean": {k: (v / n if n else 0.0) for k, v in zip(WORK_FIELDS, self.work, strict=True)},
            "lines_hist": list(self.hist),
            "lines_p50": self.quantile(0.5),
            "lines_p90": self.quantile(0.9),
            "lines_max": self.max_lines,
        }


@define(slots=True, eq=False, weakref_slot=False)
class Segment:
    """One recorded segment: ``kind`` "outside" or "section"; ``name`` and
    ``instance`` of the lock for a section; ``work`` per :data:`WORK_FIELDS`;
    ``cpu`` the CPU that ran it."""

    kind: str
    name: str
    instance: int
    cpu: int
    work: tuple[int, ...]


class LockSections:
    """Per-lock-instance section accounting over one :class:`Counters`."""

    __slots__ = (
        "_base",
        "_locked",
        "_open",
        "_outside",
        "c",
        "label",
        "outside",
        "outside_by",
        "recording",
        "stats",
    )

    def __init__(self, counters: Counters) -> None:
        self.c = counters
        #: what the work is charged to (a test_vmalloc subtest's name; "" none)
        self.label = ""
        #: (label, class name, instance) -> :class:`SectionStats`
        self.stats: dict[tuple[str, str, int], SectionStats] = {}
        #: work outside any spinlock/mutex, one sample per operation (all labels)
        self.outside = SectionStats("outside")
        #: the same per label
        self.outside_by: dict[str, SectionStats] = {}
        self._outside = [0] * _NW
        #: open sections, innermost last: [key, work]
        self._open: list[list[Any]] = []
        self._locked = 0  # open spinlock/mutex sections
        self._base = self._read()
        #: recorded segments (``start_recording``) or None
        self.recording: list[Segment] | None = None

    def _read(self) -> list[int]:
        c = self.c
        vals = [getattr(c, k) for k in _DELTA_FIELDS]
        if c.cache is not None:
            snap = c.cache.snapshot()
            vals += [snap.get(k, 0) for k in _CACHE_FIELDS]
        else:
            vals += [0] * len(_CACHE_FIELDS)
        return vals

    def _cut(self) -> list[int]:
        """The work since the last cut."""
        c = self.c
        lines, written = c.cut()
        now = self._read()
        base = self._base
        self._base = now
        work = [lines, written]
        work += [now[i] - base[i] for i in range(len(now))]
        if any(work):
            for sec in self._open:
                acc = sec[1]
                for i in range(_NW):
                    acc[i] += work[i]
            if not self._locked:
                acc = self._outside
                for i in range(_NW):
                    acc[i] += work[i]
                if self.recording is not None:
                    self.recording.append(Segment("outside", "", 0, c.cpu, tuple(work)))
        return work

    def acquire(self, name: str, instance: int) -> None:
        """A lock (or RCU/preempt section) is taken."""
        self._cut()
        self._open.append([(name, instance), [0] * _NW])
        if KINDS.get(name, "spinlock") in ("spinlock", "mutex"):
            self._locked += 1

    def release(self, name: str, instance: int) -> None:
        """A lock is released: its section becomes one sample."""
        self._cut()
        key = (name, instance)
        opened = self._open
        for i in range(len(opened) - 1, -1, -1):
            if opened[i][0] == key:
                work = opened.pop(i)[1]
                break
        else:
            return
        kind = KINDS.get(name, "spinlock")
        if kind in ("spinlock", "mutex"):
            self._locked -= 1
        skey = (self.label, name, instance)
        st = self.stats.get(skey)
        if st is None:
            st = self.stats[skey] = SectionStats(kind)
        st.add(work)
        if self.recording is not None:
            self.recording.append(Segment("section", name, instance, self.c.cpu, tuple(work)))

    def op_end(self) -> None:
        """A kernel operation ended: its outside work is one sample."""
        self._cut()
        acc = self._outside
        if any(acc):
            self.outside.add(acc)
            by = self.outside_by.get(self.label)
            if by is None:
                by = self.outside_by[self.label] = SectionStats("outside")
            by.add(acc)
            self._outside = [0] * _NW

    def reset(self) -> None:
        """Forget every sample (open sections stay open)."""
        self.stats.clear()
        self.outside = SectionStats("outside")
        self.outside_by.clear()
        self._outside = [0] * _NW
        self._base = self._read()

    def start_recording(self) -> None:
        """Keep every segment from now on, in order (:meth:`take`)."""
        self.recording = []

    def take(self) -> list[Segment]:
        """The segments recorded since the last take (recording continues)."""
        out = self.recording or []
        if self.recording is not None:
            self.recording = []
        return out

    def stop_recording(self) -> list[Segment]:
        """Stop recording; the segments not taken yet."""
        out = self.recording or []
        self.recording = None
        return out

    def labels(self) -> list[str]:
        """The labels work was charged to."""
        return sorted({k[0] for k in self.stats} | set(self.outside_by))

    def report(self, label: str | None = None, per: int = 0) -> dict[str, Any]:
        """Lock sections by class (instances merged) with each instance
        under ``instances``, and the outside work (JSON-ready): for one
        ``label``, or all (None).  With ``per`` (operations or loops),
        ``per_op``: acquisitions per operation."""
        by_inst: dict[str, dict[str, SectionStats]] = {}
        merged: dict[str, SectionStats] = {}
        for (lab, name, inst), st in sorted(self.stats.items()):
            if label is not None and lab != label:
                continue
            m = merged.get(name)
            if m is None:
                m = merged[name] = SectionStats(st.kind)
            _merge(m, st)
            insts = by_inst.setdefault(name, {})
            one = insts.get(str(inst))
            if one is None:
                one = insts[str(inst)] = SectionStats(st.kind)
            _merge(one, st)
        by_class: dict[str, Any] = {}
        for name, m in merged.items():
            d = m.to_dict()
            if per:
                d["per_op"] = m.acquisitions / per
            d["instances"] = {k: v.to_dict() for k, v in by_inst[name].items()}
            by_class[name] = d
        if label is None:
            out = self.outside
        else:
            out = self.outside_by.get(label) or SectionStats("outside")
        return {"locks": by_class, "outside": out.to_dict()}


def _merge(into: SectionStats, st: SectionStats) -> None:
    """Add ``st``'s samples to ``into``."""
    into.acquisitions += st.acquisitions
    for i in range(_NW):
        into.work[i] += st.work[i]
    for i in range(HIST_BUCKETS):
        into.hist[i] += st.hist[i]
    into.max_lines = max(into.max_lines, st.max_lines)
