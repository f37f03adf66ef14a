"""Distinct lines per operation, lock sections, and the cache model wired in
(issue #20 items 1-3; docs/cost-model.md, "Cache lines", "Lock sections",
"The cache model").

Expectations are worked by hand from the rules: a line is counted once per
operation however often it is touched; a write dirties it; the lock word is
written by the acquire and the release; ``alloc_vmap_area()`` takes
``free_vmap_area_lock`` (``preload_this_cpu_lock()``), releases it after
``__alloc_vmap_area()``, then takes the node's ``busy.lock`` for
``insert_vmap_area()`` (mm/vmalloc.c).
"""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, AddressSpace, Counters
from vmapsim.cost.sections import LockSections

P = PAGE_SIZE


def test_a_line_touched_twice_in_an_operation_is_one_line() -> None:
    c = Counters()
    c.touch(100)
    c.touch(100)
    c.touch(101, write=True)
    c.op_end()
    assert (c.cache_lines, c.lines_read, c.lines_written, c.line_accesses) == (2, 1, 1, 3)
    # the same lines in the next operation count again
    c.touch(100)
    c.op_end()
    assert c.cache_lines == 3


def test_read_then_write_is_one_written_line() -> None:
    c = Counters()
    c.touch(7)
    c.touch(7, write=True)
    c.op_end()
    assert (c.cache_lines, c.lines_read, c.lines_written) == (1, 0, 1)


def test_touch_range_and_block() -> None:
    c = Counters()
    c.touch_range(60, 8)  # bytes 60..67: lines 0 and 1
    c.touch_block(0, 0b0011)  # lines 0 and 1 again
    c.touch_block(1, 0b1000)  # line 7
    c.op_end()
    assert c.cache_lines == 3
    assert c.line_accesses == 2 + 2 + 1


def test_reading_the_mapping_ends_the_operation() -> None:
    c = Counters()
    c.touch(1)
    assert c["cache_lines"] == 1


def test_slab_reuses_the_last_freed_object_and_packs_pages() -> None:
    mem = AddressSpace()
    cache = mem.cache("vmap_area", 72)
    a, b = cache.alloc(), cache.alloc()
    assert b - a == 72
    cache.free(a)
    assert cache.alloc() == a  # LIFO freelist
    objs = [cache.alloc() for _ in range(cache.per_slab)]
    assert len({o // PAGE_SIZE for o in objs}) == 2  # the page filled, a new one taken
    with pytest.raises(ValueError, match="72"):
        mem.cache("vmap_area", 48)


def test_maple_nodes_have_distinct_addresses() -> None:
    a = vmapsim.build(7)
    for _ in range(200):
        a.vmalloc(P)
    blocks = []

    def walk(node) -> None:
        blocks.append(node.blk)
        if node.type != 1:
            for child in node.slots:
                walk(child)

    tree = a.occupied.tree
    walk(tree.root)
    assert len(blocks) == len(set(blocks)) > 1
    assert 0 not in blocks


def test_section_work_and_outside_work_by_hand() -> None:
    a = vmapsim.build(0, lock_sections=True)
    m = a.metrics
    m.op_end()
    sections = m.sections
    sections.reset()
    m.touch(1 << 30)  # outside
    a.spin_lock("test_lock")
    m.touch((1 << 30) + 4)  # inside: one line read ...
    m.touch((1 << 30) + 4)
    a.spin_unlock("test_lock")  # ... plus the lock word, written
    m.op_end()
    st = sections.stats[("", "test_lock", 0)]
    work = dict(zip(("lines", "lines_written", "line_accesses"), st.work[:3], strict=True))
    assert st.acquisitions == 1
    assert work == {"lines": 2, "lines_written": 1, "line_accesses": 4}
    assert sections.outside.work[0] == 1
    rep = sections.report("")
    assert rep["locks"]["test_lock"]["acquisitions"] == 1
    assert rep["locks"]["test_lock"]["lines_p50"] == 2


def test_recorded_segments_of_one_vmalloc_follow_alloc_vmap_area() -> None:
    a = vmapsim.build(0, lock_sections=True)
    m = a.metrics
    m.op_end()
    m.sections.start_recording()
    a.vmalloc(P)
    segs = m.sections.stop_recording()
    names = [s.name for s in segs if s.kind == "section"]
    assert names == ["free_vmap_area_lock", "vmap_node.busy.lock"]
    free = next(s for s in segs if s.name == "free_vmap_area_lock")
    assert free.work[3] > 0  # the free-tree search visited nodes inside the lock


def test_nested_sections_are_emitted_inner_first_and_both_hold_the_work() -> None:
    c = Counters()
    sec = c.sections = LockSections(c)
    sec.start_recording()
    sec.acquire("outer", 0)
    c.touch(10)
    sec.acquire("inner", 3)
    c.touch(20)
    sec.release("inner", 3)
    sec.release("outer", 0)
    c.op_end()
    segs = sec.take()
    assert [(s.kind, s.name) for s in segs] == [("section", "inner"), ("section", "outer")]
    assert segs[0].work[0] == 1 and segs[1].work[0] == 2


def test_run_json_and_compare_report_lock_sections() -> None:
    from vmapsim.tools.compare import compare

    res = compare(["0", "7"], params={"tests": "fix_size", "test_loop_count": 50}, reps=1, jobs=1)
    rows = res["tests"][0]["rows"]
    for row in rows:
        secs = row["lock_sections"]
        assert secs["free_vmap_area_lock"]["per_op"] > 0
        assert secs["vmap_node.busy.lock"]["mean"]["lines"] > 0
        assert "outside" in secs


def test_cache_model_sees_a_transfer_between_cpus() -> None:
    """vmalloc on CPU 0 writes the free lock's word, the busy lock's word and
    the tree's lines; vfree on CPU 1 then takes the busy lock: the line
    written by CPU 0 comes from CPU 0's cache (a coherence transfer)."""
    a = vmapsim.build(0, nr_cpus=2, cache_model=True)
    addr = a.vmalloc(P, cpu=0)
    before = a.metrics["coherence_transfers"]
    a.vfree(addr, cpu=1)
    assert a.metrics["coherence_transfers"] > before
    assert a.metrics["cache_lines"] > 0


def test_build_refuses_a_non_bool_cache_model() -> None:
    with pytest.raises(vmapsim.VmapTypeError, match="cache_model"):
        vmapsim.build(0, cache_model=1)  # type: ignore[arg-type]
