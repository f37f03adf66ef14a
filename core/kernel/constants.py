"""Page and address-space constants of the modelled architectures.

Values follow arch/x86/include/asm/pgtable_64_types.h (4-level paging, no
KASLR) and arch/arm64/include/asm/memory.h + pgtable.h (48-bit VA, 4 KiB
pages, the layout with vmemmap 1 GiB below the top, v6.9+); the arm64 window
is computed from the headers' formulas and their inputs, written down below.
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
SHRINK_STOP = ULONG_MAX  # ~0UL
SHRINK_EMPTY = ULONG_MAX - 1  # ~0UL - 1


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


SZ_8M = 8 << 20
SZ_1G = 1 << 30
SZ_2G = 2 << 30


def _ul(value: int) -> int:
    """An ``unsigned long`` result: C's wrap-around of a negative value."""
    return value & ULONG_MAX


def _arm64_vmalloc_range(va_bits: int, page_shift: int, sizeof_struct_page: int) -> tuple[int, int]:
    """arm64's ``[VMALLOC_START, VMALLOC_END)`` when ``VA_BITS == VA_BITS_MIN``.

    memory.h: ``PAGE_OFFSET = -(1 << VA_BITS)``, ``_PAGE_END(va) = -(1 << (va - 1))``,
    ``MODULES_VADDR = _PAGE_END(VA_BITS_MIN)``, ``MODULES_END = MODULES_VADDR + SZ_2G``,
    ``VMEMMAP_RANGE = _PAGE_END(VA_BITS_MIN) - PAGE_OFFSET``,
    ``VMEMMAP_SIZE = (VMEMMAP_RANGE >> PAGE_SHIFT) * sizeof(struct page)``,
    ``VMEMMAP_END = -SZ_1G``, ``VMEMMAP_START = VMEMMAP_END - VMEMMAP_SIZE``;
    pgtable.h: ``VMALLOC_START = MODULES_END``, ``VMALLOC_END = VMEMMAP_START - SZ_8M``.
    """
    page_offset = _ul(-(1 << va_bits))
    page_end = _ul(-(1 << (va_bits - 1)))
    modules_end = page_end + SZ_2G
    vmemmap_size = ((page_end - page_offset) >> page_shift) * sizeof_struct_page
    vmemmap_start = _ul(-SZ_1G) - vmemmap_size
    return modules_end, vmemmap_start - SZ_8M


#: x86_64 4-level: VMALLOC_START = 0xffffc90000000000, VMALLOC_SIZE_TB = 32,
#: VMALLOC_END = START + (32 << 40) - 1 (inclusive-style, not page-aligned).
X86_64 = Arch("x86_64", 0xFFFFC90000000000, 0xFFFFC90000000000 + (32 << 40) - 1)
#: arm64 defconfig: VA_BITS = 48, 4 KiB pages, sizeof(struct page) = 64, which
#: gives [0xffff800080000000, 0xfffffdffbf800000).
ARM64 = Arch(
    "arm64", *_arm64_vmalloc_range(va_bits=48, page_shift=PAGE_SHIFT, sizeof_struct_page=64)
)

ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64, ARM64)}

VMALLOC_START = X86_64.vmalloc_start
VMALLOC_END = X86_64.vmalloc_end


def arch_by_name(name: str) -> Arch:
    """Return the :class:`Arch` called *name* (``x86_64`` or ``arm64``)."""
    try:
        return ARCHES[name]
    except KeyError:
        from vmapsim.errors import VmapArgumentError

        raise VmapArgumentError("arch", f"must be one of {sorted(ARCHES)}", name) from None
