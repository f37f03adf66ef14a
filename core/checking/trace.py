"""Allocation traces: what a workload asked for and what the allocator answered, in order.

:class:`TracingAllocator` stands in for a :class:`~vmapsim.VmapAllocator`
while a workload runs: calls to the allocator's public entry points
(:data:`TRACED`) are recorded with their arguments and results, everything
else passes straight through.  The allocator itself is untouched, so an
untraced run pays nothing for tracing.  Only the workload's own calls are
recorded (``vmalloc()`` calling ``alloc_vmap_area()`` inside the allocator is
one operation, as a caller sees it).

Results are recorded as plain values: an address (int), None (NULL), a
``vmap_area`` as ``(va_start, va_end)``, a ``vm_struct`` as ``(addr, size)``,
lists of those, and a raised :class:`~vmapsim.VmapError` as
``("error", errno)``.  Two traces are equal when every operation, its
arguments and its result are; :func:`first_difference` finds where they part.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from attrs import frozen

from vmapsim.errors import VmapError
from vmapsim.kernel.area import VmapArea, VmStruct

__all__ = [
    "TRACED",
    "TraceDifference",
    "TraceOp",
    "TracingAllocator",
    "first_difference",
    "show_result",
]

#: the entry points a trace records (the callers' API of mm/vmalloc.c that the
#: model offers, or may offer; a name the allocator lacks is simply never called)
TRACED: frozenset[str] = frozenset(
    {
        "vmalloc",
        "vmalloc_node",
        "vzalloc",
        "vmalloc_huge",
        "vrealloc",
        "vfree",
        "vfree_atomic",
        "kvfree_rcu",
        "alloc_vmap_area",
        "free_vmap_area_noflush",
        "remove_vm_area",
        "get_vm_area",
        "get_vm_area_caller",
        "free_vm_area",
        "vmap",
        "vunmap",
        "vm_map_ram",
        "vm_unmap_ram",
        "pcpu_get_vm_areas",
        "pcpu_free_vm_areas",
        "vm_unmap_aliases",
        "purge_vmap_area_lazy",
        "vmap_node_shrink_scan",
    }
)


def _plain(value: Any) -> Any:
    """A comparable, printable form of an argument or result."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, VmapArea):
        return (value.va_start, value.va_end)
    if isinstance(value, VmStruct):
        return (value.addr, value.size)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return type(value).__name__


@frozen
class TraceOp:
    """One recorded call: ``op(*args, **kwargs)`` answered ``result``."""

    index: int
    op: str
    args: tuple[Any, ...]
    kwargs: tuple[tuple[str, Any], ...]
    result: Any

    def call(self) -> str:
        """``vmalloc(12288, cpu=1)``, addresses in hex."""
        parts = [_show(a) for a in self.args] + [f"{k}={_show(v)}" for k, v in self.kwargs]
        return f"{self.op}({', '.join(parts)})"

    def same(self, other: TraceOp) -> bool:
        return (self.op, self.args, self.kwargs, self.result) == (
            other.op,
            other.args,
            other.kwargs,
            other.result,
        )


def _show(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return hex(value) if value >= 1 << 20 else str(value)
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "error":
            return f"error {value[1]}"
        return "(" + ", ".join(_show(v) for v in value) + ")"
    return str(value)


def show_result(value: Any) -> str:
    """A recorded result as the trace prints it (``0xffffc90000001000``, ``NULL``)."""
    return "NULL" if value is None else _show(value)


class TracingAllocator:
    """A recording stand-in for an allocator (see the module docstring)."""

    __slots__ = ("_target", "trace")

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "trace", [])

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in TRACED and callable(value):
            return self._recording(name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target, name, value)

    def __repr__(self) -> str:
        return f"<TracingAllocator {len(self.trace)} ops of {self._target!r}>"

    def _recording(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        trace = self.trace

        def call(*args: Any, **kwargs: Any) -> Any:
            plain_args = tuple(_plain(a) for a in args)
            plain_kwargs = tuple(sorted((k, _plain(v)) for k, v in kwargs.items()))
            try:
                result = method(*args, **kwargs)
            except VmapError as exc:
                trace.append(
                    TraceOp(len(trace), name, plain_args, plain_kwargs, ("error", exc.errno))
                )
                raise
            trace.append(TraceOp(len(trace), name, plain_args, plain_kwargs, _plain(result)))
            return result

        call.__name__ = name
        call.__doc__ = method.__doc__
        return call


@frozen
class TraceDifference:
    """Where two traces part: operation ``index``, as each trace has it (None past its end)."""

    index: int
    expected: TraceOp | None
    actual: TraceOp | None

    def describe(self, expected_label: str = "expected", actual_label: str = "here") -> str:
        exp, act = self.expected, self.actual
        if exp is None:
            assert act is not None
            return (
                f"op {self.index}: {act.call()} -> {show_result(act.result)} {actual_label}; "
                f"{expected_label}'s trace ended after {self.index} ops"
            )
        if act is None:
            return (
                f"op {self.index}: {exp.call()} -> {show_result(exp.result)} at {expected_label}; "
                f"the trace {actual_label} ended after {self.index} ops"
            )
        if exp.call() == act.call():
            return (
                f"op {self.index}: {act.call()} -> {show_result(act.result)} {actual_label}, "
                f"{show_result(exp.result)} at {expected_label}"
            )
        return (
            f"op {self.index}: {act.call()} -> {show_result(act.result)} {actual_label}; "
            f"{expected_label} had {exp.call()} -> {show_result(exp.result)}"
        )


def first_difference(
    expected: Sequence[TraceOp], actual: Sequence[TraceOp]
) -> TraceDifference | None:
    """The first operation where ``actual`` differs from ``expected``; None if equal."""
    for i, (exp, act) in enumerate(zip(expected, actual, strict=False)):
        if not exp.same(act):
            return TraceDifference(i, exp, act)
    if len(expected) != len(actual):
        n = min(len(expected), len(actual))
        return TraceDifference(
            n,
            expected[n] if n < len(expected) else None,
            actual[n] if n < len(actual) else None,
        )
    return None
