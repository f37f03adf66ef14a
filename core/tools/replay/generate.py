"""Write a synthetic ``/proc/vmallocinfo`` of any length, for tests and benchmarks.

``python -m vmapsim.tools.replay.generate --lines 2000 --arch x86_64 --seed 1 -o FILE``

The file follows the format :mod:`vmapsim.tools.replay.vmallocinfo`
documents, in ``vmalloc_info_show()``'s order for one vmap node (busy
areas by address, then the lazily freed ones): vmalloc areas with
``pages=`` (the size less the guard page), ``vpages`` when the page array
outgrows a page (more than 512 pages) and ``N<node>=`` counts; ioremap
areas aligned as ``__get_vm_area_node()`` aligns them, with ``phys=``;
vmap, ``user``, ``dma-coherent`` and ``sparse`` areas; 4 MiB
``vm_map_ram`` blocks; ``unpurged vm_area`` lines; per-CPU chunks at the
top of the window.  Seeded: one seed, one file.  Not from a real machine.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence

from vmapsim.kernel.constants import ARCHES, IOREMAP_MAX_ORDER, PAGE_SHIFT, PAGE_SIZE

__all__ = ["generate_vmallocinfo", "main"]

_VMALLOC_CALLERS = (
    "alloc_large_system_hash+0x1b6/0x2c0",
    "bpf_prog_alloc_no_stats+0x4c/0x1c0",
    "gen_pool_add_owner+0x42/0xb0",
    "kvmalloc_node_noprof+0x8e/0x120",
    "n_tty_open+0x16/0xe0",
    "xt_alloc_table_info+0x40/0x90 [x_tables]",
    "nf_tables_newtable+0x2b3/0x5f0 [nf_tables]",
    "btrfs_alloc_compress_wsm+0x2c/0x70 [btrfs]",
)
_IOREMAP_CALLERS = (
    "acpi_os_map_iomem+0x1c2/0x1f0",
    "pci_iomap_range+0x5f/0x90",
    "of_iomap+0x64/0xb0",
)
_VMAP_CALLERS = ("dma_common_contiguous_remap+0x5c/0x90", "vmap_pages_range+0x23/0x40")
_BLOCK = 4 << 20
_CHUNK = 2 << 20


def _ioremap_align(usable: int) -> int:
    """``__get_vm_area_node()``'s alignment of a ``VM_IOREMAP`` area of ``usable`` bytes."""
    order = max(usable - 1, 1).bit_length()
    return 1 << min(max(order, PAGE_SHIFT), IOREMAP_MAX_ORDER)


def _line(start: int, end: int, rest: str) -> str:
    return f"0x{start:016x}-0x{end:016x} {end - start:7d}" + (f" {rest}" if rest else "")


def generate_vmallocinfo(
    nr_lines: int, *, arch: str = "x86_64", seed: int = 0, numa_nodes: int = 2
) -> str:
    """A ``/proc/vmallocinfo`` text of ``nr_lines`` lines (at least 1)."""
    if nr_lines < 1:
        raise ValueError("nr_lines: must be >= 1")
    a = ARCHES[arch]
    rng = random.Random(f"vmallocinfo:{arch}:{seed}")
    nr_pcpu = min(4, max(nr_lines // 200, 1 if nr_lines >= 4 else 0))
    busy: list[str] = []
    lazy: list[str] = []
    addr = a.vmalloc_start
    for _ in range(nr_lines - nr_pcpu):
        addr += PAGE_SIZE * rng.choice((0, 0, 0, 1, 2, 16))  # holes left by frees
        r = rng.random()
        if r < 0.05:  # a lazily freed vmalloc area
            size = (rng.randint(1, 8) + 1) * PAGE_SIZE
            lazy.append(_line(addr, addr + size, "unpurged vm_area"))
        elif r < 0.55:  # vmalloc
            pages = rng.choice((1, 1, 2, 3, 4, 8, 16, 64, 256, 600, 2048))
            size = (pages + 1) * PAGE_SIZE
            rest = f"{rng.choice(_VMALLOC_CALLERS)} pages={pages} vmalloc"
            if rng.random() < 0.05:
                rest += " user"
            if pages > PAGE_SIZE // 8:
                rest += " vpages"
            if numa_nodes > 1 and pages > 1 and rng.random() < 0.5:
                first = pages // 2
                rest += f" N0={first} N1={pages - first}"
            else:
                rest += f" N0={pages}"
            busy.append(_line(addr, addr + size, rest))
        elif r < 0.75:  # ioremap
            usable = rng.choice((1, 1, 2, 4, 16, 64)) * PAGE_SIZE
            align = _ioremap_align(usable)
            addr = (addr + align - 1) & -align
            size = usable + PAGE_SIZE
            phys = rng.randrange(0xC0000000, 0xFFFF0000, PAGE_SIZE)
            rest = f"{rng.choice(_IOREMAP_CALLERS)} phys=0x{phys:016x} ioremap"
            busy.append(_line(addr, addr + size, rest))
        elif r < 0.88:  # vmap, sometimes dma-coherent
            size = (rng.randint(1, 8) + 1) * PAGE_SIZE
            rest = f"{rng.choice(_VMAP_CALLERS)} vmap"
            if rng.random() < 0.3:
                rest += " dma-coherent"
            busy.append(_line(addr, addr + size, rest))
        elif r < 0.93:  # a vmap block of vm_map_ram()
            addr = (addr + _BLOCK - 1) & -_BLOCK
            size = _BLOCK
            busy.append(_line(addr, addr + size, "vm_map_ram"))
        else:  # a BPF arena: sparse
            size = (rng.randint(1, 4) + 1) * PAGE_SIZE
            busy.append(_line(addr, addr + size, "arena_map_alloc+0x10a/0x180 sparse"))
        addr += size
    top = a.vmalloc_end & -_CHUNK
    pcpu = [
        _line(top - (i + 1) * _CHUNK, top - i * _CHUNK, "pcpu_get_vm_areas+0x0/0x1100 vmalloc")
        for i in reversed(range(nr_pcpu))
    ]
    return "".join(line + "\n" for line in [*busy, *pcpu, *lazy])


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vmapsim.tools.replay.generate``."""
    p = argparse.ArgumentParser(
        prog="python -m vmapsim.tools.replay.generate",
        description="Write a synthetic /proc/vmallocinfo (docs/replay.md).",
    )
    p.add_argument("--lines", type=int, default=2000, help="lines to write (default 2000)")
    p.add_argument("--arch", default="x86_64", choices=sorted(ARCHES))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--numa-nodes", type=int, default=2, help="NUMA nodes in N<node>= (1 or 2)")
    p.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    args = p.parse_args(argv)
    if args.lines < 1:
        p.error("--lines: must be >= 1")
    text = generate_vmallocinfo(
        args.lines, arch=args.arch, seed=args.seed, numa_nodes=args.numa_nodes
    )
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
