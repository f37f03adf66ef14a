"""Busy tree (__find_vmap_area, find_unlink) and lazy queue (detach order)."""

from __future__ import annotations

import random

from rb_oracle import brute_rb_check

from vmapsim import Counters, VmapArea
from vmapsim_rbtree import RbBusyIndex, RbLazyQueue

P = 0x1000


def test_busy_find_and_find_unlink() -> None:
    counters = Counters()
    busy = RbBusyIndex(counters, print)
    areas = [VmapArea(i * 4 * P, i * 4 * P + 2 * P) for i in range(200)]
    for va in random.Random(7).sample(areas, len(areas)):
        assert busy.insert(va)
    busy.check()
    for va in areas[::7]:
        assert busy.find(va.va_start) is va
        assert busy.find(va.va_end - 1) is va
        assert busy.find(va.va_end) is None  # the gap after it
        assert busy.find(va.va_start - 1) is None
    ops = counters.list_ops
    va = areas[50]
    assert busy.find_unlink(va.va_start + P) is va
    assert counters.list_ops == ops + 1
    assert va.list_next is None and va.rb_parent is None
    assert busy.find(va.va_start) is None and busy.find_unlink(va.va_start) is None
    assert len(busy) == 199
    assert list(busy) == [a for a in areas if a is not va]
    brute_rb_check(busy.rb_node, augmented=False)
    busy.check()
    busy.unlink(areas[0])
    assert busy.find(0) is None and len(busy) == 198


def test_busy_insert_overlap() -> None:
    counters = Counters()
    warnings: list[str] = []
    busy = RbBusyIndex(counters, warnings.append)
    a = VmapArea(0x10000, 0x12000)
    assert busy.insert(a)
    b = VmapArea(0x11000, 0x13000)
    assert not busy.insert(b)
    assert warnings == ["vmalloc bug: 0x11000-0x13000 overlaps with 0x10000-0x12000"]
    assert list(busy) == [a] and b.list_next is None and b.rb_parent is None
    assert busy.insert(VmapArea(0x12000, 0x13000))  # adjacent is fine
    busy.check()


def test_lazy_detach_all_in_address_order() -> None:
    counters = Counters()
    lazy = RbLazyQueue(counters, print)
    areas = [VmapArea(i * 2 * P, i * 2 * P + P) for i in range(100)]
    for va in random.Random(3).sample(areas, len(areas)):
        assert lazy.add(va)
    lazy.check()
    ops = counters.list_ops
    out = lazy.detach_all()
    assert out == areas
    assert counters.list_ops == ops + 1
    assert len(lazy) == 0 and list(lazy) == [] and lazy.rb_node is None
    lazy.check()
    for va in out:
        assert va.list_next is None and va.list_prev is None
        assert va.rb_parent is None and va.rb_left is None and va.rb_right is None
    # the areas can be linked elsewhere at once
    busy = RbBusyIndex(counters, print)
    for va in out[::-1]:
        assert busy.insert(va)
    busy.check()
    # and the queue is usable again
    assert lazy.add(VmapArea(0, P)) and len(lazy) == 1
    lazy.check()


def test_lazy_add_overlap_warns() -> None:
    counters = Counters()
    warnings: list[str] = []
    lazy = RbLazyQueue(counters, warnings.append)
    assert lazy.add(VmapArea(0x1000, 0x3000))
    assert not lazy.add(VmapArea(0x2000, 0x4000))
    assert len(warnings) == 1 and len(lazy) == 1


def test_unlink_of_unlinked_area_warns_and_changes_nothing() -> None:
    warnings: list[str] = []
    busy = RbBusyIndex(Counters(), warnings.append)
    a = VmapArea(0x1000, 0x2000)
    busy.insert(a)
    busy.unlink(VmapArea(0x1000, 0x2000))
    assert len(warnings) == 1 and list(busy) == [a]
    busy.check()
