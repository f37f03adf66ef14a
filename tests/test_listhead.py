"""lazy=listhead: the list_head lazy queue on its own, against a plain Python list."""

from __future__ import annotations

import random

import pytest

from vmapsim import Counters, InvariantError, VmapArea
from vmapsim_listhead import ListHeadLazyQueue

P = 4096


def _queue() -> tuple[ListHeadLazyQueue, list[str]]:
    log: list[str] = []
    return ListHeadLazyQueue(Counters(), log.append, "lazy[0]"), log


def test_append_detach_against_a_python_list() -> None:
    rng = random.Random(3)
    q, _log = _queue()
    model: list[VmapArea] = []
    starts = rng.sample(range(1, 10_000), 400)
    for k, s in enumerate(starts):
        va = VmapArea(s * P, s * P + P)
        assert q.add(va) is True
        assert va.list_next is not None  # on a list: never None (circular)
        model.append(va)
        if k % 97 == 96:
            got = q.detach_all()
            assert got == model  # the order queued: a splice, no sorting
            assert len(q) == 0 and q.span is None
            model = []
        else:
            assert len(q) == len(model)
            assert q.span == (min(v.va_start for v in model), max(v.va_end for v in model))
            assert list(q) == sorted(model, key=lambda v: v.va_start)  # iteration: address order
    q.check()


def test_add_and_detach_are_one_list_operation_each() -> None:
    q, _log = _queue()
    for i in range(50):
        q.add(VmapArea((i + 1) * P, (i + 2) * P))
    q.detach_all()
    c = q.counters
    assert c.list_ops == 51
    assert c.walks == c.stores == c.nodes_visited == 0


def test_check_catches_a_broken_link_and_a_wrong_count() -> None:
    q, _log = _queue()
    areas = [VmapArea((i + 1) * 2 * P, (i + 1) * 2 * P + P) for i in range(5)]
    for va in areas:
        q.add(va)
    q.check()
    areas[2].list_prev = areas[0]
    with pytest.raises(InvariantError, match="link broken"):
        q.check()
    areas[2].list_prev = areas[1]
    q._n = 4
    with pytest.raises(InvariantError):
        q.check()


def test_check_catches_overlapping_areas() -> None:
    q, _log = _queue()
    q.add(VmapArea(P, 3 * P))
    q.add(VmapArea(2 * P, 4 * P))
    with pytest.raises(InvariantError, match="overlaps"):
        q.check()
