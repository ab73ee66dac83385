"""Image folder + CSV datasets: how HAM10000, ISIC 2018 and the Kaggle DR sets ship.

A CSV names each image (a bare id such as ``ISIC_0024306`` or a relative path) and its label,
either in ONE label column (class names or integer indices; ``dx`` in HAM10000, ``level`` in
Kaggle DR) or as ONE-HOT columns (ISIC 2018 ground truth: ``image,MEL,NV,BCC,...`` with 0/1 or
0.0/1.0). Images are PNG / JPEG / TIFF or DICOM, decoded by :mod:`medactive.data.decode` (the
decoder every medactive path uses).

Row numbers in error messages are line numbers of the CSV file (the header is row 1), i.e. what a
spreadsheet or editor shows. An empty label cell means "not labelled yet" (label -1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medactive.data.csvfile import read_csv
from medactive.data.dataset import UNKNOWN_LABEL, DatasetSplits, ImageDataset
from medactive.data.decode import DecodeSettings
from medactive.data.imagefiles import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    ImageResolver,
    decode_files,
)
from medactive.data.labels import MAX_INFERRED_CLASSES, infer_class_count
from medactive.data.pixels import to_channels
from medactive.errors import DataError

# Auto-detected column names (case-insensitive), in order of preference.
ID_COLUMNS = ("image", "image_id", "image_name", "imageid", "id", "path", "image_path",
              "filepath", "file", "filename", "file_name")
LABEL_COLUMNS = ("label", "dx", "diagnosis", "level", "class")
SPLIT_COLUMN = "split"
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "dev": "val", "test": "test", "testing": "test"}
_FOLDER_OPTIONS = {"image_root", "id_column", "label_column", "one_hot_columns", "class_names",
                   "image_size", "channels", "name", "window", "frame"}


@dataclass(frozen=True)
class _Row:
    line: int  # CSV line number (header = 1)
    image_id: str
    cells: dict[str, str]


def _read_csv(csv_path: Path) -> tuple[list[str], list[_Row]]:
    """Return the header and the data rows with their line numbers (UTF-8, BOM or not)."""
    header, rows = read_csv(csv_path)
    if not rows:
        raise DataError(f"{csv_path}: the CSV has a header but no rows")
    return header, [_Row(r.line, "", r.cells) for r in rows]


def _find_column(header: Sequence[str], candidates: Sequence[str]) -> str | None:
    lower = {h.lower(): h for h in header}
    return next((lower[c] for c in candidates if c in lower), None)


def _require_columns(csv_path: Path, header: Sequence[str], columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise DataError(
            f"{csv_path}: column(s) {', '.join(missing)} not in the CSV "
            f"(columns: {', '.join(header)})"
        )


def _is_binary(value: str) -> bool:
    try:
        return float(value) in (0.0, 1.0)
    except ValueError:
        return False


def _label_columns(
    csv_path: Path, header: list[str], rows: list[_Row], excluded: set[str],
    label_column: str | None, one_hot_columns: Sequence[str] | None,
) -> tuple[str | None, list[str] | None]:
    """Choose between one label column and one-hot columns (see :func:`load_image_folder`)."""
    if label_column is not None and one_hot_columns is not None:
        raise DataError("pass either label_column or one_hot_columns, not both")
    if label_column is not None:
        _require_columns(csv_path, header, [label_column])
        return label_column, None
    if one_hot_columns is not None:
        _require_columns(csv_path, header, list(one_hot_columns))
        return None, list(one_hot_columns)
    found = _find_column([h for h in header if h not in excluded], LABEL_COLUMNS)
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


def _single_labels(
    csv_path: Path, rows: list[_Row], column: str, class_names: Sequence[str] | None
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
            index = _as_index(value)
        except ValueError:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): label {value!r} in column "
                f"{column!r} is not a class index (expected a whole number >= 0)"
            ) from None
        if index is None:
            numeric = {}
            break
        numeric[i] = index
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
            class_names = sorted({v for v in values if v})
    names = tuple(class_names)
    index = {name: i for i, name in enumerate(names)}
    labels = np.full(len(rows), UNKNOWN_LABEL, dtype=np.int64)
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        if not value:
            continue
        if value in index:
            labels[i] = index[value]
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


def _one_hot_labels(
    csv_path: Path, rows: list[_Row], columns: list[str], class_names: Sequence[str] | None
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


def _decode_all(csv_path: Path, rows: list[_Row], paths: list[Path], size: int | None,
                settings: DecodeSettings) -> list[np.ndarray]:
    """Decode every image (thread pool, progress bar); the first bad file names its CSV row."""
    try:
        return decode_files(paths, size, settings=settings)
    except ImageDecodeError as exc:
        raise DataError(f"{csv_path}: row {rows[exc.index].line}: cannot read image {exc}") \
            from None


def _stack(csv_path: Path, rows: list[_Row], arrays: list[np.ndarray],
           channels: int | None) -> np.ndarray:
    """Stack decoded images to ``(N, H, W, C)``, converting gray <-> RGB to ``channels``."""
    first = arrays[0].shape[:2]
    for row, array in zip(rows, arrays, strict=True):
        if array.shape[:2] != first:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): image is {array.shape[1]}x"
                f"{array.shape[0]} but row {rows[0].line} is {first[1]}x{first[0]}; pass "
                "image_size= to resize them all"
            )
    if channels is None:
        channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    out = np.empty((len(arrays), *first, channels), dtype=np.uint8)
    for i, array in enumerate(arrays):
        out[i] = to_channels(array, channels)
    return out


def _load(
    csv_path: str | Path, image_root: str | Path | None = None, *, id_column: str | None = None,
    label_column: str | None = None, one_hot_columns: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None, image_size: int | None = 28,
    channels: int | None = None, name: str | None = None, split_column: str | None = None,
    window: str | tuple[float, float] | None = None, frame: int | None = None,
) -> ImageDataset:
    """Load the dataset (``split_column`` is only excluded from label auto-detection)."""
    csv_path = Path(csv_path).expanduser()
    if isinstance(window, str):
        settings = DecodeSettings.parse(window, frame)
    else:
        settings = DecodeSettings(window, frame)
    header, rows = _read_csv(csv_path)
    if id_column is None:
        id_column = _find_column(header, ID_COLUMNS)
        if id_column is None:
            raise DataError(
                f"{csv_path}: no image id column found (columns: {', '.join(header)}); name it "
                f"one of {', '.join(ID_COLUMNS)} or pass id_column="
            )
    _require_columns(csv_path, header, [id_column])
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size}")
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        image_id = row.cells.get(id_column, "")
        if not image_id:
            raise DataError(f"{csv_path}: row {row.line}: empty image id in column {id_column!r}")
        if image_id in seen:
            raise DataError(
                f"{csv_path}: row {row.line} ({image_id}): duplicate image id (also row "
                f"{seen[image_id]})"
            )
        seen[image_id] = row.line
        rows[i] = _Row(row.line, image_id, row.cells)
    excluded = {id_column, split_column or _find_column(header, (SPLIT_COLUMN,)) or ""}
    single, one_hot = _label_columns(csv_path, header, rows, excluded, label_column,
                                     one_hot_columns)
    if single is not None:
        labels, names = _single_labels(csv_path, rows, single, class_names)
    else:
        labels, names = _one_hot_labels(csv_path, rows, one_hot or [], class_names)
    if len(names) < 2:
        raise DataError(f"{csv_path}: need at least 2 classes, found {', '.join(names) or 'none'}")

    root = Path(image_root).expanduser() if image_root is not None else csv_path.parent
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    resolve = ImageResolver(root)
    paths = []
    for row in rows:
        path = resolve(row.image_id)
        if path is None:
            tried = ", ".join(["", *IMAGE_EXTENSIONS])
            raise DataError(
                f"{csv_path}: row {row.line}: image {row.image_id!r} not found in {root} "
                f"(tried extensions: {tried.lstrip(', ') or 'none'} and sub-folders)"
            )
        paths.append(path)
    images = _stack(csv_path, rows, _decode_all(csv_path, rows, paths, image_size, settings),
                    channels)
    return ImageDataset.from_arrays(
        images, labels, names, ids=[r.image_id for r in rows], name=name or csv_path.stem
    )


def load_image_folder(
    csv_path: str | Path,
    image_root: str | Path | None = None,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
    one_hot_columns: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    image_size: int | None = 28,
    channels: int | None = None,
    name: str | None = None,
    window: str | tuple[float, float] | None = None,
    frame: int | None = None,
) -> ImageDataset:
    """Load the images a CSV names, with their labels, into one :class:`ImageDataset`.

    Args:
        csv_path: the CSV; one row per image.
        image_root: folder the ids / relative paths are relative to (default: the CSV's folder).
            Bare ids get ``.png .jpg .jpeg .tif .tiff .dcm`` tried in turn; a file not at the root
            is found
            by name in sub-folders when that name is unique.
        id_column: column naming each image (default: the first of ``ID_COLUMNS`` present).
        label_column: a single label column holding class names or integer indices (default:
            ``label``, ``dx``, ``diagnosis``, ``level`` or ``class`` when present).
        one_hot_columns: one-hot label columns, one per class (default when no single label
            column is found: every other column whose cells are all 0/1).
        class_names: class names in index order. Default: sorted label names, ``"0".."K-1"`` for
            integer labels (K = largest label + 1, at most 10,000, at least half of them used),
            or the one-hot column names.
        image_size: side length to resize to (bicubic), or None to keep the native size (then
            all images must share it).
        channels: 1 or 3; default 3 if any image is colour, else 1.
        name: dataset name (default: the CSV's file name without suffix).
        window: DICOM window overriding the header: ``(center, width)``, ``"center,width"`` or
            a CT preset name (see :data:`medactive.data.decode.CT_WINDOWS`).
        frame: frame of multi-frame files (default: the middle one).

    Returns:
        ``ImageDataset`` with images ``(N, image_size, image_size, channels)`` uint8, ids taken
        from the id column.

    Raises:
        DataError: naming the CSV row and the file for a missing or unreadable image, an unknown
            label, a one-hot row with zero or several columns set, or a duplicate id.
    """
    return _load(csv_path, image_root, id_column=id_column, label_column=label_column,
                 one_hot_columns=one_hot_columns, class_names=class_names,
                 image_size=image_size, channels=channels, name=name, window=window, frame=frame)


def load_folder_splits(
    csv_path: str | Path,
    *,
    split_column: str | None = None,
    sizes: Sequence[float] | None = None,
    seed: int = 0,
    **kwargs: object,
) -> DatasetSplits:
    """Load an image-folder CSV as train / val / test splits.

    Uses ``split_column`` (default: a ``split`` column when the CSV has one) with values
    ``train`` / ``val`` / ``test`` (aliases: training, valid, validation, dev, testing). Without
    one, a seeded stratified split (:func:`medactive.data.splits.stratified_split`) of ``sizes``
    (counts or fractions; default 70/10/20 %).

    Args:
        csv_path: the CSV.
        split_column: column holding each row's split.
        sizes: ``(n_train, n_val, n_test)`` or fractions, used when there is no split column.
        seed: seed of the stratified split.
        **kwargs: passed to :func:`load_image_folder`.
    """
    from medactive.data.splits import stratified_split

    csv_path = Path(csv_path).expanduser()
    unknown = set(kwargs) - _FOLDER_OPTIONS
    if unknown:
        raise DataError(f"unknown option(s) for an image-folder CSV: {', '.join(sorted(unknown))}")
    # Check the split column before decoding anything: a typo should fail in milliseconds.
    header, rows = _read_csv(csv_path)
    if split_column is None:
        split_column = _find_column(header, (SPLIT_COLUMN,))
    which: list[str] = []
    if split_column is not None:
        _require_columns(csv_path, header, [split_column])
        if sizes is not None:
            raise DataError(f"{csv_path}: sizes= cannot be used with split column {split_column!r}")
        for row in rows:
            value = row.cells.get(split_column, "")
            if value.lower() not in SPLIT_ALIASES:
                raise DataError(
                    f"{csv_path}: row {row.line}: split {value!r} in column {split_column!r}; "
                    "expected train, val or test"
                )
            which.append(SPLIT_ALIASES[value.lower()])
    dataset = _load(csv_path, split_column=split_column, **kwargs)  # type: ignore[arg-type]
    meta = {"path": str(csv_path), "source": "folder"}
    if split_column is None:
        splits = stratified_split(dataset, sizes if sizes is not None else (0.7, 0.1, 0.2), seed)
        return DatasetSplits(splits.train, splits.val, splits.test, name=dataset.name,
                             meta={**meta, **splits.meta})
    which_arr = np.array(which)
    parts = {}
    for part in ("train", "val", "test"):
        idx = np.flatnonzero(which_arr == part)
        if idx.size == 0:
            raise DataError(f"{csv_path}: no {part!r} rows in split column {split_column!r}")
        parts[part] = dataset.subset(idx)
    return DatasetSplits(parts["train"], parts["val"], parts["test"], name=dataset.name,
                         meta={**meta, "split": f"column {split_column}"})
