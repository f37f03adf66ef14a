"""vmapsim's conformance kit on free=sorted, plus what the kit cannot know about it."""

from __future__ import annotations

import pytest

import vmapsim
import vmapsim.testing
from vmapsim_sortedfree import SortedFreeIndex


class TestSortedFree(vmapsim.testing.suite("free")):
    component = "sorted"


class TestSortedFreeQualified(vmapsim.testing.SmokeTests):
    role = "free"
    component = "sortedfree:sorted"


def test_listed_with_its_distribution():
    reg = vmapsim.framework.registry.load_registry()
    rec = next(r for r in reg.plugins if r.name == "sortedfree")
    assert rec.ok and not rec.builtin
    assert rec.distribution == "vmapsim-sortedfree"
    assert rec.components == ("free=sorted",)


def test_propagate_rekeys_a_clipped_block():
    c = vmapsim.Counters()
    f = SortedFreeIndex(c, print)
    a, b = vmapsim.VmapArea(0x10000, 0x20000), vmapsim.VmapArea(0x30000, 0x40000)
    f.insert(b)
    f.insert(a)
    b.va_start = 0x38000  # va_clip's left-edge fit
    f.propagate(b)
    f.check()
    assert f.find_enclosing(0x38000) is b and f.find_enclosing(0x30000) is None


def test_stage_coalescer_cannot_serve_it_and_says_so():
    with pytest.raises(vmapsim.ComponentError, match=r"coalesce=generic"):
        vmapsim.build(0, components={"free": "sorted"})
