"""A sweep's results folder: one file per finished cell, the manifest, the tables.

::

    DIR/sweep.json            the vmapsim version that owns the folder, the last grid
    DIR/cells/KEY.json        a finished cell: the cell, its rows, who ran it, when
    DIR/cells/KEY.failed.json a failed cell: the cell and its error
    DIR/results.csv           the tidy table (one row per cell x subtest), rebuilt
    DIR/results.jsonl         at the end of every sweep from the grid's finished cells
    DIR/results.parquet       (with --format parquet; the 'parquet' extra)

A cell file is written the moment the cell finishes, through a temporary
file and :func:`os.replace`, so an interrupted sweep leaves whole files
only.  A folder belongs to one vmapsim version: opening it with another is
an error (:class:`StoreError`), so results never mix versions silently.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from vmapsim import __version__

__all__ = ["FORMATS", "Store", "StoreError", "table_columns"]

FORMATS = ("csv", "jsonl", "parquet")
MANIFEST = "sweep.json"


class StoreError(RuntimeError):
    """A results folder that this sweep cannot use (another version, unreadable)."""


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def table_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every column, in the order the rows first show them."""
    cols: dict[str, None] = {}
    for row in rows:
        for k in row:
            cols.setdefault(k, None)
    return list(cols)


class Store:
    """The results folder ``root`` (created when missing)."""

    def __init__(self, root: str | Path, version: str = __version__) -> None:
        self.root = Path(root)
        self.version = version
        self.cells_dir = self.root / "cells"
        manifest = self.root / MANIFEST
        if manifest.is_file():
            try:
                owner = json.loads(manifest.read_text(encoding="utf-8")).get("vmapsim_version")
            except (OSError, ValueError) as exc:
                raise StoreError(f"--output {self.root}: unreadable {MANIFEST}: {exc}") from None
            if owner != version:
                raise StoreError(
                    f"--output {self.root}: the folder holds results of vmapsim {owner}; this "
                    f"is vmapsim {version}, and a sweep never mixes versions: give another "
                    "--output (or remove the folder)"
                )
        elif self.root.exists() and not self.root.is_dir():
            raise StoreError(f"--output {self.root}: exists and is not a folder")

    def open(self, grid: Mapping[str, Any]) -> None:
        """Create the folder and record this version and the grid."""
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(
                self.root / MANIFEST,
                json.dumps(
                    {"vmapsim_version": self.version, "grid": grid, "updated": _now()},
                    indent=2,
                    default=repr,
                )
                + "\n",
            )
        except OSError as exc:
            raise StoreError(f"--output {self.root}: cannot write: {exc}") from None

    def _path(self, key: str, failed: bool = False) -> Path:
        return self.cells_dir / (f"{key}.failed.json" if failed else f"{key}.json")

    def finished(self, key: str) -> dict[str, Any] | None:
        """The stored result of cell ``key``, or None when it has not finished."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # a damaged file: run the cell again
            return None
        if data.get("vmapsim_version") != self.version:
            return None
        return data

    def failure(self, key: str) -> dict[str, Any] | None:
        """The stored failure of cell ``key``, or None."""
        try:
            return json.loads(self._path(key, failed=True).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def save(self, key: str, cell: Mapping[str, Any], result: Mapping[str, Any]) -> None:
        """Keep a finished cell (at once; replaces a failure record)."""
        record = {"key": key, "cell": dict(cell), "finished": _now(), **result}
        _atomic_write(self._path(key), json.dumps(record, default=repr) + "\n")
        failed = self._path(key, failed=True)
        if failed.exists():
            failed.unlink()

    def save_failure(self, key: str, cell: Mapping[str, Any], error: str) -> None:
        """Keep a failed cell's error (rerun it with ``--retry-failed``)."""
        record = {
            "key": key,
            "cell": dict(cell),
            "error": error,
            "vmapsim_version": self.version,
            "failed": _now(),
        }
        _atomic_write(self._path(key, failed=True), json.dumps(record) + "\n")

    def rows(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The rows of the finished cells among ``keys``, in that order."""
        out: list[dict[str, Any]] = []
        for key in keys:
            data = self.finished(key)
            if data is not None:
                out.extend(data["rows"])
        return out

    def write_tables(self, rows: list[dict[str, Any]], formats: Sequence[str]) -> list[Path]:
        """Write the table in each format; return the files written."""
        written = []
        cols = table_columns(rows)
        if "csv" in formats:
            path = self.root / "results.csv"
            with _TempText(path) as fh:
                w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
            written.append(path)
        if "jsonl" in formats:
            path = self.root / "results.jsonl"
            _atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))
            written.append(path)
        if "parquet" in formats:
            import pyarrow as pa
            import pyarrow.parquet as pq

            path = self.root / "results.parquet"
            table = pa.Table.from_pylist([{c: r.get(c) for c in cols} for r in rows])
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)
            written.append(path)
        return written


class _TempText:
    """A text file written to a temporary name and moved into place on success."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp")

    def __enter__(self) -> Any:
        self.fh = self.tmp.open("w", encoding="utf-8", newline="")
        return self.fh

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
