"""busy=maple (per-node range tree) and busy=maple-occupied (a node's view of the
occupied tree): publish in both modes, find_unlink's walks, failslab, lazy adds."""

from __future__ import annotations

import errno
import random

import pytest

import vmapsim
import vmapsim.framework.roles
from vmapsim import PAGE_SIZE as P
from vmapsim import ComponentContext, Counters, FailslabConfig, FaultInjector, VmapArea
from vmapsim.framework.registry import get_registry
from vmapsim_mapletree.components import MapleBusyIndex, MapleLazyQueue
from vmapsim_mapletree.vmap_occupied import OccupiedBusyView

RESERVED = vmapsim.framework.roles.RESERVED
BASE = 0x10_0000
ZONE = 16 * P


def _always_fail():
    return FaultInjector(FailslabConfig(probability=100))


def _ctx(role, node_id, shared, params=None, nr=1, faults=None, counters=None, log=None):
    return ComponentContext(
        role=role,
        node_id=node_id,
        counters=counters if counters is not None else Counters(),
        warn=(log if log is not None else []).append,
        nr_vmap_nodes=nr,
        params=params or {},
        faults=faults or FaultInjector(),
        shared=shared,
    )


def _views(nr=1, params=None, faults=None):
    """The occupied tree and one busy view per node, built through the registry."""
    reg = get_registry()
    counters = Counters()
    log: list[str] = []
    shared: dict = {}
    p = {"vmap_zone_size": ZONE if nr > 1 else 1, **(params or {})}
    occ = reg.component("occupied", "maple").factory(
        _ctx("occupied", None, shared, p, nr, faults, counters, log)
    )
    comp = reg.component("busy", "maple-occupied")
    views = [comp.factory(_ctx("busy", i, shared, p, nr, faults, counters, log)) for i in range(nr)]
    return occ, views, counters, log


def _area(page, npages):
    return VmapArea(BASE + page * P, BASE + (page + npages) * P)


def _state(occ):
    return [(s, e, entry) for s, e, entry in occ], list(occ.gaps()), occ.tree.allocator.live


# ---------------------------------------------------------------------------
# the occupied tree's busy view


def test_views_fill_the_busy_protocol_and_need_the_occupied_tree():
    occ, views, _, _ = _views(nr=2)
    for v in views:
        assert isinstance(v, vmapsim.BusyIndex) and isinstance(v, OccupiedBusyView)
        assert v.occupied is occ and v.occupies
    with pytest.raises(vmapsim.ComponentError, match="occupied"):
        get_registry().component("busy", "maple-occupied").factory(_ctx("busy", 0, {}))


