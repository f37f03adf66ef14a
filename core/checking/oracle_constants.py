"""The reference allocator's kernel constants, written from the kernel's headers.

Kept apart from the model's :mod:`vmapsim.kernel.constants` and :mod:`vmapsim.kernel.gfp`
on purpose: the oracle must not inherit a wrong value from the model it
checks.  tests/test_oracle.py checks that both sets agree.

Sources: include/linux/gfp_types.h (bit numbers and composite masks),
mm/internal.h (``GFP_RECLAIM_MASK``), mm/vmalloc.c (``MAX_VA_SIZE_PAGES``),
arch/x86/include/asm/pgtable_64_types.h (4-level paging, no KASLR) and
arch/arm64/include/asm/memory.h + pgtable.h (``VA_BITS`` 48, 4 KiB pages).
"""

from __future__ import annotations

__all__ = [
    "GFP_ATOMIC",
    "GFP_BITS",
    "GFP_KERNEL",
    "GFP_KERNEL_ACCOUNT",
    "GFP_NOFS",
    "GFP_NOIO",
    "GFP_NOWAIT",
    "GFP_RECLAIM_MASK",
    "MAX_VA_SIZE_PAGES",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "UBSAN_OVERLAY_SITE",
    "VMALLOC_WINDOWS",
    "__GFP_DIRECT_RECLAIM",
    "__GFP_NOFAIL",
    "__GFP_NOWARN",
]

# -- gfp_t ------------------------------------------------------------------------

#: gfp_types.h numbers the bits with an enum; this is its order up to
#: ZEROTAGS (the entries after it exist only with KASAN_HW_TAGS, LOCKDEP or
#: SLAB_OBJ_EXT).  Entry 9 is the unused bit 0x200.
_GFP_ENUM = (
    "DMA",
    "HIGHMEM",
    "DMA32",
    "MOVABLE",
    "RECLAIMABLE",
    "HIGH",
    "IO",
    "FS",
    "ZERO",
    None,
    "DIRECT_RECLAIM",
    "KSWAPD_RECLAIM",
    "WRITE",
    "NOWARN",
    "RETRY_MAYFAIL",
    "NOFAIL",
    "NORETRY",
    "MEMALLOC",
    "COMP",
    "NOMEMALLOC",
    "HARDWALL",
    "THISNODE",
    "ACCOUNT",
    "ZEROTAGS",
)
#: ``___GFP_<name> = BIT(___GFP_<name>_BIT)``, by name without the underscores.
GFP_BITS: dict[str, int] = {name: 1 << bit for bit, name in enumerate(_GFP_ENUM) if name}

__GFP_HIGH = GFP_BITS["HIGH"]
__GFP_IO = GFP_BITS["IO"]
__GFP_FS = GFP_BITS["FS"]
__GFP_DIRECT_RECLAIM = GFP_BITS["DIRECT_RECLAIM"]
__GFP_KSWAPD_RECLAIM = GFP_BITS["KSWAPD_RECLAIM"]
__GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM
__GFP_NOWARN = GFP_BITS["NOWARN"]
__GFP_NOFAIL = GFP_BITS["NOFAIL"]
__GFP_ACCOUNT = GFP_BITS["ACCOUNT"]

GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM
GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS
GFP_KERNEL_ACCOUNT = GFP_KERNEL | __GFP_ACCOUNT
GFP_NOWAIT = __GFP_KSWAPD_RECLAIM | __GFP_NOWARN
GFP_NOIO = __GFP_RECLAIM
GFP_NOFS = __GFP_RECLAIM | __GFP_IO
#: mm/internal.h; ``__GFP_NOLOCKDEP`` is 0 without CONFIG_LOCKDEP.
GFP_RECLAIM_MASK = (
    __GFP_RECLAIM
    | __GFP_HIGH
    | __GFP_IO
    | __GFP_FS
    | __GFP_NOWARN
    | GFP_BITS["RETRY_MAYFAIL"]
    | __GFP_NOFAIL
    | GFP_BITS["NORETRY"]
    | GFP_BITS["MEMALLOC"]
    | GFP_BITS["NOMEMALLOC"]
)

# -- pages and windows --------------------------------------------------------------

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: mm/vmalloc.c: the per-node pools hold areas of 1..256 pages.
MAX_VA_SIZE_PAGES = 256

_TWO_TO_64 = 1 << 64  # unsigned long arithmetic: -x is 2**64 - x
SZ_8M = 8 * 1024 * 1024
SZ_1G = 1024 * 1024 * 1024
SZ_2G = 2 * SZ_1G

# x86_64, 4-level paging, CONFIG_RANDOMIZE_MEMORY off: VMALLOC_START is
# __VMALLOC_BASE_L4 and the window is VMALLOC_SIZE_TB_L4 TiB, its end inclusive.
X86_64_VMALLOC_START = 0xFFFFC90000000000
X86_64_VMALLOC_SIZE_TB = 32
X86_64_VMALLOC_END = X86_64_VMALLOC_START + (X86_64_VMALLOC_SIZE_TB << 40) - 1

# arm64, VA_BITS = VA_BITS_MIN = 48, PAGE_SHIFT 12, sizeof(struct page) = 64.
ARM64_VA_BITS = 48
ARM64_SIZEOF_STRUCT_PAGE = 64
ARM64_PAGE_OFFSET = _TWO_TO_64 - (1 << ARM64_VA_BITS)  # _PAGE_OFFSET(VA_BITS)
ARM64_PAGE_END = _TWO_TO_64 - (1 << (ARM64_VA_BITS - 1))  # _PAGE_END(VA_BITS_MIN)
ARM64_MODULES_END = ARM64_PAGE_END + SZ_2G  # MODULES_VADDR = PAGE_END, 2 GiB of modules
ARM64_VMEMMAP_SIZE = ((ARM64_PAGE_END - ARM64_PAGE_OFFSET) >> PAGE_SHIFT) * ARM64_SIZEOF_STRUCT_PAGE
ARM64_VMEMMAP_END = _TWO_TO_64 - SZ_1G
ARM64_VMEMMAP_START = ARM64_VMEMMAP_END - ARM64_VMEMMAP_SIZE
ARM64_VMALLOC_START = ARM64_MODULES_END
ARM64_VMALLOC_END = ARM64_VMEMMAP_START - SZ_8M

#: ``(VMALLOC_START, VMALLOC_END)`` by architecture name.
VMALLOC_WINDOWS: dict[str, tuple[int, int]] = {
    "x86_64": (X86_64_VMALLOC_START, X86_64_VMALLOC_END),
    "arm64": (ARM64_VMALLOC_START, ARM64_VMALLOC_END),
}

# -- the overlay's modelled UBSAN report (stage 11) -----------------------------------

#: Where UBSAN's report for the overlay's back-pointer fill points.  We have no
#: patch text: the file, line and column are the illustrative site docs/stages.md
#: ("The modelled defect") states, fixed so that reports compare equal.
UBSAN_OVERLAY_SITE = "mm/vmalloc.c:2417:24"
