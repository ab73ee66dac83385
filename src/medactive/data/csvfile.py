"""Reading the CSV files users bring (label lists, image-folder metadata).

One reader for every CSV medactive accepts, so they all take the same files: UTF-8 with or
without a byte-order mark (Excel's "CSV UTF-8" export starts with one). Any other encoding is
refused with a message naming the problem instead of being guessed: a latin-1 ``é`` read as
UTF-8 would silently become a different class name.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from medactive.errors import DataError


@dataclass(frozen=True)
class CsvRow:
    """One data row: its line number in the file (header = 1) and its stripped cells."""

    line: int
    cells: dict[str, str]


def read_csv(path: str | Path, what: str = "CSV file") -> tuple[list[str], list[CsvRow]]:
    """Read a CSV with a header row.

    Args:
        path: the file.
        what: how to call it in the "not found" message (e.g. ``labels file``).

    Returns:
        (header, rows): stripped column names, and the non-blank data rows.

    Raises:
        DataError: missing or unreadable file, not UTF-8, malformed CSV, or no header.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}; probably "
            "latin-1/Windows-1252); save it as UTF-8 (in Excel: 'CSV UTF-8')"
        ) from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = []
        for cells in reader:
            clean = {k: (v or "").strip() for k, v in cells.items()
                     if isinstance(k, str) and isinstance(v, str | None)}
            if any(clean.values()):
                rows.append(CsvRow(reader.line_num, clean))
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from None
    if not header:
        raise DataError(f"{path}: empty CSV (no header row)")
    return header, rows
