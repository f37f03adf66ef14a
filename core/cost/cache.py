"""Per-CPU caches, a shared last-level cache and MESI-style coherence.

The model answers one question per memory access: where did the line come
from?  Every simulated CPU has a private L1d and L2 (set-associative, LRU in
each set); all CPUs share one last-level cache (LLC).  A directory keeps, per
line, which CPUs hold it in their private caches and which one (if any) holds
it Modified, as the MESI protocol of x86 and arm64 cores (and the snoop
filters of their interconnects) do.  It is a model of those caches'
*placement and coherence*, not of their timing: :mod:`vmapsim.cost.timing`
turns the counts into nanoseconds.

An access ``access(cpu, line, write)`` (``line`` = modelled address // 64)
is classified into exactly one of five outcomes, so the five counters add up
to the accesses made:

``l1_hits``
    the line is in this CPU's L1d;
``l2_hits``
    in this CPU's L2, not its L1d (it is then filled into the L1d);
``coherence_transfers``
    not in this CPU's caches and **Modified in another CPU's**: the dirty
    line must come from that CPU's cache (a cache-to-cache transfer, the
    ``HITM`` of Intel's snoop responses).  A read leaves both copies Shared;
    a write (a read-for-ownership) takes the line over;
``llc_hits``
    not in this CPU's caches, not dirty elsewhere, found in the LLC — or
    held clean by another CPU, whose copy the LLC's snoop filter forwards
    at LLC cost (read sharing is no transfer);
``mem_misses``
    found nowhere: a fill from memory.

``invalidations`` counts, besides, every other CPU's copy a write removes
(MESI's invalidate on a write to a Shared line, or on a read-for-ownership):
a write on a CPU whose L1d holds the line Shared is an L1 hit *and* one
invalidation per other holder.

Placement rules, chosen and documented once:

* **private L2 inclusive of L1d**: every line in a CPU's L1d is in its L2;
  an L2 eviction drops the line from the L1d too (Arm's Neoverse N1 L2 is
  strictly inclusive of its L1d; Intel's is mostly so in practice — the
  difference matters only for lines evicted from a 1 to 2 MiB L2 while still
  in a 48 to 64 KiB L1d).  A line leaves a CPU when it leaves its L2; a
  Modified line leaving is written back (into the LLC in victim mode).
* **LLC** (``CacheConfig.llc_inclusive``):

  - ``False`` (the default; Intel Xeon since Skylake-SP and AMD Zen, whose
    L3 is a victim cache of the L2s): a fill from memory goes to the
    private caches only; a line evicted from an L2 is inserted into the
    LLC; an LLC hit copies the line up and leaves it in the LLC;
  - ``True`` (Intel client cores and Xeons up to Broadwell): every fill
    goes to the LLC as well; an LLC eviction back-invalidates the line in
    every private cache (writing it back if it was Modified).

Everything is deterministic: sets are chosen by ``line % sets``, victims are
the least recently used line of the set, and nothing depends on a clock or a
random draw.  Each set is an ``OrderedDict`` used as an LRU list (oldest
first); the L1d hit path is two dict operations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from attrs import field, frozen

__all__ = ["CACHE_KEYS", "CacheConfig", "CacheModel"]

#: the keys of :meth:`CacheModel.snapshot`, in report order
CACHE_KEYS: tuple[str, ...] = (
    "l1_hits",
    "l2_hits",
    "llc_hits",
    "mem_misses",
    "coherence_transfers",
    "invalidations",
)

KiB = 1024
MiB = 1024 * KiB


def _positive_int(inst: object, attr: object, value: object) -> None:
    name = getattr(attr, "name", "value")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name}: must be positive, got {value}")


def _line_size(inst: object, attr: object, value: int) -> None:
    _positive_int(inst, attr, value)
    if value & (value - 1) or value < 16:
        raise ValueError(f"line_size: must be a power of two >= 16, got {value}")


@frozen
class CacheConfig:
    """Sizes and associativity of one platform's data caches.

    ``l1d_*`` and ``l2_*`` are per CPU (private), ``llc_*`` is shared by all
    CPUs.  Each level's size must be a whole number of sets:
    ``size % (ways * line_size) == 0``.  The defaults are a current x86
    server core (Intel Sapphire Rapids / Emerald Rapids, Golden Cove and
    Raptor Cove cores: 48 KiB 12-way L1d, 2 MiB 16-way L2, a shared
    non-inclusive L3, 32 MiB here); :meth:`arm64` is an Arm Neoverse N1
    server (Ampere Altra); :meth:`for_arch` picks by architecture name.
    Sources in docs/modelled-time.md.
    """

    name: str = "x86_64 server (Sapphire Rapids class)"
    line_size: int = field(default=64, validator=_line_size)
    l1d_size: int = field(default=48 * KiB, validator=_positive_int)
    l1d_ways: int = field(default=12, validator=_positive_int)
    l2_size: int = field(default=2 * MiB, validator=_positive_int)
    l2_ways: int = field(default=16, validator=_positive_int)
    llc_size: int = field(default=32 * MiB, validator=_positive_int)
    llc_ways: int = field(default=16, validator=_positive_int)
    llc_inclusive: bool = field(default=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.llc_inclusive, bool):
            raise TypeError("llc_inclusive: must be a bool")
        for level in ("l1d", "l2", "llc"):
            size = getattr(self, f"{level}_size")
            ways = getattr(self, f"{level}_ways")
            if size % (ways * self.line_size):
                raise ValueError(
                    f"{level}_size: {size} is not a whole number of sets of "
                    f"{ways} ways x {self.line_size} B"
                )

    def sets(self, level: str) -> int:
        """Number of sets of ``level`` (``"l1d"``, ``"l2"`` or ``"llc"``)."""
        if level not in ("l1d", "l2", "llc"):
            raise ValueError(f"level: must be 'l1d', 'l2' or 'llc', got {level!r}")
        return getattr(self, f"{level}_size") // (getattr(self, f"{level}_ways") * self.line_size)

    @classmethod
    def x86_64(cls) -> CacheConfig:
        """The default: a Sapphire Rapids-class Xeon core (see class doc)."""
        return cls()

    @classmethod
    def arm64(cls) -> CacheConfig:
        """An Arm Neoverse N1 server core (Ampere Altra): 64 KiB 4-way L1d,
        1 MiB 8-way private L2 (inclusive of the L1d), a 32 MiB shared
        system-level cache (16 ways assumed), non-inclusive."""
        return cls(
            name="arm64 server (Neoverse N1 / Ampere Altra)",
            l1d_size=64 * KiB,
            l1d_ways=4,
            l2_size=1 * MiB,
            l2_ways=8,
            llc_size=32 * MiB,
            llc_ways=16,
            llc_inclusive=False,
        )

    @classmethod
    def for_arch(cls, arch: str) -> CacheConfig:
        """The preset of ``arch`` (``"x86_64"`` or ``"arm64"``)."""
        if arch == "x86_64":
            return cls.x86_64()
        if arch == "arm64":
            return cls.arm64()
        raise ValueError(f"arch: must be 'x86_64' or 'arm64', got {arch!r}")


_Set = OrderedDict  # line -> None, least recently used first


class CacheModel:
    """Private L1d + L2 per CPU, a shared LLC, MESI-style coherence.

    ``access(cpu, line, write)`` is the per-touch entry point; the counters
    are attributes (``l1_hits`` …, :data:`CACHE_KEYS`) and
    :meth:`snapshot` copies them.  See the module docstring for the rules.
    """

    __slots__ = (
        "config",
        "nr_cpus",
        "_l1",
        "_l2",
        "_llc",
        "_l1_sets",
        "_l2_sets",
        "_llc_sets",
        "_l1_ways",
        "_l2_ways",
        "_llc_ways",
        "_inclusive",
        "_holders",
        "_modified",
        *CACHE_KEYS,
    )

    def __init__(self, nr_cpus: int, config: CacheConfig | None = None) -> None:
        if isinstance(nr_cpus, bool) or not isinstance(nr_cpus, int):
            raise TypeError(f"nr_cpus: must be an int, got {type(nr_cpus).__name__}")
        if nr_cpus < 1:
            raise ValueError(f"nr_cpus: must be at least 1, got {nr_cpus}")
        if config is None:
            config = CacheConfig()
        if not isinstance(config, CacheConfig):
            raise TypeError(f"config: must be a CacheConfig, got {type(config).__name__}")
        self.config = config
        self.nr_cpus = nr_cpus
        self._l1_sets = config.sets("l1d")
        self._l2_sets = config.sets("l2")
        self._llc_sets = config.sets("llc")
        self._l1_ways = config.l1d_ways
        self._l2_ways = config.l2_ways
        self._llc_ways = config.llc_ways
        self._inclusive = config.llc_inclusive
        self.reset()

    def reset(self) -> None:
        """Empty every cache and the directory; zero the counters."""
        self._l1 = [[_Set() for _ in range(self._l1_sets)] for _ in range(self.nr_cpus)]
        # L2 and LLC sets are made on first use (an LLC has tens of thousands)
        self._l2: list[dict[int, _Set]] = [{} for _ in range(self.nr_cpus)]
        self._llc: dict[int, _Set] = {}
        #: line -> bit mask of the CPUs holding it in their private caches
        self._holders: dict[int, int] = {}
        #: line -> the CPU holding it Modified
        self._modified: dict[int, int] = {}
        for key in CACHE_KEYS:
            setattr(self, key, 0)

    def snapshot(self) -> dict[str, int]:
        """The counters, as a plain dict (keys :data:`CACHE_KEYS`)."""
        return {key: getattr(self, key) for key in CACHE_KEYS}

    @property
    def accesses(self) -> int:
        """Accesses made: the sum of the five outcome counters."""
        return (
            self.l1_hits + self.l2_hits + self.llc_hits + self.mem_misses + self.coherence_transfers
        )

    # -- the per-touch path -------------------------------------------------

    def access(self, cpu: int, line: int, write: bool) -> None:
        """CPU ``cpu`` reads (``write=False``) or writes the line ``line``."""
        s = self._l1[cpu][line % self._l1_sets]
        if line in s:
            s.move_to_end(line)
            self.l1_hits += 1
            if write and self._modified.get(line) != cpu:
                self._own(cpu, line)
            return
        self._l1_miss(cpu, line, write)

    def access_many(self, cpu: int, lines: Iterable[int], write: bool) -> None:
        """:meth:`access` for each of ``lines`` in order (a node's line set)."""
        access = self.access
        for line in lines:
            access(cpu, line, write)

    def holds(self, cpu: int, line: int) -> str:
        """Where ``cpu`` holds ``line``: ``"l1d"``, ``"l2"`` or ``""`` (for tests
        and reports; the LLC is :meth:`in_llc`)."""
        if line in self._l1[cpu][line % self._l1_sets]:
            return "l1d"
        s2 = self._l2[cpu].get(line % self._l2_sets)
        return "l2" if s2 is not None and line in s2 else ""

    def in_llc(self, line: int) -> bool:
        """Whether the shared LLC holds ``line``."""
        s = self._llc.get(line % self._llc_sets)
        return s is not None and line in s

    def state(self, cpu: int, line: int) -> str:
        """The MESI state of ``line`` in ``cpu``'s caches: ``"M"``, ``"E"``,
        ``"S"`` or ``"I"``."""
        mask = self._holders.get(line, 0)
        if not mask >> cpu & 1:
            return "I"
        if self._modified.get(line) == cpu:
            return "M"
        return "E" if mask == 1 << cpu else "S"

    # -- slow paths ---------------------------------------------------------

    def _own(self, cpu: int, line: int) -> None:
        """A write by ``cpu``, which holds ``line``: invalidate other holders
        and make the line Modified here."""
        mask = self._holders[line]
        others = mask & ~(1 << cpu)
        if others:
            self._invalidate_others(line, others)
            self._holders[line] = 1 << cpu
        self._modified[line] = cpu

    def _invalidate_others(self, line: int, others: int) -> None:
        n = 0
        l1_idx = line % self._l1_sets
        l2_idx = line % self._l2_sets
        c = 0
        while others:
            if others & 1:
                self._l1[c][l1_idx].pop(line, None)
                self._l2[c][l2_idx].pop(line, None)
                n += 1
            others >>= 1
            c += 1
        self.invalidations += n
        # a dirty copy goes with the invalidation (to the writer)
        self._modified.pop(line, None)

    def _l1_miss(self, cpu: int, line: int, write: bool) -> None:
        l2 = self._l2[cpu]
        idx2 = line % self._l2_sets
        s2 = l2.get(idx2)
        if s2 is None:
            s2 = l2[idx2] = _Set()
        if line in s2:
            s2.move_to_end(line)
            self.l2_hits += 1
            self._fill_l1(cpu, line)
            if write and self._modified.get(line) != cpu:
                self._own(cpu, line)
            return
        # not in this CPU's private caches
        bit = 1 << cpu
        holders = self._holders.get(line, 0)
        owner = self._modified.get(line)
        if owner is not None:
            # Modified in another CPU: a cache-to-cache transfer
            self.coherence_transfers += 1
            if write:
                self._invalidate_others(line, holders)
                holders = 0
            else:
                del self._modified[line]  # both copies Shared, the data written back
                if self._inclusive:
                    self._llc_touch(line)
        elif holders:
            # clean in other CPUs: forwarded at LLC cost
            self.llc_hits += 1
            if write:
                self._invalidate_others(line, holders)
                holders = 0
            if self._inclusive or self.in_llc(line):
                self._llc_touch(line)
        else:
            s3 = self._llc.get(line % self._llc_sets)
            if s3 is not None and line in s3:
                s3.move_to_end(line)
                self.llc_hits += 1
            else:
                self.mem_misses += 1
                if self._inclusive:
                    self._llc_insert(line)
        self._holders[line] = holders | bit
        if write:
            self._modified[line] = cpu
        self._fill_l2(cpu, line, s2)
        self._fill_l1(cpu, line)

    def _fill_l1(self, cpu: int, line: int) -> None:
        s = self._l1[cpu][line % self._l1_sets]
        if len(s) >= self._l1_ways:
            s.popitem(last=False)  # still in L2 (L2 includes L1d)
        s[line] = None

    def _fill_l2(self, cpu: int, line: int, s2: _Set) -> None:
        if len(s2) >= self._l2_ways:
            victim, _ = s2.popitem(last=False)
            self._leave_cpu(cpu, victim)
        s2[line] = None

    def _leave_cpu(self, cpu: int, line: int) -> None:
        """``line`` left ``cpu``'s L2: drop it from the L1d (inclusion), update
        the directory, write back (victim LLC: insert it)."""
        self._l1[cpu][line % self._l1_sets].pop(line, None)
        mask = self._holders.get(line, 0) & ~(1 << cpu)
        if mask:
            self._holders[line] = mask
        else:
            self._holders.pop(line, None)
        if self._modified.get(line) == cpu:
            del self._modified[line]
        if not self._inclusive:
            self._llc_insert(line)

    def _llc_touch(self, line: int) -> None:
        s3 = self._llc.get(line % self._llc_sets)
        if s3 is not None and line in s3:
            s3.move_to_end(line)
        else:
            self._llc_insert(line)

    def _llc_insert(self, line: int) -> None:
        idx = line % self._llc_sets
        s3 = self._llc.get(idx)
        if s3 is None:
            s3 = self._llc[idx] = _Set()
        elif line in s3:
            s3.move_to_end(line)
            return
        if len(s3) >= self._llc_ways:
            victim, _ = s3.popitem(last=False)
            if self._inclusive:
                self._back_invalidate(victim)
        s3[line] = None

    def _back_invalidate(self, line: int) -> None:
        """An inclusive LLC evicted ``line``: no private cache may keep it."""
        mask = self._holders.pop(line, 0)
        self._modified.pop(line, None)
        l1_idx = line % self._l1_sets
        l2_idx = line % self._l2_sets
        c = 0
        while mask:
            if mask & 1:
                self._l1[c][l1_idx].pop(line, None)
                s2 = self._l2[c].get(l2_idx)
                if s2 is not None:
                    s2.pop(line, None)
            mask >>= 1
            c += 1
