"""CSV cells of labels files: the column names and the escaping that keeps a spreadsheet from
running a cell as a formula (shared by ``project import`` and every export)."""

from __future__ import annotations

CSV_ID = "image_id"
CSV_LABEL = "label"
# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in an
# annotator name); tab and carriage return too (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with ``'`` (shown as text)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`, so an exported file imports back unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) else value
