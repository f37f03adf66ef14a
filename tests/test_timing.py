"""Modelled time (vmapsim.cost.timing): the pricing rules, and the page counters
the flow feeds it.

The pricing expectations are worked by hand from the rules in
``modelled_ns``'s docstring on a table whose entries are chosen to make each
term visible; the page counters are checked against what the kernel's
``__vmalloc_node_range()`` maps and ``vfree()`` frees (one page per
``PAGE_SIZE`` of the request, no guard page).
"""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim.cost.timing import (
    COST_TABLES,
    COST_TABLES_CACHE,
    X86_64,
    CostTable,
    cost_table,
    modelled_ns,
    ns_per_op,
    usec_per_loop,
)

P = vmapsim.PAGE_SIZE


def unit_table() -> CostTable:
    """Powers of ten per entry, so each term of a sum can be read off."""
    return CostTable(
        platform="unit",
        ghz=1.0,
        l1_hit_ns=1,
        l2_hit_ns=10,
        llc_hit_ns=100,
        mem_miss_ns=1000,
        coherence_transfer_ns=10_000,
        invalidation_ns=100_000,
        line_ns=7,
        node_step_ns=2,
        comparison_ns=3,
        lock_ns=5,
        slab_alloc_ns=11,
        slab_free_ns=13,
        page_alloc_ns=17,
        page_zero_ns=19,
        page_map_ns=23,
        page_unmap_free_ns=29,
        tlb_flush_local_ns=31,
        tlb_flush_global_ns=37,
        rcu_callback_ns=41,
        call_ns=43,
        page_ns=47,
    )


def test_cache_outcomes_replace_counted_lines():
    t = unit_table()
    with_cache = {
        "cache_lines": 9,
        "l1_hits": 1,
        "l2_hits": 2,
        "llc_hits": 3,
        "mem_misses": 4,
        "coherence_transfers": 5,
        "invalidations": 6,
    }
    assert modelled_ns(with_cache, t)["cache"] == 1 + 20 + 300 + 4000 + 50_000 + 600_000
    assert modelled_ns({"cache_lines": 9}, t)["cache"] == 9 * 7


def test_each_term_is_priced_as_documented():
    t = unit_table()
    c = {
        "alloc_calls": 2,
        "free_calls": 3,
        "nodes_visited": 10,
        "comparisons": 100,
        "lock.free_vmap_area_lock": 4,
        "lock.vmap_node.busy.lock": 1,
        "va_allocs": 2,
        "node_allocs": 1,
        "va_frees": 3,
        "node_frees": 2,
        "pages_mapped": 6,
        "pages_zeroed": 5,
        "pages_freed": 4,
        "tlb_flushes": 2,
        "rcu_callbacks": 3,
        "rotations": 1000,  # no entry: free
    }
    parts = modelled_ns(c, t)
    assert parts["tree"] == 10 * 2 + 100 * 3
    assert parts["locks"] == 5 * 5
    # vmap_area + maple nodes, plus vm_struct and the pages array per call
    assert parts["slab"] == (2 + 1 + 2 * 2) * 11 + (3 + 2 + 2 * 3) * 13
    assert parts["pages"] == 6 * (17 + 23 + 47) + 5 * 19 + 4 * 29
    assert parts["tlb"] == 2 * 31
    assert parts["rcu"] == 3 * 41
    assert parts["calls"] == 5 * 43
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
    assert modelled_ns(c, t, nr_cpus=8)["tlb"] == 2 * 37  # a global flush on SMP
    assert ns_per_op(c, t) == parts["total"] / 5
    assert ns_per_op({}, t) == 0.0


def test_usec_per_loop_scales_to_the_modules_loop_count():
    t = unit_table()
    # 20 calls x 43 ns, and each call's two wrapper slab objects, over 10 loops
    c = {"alloc_calls": 10, "free_calls": 10}
    ns = 20 * 43 + 10 * 2 * 11 + 10 * 2 * 13
    assert usec_per_loop(c, t, loops=10) == pytest.approx(ns / 1000 * 100_000)
    assert usec_per_loop(c, t, loops=10, per_loops=10) == pytest.approx(ns / 1000)
    with pytest.raises(ValueError, match="loops: must be >= 1"):
        usec_per_loop(c, t, loops=0)


def test_tables_are_validated_and_sourced():
    with pytest.raises(ValueError, match="l1_hit_ns: must be >= 0 ns"):
        CostTable(**{**_fields(unit_table()), "l1_hit_ns": -1})
    with pytest.raises(TypeError, match="page_ns: must be a number"):
        CostTable(**{**_fields(unit_table()), "page_ns": "7"})
    with pytest.raises(ValueError, match="arch: must be one of"):
        cost_table("riscv")
    with pytest.raises(ValueError, match="nr_cpus: must be an int >= 1"):
        modelled_ns({}, X86_64, nr_cpus=0)
    for arch in COST_TABLES:
        assert cost_table(arch) is COST_TABLES[arch]
        assert cost_table(arch, cache_model=True) is COST_TABLES_CACHE[arch]
    for table in [*COST_TABLES.values(), *COST_TABLES_CACHE.values()]:
        arch = table.platform
        numeric = [k for k, v in _fields(table).items() if isinstance(v, float)]
        missing = [k for k in numeric if k not in table.sources]
        assert not missing, f"{arch}: entries without a source: {missing}"
        assert table.calibration


def _fields(t: CostTable) -> dict:
    import attrs

    return attrs.asdict(t, recurse=False)


@pytest.mark.parametrize("stage", [0, 12])
def test_page_counters_follow_the_requests(stage):
    a = vmapsim.build(stage)
    m = a.metrics
    p1 = a.vmalloc(3 * P)
    p2 = a.vmalloc(P + 1)  # rounded up to 2 pages
    p3 = a.vmalloc_node(5 * P, 4 * P, gfp=int(vmapsim.GFP_KERNEL | vmapsim.__GFP_ZERO))
    assert (m.pages_mapped, m.pages_zeroed, m.pages_freed) == (10, 5, 0)
    a.vfree(p2)
    a.vfree(p2)  # a double free frees nothing more
    assert m.pages_freed == 2
    a.vfree(p1)
    a.vfree(p3)
    assert (m.pages_mapped, m.pages_freed) == (10, 10)
    assert a.vmalloc(0) is None and m.pages_mapped == 10


@pytest.mark.parametrize("cache", [False, True], ids=["lines", "cache-model"])
def test_summary_prices_with_the_fit_of_its_counters(cache):
    """The Summary line's modelled time uses the table fitted for how its
    counters price lines: counted lines, or the cache model's outcomes."""
    from vmapsim_test_vmalloc.driver import run_test_vmalloc

    a = vmapsim.build(0, cache_model=cache)
    rep = run_test_vmalloc(a, tests="fix_size", test_loop_count=20)
    (t,) = rep.workers[0].tests
    assert bool(t["counters"].get("l1_hits")) is cache
    table = cost_table("x86_64", cache_model=cache)
    assert t["model_avg_usec"] == int(modelled_ns(t["counters"], table)["total"] / 1000)
    assert t["model_avg_usec"] > 0
