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
from pathlib import Path
from typing import cast

import numpy as np

from medactive.data.csvfile import read_csv
from medactive.data.csvlabels import (
    CsvImageRow,
    label_columns,
    one_hot_labels,
    require_columns,
    single_column_labels,
)
from medactive.data.dataset import DatasetSplits, ImageDataset
from medactive.data.decode import DecodeSettings
from medactive.data.imagefiles import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    ImageResolver,
    decode_files,
)
from medactive.data.labelcsv import (  # noqa: F401 - ID_COLUMNS re-exported for callers
    ID_COLUMNS,
    find_column,
    merge_duplicates,
    read_image_list,
)
from medactive.data.pixels import to_channels
from medactive.errors import DataError

SPLIT_COLUMN = "split"
#: train / val / test fractions of a labelled CSV without a split column.
DEFAULT_SPLIT = (0.7, 0.1, 0.2)
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "dev": "val", "test": "test", "testing": "test"}
_FOLDER_OPTIONS = {"image_root", "id_column", "label_column", "one_hot_columns", "class_names",
                   "image_size", "channels", "name", "window", "frame", "lazy"}


def _decode_all(csv_path: Path, rows: list[CsvImageRow], paths: list[Path], size: int | None,
                settings: DecodeSettings) -> list[np.ndarray]:
    """Decode every image (thread pool, progress bar); the first bad file names its CSV row."""
    try:
        return decode_files(paths, size, settings=settings)
    except ImageDecodeError as exc:
        raise DataError(f"{csv_path}: row {rows[exc.index].line}: cannot read image {exc}") \
            from None


def _stack(csv_path: Path, rows: list[CsvImageRow], arrays: list[np.ndarray],
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
    lazy: bool = False, split_values: dict[int, str] | None = None,
) -> tuple[ImageDataset, list[int]]:
    """Load the dataset and the CSV line of each of its images (``split_column`` is only
    excluded from label auto-detection; ``split_values``, each row's split by line, must agree
    between the rows of one image); with ``lazy``, the images go through the decoded-image
    store (:mod:`medactive.data.store`)."""
    csv_path = Path(csv_path).expanduser()
    if isinstance(window, str):
        settings = DecodeSettings.parse(window, frame)
    else:
        settings = DecodeSettings(window, frame)
    table = read_image_list(csv_path, id_column=id_column, labels="ignore")
    header, id_column = table.header, table.id_column
    rows = [CsvImageRow(r.line, r.name, r.cells) for r in table.rows]
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be a positive number of pixels, got {image_size}")
    excluded = {id_column, split_column or find_column(header, (SPLIT_COLUMN,)) or ""}
    single, one_hot = label_columns(csv_path, header, rows, excluded, label_column,
                                     one_hot_columns)
    if single is not None:
        labels, names = single_column_labels(csv_path, rows, single, class_names)
    else:
        labels, names = one_hot_labels(csv_path, rows, one_hot or [], class_names)
    if len(names) < 2:
        raise DataError(f"{csv_path}: need at least 2 classes, found {', '.join(names) or 'none'}")
    root = image_root_of(csv_path, image_root)
    paths = resolve_rows(csv_path, root, rows)
    keys = [image_key(root, p) for p in paths]
    lines = [r.line for r in rows]
    if split_values is not None:  # one image in two splits would leak between them
        merge_duplicates(csv_path, keys, [split_values[r.line] for r in rows], lines, "splits")
    keep = merge_duplicates(csv_path, keys, [names[v] if v >= 0 else "" for v in labels], lines)
    if len(keep) < len(rows):  # the same image listed twice with one label: taken once
        label_of: dict[Path, int] = {}
        for path, label in zip(paths, labels.tolist(), strict=True):
            if label >= 0:
                label_of.setdefault(path, label)
        rows, paths = [rows[k] for k in keep], [paths[k] for k in keep]
        labels = np.array([label_of.get(p, -1) for p in paths], dtype=np.int64)
    if lazy:  # decoded once into the store, read lazily (pools beyond memory)
        from medactive.data.store import store_images

        if image_size is None:
            raise DataError("lazy loading needs an image_size (the store holds one size)")
        # duck-typed: a LazyImages stands in for the uint8 array (shape, dtype, indexing)
        images = cast(np.ndarray, store_images(paths, image_size, channels, settings))
    else:
        images = _stack(csv_path, rows, _decode_all(csv_path, rows, paths, image_size,
                                                    settings), channels)
    dataset = ImageDataset.from_arrays(
        images, labels, names, ids=[r.image_id for r in rows], name=name or csv_path.stem)
    return dataset, [r.line for r in rows]


