"""The allocation-trace rule: same addresses as the stage's own component.

For every request with ``align <= PAGE_SIZE`` (and every exact-fit window)
``find_vmap_lowest_match()`` is exact: it returns the lowest free block that
can hold the request.  A component swapped into a stage must then give the
same allocation trace (every address, every errno, every log line, the same
free / busy / lazy / pooled sets after every step) as the stage's own
component.  :func:`check_trace` runs a sequence of operations on both
allocators in lockstep and asserts exactly that.

Above ``PAGE_SIZE`` the kernel's pruned search may return any fitting block
at or below the lowest accepted block of ``size + align - 1`` bytes (the
bounds rule, :class:`vmapsim.checking.oracle.PlacementBounds`); two correct
components may then differ, so those requests are checked against the bounds
by the state machine (:mod:`vmapsim.testing.machine`), not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from hypothesis import strategies as st

from vmapsim.errors import VmapError
from vmapsim.framework.api import build
from vmapsim.framework.registry import Registry
from vmapsim.kernel.constants import PAGE_SIZE, VMALLOC_END, VMALLOC_START

from .harness import flow_call
from .machine import blocks

__all__ = ["HOLES_OPS", "TRACE_OPS", "check_trace"]

P = PAGE_SIZE

_size = st.one_of(
    st.integers(1, 3 * P),
    st.sampled_from([P, 2 * P, 5 * P - 1]),
    st.integers(1, 300).map(lambda n: n * P),
    st.integers(2048, 6000).map(lambda n: n * P),
)
#: one operation of a trace: (kind, size, align, cpu, pick)
TRACE_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["vmalloc", "vmalloc", "vmalloc_node", "vfree", "vfree", "va", "va_free", "purge"]
        ),
        _size,
        st.sampled_from([1, 64, P]),
        st.integers(0, 7),
        st.integers(0, 1 << 16),
    ),
    min_size=1,
    max_size=60,
)


#: a fixed scenario run first: holes left by frees and a purge, then refilled
HOLES_OPS: list[tuple[str, int, int, int, int]] = (
    [("vmalloc", (1 + i % 3) * P, 1, i, 0) for i in range(24)]
    + [("vfree", 0, 1, i, 2 * i + 1) for i in range(10)]
    + [("purge", 0, 1, 0, 0)]
    + [("vmalloc", P, 1, i, 0) for i in range(6)]
    + [("va", 2 * P, P, i, 1) for i in range(4)]
    + [("vmalloc_node", 3 * P, 64, 0, 0), ("purge", 0, 1, 0, 0), ("vmalloc", 4 * P, 1, 1, 0)]
)


def _state(a: Any) -> tuple:
    return (
        blocks(a.free_areas()),
        blocks(a.busy_areas()),
        blocks(a.lazy_areas()),
        blocks(a.pooled_areas()),
        a.vmap_lazy_nr,
    )


def check_trace(
    stage: str,
    components: Mapping[str, str],
    registry: Registry,
    ops: Sequence[tuple[str, int, int, int, int]],
    *,
    nr_cpus: int = 2,
) -> list[Any]:
    """Run ``ops`` on ``stage`` with ``components`` and on ``stage`` as registered.

    Returns the trace (one result per operation); raises AssertionError at
    the first operation where the two differ.
    """
    mine = build(stage, nr_cpus=nr_cpus, components=dict(components), registry=registry)
    ref = build(stage, nr_cpus=nr_cpus, registry=registry)
    live: list[int] = []
    vas: list[tuple[Any, Any]] = []
    trace: list[Any] = []
    for i, (kind, size, align, cpu, pick) in enumerate(ops):
        cpu %= nr_cpus
        what = f"op {i}: {kind}(size={size:#x}, align={align}, cpu={cpu})"

        def call(fn: Any, what: str = what) -> Any:
            return flow_call(f"{what} at stage {stage}", components, fn)

        if kind == "vmalloc":
            got = (call(partial(mine.vmalloc, size, cpu=cpu)), ref.vmalloc(size, cpu=cpu))
            if got[0] is not None:
                live.append(got[0])
        elif kind == "vmalloc_node":
            got = (
                call(partial(mine.vmalloc_node, size, align, cpu=cpu)),
                ref.vmalloc_node(size, align, cpu=cpu),
            )
            if got[0] is not None:
                live.append(got[0])
        elif kind == "vfree":
            addr = live.pop(pick % len(live)) if live else VMALLOC_START + pick * P
            call(partial(mine.vfree, addr, cpu=cpu))
            ref.vfree(addr, cpu=cpu)
            got = (addr, addr)
        elif kind == "va":
            page_size = -(-size // P) * P
            vstart = VMALLOC_START + (pick % 4096) * P
            vend = vstart + page_size if pick % 3 == 0 else VMALLOC_END
            res = []
            for a in (mine, ref):
                try:
                    va = call(
                        partial(a.alloc_vmap_area, page_size, max(align, P), vstart, vend, cpu=cpu)
                    )
                    res.append(va)
                except VmapError as exc:
                    res.append(exc.errno)
            got = tuple(r if isinstance(r, int) else (r.va_start, r.va_end) for r in res)
            if not isinstance(res[0], int) and not isinstance(res[1], int):
                vas.append((res[0], res[1]))
        elif kind == "va_free" and vas:
            x, y = vas.pop(pick % len(vas))
            call(partial(mine.free_vmap_area_noflush, x))
            ref.free_vmap_area_noflush(y)
            got = (x.va_start, y.va_start)
        else:
            call(mine.purge_vmap_area_lazy)
            ref.purge_vmap_area_lazy()
            got = ("purge", "purge")
        assert got[0] == got[1], f"{what}: trace differs: {got[0]} != stage's own {got[1]}"
        assert _state(mine) == _state(ref), f"{what}: state differs from the stage's own"
        assert mine.log == ref.log, f"{what}: log differs: {mine.log[-3:]} != {ref.log[-3:]}"
        trace.append(got[0])
    mine.check_invariants()
    return trace
