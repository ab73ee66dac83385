"""Image folder + CSV datasets: how HAM10000, ISIC 2018 and the Kaggle DR sets ship.

A CSV names each image (a bare id such as ``ISIC_0024306`` or a relative path) and its label,
either in ONE label column (class names or integer indices; ``dx`` in HAM10000, ``level`` in
Kaggle DR) or as ONE-HOT columns (ISIC 2018 ground truth: ``image,MEL,NV,BCC,...`` with 0/1 or
0.0/1.0). Images are PNG / JPEG (Pillow) or DICOM (pydicom), see :mod:`medactive.data.decode`.

Row numbers in error messages are line numbers of the CSV file (the header is row 1), i.e. what a
spreadsheet or editor shows. An empty label cell means "not labelled yet" (label -1).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medactive.data.dataset import UNKNOWN_LABEL, DatasetSplits, ImageDataset
from medactive.data.decode import IMAGE_EXTENSIONS, ImageResolver, read_image
from medactive.errors import DataError
from medactive.progress import progress_bar

# Auto-detected column names (case-insensitive), in order of preference.
ID_COLUMNS = ("image", "image_id", "image_name", "imageid", "id", "path", "image_path",
              "filepath", "file", "filename", "file_name")
LABEL_COLUMNS = ("label", "dx", "diagnosis", "level", "class")
SPLIT_COLUMN = "split"
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "dev": "val", "test": "test", "testing": "test"}
# Below this many files a pool and a progress bar cost more than they save.
_PARALLEL_MIN = 64
_PROGRESS_MIN = 200
_FOLDER_OPTIONS = {"image_root", "id_column", "label_column", "one_hot_columns", "class_names",
                   "image_size", "channels", "name"}


@dataclass(frozen=True)
class _Row:
    line: int  # CSV line number (header = 1)
    image_id: str
    cells: dict[str, str]


def _read_csv(csv_path: Path) -> tuple[list[str], list[_Row]]:
    """Return the header and the data rows with their line numbers."""
    if not csv_path.is_file():
        raise DataError(f"CSV file not found: {csv_path}")
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            reader.fieldnames = header
            rows = []
            for cells in reader:
                if not any((v or "").strip() for v in cells.values() if isinstance(v, str)):
                    continue  # blank line
                clean = {k: (v or "").strip() for k, v in cells.items() if isinstance(k, str)}
                rows.append(_Row(reader.line_num, "", clean))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: not a readable CSV file ({exc})") from None
    if not header:
        raise DataError(f"{csv_path}: empty CSV (no header row)")
    if not rows:
        raise DataError(f"{csv_path}: the CSV has a header but no rows")
    return header, rows


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


def _single_labels(
    csv_path: Path, rows: list[_Row], column: str, class_names: Sequence[str] | None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map one label column (names or integer indices) to int64 labels."""
    values = [r.cells.get(column, "") for r in rows]
    present = [v for v in values if v]
    if class_names is None:
        if present and all(v.lstrip("-").isdigit() for v in present):
            top = max(int(v) for v in present)  # integer grades such as Kaggle DR's 0..4
            class_names = [str(i) for i in range(max(top + 1, 2))]
        else:
            class_names = sorted(set(present))
    names = tuple(class_names)
    index = {name: i for i, name in enumerate(names)}
    labels = np.full(len(rows), UNKNOWN_LABEL, dtype=np.int64)
    for i, (row, value) in enumerate(zip(rows, values, strict=True)):
        if not value:
            continue
        if value in index:
            labels[i] = index[value]
        elif value.isdigit() and int(value) < len(names):
            labels[i] = int(value)
        else:
            raise DataError(
                f"{csv_path}: row {row.line} ({row.image_id}): unknown label {value!r} in column "
                f"{column!r} (classes: {', '.join(names)})"
            )
    return labels, names


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


def _decode_all(csv_path: Path, rows: list[_Row], paths: list[Path],
                size: int | None) -> list[np.ndarray]:
    """Decode every image (threaded: Pillow and zlib release the GIL while decoding)."""

    def work(i: int) -> np.ndarray:
        try:
            return read_image(paths[i], size)
        except Exception as exc:  # any decoder failure means a bad file
            raise DataError(
                f"{csv_path}: row {rows[i].line}: cannot read image {paths[i]} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
            ) from None

    n = len(paths)
    bar_on = n >= _PROGRESS_MIN
    if n < _PARALLEL_MIN:
        return [work(i) for i in progress_bar(range(n), "decode images", "img", bar_on)]
    workers = min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            return list(progress_bar(pool.map(work, range(n)), "decode images", "img", bar_on, n))
        except DataError:
            # Report the first bad file now instead of decoding thousands more first.
            pool.shutdown(wait=False, cancel_futures=True)
            raise


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
    luma = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as Pillow's convert("L")
    for i, array in enumerate(arrays):
        if array.ndim == 2:
            out[i] = array[..., None]  # broadcasts to 3 channels when channels == 3
        elif channels == 3:
            out[i] = array
        else:
            out[i, ..., 0] = np.clip(np.round(array @ luma), 0, 255).astype(np.uint8)
    return out


def _load(
    csv_path: str | Path, image_root: str | Path | None = None, *, id_column: str | None = None,
    label_column: str | None = None, one_hot_columns: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None, image_size: int | None = 28,
    channels: int | None = None, name: str | None = None, split_column: str | None = None,
) -> ImageDataset:
    """Load the dataset (``split_column`` is only excluded from label auto-detection)."""
    csv_path = Path(csv_path).expanduser()
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
    images = _stack(csv_path, rows, _decode_all(csv_path, rows, paths, image_size), channels)
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
) -> ImageDataset:
    """Load the images a CSV names, with their labels, into one :class:`ImageDataset`.

    Args:
        csv_path: the CSV; one row per image.
        image_root: folder the ids / relative paths are relative to (default: the CSV's folder).
            Bare ids get ``.png .jpg .jpeg .dcm`` tried in turn; a file not at the root is found
            by name in sub-folders when that name is unique.
        id_column: column naming each image (default: the first of ``ID_COLUMNS`` present).
        label_column: a single label column holding class names or integer indices (default:
            ``label``, ``dx``, ``diagnosis``, ``level`` or ``class`` when present).
        one_hot_columns: one-hot label columns, one per class (default when no single label
            column is found: every other column whose cells are all 0/1).
        class_names: class names in index order. Default: sorted label names, ``"0".."K-1"`` for
            integer labels, or the one-hot column names.
        image_size: side length to resize to (bicubic), or None to keep the native size (then
            all images must share it).
        channels: 1 or 3; default 3 if any image is colour, else 1.
        name: dataset name (default: the CSV's file name without suffix).

    Returns:
        ``ImageDataset`` with images ``(N, image_size, image_size, channels)`` uint8, ids taken
        from the id column.

    Raises:
        DataError: naming the CSV row and the file for a missing or unreadable image, an unknown
            label, a one-hot row with zero or several columns set, or a duplicate id.
    """
    return _load(csv_path, image_root, id_column=id_column, label_column=label_column,
                 one_hot_columns=one_hot_columns, class_names=class_names,
                 image_size=image_size, channels=channels, name=name)


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
