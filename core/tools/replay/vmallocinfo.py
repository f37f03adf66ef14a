"""Parse ``/proc/vmallocinfo``.

The format is what mm/vmalloc.c's ``vmalloc_info_show()`` prints (read in
v6.9 to v6.19, where it walks ``vmap_nodes``): for each vmap node, each busy
area in address order, then for each node each lazily freed area:

* a busy area with a ``vm_struct``:
  ``0x%pK-0x%pK %7ld`` (``addr``, ``addr + size``, ``size``, the guard page
  included), then `` %pS`` (the caller, if any: ``symbol+0xoff/0xlen``, with
  `` [module]`` for a module symbol), `` pages=%d`` (if ``nr_pages``),
  `` phys=%pa`` (if ``phys_addr``), the flags `` ioremap`` `` sparse``
  `` vmalloc`` `` vmap`` `` user`` `` dma-coherent`` (``VM_IOREMAP``,
  ``VM_SPARSE``, ``VM_ALLOC``, ``VM_MAP``, ``VM_USERMAP``,
  ``VM_DMA_COHERENT``), `` vpages`` (the page array is itself vmalloc'ed)
  and, with NUMA, `` N%u=%u`` per node holding pages, in that order;
* a busy area without one but with ``VMAP_RAM``: ``... vm_map_ram``;
* a lazily freed area: ``... unpurged vm_area``.

``%pK`` prints 16 hex digits, or zeros when ``kptr_restrict`` hides them.
Lines starting with ``#`` are comments (a vmapsim extension; the kernel
never prints one).  Each line either becomes a :class:`VmallocinfoRecord`
or a :class:`~vmapsim.tools.replay.textfile.Problem` saying why not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from vmapsim.kernel.area import (
    VM_ALLOC,
    VM_DMA_COHERENT,
    VM_IOREMAP,
    VM_MAP,
    VM_SPARSE,
    VM_USERMAP,
)
from vmapsim.kernel.constants import PAGE_SIZE
from vmapsim.tools.replay.textfile import Problem

__all__ = [
    "FLAG_WORDS",
    "KIND_LAZY",
    "KIND_RAM",
    "KIND_VM",
    "ParsedSnapshot",
    "VmallocinfoRecord",
    "parse_vmallocinfo",
]

KIND_VM = "vm"
KIND_RAM = "vm_map_ram"
KIND_LAZY = "unpurged"

#: the flag words in the order ``vmalloc_info_show()`` prints them
FLAG_WORDS: tuple[tuple[str, int], ...] = (
    ("ioremap", VM_IOREMAP),
    ("sparse", VM_SPARSE),
    ("vmalloc", VM_ALLOC),
    ("vmap", VM_MAP),
    ("user", VM_USERMAP),
    ("dma-coherent", VM_DMA_COHERENT),
)
_FLAG_RANK = {word: 2 + i for i, (word, _bit) in enumerate(FLAG_WORDS)}
_FLAG_BIT = dict(FLAG_WORDS)
#: ranks: pages= 0, phys= 1, the flags 2.., vpages, then N<node>=
_RANK_VPAGES = 2 + len(FLAG_WORDS)
_RANK_NUMA = _RANK_VPAGES + 1

_HEAD = re.compile(r"0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)\s+(-?\d+)(?:\s+(.*))?\Z")
_NUMA = re.compile(r"N(\d+)=(\d+)\Z")
_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]{1,16})\Z")
#: what the other replay format looks like (to name a file of the wrong kind)
_TRACE_LINE = re.compile(r"\[\d+\].*\d+\.\d+:\s+\S+:|^#\s*tracer:|^cpus=\d+|^version = ")


@frozen
class VmallocinfoRecord:
    """One area of a snapshot, as its line says.

    ``kind`` is ``"vm"`` (a ``vm_struct`` area), ``"vm_map_ram"`` or
    ``"unpurged"``; ``flags`` are ``VM_*`` bits; ``caller`` is the
    ``%pS`` text as printed (None when the line has none); ``numa`` the
    ``N<node>=<pages>`` pairs.
    """

    line: int
    start: int
    end: int
    kind: str
    caller: str | None = None
    pages: int = 0
    phys: int = 0
    flags: int = 0
    vpages: bool = False
    numa: tuple[tuple[int, int], ...] = ()

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def is_percpu(self) -> bool:
        """An area of ``pcpu_get_vm_areas()`` (a per-CPU chunk): no guard page."""
        return self.kind == KIND_VM and (self.caller or "").startswith("pcpu_get_vm_areas")


@frozen
class ParsedSnapshot:
    """A parsed file: its records in file order, the lines not used, the line count."""

    records: tuple[VmallocinfoRecord, ...]
    problems: tuple[Problem, ...]
    nr_lines: int
    #: lines that look like a vmalloc trace (to name a file of the wrong kind)
    trace_like: int = 0
    #: lines whose addresses are all zero (``%pK`` under ``kptr_restrict``)
    hidden: int = 0


class _Bad(Exception):
    pass


def parse_vmallocinfo(lines: Sequence[str]) -> ParsedSnapshot:
    """Parse the lines of a ``/proc/vmallocinfo`` (line 1 is ``lines[0]``)."""
    records: list[VmallocinfoRecord] = []
    problems: list[Problem] = []
    trace_like = hidden = 0
    for no, raw in enumerate(lines, 1):
        text = raw.rstrip()
        if not text or text.lstrip().startswith("#"):
            if _TRACE_LINE.search(text):
                trace_like += 1
            continue
        try:
            rec = parse_line(text, no)
        except _Bad as exc:
            if _TRACE_LINE.search(text):
                trace_like += 1
            elif str(exc).startswith("addresses hidden"):
                hidden += 1
            problems.append(Problem(no, str(exc), text))
            continue
        records.append(rec)
    return ParsedSnapshot(tuple(records), tuple(problems), len(lines), trace_like, hidden)


def parse_line(text: str, no: int) -> VmallocinfoRecord:
    """One line; raises ``_Bad`` with the reason."""
    m = _HEAD.match(text)
    if m is None:
        raise _Bad("not a vmallocinfo line (expected 0x<start>-0x<end> <size> ...)")
    s_hex, e_hex, size_text, rest = m.groups()
    if len(s_hex) > 16 or len(e_hex) > 16:
        raise _Bad("an address has more than 16 hex digits (64-bit)")
    start, end, size = int(s_hex, 16), int(e_hex, 16), int(size_text)
    if start == 0 and end == 0:
        raise _Bad("addresses hidden: %pK printed zeros (kptr_restrict)")
    if start >= end:
        raise _Bad(f"end {end:#x} is not above start {start:#x}")
    if size != end - start:
        raise _Bad(f"size {size} but the range spans {end - start} bytes")
    if start % PAGE_SIZE or end % PAGE_SIZE:
        raise _Bad(f"the range is not page-aligned (PAGE_SIZE {PAGE_SIZE})")
    rest = (rest or "").strip()
    if rest == "vm_map_ram":
        return VmallocinfoRecord(no, start, end, KIND_RAM)
    if rest == "unpurged vm_area":
        return VmallocinfoRecord(no, start, end, KIND_LAZY)
    return _vm_record(no, start, end, rest.split())


def _is_field(tok: str) -> bool:
    return (
        tok in _FLAG_BIT
        or tok == "vpages"
        or tok.startswith(("pages=", "phys="))
        or _NUMA.match(tok) is not None
    )


def _vm_record(no: int, start: int, end: int, toks: list[str]) -> VmallocinfoRecord:
    i = 0
    caller = None
    if toks and not _is_field(toks[0]):
        caller = toks[0]
        i = 1
        if i < len(toks) and toks[i].startswith("["):  # " [module]" or " [module buildid]"
            j = i
            while j < len(toks) and not toks[j].endswith("]"):
                j += 1
            if j == len(toks):
                raise _Bad(f"the caller's module name {toks[i]!r} is not closed by ']'")
            caller = " ".join(toks[: j + 1])
            i = j + 1
    pages = phys = flags = 0
    vpages = False
    numa: list[tuple[int, int]] = []
    last_rank, last_word = -1, "the caller"
    for tok in toks[i:]:
        if tok.startswith("pages="):
            rank = 0
            pages = _int_field(tok, "pages")
        elif tok.startswith("phys="):
            rank = 1
            m = _HEX.match(tok[5:])
            if m is None:
                raise _Bad(f"{tok!r}: phys= takes a hex address (%pa)")
            phys = int(m.group(1), 16)
        elif tok in _FLAG_BIT:
            rank = _FLAG_RANK[tok]
            flags |= _FLAG_BIT[tok]
        elif tok == "vpages":
            rank = _RANK_VPAGES
            vpages = True
        elif (m := _NUMA.match(tok)) is not None:
            rank = _RANK_NUMA
            node, count = int(m.group(1)), int(m.group(2))
            if numa and node <= numa[-1][0]:
                raise _Bad(f"{tok!r}: NUMA nodes must come in increasing order")
            numa.append((node, count))
        else:
            raise _Bad(
                f"unknown field {tok!r} (s_show() prints pages=, phys=, "
                f"{', '.join(w for w, _ in FLAG_WORDS)}, vpages, N<node>=)"
            )
        if rank < last_rank or (rank == last_rank and rank != _RANK_NUMA):
            raise _Bad(f"{tok!r} after {last_word}: vmalloc_info_show() prints them the other way")
        last_rank, last_word = rank, repr(tok)
    if pages * PAGE_SIZE > end - start:
        raise _Bad(f"pages={pages} do not fit the {end - start}-byte area")
    return VmallocinfoRecord(
        no, start, end, KIND_VM, caller, pages, phys, flags, vpages, tuple(numa)
    )


def _int_field(tok: str, name: str) -> int:
    text = tok[len(name) + 1 :]
    if not text.isdigit():
        raise _Bad(f"{tok!r}: {name}= takes a decimal count")
    return int(text)
