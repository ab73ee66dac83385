"""Label columns of an image-folder CSV: one column of names or indices, or one-hot columns.

Split out of :mod:`medactive.data.folder` (which finds, decodes and splits the images). The
rows and the id column come from the one CSV reader, :mod:`medactive.data.labelcsv`; class
names match case-insensitively as everywhere. Integer label columns go through the guards of
:mod:`medactive.data.labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medactive.data.dataset import UNKNOWN_LABEL
from medactive.data.labelcsv import LABEL_COLUMNS, ClassMatcher, find_column
from medactive.data.labels import MAX_INFERRED_CLASSES, infer_class_count
from medactive.errors import DataError


@dataclass(frozen=True)
class CsvImageRow:
    """One CSV row naming an image: line number, image id (filled in once the id column is
    known) and the stripped cells."""

    line: int  # CSV line number (header = 1)
    image_id: str
    cells: dict[str, str]


def require_columns(csv_path: Path, header: Sequence[str], columns: Sequence[str]) -> list[str]:
    """The ``columns`` as spelled in ``header`` (matched case-insensitively).

    Raises:
        DataError: naming the ``columns`` missing from ``header``.
    """
    missing = [c for c in columns if find_column(header, [c]) is None]
    if missing:
        raise DataError(
            f"{csv_path}: column(s) {', '.join(missing)} not in the CSV "
            f"(columns: {', '.join(header)})"
        )
    return [str(find_column(header, [c])) for c in columns]


def _is_binary(value: str) -> bool:
    try:
        return float(value) in (0.0, 1.0)
    except ValueError:
        return False


def label_columns(
    csv_path: Path, header: list[str], rows: list[CsvImageRow], excluded: set[str],
    label_column: str | None, one_hot_columns: Sequence[str] | None,
) -> tuple[str | None, list[str] | None]:
    """Choose between one label column and one-hot columns (see
    :func:`medactive.data.folder.load_image_folder`)."""
    if label_column is not None and one_hot_columns is not None:
        raise DataError("pass either label_column or one_hot_columns, not both")
    if label_column is not None:
        return require_columns(csv_path, header, [label_column])[0], None
    if one_hot_columns is not None:
        return None, require_columns(csv_path, header, list(one_hot_columns))
    found = find_column([h for h in header if h not in excluded], LABEL_COLUMNS)
    if found is not None:
        return found, None
    binary = [h for h in header if h not in excluded
              and all(_is_binary(r.cells.get(h, "")) for r in rows)]
    if len(binary) >= 2:
        return None, binary
    raise DataError(
        f"{csv_path}: cannot tell which column holds the labels (columns: {', '.join(header)}); "
        f"name it one of {', '.join(LABEL_COLUMNS)}, or pass label_column= or one_hot_columns="
    )


def _as_index(value: str) -> int | None:
    """A numeric cell as a class index; None when it is not a number at all."""
    try:
        number = float(value)
    except ValueError:
        return None
    if not np.isfinite(number) or not number.is_integer() or number < 0:
        raise ValueError(value)
    return int(number)


def single_column_labels(
    csv_path: Path, rows: list[CsvImageRow], column: str, class_names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map one label column (names or integer indices) to int64 labels.

    A column of numbers only is read as class indices (``0..max`` when no names are given, with
    the guards of :mod:`medactive.data.labels`); NaN, negative and fractional numbers are errors.
    """
    values = [r.cells.get(column, "") for r in rows]
    numeric: dict[int, int] = {}  # row position -> index, when every present cell is a number
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        if not value:
            continue
        try:
            number = _as_index(value)
        except ValueError:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): label {value!r} in column "
                f"{column!r} is not a class index (expected a whole number >= 0)"
            ) from None
        if number is None:
            numeric = {}
            break
        numeric[i] = number
    if class_names is None:
        if numeric:
            top = max(numeric.values())
            if top >= MAX_INFERRED_CLASSES:
                line = rows[max(numeric, key=numeric.__getitem__)].line
                raise DataError(
                    f"{csv_path}: row {line}: label {top} is too large (class lists are "
                    f"inferred only up to {MAX_INFERRED_CLASSES} classes); pass class_names= "
                    "if it is intended"
                )
            n = infer_class_count([np.fromiter(numeric.values(), np.int64)],
                                  f"{csv_path}: column {column!r}")
            class_names = [str(i) for i in range(max(n, 2))]  # grades such as Kaggle DR's 0..4
        else:
            # one class per name whatever its case (Basophil = basophil), spelled as first seen
            spelling: dict[str, str] = {}
            for v in values:
                if v:
                    spelling.setdefault(v.casefold(), v)
            class_names = sorted(spelling.values())
    names = tuple(class_names)
    index = {name: i for i, name in enumerate(names)}
    match = ClassMatcher(names)
    labels = np.full(len(rows), UNKNOWN_LABEL, dtype=np.int64)
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        if not value:
            continue
        if match(value) is not None:
            labels[i] = index[str(match(value))]
        elif i in numeric and numeric[i] < len(names):
            labels[i] = numeric[i]
        else:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): unknown label {value!r} in column "
                f"{column!r} (classes: {_shorten(names)})"
            )
    return labels, names


def _shorten(names: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def one_hot_labels(
    csv_path: Path, rows: list[CsvImageRow], columns: list[str], class_names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map one-hot columns (exactly one 1 per row; all cells empty = unlabelled) to labels."""
    if class_names is not None and len(class_names) != len(columns):
        raise DataError(
            f"{len(class_names)} class names given for {len(columns)} one-hot columns "
            f"({', '.join(columns)})"
        )
    labels = np.full(len(rows), UNKNOWN_LABEL, dtype=np.int64)
    for i, row in enumerate(rows):
        cells = [row.cells.get(c, "") for c in columns]
        if not any(cells):
            continue
        bad = [(c, v) for c, v in zip(columns, cells, strict=True) if not _is_binary(v)]
        if bad:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): one-hot column {bad[0][0]!r} "
                f"holds {bad[0][1]!r}; expected 0 or 1"
            )
        hot = [c for c, v in zip(columns, cells, strict=True) if float(v) == 1.0]
        if len(hot) != 1:
            which = ", ".join(hot) if hot else "none"
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): {len(hot)} one-hot columns set "
                f"({which}); exactly one of {', '.join(columns)} must be 1"
            )
        labels[i] = columns.index(hot[0])
    return labels, tuple(class_names) if class_names is not None else tuple(columns)