def image_root_of(csv_path: Path, image_root: str | Path | None) -> Path:
    """The folder a CSV's image paths are relative to: ``image_root``, else the CSV's folder.

    Raises:
        DataError: it is not a folder.
    """
    root = Path(image_root).expanduser() if image_root is not None else csv_path.parent
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    return root


def image_key(root: Path, path: Path) -> str:
    """The image a resolved ``path`` is, as a POSIX path relative to ``root`` (two rows naming
    one file, ``img1`` and ``img1.png``, get one key)."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def resolve_rows(csv_path: Path, root: Path, rows: Sequence[CsvImageRow]) -> list[Path]:
    """The file of every row, inside ``root`` (:class:`ImageResolver`).

    Raises:
        DataError: naming the row of the first image that is missing, absolute, leaves the root
            or links out of it (checked before any image is opened).
    """
    resolve = ImageResolver(root)
    paths = []
    for row in rows:
        try:
            path = resolve(row.image_id)
        except DataError as exc:
            raise DataError(f"{csv_path}: row {row.line}: {exc}") from None
        if path is None:
            tried = ", ".join(["", *IMAGE_EXTENSIONS])
            raise DataError(
                f"{csv_path}: row {row.line}: image {row.image_id!r} not found in {root} "
                f"(tried extensions: {tried.lstrip(', ') or 'none'} and sub-folders)"
            )
        paths.append(path)
    return paths


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
    lazy: bool = False,
) -> ImageDataset:
    """Load the images a CSV names, with their labels, into one :class:`ImageDataset`.

    With ``lazy``, the images are decoded once into the decoded-image store and the dataset's
    ``images`` is a :class:`~medactive.data.lazy.LazyImages` (pools beyond memory; ``channels``
    then defaults from the first 64 files).

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
                 image_size=image_size, channels=channels, name=name, window=window,
                 frame=frame, lazy=lazy)[0]


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
    header, rows = read_csv(csv_path)
    if split_column is None:
        split_column = find_column(header, (SPLIT_COLUMN,))
    which: dict[int, str] = {}
    if split_column is not None:
        split_column = require_columns(csv_path, header, [split_column])[0]
        if sizes is not None:
            raise DataError(f"{csv_path}: sizes= cannot be used with split column {split_column!r}")
        for row in rows:
            value = row.cells.get(split_column, "")
            if value.lower() not in SPLIT_ALIASES:
                raise DataError(
                    f"{csv_path}: row {row.line}: split {value!r} in column {split_column!r}; "
                    "expected train, val or test"
                )
            which[row.line] = SPLIT_ALIASES[value.lower()]
    dataset, lines = _load(csv_path, split_column=split_column,
                           split_values=which if split_column is not None else None,
                           **kwargs)  # type: ignore[arg-type]
    meta = {"path": str(csv_path), "source": "folder"}
    if split_column is None:
        fractions = sizes if sizes is not None else DEFAULT_SPLIT
        splits = stratified_split(dataset, fractions, seed)
        counts = "/".join(str(n) for n in splits.meta["sizes"])
        return DatasetSplits(splits.train, splits.val, splits.test, name=dataset.name,
                             meta={**meta, **splits.meta,
                                   "split_note": f"no split column: a stratified {counts} "
                                   f"train/val/test split (seed {seed}); a 'split' column "
                                   "chooses it"})
    which_arr = np.array([which[line] for line in lines])
    parts = {}
    for part in ("train", "val", "test"):
        idx = np.flatnonzero(which_arr == part)
        if idx.size == 0:
            raise DataError(f"{csv_path}: no {part!r} rows in split column {split_column!r}")
        parts[part] = dataset.subset(idx)
    counts = "/".join(str(len(parts[k])) for k in ("train", "val", "test"))
    return DatasetSplits(parts["train"], parts["val"], parts["test"], name=dataset.name,
                         meta={**meta, "split": f"column {split_column}",
                               "split_note": f"train/val/test {counts} from column "
                               f"{split_column!r}"})
