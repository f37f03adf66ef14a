"""Struct layouts computed field by field, the way pahole reports them.

A stage names the fields of its ``struct vmap_area``; the byte size comes
from the C layout rules for LP64 (each member at the next multiple of its
alignment, unions as wide as their widest member, the whole struct padded to
its largest alignment), never from a typed-in number.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import field, frozen, validators

__all__ = [
    "LIST_HEAD",
    "RB_NODE",
    "ULONG",
    "VMAP_AREA_MAPLE",
    "VMAP_AREA_RB",
    "Member",
    "StructLayout",
    "Union",
]


def _positive(_inst: object, attr: object, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attr.name}: must be > 0 (got {value})")  # type: ignore[attr-defined]


def _power_of_two(_inst: object, attr: object, value: int) -> None:
    if value <= 0 or value & (value - 1):
        raise ValueError(f"{attr.name}: must be a power of two (got {value})")  # type: ignore[attr-defined]


@frozen
class Member:
    """One scalar or nested-struct member: name, C type, size and alignment."""

    name: str
    ctype: str
    size: int = field(validator=_positive)
    align: int = field(validator=_power_of_two)


@frozen
class Union:
    """An anonymous union of members sharing one offset."""

    members: tuple[Member, ...] = field(converter=tuple, validator=validators.min_len(1))

    @property
    def name(self) -> str:
        return " / ".join(m.name for m in self.members)

    @property
    def size(self) -> int:
        return max(m.size for m in self.members)

    @property
    def align(self) -> int:
        return max(m.align for m in self.members)


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


@frozen
class StructLayout:
    """A C struct: its members in declaration order."""

    name: str
    members: tuple[Member | Union, ...] = field(converter=tuple, validator=validators.min_len(1))

    def offsets(self) -> list[tuple[int, Member | Union]]:
        """Each member with its byte offset."""
        out: list[tuple[int, Member | Union]] = []
        off = 0
        for m in self.members:
            off = _round_up(off, m.align)
            out.append((off, m))
            off += m.size
        return out

    @property
    def align(self) -> int:
        return max(m.align for m in self.members)

    @property
    def size(self) -> int:
        """``sizeof``: end of the last member, padded to the struct's alignment."""
        off, last = self.offsets()[-1]
        return _round_up(off + last.size, self.align)

    @property
    def holes(self) -> int:
        """Bytes of padding (pahole's ``sum holes`` plus tail padding)."""
        return self.size - sum(m.size for m in self.members)

    def pahole(self) -> str:
        """A pahole-style listing of the struct."""
        lines = [f"struct {self.name} {{"]
        for off, m in self.offsets():
            label = f"union {{ {m.name} }}" if isinstance(m, Union) else f"{m.ctype} {m.name}"
            lines.append(f"\t{label + ';':<48} /* {off:5d} {m.size:5d} */")
        lines.append(f"\t/* size: {self.size}, holes/padding: {self.holes} */")
        lines.append("};")
        return "\n".join(lines)

    @classmethod
    def of(cls, name: str, members: Sequence[Member | Union]) -> StructLayout:
        return cls(name, tuple(members))


ULONG = 8
RB_NODE = StructLayout.of(
    "rb_node",
    [
        Member("__rb_parent_color", "unsigned long", 8, 8),
        Member("rb_right", "struct rb_node *", 8, 8),
        Member("rb_left", "struct rb_node *", 8, 8),
    ],
)
LIST_HEAD = StructLayout.of(
    "list_head",
    [Member("next", "struct list_head *", 8, 8), Member("prev", "struct list_head *", 8, 8)],
)

#: ``struct vmap_area`` before the series (and through stage 3).
VMAP_AREA_RB = StructLayout.of(
    "vmap_area",
    [
        Member("va_start", "unsigned long", 8, 8),
        Member("va_end", "unsigned long", 8, 8),
        Member("rb_node", "struct rb_node", RB_NODE.size, RB_NODE.align),
        Member("list", "struct list_head", LIST_HEAD.size, LIST_HEAD.align),
        Union(
            [
                Member("subtree_max_size", "unsigned long", 8, 8),
                Member("vm", "struct vm_struct *", 8, 8),
            ]
        ),
        Member("flags", "unsigned long", 8, 8),
    ],
)

#: ``struct vmap_area`` once the rb_node and subtree_max_size are gone (stage 4 on).
VMAP_AREA_MAPLE = StructLayout.of(
    "vmap_area",
    [
        Member("va_start", "unsigned long", 8, 8),
        Member("va_end", "unsigned long", 8, 8),
        Member("list", "struct list_head", LIST_HEAD.size, LIST_HEAD.align),
        Member("vm", "struct vm_struct *", 8, 8),
        Member("flags", "unsigned long", 8, 8),
    ],
)
