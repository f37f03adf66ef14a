"""Random writes on trees three and four levels deep against the oracle.

The Hypothesis machine works on small trees; here thousands of ranges make
splits, pushes, rebalances and spanning stores happen below a full-height
path, where the rebuild can stop at a parent (6.16's convergence) and the
reservation depends on the path's vacant and sufficient nodes.  After every
batch the tree must hold exactly the oracle's ranges and pass ``check()``.
"""

from __future__ import annotations

import errno
import random

import pytest
from maple_oracle import IntervalMap

from vmapsim_mapletree import MapleError, MapleTree


@pytest.mark.parametrize("alloc", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_deep_tree_writes_match_the_oracle(alloc: bool, seed: int) -> None:
    rng = random.Random(seed)
    t = MapleTree(alloc)
    m = IntervalMap()
    space = 40 * 1500
    for i in range(1500):
        first, last = 40 * i, 40 * i + rng.randrange(1, 30)
        t.store_range(first, last, ("b", i))
        m.store(first, last, ("b", i))
    assert t.height >= 3
    for step in range(4000):
        r = rng.random()
        a = rng.randrange(space)
        if r < 0.3:
            last = a + rng.randrange(0, 60)
            t.store_range(a, last, step)
            m.store(a, last, step)
        elif r < 0.45:  # wide NULL stores: spanning stores and rebalances
            last = a + rng.randrange(0, 2500)
            t.store_range(a, last, None)
            m.store(a, last, None)
        elif r < 0.8:
            old = m.load(a)
            assert t.erase(a) == old
            if old is not None:
                f, la, _ = m.range_at(a)
                m.store(f, la, None)
        else:
            last = a + rng.randrange(0, 40)
            if m.is_free(a, last):
                t.insert_range(a, last, step)
                m.store(a, last, step)
            else:
                with pytest.raises(MapleError) as e:
                    t.insert_range(a, last, step)
                assert e.value.errno == errno.EEXIST
        if step % 250 == 249:
            t.check()
            assert list(t.ranges()) == m.items
    t.check()
    assert list(t.ranges()) == m.items
    c = t.counters
    assert c.splits and c.rebalances and c.merges  # the deep paths ran
