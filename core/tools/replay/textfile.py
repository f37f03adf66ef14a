"""Reading a replay input: one text file (or stdin) as numbered lines.

The file-level refusals live here, each one clear message and nothing
applied: a file that cannot be read, an empty file, a binary file (a NUL
byte, bytes that are not UTF-8, a gzip stream, trace-cmd's binary
``trace.dat``) and a truncated file (its last line has no newline: the
kernel ends every ``/proc/vmallocinfo`` and trace line with one, so a
missing one means the copy was cut mid-record).
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from attrs import frozen

__all__ = ["InputError", "Problem", "TextInput", "read_text"]

#: gzip's magic bytes; trace-cmd's trace.dat starts with 0x17 0x08 0x44 "tracing"
_GZIP = b"\x1f\x8b"
_TRACE_DAT = b"\x17\x08\x44tracing"


class InputError(Exception):
    """A replay input that cannot be used at all (exit status 3)."""


@frozen
class Problem:
    """One input line that was not applied: its number, why, and its text."""

    line: int
    reason: str
    text: str = ""

    def __str__(self) -> str:
        shown = self.text if len(self.text) <= 100 else self.text[:97] + "..."
        return f"line {self.line}: {self.reason}" + (f": {shown!r}" if shown else "")


@frozen
class TextInput:
    """A decoded input: its display name and its lines (without newlines)."""

    name: str
    lines: tuple[str, ...]


def read_text(path: str, what: str, *, stdin: BinaryIO | None = None) -> TextInput:
    """Read ``path`` (``-``: standard input) as the text of a ``what`` file.

    Raises :class:`InputError` for an unreadable, empty, binary or
    truncated file; ``what`` names the expected format in the message.
    """
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            data = (stdin or sys.stdin.buffer).read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    return decode_text(data, name, what)


def decode_text(data: bytes, name: str, what: str) -> TextInput:
    """The checks of :func:`read_text` on bytes already read."""
    if not data.strip():
        raise InputError(
            f"{name}: empty file: expected the text of {what}"
            + (" (nothing was read from standard input)" if name == "<stdin>" else "")
        )
    if data.startswith(_GZIP):
        raise InputError(f"{name}: gzip-compressed: decompress it first (expected {what})")
    if data.startswith(_TRACE_DAT):
        raise InputError(
            f"{name}: this is trace-cmd's binary trace.dat: convert it with "
            f"`trace-cmd report -i {name} > trace.txt` and replay the text"
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(
            f"{name}: binary file (a NUL byte at offset {nul}): expected the text of {what}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: binary file (not UTF-8 text: byte {data[exc.start]:#04x} at offset "
            f"{exc.start}): expected the text of {what}"
        ) from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise InputError(
            f"{name}: truncated: line {len(lines)} has no newline, so the copy was cut in "
            f"the middle of a record ({lines[-1][:60]!r}); nothing was replayed"
        )
    lines.pop()
    return TextInput(name, tuple(line[:-1] if line.endswith("\r") else line for line in lines))
