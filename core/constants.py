"""Page and address-space constants of the modelled architectures.

Values follow arch/x86/include/asm/pgtable_64_types.h (4-level paging, no
KASLR) and arch/arm64/include/asm/pgtable.h (48-bit VA, 4 KiB pages, v6.5+).
"""

from __future__ import annotations

from attrs import field, frozen

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
BITS_PER_LONG = 64
ULONG_MAX = (1 << BITS_PER_LONG) - 1

#: ``MAX_VA_SIZE_PAGES``: per-node pools hold areas of 1..256 pages.
MAX_VA_SIZE_PAGES = 256
#: ``IOREMAP_MAX_ORDER`` default: 7 + PAGE_SHIFT.
IOREMAP_MAX_ORDER = 7 + PAGE_SHIFT

#: ``SHRINK_STOP`` / ``SHRINK_EMPTY`` (include/linux/shrinker.h): a shrinker's
#: "nothing more to scan" and "nothing to free" answers.
SHRINK_STOP = ULONG_MAX - 1
SHRINK_EMPTY = ULONG_MAX - 2


@frozen
class Arch:
    """The address-space facts of one architecture configuration."""

    name: str
    vmalloc_start: int = field()
    vmalloc_end: int = field()
    page_size: int = PAGE_SIZE

    @vmalloc_end.validator
    def _end_after_start(self, _attr: object, value: int) -> None:
        if value <= self.vmalloc_start:
            raise ValueError("vmalloc_end: must be above vmalloc_start")


#: x86_64 4-level: VMALLOC_START = 0xffffc90000000000, VMALLOC_SIZE_TB = 32,
#: VMALLOC_END = START + (32 << 40) - 1 (inclusive-style, not page-aligned).
X86_64 = Arch("x86_64", 0xFFFFC90000000000, 0xFFFFC90000000000 + (32 << 40) - 1)
#: arm64 48-bit VA: VMALLOC_START = MODULES_END, VMALLOC_END = VMEMMAP_START - SZ_256M.
ARM64 = Arch("arm64", 0xFFFF800080000000, 0xFFFFFBFFF0000000)

ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64, ARM64)}

VMALLOC_START = X86_64.vmalloc_start
VMALLOC_END = X86_64.vmalloc_end


def arch_by_name(name: str) -> Arch:
    """Return the :class:`Arch` called *name* (``x86_64`` or ``arm64``)."""
    try:
        return ARCHES[name]
    except KeyError:
        from .errors import VmapArgumentError

        raise VmapArgumentError("arch", f"must be one of {sorted(ARCHES)}", name) from None