@pytest.mark.parametrize("mode", ["store", "prealloc"])
def test_view_publish_find_unlink_against_a_model(mode):
    nr = 3
    occ, views, _, log = _views(nr=nr, params={"maple_publish": mode})
    rng = random.Random(7)
    busy: dict[int, VmapArea] = {}  # va_start -> area
    reserved: set[tuple[int, int]] = set()
    for _ in range(400):
        op = rng.random()
        if op < 0.5:
            page = rng.randrange(0, 200)
            va = _area(page, rng.randrange(1, 6))
            node = (va.va_start // ZONE) % nr
            clash = any(
                b.va_start < va.va_end and va.va_start < b.va_end for b in busy.values()
            ) or any(s < va.va_end and va.va_start < e for s, e in reserved)
            exact_pool = (va.va_start, va.va_end) in reserved
            ret = views[node].publish(va, True)
            if exact_pool or not clash:
                assert ret == 0
                busy[va.va_start] = va
                reserved.discard((va.va_start, va.va_end))
            else:
                assert ret == -errno.EEXIST
                assert log[-1].startswith(f"vmalloc bug: {va.va_start:#x}-{va.va_end:#x}")
        elif op < 0.8 and busy:
            va = rng.choice(list(busy.values()))
            addr = rng.randrange(va.va_start, va.va_end)
            node = (va.va_start // ZONE) % nr
            other = (node + 1) % nr
            if nr > 1:
                assert views[other].find(addr) is None
                assert views[other].find_unlink(addr) is None
            assert views[node].find(addr) is va
            assert views[node].find_unlink(addr) is va
            del busy[va.va_start]
            reserved.add((va.va_start, va.va_end))  # lazily freed: still in use
        elif reserved:
            s, e = rng.choice(sorted(reserved))
            occ.release(s, e)
            reserved.discard((s, e))
        want = sorted(
            [(v.va_start, v.va_end, v) for v in busy.values()]
            + [(s, e, RESERVED) for s, e in reserved]
        )
        assert [(s, e, x) for s, e, x in occ] == want
        for i, v in enumerate(views):
            mine = sorted(
                (b for b in busy.values() if (b.va_start // ZONE) % nr == i),
                key=lambda b: b.va_start,
            )
            assert list(v) == mine and len(v) == len(mine)
            v.check()
        occ.check()


def test_view_unlink_leaves_the_range_reserved_and_a_pooled_area_republishes():
    occ, (v,), _, _ = _views()
    va = _area(0, 2)
    assert v.publish(va, True) == 0
    v.unlink(va)
    assert list(occ) == [(va.va_start, va.va_end, RESERVED)] and len(v) == 0
    assert v.find(va.va_start) is None
    # a pooled area: exactly the reserved range becomes busy again
    assert v.publish(va, False) == 0
    assert list(occ) == [(va.va_start, va.va_end, va)]
    # a different area over part of a reserved range is an overlap
    v.unlink(va)
    assert v.publish(_area(0, 1), True) == -errno.EEXIST
    assert v.insert(_area(2, 1)) is True


@pytest.mark.parametrize("single", [False, True])
def test_view_find_unlink_walks(single):
    occ, (v,), c, _ = _views(params={"busy_single_erase": single})
    areas = [_area(3 * k, 2) for k in range(300)]
    for va in areas:
        assert v.publish(va, True) == 0
    assert occ.tree.height > 1
    for va in areas[::7]:
        c.reset()
        assert v.find_unlink(va.va_start + P) is va
        assert c.walks == (1 if single else 2)
        assert c.stores == 1 and c.node_allocs == 0
    v.check()


@pytest.mark.parametrize("mode", ["store", "prealloc"])
def test_view_publish_enomem_changes_nothing(mode):
    faults = _always_fail()
    occ, (v,), c, log = _views(params={"maple_publish": mode}, faults=faults)
    for k in range(100):  # GFP_KERNEL publishes never fail
        assert v.publish(_area(2 * k, 1), True) == 0
    failed = 0
    for k in range(100, 300):
        before = _state(occ)
        allocs = c.node_allocs
        va = _area(2 * k, 1)
        ret = v.publish(va, False)
        assert ret in (0, -errno.ENOMEM)
        if ret:
            failed += 1
            assert _state(occ) == before and c.node_allocs == allocs
            assert v.find(va.va_start) is None
    assert failed > 0 and not log
    assert len(v) == 300 - failed
    v.check()
    occ.check()


# ---------------------------------------------------------------------------
# busy=maple


def _busy(params=None, faults=None):
    log: list[str] = []
    ctx = _ctx("busy", 0, {}, params, faults=faults, log=log)
    b = get_registry().component("busy", "maple").factory(ctx)
    assert isinstance(b, MapleBusyIndex) and isinstance(b, vmapsim.BusyIndex)
    return b, ctx.counters, log


@pytest.mark.parametrize("mode", ["insert", "prealloc"])
def test_busy_publish_returns_the_kernel_codes(mode):
    b, _, log = _busy({"maple_publish": mode})
    va = _area(0, 4)
    assert b.publish(va, True) == 0
    assert b.find(va.va_start + P) is va
    clash = _area(3, 2)
    assert b.publish(clash, True) == -errno.EEXIST
    assert log == [
        f"vmalloc bug: {clash.va_start:#x}-{clash.va_end:#x} overlaps with "
        f"{va.va_start:#x}-{va.va_end:#x}"
    ]
    assert list(b) == [va] and len(b) == 1
    b.check()


def test_busy_rejects_an_unknown_publish_mode():
    with pytest.raises(vmapsim.ComponentError, match="maple_publish"):
        _busy({"maple_publish": "bogus"})


@pytest.mark.parametrize("mode", ["insert", "prealloc"])
def test_busy_publish_enomem_changes_nothing(mode):
    faults = _always_fail()
    b, c, log = _busy({"maple_publish": mode}, faults)
    for k in range(100):
        assert b.publish(_area(2 * k, 1), True) == 0
    failed = 0
    for k in range(100, 300):
        va = _area(2 * k, 1)
        before = ([(x.va_start, x.va_end) for x in b], b.tree.allocator.live, c.node_allocs)
        ret = b.publish(va, False)
        assert ret in (0, -errno.ENOMEM)
        if ret:
            failed += 1
            after = ([(x.va_start, x.va_end) for x in b], b.tree.allocator.live, c.node_allocs)
            assert after == before and b.find(va.va_start) is None
    assert failed > 0 and not log and len(b) == 300 - failed
    b.check()


def test_busy_prealloc_publish_walks_once():
    b, c, _ = _busy({"maple_publish": "prealloc"})
    for k in range(200):
        c.reset()
        assert b.publish(_area(2 * k, 1), True) == 0
        assert c.walks == 1 and c.stores == 1


def test_busy_find_unlink_single_erase_saves_exactly_one_walk():
    twins = []
    for single in (False, True):
        b, c, _ = _busy({"busy_single_erase": single})
        areas = [_area(3 * k, 2) for k in range(300)]
        for va in areas:
            assert b.insert(va)
        assert b.tree.height > 1
        twins.append((b, c, areas))
    rng = random.Random(3)
    order = rng.sample(range(300), 150)
    for k in order:
        walks = []
        for b, c, areas in twins:
            va = areas[k]
            c.reset()
            assert b.find_unlink(va.va_end - 1) is va
            assert b.find(va.va_start) is None
            walks.append(c.walks)
        two, one = walks
        assert two == one + 1 and one >= 1
    for b, c, areas in twins:
        c.reset()
        assert b.find_unlink(areas[order[0]].va_start) is None  # a gap: nothing erased
        assert c.stores == 0
        assert len(b) == 150
        b.check()
    assert [(x.va_start, x.va_end) for x in twins[0][0]] == [
        (x.va_start, x.va_end) for x in twins[1][0]
    ]


def test_lazy_add_is_blocking_and_never_lost_under_failslab():
    faults = _always_fail()
    q = MapleLazyQueue(Counters(), [].append, faults)
    areas = [_area(2 * k, 1) for k in range(500)]
    for va in areas:
        assert q.add(va)
    # the GFP_NOWAIT first tries fail; mas_nomem's GFP_KERNEL retry never does
    assert faults.failures > 0
    assert q.detach_all() == areas and len(q) == 0
    q.check()
