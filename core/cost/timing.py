"""Modelled time: a cost table per platform turns counters into nanoseconds.

The cost model counts work (:mod:`vmapsim.cost.counters`) and, when the
cache model is on, where each touched line came from
(:mod:`vmapsim.cost.cache`).  This module prices those counts.  A
:class:`CostTable` has two kinds of entries:

* **hardware entries**, fixed from published sources (vendor manuals,
  microbenchmark articles; every entry's source is in :attr:`CostTable.sources`
  and docs/modelled-time.md): ns per L1/L2/LLC hit, memory miss, coherence
  transfer and invalidation, an uncontended spin lock acquire + release, a
  SLUB fast-path allocation / free, a page's allocation, zeroing, mapping and
  unmapping + freeing, a local and a global kernel TLB flush, an RCU callback;
* **fitted entries** (``call_ns``, ``page_ns``), the work the model does not
  count — the parts of ``vmalloc()`` / ``vfree()`` outside the vmap-area
  allocator, and what a page costs beyond the fixed per-page entries —
  fitted once per platform by least squares on published single-thread
  test_vmalloc figures of an unpatched kernel (benchmarks/calibrate.py;
  the fit and its residuals are in docs/modelled-time.md).

:func:`modelled_ns` prices a counter mapping (a delta of
:meth:`Counters.snapshot`, a subtest's counters) and returns the breakdown
per kind of work; :func:`ns_per_op` and :func:`usec_per_loop` divide it.
Counters a table does not know are ignored; counters the model does not
have yet (pages, RCU callbacks) cost nothing when absent.

This is a *model*: deterministic, comparable between stages, and only as
close to a kernel's clock as the calibration table says.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import asdict, field, frozen

from .cache import CACHE_KEYS

__all__ = [
    "COST_TABLES",
    "COST_TABLES_CACHE",
    "CostTable",
    "cost_table",
    "modelled_ns",
    "ns_per_op",
    "usec_per_loop",
]


def _non_negative(inst: object, attr: object, value: object) -> None:
    name = getattr(attr, "name", "value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: must be a number of ns, got {type(value).__name__}")
    if value < 0 or value != value:
        raise ValueError(f"{name}: must be >= 0 ns, got {value}")


def _ns() -> object:
    return field(validator=_non_negative)


@frozen
class CostTable:
    """ns per unit of work on one platform (see the module docstring)."""

    platform: str
    #: the core clock the cycle figures of the sources were converted at
    ghz: float = _ns()
    # -- caches (vmapsim.cost.cache outcomes)
    l1_hit_ns: float = _ns()
    l2_hit_ns: float = _ns()
    llc_hit_ns: float = _ns()
    mem_miss_ns: float = _ns()
    coherence_transfer_ns: float = _ns()
    invalidation_ns: float = _ns()
    # -- without the cache model: each counted line at this cost
    line_ns: float = _ns()
    # -- instructions of a tree step and of a key comparison
    node_step_ns: float = _ns()
    comparison_ns: float = _ns()
    # -- synchronisation
    lock_ns: float = _ns()
    # -- slab (vmap_area_cachep, maple nodes, vm_struct, the pages array)
    slab_alloc_ns: float = _ns()
    slab_free_ns: float = _ns()
    # -- pages of a vmalloc area
    page_alloc_ns: float = _ns()
    page_zero_ns: float = _ns()
    page_map_ns: float = _ns()
    page_unmap_free_ns: float = _ns()
    # -- lazy freeing
    tlb_flush_local_ns: float = _ns()
    tlb_flush_global_ns: float = _ns()
    rcu_callback_ns: float = _ns()
    # -- fitted (benchmarks/calibrate.py)
    call_ns: float = _ns()
    page_ns: float = _ns()
    #: how the fitted entries were obtained ("uncalibrated: …" when not)
    calibration: str = ""
    #: entry name -> where its value comes from
    sources: Mapping[str, str] = field(factory=dict)

    def with_fit(self, *, call_ns: float, page_ns: float, calibration: str) -> CostTable:
        """This table with the fitted entries replaced."""
        d = asdict(self, recurse=False)
        d.update(call_ns=call_ns, page_ns=page_ns, calibration=calibration)
        return CostTable(**d)


#: counters whose units are slab objects allocated / freed
SLAB_ALLOCS = ("va_allocs", "node_allocs")
SLAB_FREES = ("va_frees", "node_frees")
#: slab objects outside vmap_area_cachep per call: __get_vm_area_node()'s
#: vm_struct (kzalloc_node) and __vmalloc_area_node()'s pages array
#: (kmalloc_node for the test's sizes), freed by vfree()
WRAPPER_SLAB_OBJECTS = 2


def modelled_ns(
    counters: Mapping[str, int], table: CostTable, *, nr_cpus: int = 1
) -> dict[str, float]:
    """The modelled ns of a counter mapping, per kind of work, and ``total``.

    * ``cache``: with the cache model's keys (``l1_hits`` …) each outcome at
      its latency, plus invalidations; without them, ``cache_lines`` at
      ``line_ns``;
    * ``tree``: ``nodes_visited`` and ``comparisons`` (instructions);
    * ``locks``: every ``lock.*`` acquisition (acquire + release, uncontended);
    * ``slab``: vmap_area and maple-node objects, and the wrapper's two
      objects per ``alloc_calls`` / ``free_calls``;
    * ``pages``: ``pages_mapped`` (allocation + mapping + the fitted
      ``page_ns``), ``pages_zeroed``, ``pages_freed`` (unmap + free);
    * ``tlb``: ``tlb_flushes``, local on one CPU, global (IPIs) on more;
    * ``rcu``: ``rcu_callbacks``;
    * ``calls``: the fitted ``call_ns`` per ``alloc_calls`` + ``free_calls``.
    """
    if isinstance(nr_cpus, bool) or not isinstance(nr_cpus, int) or nr_cpus < 1:
        raise ValueError(f"nr_cpus: must be an int >= 1, got {nr_cpus!r}")
    g = counters.get
    if any(g(k) for k in CACHE_KEYS):
        cache = (
            g("l1_hits", 0) * table.l1_hit_ns
            + g("l2_hits", 0) * table.l2_hit_ns
            + g("llc_hits", 0) * table.llc_hit_ns
            + g("mem_misses", 0) * table.mem_miss_ns
            + g("coherence_transfers", 0) * table.coherence_transfer_ns
            + g("invalidations", 0) * table.invalidation_ns
        )
    else:
        cache = g("cache_lines", 0) * table.line_ns
    tree = g("nodes_visited", 0) * table.node_step_ns + g("comparisons", 0) * table.comparison_ns
    locks = sum(v for k, v in counters.items() if k.startswith("lock.")) * table.lock_ns
    calls = g("alloc_calls", 0) + g("free_calls", 0)
    slab = (sum(g(k, 0) for k in SLAB_ALLOCS) + WRAPPER_SLAB_OBJECTS * g("alloc_calls", 0)) * (
        table.slab_alloc_ns
    ) + (sum(g(k, 0) for k in SLAB_FREES) + WRAPPER_SLAB_OBJECTS * g("free_calls", 0)) * (
        table.slab_free_ns
    )
    pages = (
        g("pages_mapped", 0) * (table.page_alloc_ns + table.page_map_ns + table.page_ns)
        + g("pages_zeroed", 0) * table.page_zero_ns
        + g("pages_freed", 0) * table.page_unmap_free_ns
    )
    flush = table.tlb_flush_local_ns if nr_cpus == 1 else table.tlb_flush_global_ns
    tlb = g("tlb_flushes", 0) * flush
    rcu = g("rcu_callbacks", 0) * table.rcu_callback_ns
    fixed = calls * table.call_ns
    out = {
        "cache": cache,
        "tree": tree,
        "locks": locks,
        "slab": slab,
        "pages": pages,
        "tlb": tlb,
        "rcu": rcu,
        "calls": fixed,
    }
    out["total"] = sum(out.values())
    return out


def ns_per_op(counters: Mapping[str, int], table: CostTable, *, nr_cpus: int = 1) -> float:
    """Modelled ns per ``alloc_vmap_area()``/``vfree()`` operation
    (``alloc_calls + free_calls``; 0.0 when there was none)."""
    ops = counters.get("alloc_calls", 0) + counters.get("free_calls", 0)
    if not ops:
        return 0.0
    return modelled_ns(counters, table, nr_cpus=nr_cpus)["total"] / ops


def usec_per_loop(
    counters: Mapping[str, int],
    table: CostTable,
    *,
    loops: int,
    per_loops: int = 1_000_000,
    nr_cpus: int = 1,
) -> float:
    """Modelled µs of ``per_loops`` loop iterations of a subtest whose
    counters over ``loops`` iterations are ``counters`` (test_vmalloc's
    ``avg: N usec`` is for its ``test_loop_count``, 1,000,000 by default).
    The set-up a subtest does once (full_fit's holes, long_busy_list's
    15,000 areas) is scaled with the loops, as the kernel's ``avg`` includes
    it once per run of ``test_loop_count`` loops."""
    if loops < 1:
        raise ValueError(f"loops: must be >= 1, got {loops}")
    total = modelled_ns(counters, table, nr_cpus=nr_cpus)["total"]
    return total / 1000.0 * per_loops / loops


# -- the tables -----------------------------------------------------------------

_X86_GHZ = 3.7  # the clock of the calibration machine: see docs/modelled-time.md


def _cyc(cycles: float, ghz: float) -> float:
    return round(cycles / ghz, 3)


_X86_SOURCES = {
    "ghz": "Rezki, lkml 2020-12-14 <20201214175640.GA20756@pc638.lan>: 51,370,095,742 "
    "cycles over 13,883,337 us of the five subtests = 3.70 GHz",
    "l1_hit_ns": "5 cycles: Intel 64 and IA-32 Architectures Optimization Reference Manual, "
    "Golden Cove L1 data cache load-to-use latency",
    "l2_hit_ns": "16 cycles: Intel Optimization Reference Manual, Golden Cove L2",
    "llc_hit_ns": "~33 ns: chipsandcheese.com, 'A Peek at Sapphire Rapids' (2023), L3 latency "
    "of a Xeon Platinum 8480 (round value)",
    "mem_miss_ns": "~110 ns: same article, DRAM latency (DDR5; round value)",
    "coherence_transfer_ns": "~60 ns: chipsandcheese.com, 'Core to Core Latency Data on Large "
    "Systems' (2023), Sapphire Rapids within a die (round value)",
    "invalidation_ns": "counted into the transfer or the LLC round trip of the write; a "
    "Shared->Modified upgrade waits one snoop-filter round trip, half an LLC hit here",
    "line_ns": "no cache model: a counted line at L2 latency (the cycles.py assumption)",
    "node_step_ns": "4 cycles of a tree step's instructions (load, compare, branch)",
    "comparison_ns": "1 cycle",
    "lock_ns": "20 cycles: a LOCK CMPXCHG on a line in L1 (Agner Fog, instruction tables, "
    "Golden Cove ~ 18-20 cycles latency) + a plain store to release "
    "(queued_spin_unlock)",
    "slab_alloc_ns": "SLUB fast path: this_cpu_cmpxchg_double on the per-CPU freelist, ~ 25 cycles",
    "slab_free_ns": "SLUB fast path free, ~ 25 cycles",
    "page_alloc_ns": "order-0 page from the per-CPU lists (rmqueue_pcplist), ~ 100 cycles",
    "page_zero_ns": "clear_page_erms: 4 KiB at ~ 32 B/cycle (REP STOSB, Intel "
    "Optimization Manual, 'Enhanced REP MOVSB and STOSB')",
    "page_map_ns": "one PTE set by vmap_pages_range (page-table walk cached), ~ 20 cycles",
    "page_unmap_free_ns": "vunmap_range_noflush's PTE clear + __free_page to the PCP list, "
    "~ 100 cycles",
    "tlb_flush_local_ns": "flush_tlb_kernel_range on one CPU: a full flush (CR3 write "
    "with PCID off for kernel ranges above tlb_single_page_flush_ceiling) + refills, ~ 500 ns",
    "tlb_flush_global_ns": "the same with IPIs to every other CPU and waiting for them, ~ 3 us",
    "rcu_callback_ns": "invoking one queued callback in rcu_do_batch (kvfree_rcu's free), "
    "~ 100 cycles",
    "call_ns": "fitted (benchmarks/calibrate.py)",
    "page_ns": "fitted (benchmarks/calibrate.py)",
}

X86_64 = CostTable(
    platform="x86_64",
    ghz=_X86_GHZ,
    l1_hit_ns=_cyc(5, _X86_GHZ),
    l2_hit_ns=_cyc(16, _X86_GHZ),
    llc_hit_ns=33.0,
    mem_miss_ns=110.0,
    coherence_transfer_ns=60.0,
    invalidation_ns=16.5,
    line_ns=_cyc(16, _X86_GHZ),
    node_step_ns=_cyc(4, _X86_GHZ),
    comparison_ns=_cyc(1, _X86_GHZ),
    lock_ns=_cyc(20, _X86_GHZ),
    slab_alloc_ns=_cyc(25, _X86_GHZ),
    slab_free_ns=_cyc(25, _X86_GHZ),
    page_alloc_ns=_cyc(100, _X86_GHZ),
    page_zero_ns=_cyc(128, _X86_GHZ),
    page_map_ns=_cyc(20, _X86_GHZ),
    page_unmap_free_ns=_cyc(100, _X86_GHZ),
    tlb_flush_local_ns=500.0,
    tlb_flush_global_ns=3000.0,
    rcu_callback_ns=_cyc(100, _X86_GHZ),
    call_ns=0.0,
    page_ns=0.0,
    calibration="uncalibrated",
    sources=_X86_SOURCES,
)

_ARM_GHZ = 3.0  # Ampere Altra Q80-30
_ARM64_SOURCES = {
    "ghz": "Ampere Altra Q80-30: 3.0 GHz",
    "l1_hit_ns": "4 cycles: Arm Neoverse N1 Software Optimization Guide, L1D load-to-use",
    "l2_hit_ns": "11 cycles: Arm Neoverse N1 Software Optimization Guide, L2",
    "llc_hit_ns": "~35 ns: system-level cache of Ampere Altra through the CMN-600 mesh "
    "(AnandTech, 'The Ampere Altra Review', 2020; round value)",
    "mem_miss_ns": "~110 ns: same review, DRAM latency (round value)",
    "coherence_transfer_ns": "~90 ns: same review, core-to-core latency (round value)",
    "invalidation_ns": "half an SLC round trip (as x86_64)",
    "line_ns": "no cache model: a counted line at L2 latency",
    "node_step_ns": "4 cycles",
    "comparison_ns": "1 cycle",
    "lock_ns": "LSE CASA + STLR (queued_spin_lock with atomics), ~ 25 cycles",
    "slab_alloc_ns": "SLUB fast path, ~ 30 cycles (cmpxchg_double is CASP)",
    "slab_free_ns": "SLUB fast path free, ~ 30 cycles",
    "page_alloc_ns": "order-0 page from the PCP lists, ~ 100 cycles",
    "page_zero_ns": "clear_page with DC ZVA (64-byte blocks), 4 KiB ~ 128 cycles",
    "page_map_ns": "one PTE set, ~ 20 cycles",
    "page_unmap_free_ns": "PTE clear + __free_page, ~ 100 cycles",
    "tlb_flush_local_ns": "TLBI VAALE1 per page or VMALLE1 (+ DSB), ~ 300 ns",
    "tlb_flush_global_ns": "TLBI ...IS broadcast in hardware + DSB ISH, no IPIs, ~ 1 us",
    "rcu_callback_ns": "~ 100 cycles",
    "call_ns": "not fitted: x86_64's value (no published single-thread arm64 figures "
    "of an unpatched kernel were found)",
    "page_ns": "not fitted: x86_64's value",
}

ARM64 = CostTable(
    platform="arm64",
    ghz=_ARM_GHZ,
    l1_hit_ns=_cyc(4, _ARM_GHZ),
    l2_hit_ns=_cyc(11, _ARM_GHZ),
    llc_hit_ns=35.0,
    mem_miss_ns=110.0,
    coherence_transfer_ns=90.0,
    invalidation_ns=17.5,
    line_ns=_cyc(11, _ARM_GHZ),
    node_step_ns=_cyc(4, _ARM_GHZ),
    comparison_ns=_cyc(1, _ARM_GHZ),
    lock_ns=_cyc(25, _ARM_GHZ),
    slab_alloc_ns=_cyc(30, _ARM_GHZ),
    slab_free_ns=_cyc(30, _ARM_GHZ),
    page_alloc_ns=_cyc(100, _ARM_GHZ),
    page_zero_ns=_cyc(128, _ARM_GHZ),
    page_map_ns=_cyc(20, _ARM_GHZ),
    page_unmap_free_ns=_cyc(100, _ARM_GHZ),
    tlb_flush_local_ns=300.0,
    tlb_flush_global_ns=1000.0,
    rcu_callback_ns=_cyc(100, _ARM_GHZ),
    call_ns=0.0,
    page_ns=0.0,
    calibration="uncalibrated",
    sources=_ARM64_SOURCES,
)

#: the fitted entries, from ``python benchmarks/calibrate.py [--cache]``
#: (``--loops 20000,60000``, the counters after the cost2 merge;
#: docs/modelled-time.md).  They depend on how lines are priced, so there are
#: two fits: without the cache model (every distinct line at ``line_ns``) and
#: with it (each line at the latency of where it came from).
FIT_X86_64 = {"call_ns": 10.33, "page_ns": 7.02}
FIT_X86_64_CACHE = {"call_ns": 123.67, "page_ns": 6.68}
_SOURCE = "Rezki's 2020 single-CPU rb-tree figures (lkml <20201214175640.GA20756@pc638.lan>)"
CALIBRATION_X86_64 = (
    f"fitted on {_SOURCE} by benchmarks/calibrate.py, no cache model; rms residual 179 ms "
    "per 1,000,000 loops (docs/modelled-time.md)"
)
CALIBRATION_X86_64_CACHE = (
    f"fitted on {_SOURCE} by benchmarks/calibrate.py --cache; rms residual 167 ms "
    "per 1,000,000 loops (docs/modelled-time.md)"
)
_ARM_NOTE = "not calibrated: x86_64's fitted entries (no published arm64 figures found)"

#: arch -> table, for counters without the cache model
COST_TABLES: dict[str, CostTable] = {
    "x86_64": X86_64.with_fit(**FIT_X86_64, calibration=CALIBRATION_X86_64),
    "arm64": ARM64.with_fit(**FIT_X86_64, calibration=_ARM_NOTE),
}
#: arch -> table, for counters with the cache model's outcomes
COST_TABLES_CACHE: dict[str, CostTable] = {
    "x86_64": X86_64.with_fit(**FIT_X86_64_CACHE, calibration=CALIBRATION_X86_64_CACHE),
    "arm64": ARM64.with_fit(**FIT_X86_64_CACHE, calibration=_ARM_NOTE),
}


def cost_table(arch: str = "x86_64", *, cache_model: bool = False) -> CostTable:
    """The calibrated table of ``arch`` (``"x86_64"`` or ``"arm64"``), with the
    fit for counters made with (``cache_model=True``) or without the cache model."""
    tables = COST_TABLES_CACHE if cache_model else COST_TABLES
    try:
        return tables[arch]
    except KeyError:
        raise ValueError(f"arch: must be one of {sorted(tables)}, got {arch!r}") from None
