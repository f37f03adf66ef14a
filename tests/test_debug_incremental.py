"""``--debug`` checks incrementally, with a full check every N operations (issue #24, item 5).

A corruption of what the operation touches is caught by the incremental check
at once; one elsewhere is left to the periodic full check, which catches it
within ``debug_full_every`` operations.  Counters are the same with and
without the checks.
"""

from __future__ import annotations

import pytest

import vmapsim
from vmapsim import PAGE_SIZE, InvariantError
from vmapsim.kernel.area import VmapArea


def _split_free_block(a, blk, at):
    """Corrupt the free index: ``blk`` becomes two blocks that touch (not coalesced)."""
    a.free.unlink(blk)
    low = VmapArea(blk.va_start, at)
    high = VmapArea(at, blk.va_end)
    a.free.insert(low)
    a.free.insert(high)


def _debug_alloc(stage, every):
    a = vmapsim.build(stage, debug=True)
    a.debug_full_every = every
    return a


@pytest.mark.parametrize("stage", [0, 4])
def test_the_incremental_check_catches_a_corruption_where_the_operation_works(stage):
    a = _debug_alloc(stage, every=10_000)
    first = a.vmalloc(PAGE_SIZE)  # [first, first + 2 pages): the page and its guard
    # the block the next vmalloc clips from: split it a few pages above its start
    blk = a.free.find_enclosing(first + 2 * PAGE_SIZE)
    _split_free_block(a, blk, blk.va_start + 8 * PAGE_SIZE)
    with pytest.raises(InvariantError, match="not coalesced"):
        a.vmalloc(PAGE_SIZE)  # clips that block: the rest touches the other half


def _corrupt_below_the_window(a):
    """Split the free block under VMALLOC_START, where vmalloc() never works."""
    low = a.free.find_enclosing(PAGE_SIZE)
    assert low.va_end <= a.vmalloc_start
    _split_free_block(a, low, low.va_start + (low.va_end - low.va_start) // 2)


@pytest.mark.parametrize("stage", [0, 4])
def test_the_periodic_full_check_catches_a_corruption_elsewhere(stage):
    every = 8
    a = _debug_alloc(stage, every=every)
    a.vmalloc(PAGE_SIZE)
    _corrupt_below_the_window(a)
    caught_at = None
    for i in range(every):
        try:
            a.vmalloc(PAGE_SIZE)
        except InvariantError:
            caught_at = i
            break
    # not at the next operation (the incremental check looks where vmalloc works),
    # but within every operations: the periodic full check
    assert caught_at is not None and caught_at >= 1
    b = _debug_alloc(stage, every=10**9)  # no full check: the corruption goes unseen
    b.vmalloc(PAGE_SIZE)
    _corrupt_below_the_window(b)
    for _ in range(every):
        b.vmalloc(PAGE_SIZE)


def test_incremental_checks_leave_the_counters_as_without_debug():
    from vmapsim.framework.registry import get_registry

    wl = get_registry().workload("test_vmalloc")
    params = {"run_test_mask": 0b1001, "test_loop_count": 200, "test_repeat_count": 1}
    plain = vmapsim.build(7)
    wl.run(plain, seed=1, **params)
    checked = _debug_alloc(7, every=50)  # incremental checks and full ones
    wl.run(checked, seed=1, **params)
    assert checked.metrics.snapshot() == plain.metrics.snapshot()
    assert checked._debug_ops > 0


def test_cli_debug_full_every_option(capsys, tmp_path, monkeypatch):
    from vmapsim.tools.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["run", "--stage", "7", "--debug", "--mask", "1", "--test-loop-count", "50"]
    assert main([*argv, "--test-repeat-count", "1", "--debug-full-every", "10"]) == 0
    out, err = capsys.readouterr()
    assert "check_invariants: ok" in out
    assert "everything every 10 operations" in err
    with pytest.raises(SystemExit) as exc:  # argparse's own refusal, exit 2
        main([*argv, "--debug-full-every", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
